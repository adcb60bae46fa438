//! `dip bench trail`: the message audit trail's queries on PostgreSQL.
//!
//! `--messages` messages (10 million by default) are generated inside a throwaway
//! database, as the message path would have stored them: five senders, four channels, two
//! recipient copies each (one in a hundred dead-lettered), a delivery event per copy, two
//! million MPANs, workflows of four messages, one message a millisecond. Then each query
//! the portal and the audit API run is timed `--runs` times on random keys, as operator
//! staff and as a participant: search by MPAN, by correlation id, by sender reference,
//! the participant's newest messages, and a transaction's trace. Prints p50, p90, p99 and
//! max milliseconds per query.

use std::time::Instant;

use anyhow::Context;
use broker_core::{Broker, BrokerConfig};
use clap::Args;
use dip_admin::types::{Actor, ListQuery, PortalRole};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::trail;
use rand::Rng;
use sqlx::ConnectOptions;

use super::{BenchStore, StoreKind, histogram, percentiles, record};

#[derive(Args)]
pub struct TrailArgs {
    /// Messages generated.
    #[arg(long, default_value_t = 10_000_000)]
    messages: i64,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// PostgreSQL server on which a throwaway database is created.
    #[arg(
        long,
        env = "DIP_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
}

/// 2026-01-01T00:00:00Z: the first generated message's receipt.
const BASE: i64 = 1_767_225_600_000_000;
const SENDERS: [&str; 5] = ["1000000001", "1000000002", "1000000003", "1000000011", "1000000031"];
const RECIPIENTS: [&str; 3] = ["1000000011", "1000000021", "1000000001"];
const MPANS: i64 = 2_000_000;

/// The statements that fill the database, `$1` the number of messages and `$2` the first
/// receipt time. Message `i` is `bench-` and nine digits; copies go to recipients
/// `i % 3` and `(i + 1) % 3` at position `i` of their queues.
fn statements() -> Vec<String> {
    let array = |ids: &[&str]| format!("ARRAY['{}']", ids.join("','"));
    let tx = "'bench-' || lpad(i::text, 9, '0')";
    let copy = |offset: i64| {
        format!(
            "INSERT INTO queue_entries (queue_id, seq, transaction_id, recipient_dip_id, recipient_role, hidden, \
             state, enqueued_at, attempts, settled_at) \
             SELECT r || '/default', i, {tx}, r, 'REGS', '[]', CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'delivered' END, \
             $2 + i * 1000, 1, $2 + i * 1000 + 20000 \
             FROM generate_series(1, $1::bigint) AS i, LATERAL (SELECT ({r})[1 + (i + {offset}) % 3] AS r) AS x",
            r = array(&RECIPIENTS)
        )
    };
    vec![
        format!(
            "INSERT INTO messages (transaction_id, sender_dip_id, sender_unique_reference, content_hash, interface_id, \
             schema_version, event_code, sender_role, dcp_dip_id, mpan, correlation_id, received_at, routing) \
             SELECT {tx}, ({s})[1 + i % 5], 'ref-' || i, md5(i::text), \
             (ARRAY['IF-031','IF-032','IF-033','IF-021'])[1 + i % 4], '001', 'Event', 'SUP', NULL, \
             (1600000000000 + i % {MPANS})::text, 'corr-' || (i / 4), $2 + i * 1000, '{{\"recipients\":[]}}' \
             FROM generate_series(1, $1::bigint) AS i",
            s = array(&SENDERS)
        ),
        copy(0),
        copy(1),
        format!(
            "INSERT INTO analytics_events (id, kind, at, transaction_id, interface_id, sender_dip_id, recipient_dip_id, \
             queue_id, outcome, latency_us, duration_us, replay) \
             SELECT i * 2 + k, 'delivered', $2 + i * 1000 + 20000, {tx}, 'IF-031', ({s})[1 + i % 5], \
             ({r})[1 + (i + k) % 3], ({r})[1 + (i + k) % 3] || '/default', 'HTTP 200', 20000, 5000, 0 \
             FROM generate_series(1, $1::bigint) AS i, generate_series(0, 1) AS k",
            s = array(&SENDERS),
            r = array(&RECIPIENTS)
        ),
        "ANALYZE".to_owned(),
    ]
}

pub async fn run(args: TrailArgs) -> anyhow::Result<()> {
    let made = BenchStore::new(StoreKind::Postgres, &args.pg_admin_url).await?;
    let result = measure(&args, &made).await;
    made.remove().await?;
    result
}

async fn measure(args: &TrailArgs, made: &BenchStore) -> anyhow::Result<()> {
    let url = made.url.as_deref().context("a PostgreSQL store")?;
    // The generating statements run for minutes: not worth a slow-statement warning each.
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .disable_statement_logging();
    let pool = sqlx::PgPool::connect_with(options).await?;
    println!("audit trail benchmark, PostgreSQL, {} messages", args.messages);
    let started = Instant::now();
    for sql in statements() {
        let step = Instant::now();
        let q = sqlx::query(&sql);
        let q = if sql == "ANALYZE" {
            q
        } else {
            q.bind(args.messages).bind(BASE)
        };
        q.execute(&pool).await.with_context(|| format!("generating: {sql}"))?;
        println!(
            "  {:<60} {:>7.1} s",
            sql.chars().take(60).collect::<String>(),
            step.elapsed().as_secs_f64()
        );
    }
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    pool.close().await;

    let broker = Broker::start(made.store.clone(), BrokerConfig::default()).await?;
    let analytics = Analytics::new(made.store.clone(), Sink::Embedded);
    let actor = |dip: Option<&str>| Actor {
        user_id: None,
        name: "bench".into(),
        display_name: "bench".into(),
        dip_id: dip.map(str::to_owned),
        roles: vec![if dip.is_some() {
            PortalRole::MessageUser
        } else {
            PortalRole::Auditor
        }],
        must_change_password: false,
    };
    let (operator, participant) = (actor(None), actor(Some(SENDERS[0])));
    let search = |filter: &str, value: String| ListQuery {
        page: 1,
        filters: [(filter.to_owned(), value)].into(),
        ..Default::default()
    };
    let n = args.messages;
    println!("\n{:<44} {:>6} latency, ms", "query", "rows");
    let kinds = [
        "search by MPAN (operator)",
        "search by MPAN (participant)",
        "search by correlation id (operator)",
        "search by correlation id (participant)",
        "search by sender reference (operator)",
        "newest messages (participant)",
        "transaction trace (operator)",
        "transaction trace (participant)",
    ];
    for (k, name) in kinds.iter().enumerate() {
        let mut h = histogram();
        let mut rows = 0;
        for _ in 0..args.runs {
            let i = rand::rng().random_range(1..=n);
            let viewer = if name.contains("participant") {
                &participant
            } else {
                &operator
            };
            let t = Instant::now();
            rows += match k {
                0 | 1 => trail::search(
                    &broker,
                    viewer,
                    &search("mpan", format!("{}", 1_600_000_000_000 + i % MPANS)),
                )
                .await?
                .rows
                .len(),
                2 | 3 => trail::search(&broker, viewer, &search("correlation", format!("corr-{}", i / 4)))
                    .await?
                    .rows
                    .len(),
                4 => trail::search(&broker, viewer, &search("reference", format!("ref-{i}")))
                    .await?
                    .rows
                    .len(),
                5 => trail::search(
                    &broker,
                    viewer,
                    &ListQuery {
                        page: 1,
                        ..Default::default()
                    },
                )
                .await?
                .rows
                .len(),
                _ => {
                    // A message the participant sent (every fifth), so both see it.
                    let i = (i / 5 * 5).max(5);
                    let tx = format!("bench-{i:09}");
                    trail::trace(&broker, &analytics, viewer, &tx).await?.copies.len()
                }
            };
            record(&mut h, t.elapsed());
        }
        println!(
            "{:<44} {:>6.1} {}",
            name,
            rows as f64 / args.runs as f64,
            percentiles(&h)
        );
    }
    Ok(())
}
