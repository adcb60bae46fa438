//! The raw-SQL lifecycle ceiling R: what the database alone does per message when the
//! platform's work is taken away, measured on a fresh database of the same kind in the same
//! run, so that a benchmark's rate B is stated as B/R. Absolute rates differ up to 3×
//! between hosts and days; a ratio measured in one run does not.
//!
//! Each of `clients` tasks repeats, for batches of `batch` messages: one transaction
//! inserting the messages (a 1 KB payload each, unique per sender and reference) and two
//! queue entries per message, then one transaction settling those entries; a message
//! counts once its entries are settled. That is the least any broker with durable,
//! per-recipient queues writes per message: the platform's own lifecycle adds the
//! archive, routing, events and its HTTP work on top. SQLite has one writer (as the store
//! has), in WAL mode with `synchronous = FULL` (as the store commits); PostgreSQL takes
//! the clients concurrently.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{StoreKind, store_name};

/// Messages per transaction of the baseline.
pub const BATCH: usize = 100;
/// Concurrent clients of the baseline.
pub const CLIENTS: usize = 8;

const SCHEMA: [&str; 2] = [
    "CREATE TABLE baseline_messages (transaction_id TEXT PRIMARY KEY, sender TEXT NOT NULL, \
     reference TEXT NOT NULL, received_at BIGINT NOT NULL, payload TEXT NOT NULL, UNIQUE (sender, reference))",
    "CREATE TABLE baseline_entries (queue_id TEXT NOT NULL, seq BIGINT NOT NULL, transaction_id TEXT NOT NULL, \
     state TEXT NOT NULL, settled_at BIGINT, PRIMARY KEY (queue_id, seq))",
];

/// R for one store: messages per second through the raw-SQL lifecycle over `seconds`.
pub async fn measure(kind: StoreKind, pg_admin_url: &str, seconds: u64) -> anyhow::Result<f64> {
    let measured = Duration::from_secs(seconds.max(1));
    let rate = match kind {
        StoreKind::Postgres => {
            let name = format!("dip_baseline_{}", uuid::Uuid::new_v4().simple());
            let url = broker_core::store::create_database(pg_admin_url, &name).await?;
            let pool = PgPoolOptions::new()
                .max_connections(u32::try_from(CLIENTS).unwrap_or(8))
                .connect(&url)
                .await?;
            let rate = on_pool!(sqlx::Postgres, pool, measured);
            broker_core::store::drop_database(pg_admin_url, &name).await?;
            rate?
        }
        StoreKind::Sqlite => {
            let dir = tempfile::tempdir()?;
            let options = SqliteConnectOptions::from_str("sqlite://")?
                .filename(dir.path().join("baseline.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            on_pool!(sqlx::Sqlite, pool, measured)?
        }
    };
    println!(
        "store={:<8} baseline R (raw SQL: {BATCH} messages of 1 KB + 2 queue entries each per transaction, \
         then their settlement; {CLIENTS} clients): {rate:.0} messages/s",
        store_name(kind)
    );
    Ok(rate)
}

/// The baseline on a fresh pool of `$db`: its tables, then the clients for `$measured`;
/// the pool is closed afterwards whatever happened.
macro_rules! on_pool {
    ($db:ty, $pool:expr, $measured:expr) => {{
        let pool = $pool;
        let rate = async {
            for ddl in SCHEMA {
                sqlx::query(ddl).execute(&pool).await?;
            }
            let shared = pool.clone();
            run(CLIENTS, $measured, move |client, round| {
                let pool = shared.clone();
                async move { lifecycle!($db, &pool, client, round) }
            })
            .await
        }
        .await;
        pool.close().await;
        rate
    }};
}
use on_pool;

/// One batch's lifecycle on a pool of `$db`: insert, then settle; the messages done.
macro_rules! lifecycle {
    ($db:ty, $pool:expr, $client:expr, $round:expr) => {{
        let (client, round): (usize, u64) = ($client, $round);
        let payload = "x".repeat(1024);
        let at = broker_core::clock::now_micros();
        let ids: Vec<String> = (0..BATCH).map(|i| format!("{client}-{round}-{i}")).collect();
        let mut tx = $pool.begin().await?;
        let mut qb = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO baseline_messages (transaction_id, sender, reference, received_at, payload) ",
        );
        qb.push_values(&ids, |mut b, id| {
            b.push_bind(id)
                .push_bind(format!("sender-{client}"))
                .push_bind(id)
                .push_bind(at)
                .push_bind(&payload);
        });
        qb.build().execute(&mut *tx).await?;
        let entries: Vec<(String, i64, &String)> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                let seq = i64::try_from(round).unwrap_or(0) * BATCH as i64 + i as i64;
                [(format!("q{client}-a"), seq, id), (format!("q{client}-b"), seq, id)]
            })
            .collect();
        let mut qb =
            sqlx::QueryBuilder::<$db>::new("INSERT INTO baseline_entries (queue_id, seq, transaction_id, state) ");
        qb.push_values(&entries, |mut b, (queue, seq, id)| {
            b.push_bind(queue).push_bind(*seq).push_bind(*id).push_bind("pending");
        });
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
        let mut tx = $pool.begin().await?;
        let mut qb = sqlx::QueryBuilder::<$db>::new(
            "UPDATE baseline_entries SET state = 'delivered', settled_at = v.column3 FROM (",
        );
        qb.push_values(&entries, |mut b, (queue, seq, _)| {
            b.push_bind(queue).push_bind(*seq).push_bind(at);
        });
        qb.push(") AS v WHERE baseline_entries.queue_id = v.column1 AND baseline_entries.seq = v.column2");
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
        anyhow::Ok(BATCH)
    }};
}
use lifecycle;

/// Runs `clients` loops of `batch` for `measured` (after one untimed batch each) and
/// returns the messages per second done in that time.
async fn run<F, Fut>(clients: usize, measured: Duration, batch: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + measured;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            let mut round = 0u64;
            loop {
                let began = Instant::now();
                let n = batch(client, round).await?;
                round += 1;
                if began >= start && began < end {
                    done += n;
                }
                if began >= end {
                    return anyhow::Ok(done);
                }
            }
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.context("baseline client")??;
    }
    Ok(done as f64 / measured.as_secs_f64())
}
