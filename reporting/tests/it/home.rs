//! The home page's health summary on both stores, with known answers: today's volumes
//! and the objective for operator staff; a participant's messages sent and received
//! today, returned and dead-lettered ones, its queues, dead letters, certificates and
//! alarms; each viewer only its own (a DCP also those it acts for), and every count the
//! same as the list its link opens.

use broker_core::clock::now_micros;
use broker_core::store::{
    AlarmKind, AlarmRule, AttemptFailure, CertificateRecord, EntryState, QueueHealth, Settlement,
};
use dip_admin::types::{Actor, AppError, ListQuery, PortalRole};

use crate::actor;
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::home::{self, CERTIFICATE_WARN_DAYS};
use dip_reporting::home_views::{HomeSummary, Tone};
use dip_reporting::pump::{Pump, PumpConfig};
use dip_reporting::trail;
use dip_testkit::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000_000;

async fn send(s: &TestServer, sender: &str, item: Value) -> String {
    let (status, body) = s.post(&s.key(sender), &json!([item])).await;
    assert_eq!(status, 202, "{body}");
    body["results"][0]["transactionID"].as_str().unwrap().to_owned()
}

/// Settles the only copy of `tx` as `state`.
async fn settle(s: &TestServer, tx: &str, state: EntryState) {
    let entry = s.db.store.message_deliveries(tx).await.unwrap().remove(0);
    let settlement = Settlement {
        queue_id: entry.queue_id,
        seq: entry.seq,
        state,
        at: now_micros(),
        outcome: "HTTP 422".into(),
        duration_us: 0,
        call: None,
    };
    s.db.store.settle(&[settlement], &[]).await.unwrap();
}

fn certificate(fingerprint: &str, dip_id: &str, days: i64, revoked: bool) -> CertificateRecord {
    let now = now_micros();
    CertificateRecord {
        fingerprint: fingerprint.into(),
        dip_id: dip_id.into(),
        subject: format!("CN={dip_id}"),
        issuer: "CN=Test CA".into(),
        serial: fingerprint.into(),
        not_before: now - 300 * DAY,
        not_after: now + days * DAY,
        environment: "DEV".into(),
        source: "registered".into(),
        pem: String::new(),
        created_at: now,
        revoked_at: revoked.then_some(now),
    }
}

fn alarm(id: &str, owner: Option<&str>, raised: bool) -> AlarmRule {
    let now = now_micros();
    AlarmRule {
        id: id.into(),
        name: format!("rule {id}"),
        kind: AlarmKind::DeadLetters,
        interface_id: String::new(),
        recipient_dip_id: String::new(),
        threshold: 1,
        window_secs: 3600,
        owner_dip_id: owner.map(str::to_owned),
        created_by: "test".into(),
        enabled: true,
        raised_at: raised.then_some(now),
        observed: "1 dead-lettered in the last 1 h".into(),
        evaluated_at: Some(now),
        created_at: now,
    }
}

fn count(h: &HomeSummary, key: &str) -> i64 {
    h.tile(key)
        .unwrap_or_else(|| panic!("no tile {key}: {:?}", h.tiles))
        .count
        .unwrap_or_else(|| panic!("tile {key} is no count"))
}

fn tone(h: &HomeSummary, key: &str) -> Tone {
    h.tile(key).unwrap().tone
}

fn href<'a>(h: &'a HomeSummary, key: &str) -> &'a str {
    &h.tile(key).unwrap().href
}

/// The message search a tile links to, run as `who`: how many messages it lists.
async fn listed(s: &TestServer, who: &Actor, link: &str) -> usize {
    let query = link
        .strip_prefix("/messages?")
        .unwrap_or_else(|| panic!("not a search: {link}"));
    let list = ListQuery {
        page: 1,
        filters: query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        ..Default::default()
    };
    trail::search(&s.broker, who, &list).await.unwrap().total
}

async fn each_viewer_sees_its_own_health(db: Db) {
    let s = TestServer::start(db).await;
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    let now = now_micros();

    // Nothing yet: every count zero, and all right but for the objective with nothing
    // to measure.
    let op = actor(None, PortalRole::Auditor);
    let empty = home::summary(&s.broker, &analytics, &op).await.unwrap();
    assert!(empty.operator);
    assert_eq!(count(&empty, "received_today"), 0);
    assert_eq!(count(&empty, "queues_failing"), 0);
    assert_eq!(empty.verdict, Tone::Ok, "{:?}", empty.tiles);
    assert_eq!(empty.headline, "Everything is all right");

    // Today: the MSS's IF-909 to REGS_N and every supplier; three IF-031 from SUP1 to
    // REGS_N, one returned by it and one dead-lettered in its queue.
    send(&s, MS_KEY, if909("home-1")).await;
    send(&s, SUP1, if031("home-2")).await;
    let returned = send(&s, SUP1, if031("home-3")).await;
    let dead = send(&s, SUP1, if031("home-4")).await;
    settle(&s, &returned, EntryState::Returned).await;
    settle(&s, &dead, EntryState::Dead).await;
    // REGS_N's queue, held by a delivery node, has been failing for ten minutes.
    let regs_queue = s.db.store.message_deliveries(&returned).await.unwrap()[0]
        .queue_id
        .clone();
    let held =
        s.db.store
            .claim_queues("test-node", std::slice::from_ref(&regs_queue), now, now + 60_000_000)
            .await
            .unwrap();
    assert_eq!(held, std::slice::from_ref(&regs_queue));
    let head = s.db.store.pending_entries(&regs_queue, 0, 1).await.unwrap().remove(0);
    s.db.store
        .record_failure(&AttemptFailure {
            queue_id: regs_queue.clone(),
            seq: head.seq,
            at: now - 10 * 60_000_000,
            outcome: "HTTP 503".into(),
            retry_at: now + 60_000_000,
            duration_us: 1_000,
            call: None,
        })
        .await
        .unwrap();
    // Certificates: SUP1's expires in 10 days, LDSO_P's expired 5 days ago, SUP2's lasts,
    // REGS_N's is revoked.
    for c in [
        certificate("aa01", SUP1, 10, false),
        certificate("aa02", LDSO_P, -5, false),
        certificate("aa03", SUP2, 100, false),
        certificate("aa04", REGS_N, 3, true),
    ] {
        s.db.store.put_certificate(&c).await.unwrap();
    }
    // Alarms: a platform rule and SUP2's raised, SUP1's clear.
    for rule in [
        alarm("platform", None, true),
        alarm("sup2", Some(SUP2), true),
        alarm("sup1", Some(SUP1), false),
    ] {
        s.db.store.put_alarm_rule(&rule).await.unwrap();
    }
    // The lifecycle events reach the reports' tables.
    let mut pump = Pump::new(s.db.store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}

    // Operator staff: the platform.
    let h = home::summary(&s.broker, &analytics, &op).await.unwrap();
    assert_eq!(count(&h, "received_today"), 4);
    assert_eq!(count(&h, "delivered_today"), 0);
    assert_eq!(count(&h, "errors_today"), 2, "one returned, one dead-lettered");
    assert_eq!(h.tile("objective").unwrap().value, "none yet");
    assert_eq!(
        (count(&h, "queues_failing"), tone(&h, "queues_failing")),
        (1, Tone::Bad)
    );
    assert_eq!(href(&h, "queues_failing"), "/ops/queues?state=failing");
    assert_eq!((count(&h, "dead_letters"), tone(&h, "dead_letters")), (1, Tone::Warn));
    assert_eq!(href(&h, "dead_letters"), "/ops/dead-letters");
    // Only the queue that needs a look is listed: REGS_N's, failing, with its dead letter.
    let queues: Vec<(&str, &str, i64, Tone)> = h
        .queues
        .iter()
        .map(|q| (q.queue_id.as_str(), q.state.as_str(), q.dead, q.tone))
        .collect();
    assert_eq!(queues, [(regs_queue.as_str(), "failing", 1, Tone::Bad)]);
    assert_eq!(h.queues[0].last_outcome.as_deref(), Some("HTTP 503"));
    assert_eq!(h.queues[0].href, format!("/ops/queues?participant={REGS_N}"));
    // Waiting: 4 IF-909 copies and REGS_N's IF-031 (the others left the queue).
    assert_eq!(count(&h, "queues_backlog"), 5);
    // Certificates about to expire or just expired; not the lasting or the revoked one.
    let certs: Vec<(&str, &str)> = h
        .certificates
        .iter()
        .map(|c| (c.dip_id.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(certs, [(LDSO_P, "expired"), (SUP1, "expiring")]);
    assert_eq!(h.certificates[1].days_left, 9, "10 days less a moment");
    assert_eq!((count(&h, "certificates"), tone(&h, "certificates")), (2, Tone::Bad));
    assert_eq!(h.certificates_href, "/admin/certificates?status=expiring");
    assert_eq!(h.certificate_warn_days, CERTIFICATE_WARN_DAYS);
    let mut raised: Vec<&str> = h.alarms.iter().map(|a| a.scope.as_str()).collect();
    raised.sort();
    assert_eq!(raised, [SUP2, "platform"]);
    assert_eq!((count(&h, "alarms"), tone(&h, "alarms")), (2, Tone::Bad));
    assert_eq!(h.verdict, Tone::Bad);
    assert!(h.headline.ends_with("to act on"), "{}", h.headline);
    assert!(h.volume_svg.starts_with("<svg role=\"img\""), "the chart is drawn");
    assert!(
        h.reports_href.starts_with("/reports?range=custom&from="),
        "{}",
        h.reports_href
    );
    // Staff who may not open the certificates page find the list on the home page.
    let analyst = actor(None, PortalRole::Analyst);
    let h = home::summary(&s.broker, &analytics, &analyst).await.unwrap();
    assert_eq!(h.certificates_href, "#certificates");
    assert_eq!(h.certificates.len(), 2);

    // SUP1's message user: its own participant only.
    let sup1 = actor(Some(SUP1), PortalRole::MessageUser);
    let h = home::summary(&s.broker, &analytics, &sup1).await.unwrap();
    assert!(!h.operator);
    assert_eq!(h.participants_covered, [SUP1]);
    assert_eq!(count(&h, "sent_today"), 3);
    assert_eq!(count(&h, "received_today"), 1, "the IF-909");
    assert_eq!(
        (count(&h, "returned_recent"), tone(&h, "returned_recent")),
        (1, Tone::Warn)
    );
    assert_eq!(count(&h, "dead_lettered_recent"), 1);
    assert_eq!(count(&h, "dead_letters"), 0, "the dead letter is in REGS_N's queue");
    assert_eq!(count(&h, "queues_failing"), 0);
    assert_eq!(href(&h, "queues_failing"), format!("/ops/queues?participant={SUP1}"));
    assert_eq!(count(&h, "queues_backlog"), 1);
    assert_eq!(href(&h, "dead_letters"), format!("/ops/dead-letters?recipient={SUP1}"));
    // Each count is what its link lists.
    let today = h.day.clone();
    assert_eq!(href(&h, "sent_today"), format!("/messages?sender={SUP1}&from={today}"));
    for key in [
        "sent_today",
        "received_today",
        "returned_recent",
        "dead_lettered_recent",
    ] {
        assert_eq!(listed(&s, &sup1, href(&h, key)).await as i64, count(&h, key), "{key}");
    }
    // Its queues, all of them (the demo splits its channels over two).
    let mut queues: Vec<&str> = h.queues.iter().map(|q| q.queue_id.as_str()).collect();
    queues.sort();
    assert_eq!(queues, [format!("{SUP1}/default"), format!("{SUP1}/registration")]);
    assert_eq!(
        h.certificates.iter().map(|c| c.dip_id.as_str()).collect::<Vec<_>>(),
        [SUP1]
    );
    assert!(h.alarms.is_empty(), "its rule is clear; others' are not its own");
    assert!(h.participants.is_empty());
    // No other participant's identity anywhere in what it is sent.
    let whole = serde_json::to_string(&h).unwrap();
    for other in [SUP2, SUP3, REGS_N, LDSO_P, MS_KEY] {
        assert!(!whole.contains(other), "{other} in SUP1's summary: {whole}");
    }

    // REGS_N: the failing queue and the dead letter are its own.
    let regs = actor(Some(REGS_N), PortalRole::Auditor);
    let h = home::summary(&s.broker, &analytics, &regs).await.unwrap();
    assert_eq!((count(&h, "sent_today"), count(&h, "received_today")), (0, 4));
    assert_eq!(
        (count(&h, "queues_failing"), tone(&h, "queues_failing")),
        (1, Tone::Bad)
    );
    assert_eq!(
        href(&h, "queues_failing"),
        format!("/ops/queues?participant={REGS_N}&state=failing")
    );
    assert_eq!(count(&h, "dead_letters"), 1);
    assert_eq!(
        count(&h, "returned_recent"),
        0,
        "it returned a message; it was not returned one"
    );
    assert!(h.certificates.is_empty(), "its only certificate is revoked");

    // A DCP's user: itself and the participants that nominated it, each in a row.
    let dcp = actor(Some(DCP), PortalRole::MessageUser);
    let h = home::summary(&s.broker, &analytics, &dcp).await.unwrap();
    assert_eq!(h.participants_covered, [DCP, SUP2, SDS_O]);
    let rows: Vec<(&str, i64, i64)> = h
        .participants
        .iter()
        .map(|p| (p.dip_id.as_str(), p.sent, p.received))
        .collect();
    assert_eq!(rows, [(DCP, 0, 0), (SUP2, 0, 1), (SDS_O, 0, 0)]);
    assert_eq!(count(&h, "received_today"), 1);
    assert_eq!(href(&h, "received_today"), "#participants");
    assert_eq!(listed(&s, &dcp, &h.participants[1].received_href).await, 1);
    assert_eq!(
        h.certificates.iter().map(|c| c.dip_id.as_str()).collect::<Vec<_>>(),
        [SUP2],
        "the certificates of those it acts for"
    );
    assert!(h.alarms.is_empty(), "SUP2's own rule is SUP2's users'");

    // SUP2's user sees its raised rule; another participant nothing of anyone's.
    let sup2 = actor(Some(SUP2), PortalRole::Analyst);
    let h = home::summary(&s.broker, &analytics, &sup2).await.unwrap();
    assert_eq!((count(&h, "alarms"), h.alarms[0].name.as_str()), (1, "rule sup2"));
    let ldso = actor(Some(LDSO_P), PortalRole::MessageUser);
    let h = home::summary(&s.broker, &analytics, &ldso).await.unwrap();
    for key in [
        "sent_today",
        "received_today",
        "returned_recent",
        "dead_letters",
        "alarms",
    ] {
        assert_eq!(count(&h, key), 0, "{key}");
    }
    assert_eq!(h.certificates[0].status, "expired");

    // A user administrator reads no messages: no summary.
    let user_admin = actor(Some(SUP1), PortalRole::UserAdmin);
    assert_eq!(
        home::summary(&s.broker, &analytics, &user_admin).await.unwrap_err(),
        AppError::Forbidden
    );
    // (The failing state is the store's own rule.)
    assert_eq!(QueueHealth::FAILING_AFTER_MICROS, 5 * 60_000_000);
}

async fn todays_objective_is_the_reports_own(db: Db) {
    let s = TestServer::start(db).await;
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    let a = send(&s, SUP1, if031("obj-1")).await;
    let b = send(&s, SUP1, if031("obj-2")).await;
    // One delivered within 3 s, one 4 s after receipt: half within 3 s, the objective
    // (90 %) missed.
    for (tx, after) in [(&a, 500_000), (&b, 4_000_000)] {
        let m = s.db.store.message(tx).await.unwrap().unwrap();
        let entry = s.db.store.message_deliveries(tx).await.unwrap().remove(0);
        let settlement = Settlement {
            queue_id: entry.queue_id,
            seq: entry.seq,
            state: EntryState::Delivered,
            at: m.received_at + after,
            outcome: "HTTP 200".into(),
            duration_us: 100_000,
            call: None,
        };
        s.db.store.settle(&[settlement], &[]).await.unwrap();
    }
    let mut pump = Pump::new(s.db.store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}

    for who in [actor(None, PortalRole::Analyst), actor(Some(SUP1), PortalRole::Analyst)] {
        let h = home::summary(&s.broker, &analytics, &who).await.unwrap();
        let o = h.objective.as_ref().expect("measured");
        assert_eq!(
            (o.measured, o.within_3s_pct, o.met),
            (2, 50.0, false),
            "{:?}",
            who.dip_id
        );
        assert_eq!(o.max_ms, 4_000.0);
        assert_eq!(h.tile("objective").unwrap().value, "50.0 %");
        assert_eq!(h.tile("objective").unwrap().tone, Tone::Bad);
    }
    let h = home::summary(&s.broker, &analytics, &actor(None, PortalRole::Analyst))
        .await
        .unwrap();
    assert_eq!(count(&h, "delivered_today"), 2);
    // Another participant has no deliveries of its own to measure.
    let ldso = actor(Some(LDSO_P), PortalRole::Analyst);
    let h = home::summary(&s.broker, &analytics, &ldso).await.unwrap();
    assert_eq!(h.objective, None);
    assert_eq!(h.tile("objective").unwrap().value, "none yet");
}

both_stores!(each_viewer_sees_its_own_health, todays_objective_is_the_reports_own);
