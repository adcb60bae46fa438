//! `dip bench ingest`: ingest alone, from concurrent closed-loop clients. Each message is
//! a valid IF-031 (supplier → registration service, targeted), so every accepted message
//! is validated, routed, archived and queued. Each store's rates are also stated as a
//! ratio of the raw-SQL baseline R measured on the same kind of database in the run.

use clap::Args;

use super::*;

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
    /// Skip the raw-SQL baseline R (then no ingest/R is printed).
    #[arg(long)]
    no_baseline: bool,
}

struct Row {
    store: StoreKind,
    batch: usize,
    clients: usize,
    window: Window,
}

pub(super) async fn run(args: IngestArgs) -> anyhow::Result<()> {
    println!(
        "dip bench ingest: IF-031 over loopback HTTP, {} s per run, {} cores",
        args.seconds,
        cores()
    );
    for &kind in &args.stores.stores {
        let baseline = if args.no_baseline {
            None
        } else {
            Some(baseline::measure(kind, &args.stores.pg_admin_url, args.seconds).await?)
        };
        for &batch in &args.batches {
            let clients = args.clients.unwrap_or(if batch == 1 { 64 } else { 8 });
            let row = measure(kind, batch, clients, &args)
                .await
                .with_context(|| format!("{kind:?} batch {batch}"))?;
            print_row(&row);
            if let Some(r) = baseline {
                let rate = row.window.per_second(row.window.messages);
                println!(
                    "store={:<8} batch={:<4} ingest/R = {rate:.0} / {r:.0} = {:.2}",
                    store_name(kind),
                    batch,
                    rate / r
                );
            }
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
