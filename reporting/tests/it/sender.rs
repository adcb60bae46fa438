//! The sender report on both stores, with known answers: per channel the messages
//! accepted, the items refused with their error codes (a DCP's refusals counted for the
//! participant it sent for), each copy state in copies and messages, end-to-end latency;
//! every figure's drill-down finds exactly the messages behind it; who may see which
//! sender; bad input named by field; the CSV; the same figures from ClickHouse.

use broker_core::clock::{now_micros, rfc3339};
use broker_core::store::{AttemptFailure, EntryState, QueueEntry, Settlement};
use dip_admin::types::{Actor, AppError, ListQuery, PortalRole};

use crate::{actor, list};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::clickhouse::ClickHouse;
use dip_reporting::pump::{Pump, PumpConfig};
use dip_reporting::sender::{self, NO_CHANNEL};
use dip_reporting::sender_views::{ChannelOutcomes, Outcome, SenderReport};
use dip_reporting::trail;
use dip_testkit::*;
use serde_json::{Value, json};

const SECOND: i64 = 1_000_000;

/// Sends items in one request; returns each item's transaction id or first error code.
async fn post(s: &TestServer, key_of: &str, items: Vec<Value>) -> Vec<Result<String, String>> {
    let (_, body) = s.post(&s.key(key_of), &Value::Array(items)).await;
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| match r["transactionID"].as_str() {
            Some(tx) if r["status"] == "accepted" => Ok(tx.to_owned()),
            _ => Err(r["errors"][0]["code"].as_str().unwrap_or_default().to_owned()),
        })
        .collect()
}

async fn accepted(s: &TestServer, key_of: &str, item: Value) -> String {
    post(s, key_of, vec![item]).await.remove(0).expect("accepted")
}

async fn copies(s: &TestServer, tx: &str) -> Vec<QueueEntry> {
    s.db.store.message_deliveries(tx).await.unwrap()
}

async fn received_at(s: &TestServer, tx: &str) -> i64 {
    s.db.store.message(tx).await.unwrap().unwrap().received_at
}

/// Settles a copy `after` its message's receipt.
async fn settle(s: &TestServer, e: &QueueEntry, state: EntryState, after: i64) {
    let at = received_at(s, &e.transaction_id).await + after;
    let done = Settlement {
        queue_id: e.queue_id.clone(),
        seq: e.seq,
        state,
        at,
        outcome: "HTTP 200".into(),
        duration_us: if state == EntryState::Dead { 0 } else { 1000 },
        call: None,
    };
    s.db.store.settle(&[done], &[]).await.unwrap();
}

fn line<'a>(r: &'a SenderReport, channel: &str) -> &'a ChannelOutcomes {
    r.channels
        .iter()
        .find(|l| l.interface_id == channel)
        .unwrap_or_else(|| panic!("no line {channel:?} in {:?}", r.channels))
}

fn o(copies: i64, messages: i64) -> Outcome {
    Outcome { copies, messages }
}

fn codes(l: &ChannelOutcomes) -> Vec<(&str, i64)> {
    l.errors.iter().map(|e| (e.code.as_str(), e.count)).collect()
}

/// The messages a drill-down link lists, by the search it names.
async fn drill_down(s: &TestServer, who: &Actor, href: &str) -> usize {
    let query = href.strip_prefix("/messages?").expect("a message search");
    let filters: Vec<(String, String)> = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.replace("%3A", ":").replace("%2B", "+"))
        })
        .collect();
    let filters: Vec<(&str, &str)> = filters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    trail::search(&s.broker, who, &list(&filters)).await.unwrap().total
}

async fn a_sender_report_counts_every_outcome(db: Db) {
    let s = TestServer::start(db).await;
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    // SUP1's IF-031s: one delivered in 1.5 s, one returned, one dead-lettered, one
    // retrying, and one to two registration services delivered in 0.5 s and 4 s.
    let mut tx = Vec::new();
    for r in ["s-1", "s-2", "s-3", "s-4"] {
        tx.push(accepted(&s, SUP1, if031(r)).await);
    }
    tx.push(accepted(&s, SUP1, if031_from(SUP1, "s-5", &[REGS_N, REGS_S])).await);
    settle(&s, &copies(&s, &tx[0]).await[0], EntryState::Delivered, 3 * SECOND / 2).await;
    settle(&s, &copies(&s, &tx[1]).await[0], EntryState::Returned, SECOND).await;
    settle(&s, &copies(&s, &tx[2]).await[0], EntryState::Dead, 60 * SECOND).await;
    let retrying = copies(&s, &tx[3]).await.remove(0);
    s.db.store
        .record_failure(&AttemptFailure {
            queue_id: retrying.queue_id.clone(),
            seq: retrying.seq,
            at: now_micros(),
            outcome: "HTTP 503".into(),
            retry_at: now_micros() + 60 * SECOND,
            duration_us: 1000,
            call: None,
        })
        .await
        .unwrap();
    let both = copies(&s, &tx[4]).await;
    assert_eq!(both.len(), 2);
    settle(&s, &both[0], EntryState::Delivered, SECOND / 2).await;
    settle(&s, &both[1], EntryState::Delivered, 4 * SECOND).await;
    // One more, still queued, on IF-031 too; and SUP1 receives an IF-032 (not its report).
    accepted(&s, SUP1, if031("s-6")).await;
    accepted(&s, REGS_N, if032("r-1", None)).await;

    // Refused: two unknown event codes and an unknown schema version on IF-031, and an
    // item naming no channel of the platform.
    let mut bad_event = if031("bad-1");
    set(&mut bad_event, "/payload/CommonBlock/S0/eventCode", json!("Bogus"));
    let mut bad_event2 = if031("bad-2");
    set(&mut bad_event2, "/payload/CommonBlock/S0/eventCode", json!("Bogus"));
    let mut bad_version = if031("bad-3");
    set(&mut bad_version, "/payload/CommonBlock/S0/schemaVersion", json!("999"));
    let mut no_channel = if031("bad-4");
    set(&mut no_channel, "/payload/CommonBlock/S0/interfaceID", json!("IF-999"));
    let refused = post(&s, SUP1, vec![bad_event, bad_event2, bad_version, no_channel]).await;
    let refused: Vec<String> = refused.into_iter().map(|r| r.unwrap_err()).collect();
    assert_eq!(
        refused,
        [
            "UNKNOWN_EVENT_CODE",
            "UNKNOWN_EVENT_CODE",
            "UNSUPPORTED_SCHEMA_VERSION",
            "UNKNOWN_INTERFACE"
        ]
    );

    // The DCP sends for SUP2 (which nominated it): one accepted, one refused, counted
    // for SUP2; one naming SUP1 (which did not nominate it) is refused as the DCP's.
    let for_sup2 = |reference: &str| {
        let mut it = if031_from(SUP2, reference, &[REGS_N]);
        set(&mut it, "/payload/CommonBlock/S1/DIPConnectionProviderID", json!(DCP));
        it
    };
    accepted(&s, DCP, for_sup2("d-1")).await;
    let mut refused_for_sup2 = for_sup2("d-2");
    set(
        &mut refused_for_sup2,
        "/payload/CommonBlock/S0/eventCode",
        json!("Bogus"),
    );
    let mut not_nominated = if031("d-3");
    set(
        &mut not_nominated,
        "/payload/CommonBlock/S1/DIPConnectionProviderID",
        json!(DCP),
    );
    let dcp = post(&s, DCP, vec![refused_for_sup2, not_nominated]).await;
    assert_eq!(dcp[0], Err("UNKNOWN_EVENT_CODE".into()));
    assert_eq!(dcp[1], Err("SENDER_MISMATCH".into()));

    // Refusals reach the report through the analytics pump.
    let mut pump = Pump::new(s.db.store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}

    let now = now_micros();
    let (from, to) = (rfc3339(now - 3_600 * SECOND), rfc3339(now + 3_600 * SECOND));
    let period = [("from", from.as_str()), ("to", to.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&str, &str)> = period.to_vec();
        f.extend_from_slice(extra);
        list(&f)
    };
    let op = actor(None, PortalRole::Auditor);
    let sup1 = actor(Some(SUP1), PortalRole::MessageUser);
    let r = sender::report(&s.broker, &analytics, &op, &with(&[("sender", SUP1)]))
        .await
        .unwrap();
    assert_eq!(r.sender, SUP1);
    assert!(r.sender_name.ends_with(&format!("({SUP1})")), "{}", r.sender_name);
    assert_eq!(
        r.channels.iter().map(|l| l.interface_id.as_str()).collect::<Vec<_>>(),
        ["IF-031", ""],
        "channels A to Z, refusals naming none last; SUP1's IF-032 is REGS_N's"
    );
    let l = line(&r, "IF-031");
    assert_eq!(l.name, "Supplier Service Appointment Request");
    assert_eq!((l.accepted, l.rejected), (6, 3));
    assert_eq!(codes(l), [("UNKNOWN_EVENT_CODE", 2), ("UNSUPPORTED_SCHEMA_VERSION", 1)]);
    assert_eq!(l.queued, o(1, 1));
    assert_eq!(l.retrying, o(1, 1));
    assert_eq!(l.delivered, o(3, 2));
    assert_eq!(l.returned, o(1, 1));
    assert_eq!(l.dead_lettered, o(1, 1));
    let latency = l.latency.clone().expect("latency of the delivered copies");
    assert_eq!(latency.count, 3);
    assert_eq!(
        (latency.min_ms, latency.p50_ms, latency.max_ms),
        (500.0, 1500.0, 4000.0)
    );
    assert!((latency.avg_ms - 2000.0).abs() < 1e-9, "{latency:?}");
    assert!((latency.within_3s_pct - 200.0 / 3.0).abs() < 1e-9, "{latency:?}");
    let none = line(&r, "");
    assert_eq!(none.name, NO_CHANNEL);
    assert_eq!((none.accepted, none.rejected), (0, 1));
    assert_eq!(codes(none), [("UNKNOWN_INTERFACE", 1)]);
    assert_eq!((r.total.accepted, r.total.rejected), (6, 4));
    assert_eq!(
        codes(&r.total),
        [
            ("UNKNOWN_EVENT_CODE", 2),
            ("UNKNOWN_INTERFACE", 1),
            ("UNSUPPORTED_SCHEMA_VERSION", 1)
        ]
    );
    assert_eq!(r.total.delivered, o(3, 2));
    assert_eq!(r.total.latency.as_ref().map(|c| c.count), Some(3));

    // Every count's drill-down is the message search that lists exactly its messages.
    for (state, expected) in [
        ("accepted", 6),
        ("queued", 1),
        ("retrying", 1),
        ("delivered", 2),
        ("returned", 1),
        ("dead_lettered", 1),
    ] {
        let href = r.messages_href(Some("IF-031"), state).unwrap();
        assert!(
            href.contains(&format!("sender={SUP1}&channel=IF-031&state={state}")),
            "{href}"
        );
        assert_eq!(drill_down(&s, &op, &href).await, expected, "{state}: {href}");
        let href = r.messages_href(None, state).unwrap();
        assert_eq!(drill_down(&s, &sup1, &href).await, expected, "{state}: {href}");
    }
    assert_eq!(r.messages_href(Some(""), "accepted"), None);

    // The sender's own users see the same report by default; the DCP's refusal for SUP2
    // is SUP2's, the one naming SUP1 nobody's but the DCP's.
    let own = sender::report(&s.broker, &analytics, &sup1, &with(&[])).await.unwrap();
    assert_eq!(own, r);
    let dcp_user = actor(Some(DCP), PortalRole::MessageUser);
    let r2 = sender::report(&s.broker, &analytics, &dcp_user, &with(&[("sender", SUP2)]))
        .await
        .unwrap();
    let l2 = line(&r2, "IF-031");
    assert_eq!((l2.accepted, l2.rejected), (1, 1));
    assert_eq!(codes(l2), [("UNKNOWN_EVENT_CODE", 1)]);
    assert_eq!(l2.queued, o(1, 1));
    let own_dcp = sender::report(&s.broker, &analytics, &dcp_user, &with(&[]))
        .await
        .unwrap();
    assert_eq!(own_dcp.sender, DCP);
    assert_eq!(codes(&own_dcp.total), [("SENDER_MISMATCH", 1)]);

    // Narrowed to a channel, or to a business process: its channels only.
    let one = sender::report(
        &s.broker,
        &analytics,
        &op,
        &with(&[("sender", SUP1), ("channel", "IF-032")]),
    )
    .await
    .unwrap();
    assert!(one.channels.is_empty() && one.total.rejected == 0, "{one:?}");
    let bp = sender::report(
        &s.broker,
        &analytics,
        &op,
        &with(&[("sender", SUP1), ("process", "BP02 - Change of Service")]),
    )
    .await
    .unwrap();
    assert_eq!(
        bp.channels.iter().map(|l| l.interface_id.as_str()).collect::<Vec<_>>(),
        ["IF-031"]
    );
    assert_eq!(
        bp.total.rejected, 3,
        "the refusal naming no channel is no channel's of BP02"
    );
    assert_eq!(bp.messages_href(None, "accepted"), None, "the search takes one channel");

    // Sorted as asked: refusals naming no channel stay last.
    let sorted = sender::report(
        &s.broker,
        &analytics,
        &op,
        &ListQuery {
            sort: "rejected".into(),
            desc: true,
            ..with(&[("sender", SUP1)])
        },
    )
    .await
    .unwrap();
    assert_eq!(sorted.channels.last().unwrap().interface_id, "");

    // A period before the traffic is empty.
    let before = sender::report(
        &s.broker,
        &analytics,
        &op,
        &list(&[("sender", SUP1), ("from", "2020-01-01"), ("to", "2020-02-01")]),
    )
    .await
    .unwrap();
    assert!(before.channels.is_empty());
    assert_eq!(
        (before.from.as_str(), before.to.as_str()),
        ("2020-01-01T00:00", "2020-02-01T00:00")
    );

    // The CSV: a line per channel and one for all, with every figure.
    let csv = sender::csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("sender,from,to,channel,name,accepted,rejected,rejection_codes,"));
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        &fields[3..18],
        [
            "IF-031",
            "Supplier Service Appointment Request",
            "6",
            "3",
            "UNKNOWN_EVENT_CODE=2;UNSUPPORTED_SCHEMA_VERSION=1",
            "1",
            "1",
            "1",
            "1",
            "3",
            "2",
            "1",
            "1",
            "1",
            "1"
        ]
    );
    assert_eq!(&fields[18..21], ["3", "2000.000", "1500.000"]);
    assert!(lines[3].contains(",all,All channels,6,4,"), "{}", lines[3]);
}

async fn who_may_see_which_sender(db: Db) {
    let s = TestServer::start(db).await;
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    accepted(&s, SUP1, if031("v-1")).await;
    let report = |who: Actor, filters: Vec<(&'static str, &'static str)>| {
        let (broker, analytics) = (s.broker.clone(), analytics.clone());
        async move { sender::report(&broker, &analytics, &who, &list(&filters)).await }
    };
    let op = actor(None, PortalRole::Auditor);
    let sup1 = actor(Some(SUP1), PortalRole::Analyst);
    let sup2 = actor(Some(SUP2), PortalRole::MessageUser);
    let dcp = actor(Some(DCP), PortalRole::Auditor);
    let stranger = actor(Some(LDSO_P), PortalRole::MessageUser);

    let seen = |r: Result<SenderReport, AppError>| r.map(|r| (r.sender, r.total.accepted));
    assert_eq!(
        seen(report(op.clone(), vec![("sender", SUP1)]).await),
        Ok((SUP1.into(), 1))
    );
    assert_eq!(seen(report(sup1.clone(), vec![]).await), Ok((SUP1.into(), 1)));
    assert_eq!(
        seen(report(sup1.clone(), vec![("sender", SUP1)]).await),
        Ok((SUP1.into(), 1))
    );
    assert_eq!(
        seen(report(dcp.clone(), vec![("sender", SUP2)]).await),
        Ok((SUP2.into(), 0))
    );
    // Anyone else's sender is not found, whether it exists or not.
    for (who, sender) in [
        (&sup2, SUP1),
        (&stranger, SUP1),
        (&dcp, SUP1),
        (&sup1, SUP2),
        (&sup1, "1999999999"),
    ] {
        let e = report(who.clone(), vec![("sender", sender)]).await.unwrap_err();
        assert!(
            matches!(e, AppError::NotFound(_)),
            "{:?} asking for {sender}: {e:?}",
            who.dip_id
        );
    }
    let user_admin = actor(Some(SUP1), PortalRole::UserAdmin);
    assert_eq!(report(user_admin, vec![]).await.unwrap_err(), AppError::Forbidden);

    // Bad input names its field; operator staff must choose a known sender.
    for (filters, field) in [
        (vec![], "sender"),
        (vec![("sender", "1999999999")], "sender"),
        (vec![("sender", SUP1), ("from", "yesterday")], "from"),
        (vec![("sender", SUP1), ("to", "2026-13-01")], "to"),
        (
            vec![("sender", SUP1), ("from", "2026-02-01"), ("to", "2026-01-01")],
            "to",
        ),
        (
            vec![("sender", SUP1), ("from", "2024-01-01"), ("to", "2026-01-01")],
            "from",
        ),
        (vec![("sender", SUP1), ("channel", "IF-999")], "channel"),
        (vec![("sender", SUP1), ("process", "BP99 - Nothing")], "process"),
        (
            vec![
                ("sender", SUP1),
                ("process", "BP02 - Change of Service"),
                ("channel", "IF-021"),
            ],
            "channel",
        ),
    ] {
        let e = report(op.clone(), filters.clone()).await.unwrap_err();
        assert!(e.field_error(field).is_some(), "{filters:?}: {e:?}");
    }
    let e = sender::report(
        &s.broker,
        &analytics,
        &op,
        &ListQuery {
            sort: "colour".into(),
            ..list(&[("sender", SUP1)])
        },
    )
    .await
    .unwrap_err();
    assert!(e.field_error("sort").is_some(), "{e:?}");

    // The form offers a participant its own (and a DCP those it acts for); operator staff
    // every participant.
    let c = sender::choices(&s.broker, &dcp).unwrap();
    assert_eq!(
        c.senders.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(),
        [DCP, SUP2, SDS_O]
    );
    assert_eq!(c.default_sender.as_deref(), Some(DCP));
    assert!(c.channels.iter().any(|(id, _)| id == "IF-031"));
    assert!(c.processes.iter().any(|p| p == "BP02 - Change of Service"));
    let c = sender::choices(&s.broker, &op).unwrap();
    assert!(c.senders.len() > 10 && c.default_sender.is_none());
}

/// The refusals and latency read the same from ClickHouse as from the embedded tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_reads_clickhouse_alike() {
    let server = ClickHouseServer::start().await;
    let ch = ClickHouse::new(&server.url("sender_report")).expect("ClickHouse URL");
    ch.migrate().await.expect("ClickHouse migrations");
    let sink = Sink::ClickHouse(std::sync::Arc::new(ch));
    let s = TestServer::start(Db::Sqlite).await;
    let tx = accepted(&s, SUP1, if031("ch-1")).await;
    settle(&s, &copies(&s, &tx).await[0], EntryState::Delivered, 2 * SECOND).await;
    let mut bad = if031("ch-2");
    set(&mut bad, "/payload/CommonBlock/S0/eventCode", json!("Bogus"));
    let mut none = if031("ch-3");
    set(&mut none, "/payload/CommonBlock/S0/interfaceID", json!("IF-999"));
    post(&s, SUP1, vec![bad.clone(), bad, none]).await;
    let mut pump = Pump::new(s.db.store.clone(), sink.clone(), PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}
    assert!(
        s.db.store.outbox(10).await.unwrap().is_empty(),
        "every event in ClickHouse"
    );

    let analytics = Analytics::new(s.db.store.clone(), sink);
    let op = actor(None, PortalRole::Auditor);
    // A period past the delivery 2 s after receipt (the default ends with this minute).
    let now = now_micros();
    let (from, to) = (rfc3339(now - 3_600 * SECOND), rfc3339(now + 3_600 * SECOND));
    let r = sender::report(
        &s.broker,
        &analytics,
        &op,
        &list(&[("sender", SUP1), ("from", &from), ("to", &to)]),
    )
    .await
    .unwrap();
    let l = line(&r, "IF-031");
    assert_eq!((l.accepted, l.rejected), (1, 2));
    assert_eq!(codes(l), [("UNKNOWN_EVENT_CODE", 2)]);
    assert_eq!(l.delivered, o(1, 1));
    let latency = l.latency.clone().expect("latency");
    assert_eq!((latency.count, latency.p50_ms), (1, 2000.0));
    assert_eq!(codes(line(&r, "")), [("UNKNOWN_INTERFACE", 1)]);
    assert_eq!(r.total.rejected, 3);
    // Narrowed to a channel: the statement binds it.
    let one = sender::report(
        &s.broker,
        &analytics,
        &op,
        &list(&[("sender", SUP1), ("channel", "IF-031")]),
    )
    .await
    .unwrap();
    assert_eq!((one.channels.len(), one.total.rejected), (1, 2));
}

both_stores!(a_sender_report_counts_every_outcome, who_may_see_which_sender);
