//! The home pages over HTTP on both stores: operator staff see the platform's figures, a
//! participant's user its own, another participant nothing of theirs — checked on the
//! HTML bodies sent (the hydration data included), and on `GET /api/v1/home`.

use broker_core::clock::now_micros;
use broker_core::store::{EntryState, Settlement};
use dip_admin::accounts::SessionPolicy;
use dip_reporting::analytics::Sink;
use dip_reporting::pump::{Pump, PumpConfig};
use dip_testkit::{Db, LDSO_P, MS_KEY, REGS_N, SUP1, SUP2, both_stores, if031, if909};
use reqwest::Method;
use serde_json::{Value, json};

use crate::portal::{Auth, Portal};

/// The figure shown in the tile `key` of a page.
fn tile(html: &str, key: &str) -> String {
    let start = html
        .find(&format!("id=\"tile-{key}\""))
        .unwrap_or_else(|| panic!("no tile {key}"));
    let rest = &html[start..];
    let value = rest.find("class=\"tile-value\">").expect("tile value") + "class=\"tile-value\">".len();
    rest[value..].split('<').next().unwrap().to_owned()
}

/// A tile's link.
fn tile_href(html: &str, key: &str) -> String {
    let start = html.find(&format!("id=\"tile-{key}\"")).unwrap();
    let rest = &html[start..];
    let href = rest.find("href=\"").unwrap() + "href=\"".len();
    rest[href..].split('"').next().unwrap().replace("&amp;", "&")
}

async fn send(p: &Portal, sender: &str, item: Value) -> String {
    let (status, body) = p
        .api(
            Auth::Key(&p.key(sender)),
            Method::POST,
            "/api/v1/messages",
            Some(json!([item])),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["results"][0]["transactionID"].as_str().unwrap().to_owned()
}

async fn each_home_shows_its_viewer_only_its_own(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    // The MSS's IF-909 to REGS_N and every supplier; two IF-031 from SUP1 to REGS_N, one
    // dead-lettered in REGS_N's queue.
    send(&p, MS_KEY, if909("home-web-1")).await;
    send(&p, SUP1, if031("home-web-2")).await;
    let dead = send(&p, SUP1, if031("home-web-3")).await;
    let entry = p.store.message_deliveries(&dead).await.unwrap().remove(0);
    let settlement = Settlement {
        queue_id: entry.queue_id,
        seq: entry.seq,
        state: EntryState::Dead,
        at: now_micros(),
        outcome: "stale".into(),
        duration_us: 0,
        call: None,
    };
    p.store.settle(&[settlement], &[]).await.unwrap();
    let mut pump = Pump::new(p.store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}

    // Operator staff: the platform.
    let admin = p.sign_in("admin").await;
    let (status, html, _) = p.page(Some(&admin), "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Is everything all right?"), "{html}");
    assert_eq!(tile(&html, "received_today"), "3");
    assert_eq!(tile(&html, "errors_today"), "1");
    assert_eq!(tile(&html, "dead_letters"), "1");
    assert_eq!(tile_href(&html, "dead_letters"), "/ops/dead-letters");
    assert_eq!(tile(&html, "queues_backlog"), "5", "4 IF-909 copies and an IF-031");
    assert!(html.contains("<svg role=\"img\""), "today's chart");
    assert!(
        html.contains(&format!("/ops/queues?participant={REGS_N}")),
        "its queue with the dead letter"
    );
    assert!(
        html.contains("href=\"/admin/participants\""),
        "the administration cards stay"
    );

    // SUP1's user: what it sent and received, and no other participant.
    let sup1 = p.sign_in("sup1-user").await;
    let (status, html, _) = p.page(Some(&sup1), "/").await;
    assert_eq!(status, 200);
    assert_eq!(tile(&html, "sent_today"), "2");
    assert_eq!(tile(&html, "received_today"), "1");
    assert_eq!(tile(&html, "dead_lettered_recent"), "1");
    assert_eq!(tile(&html, "dead_letters"), "0");
    let sent = tile_href(&html, "sent_today");
    assert!(sent.starts_with(&format!("/messages?sender={SUP1}&from=")), "{sent}");
    assert!(html.contains("Your queues") && html.contains(&format!("{SUP1}/registration")));
    assert!(html.contains("<h2>Endpoints</h2>"), "the participant's facts stay");
    for other in [SUP2, REGS_N, LDSO_P, MS_KEY] {
        assert!(!html.contains(other), "{other} on SUP1's home");
    }
    // The search the tile links to lists as many.
    let (status, list, _) = p.page(Some(&sup1), &sent).await;
    assert_eq!(status, 200);
    assert_eq!(list.matches("href=\"/messages/").count(), 2, "{list}");

    // SUP2's user: its own copy of the IF-909 only.
    let sup2 = p.sign_in("sup2-user").await;
    let (_, html, _) = p.page(Some(&sup2), "/").await;
    assert_eq!(tile(&html, "sent_today"), "0");
    assert_eq!(tile(&html, "received_today"), "1");
    assert_eq!(tile(&html, "dead_lettered_recent"), "0");
    for other in [SUP1, REGS_N, LDSO_P, MS_KEY] {
        assert!(!html.contains(other), "{other} on SUP2's home");
    }

    // Another participant: nothing.
    let ldso = p.sign_in("ldso-user").await;
    let (_, html, _) = p.page(Some(&ldso), "/").await;
    for key in ["sent_today", "received_today", "queues_backlog", "dead_letters"] {
        assert_eq!(tile(&html, key), "0", "{key}");
    }
    for other in [SUP1, SUP2, REGS_N, MS_KEY] {
        assert!(!html.contains(other), "{other} on LDSO's home");
    }

    // A user administrator (who reads no messages) keeps the home it had.
    let user_admin = p.sign_in("sup1-admin").await;
    let (status, html, _) = p.page(Some(&user_admin), "/").await;
    assert_eq!(status, 200);
    assert!(!html.contains("Is everything all right?"));
    assert!(html.contains("<h2>Endpoints</h2>"));

    // The same summary as JSON, with the same rules.
    let (status, body) = p.api(Auth::Key(&p.key(SUP1)), Method::GET, "/api/v1/home", None).await;
    assert_eq!(status, 200, "{body}");
    let sent = body["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "sent_today")
        .unwrap();
    assert_eq!(sent["count"], 2);
    assert!(!body.to_string().contains(SUP2));
    let (status, body) = p.api(Auth::Session(&admin), Method::GET, "/api/v1/home", None).await;
    assert_eq!((status, body["operator"].as_bool()), (200, Some(true)));
    let (status, _) = p
        .api(Auth::Session(&user_admin), Method::GET, "/api/v1/home", None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = p.api(Auth::None, Method::GET, "/api/v1/home", None).await;
    assert_eq!(status, 401);
}

both_stores!(each_home_shows_its_viewer_only_its_own);
