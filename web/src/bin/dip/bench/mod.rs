//! `dip bench`: benchmark programs that print throughput and latency percentiles.
//!
//! Every run starts the platform in-process on a fresh store (a temporary SQLite folder, or
//! a new PostgreSQL database that is dropped afterwards), loads the demo directory, and
//! drives `POST /api/v1/messages` over loopback HTTP.
//!
//! `dip bench ingest` ([`ingest`]), `dip bench e2e` ([`e2e`]), `dip bench replay`
//! ([`replay`]), `dip bench analytics` ([`analytics`]) and `dip bench trail` ([`trail`]);
//! this module holds what they share: the stores, the platform, the routes messages take,
//! the load generators and histograms. Ingest and e2e also measure the raw-SQL lifecycle
//! on the same kind of database in the same run ([`baseline`]) and state their rates as a
//! ratio of it.

mod analytics;
mod baseline;
mod e2e;
mod ingest;
mod replay;
mod trail;

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
    Ingest(ingest::IngestArgs),
    /// End-to-end delivery: saturation rate, then receipt-to-delivery latency at fixed offered rates.
    E2e(e2e::E2eArgs),
    /// Replay beside live traffic: live messages' latency while a large replay drains, per
    /// replay batch size.
    Replay(replay::ReplayArgs),
    /// Analytics: the pump's rate into ClickHouse and the embedded tables, and report
    /// query times on 10 million events in ClickHouse.
    Analytics(analytics::AnalyticsArgs),
    /// The message audit trail: search and trace p50/p99 on PostgreSQL with 10 million
    /// messages generated in the database.
    Trail(trail::TrailArgs),
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

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args).await,
        BenchCommand::E2e(args) => e2e::run(args).await,
        BenchCommand::Replay(args) => replay::run(args).await,
        BenchCommand::Analytics(args) => analytics::run(args).await,
        BenchCommand::Trail(args) => trail::run(args).await,
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
    /// The PostgreSQL database's URL.
    url: Option<String>,
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
                    url: None,
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
                    url: Some(url),
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
        Self::start_with(kind, pg_admin_url, BrokerConfig::default()).await
    }

    async fn start_with(kind: StoreKind, pg_admin_url: &str, config: BrokerConfig) -> anyhow::Result<Self> {
        let store = BenchStore::new(kind, pg_admin_url).await?;
        let broker = Broker::start(store.store.clone(), config).await?;
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
