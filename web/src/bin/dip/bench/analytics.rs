//! `dip bench analytics`: the analytics pipeline and report queries.
//!
//! 1. The pump: events written to a fresh SQLite store's outbox are moved to ClickHouse
//!    (and, for comparison, to the embedded tables); prints events per second.
//! 2. Report queries on ClickHouse: `--events` events (10 million by default) are
//!    generated inside ClickHouse over 30 days (40 channels, 40 senders, 40 recipients,
//!    every kind, a latency tail), then each dashboard query runs `--runs` times; prints
//!    min, p50, p90 and max milliseconds per query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use broker_core::events::{Event, EventKind};
use broker_core::store::{self, Store};
use clap::Args;
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::clickhouse::ClickHouse;
use dip_reporting::pump::{Pump, PumpConfig};
use dip_reporting::report::{GroupBy, ReportQuery, Viewer};

#[derive(Args)]
pub struct AnalyticsArgs {
    /// ClickHouse to measure (a throwaway database is created in it and dropped).
    #[arg(long, env = "DIP_BENCH_CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123/")]
    clickhouse_url: String,
    /// Events generated for the query benchmark.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Events moved by the pump benchmark.
    #[arg(long, default_value_t = 200_000)]
    pump_events: usize,
    /// Runs of each query.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

const DAY_US: i64 = 86_400_000_000;

pub async fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let database = format!("dip_bench_{}", uuid::Uuid::new_v4().simple());
    let mut url = url::Url::parse(&args.clickhouse_url).context("--clickhouse-url")?;
    url.query_pairs_mut().clear().append_pair("database", &database);
    let clickhouse = Arc::new(ClickHouse::new(url.as_str())?);
    clickhouse.migrate().await.context("creating the benchmark database")?;
    let result = measure(&args, &clickhouse).await;
    if let Err(e) = clickhouse.drop_database().await {
        eprintln!("could not drop {database}: {e}");
    }
    result
}

async fn measure(args: &AnalyticsArgs, clickhouse: &Arc<ClickHouse>) -> anyhow::Result<()> {
    println!("analytics benchmark, ClickHouse {}", clickhouse.describe());
    let to = broker_core::clock::now_micros();
    let from = to - 30 * DAY_US;
    let started = Instant::now();
    clickhouse.generate_events(args.events, from, to).await?;
    println!(
        "\ngenerated {} events over 30 days inside ClickHouse in {:.1} s",
        args.events,
        started.elapsed().as_secs_f64()
    );

    let analytics = Analytics::new(empty_store().await?.0, Sink::ClickHouse(clickhouse.clone()));
    let base = ReportQuery {
        from: to - DAY_US,
        to,
        interval_secs: 900,
        channels: vec![],
        senders: vec![],
        recipients: vec![],
        group_by: GroupBy::None,
        participant: None,
    };
    let mut month_by_day = base.clone();
    month_by_day.from = from;
    month_by_day.interval_secs = 86_400;
    let mut by_channel = base.clone();
    by_channel.group_by = GroupBy::Channel;
    let mut filtered = base.clone();
    filtered.channels = vec!["IF-021".into(), "IF-031".into()];
    filtered.senders = vec!["1000000012".into()];
    let mut participant = month_by_day.clone();
    participant.authorise(&Viewer::Participant("1000000015".into()), false)?;
    let mut last_hour = base.clone();
    last_hour.from = to - 3_600_000_000;
    last_hour.interval_secs = 60;
    let queries: [(&str, &ReportQuery); 6] = [
        ("last hour by minute (live view)", &last_hour),
        ("last 24 h by 15 min", &base),
        ("last 24 h split by channel", &by_channel),
        ("last 24 h, 2 channels, 1 sender", &filtered),
        ("30 days by day", &month_by_day),
        ("30 days by day, one participant", &participant),
    ];
    println!(
        "\n{:<36} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "report (10 statements each)", "events", "min ms", "p50 ms", "p90 ms", "max ms"
    );
    for (name, q) in queries {
        let mut times = Vec::with_capacity(args.runs);
        let mut counted = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let r = analytics.report(q).await?;
            times.push(t.elapsed());
            counted = r
                .volume_totals
                .iter()
                .map(|v| {
                    v.received
                        + v.rejected
                        + v.routed
                        + v.failed_attempts
                        + v.delivered
                        + v.returned
                        + v.dead_lettered
                        + v.replayed
                        + v.redriven
                })
                .sum();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pick = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
        println!(
            "{:<36} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            counted,
            ms(times[0]),
            ms(pick(50)),
            ms(pick(90)),
            ms(times[times.len() - 1])
        );
    }

    println!();
    pump(args.pump_events, Sink::ClickHouse(clickhouse.clone())).await?;
    pump(args.pump_events, Sink::Embedded).await?;
    Ok(())
}

async fn empty_store() -> anyhow::Result<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = store::connect(&format!("sqlite://{}", dir.path().join("dip.db").display())).await?;
    store.migrate().await?;
    Ok((store, dir))
}

/// Moves `n` events from a SQLite outbox to `sink`; prints the rate.
async fn pump(n: usize, sink: Sink) -> anyhow::Result<()> {
    let (store, _dir) = empty_store().await?;
    let now = broker_core::clock::now_micros();
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            transaction_id: format!("T{i}"),
            interface_id: "IF-031".into(),
            sender_dip_id: "1000000001".into(),
            recipient_dip_id: "1000000011".into(),
            queue_id: "1000000011/default".into(),
            outcome: "HTTP 200".into(),
            latency_us: 1000 + (i as i64 % 5000),
            duration_us: 500,
            ..Event::new(EventKind::Delivered, now + i as i64)
        })
        .collect();
    for chunk in events.chunks(5000) {
        store.record_events(chunk).await?;
    }
    let name = format!("{sink:?}");
    let mut pump = Pump::new(store, sink, PumpConfig::default());
    let started = Instant::now();
    let mut moved = 0;
    loop {
        let k = pump.step().await?;
        if k == 0 {
            break;
        }
        moved += k;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pump to {name:<60} {moved:>8} events in {secs:>6.2} s = {:>9.0} events/s (batches of {})",
        moved as f64 / secs,
        PumpConfig::default().batch
    );
    Ok(())
}
