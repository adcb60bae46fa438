//! The sender report over HTTP on both stores: for its page, its JSON and its CSV, who
//! gets what — the sender (its user and key), its DCP, a recipient, another participant,
//! operator staff and nobody signed in — checked on the bodies sent; a bad parameter is a
//! 400 naming the field on the page and the API alike.

use dip_admin::accounts::SessionPolicy;
use dip_reporting::analytics::Sink;
use dip_reporting::pump::{Pump, PumpConfig};
use dip_testkit::{DCP, Db, LDSO_P, REGS_N, SUP1, SUP2, both_stores, if031_from, set};
use reqwest::Method;
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::{Value, json};

use crate::portal::{Auth, Portal, Viewer};

async fn csv(p: &Portal, viewer: &Viewer<'_>, query: &str) -> (u16, String) {
    p.text(viewer.auth(), &format!("/api/v1/audit/sender-report.csv?{query}"))
        .await
}

/// An IF-031 the DCP sends for SUP2.
fn for_sup2(reference: &str) -> Value {
    let mut it = if031_from(SUP2, reference, &[REGS_N]);
    set(&mut it, "/payload/CommonBlock/S1/DIPConnectionProviderID", json!(DCP));
    it
}

async fn each_viewer_gets_only_the_senders_it_may_see(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    // SUP2's traffic, sent by its DCP: two accepted, one refused for an unknown event code.
    let mut refused = for_sup2("sr-3");
    set(&mut refused, "/payload/CommonBlock/S0/eventCode", json!("Bogus"));
    let (status, body) = p
        .api(
            Auth::Key(&p.key(DCP)),
            Method::POST,
            "/api/v1/messages",
            Some(json!([for_sup2("sr-1"), for_sup2("sr-2"), refused])),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let mut pump = Pump::new(p.store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}

    let (sup2, sup1, dcp, ldso, auditor, ua) = (
        p.sign_in("sup2-user").await,
        p.sign_in("sup1-user").await,
        p.sign_in("dcp-user").await,
        p.sign_in("ldso-user").await,
        p.sign_in("op-auditor").await,
        p.sign_in("sup1-admin").await,
    );
    let query = format!("sender={SUP2}");
    // (viewer, name, sees SUP2's report)
    let cases: Vec<(Viewer<'_>, &str, bool)> = vec![
        (Viewer::User(&sup2), "sender", true),
        (Viewer::Key(p.key(SUP2)), "sender's key", true),
        (Viewer::User(&dcp), "its DCP", true),
        (Viewer::Key(p.key(DCP)), "its DCP's key", true),
        (Viewer::Key(p.key(REGS_N)), "the recipient's key", false),
        (Viewer::User(&sup1), "another participant", false),
        (Viewer::User(&ldso), "yet another participant", false),
        (Viewer::User(&auditor), "operator staff", true),
        (Viewer::Key(p.operator_key()), "an operator key", true),
        (Viewer::Nobody, "nobody", false),
    ];
    for (viewer, name, sees) in &cases {
        let path = format!("/api/v1/audit/sender-report?{query}");
        let (json_status, report) = p.api(viewer.auth(), Method::GET, &path, None).await;
        let (csv_status, csv_body) = csv(&p, viewer, &query).await;
        if let Viewer::Nobody = viewer {
            assert_eq!((json_status, csv_status), (401, 401), "{name}");
            let (status, _, location) = p.page(None, &format!("/reports/senders?{query}")).await;
            assert_eq!(status, 302, "{name}");
            assert!(location.unwrap().starts_with("/sign-in"), "{name}");
            continue;
        }
        let page = match viewer {
            Viewer::User(s) => Some(p.page(Some(s), &format!("/reports/senders?{query}")).await),
            _ => None,
        };
        if !sees {
            assert_eq!((json_status, csv_status), (404, 404), "{name}: {report}");
            for body in [report.to_string(), csv_body] {
                assert!(
                    !body.contains("IF-031") && !body.contains("UNKNOWN_EVENT_CODE"),
                    "{name}: {body}"
                );
            }
            if let Some((status, html, _)) = page {
                assert_eq!(status, 404, "{name}");
                assert!(
                    !html.contains("sender-report\"") && !html.contains("UNKNOWN_EVENT_CODE"),
                    "{name}"
                );
            }
            continue;
        }
        assert_eq!((json_status, csv_status), (200, 200), "{name}: {report}");
        assert_eq!(report["sender"], SUP2, "{name}");
        let line = &report["channels"][0];
        assert_eq!(line["interface_id"], "IF-031", "{name}");
        assert_eq!((&line["accepted"], &line["rejected"]), (&json!(2), &json!(1)), "{name}");
        assert_eq!(
            line["errors"],
            json!([{"code": "UNKNOWN_EVENT_CODE", "count": 1}]),
            "{name}"
        );
        assert_eq!(line["queued"], json!({"copies": 2, "messages": 2}), "{name}");
        assert_eq!(csv_body.lines().count(), 3, "{name}: {csv_body}");
        assert!(
            csv_body
                .lines()
                .nth(1)
                .unwrap()
                .contains(",IF-031,Supplier Service Appointment Request,2,1,UNKNOWN_EVENT_CODE=1,2,2,"),
            "{name}: {csv_body}"
        );
        if let Some((status, html, _)) = page {
            assert_eq!(status, 200, "{name}");
            assert!(html.contains("id=\"sender-report\""), "{name}");
            assert!(html.contains("UNKNOWN_EVENT_CODE"), "{name}");
            // Each count opens the message search behind it.
            let drill = format!("/messages?sender={SUP2}&amp;channel=IF-031&amp;state=queued");
            assert!(html.contains(&drill), "{name}: no {drill}");
            assert!(
                html.contains("/api/v1/audit/sender-report.csv?sender=1000000002"),
                "{name}"
            );
        }
    }

    // A participant's users and keys get their own participant by default.
    let (status, own) = p
        .api(Auth::Session(&sup2), Method::GET, "/api/v1/audit/sender-report", None)
        .await;
    assert_eq!((status, &own["sender"]), (200, &json!(SUP2)), "{own}");
    let (status, html, _) = p.page(Some(&sup2), "/reports/senders").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"sender-report\""));
    let (status, own) = p
        .api(
            Auth::Key(&p.key(LDSO_P)),
            Method::GET,
            "/api/v1/audit/sender-report",
            None,
        )
        .await;
    assert_eq!(
        (status, &own["sender"], &own["channels"]),
        (200, &json!(LDSO_P), &json!([]))
    );
    // Operator staff choose: the page asks, the API says which field is missing.
    let (status, html, _) = p.page(Some(&auditor), "/reports/senders").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Choose a sender") && !html.contains("id=\"sender-report\""),
        "{html}"
    );
    // A participant's user administrator alone may not read messages.
    assert_eq!(
        p.api(Auth::Session(&ua), Method::GET, "/api/v1/audit/sender-report", None)
            .await
            .0,
        403
    );
    assert_eq!(p.page(Some(&ua), "/reports/senders").await.0, 403);
}

async fn bad_parameters_are_named_on_the_page_and_the_api(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let auditor = p.sign_in("op-auditor").await;
    for (query, field, message) in [
        ("", "sender", "Choose a sender: its DIP ID."),
        (
            "sender=1999999999",
            "sender",
            "No participant has the DIP ID 1999999999.",
        ),
        (
            "sender=1000000001&from=yesterday",
            "from",
            "Give a UTC time as YYYY-MM-DD or YYYY-MM-DDTHH:MM.",
        ),
        (
            "sender=1000000001&from=2026-02-01&to=2026-01-01",
            "to",
            "The end must be after the start.",
        ),
        (
            "sender=1000000001&channel=IF-999",
            "channel",
            "There is no channel IF-999.",
        ),
    ] {
        let path = format!("/api/v1/audit/sender-report?{query}");
        let (status, body) = p.api(Auth::Session(&auditor), Method::GET, &path, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["fields"][field], message, "{query}: {body}");
        let (status, _) = csv(&p, &Viewer::User(&auditor), query).await;
        assert_eq!(status, 400, "{query}");
        if query.is_empty() {
            continue; // The page asks for a sender instead.
        }
        let res = p
            .http
            .get(format!("{}/reports/senders?{query}", p.base))
            .header(COOKIE, &auditor.cookie)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let html = res.text().await.unwrap();
        assert!(html.contains(message), "{query}: {html}");
    }
    // The participant's own view: its report, known or not, is not another's to probe.
    let sup1 = p.sign_in("sup1-user").await;
    let (status, _) = p
        .api(
            Auth::Session(&sup1),
            Method::GET,
            "/api/v1/audit/sender-report?sender=1999999999",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = p
        .api(
            Auth::Key(&p.key(SUP1)),
            Method::GET,
            "/api/v1/audit/sender-report",
            None,
        )
        .await;
    assert_eq!((status, &body["sender"]), (200, &json!(SUP1)), "{body}");
}

both_stores!(
    each_viewer_gets_only_the_senders_it_may_see,
    bad_parameters_are_named_on_the_page_and_the_api,
);
