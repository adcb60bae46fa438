//! Harness for tests that run real `dip serve` processes: a fresh PostgreSQL database
//! (dropped afterwards), node processes whose logs are kept and shown when a test fails,
//! a sender that retries until the platform answers, and the recipient-side checks of
//! per-queue order.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::catalogue::CatalogueData;
use broker_core::mock_recipient::Received;
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};
use serde_json::{Value, json};
use tokio::time::Instant;

// Demo participants (broker-core/demo/demo.toml).
pub const SUP1: &str = "1000000001";
pub const SUP2: &str = "1000000002";
pub const REGS_N: &str = "1000000011";
pub const REGS_S: &str = "1000000012";
/// Smart MPAN of the demo appointment table.
pub const MPAN_SMART: &str = "1600001000020";

/// PostgreSQL server the tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("DIP_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database with the catalogue and the demo directory, dropped on drop.
pub struct TestDb {
    pub url: String,
    pub store: Arc<dyn Store>,
    pub demo: DirectoryData,
    name: String,
}

impl TestDb {
    /// Creates and seeds the database; `webhooks` gives `(dip_id, endpoint name, url)` of
    /// demo endpoints that are to be delivered by webhook.
    pub async fn new(webhooks: &[(&str, &str, String)]) -> Self {
        let name = format!("dip_test_{}", uuid::Uuid::new_v4().simple());
        let url = store::create_database(&pg_admin_url(), &name)
            .await
            .expect("create test database (is PostgreSQL running?)");
        let store = store::connect(&url).await.expect("connect postgres");
        store.migrate().await.expect("migrate");
        seed_catalogue(store.as_ref(), &CatalogueData::seed().expect("catalogue"))
            .await
            .expect("seed catalogue");
        let mut demo = DirectoryData::demo().expect("demo directory");
        for (dip_id, endpoint, hook) in webhooks {
            let e = demo
                .participants
                .iter_mut()
                .find(|p| p.dip_id == *dip_id)
                .and_then(|p| p.endpoints.iter_mut().find(|e| e.name == *endpoint))
                .unwrap_or_else(|| panic!("no demo endpoint {dip_id}/{endpoint}"));
            e.url = Some(hook.clone());
        }
        seed_directory(store.as_ref(), &demo).await.expect("seed directory");
        Self { url, store, demo, name }
    }

    pub fn key(&self, dip_id: &str) -> String {
        self.demo
            .key_of(dip_id)
            .unwrap_or_else(|| panic!("no demo participant {dip_id}"))
            .to_owned()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop needs a runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _ = rt.block_on(store::drop_database(&pg_admin_url(), &name));
        })
        .join();
    }
}

/// A free port on 127.0.0.1 (free when asked; the node binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub database_url: String,
    pub port: u16,
    pub node_id: String,
    pub lease_ttl_ms: u64,
    pub request_timeout_ms: u64,
}

/// One `dip serve` process; killed when dropped.
pub struct Node {
    pub spec: NodeSpec,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit; returns whether it exited
    /// by itself (it is killed otherwise) and its exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> (bool, Option<std::process::ExitStatus>) {
        let Some(mut c) = self.child.take() else {
            return (true, None);
        };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (true, Some(status));
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                return (false, c.wait().ok());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The node processes of a test, their logs (every incarnation) in a temporary folder,
/// shown when the test panics.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub http: reqwest::Client,
    started: usize,
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            nodes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            started: 0,
        }
    }

    /// Starts a node and waits until it answers its health check; returns its index.
    pub async fn start(&mut self, spec: NodeSpec) -> usize {
        let node = self.spawn(spec).await;
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Replaces node `i` (which must have stopped) with a new process of `spec`.
    pub async fn restart(&mut self, i: usize, spec: NodeSpec) {
        self.nodes[i].kill9();
        let node = self.spawn(spec).await;
        self.nodes[i] = node;
    }

    async fn spawn(&mut self, spec: NodeSpec) -> Node {
        self.started += 1;
        let log = self
            .dir
            .path()
            .join(format!("{:02}-{}.log", self.started, spec.node_id));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dip"))
            .arg("serve")
            .arg("--database-url")
            .arg(&spec.database_url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--node-id")
            .arg(&spec.node_id)
            .arg("--lease-ttl-ms")
            .arg(spec.lease_ttl_ms.to_string())
            .arg("--request-timeout-ms")
            .arg(spec.request_timeout_ms.to_string())
            // The sinks listen on loopback, which webhooks may reach only when allow-listed.
            .arg("--webhook-allow")
            .arg("127.0.0.0/8")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("DIP_CONFIG")
            .env_remove("DIP_DATA_DIR")
            .env_remove("DIP_ENVIRONMENT")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start dip serve");
        let mut node = Node {
            spec,
            log,
            child: Some(child),
        };
        let health = format!("{}/api/v1/health", node.base());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if node.exited() {
                panic!("{} exited while starting:\n{}", node.spec.node_id, tail(&node.log, 40));
            }
            if let Ok(r) = self.http.get(&health).send().await
                && r.status().is_success()
            {
                return node;
            }
            if Instant::now() >= deadline {
                panic!("{} did not become healthy:\n{}", node.spec.node_id, tail(&node.log, 40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of every log of this cluster, oldest incarnation first.
    pub fn logs(&self, lines: usize) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|x| x == "log"));
        files.sort();
        files
            .iter()
            .map(|f| format!("==== {} ====\n{}", f.display(), tail(f, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The WARN and ERROR lines of every incarnation's log.
    pub fn warnings(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .map(|l| format!("{name}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::thread::panicking() {
            eprintln!("---- node logs (tails) ----\n{}", self.logs(30));
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

fn common_block(interface: &str, event: &str, sender: &str, role: &str, reference: &str, targets: &[&str]) -> Value {
    json!({
        "S0": { "interfaceID": interface, "schemaVersion": "001", "eventCode": event },
        "S1": {
            "environmentTag": "DEV",
            "senderUniqueReference": reference,
            "senderTimestamp": "2026-11-27T09:00:00+00:00",
            "senderDIPID": sender,
            "senderRoleID": role,
            "senderCorrelationID": null,
            "DIPConnectionProviderID": null
        },
        "M0": { "MPANCore": MPAN_SMART },
        "A0": { "primaryRecipients": targets }
    })
}

/// IF-031 Supplier Service Appointment Request from a supplier to registration services.
pub fn if031(sender: &str, reference: &str, targets: &[&str]) -> Value {
    json!({ "payload": {
        "CommonBlock": common_block("IF-031", "SupplierServiceAppointmentRequest", sender, "SUP", reference, targets),
        "CustomBlock": {
            "mpanCore": MPAN_SMART,
            "supplierId": "AURA",
            "serviceRole": "MSS",
            "serviceProviderId": "KYST",
            "serviceProviderDIPID": "1000000031",
            "effectiveFromDate": "2025-02-01",
            "contractReference": "C-1"
        }
    }})
}

/// IF-032 Registration Service response from a registration service to a supplier (SUP1
/// takes it on its `registration` endpoint).
pub fn if032(sender: &str, reference: &str, targets: &[&str]) -> Value {
    json!({ "payload": {
        "CommonBlock": common_block("IF-032", "SupplierServiceAppointmentResponse", sender, "REGS", reference, targets),
        "CustomBlock": {
            "mpanCore": MPAN_SMART,
            "serviceRole": "MSS",
            "serviceProviderId": "KYST",
            "effectiveFromDate": "2025-02-01",
            "appointmentRequestOutcome": "A"
        }
    }})
}

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
pub fn traffic(db: &TestDb, run: &str, batches: usize, per_batch: usize) -> Vec<Batch> {
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
                    0 => if031(SUP1, r, &[REGS_N]),
                    1 => if031(SUP2, r, &[REGS_S]),
                    2 => if031(SUP1, r, &[REGS_N, REGS_S]),
                    _ => if032(REGS_N, r, &[SUP1]),
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
