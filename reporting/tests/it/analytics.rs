//! Analytics: lifecycle events from real traffic, the pump into the embedded tables and
//! into a real ClickHouse server, identical report numbers from every sink, and no loss
//! or double counting across a ClickHouse outage or a pump crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_core::events::{Event, EventKind};
use broker_core::mock_recipient::{MockRecipient, Reply};
use broker_core::store::{EntryState, Settlement, Store};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::clickhouse::ClickHouse;
use dip_reporting::pump::{Pump, PumpConfig};
use dip_reporting::report::{GroupBy, Measure, ReportQuery, Viewer};
use dip_testkit::*;
use serde_json::json;

/// 2026-11-01T00:00:00Z.
const BASE: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;

fn query(from: i64, to: i64, interval_secs: i64) -> ReportQuery {
    ReportQuery {
        from,
        to,
        interval_secs,
        channels: vec![],
        senders: vec![],
        recipients: vec![],
        group_by: GroupBy::None,
        participant: None,
    }
}

/// Moves the whole outbox.
async fn drain(pump: &mut Pump) {
    while pump.step().await.expect("pump step") > 0 {}
}

/// A deterministic mix of events over three hours: every kind, three channels, three
/// senders, four recipients, latencies with a long tail past 3 s and 30 s.
fn events(n: usize) -> Vec<Event> {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let channels = ["IF-031", "IF-032", "IF-033"];
    let senders = ["1000000001", "1000000002", "1000000003"];
    let recipients = ["1000000011", "1000000021", "1000000031", "1000000041"];
    (0..n)
        .map(|i| {
            let kind = EventKind::ALL[usize::try_from(next(9)).unwrap()];
            let at = BASE + i64::try_from(next(3 * 3_600_000)).unwrap() * 1000;
            let latency_us = match next(20) {
                0 => 30_000_000 + i64::try_from(next(60_000_000)).unwrap(),
                1 | 2 => 3_000_000 + i64::try_from(next(27_000_000)).unwrap(),
                _ => i64::try_from(next(3_000_000)).unwrap(),
            };
            Event {
                transaction_id: format!("T{i}"),
                interface_id: channels[usize::try_from(next(3)).unwrap()].into(),
                sender_dip_id: senders[usize::try_from(next(3)).unwrap()].into(),
                recipient_dip_id: recipients[usize::try_from(next(4)).unwrap()].into(),
                queue_id: "q".into(),
                outcome: "HTTP 200".into(),
                latency_us,
                duration_us: latency_us / i64::try_from(1 + next(5)).unwrap(),
                replay: next(10) == 0,
                ..Event::new(kind, at)
            }
        })
        .collect()
}

async fn record(store: &Arc<dyn Store>, events: &[Event]) {
    for chunk in events.chunks(1000) {
        store.record_events(chunk).await.expect("record events");
    }
}

fn pump(store: &Arc<dyn Store>, sink: Sink) -> Pump {
    Pump::new(
        store.clone(),
        sink,
        PumpConfig {
            batch: 700,
            ..PumpConfig::default()
        },
    )
}

async fn clickhouse_sink(server: &ClickHouseServer, database: &str) -> Arc<ClickHouse> {
    let c = ClickHouse::new(&server.url(database)).expect("ClickHouse URL");
    let applied = c.migrate().await.expect("ClickHouse migrations");
    assert_eq!(applied, ["0001_events.sql"]);
    assert!(c.migrate().await.expect("again").is_empty(), "migrations apply once");
    Arc::new(c)
}

fn queries() -> Vec<ReportQuery> {
    let whole = query(BASE, BASE + 3 * HOUR, 60);
    let mut by_channel = query(BASE, BASE + 3 * HOUR, 3600);
    by_channel.group_by = GroupBy::Channel;
    let mut filtered = query(BASE + HOUR / 2, BASE + 2 * HOUR, 900);
    filtered.channels = vec!["IF-031".into(), "IF-033".into()];
    filtered.senders = vec!["1000000001".into()];
    filtered.group_by = GroupBy::Recipient;
    let mut scoped = query(BASE - HOUR, BASE + 20 * HOUR, 86_400);
    scoped
        .authorise(&Viewer::Participant("1000000021".into()), false)
        .expect("own traffic");
    vec![whole, by_channel, filtered, scoped]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_gives_the_same_numbers() {
    let server = ClickHouseServer::start().await;
    let events = events(20_000);
    let sqlite = TestStore::new(Db::Sqlite).await;
    let postgres = TestStore::new(Db::Postgres).await;
    let feeding_clickhouse = TestStore::new(Db::Sqlite).await;
    let ch = clickhouse_sink(&server, "same_numbers").await;
    let sinks = [
        (&sqlite, Sink::Embedded),
        (&postgres, Sink::Embedded),
        (&feeding_clickhouse, Sink::ClickHouse(ch.clone())),
    ];
    let mut analytics = Vec::new();
    for (db, sink) in sinks {
        record(&db.store, &events).await;
        drain(&mut pump(&db.store, sink.clone())).await;
        assert!(db.store.outbox(10).await.unwrap().is_empty());
        analytics.push(Analytics::new(db.store.clone(), sink));
    }

    for q in queries() {
        let reports = [
            analytics[0].report(&q).await.expect("sqlite report"),
            analytics[1].report(&q).await.expect("postgres report"),
            analytics[2].report(&q).await.expect("clickhouse report"),
        ];
        assert!(
            !reports[0].volumes.is_empty() && !reports[0].latency.is_empty(),
            "{q:?}"
        );
        assert_eq!(reports[0], reports[1], "SQLite and PostgreSQL differ for {q:?}");
        assert_eq!(reports[0], reports[2], "SQLite and ClickHouse differ for {q:?}");
    }

    // And the numbers are right, not only equal: worked out here from the events.
    let r = analytics[2].report(&queries()[0]).await.unwrap();
    let in_range = |e: &&Event| e.at >= BASE && e.at < BASE + 3 * HOUR;
    let count = |k: EventKind| events.iter().filter(in_range).filter(|e| e.kind == k).count() as i64;
    let total = r.total("");
    assert_eq!(total.received, count(EventKind::Received));
    assert_eq!(total.delivered, count(EventKind::Delivered));
    assert_eq!(
        total.errors(),
        count(EventKind::Rejected) + count(EventKind::Returned) + count(EventKind::DeadLettered)
    );
    let mut e2e: Vec<i64> = events
        .iter()
        .filter(in_range)
        .filter(|e| e.kind == EventKind::Delivered && !e.replay)
        .map(|e| e.latency_us)
        .collect();
    e2e.sort_unstable();
    let n = e2e.len();
    let l = r.latency_total("", Measure::EndToEnd).expect("end-to-end latency");
    assert_eq!(l.count, n as i64);
    assert_eq!((l.min_us, l.max_us), (e2e[0], e2e[n - 1]));
    assert_eq!(l.p50_us, e2e[n * 50 / 100]);
    assert_eq!(l.p90_us, e2e[n * 90 / 100]);
    assert_eq!(l.p99_us, e2e[n * 99 / 100]);
    assert_eq!(l.within_3s, e2e.iter().filter(|v| **v <= 3_000_000).count() as i64);
    assert_eq!(l.within_30s, e2e.iter().filter(|v| **v <= 30_000_000).count() as i64);
    assert!(!l.slo_met(), "the tail past 30 s breaks the objective");
    let sum: i64 = e2e.iter().sum();
    assert!((l.avg_us - sum as f64 / n as f64).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickhouse_outage_loses_and_doubles_nothing() {
    let mut server = ClickHouseServer::start().await;
    let db = TestStore::new(Db::Sqlite).await;
    let ch = clickhouse_sink(&server, "outage").await;
    let all = events(5_000);
    let (before, during) = all.split_at(2_000);
    let mut pump = pump(&db.store, Sink::ClickHouse(ch.clone()));

    record(&db.store, before).await;
    drain(&mut pump).await;

    server.kill();
    record(&db.store, during).await;
    assert!(pump.step().await.is_err(), "ClickHouse is down");
    assert!(pump.step().await.is_err(), "still down");
    assert_eq!(
        db.store.outbox(10_000).await.unwrap().len(),
        during.len(),
        "the backlog waits in the outbox"
    );

    server.resume().await;
    drain(&mut pump).await;
    assert!(db.store.outbox(10).await.unwrap().is_empty());
    assert_eq!(counts(&ch).await, expected_counts(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pump_crash_between_insert_and_outbox_delete_counts_once() {
    let server = ClickHouseServer::start().await;
    let db = TestStore::new(Db::Sqlite).await;
    let ch = clickhouse_sink(&server, "crash").await;
    let all = events(3_000);
    record(&db.store, &all).await;

    // A pump inserts a batch into ClickHouse and dies before deleting it from the outbox.
    let batch = db.store.outbox(700).await.unwrap();
    ch.insert(&batch).await.expect("insert");

    // The next pump (on any node) finds the batch there and does not insert it again.
    drain(&mut pump(&db.store, Sink::ClickHouse(ch.clone()))).await;
    assert!(db.store.outbox(10).await.unwrap().is_empty());
    assert_eq!(counts(&ch).await, expected_counts(&all));
}

async fn counts(ch: &ClickHouse) -> Vec<(String, i64)> {
    ch.count_by_kind().await.expect("count")
}

fn expected_counts(events: &[Event]) -> Vec<(String, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for e in events {
        *m.entry(e.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

/// Real traffic: an accepted message per recipient copy, a refused item, a failed
/// attempt then deliveries; each state change writes its events once.
async fn traffic_writes_lifecycle_events(db: Db) {
    traffic_writes(db, false).await;
}

/// As above, with the events written straight into the embedded table: the outbox stays
/// empty and the reports are the same.
async fn traffic_writes_lifecycle_events_straight_into_the_embedded_table(db: Db) {
    traffic_writes(db, true).await;
}

async fn traffic_writes(db: Db, embedded: bool) {
    let s = TestServer::delivering(db).await;
    s.db.store.write_events_to_embedded(embedded);
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    sink.script([Reply::Status(503)]);
    s.fast_retries("IF-031").await;
    let started = broker_core::clock::now_micros();
    let mut txs = Vec::new();
    for i in 0..3 {
        let mut it = if031(&format!("an-{i}"));
        set(&mut it, "/payload/CommonBlock/A0/primaryRecipients", json!([REGS_N]));
        let (status, body) = s.post(&s.key(SUP1), &json!([it])).await;
        assert_eq!(status, 202, "{body}");
        txs.push(body["results"][0]["transactionID"].as_str().unwrap().to_owned());
    }
    let mut bad = if031("an-bad");
    set(&mut bad, "/payload/CommonBlock/S1/senderUniqueReference", json!(""));
    let (status, body) = s.post(&s.key(SUP1), &json!([bad])).await;
    assert_eq!(status, 400, "{body}");

    if embedded {
        assert!(s.db.store.outbox(10).await.unwrap().is_empty(), "nothing in the outbox");
    }
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    let mut pump = pump(&s.db.store, Sink::Embedded);
    let q = query(started - 1, broker_core::clock::now_micros() + HOUR, 3600);
    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        drain(&mut pump).await;
        let r = analytics.report(&q).await.expect("report");
        if r.total("").delivered >= 3 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = report.total("");
    assert_eq!(
        (t.received, t.rejected, t.routed, t.failed_attempts, t.delivered),
        (3, 1, 3, 1, 3),
        "{t:?}"
    );
    let e2e = report.latency_total("", Measure::EndToEnd).expect("end to end");
    let platform = report.latency_total("", Measure::Platform).expect("platform");
    let webhook = report.latency_total("", Measure::Webhook).expect("webhook");
    let internal = report.latency_total("", Measure::Internal).expect("internal");
    assert_eq!((e2e.count, platform.count, webhook.count, internal.count), (3, 3, 3, 3));
    assert!(webhook.min_us > 0 && internal.max_us <= e2e.max_us, "{report:?}");
    assert!(
        (platform.avg_us + webhook.avg_us - e2e.avg_us).abs() < 1e-3,
        "hops add up: {report:?}"
    );
    assert!(e2e.slo_met());

    // A repeated settlement changes nothing and so records nothing.
    let entry = s.db.store.message_deliveries(&txs[0]).await.unwrap().remove(0);
    assert_eq!(entry.state, "delivered");
    let again = Settlement {
        queue_id: entry.queue_id,
        seq: entry.seq,
        state: EntryState::Delivered,
        at: broker_core::clock::now_micros(),
        outcome: "HTTP 200".into(),
        duration_us: 5,
        call: None,
    };
    s.db.store.settle(&[again], &[]).await.unwrap();
    assert!(s.db.store.outbox(10).await.unwrap().is_empty());
}

/// One pump at a time: the lease.
async fn one_pump_holds_the_lease(db: Db) {
    let t = TestStore::new(db).await;
    assert!(t.store.claim_worker("analytics-pump", "a", 100, 200).await.unwrap());
    assert!(
        t.store.claim_worker("analytics-pump", "a", 150, 250).await.unwrap(),
        "renewal"
    );
    assert!(
        !t.store.claim_worker("analytics-pump", "b", 200, 300).await.unwrap(),
        "held by a"
    );
    assert!(
        t.store.claim_worker("analytics-pump", "b", 251, 400).await.unwrap(),
        "expired"
    );
    assert!(!t.store.claim_worker("analytics-pump", "a", 260, 500).await.unwrap());
}

both_stores!(
    traffic_writes_lifecycle_events,
    traffic_writes_lifecycle_events_straight_into_the_embedded_table,
    one_pump_holds_the_lease
);
