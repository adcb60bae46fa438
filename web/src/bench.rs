//! `dip bench`: benchmark programs that print throughput and latency percentiles.
//!
//! `dip bench ingest` starts the platform in-process on a fresh store (a temporary SQLite
//! folder, or a new PostgreSQL database that is dropped afterwards), loads the demo
//! directory, and drives `POST /api/v1/messages` over loopback HTTP from concurrent
//! closed-loop clients. Each message is a valid IF-031 (supplier → registration service,
//! targeted), so every accepted message is validated, routed, archived and queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use broker_core::catalogue::CatalogueData;
use broker_core::ingest::{Broker, BrokerConfig};
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and p50/p90/p99 latency for each store and batch size.
    Ingest(IngestArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Args)]
pub struct IngestArgs {
    /// Stores to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<StoreKind>,
    /// Items per request.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    batches: Vec<usize>,
    /// Measured seconds per run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients; by default 64 for single-item requests, 8 for batches.
    #[arg(long)]
    clients: Option<usize>,
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
        BenchCommand::Ingest(args) => ingest(args).await,
    }
}

struct Row {
    store: StoreKind,
    batch: usize,
    clients: usize,
    requests: u64,
    messages: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    println!(
        "dip bench ingest: IF-031 over loopback HTTP, {} s per run, {} cores",
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for &kind in &args.stores {
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
    let secs = r.elapsed.as_secs_f64();
    let ms = |q: f64| r.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "store={:<8} batch={:<4} clients={:<3} requests/s={:>8.0} messages/s={:>8.0} latency_ms p50={:>7.2} p90={:>7.2} p99={:>7.2} max={:>7.2} errors={}",
        format!("{:?}", r.store).to_lowercase(),
        r.batch,
        r.clients,
        r.requests as f64 / secs,
        r.messages as f64 / secs,
        ms(0.50),
        ms(0.90),
        ms(0.99),
        r.latency.max() as f64 / 1000.0,
        r.errors,
    );
}

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

const SENDER: &str = "1000000001";
const RECIPIENT: &str = "1000000011";
const MPAN: &str = "1600001000010";

fn message(reference: &str) -> Value {
    json!({"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": "IF-031", "schemaVersion": "001", "eventCode": "SupplierServiceAppointmentRequest"},
            "S1": {"environmentTag": "DEV", "senderUniqueReference": reference, "senderTimestamp": "2026-11-27T09:00:00+00:00",
                   "senderDIPID": SENDER, "senderRoleID": "SUP", "senderCorrelationID": null, "DIPConnectionProviderID": null},
            "M0": {"MPANCore": MPAN},
            "A0": {"primaryRecipients": [RECIPIENT]}
        },
        "CustomBlock": {
            "mpanCore": MPAN, "supplierId": "AURA", "serviceRole": "MSS", "serviceProviderId": "KYST",
            "serviceProviderDIPID": "1000000031", "effectiveFromDate": "2026-12-01", "contractReference": "C-0001",
            "marketSegment": "S"
        }
    }})
}

async fn measure(kind: StoreKind, batch: usize, clients: usize, args: &IngestArgs) -> anyhow::Result<Row> {
    let bench_store = BenchStore::new(kind, &args.pg_admin_url).await?;
    let demo = DirectoryData::demo()?;
    let key = demo.key_of(SENDER).context("demo sender")?.to_owned();
    let broker = Broker::start(bench_store.store.clone(), BrokerConfig::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/messages", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, crate::server::app(broker)).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, messages, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, key, run_id) = (http.clone(), url.clone(), key.clone(), run_id.clone());
        let (recording, stop) = (recording.clone(), stop.clone());
        let (requests, messages, errors) = (requests.clone(), messages.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let items: Vec<Value> = (0..batch).map(|i| message(&format!("b{run_id}-{c}-{n}-{i}"))).collect();
                n += 1;
                let body = serde_json::to_vec(&items).expect("json");
                let started = Instant::now();
                let ok = match http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16() == 202 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if recording.load(Ordering::Relaxed) {
                    let _ = hist.record(started.elapsed().as_micros().max(1) as u64);
                    requests.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        messages.fetch_add(batch as u64, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        latency.add(t.await?)?;
    }
    server.abort();
    bench_store.remove().await?;
    Ok(Row {
        store: kind,
        batch,
        clients,
        requests: requests.load(Ordering::Relaxed),
        messages: messages.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latency,
    })
}
