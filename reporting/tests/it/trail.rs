//! The message audit trail on both stores: who sees which messages, copies, routing lines
//! and payload fields; every search filter; a trace with every attempt, a replay copy and
//! its state.

use std::time::{Duration, Instant};

use broker_core::mock_recipient::{MockRecipient, Reply};
use broker_core::model::Principal;
use broker_core::replay::{ReplayRequest, replay, requested_by};
use dip_admin::types::{Actor, AppError, ListQuery, PortalRole};

use crate::{actor, list};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::trail::{self, MASKED};
use dip_reporting::trail_views::{MessageRow, Trace};
use dip_testkit::*;
use serde_json::{Value, json};

async fn ids(s: &TestServer, who: &Actor, filters: &[(&str, &str)]) -> Vec<String> {
    let page = trail::search(&s.broker, who, &list(filters)).await.expect("search");
    page.rows.into_iter().map(|m| m.transaction_id).collect()
}

async fn rows(s: &TestServer, who: &Actor) -> Vec<MessageRow> {
    trail::search(&s.broker, who, &list(&[])).await.expect("search").rows
}

fn recipients(m: &MessageRow) -> Vec<&str> {
    m.copies.iter().map(|c| c.recipient_dip_id.as_str()).collect()
}

async fn send(s: &TestServer, sender: &str, item: Value) -> String {
    let (status, body) = s.post(&s.key(sender), &json!([item])).await;
    assert_eq!(status, 202, "{body}");
    body["results"][0]["transactionID"].as_str().unwrap().to_owned()
}

/// Waits until the first copy of `tx` is delivered.
async fn delivered(s: &TestServer, tx: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.db.store.message_deliveries(tx).await.unwrap()[0].state != "delivered" {
        assert!(Instant::now() < deadline, "not delivered in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn trace(s: &TestServer, who: &Actor, tx: &str) -> Result<Trace, AppError> {
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    trail::trace(&s.broker, &analytics, who, tx).await
}

/// The routing decision's recipients as shown.
fn routed_to(t: &Trace) -> Vec<String> {
    let routing: Value = serde_json::from_str(&t.routing).unwrap();
    routing["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dipID"].as_str().unwrap().to_owned())
        .collect()
}

async fn who_sees_what(db: Db) {
    let s = TestServer::start(db).await;
    // IF-909 from MS_KEY: REGS_N targeted, every supplier always (three fields hidden
    // from suppliers). IF-031 from SUP1 to REGS_N.
    let notice = send(&s, MS_KEY, if909("we-1")).await;
    let request = send(&s, SUP1, if031("t-1")).await;

    let operator = actor(None, PortalRole::Auditor);
    let sender = actor(Some(MS_KEY), PortalRole::MessageUser);
    let sup1 = actor(Some(SUP1), PortalRole::Analyst);
    let dcp = actor(Some(DCP), PortalRole::MessageUser); // nominated by SUP2
    let stranger = actor(Some(LDSO_P), PortalRole::Auditor);
    let user_admin = actor(Some(SUP1), PortalRole::UserAdmin);

    // Search: newest first; each viewer sees its messages and, of a message it only
    // received, its own copy.
    assert_eq!(ids(&s, &operator, &[]).await, [request.clone(), notice.clone()]);
    let seen = rows(&s, &operator).await;
    // Copies are listed by recipient DIP ID.
    let all = vec![SUP1, SUP2, SUP3, REGS_N];
    assert_eq!(recipients(&seen[1]), all);
    let seen = rows(&s, &sender).await;
    assert_eq!((seen.len(), recipients(&seen[0])), (1, all.clone()));
    let seen = rows(&s, &sup1).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(recipients(&seen[0]), [REGS_N], "SUP1 sent the IF-031: every copy");
    assert_eq!(recipients(&seen[1]), [SUP1], "SUP1 received the IF-909: its own copy");
    let seen = rows(&s, &dcp).await;
    assert_eq!(
        (seen.len(), recipients(&seen[0])),
        (1, vec![SUP2]),
        "a DCP sees the copies of those that nominated it"
    );
    assert!(rows(&s, &stranger).await.is_empty());
    assert_eq!(
        trail::search(&s.broker, &user_admin, &list(&[])).await,
        Err(AppError::Forbidden)
    );

    // Traces: the sender sees the whole message as sent; a recipient its own copy, its
    // own routing line and the payload with what its role may not see masked.
    let t = trace(&s, &sender, &notice).await.unwrap();
    assert!(t.whole);
    assert_eq!(t.copies.len(), 4);
    assert_eq!(routed_to(&t), [SUP1, SUP2, SUP3, REGS_N]);
    let payload: Value = serde_json::from_str(t.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["CustomBlock"], if909_block());
    assert_eq!(payload["CommonBlock"]["D0"]["transactionID"], json!(notice));

    let why: Vec<(&str, &str)> = t
        .routed
        .iter()
        .map(|r| (r.recipient.as_str(), r.reasons[0].as_str()))
        .collect();
    assert_eq!(why[0], (SUP1, "always, every holder of the role as SUP"), "{why:?}");
    assert_eq!(why[3], (REGS_N, "named by the sender as REGS"), "{why:?}");
    assert_eq!(t.routed[0].hidden.len(), 3, "three fields hidden from suppliers");

    let t = trace(&s, &sup1, &notice).await.unwrap();
    assert!(!t.whole);
    assert_eq!(
        t.routed.iter().map(|r| r.recipient.as_str()).collect::<Vec<_>>(),
        [SUP1]
    );
    assert!(t.unresolved.is_empty());
    assert_eq!(
        t.copies
            .iter()
            .map(|c| c.copy.recipient_dip_id.as_str())
            .collect::<Vec<_>>(),
        [SUP1]
    );
    assert_eq!(routed_to(&t), [SUP1]);
    let payload: Value = serde_json::from_str(t.payload.as_deref().unwrap()).unwrap();
    for field in [
        "meteringServiceId",
        "meteringServiceEffectiveFromDate",
        "appointmentCode",
    ] {
        assert_eq!(payload["CustomBlock"][field], MASKED, "{field}");
    }
    assert_eq!(payload["CustomBlock"]["supplierId"], "AURA");
    // The masked values are nowhere in what the recipient receives; nor, outside the
    // payload it was delivered (whose A0 names the recipients), are other recipients.
    let whole = serde_json::to_string(&t).unwrap();
    for secret in ["KYST", "2025-01-01T00:00:00Z"] {
        assert!(!whole.contains(secret), "{secret} in {whole}");
    }
    let outside = serde_json::to_string(&Trace {
        payload: None,
        ..t.clone()
    })
    .unwrap();
    for other in [REGS_N, SUP2, SUP3] {
        assert!(!outside.contains(other), "{other} in {outside}");
    }
    let t = trace(&s, &dcp, &notice).await.unwrap();
    assert_eq!(routed_to(&t), [SUP2]);

    // Anything else is "not found", exactly as an unknown id.
    let missing = trace(&s, &stranger, &notice).await.unwrap_err();
    assert!(matches!(missing, AppError::NotFound(_)), "{missing:?}");
    assert!(matches!(trace(&s, &dcp, &request).await, Err(AppError::NotFound(_))));
    assert!(matches!(
        trace(&s, &operator, "no-such-id").await,
        Err(AppError::NotFound(_))
    ));
    assert_eq!(trace(&s, &user_admin, &notice).await.unwrap_err(), AppError::Forbidden);
    assert!(trace(&s, &operator, &request).await.unwrap().whole);

    // The CSV export has the same rows: one line per visible copy.
    let csv = trail::csv(&trail::export(&s.broker, &sup1, &list(&[])).await.unwrap());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("transaction_id,received_at,sender"));
    assert!(!csv.contains(SUP2) && !csv.contains(SUP3), "{csv}");
}

async fn every_filter_narrows_the_search(db: Db) {
    let s = TestServer::start(db).await;
    let notice = send(&s, MS_KEY, if909("we-1")).await;
    let request = send(&s, SUP1, if031("t-1")).await;
    let op = actor(None, PortalRole::Auditor);
    let both = vec![request.clone(), notice.clone()];
    let correlation =
        s.db.store
            .message(&notice)
            .await
            .unwrap()
            .unwrap()
            .correlation_id
            .unwrap();

    assert_eq!(ids(&s, &op, &[("transaction", &notice)]).await, [notice.as_str()]);
    assert_eq!(ids(&s, &op, &[("reference", "t-1")]).await, [request.as_str()]);
    assert_eq!(ids(&s, &op, &[("correlation", &correlation)]).await, [notice.as_str()]);
    assert_eq!(ids(&s, &op, &[("mpan", MPAN_COS)]).await, [notice.as_str()]);
    assert_eq!(ids(&s, &op, &[("channel", "IF-031")]).await, [request.as_str()]);
    assert_eq!(ids(&s, &op, &[("sender", MS_KEY)]).await, [notice.as_str()]);
    assert_eq!(ids(&s, &op, &[("recipient", SUP3)]).await, [notice.as_str()]);
    assert_eq!(ids(&s, &op, &[("recipient", REGS_N)]).await, both);
    assert_eq!(ids(&s, &op, &[("state", "queued")]).await, both);
    assert_eq!(ids(&s, &op, &[("state", "accepted")]).await, both);
    assert!(ids(&s, &op, &[("state", "delivered")]).await.is_empty());
    assert!(ids(&s, &op, &[("from", "2099-01-01")]).await.is_empty());
    assert_eq!(
        ids(&s, &op, &[("from", "2020-01-01T00:00"), ("to", "2099-01-01")]).await,
        both
    );
    // The search box finds any id.
    for id in [notice.as_str(), "we-1", correlation.as_str(), MPAN_COS] {
        let query = ListQuery {
            q: id.into(),
            page: 1,
            ..Default::default()
        };
        let page = trail::search(&s.broker, &op, &query).await.unwrap();
        assert_eq!(page.rows.len(), 1, "{id}");
        assert_eq!(page.rows[0].transaction_id, notice);
    }
    // Oldest first, and by sender.
    let asc = ListQuery {
        sort: "received".into(),
        desc: false,
        page: 1,
        ..Default::default()
    };
    let page = trail::search(&s.broker, &op, &asc).await.unwrap();
    assert_eq!(page.rows[0].transaction_id, request, "newest first by default");
    let asc = ListQuery { desc: true, ..asc };
    let page = trail::search(&s.broker, &op, &asc).await.unwrap();
    assert_eq!(page.rows[0].transaction_id, notice);
    let by_sender = ListQuery {
        sort: "sender".into(),
        page: 1,
        ..Default::default()
    };
    let page = trail::search(&s.broker, &op, &by_sender).await.unwrap();
    assert_eq!(page.rows[0].sender_dip_id, SUP1);

    // Bad input is a clear error on its field.
    for (field, value) in [("mpan", "123"), ("state", "lost"), ("from", "yesterday")] {
        let e = trail::search(&s.broker, &op, &list(&[(field, value)]))
            .await
            .unwrap_err();
        assert!(e.field_error(field).is_some(), "{field}: {e:?}");
    }
    let e = trail::search(&s.broker, &op, &list(&[("from", "2026-02-01"), ("to", "2026-01-01")]))
        .await
        .unwrap_err();
    assert!(e.field_error("to").is_some(), "{e:?}");
}

async fn a_trace_shows_every_attempt_and_replay_copy(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    sink.script([Reply::Status(503)]);
    s.fast_retries("IF-031").await;
    let tx = send(&s, SUP1, if031("t-attempts")).await;
    delivered(&s, &tx).await;
    let op = actor(None, PortalRole::Auditor);
    let t = trace(&s, &op, &tx).await.unwrap();
    assert_eq!(
        t.receipt.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
        ["received"]
    );
    let copy = &t.copies[0];
    assert_eq!(copy.copy.state, "delivered");
    let kinds: Vec<&str> = copy.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["routed", "failed_attempt", "delivered"]);
    assert_eq!(copy.steps[1].outcome, "HTTP 503");
    assert!(copy.steps[1].duration_ms.is_some() && copy.steps[2].duration_ms.is_some());
    // The retry waits at least half the initial backoff (50 ms, jittered over its upper half).
    assert!(copy.steps[2].after_ms >= 24.0, "the retry waited: {:?}", copy.steps);
    assert_eq!(ids(&s, &op, &[("state", "delivered")]).await, [tx.as_str()]);

    // The recipient replays it: the copy shows in the original's trace and the search.
    let regs = Principal::Participant {
        dip_id: REGS_N.to_owned(),
    };
    let request = ReplayRequest {
        interface_id: "IF-031".into(),
        start_transaction_id: Some(tx.clone()),
        from_time: None,
        end_transaction_id: Some(tx.clone()),
        to_time: None,
        recipient_dip_id: None,
        dry_run: false,
    };
    replay(&s.broker, &regs, &requested_by(&regs), &request)
        .await
        .expect("replay");
    let t = trace(&s, &op, &tx).await.unwrap();
    assert_eq!(t.copies.len(), 2, "{:?}", t.copies);
    let copy = t
        .copies
        .iter()
        .find(|c| c.copy.replay_id.is_some())
        .expect("replay copy");
    assert!(copy.transaction_id.starts_with("R-"));
    assert_eq!(copy.steps[0].kind, "replayed");
    assert_eq!(ids(&s, &op, &[("state", "replayed")]).await, [tx.as_str()]);
    let sup1 = actor(Some(SUP1), PortalRole::MessageUser);
    assert_eq!(
        ids(&s, &sup1, &[("state", "replayed")]).await,
        [tx.as_str()],
        "the sender sees every copy"
    );
    let stranger = actor(Some(SUP2), PortalRole::MessageUser);
    assert!(ids(&s, &stranger, &[("state", "replayed")]).await.is_empty());
}

async fn a_workflow_is_a_sequence_of_its_messages(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s.post(&s.key(SUP1), &json!([if031("wf-1")])).await;
    assert_eq!(status, 202, "{body}");
    let correlation = body["results"][0]["initialCorrelationID"].as_str().unwrap().to_owned();
    send(&s, REGS_N, if032("wf-2", Some(&correlation))).await;
    send(&s, SUP1, if031("other-workflow")).await;

    let op = actor(None, PortalRole::Auditor);
    let w = trail::workflow(&s.broker, &op, &correlation).await.unwrap();
    assert_eq!(w.messages.len(), 2);
    assert_eq!(
        w.messages.iter().map(|m| m.interface_id.as_str()).collect::<Vec<_>>(),
        ["IF-031", "IF-032"]
    );
    assert_eq!(w.lanes.len(), 2);
    assert!(
        w.lanes[0].ends_with(&format!("({SUP1})")) && w.lanes[1].ends_with(&format!("({REGS_N})")),
        "{:?}",
        w.lanes
    );
    assert_eq!(w.waiting, 2, "nothing delivers in this test: both copies wait");
    assert!(
        w.svg.starts_with("<svg role=\"img\"") && w.svg.contains("IF-032"),
        "{}",
        w.svg
    );
    assert!(!w.truncated);
    // Both parties see it; anyone else finds nothing.
    let sup1 = actor(Some(SUP1), PortalRole::MessageUser);
    assert_eq!(
        trail::workflow(&s.broker, &sup1, &correlation)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    let regs = actor(Some(REGS_N), PortalRole::MessageUser);
    assert_eq!(
        trail::workflow(&s.broker, &regs, &correlation)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    let sup2 = actor(Some(SUP2), PortalRole::MessageUser);
    assert!(matches!(
        trail::workflow(&s.broker, &sup2, &correlation).await,
        Err(AppError::NotFound(_))
    ));
}

async fn an_mpan_report_shows_each_participant_its_appointed_periods(db: Db) {
    let s = TestServer::start(db).await;
    // MPAN_COS: SUP1 supplies from 2024-04-01, SUP2 from 2024-10-15; IF-909 about it
    // goes to REGS_N and every supplier today.
    let notice = send(&s, MS_KEY, if909("we-mpan")).await;
    let all = list(&[]);
    let op = actor(None, PortalRole::Auditor);
    let r = trail::mpan_report(&s.broker, &op, MPAN_COS, &all).await.unwrap();
    assert_eq!(r.appointments.len(), 6, "{:?}", r.appointments);
    let sup = r.appointments.iter().filter(|a| a.role == "SUP").collect::<Vec<_>>();
    assert_eq!(
        (sup[0].effective_from.as_str(), sup[0].effective_to.as_deref()),
        ("2024-04-01", Some("2024-10-15"))
    );
    assert!(sup[1].participant.as_deref().unwrap().ends_with(&format!("({SUP2})")));
    assert_eq!(r.messages.rows.len(), 1);
    assert_eq!(r.messages.rows[0].transaction_id, notice);
    assert_eq!(r.periods, None);

    // SUP2, supplier now: its own copy of today's message.
    let sup2 = actor(Some(SUP2), PortalRole::MessageUser);
    let r = trail::mpan_report(&s.broker, &sup2, MPAN_COS, &all).await.unwrap();
    assert_eq!(r.periods.as_deref(), Some("from 2024-10-15"));
    assert_eq!(r.messages.rows.len(), 1);
    assert_eq!(recipients(&r.messages.rows[0]), [SUP2]);
    assert_eq!(r.appointments.len(), 6, "the history is shown whole");
    // SUP1 was the supplier until 2024-10-15: the history, but no message of today.
    let sup1 = actor(Some(SUP1), PortalRole::MessageUser);
    let r = trail::mpan_report(&s.broker, &sup1, MPAN_COS, &all).await.unwrap();
    assert_eq!(r.periods.as_deref(), Some("2024-04-01 to 2024-10-15"));
    assert!(r.messages.rows.is_empty());
    // Never appointed, or no MPAN at all: not found.
    let sup3 = actor(Some(SUP3), PortalRole::MessageUser);
    assert!(matches!(
        trail::mpan_report(&s.broker, &sup3, MPAN_COS, &all).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        trail::mpan_report(&s.broker, &op, "16000", &all).await,
        Err(AppError::NotFound(_))
    ));
}

async fn a_redriven_dead_letter_shows_both_entries(db: Db) {
    let s = TestServer::start(db).await;
    let tx = send(&s, SUP1, if031("t-dead")).await;
    let entry = s.db.store.message_deliveries(&tx).await.unwrap().remove(0);
    let dead = broker_core::store::Settlement {
        queue_id: entry.queue_id.clone(),
        seq: entry.seq,
        state: broker_core::store::EntryState::Dead,
        at: broker_core::clock::now_micros(),
        outcome: "stale".into(),
        duration_us: 0,
        call: None,
    };
    s.db.store.settle(&[dead], &[]).await.unwrap();
    let op = actor(None, PortalRole::Auditor);
    assert_eq!(ids(&s, &op, &[("state", "dead_lettered")]).await, [tx.as_str()]);
    s.db.store
        .redrive(&[(entry.queue_id.clone(), entry.seq)], broker_core::clock::now_micros())
        .await
        .unwrap();
    let t = trace(&s, &op, &tx).await.unwrap();
    let copies: Vec<(&str, Vec<&str>)> = t
        .copies
        .iter()
        .map(|c| (c.copy.state.as_str(), c.steps.iter().map(|s| s.kind.as_str()).collect()))
        .collect();
    assert_eq!(
        copies,
        [
            ("redriven", vec!["routed", "dead_lettered", "redriven"]),
            ("queued", vec![])
        ],
        "the dead entry ends at its redrive; the new one waits"
    );
    assert!(ids(&s, &op, &[("state", "dead_lettered")]).await.is_empty());
    assert_eq!(ids(&s, &op, &[("state", "queued")]).await, [tx.as_str()]);
}

/// A copy its recipient refused links the return-to-sender report the platform sent its
/// sender, for the sender and operator staff (found by correlation id for a workflow
/// message, by the report's reference for one without); the recipient is not shown it.
async fn a_returned_copy_links_its_report(db: Db) {
    let s = TestServer::delivering(db).await;
    let refuse = || {
        Reply::Json(
            400,
            json!({"errors": [{"code": "BAD_DATA", "path": "", "message": "no"}]}),
        )
    };
    let regs = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(regs.url()), &[]).await;
    regs.script([refuse()]);
    let sup = MockRecipient::start(true).await.expect("sink");
    s.endpoint(SUP1, "registration", Some(sup.url()), &["IF-032"]).await;
    sup.script([refuse()]);
    // IF-031 starts a workflow (a correlation id); IF-032 without one has none.
    let cases = [
        (send(&s, SUP1, if031("t-refused")).await, SUP1, REGS_N),
        (send(&s, REGS_N, if032("t-refused-32", None)).await, REGS_N, SUP1),
    ];
    let op = actor(None, PortalRole::Auditor);
    for (tx, sender, recipient) in &cases {
        let deadline = Instant::now() + Duration::from_secs(15);
        while s.db.store.message_deliveries(tx).await.unwrap()[0].state != "returned" {
            assert!(Instant::now() < deadline, "{tx} not returned in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for who in [&op, &actor(Some(sender), PortalRole::MessageUser)] {
            let t = trace(&s, who, tx).await.unwrap();
            let reports = &t.copies[0].reports;
            assert_eq!(reports.len(), 1, "{tx} as {}: {reports:?}", who.name);
            assert_eq!(reports[0].reason, "RECIPIENT_REJECTED");
            // The report is a message to the sender, traceable by it.
            let report = trace(
                &s,
                &actor(Some(sender), PortalRole::MessageUser),
                &reports[0].transaction_id,
            )
            .await
            .unwrap();
            assert_eq!(report.message.interface_id, "IF-990");
        }
        let t = trace(&s, &actor(Some(recipient), PortalRole::MessageUser), tx)
            .await
            .unwrap();
        assert!(t.copies[0].reports.is_empty(), "the recipient is not shown the report");
    }
}

/// A copy that joined its queue behind a message the recipient failed waits for that
/// message's retries (per-recipient FIFO), and its trace says so.
async fn a_copy_queued_behind_a_retried_message_says_so(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    s.fast_retries("IF-031").await;
    // The first message is failed three times: 50+100+200 ms of back-off at least, while
    // the second joins behind it.
    sink.script([Reply::Status(503), Reply::Status(503), Reply::Status(503)]);
    let first = send(&s, SUP1, if031("t-head")).await;
    let second = send(&s, SUP1, if031("t-behind")).await;
    sink.wait_delivered(2, Duration::from_secs(15)).await;
    delivered(&s, &second).await;
    let op = actor(None, PortalRole::Auditor);
    let head = trace(&s, &op, &first).await.unwrap();
    assert_eq!(head.copies[0].queued_behind, None, "the queue was clear");
    let t = trace(&s, &actor(Some(SUP1), PortalRole::MessageUser), &second)
        .await
        .unwrap();
    let behind = t.copies[0].queued_behind.clone().expect("queued behind the first");
    assert_eq!(behind.messages, "1");
    assert_eq!(behind.retried, 1);
    assert_eq!(behind.retry_outcome.as_deref(), Some("HTTP 503"));
    let waited = behind.waited_ms.expect("the first is settled");
    assert!(waited >= 150.0, "it waited for three back-offs: {waited} ms");
    // Its own delivery took one attempt; the wait was the queue's.
    let kinds: Vec<&str> = t.copies[0].steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["routed", "delivered"]);
}

both_stores!(
    a_copy_queued_behind_a_retried_message_says_so,
    a_redriven_dead_letter_shows_both_entries,
    an_mpan_report_shows_each_participant_its_appointed_periods,
    a_workflow_is_a_sequence_of_its_messages,
    who_sees_what,
    every_filter_narrows_the_search,
    a_trace_shows_every_attempt_and_replay_copy,
    a_returned_copy_links_its_report,
);
