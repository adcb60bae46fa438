//! `dip bench`: benchmark programs that print throughput and latency percentiles.
//!
//! Every run starts the platform in-process on a fresh store (a temporary SQLite folder, or
//! a new PostgreSQL database that is dropped afterwards), loads the demo directory, and
//! drives `POST /api/v1/messages` over loopback HTTP.
//!
//! `dip bench ingest` measures ingest alone, from concurrent closed-loop clients. Each
//! message is a valid IF-031 (supplier → registration service, targeted), so every
//! accepted message is validated, routed, archived and queued.
//!
//! `dip bench e2e` also runs delivery, to one webhook sink per recipient on loopback, and
//! measures from receipt (`D0.transactionTimestamp`) to arrival at the recipient. Messages
//! go round-robin over targeted channels to K distinct recipients, one item per request.
//! A closed-loop saturation phase finds the end-to-end rate; open-loop phases then offer
//! fixed rates (a request is sent on schedule whatever the earlier ones are doing, and its
//! latency counts from the schedule, so a stalled server cannot hide its stall). Each
//! phase also checks what recipients can see: every accepted message delivered, per-queue
//! order, duplicates, and no queue delivered by two requests at once.

mod analytics;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use broker_core::catalogue::CatalogueData;
use broker_core::delivery::{self, DeliveryConfig};
use broker_core::mock_recipient::MockRecipient;
use broker_core::model::Endpoint;
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};
use broker_core::{Broker, BrokerConfig};
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and p50/p90/p99 latency for each store and batch size.
    Ingest(IngestArgs),
    /// End-to-end delivery: saturation rate, then receipt-to-delivery latency at fixed offered rates.
    E2e(E2eArgs),
    /// Analytics: the pump's rate into ClickHouse and the embedded tables, and report
    /// query times on 10 million events in ClickHouse.
    Analytics(analytics::AnalyticsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// Which stores to measure, and where PostgreSQL databases are made.
#[derive(Args)]
struct StoreChoice {
    /// Stores to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<StoreKind>,
    /// PostgreSQL server on which a throwaway database is created.
    #[arg(
        long,
        env = "DIP_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
}

#[derive(Args)]
pub struct IngestArgs {
    #[command(flatten)]
    stores: StoreChoice,
    /// Items per request.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    batches: Vec<usize>,
    /// Measured seconds per run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients; by default 64 for single-item requests, 8 for batches.
    #[arg(long)]
    clients: Option<usize>,
}

#[derive(Args)]
pub struct E2eArgs {
    #[command(flatten)]
    stores: StoreChoice,
    /// Measured seconds per phase (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds per phase, left out of every figure.
    #[arg(long, default_value_t = 1)]
    warm_up: u64,
    /// Closed-loop clients of the saturation phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Distinct recipient queues, each with its own webhook sink.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=ROUTES.len() as i64))]
    recipients: u8,
    /// Open-loop phases at these fractions of the measured saturation rate.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,1.0")]
    fractions: Vec<f64>,
    /// Open-loop phases at these offered rates (messages/s) instead of fractions of saturation.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Skip the saturation phase (only with --rates).
    #[arg(long, requires = "rates")]
    no_saturation: bool,
    /// Longest wait, in seconds, for the backlog to be delivered after a phase.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Most requests in flight in an open-loop phase; a request due beyond it is not sent
    /// and counts as an error.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::E2e(args) => e2e(args).await,
        BenchCommand::Analytics(args) => analytics::run(args).await,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn store_name(kind: StoreKind) -> String {
    format!("{kind:?}").to_lowercase()
}

// ---------------------------------------------------------------------------------------
// Shared: stores, the platform, messages, load generators, histograms
// ---------------------------------------------------------------------------------------

/// A store that removes itself afterwards.
struct BenchStore {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl BenchStore {
    async fn new(kind: StoreKind, pg_admin_url: &str) -> anyhow::Result<Self> {
        let made = match kind {
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir()?;
                let store = store::connect(&crate::config::sqlite_url(dir.path())).await?;
                Self {
                    store,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            StoreKind::Postgres => {
                let name = format!("dip_bench_{}", uuid::Uuid::new_v4().simple());
                let url = store::create_database(pg_admin_url, &name)
                    .await
                    .context("creating the benchmark database")?;
                let store = store::connect(&url).await?;
                Self {
                    store,
                    _dir: None,
                    pg: Some((pg_admin_url.to_owned(), name)),
                }
            }
        };
        made.store.migrate().await?;
        seed_catalogue(made.store.as_ref(), &CatalogueData::seed()?).await?;
        seed_directory(made.store.as_ref(), &DirectoryData::demo()?).await?;
        Ok(made)
    }

    async fn remove(self) -> anyhow::Result<()> {
        drop(self.store);
        if let Some((admin, name)) = self.pg {
            store::drop_database(&admin, &name).await?;
        }
        Ok(())
    }
}

/// The platform on a fresh store, serving the participant API on 127.0.0.1.
struct Platform {
    store: BenchStore,
    broker: Broker,
    /// `POST` URL of messages.
    url: Arc<str>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Platform {
    async fn start(kind: StoreKind, pg_admin_url: &str) -> anyhow::Result<Self> {
        let store = BenchStore::new(kind, pg_admin_url).await?;
        let broker = Broker::start(store.store.clone(), BrokerConfig::default()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/api/v1/messages", listener.local_addr()?).into();
        let app = broker_core::api::router(broker.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            store,
            broker,
            url,
            server,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.server.abort();
        let _ = self.server.await;
        drop(self.broker);
        self.store.remove().await
    }
}

const MPAN: &str = "1600001000010";

/// One targeted message flow of the demo directory: `sender` to `recipient` on `channel`.
/// Each recipient appears once, so a message reaches exactly one queue.
struct Route {
    channel: &'static str,
    event: &'static str,
    sender: &'static str,
    sender_role: &'static str,
    recipient: &'static str,
    /// `serviceRole` of the CustomBlock: the metering or data service role concerned.
    service_role: &'static str,
}

const fn route(
    channel: &'static str,
    sender: &'static str,
    sender_role: &'static str,
    recipient: &'static str,
    service_role: &'static str,
) -> Route {
    let event = match channel.as_bytes() {
        b"IF-031" => "SupplierServiceAppointmentRequest",
        b"IF-038" => "CustomerDirectContractQuery",
        _ => "CustomerDirectContractResponse",
    };
    Route {
        channel,
        event,
        sender,
        sender_role,
        recipient,
        service_role,
    }
}

/// Recipients in the order `--recipients` takes them: the registration services (IF-031,
/// the ingest benchmark's message), then metering and data services (IF-038, supplier →
/// service), then the suppliers (IF-039, service → supplier). All are targeted-only
/// channels without obfuscation.
static ROUTES: [Route; 11] = [
    route("IF-031", "1000000001", "SUP", "1000000011", "MSS"),
    route("IF-031", "1000000001", "SUP", "1000000012", "MSS"),
    route("IF-038", "1000000001", "SUP", "1000000031", "MSS"),
    route("IF-038", "1000000001", "SUP", "1000000041", "SDS"),
    route("IF-038", "1000000001", "SUP", "1000000032", "MSS"),
    route("IF-038", "1000000001", "SUP", "1000000042", "SDS"),
    route("IF-038", "1000000001", "SUP", "1000000033", "MSA"),
    route("IF-038", "1000000001", "SUP", "1000000043", "ADS"),
    route("IF-039", "1000000031", "MSS", "1000000001", "MSS"),
    route("IF-039", "1000000041", "SDS", "1000000002", "SDS"),
    route("IF-039", "1000000032", "MSS", "1000000003", "MSS"),
];

impl Route {
    /// The queue the message lands in: the recipient's endpoint taking every channel.
    fn queue(&self) -> String {
        Endpoint::make_id(self.recipient, "default")
    }

    fn item(&self, reference: &str) -> Value {
        let custom = match self.channel {
            "IF-031" => json!({
                "mpanCore": MPAN, "supplierId": "AURA", "serviceRole": self.service_role, "serviceProviderId": "KYST",
                "serviceProviderDIPID": "1000000031", "effectiveFromDate": "2026-12-01", "contractReference": "C-0001",
                "marketSegment": "S"
            }),
            "IF-038" => json!({
                "mpanCore": MPAN, "supplierId": "AURA", "serviceRole": self.service_role,
                "directContractQueryReference": "Q-0001", "supplyStartDate": "2026-12-01", "marketSegment": "S"
            }),
            _ => json!({
                "mpanCore": MPAN, "serviceRole": self.service_role, "serviceProviderId": "KYST",
                "directContractQueryReference": "Q-0001", "customerDirectContract": false
            }),
        };
        json!({"payload": {
            "CommonBlock": {
                "S0": {"interfaceID": self.channel, "schemaVersion": "001", "eventCode": self.event},
                "S1": {"environmentTag": "DEV", "senderUniqueReference": reference, "senderTimestamp": "2026-11-27T09:00:00+00:00",
                       "senderDIPID": self.sender, "senderRoleID": self.sender_role, "senderCorrelationID": null,
                       "DIPConnectionProviderID": null},
                "M0": {"MPANCore": MPAN},
                "A0": {"primaryRecipients": [self.recipient]}
            },
            "CustomBlock": custom
        }})
    }
}

/// POSTs a body of items; the response body if the platform answered 202.
async fn post(http: &reqwest::Client, url: &str, key: &str, body: Vec<u8>) -> Option<axum::body::Bytes> {
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    let accepted = response.status().as_u16() == 202;
    let body = response.bytes().await.ok()?;
    accepted.then_some(body)
}

fn http_client(idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(idle_per_host)
        .build()?)
}

/// A histogram of microseconds, 1 µs to one hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
}

/// Quantile in milliseconds.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `p50=… p90=… p99=… max=…` in milliseconds.
fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "p50={:>7.2} p90={:>7.2} p99={:>7.2} max={:>7.2}",
        ms(h, 0.50),
        ms(h, 0.90),
        ms(h, 0.99),
        h.max() as f64 / 1000.0
    )
}

/// What a load generator saw in its measured window.
struct Window {
    /// Requests measured (finished in the window for closed loops; due in it for open loops).
    requests: u64,
    /// Messages accepted by requests that finished in the window.
    messages: u64,
    /// Measured requests that failed or were not accepted.
    errors: u64,
    elapsed: Duration,
    /// Request latency: send (closed loop) or schedule (open loop) to full response.
    latency: Histogram<u64>,
}

impl Window {
    fn new() -> Self {
        Self {
            requests: 0,
            messages: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
        }
    }

    fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.messages += other.messages;
        self.errors += other.errors;
        self.latency.add(&other.latency)?;
        Ok(())
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `clients` closed-loop clients (each sends its next request when the previous one
/// is answered) for `warm_up`, then measures for `measured`. `send(client, n, measuring)`
/// prepares request `n` of a client and returns its sending, which yields the number of
/// messages accepted, or `None` for a failure.
async fn closed_loop<F, Fut>(clients: usize, warm_up: Duration, measured: Duration, send: F) -> anyhow::Result<Window>
where
    F: Fn(usize, u64, bool) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<u64>> + Send,
{
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (send, recording, stop) = (send.clone(), recording.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut window = Window::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let request = send(c, n, recording.load(Ordering::Relaxed));
                n += 1;
                let started = Instant::now();
                let accepted = request.await;
                if recording.load(Ordering::Relaxed) {
                    record(&mut window.latency, started.elapsed());
                    window.requests += 1;
                    match accepted {
                        Some(m) => window.messages += m,
                        None => window.errors += 1,
                    }
                }
            }
            window
        }));
    }
    tokio::time::sleep(warm_up).await;
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measured).await;
    recording.store(false, Ordering::Relaxed);
    let mut total = Window::new();
    total.elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        total.merge(&t.await?)?;
    }
    Ok(total)
}

/// Sends `rate` requests per second on a fixed schedule for `warm_up + measured`, whether
/// or not earlier requests were answered. Latency counts from the moment a request was
/// due, so a server that stalls is charged for every request that waited. `send(i,
/// measuring)` prepares request `i`; a request due while `max_in_flight` are outstanding
/// is not sent and counts as an error.
async fn open_loop<F, Fut>(
    rate: f64,
    warm_up: Duration,
    measured: Duration,
    max_in_flight: usize,
    send: F,
) -> anyhow::Result<Window>
where
    F: Fn(u64, bool) -> Fut,
    Fut: Future<Output = Option<u64>> + Send + 'static,
{
    let start = tokio::time::Instant::now();
    let (t0, t1) = (start + warm_up, start + warm_up + measured);
    let total = ((warm_up + measured).as_secs_f64() * rate).floor() as u64;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let mut window = Window::new();
    window.elapsed = measured;
    let settle = |window: &mut Window,
                  (due, done, accepted): (tokio::time::Instant, tokio::time::Instant, Option<u64>)| {
        if due >= t0 {
            record(&mut window.latency, done - due);
            window.requests += 1;
        }
        match accepted {
            Some(m) if (t0..t1).contains(&done) => window.messages += m,
            Some(_) => {}
            None if due >= t0 => window.errors += 1,
            None => {}
        }
    };
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        while let Some(done) = tasks.try_join_next() {
            settle(&mut window, done?);
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            settle(&mut window, (due, tokio::time::Instant::now(), None));
            continue;
        };
        let request = send(i, due >= t0);
        tasks.spawn(async move {
            let accepted = request.await;
            drop(permit);
            (due, tokio::time::Instant::now(), accepted)
        });
    }
    while let Some(done) = tasks.join_next().await {
        settle(&mut window, done?);
    }
    Ok(window)
}

// ---------------------------------------------------------------------------------------
// dip bench ingest
// ---------------------------------------------------------------------------------------

struct Row {
    store: StoreKind,
    batch: usize,
    clients: usize,
    window: Window,
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    println!(
        "dip bench ingest: IF-031 over loopback HTTP, {} s per run, {} cores",
        args.seconds,
        cores()
    );
    for &kind in &args.stores.stores {
        for &batch in &args.batches {
            let clients = args.clients.unwrap_or(if batch == 1 { 64 } else { 8 });
            let row = measure(kind, batch, clients, &args)
                .await
                .with_context(|| format!("{kind:?} batch {batch}"))?;
            print_row(&row);
        }
    }
    Ok(())
}

fn print_row(r: &Row) {
    let w = &r.window;
    println!(
        "store={:<8} batch={:<4} clients={:<3} requests/s={:>8.0} messages/s={:>8.0} latency_ms {} errors={}",
        store_name(r.store),
        r.batch,
        r.clients,
        w.per_second(w.requests),
        w.per_second(w.messages),
        percentiles(&w.latency),
        w.errors,
    );
}

async fn measure(kind: StoreKind, batch: usize, clients: usize, args: &IngestArgs) -> anyhow::Result<Row> {
    let platform = Platform::start(kind, &args.stores.pg_admin_url).await?;
    let demo = DirectoryData::demo()?;
    let sender = &ROUTES[0];
    let key: Arc<str> = demo.key_of(sender.sender).context("demo sender")?.into();
    let http = http_client(clients)?;
    let url = platform.url.clone();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let send = move |c: usize, n: u64, _measuring: bool| {
        let items: Vec<Value> = (0..batch)
            .map(|i| sender.item(&format!("b{run_id}-{c}-{n}-{i}")))
            .collect();
        let body = serde_json::to_vec(&items).expect("json");
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        async move { post(&http, &url, &key, body).await.map(|_| batch as u64) }
    };
    let window = closed_loop(clients, Duration::from_secs(1), Duration::from_secs(args.seconds), send).await;
    platform.stop().await?;
    Ok(Row {
        store: kind,
        batch,
        clients,
        window: window?,
    })
}

// ---------------------------------------------------------------------------------------
// dip bench e2e
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Load {
    /// Closed-loop clients, as many requests as the platform answers.
    Saturation { clients: usize },
    /// A fixed offered rate, messages per second.
    Open { rate: f64 },
}

/// What recipients saw, checked against what the platform accepted.
#[derive(Debug, Default)]
struct Check {
    /// Messages the platform accepted (202).
    accepted: usize,
    /// 2xx webhook requests.
    delivered: usize,
    /// Accepted messages no recipient received.
    undelivered: usize,
    /// Second and later deliveries of a message.
    duplicates: usize,
    /// Deliveries whose `X-DIP-Sequence` was not above the queue's previous one.
    out_of_order: usize,
    /// Requests that arrived while another of the same queue was in progress.
    overlaps: usize,
    /// Deliveries to a queue other than the message's recipient.
    misrouted: usize,
    /// Deliveries of transactions the generator was never told of.
    unknown: usize,
    /// Measured deliveries without a readable `D0.transactionTimestamp`.
    no_timestamp: usize,
}

impl Check {
    fn passed(&self) -> bool {
        self.undelivered + self.duplicates + self.out_of_order + self.overlaps + self.misrouted + self.unknown == 0
    }
}

struct Phase {
    store: StoreKind,
    load: Load,
    window: Window,
    /// 2xx deliveries per second during the measured window (any message).
    delivered_per_s: f64,
    /// From the end of the load until every accepted message was delivered (`None`: not
    /// within the drain timeout).
    drain: Option<Duration>,
    /// Receipt to arrival at the recipient, messages sent in the measured window.
    delivery: Histogram<u64>,
    check: Check,
}

impl Phase {
    fn ingest_per_s(&self) -> f64 {
        self.window.per_second(self.window.messages)
    }

    /// What the platform carried end to end: it cannot deliver more than it took in.
    fn end_to_end_per_s(&self) -> f64 {
        self.ingest_per_s().min(self.delivered_per_s)
    }

    fn label(&self) -> String {
        match self.load {
            Load::Saturation { clients } => format!("saturation clients={clients}"),
            Load::Open { rate } => format!("open offered/s={rate:.0}"),
        }
    }

    fn drain_text(&self) -> String {
        self.drain
            .map_or_else(|| "timeout".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
    }
}

async fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    let routes = &ROUTES[..usize::from(args.recipients)];
    println!(
        "dip bench e2e: one message per request to {} recipient queue(s) ({}) with webhook sinks on loopback, \
         {} s per phase after {} s of warm-up, {} cores",
        routes.len(),
        routes
            .iter()
            .map(|r| format!("{}→{}", r.channel, r.recipient))
            .collect::<Vec<_>>()
            .join(" "),
        args.seconds,
        args.warm_up,
        cores()
    );
    let mut phases = Vec::new();
    for &kind in &args.stores.stores {
        let mut rates = args.rates.clone();
        if !args.no_saturation {
            let saturation = phase(kind, Load::Saturation { clients: args.clients }, &args)
                .await
                .with_context(|| format!("{kind:?} saturation"))?;
            print_phase(&saturation);
            let rate = saturation.end_to_end_per_s();
            println!(
                "store={:<8} saturation end to end: {rate:.0} messages/s (lower of ingest and delivery)",
                store_name(kind)
            );
            if rates.is_empty() {
                rates = args.fractions.iter().map(|f| (f * rate).max(1.0)).collect();
            }
            phases.push(saturation);
        }
        for rate in rates {
            let open = phase(kind, Load::Open { rate }, &args)
                .await
                .with_context(|| format!("{kind:?} at {rate:.0}/s"))?;
            print_phase(&open);
            phases.push(open);
        }
    }
    print_summary(&phases);
    let failed = phases.iter().filter(|p| !p.check.passed()).count();
    if failed > 0 {
        anyhow::bail!("the delivery check failed in {failed} phase(s)");
    }
    Ok(())
}

fn print_phase(p: &Phase) {
    let w = &p.window;
    println!(
        "store={:<8} {:<24} ingest/s={:>7.0} delivered/s={:>7.0} drain_s={:>7} ingest_ms {} delivery_ms {}",
        store_name(p.store),
        p.label(),
        p.ingest_per_s(),
        p.delivered_per_s,
        p.drain_text(),
        percentiles(&w.latency),
        percentiles(&p.delivery),
    );
    let c = &p.check;
    println!(
        "    check {}: requests={} errors={} accepted={} delivered={} undelivered={} duplicates={} out_of_order={} \
         overlaps={} misrouted={} unknown={} no_timestamp={}",
        if c.passed() { "ok" } else { "FAILED" },
        w.requests,
        w.errors,
        c.accepted,
        c.delivered,
        c.undelivered,
        c.duplicates,
        c.out_of_order,
        c.overlaps,
        c.misrouted,
        c.unknown,
        c.no_timestamp,
    );
}

/// The figures again as a Markdown table, for docs/performance.md.
fn print_summary(phases: &[Phase]) {
    println!();
    println!(
        "| store | phase | ingest msg/s | delivered msg/s | drain s | ingest p99 ms | delivery p50 ms | p90 ms | p99 ms | max ms | errors | check |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in phases {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            store_name(p.store),
            p.label(),
            p.ingest_per_s(),
            p.delivered_per_s,
            p.drain_text(),
            ms(&p.window.latency, 0.99),
            ms(&p.delivery, 0.50),
            ms(&p.delivery, 0.90),
            ms(&p.delivery, 0.99),
            p.delivery.max() as f64 / 1000.0,
            p.window.errors,
            if p.check.passed() { "ok" } else { "FAILED" },
        );
    }
}

/// An accepted message: transaction id, route index, sent in the measured window.
type Accepted = (String, usize, bool);

fn delivered_count(sinks: &[MockRecipient]) -> usize {
    sinks.iter().map(|s| s.delivered().len()).sum()
}

/// One phase on a fresh platform, which is removed afterwards whatever happened.
async fn phase(kind: StoreKind, load: Load, args: &E2eArgs) -> anyhow::Result<Phase> {
    let platform = Platform::start(kind, &args.stores.pg_admin_url).await?;
    let phase = run_phase(&platform, kind, load, args).await;
    platform.stop().await?;
    phase
}

/// Webhook sinks for the recipients, delivery running, the load, then the wait until
/// everything accepted was delivered.
async fn run_phase(platform: &Platform, kind: StoreKind, load: Load, args: &E2eArgs) -> anyhow::Result<Phase> {
    let routes = &ROUTES[..usize::from(args.recipients)];
    let mut sinks = Vec::new();
    for r in routes {
        let sink = MockRecipient::start(false).await?;
        platform
            .broker
            .store()
            .put_endpoint(&Endpoint {
                id: r.queue(),
                dip_id: r.recipient.to_owned(),
                name: "default".to_owned(),
                url: Some(sink.url()),
                channels: vec![],
            })
            .await?;
        sinks.push(sink);
    }
    platform.broker.reload().await?;
    let sinks = Arc::new(sinks);
    let loopback = "127.0.0.0/8".parse().context("loopback range")?;
    let config = DeliveryConfig {
        // The sinks listen on loopback, which webhooks may reach only when allow-listed.
        destinations: delivery::destinations::Destinations::allowing(vec![loopback]),
        ..DeliveryConfig::default()
    };
    let delivering = delivery::start(platform.broker.clone(), config)?;

    let demo = DirectoryData::demo()?;
    let keys: Arc<[String]> = routes
        .iter()
        .map(|r| demo.key_of(r.sender).map(str::to_owned).context("demo sender"))
        .collect::<anyhow::Result<_>>()?;
    let accepted: Arc<Mutex<Vec<Accepted>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let (warm_up, measured) = (Duration::from_secs(args.warm_up), Duration::from_secs(args.seconds));
    let http = http_client(match load {
        Load::Saturation { clients } => clients,
        Load::Open { .. } => args.max_in_flight,
    })?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let url = platform.url.clone();
    let send = {
        let accepted = accepted.clone();
        move |measuring: bool| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let r = usize::try_from(i).unwrap_or_default() % keys.len();
            let body = serde_json::to_vec(&[ROUTES[r].item(&format!("e{run_id}-{i}"))]).expect("json");
            let (http, url, keys, accepted) = (http.clone(), url.clone(), keys.clone(), accepted.clone());
            async move {
                let answer = post(&http, &url, &keys[r], body).await?;
                let answer: Value = serde_json::from_slice(&answer).ok()?;
                let transaction = answer.pointer("/results/0/transactionID")?.as_str()?.to_owned();
                lock(&accepted).push((transaction, r, measuring));
                Some(1)
            }
        }
    };

    // Deliveries counted at the edges of the measured window, on the same clock as the load.
    let sampler = {
        let sinks = sinks.clone();
        tokio::spawn(async move {
            tokio::time::sleep(warm_up).await;
            let (from, at_from) = (Instant::now(), delivered_count(&sinks));
            tokio::time::sleep(measured).await;
            let (to, at_to) = (Instant::now(), delivered_count(&sinks));
            (at_to - at_from) as f64 / (to - from).as_secs_f64()
        })
    };
    let window = match load {
        Load::Saturation { clients } => closed_loop(clients, warm_up, measured, move |_, _, m| send(m)).await?,
        Load::Open { rate } => open_loop(rate, warm_up, measured, args.max_in_flight, move |_, m| send(m)).await?,
    };
    let load_end = Instant::now();
    let delivered_per_s = sampler.await?;

    let accepted = std::mem::take(&mut *lock(&accepted));
    let expected: HashMap<&str, (usize, bool)> = accepted.iter().map(|(t, r, m)| (t.as_str(), (*r, *m))).collect();
    let deadline = load_end + Duration::from_secs(args.drain_timeout);
    let drain = loop {
        if delivered_count(&sinks) >= expected.len() && all_delivered(&sinks, &expected) {
            break Some(load_end.elapsed());
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    delivering.stop().await;
    let (check, delivery) = check(routes, &sinks, &expected);
    Ok(Phase {
        store: kind,
        load,
        window,
        delivered_per_s,
        drain,
        delivery,
        check,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn all_delivered(sinks: &[MockRecipient], expected: &HashMap<&str, (usize, bool)>) -> bool {
    let mut seen = HashSet::new();
    for sink in sinks {
        for r in sink.delivered() {
            if expected.contains_key(r.transaction_id.as_str()) {
                seen.insert(r.transaction_id);
            }
        }
    }
    seen.len() == expected.len()
}

/// Checks what every sink received against the accepted messages; the delivery latency of
/// first deliveries of measured messages.
fn check(
    routes: &[Route],
    sinks: &[MockRecipient],
    expected: &HashMap<&str, (usize, bool)>,
) -> (Check, Histogram<u64>) {
    let mut c = Check {
        accepted: expected.len(),
        ..Check::default()
    };
    let mut latency = histogram();
    let mut seen: HashSet<String> = HashSet::new();
    for (index, sink) in sinks.iter().enumerate() {
        c.overlaps += sink.overlaps();
        let queue = routes[index].queue();
        let mut last_seq: HashMap<String, i64> = HashMap::new();
        for r in sink.delivered() {
            c.delivered += 1;
            if let Some(previous) = last_seq.insert(r.queue.clone(), r.seq)
                && r.seq <= previous
            {
                c.out_of_order += 1;
            }
            let Some(&(route, measured)) = expected.get(r.transaction_id.as_str()) else {
                c.unknown += 1;
                continue;
            };
            if route != index || r.queue != queue {
                c.misrouted += 1;
            }
            if !seen.insert(r.transaction_id) {
                c.duplicates += 1;
                continue;
            }
            if measured {
                match u64::try_from(r.latency_us) {
                    Ok(us) => latency.saturating_record(us.max(1)),
                    Err(_) => c.no_timestamp += 1,
                }
            }
        }
    }
    c.undelivered = expected.len() - seen.len();
    (c, latency)
}
