//! The operations pages over HTTP on both stores: queue health and dead letters show each
//! viewer only its own queues (a DCP those of the participants that nominated it,
//! operator staff all); a redrive is counted and confirmed before it is done, only by
//! users who handle messages, within their own queues, and audited; a replay is
//! previewed without queuing anything, started after confirmation, followed to the end
//! and listed with who asked.

use dip_admin::accounts::SessionPolicy;
use dip_testkit::{Db, MS_KEY, SUP1, SUP2, both_stores, if909};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, ORIGIN};
use serde_json::json;

use broker_core::store::{EntryState, Settlement};

use crate::portal::{Auth, Portal, Session};

/// Sends one IF-909 (to SUP1, SUP2, SUP3 and REGS_N) and dead-letters SUP1's and SUP2's
/// copies; the transaction id and the two dead letters as `queue:position`.
async fn dead_letters(p: &Portal, reference: &str) -> (String, String, String) {
    let (status, body) = p
        .api(
            Auth::Key(&p.key(MS_KEY)),
            Method::POST,
            "/api/v1/messages",
            Some(json!([if909(reference)])),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let tx = body["results"][0]["transactionID"].as_str().unwrap().to_owned();
    let copies = p.store.message_deliveries(&tx).await.unwrap();
    let mut named = Vec::new();
    for dip in [SUP1, SUP2] {
        let e = copies.iter().find(|e| e.recipient_dip_id == dip).expect("copy");
        p.store
            .settle(
                &[Settlement {
                    queue_id: e.queue_id.clone(),
                    seq: e.seq,
                    state: EntryState::Dead,
                    at: broker_core::clock::now_micros(),
                    outcome: "stale".into(),
                    duration_us: 0,
                    call: None,
                }],
                &[],
            )
            .await
            .unwrap();
        named.push(format!("{}:{}", e.queue_id, e.seq));
    }
    (tx, named.remove(0), named.remove(0))
}

/// A form posted by a browser without JavaScript: the status and where it sends it.
async fn post_form(p: &Portal, s: &Session, name: &str, form: &[(&str, &str)]) -> (u16, Option<String>) {
    let res = p
        .http
        .post(format!("{}/fn/{name}", p.base))
        .header(COOKIE, &s.cookie)
        .header(ORIGIN, &p.origin)
        .header("referer", format!("{}/ops/dead-letters", p.base))
        .header(ACCEPT, "text/html")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{}={}", dip_admin::types::encode(k), dip_admin::types::encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    (res.status().as_u16(), location)
}

async fn state_of(p: &Portal, queue_position: &str) -> String {
    let (queue, seq) = queue_position.rsplit_once(':').unwrap();
    let seq: i64 = seq.parse().unwrap();
    let tx_entries = p.store.pending_entries(queue, 0, 1000).await.unwrap();
    if tx_entries.iter().any(|e| e.seq == seq) {
        return "pending".into();
    }
    let dead = p
        .store
        .dead_letters(&broker_core::store::DeadLetterFilter {
            queue_id: Some(queue.into()),
            seq: Some(seq),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    if dead.is_empty() {
        "not dead".into()
    } else {
        "dead".into()
    }
}

async fn queues_and_dead_letters_show_each_viewer_only_its_own(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let (tx, sup1_dead, sup2_dead) = dead_letters(&p, "ops-visibility").await;
    let sup1_queue = sup1_dead.rsplit_once(':').unwrap().0.to_owned();
    let sup2_queue = sup2_dead.rsplit_once(':').unwrap().0.to_owned();
    // (user, sees SUP1's, sees SUP2's, may redrive)
    let cases = [
        ("sup1-user", true, false, true),
        ("sup1-auditor", true, false, false),
        ("dcp-user", false, true, true),
        ("ldso-user", false, false, true),
        ("op-auditor", true, true, false),
        ("admin", true, true, true),
    ];
    for (user, sees1, sees2, may) in cases {
        let s = p.sign_in(user).await;
        let (status, html, _) = p.page(Some(&s), "/ops/dead-letters").await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(html.contains(&sup1_queue), sees1, "{user}: SUP1's dead letter");
        assert_eq!(html.contains(&sup2_queue), sees2, "{user}: SUP2's dead letter");
        assert_eq!(html.contains(&tx), sees1 || sees2, "{user}");
        assert_eq!(
            html.contains("Redrive…"),
            may && (sees1 || sees2),
            "{user}: redrive links"
        );
        let (status, html, _) = p.page(Some(&s), "/ops/queues").await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(html.contains(&sup1_queue), sees1, "{user}: SUP1's queue");
        assert_eq!(html.contains(&sup2_queue), sees2, "{user}: SUP2's queue");
    }
    // A filter, in the URL: only SUP2's, for the operator.
    let admin = p.sign_in("admin").await;
    let (_, html, _) = p
        .page(Some(&admin), &format!("/ops/dead-letters?recipient={SUP2}"))
        .await;
    assert!(html.contains(&sup2_queue) && !html.contains(&sup1_queue));
    let (_, html, _) = p.page(Some(&admin), "/ops/queues?state=failing").await;
    assert!(html.contains("No queues match."), "no queue is failing");
    // A bad time is a clear error.
    let (status, html, _) = p.page(Some(&admin), "/ops/dead-letters?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(html.contains("give a date and time"), "{html}");
    // Nobody signed in goes to sign-in; a user administrator alone reads no queues.
    let (status, _, location) = p.page(None, "/ops/queues").await;
    assert_eq!((status, location.as_deref()), (302, Some("/sign-in?next=/ops/queues")));
    let ua = p.sign_in("sup1-admin").await;
    assert_eq!(p.page(Some(&ua), "/ops/dead-letters").await.0, 403);
}

async fn a_redrive_is_counted_confirmed_and_kept_to_the_viewers_queues(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let (_, sup1_dead, sup2_dead) = dead_letters(&p, "ops-redrive").await;
    let sup1 = p.sign_in("sup1-user").await;
    // The confirmation counts what would go, and changes nothing.
    let (status, html, _) = p.page(Some(&sup1), "/ops/dead-letters?redrive=all").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("1 dead letter will be queued again"),
        "only its own: {html}"
    );
    assert_eq!(state_of(&p, &sup1_dead).await, "dead");
    // Without the box ticked, nothing happens.
    let (status, location) = post_form(&p, &sup1, "redrive_dead_letters", &[("filters[redrive]", "all")]).await;
    assert_eq!(status, 302);
    assert!(location.as_deref().is_some_and(|l| l.contains("__err")), "{location:?}");
    assert_eq!(state_of(&p, &sup1_dead).await, "dead");
    // Another participant's dead letter, named: not found, and left alone.
    let (_, location) = post_form(
        &p,
        &sup1,
        "redrive_dead_letters",
        &[("filters[redrive]", &sup2_dead), ("confirm", "yes")],
    )
    .await;
    assert!(location.as_deref().is_some_and(|l| l.contains("__err")), "{location:?}");
    assert_eq!(state_of(&p, &sup2_dead).await, "dead");
    // A reader who does not handle messages may not redrive.
    let auditor = p.sign_in("sup1-auditor").await;
    let (_, location) = post_form(
        &p,
        &auditor,
        "redrive_dead_letters",
        &[("filters[redrive]", "all"), ("confirm", "yes")],
    )
    .await;
    assert!(location.as_deref().is_some_and(|l| l.contains("__err")), "{location:?}");
    assert_eq!(state_of(&p, &sup1_dead).await, "dead");
    // Confirmed: its own goes, and the list says so.
    let (status, location) = post_form(
        &p,
        &sup1,
        "redrive_dead_letters",
        &[("filters[redrive]", "all"), ("confirm", "yes")],
    )
    .await;
    assert_eq!((status, location.as_deref()), (302, Some("/ops/dead-letters?done=1")));
    assert_eq!(state_of(&p, &sup1_dead).await, "not dead");
    assert_eq!(state_of(&p, &sup2_dead).await, "dead");
    let (_, html, _) = p.page(Some(&sup1), "/ops/dead-letters?done=1").await;
    assert!(html.contains("1 dead letter(s) queued again."));
    // The audit log names who did it.
    let (audit, _) = p
        .store
        .audit_log(&broker_core::store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "dead_letter.redrive" && e.actor == "sup1-user"),
        "{audit:?}"
    );
    // One by name, by the operator: its dry run counts it, then it goes.
    let admin = p.sign_in("admin").await;
    let (_, html, _) = p
        .page(
            Some(&admin),
            &format!("/ops/dead-letters?redrive={}", dip_admin::types::encode(&sup2_dead)),
        )
        .await;
    assert!(html.contains("1 dead letter will be queued again"), "{html}");
    let (_, location) = post_form(
        &p,
        &admin,
        "redrive_dead_letters",
        &[("filters[redrive]", &sup2_dead), ("confirm", "yes")],
    )
    .await;
    assert_eq!(location.as_deref(), Some("/ops/dead-letters?done=1"));
    assert_eq!(state_of(&p, &sup2_dead).await, "not dead");
}

async fn a_replay_is_previewed_confirmed_followed_and_listed(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let from = before.format("%Y-%m-%dT%H:%M:%S").to_string();
    for i in 0..3 {
        let (status, body) = p
            .api(
                Auth::Key(&p.key(MS_KEY)),
                Method::POST,
                "/api/v1/messages",
                Some(json!([if909(&format!("ops-replay-{i}"))])),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let sup1 = p.sign_in("sup1-user").await;
    // The preview: three messages, which queue, first and last; nothing queued.
    let url = format!("/replays?channel=IF-909&recipient={SUP1}&from={from}&preview=1");
    let (status, html, _) = p.page(Some(&sup1), &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"<dd id="preview-count">3</dd>"#), "{html}");
    let replays_before = p.store.replays(100).await.unwrap().len();
    assert_eq!(replays_before, 0, "a preview records nothing");
    // Another participant's recipient cannot be previewed.
    let ldso = p.sign_in("ldso-user").await;
    let (status, html, _) = p
        .page(
            Some(&ldso),
            &format!("/replays?channel=IF-909&recipient={SUP1}&from={from}&preview=1"),
        )
        .await;
    assert_eq!(status, 403, "{html}");
    // Confirmed: started, and the browser goes to its progress page.
    let (status, location) = post_form(
        &p,
        &sup1,
        "start_replay",
        &[
            ("form[channel]", "IF-909"),
            ("form[recipient]", SUP1),
            ("form[from]", &from),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(location.starts_with("/replays/"), "{location}");
    let replays = p.store.replays(100).await.unwrap();
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0].requested_by, format!("user:sup1-user ({SUP1})"));
    assert_eq!(replays[0].messages, 3);
    let progress = p.store.replay_progress(&replays[0].id).await.unwrap();
    assert_eq!(progress.total(), 3, "{progress:?}");
    let (status, html, _) = p.page(Some(&sup1), &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("0 of 3 settled"), "{html}");
    assert!(html.contains(r#"http-equiv="refresh""#), "refreshes while running");
    // The history lists it with who asked; another participant sees neither.
    let (_, html, _) = p.page(Some(&sup1), "/replays").await;
    assert!(html.contains(&format!("user:sup1-user ({SUP1})")), "{html}");
    let (_, html, _) = p.page(Some(&ldso), "/replays").await;
    assert!(html.contains("No replays yet."), "{html}");
    assert_eq!(p.page(Some(&ldso), &location).await.0, 404);
    // A reader who does not handle messages sees no form and cannot start one.
    let auditor = p.sign_in("sup1-auditor").await;
    let (_, html, _) = p.page(Some(&auditor), "/replays").await;
    assert!(!html.contains(r#"id="replay-form""#));
    let (_, location) = post_form(
        &p,
        &auditor,
        "start_replay",
        &[("form[channel]", "IF-909"), ("form[from]", &from), ("confirm", "yes")],
    )
    .await;
    assert!(location.as_deref().is_some_and(|l| l.contains("__err")), "{location:?}");
    assert_eq!(p.store.replays(100).await.unwrap().len(), 1);
}

both_stores!(
    queues_and_dead_letters_show_each_viewer_only_its_own,
    a_redrive_is_counted_confirmed_and_kept_to_the_viewers_queues,
    a_replay_is_previewed_confirmed_followed_and_listed,
);
