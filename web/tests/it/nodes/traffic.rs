//! The test traffic of the node tests, a sender that retries until the platform answers,
//! and the recipient-side checks of per-queue order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::mock_recipient::Received;
use broker_core::store::Store;
use dip_testkit::{REGS_N, REGS_S, SUP1, SUP2, TestStore, if031_from, if032_from};
use serde_json::Value;
use tokio::time::Instant;

/// One request of the test traffic: items of one sender, and the queues each item goes to.
#[derive(Debug, Clone)]
pub struct Batch {
    pub key: String,
    pub references: Vec<String>,
    pub queues: Vec<&'static str>,
    pub body: Vec<u8>,
}

/// The test traffic: `batches` requests of `per_batch` items in four kinds, cycling: SUP1
/// → REGS_N, SUP2 → REGS_S, SUP1 → both, REGS_N → SUP1 (IF-032). References are unique
/// per `run`.
pub fn traffic(db: &TestStore, run: &str, batches: usize, per_batch: usize) -> Vec<Batch> {
    (0..batches)
        .map(|b| {
            let (sender, queues): (&str, Vec<&'static str>) = match b % 4 {
                0 => (SUP1, vec![Q_REGS_N]),
                1 => (SUP2, vec![Q_REGS_S]),
                2 => (SUP1, vec![Q_REGS_N, Q_REGS_S]),
                _ => (REGS_N, vec![Q_SUP1]),
            };
            let references: Vec<String> = (0..per_batch).map(|i| format!("{run}-{b:05}-{i:02}")).collect();
            let items: Vec<Value> = references
                .iter()
                .map(|r| match b % 4 {
                    0 => if031_from(SUP1, r, &[REGS_N]),
                    1 => if031_from(SUP2, r, &[REGS_S]),
                    2 => if031_from(SUP1, r, &[REGS_N, REGS_S]),
                    _ => if032_from(REGS_N, r, &[SUP1]),
                })
                .collect();
            Batch {
                key: db.key(sender),
                references,
                queues,
                body: serde_json::to_vec(&items).expect("json"),
            }
        })
        .collect()
}

pub const Q_REGS_N: &str = "1000000011/default";
pub const Q_REGS_S: &str = "1000000012/default";
pub const Q_SUP1: &str = "1000000001/registration";
pub const QUEUES: [&str; 3] = [Q_REGS_N, Q_REGS_S, Q_SUP1];

/// What the platform acknowledged: per item, its reference, status and transaction id.
#[derive(Debug, Clone)]
pub struct Ack {
    pub reference: String,
    pub status: String,
    pub transaction_id: String,
}

/// The base URLs of the nodes senders may use now.
pub type Targets = Arc<Mutex<Vec<String>>>;

/// Statistics of a sender.
#[derive(Debug, Default, Clone)]
pub struct SendStats {
    pub requests: usize,
    pub retries: usize,
    pub unavailable: usize,
    pub connection_errors: usize,
}

/// POSTs a batch to one of `targets` (preferring `prefer`) until a node answers 202;
/// connection errors and 503 are retried with the same body, so a resend after a lost
/// answer is a duplicate of the original. Panics on any other answer or at `deadline`.
pub async fn send_until_acknowledged(
    http: &reqwest::Client,
    targets: &Targets,
    prefer: usize,
    batch: &Batch,
    deadline: Instant,
    stats: &mut SendStats,
) -> Vec<Ack> {
    let mut attempt = 0usize;
    loop {
        let base = {
            let t = targets.lock().unwrap_or_else(|e| e.into_inner());
            if t.is_empty() {
                None
            } else {
                Some(t[(prefer + attempt) % t.len()].clone())
            }
        };
        if let Some(base) = base {
            stats.requests += 1;
            let sent = http
                .post(format!("{base}/api/v1/messages"))
                .bearer_auth(&batch.key)
                .header("content-type", "application/json")
                .body(batch.body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() == 202 => {
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    let results = body["results"].as_array().cloned().unwrap_or_default();
                    if results.len() == batch.references.len() {
                        return batch
                            .references
                            .iter()
                            .zip(results)
                            .map(|(reference, r)| Ack {
                                reference: reference.clone(),
                                status: r["status"].as_str().unwrap_or_default().to_owned(),
                                transaction_id: r["transactionID"].as_str().unwrap_or_default().to_owned(),
                            })
                            .collect();
                    }
                    // The answer was cut off by a kill: ask again.
                    stats.connection_errors += 1;
                }
                Ok(r) if r.status().as_u16() == 503 => stats.unavailable += 1,
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    panic!("unexpected answer {status} from {base}: {text}");
                }
                Err(_) => stats.connection_errors += 1,
            }
        }
        if Instant::now() >= deadline {
            panic!("batch {} never acknowledged", batch.references[0]);
        }
        attempt += 1;
        stats.retries += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Recipient-side checks
// ---------------------------------------------------------------------------------------

/// The transaction ids a queue must receive: those acknowledged for a batch going to it.
pub fn expected(batches: &[Batch], acks: &HashMap<usize, Vec<Ack>>) -> BTreeMap<&'static str, HashSet<String>> {
    let mut out: BTreeMap<&'static str, HashSet<String>> = QUEUES.iter().map(|q| (*q, HashSet::new())).collect();
    for (i, a) in acks {
        for q in &batches[*i].queues {
            let set = out.get_mut(q).expect("known queue");
            set.extend(a.iter().map(|a| a.transaction_id.clone()));
        }
    }
    out
}

/// Distinct transaction ids delivered (2xx) per queue.
pub fn delivered_ids(delivered: &[Received]) -> BTreeMap<String, HashSet<String>> {
    let mut out: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for d in delivered {
        out.entry(d.queue.clone()).or_default().insert(d.transaction_id.clone());
    }
    out
}

/// Waits until every expected transaction is delivered or `timeout` passes.
pub async fn wait_all_delivered(
    sinks: &[&broker_core::mock_recipient::MockRecipient],
    expected: &BTreeMap<&'static str, HashSet<String>>,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let delivered: Vec<Received> = sinks.iter().flat_map(|s| s.delivered()).collect();
        let got = delivered_ids(&delivered);
        let done = expected
            .iter()
            .all(|(q, want)| got.get(*q).is_some_and(|g| want.is_subset(g)));
        if done {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the checks of one queue found.
#[derive(Debug, Default)]
pub struct QueueReport {
    pub deliveries: usize,
    pub distinct: usize,
    pub redeliveries: usize,
    pub rewinds: usize,
}

/// Checks the 2xx deliveries of one queue in arrival order: positions of first
/// deliveries are exactly 1, 2, 3, … (FIFO, no gaps); a delivery that is not the next new
/// position repeats an earlier one (a redelivery after a hand-over or crash), carries the
/// same transaction id as the first delivery of that position, and redeliveries run in
/// order until they catch up. Every delivered transaction id is one the platform
/// acknowledged for this queue (`expected`), and each appears at one position only.
pub fn check_queue(queue: &str, delivered: &[Received], expected: &HashSet<String>) -> Result<QueueReport, String> {
    let mut report = QueueReport::default();
    let mut by_seq: HashMap<i64, String> = HashMap::new();
    let mut by_tx: HashMap<String, i64> = HashMap::new();
    let mut max = 0i64;
    let mut prev = 0i64;
    for (i, d) in delivered.iter().filter(|d| d.queue == queue).enumerate() {
        report.deliveries += 1;
        let here = format!("{queue} delivery #{i} (seq {}, tx {})", d.seq, d.transaction_id);
        if !expected.contains(&d.transaction_id) {
            return Err(format!("{here}: transaction not acknowledged for this queue"));
        }
        if let Some(seq) = by_tx.get(&d.transaction_id)
            && *seq != d.seq
        {
            return Err(format!("{here}: the transaction was delivered before at seq {seq}"));
        }
        if d.seq > max {
            if d.seq != max + 1 {
                return Err(format!("{here}: gap, the highest position delivered before was {max}"));
            }
            if prev != max {
                return Err(format!(
                    "{here}: new position while redelivering (previous delivery was seq {prev})"
                ));
            }
            max = d.seq;
            by_seq.insert(d.seq, d.transaction_id.clone());
            by_tx.insert(d.transaction_id.clone(), d.seq);
        } else {
            report.redeliveries += 1;
            if d.seq != prev + 1 {
                report.rewinds += 1;
            }
            match by_seq.get(&d.seq) {
                Some(t) if *t == d.transaction_id => {}
                Some(t) => return Err(format!("{here}: position {} was first delivered as {t}", d.seq)),
                None => return Err(format!("{here}: position never delivered before")),
            }
        }
        prev = d.seq;
    }
    report.distinct = by_tx.len();
    if report.distinct != expected.len() {
        let missing: Vec<&String> = expected.iter().filter(|t| !by_tx.contains_key(*t)).take(5).collect();
        return Err(format!(
            "{queue}: {} of {} acknowledged transactions delivered; missing e.g. {missing:?}",
            report.distinct,
            expected.len()
        ));
    }
    Ok(report)
}

/// Checks that each delivered body is the message acknowledged under that transaction id.
pub fn check_bodies(delivered: &[Received], reference_of: &HashMap<String, String>) -> Result<(), String> {
    for d in delivered {
        let Some(body) = &d.body else { continue };
        let got = body
            .pointer("/0/payload/CommonBlock/S1/senderUniqueReference")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match reference_of.get(&d.transaction_id) {
            Some(want) if want == got => {}
            want => {
                return Err(format!(
                    "{} seq {}: body has reference {got:?}, acknowledged as {want:?}",
                    d.queue, d.seq
                ));
            }
        }
    }
    Ok(())
}

/// Waits until the store has nothing pending or dead-lettered in `QUEUES`; returns the
/// last health figures as text when it does not happen within `timeout`.
pub async fn wait_settled(store: &dyn Store, timeout: Duration) -> Result<(), String> {
    let ids: Vec<String> = QUEUES.iter().map(|q| (*q).to_owned()).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let health = store.queue_health(&ids).await.map_err(|e| e.to_string())?;
        if health.iter().all(|h| h.pending == 0 && h.dead == 0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let lines: Vec<String> = health
                .iter()
                .map(|h| {
                    format!(
                        "{}: pending {} dead {} owner {:?} last outcome {:?}",
                        h.queue_id, h.pending, h.dead, h.owner, h.last_outcome
                    )
                })
                .collect();
            return Err(lines.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pseudo-random number below `n` (no extra dependency: the v4 uuid is random).
pub fn random_below(n: u64) -> u64 {
    let r = uuid::Uuid::new_v4().as_u128();
    u64::try_from(r % u128::from(n.max(1))).unwrap_or(0)
}
