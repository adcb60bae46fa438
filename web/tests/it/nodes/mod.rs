//! Several `dip serve` processes on one PostgreSQL database, delivering webhooks to
//! recording sinks: load split across two nodes with one node stopped and replaced midway
//! (queue leases handed over), and a node killed with SIGKILL under load and restarted
//! (nothing acknowledged is lost; order per queue holds; redelivery is of the same
//! transaction only).

mod cluster;
mod traffic;

use cluster::*;
use dip_testkit::*;
use traffic::*;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::mock_recipient::{MockRecipient, Reply};
use broker_core::store::Store;
use tokio::time::Instant;

/// The tests start several processes each; one at a time keeps them within their time on
/// two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three sinks, one per queue of `QUEUES`, each answering a few 503s and every
/// `slow_every`th request after `slow_ms`, so that retries happen, requests are in flight
/// long enough for overlaps to show, and (when slow enough) a backlog builds up.
async fn sinks(slow_every: usize, slow_ms: u64) -> Vec<MockRecipient> {
    let mut out = Vec::new();
    for i in 0..QUEUES.len() {
        let sink = MockRecipient::start(true).await.expect("sink");
        let mut script = Vec::new();
        for n in 0..2000 {
            script.push(match n {
                _ if n == 40 + 100 * i => Reply::Status(503),
                _ if n == 300 + 50 * i => Reply::RetryAfter(503, 0),
                _ if n % slow_every == 0 => Reply::Delay(Duration::from_millis(slow_ms)),
                _ => Reply::Ok,
            });
        }
        sink.script(script);
        out.push(sink);
    }
    out
}

/// A PostgreSQL store with the demo directory whose queues of `QUEUES` are delivered by
/// webhook to `sinks`, one each.
async fn store_delivering_to(sinks: &[MockRecipient]) -> TestStore {
    TestStore::builder(Db::Postgres)
        .webhook(REGS_N, "default", sinks[0].url())
        .webhook(REGS_S, "default", sinks[1].url())
        .webhook(SUP1, "registration", sinks[2].url())
        .build()
        .await
}

fn spec(db: &TestStore, node_id: &str, port: u16, lease_ttl_ms: u64) -> NodeSpec {
    NodeSpec {
        database_url: db.url.clone(),
        port,
        node_id: node_id.to_owned(),
        lease_ttl_ms,
        request_timeout_ms: 1000,
    }
}

type Results = Arc<Mutex<HashMap<usize, Vec<Ack>>>>;

/// Starts `senders` tasks that send every batch once acknowledged, each pausing `pace`
/// between its requests; returns the handles and the count of batches taken so far.
fn start_senders(
    http: &reqwest::Client,
    targets: &Targets,
    batches: &Arc<Vec<Batch>>,
    senders: usize,
    pace: Duration,
    deadline: Instant,
) -> (Vec<tokio::task::JoinHandle<SendStats>>, Arc<AtomicUsize>, Results) {
    let next = Arc::new(AtomicUsize::new(0));
    let results: Results = Arc::default();
    let handles = (0..senders)
        .map(|s| {
            let (http, targets, batches, next, results) = (
                http.clone(),
                targets.clone(),
                batches.clone(),
                next.clone(),
                results.clone(),
            );
            tokio::spawn(async move {
                let mut stats = SendStats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= batches.len() {
                        return stats;
                    }
                    let acks = send_until_acknowledged(&http, &targets, s, &batches[i], deadline, &mut stats).await;
                    results.lock().unwrap_or_else(|e| e.into_inner()).insert(i, acks);
                    tokio::time::sleep(pace).await;
                }
            })
        })
        .collect();
    (handles, next, results)
}

/// What a run's senders and sinks ended with.
struct Finished {
    stats: Vec<SendStats>,
    send_time: Duration,
    acks: HashMap<usize, Vec<Ack>>,
    reference_of: HashMap<String, String>,
    expected: BTreeMap<&'static str, HashSet<String>>,
    delivery_time: Duration,
}

/// Waits for the senders, checks their acknowledgements, then waits until everything
/// acknowledged was delivered and the store has nothing left to do.
async fn finish(
    senders: Vec<tokio::task::JoinHandle<SendStats>>,
    results: &Results,
    batches: &[Batch],
    total: usize,
    sinks: &[MockRecipient],
    db: &TestStore,
    send_start: Instant,
) -> Finished {
    let mut stats = Vec::new();
    for s in senders {
        stats.push(s.await.expect("sender"));
    }
    let send_time = send_start.elapsed();
    let acks = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reference_of = check_acks(batches, &acks);
    assert_eq!(reference_of.len(), total);
    let expected = expected(batches, &acks);
    let all = wait_all_delivered(&sinks.iter().collect::<Vec<_>>(), &expected, Duration::from_secs(30)).await;
    let delivery_time = send_start.elapsed();
    assert!(all, "not everything acknowledged was delivered within 30 s");
    wait_settled(db.store.as_ref(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the store still has work after every delivery:\n{e}"));
    Finished {
        stats,
        send_time,
        acks,
        reference_of,
        expected,
        delivery_time,
    }
}

async fn wait_for_progress(next: &AtomicUsize, at_least: usize, deadline: Instant) {
    while next.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "senders made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every acknowledgement is accepted or duplicate, one transaction id per reference and
/// one reference per transaction id; returns transaction id → reference.
fn check_acks(batches: &[Batch], acks: &HashMap<usize, Vec<Ack>>) -> HashMap<String, String> {
    assert_eq!(acks.len(), batches.len(), "every batch acknowledged");
    let mut reference_of = HashMap::new();
    for a in acks.values().flatten() {
        assert!(
            a.status == "accepted" || a.status == "duplicate",
            "unexpected item status {a:?}"
        );
        assert!(!a.transaction_id.is_empty(), "no transaction id: {a:?}");
        let before = reference_of.insert(a.transaction_id.clone(), a.reference.clone());
        assert!(before.is_none(), "transaction id {} given twice", a.transaction_id);
    }
    reference_of
}

/// The recipient-side checks over every sink; panics with what failed.
fn check_deliveries(
    sinks: &[MockRecipient],
    expected: &BTreeMap<&'static str, HashSet<String>>,
    reference_of: &HashMap<String, String>,
) -> BTreeMap<&'static str, QueueReport> {
    let mut reports = BTreeMap::new();
    for (q, sink) in QUEUES.iter().zip(sinks) {
        let delivered = sink.delivered();
        assert!(
            delivered.iter().all(|d| d.queue == *q),
            "{q}: the sink got another queue's message"
        );
        let report = check_queue(q, &delivered, &expected[q]).unwrap_or_else(|e| panic!("{e}"));
        check_bodies(&delivered, reference_of).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sink.overlaps(),
            0,
            "{q}: a request arrived while another was in progress"
        );
        reports.insert(*q, report);
    }
    reports
}

fn summary(sinks: &[MockRecipient], reports: &BTreeMap<&'static str, QueueReport>) -> String {
    QUEUES
        .iter()
        .zip(sinks)
        .map(|(q, s)| {
            let r = &reports[q];
            let received = s.received();
            let failed = received.iter().filter(|r| r.status >= 300).count();
            format!(
                "  {q}: {} distinct, {} deliveries ({} redeliveries, {} rewinds), {failed} answered 503",
                r.distinct, r.deliveries, r.redeliveries, r.rewinds
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_warnings(cluster: &Cluster) {
    let warnings = cluster.warnings();
    eprintln!("  {} WARN/ERROR lines in the node logs", warnings.len());
    for w in warnings.iter().take(10) {
        eprintln!("    {w}");
    }
}

async fn owners(store: &dyn Store) -> BTreeMap<&'static str, Option<String>> {
    let mut out = BTreeMap::new();
    for q in QUEUES {
        let owner = store.lease(q).await.ok().flatten().map(|(o, _)| o);
        out.insert(q, owner);
    }
    out
}

/// The node of two that holds the most queue leases, once some are held.
struct Victim {
    index: usize,
    id: String,
    queues: Vec<&'static str>,
    base: String,
    /// Every queue's holder when it was chosen.
    held: BTreeMap<&'static str, Option<String>>,
}

/// Chooses the victim of two nodes and takes it out of the senders' targets.
async fn victim(db: &TestStore, cluster: &Cluster, targets: &Targets) -> Victim {
    let mut held = owners(db.store.as_ref()).await;
    for _ in 0..100 {
        if held.values().any(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = owners(db.store.as_ref()).await;
    }
    let count = |i: usize| {
        let id = &cluster.nodes[i].spec.node_id;
        held.values().filter(|o| o.as_ref() == Some(id)).count()
    };
    let index = usize::from(count(1) > count(0));
    let id = cluster.nodes[index].spec.node_id.clone();
    let queues = held
        .iter()
        .filter(|(_, o)| o.as_deref() == Some(id.as_str()))
        .map(|(q, _)| *q)
        .collect();
    let base = cluster.nodes[index].base();
    targets.lock().unwrap_or_else(|e| e.into_inner()).retain(|b| *b != base);
    Victim {
        index,
        id,
        queues,
        base,
        held,
    }
}

/// Two nodes share the load; midway the node holding the most queue leases is stopped
/// (SIGTERM: it finishes its attempt, records its deliveries and lets its queues go), the
/// other takes its queues over, and later a replacement with a new node id joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_load_and_hand_queues_over() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let sinks = sinks(5, 3).await;
    let db = store_delivering_to(&sinks).await;
    let mut cluster = Cluster::new();
    let ports = [free_port(), free_port()];
    cluster.start(spec(&db, "load-a", ports[0], 3000)).await;
    cluster.start(spec(&db, "load-b", ports[1], 3000)).await;
    let targets: Targets = Arc::new(Mutex::new(vec![cluster.nodes[0].base(), cluster.nodes[1].base()]));
    let batches = Arc::new(traffic(&db, "load", 320, 10));
    let total: usize = batches.iter().map(|b| b.references.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(40);

    // Who holds which queue, sampled while the test runs.
    let seen: Arc<Mutex<BTreeMap<&'static str, BTreeSet<String>>>> = Arc::default();
    let observing = Arc::new(AtomicBool::new(true));
    let observer = {
        let (store, seen, observing) = (db.store.clone(), seen.clone(), observing.clone());
        tokio::spawn(async move {
            while observing.load(Ordering::SeqCst) {
                for (q, owner) in owners(store.as_ref()).await {
                    if let Some(o) = owner {
                        seen.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(q)
                            .or_default()
                            .insert(o);
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let send_start = Instant::now();
    let (senders, next, results) = start_senders(
        &cluster.http,
        &targets,
        &batches,
        8,
        Duration::from_millis(25),
        deadline,
    );

    // A third of the way: stop the node that holds the most queues.
    wait_for_progress(&next, batches.len() / 3, deadline).await;
    let Victim {
        index: victim,
        id: victim_id,
        queues: victim_queues,
        base: victim_base,
        held,
    } = victim(&db, &cluster, &targets).await;
    let stop_at = send_start.elapsed();
    let (exited, status) = cluster.nodes[victim].terminate(Duration::from_secs(15)).await;
    let stopped_in = send_start.elapsed() - stop_at;
    assert!(
        exited && status.is_some_and(|s| s.success()),
        "{victim_id} did not stop cleanly on SIGTERM: {status:?}"
    );

    // The other node takes the stopped node's queues over (on the next commit it hears
    // of for them, or at its sweep) before any replacement exists.
    let survivor = cluster.nodes[1 - victim].spec.node_id.clone();
    let taken_over = loop {
        let now = owners(db.store.as_ref()).await;
        if victim_queues
            .iter()
            .any(|q| now[q].as_deref() == Some(survivor.as_str()))
        {
            break send_start.elapsed() - stop_at - stopped_in;
        }
        assert!(
            send_start.elapsed() - stop_at < Duration::from_secs(15),
            "{survivor} did not take over any of {victim_queues:?} within 15 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Two thirds of the way: a replacement with a new node id joins on the same port.
    wait_for_progress(&next, batches.len() * 2 / 3, deadline).await;
    let replacement = format!("{victim_id}-2");
    cluster
        .restart(victim, spec(&db, &replacement, ports[victim], 3000))
        .await;
    targets.lock().unwrap_or_else(|e| e.into_inner()).push(victim_base);
    let rejoin_at = send_start.elapsed();

    let Finished {
        stats,
        send_time,
        acks,
        reference_of,
        expected,
        delivery_time,
    } = finish(senders, &results, &batches, total, &sinks, &db, send_start).await;
    observing.store(false, Ordering::SeqCst);
    let _ = observer.await;
    let reports = check_deliveries(&sinks, &expected, &reference_of);
    // A node stopped with SIGTERM records what it delivered before letting its queues go.
    let redelivered: usize = reports.values().map(|r| r.redeliveries).sum();
    assert_eq!(
        redelivered,
        0,
        "redeliveries after a graceful hand-over:\n{}",
        summary(&sinks, &reports)
    );

    // The stopped node's queues went on with another node.
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        !victim_queues.is_empty(),
        "{victim_id} held no queue when stopped: {held:?}"
    );
    for q in &victim_queues {
        let others: Vec<&String> = seen[q].iter().filter(|o| **o != victim_id).collect();
        assert!(
            !others.is_empty(),
            "{q} was never held by a node other than {victim_id}"
        );
    }

    for i in 0..cluster.nodes.len() {
        let (exited, status) = cluster.nodes[i].terminate(Duration::from_secs(15)).await;
        assert!(
            exited && status.is_some_and(|s| s.success()),
            "node {i} did not stop cleanly: {status:?}"
        );
    }
    let duplicates = acks.values().flatten().filter(|a| a.status == "duplicate").count();
    let retries: usize = stats.iter().map(|s| s.retries).sum();
    eprintln!(
        "two nodes: {total} messages in {} requests ({retries} retries, {duplicates} duplicates) sent in {:.1} s; \
         {victim_id} (held {victim_queues:?}) stopped at {:.1} s in {:.2} s, {survivor} took over after {:.2} s, \
         {replacement} joined at {:.1} s; \
         all delivered at {:.1} s; lease holders seen {seen:?}\n{}\n  total test time {:.1} s",
        batches.len(),
        send_time.as_secs_f64(),
        stop_at.as_secs_f64(),
        stopped_in.as_secs_f64(),
        taken_over.as_secs_f64(),
        rejoin_at.as_secs_f64(),
        delivery_time.as_secs_f64(),
        summary(&sinks, &reports),
        started.elapsed().as_secs_f64(),
    );
    print_warnings(&cluster);
}

/// One node under load is killed with SIGKILL three times and restarted on the same
/// port and database with its own node id: it takes its leases back at once. Senders
/// resend whatever got no answer with the same references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_loses_nothing_acknowledged() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    // Slow recipients: a backlog builds up, so a kill loses deliveries not yet recorded.
    let sinks = sinks(1, 6).await;
    let db = store_delivering_to(&sinks).await;
    let mut cluster = Cluster::new();
    let port = free_port();
    // Every incarnation is node "crash" with leases of 30 s: a restart resumes its queues
    // at once, or the deliveries wait for the leases to expire and the check below fails.
    const TTL_MS: u64 = 30_000;
    cluster.start(spec(&db, "crash", port, TTL_MS)).await;
    // No second live process may take the same name.
    let (status, log) = cluster.refused(spec(&db, "crash", free_port(), TTL_MS)).await;
    assert!(
        status.is_none_or(|s| !s.success()) && log.contains("held by another live process"),
        "exit {status:?}:\n{log}"
    );
    let targets: Targets = Arc::new(Mutex::new(vec![cluster.nodes[0].base()]));
    let batches = Arc::new(traffic(&db, "crash", 300, 5));
    let total: usize = batches.iter().map(|b| b.references.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(40);

    let send_start = Instant::now();
    let (senders, next, results) = start_senders(
        &cluster.http,
        &targets,
        &batches,
        4,
        Duration::from_millis(80),
        deadline,
    );
    let mut kills = Vec::new();
    for k in 0..3 {
        // At a random moment in the second, third and fourth fifth of the load.
        let n = batches.len() as u64;
        let at_batch = n * (k as u64 + 1) / 5 + random_below(n / 5);
        wait_for_progress(&next, usize::try_from(at_batch).unwrap_or(usize::MAX), deadline).await;
        let taken = next.load(Ordering::SeqCst);
        assert!(
            taken < batches.len(),
            "kill {} came after the load ({taken} batches taken)",
            k + 1
        );
        let at = send_start.elapsed();
        cluster.nodes[0].kill9();
        let killed = Instant::now();
        cluster.restart(0, spec(&db, "crash", port, TTL_MS)).await;
        let up = killed.elapsed();
        // Delivering again: a sink takes a request it had not had before the restart.
        let seen = delivered_total(&sinks);
        while delivered_total(&sinks) == seen {
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "kill {}: no delivery 10 s after the kill (leases of {TTL_MS} ms not resumed)",
                k + 1
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kills.push(format!(
            "kill {} at {:.1} s (batch {taken}): up after {:.2} s, delivering after {:.2} s",
            k + 1,
            at.as_secs_f64(),
            up.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        ));
    }
    let Finished {
        stats,
        send_time,
        acks,
        reference_of,
        expected,
        delivery_time,
    } = finish(senders, &results, &batches, total, &sinks, &db, send_start).await;
    let reports = check_deliveries(&sinks, &expected, &reference_of);
    // The kills hit deliveries not yet recorded: redelivery (of the same transactions,
    // in order) was exercised, not only skipped.
    let redelivered: usize = reports.values().map(|r| r.redeliveries).sum();
    assert!(
        redelivered > 0,
        "no redelivery after three kills:\n{}",
        summary(&sinks, &reports)
    );

    let (exited, status) = cluster.nodes[0].terminate(Duration::from_secs(15)).await;
    assert!(
        exited && status.is_some_and(|s| s.success()),
        "the last node did not stop cleanly: {status:?}"
    );
    let duplicates = acks.values().flatten().filter(|a| a.status == "duplicate").count();
    let retries: usize = stats.iter().map(|s| s.retries).sum();
    let errors: usize = stats.iter().map(|s| s.connection_errors).sum();
    eprintln!(
        "crash: {total} messages in {} requests ({retries} retries, {errors} connection errors, {duplicates} duplicates) \
         sent in {:.1} s; all delivered at {:.1} s\n  {}\n{}\n  total test time {:.1} s",
        batches.len(),
        send_time.as_secs_f64(),
        delivery_time.as_secs_f64(),
        kills.join("\n  "),
        summary(&sinks, &reports),
        started.elapsed().as_secs_f64(),
    );
    print_warnings(&cluster);
}

/// Two nodes share the load with leases of 30 s; midway the node holding the most
/// queues is killed with SIGKILL and not restarted. The other sees it gone (its identity
/// lock is free) and takes its queues over within seconds, not at lease expiry; nothing
/// acknowledged is lost, order holds and no queue is delivered by two requests at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_queues_are_taken_over_within_seconds() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let sinks = sinks(5, 3).await;
    let db = store_delivering_to(&sinks).await;
    let mut cluster = Cluster::new();
    const TTL_MS: u64 = 30_000;
    let ports = [free_port(), free_port()];
    cluster.start(spec(&db, "peer-a", ports[0], TTL_MS)).await;
    cluster.start(spec(&db, "peer-b", ports[1], TTL_MS)).await;
    let targets: Targets = Arc::new(Mutex::new(vec![cluster.nodes[0].base(), cluster.nodes[1].base()]));
    let batches = Arc::new(traffic(&db, "peer", 240, 10));
    let total: usize = batches.iter().map(|b| b.references.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(40);
    let send_start = Instant::now();
    let (senders, next, results) = start_senders(
        &cluster.http,
        &targets,
        &batches,
        8,
        Duration::from_millis(25),
        deadline,
    );

    // A third of the way: kill the node that holds the most queues.
    wait_for_progress(&next, batches.len() / 3, deadline).await;
    let Victim {
        index: victim,
        id: victim_id,
        queues: victim_queues,
        held,
        ..
    } = victim(&db, &cluster, &targets).await;
    let survivor = cluster.nodes[1 - victim].spec.node_id.clone();
    assert!(!victim_queues.is_empty(), "{victim_id} held no queue: {held:?}");
    let victim_sinks: Vec<usize> = victim_queues
        .iter()
        .map(|q| QUEUES.iter().position(|x| x == q).expect("queue"))
        .collect();
    let requests = |sinks: &[MockRecipient]| victim_sinks.iter().map(|&i| sinks[i].received().len()).sum::<usize>();
    cluster.nodes[victim].kill9();
    let killed = Instant::now();
    let before = requests(&sinks);
    let taken_over = loop {
        let now = owners(db.store.as_ref()).await;
        if victim_queues
            .iter()
            .all(|q| now[q].as_deref() != Some(victim_id.as_str()))
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{victim_id}'s leases of {TTL_MS} ms still stand 5 s after the kill: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let Finished {
        stats,
        send_time,
        acks,
        reference_of,
        expected,
        delivery_time,
    } = finish(senders, &results, &batches, total, &sinks, &db, send_start).await;
    assert!(
        requests(&sinks) > before,
        "the killed node's queues were delivered again"
    );
    let reports = check_deliveries(&sinks, &expected, &reference_of);
    let now = owners(db.store.as_ref()).await;
    for q in &victim_queues {
        assert_ne!(
            now[q].as_deref(),
            Some(victim_id.as_str()),
            "{q} still leased to the dead node"
        );
    }
    let (exited, status) = cluster.nodes[1 - victim].terminate(Duration::from_secs(15)).await;
    assert!(
        exited && status.is_some_and(|s| s.success()),
        "{survivor} did not stop cleanly: {status:?}"
    );
    let retries: usize = stats.iter().map(|s| s.retries).sum();
    let duplicates = acks.values().flatten().filter(|a| a.status == "duplicate").count();
    eprintln!(
        "takeover: {total} messages in {} requests ({retries} retries, {duplicates} duplicates) sent in {:.1} s; \
         {victim_id} (held {victim_queues:?}) killed, its leases freed by {survivor} after {:.2} s; \
         all delivered at {:.1} s\n{}\n  total test time {:.1} s",
        batches.len(),
        send_time.as_secs_f64(),
        taken_over.as_secs_f64(),
        delivery_time.as_secs_f64(),
        summary(&sinks, &reports),
        started.elapsed().as_secs_f64(),
    );
    print_warnings(&cluster);
}

/// Requests the sinks have taken so far, any answer.
fn delivered_total(sinks: &[MockRecipient]) -> usize {
    sinks.iter().map(|s| s.received().len()).sum()
}

/// The order checks catch what they are meant to: a gap, a reordering, a position
/// delivered as another transaction, a transaction not acknowledged, one missing.
#[test]
fn order_checks_catch_violations() {
    let d = |seq: i64, tx: &str| broker_core::mock_recipient::Received {
        transaction_id: tx.to_owned(),
        queue: "q".to_owned(),
        seq,
        body: None,
        latency_us: 0,
        status: 200,
        client_certificate: None,
        dip_headers: Default::default(),
        raw: None,
    };
    let expected: HashSet<String> = ["a", "b", "c", "d"].iter().map(|t| (*t).to_owned()).collect();
    let check = |list: &[broker_core::mock_recipient::Received]| check_queue("q", list, &expected);
    let ok = [
        d(1, "a"),
        d(2, "b"),
        d(3, "c"),
        d(2, "b"),
        d(3, "c"),
        d(4, "d"),
        d(4, "d"),
    ];
    let r = check(&ok).expect("in order with redeliveries");
    assert_eq!((r.distinct, r.redeliveries, r.rewinds), (4, 3, 2));
    for (bad, why) in [
        (vec![d(1, "a"), d(3, "c"), d(2, "b"), d(4, "d")], "gap"),
        (vec![d(2, "b"), d(1, "a"), d(3, "c"), d(4, "d")], "gap"),
        (
            vec![d(1, "a"), d(2, "b"), d(3, "c"), d(1, "a"), d(4, "d")],
            "new position while redelivering",
        ),
        (
            vec![d(1, "a"), d(2, "b"), d(2, "c"), d(3, "c"), d(4, "d")],
            "first delivered as",
        ),
        (
            vec![d(1, "a"), d(2, "b"), d(3, "c"), d(4, "b")],
            "delivered before at seq",
        ),
        (vec![d(1, "a"), d(2, "b"), d(3, "c"), d(4, "x")], "not acknowledged"),
        (vec![d(1, "a"), d(2, "b"), d(3, "c")], "missing"),
    ] {
        let e = check(&bad).expect_err(why);
        assert!(e.contains(why), "{why}: {e}");
    }
}

/// A figure of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the status of {pid}"))
}

/// 200 sign-ins at once with made-up usernames, two from each of 100 loopback
/// addresses (issue 12). Each password check runs argon2id over 19 MiB, and unknown
/// names dodge the per-user throttle, so only the cap on concurrent checks keeps memory
/// bounded: the server's peak resident memory may grow by less than 150 MiB (unbounded,
/// it grew by 423 MiB for 32 attempts). Every attempt gets an answer: a wrong password
/// (400) or a refusal beyond the bounds (429, 503), never a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ins_keep_memory_bounded() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::new();
    let port = free_port();
    let url = format!("sqlite://{}", cluster.dir.path().join("dip.db").display());
    cluster
        .start(NodeSpec {
            database_url: url,
            port,
            node_id: "sign-in-load".into(),
            lease_ttl_ms: 5000,
            request_timeout_ms: 1000,
        })
        .await;
    let pid = cluster.nodes[0].pid().expect("pid");
    let base = cluster.nodes[0].base();
    let attempt = |client: reqwest::Client, username: String| {
        let base = base.clone();
        async move {
            client
                .post(format!("{base}/fn/sign_in"))
                .header("origin", &base)
                .header("accept", "application/json")
                .form(&[("username", username.as_str()), ("password", "a guess at a password")])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    // One attempt first, so that what is made once (the decoy hash) is not counted.
    assert_eq!(attempt(cluster.http.clone(), "warm-up".into()).await, 400);
    let before = proc_status_kib(pid, "VmRSS");
    // Resets the peak (VmHWM) to the current figure, where the kernel allows it.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");

    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let address = std::net::Ipv4Addr::new(127, 0, 0, 10 + u8::try_from(i % 100).unwrap());
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(address))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        attempts.spawn(attempt(client, format!("nobody-{i}-{}", random_below(1_000_000))));
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    while let Some(status) = attempts.join_next().await {
        *statuses.entry(status.unwrap()).or_default() += 1;
    }
    let peak = proc_status_kib(pid, "VmHWM");
    println!(
        "200 concurrent sign-ins: resident memory {} MiB before, peak {} MiB (+{} MiB); answers {statuses:?}",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    assert!(
        statuses.keys().all(|s| [400, 429, 503].contains(s)),
        "{statuses:?}\n{}",
        cluster.logs(20)
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) >= 2,
        "some attempts are checked: {statuses:?}"
    );
    assert!(
        peak.saturating_sub(before) < 150 * 1024,
        "peak resident memory grew by {} MiB",
        peak.saturating_sub(before) / 1024
    );
}
