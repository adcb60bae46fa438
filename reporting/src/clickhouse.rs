//! The ClickHouse sink, through the `clickhouse` crate over ClickHouse's HTTP interface:
//! schema migrations from `migrations/clickhouse/`, batch inserts and report queries.
//! Kept to SQL that runs on old (18.x) and modern servers alike.
//!
//! Values go into statements through the client's `bind`, which writes them as escaped
//! literals in place of `?` (the old servers have no server-side parameters). Rows travel
//! as `RowBinary` both ways, with the client's schema validation off: it needs
//! `RowBinaryWithNamesAndTypes`, which 18.x lacks. So the row types below match the table
//! and the statements' casts exactly (`toInt64` on every integer read).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use clickhouse::sql::Identifier;
use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};

use broker_core::events::{Event, EventKind};
use broker_core::store::ReportRow;

use crate::error::AnalyticsError;
use crate::report::Statement;

static MIGRATIONS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/clickhouse");

/// Longest wait for a query or insert, connecting included.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// A ClickHouse database reached over HTTP.
pub struct ClickHouse {
    /// For server-wide statements (the database may not exist yet).
    server: clickhouse::Client,
    /// For everything else: `server` in the database.
    db: clickhouse::Client,
    /// Server address without credentials or database.
    base: url::Url,
    database: String,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A row of the `events` table.
#[derive(clickhouse::Row, Serialize)]
struct EventRow<'a> {
    id: u64,
    kind: &'a str,
    at: i64,
    /// `Date`: days since the epoch.
    day: u16,
    transaction_id: &'a str,
    interface_id: &'a str,
    sender_dip_id: &'a str,
    recipient_dip_id: &'a str,
    queue_id: &'a str,
    outcome: &'a str,
    latency_us: i64,
    duration_us: i64,
    replay: u8,
}

impl<'a> EventRow<'a> {
    fn new(e: &'a Event) -> Result<Self, AnalyticsError> {
        Ok(Self {
            id: u64::try_from(e.id).map_err(|_| AnalyticsError::Invalid(format!("event id {}", e.id)))?,
            kind: e.kind.as_str(),
            at: e.at,
            day: u16::try_from(e.at.div_euclid(DAY_US)).unwrap_or(0),
            transaction_id: &e.transaction_id,
            interface_id: &e.interface_id,
            sender_dip_id: &e.sender_dip_id,
            recipient_dip_id: &e.recipient_dip_id,
            queue_id: &e.queue_id,
            outcome: &e.outcome,
            latency_us: e.latency_us,
            duration_us: e.duration_us,
            replay: u8::from(e.replay),
        })
    }
}

/// An event read back from the `events` table (a transaction's trace).
#[derive(clickhouse::Row, Deserialize)]
struct StoredEvent {
    id: i64,
    kind: String,
    at: i64,
    transaction_id: String,
    interface_id: String,
    sender_dip_id: String,
    recipient_dip_id: String,
    queue_id: String,
    outcome: String,
    latency_us: i64,
    duration_us: i64,
    replay: i64,
}

impl StoredEvent {
    fn event(self) -> Result<Event, AnalyticsError> {
        Ok(Event {
            id: self.id,
            kind: EventKind::parse(&self.kind)
                .ok_or_else(|| AnalyticsError::ClickHouse(format!("event kind {:?}", self.kind)))?,
            at: self.at,
            transaction_id: self.transaction_id,
            interface_id: self.interface_id,
            sender_dip_id: self.sender_dip_id,
            recipient_dip_id: self.recipient_dip_id,
            queue_id: self.queue_id,
            outcome: self.outcome,
            latency_us: self.latency_us,
            duration_us: self.duration_us,
            replay: self.replay != 0,
        })
    }
}

/// A report row as the ClickHouse dialect of [`crate::report`] returns it: the integer
/// columns in one `Array(Int64)`.
#[derive(clickhouse::Row, Deserialize)]
struct Figures {
    bucket: i64,
    grp: String,
    label: String,
    values: Vec<i64>,
}

impl ClickHouse {
    /// Connects to `url`: `http://[user[:password]@]host:port/[?database=NAME]` (the
    /// database defaults to `dip`). Nothing is sent until the first call.
    pub fn new(url: &str) -> Result<Self, AnalyticsError> {
        let bad = |m: String| AnalyticsError::Invalid(format!("ClickHouse URL: {m}"));
        let mut base = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("use http:// or https://".into()));
        }
        let database = base
            .query_pairs()
            .find(|(k, _)| k == "database")
            .map_or_else(|| "dip".to_owned(), |(_, v)| v.into_owned());
        if !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || database.is_empty() {
            return Err(bad(format!("database name {database:?} must be letters, digits and _")));
        }
        let user = Some(base.username().to_owned()).filter(|u| !u.is_empty());
        let password = base.password().map(str::to_owned);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_path("/");
        let mut server = clickhouse::Client::default()
            .with_url(base.as_str())
            .with_validation(false);
        if let Some(user) = user {
            server = server.with_user(user);
            if let Some(password) = password {
                server = server.with_password(password);
            }
        }
        let db = server.clone().with_database(&database);
        Ok(Self {
            server,
            db,
            base,
            database,
        })
    }

    /// Where, for logs: never the credentials.
    pub fn describe(&self) -> String {
        format!("{}?database={}", self.base, self.database)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> Result<(), AnalyticsError> {
        timed(self.server.query("SELECT 1").execute()).await
    }

    /// Creates the database and applies pending migrations in file-name order; returns
    /// the names applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, AnalyticsError> {
        let create = self
            .server
            .query("CREATE DATABASE IF NOT EXISTS ?")
            .bind(Identifier(&self.database));
        timed(create.execute()).await?;
        let table = self.db.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at UInt64) \
             ENGINE = MergeTree() ORDER BY name",
        );
        timed(table.execute()).await?;
        let done: HashSet<String> = timed(
            self.db
                .query("SELECT name FROM schema_migrations")
                .fetch_all::<String>(),
        )
        .await?
        .into_iter()
        .collect();
        let mut files: Vec<_> = MIGRATIONS
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort_by_key(|f| f.path().to_owned());
        let mut applied = Vec::new();
        for file in files {
            let name = file.path().to_string_lossy().into_owned();
            if done.contains(&name) {
                continue;
            }
            let text = file
                .contents_utf8()
                .ok_or_else(|| AnalyticsError::Invalid(format!("{name} is not UTF-8")))?;
            for statement in statements(text) {
                // Verbatim: a `?` in a migration is not a placeholder.
                timed(self.db.query_raw(&statement).execute()).await?;
            }
            let record = self
                .db
                .query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)")
                .bind(&name)
                .bind(chrono::Utc::now().timestamp());
            timed(record.execute()).await?;
            applied.push(name);
        }
        Ok(applied)
    }

    /// Inserts `events` as one block (atomic on a MergeTree table).
    pub async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = events.iter().map(EventRow::new).collect::<Result<Vec<_>, _>>()?;
        timed(async {
            let mut insert = self.db.insert::<EventRow<'_>>("events").await?;
            for row in &rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }

    /// Which of `events` the table already holds (after a crash between an insert and
    /// the outbox delete). Looks only within their time span, which the table is sorted by.
    pub async fn existing(&self, events: &[Event]) -> Result<HashSet<i64>, AnalyticsError> {
        let (Some(from), Some(to)) = (events.iter().map(|e| e.at).min(), events.iter().map(|e| e.at).max()) else {
            return Ok(HashSet::new());
        };
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let query = self
            .db
            .query("SELECT toInt64(id) FROM events WHERE at >= ? AND at <= ? AND id IN ?")
            .bind(from)
            .bind(to)
            .bind(InList(&ids));
        Ok(timed(query.fetch_all::<i64>()).await?.into_iter().collect())
    }

    /// The events of these transactions at or after `since` (their messages' receipt:
    /// nothing happens to a message before it, and the partitions before it are skipped).
    pub async fn events_of(&self, transaction_ids: &[String], since: i64) -> Result<Vec<Event>, AnalyticsError> {
        if transaction_ids.is_empty() {
            return Ok(Vec::new());
        }
        let day = chrono::DateTime::from_timestamp_micros(since)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "1970-01-01".into());
        let query = self
            .db
            .query(
                "SELECT toInt64(id), kind, at, transaction_id, interface_id, sender_dip_id, recipient_dip_id, \
                 queue_id, outcome, latency_us, duration_us, toInt64(replay) FROM events \
                 WHERE day >= toDate(?) AND at >= ? AND transaction_id IN ? ORDER BY at, id",
            )
            .bind(day)
            .bind(since)
            .bind(InList(transaction_ids));
        timed(query.fetch_all::<StoredEvent>())
            .await?
            .into_iter()
            .map(StoredEvent::event)
            .collect()
    }

    /// Runs a report statement: bucket, group, label, then `values` integers per row.
    pub async fn rows(&self, statement: &Statement, values: usize) -> Result<Vec<ReportRow>, AnalyticsError> {
        let query = statement
            .binds
            .iter()
            .fold(self.db.query(&statement.sql), |q, value| q.bind(value));
        timed(query.fetch_all::<Figures>())
            .await?
            .into_iter()
            .map(|r| {
                if r.values.len() != values {
                    return Err(AnalyticsError::ClickHouse(format!(
                        "{} figures in a row, {values} expected",
                        r.values.len()
                    )));
                }
                Ok(ReportRow {
                    bucket: r.bucket,
                    group: r.grp,
                    label: r.label,
                    values: r.values,
                })
            })
            .collect()
    }

    /// Drops the database (throwaway databases of tests and benchmarks).
    pub async fn drop_database(&self) -> Result<(), AnalyticsError> {
        let drop = self
            .server
            .query("DROP DATABASE IF EXISTS ?")
            .bind(Identifier(&self.database));
        timed(drop.execute()).await
    }

    /// Fills the table with `n` synthetic events spread evenly over `[from, to)`, made
    /// inside the server (for benchmarks): every kind, 40 channels, senders and
    /// recipients, latencies up to 2 s with one in fifty 5 s slower.
    pub async fn generate_events(&self, n: u64, from: i64, to: i64) -> Result<(), AnalyticsError> {
        let step = ((to - from) / i64::try_from(n.max(1)).unwrap_or(i64::MAX)).max(1);
        let kinds = [
            "received",
            "routed",
            "delivered",
            "routed",
            "delivered",
            "failed_attempt",
            "returned",
            "dead_lettered",
            "rejected",
            "replayed",
        ];
        let query = self
            .db
            .query(
                "INSERT INTO events (id, kind, at, day, transaction_id, interface_id, sender_dip_id, \
                 recipient_dip_id, queue_id, outcome, latency_us, duration_us, replay) \
                 SELECT number + 1000000000000, arrayElement(?, intHash64(number) % 10 + 1), \
                 ? + toInt64(number) * ?, toDate(toDateTime(intDiv(? + toInt64(number) * ?, 1000000))), \
                 concat('T', toString(number)), concat('IF-0', toString(10 + intHash64(number + 1) % 40)), \
                 concat('10000000', toString(10 + intHash64(number + 2) % 40)), \
                 concat('10000000', toString(10 + intHash64(number + 3) % 40)), '', 'HTTP 200', \
                 toInt64(intHash64(number + 4) % 2000000) + if(intHash64(number + 5) % 50 = 0, 5000000, 0), \
                 toInt64(intHash64(number + 6) % 500000), 0 FROM numbers(?)",
            )
            .bind(&kinds[..])
            .bind(from)
            .bind(step)
            .bind(from)
            .bind(step)
            .bind(n);
        timed(query.execute()).await
    }

    /// Every event, for tests and checks: count per kind.
    pub async fn count_by_kind(&self) -> Result<Vec<(String, i64)>, AnalyticsError> {
        let query = self
            .db
            .query("SELECT kind, toInt64(count()) FROM events GROUP BY kind ORDER BY kind");
        timed(query.fetch_all::<(String, i64)>()).await
    }
}

/// Binds as `(a, b, …)`, for `IN ?` (a slice binds as an array).
struct InList<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for InList<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

/// Awaits a call of the client, at most [`TIMEOUT`].
async fn timed<T>(call: impl Future<Output = clickhouse::error::Result<T>>) -> Result<T, AnalyticsError> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(AnalyticsError::ClickHouse(format!(
            "no answer within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// The client's error with its causes, on one line (server messages can run on).
fn failure(e: clickhouse::error::Error) -> AnalyticsError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    AnalyticsError::ClickHouse(text.lines().next().unwrap_or("").chars().take(400).collect())
}

/// The statements of a migration file: split at semicolons ending a line; `--` comment
/// lines dropped.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let s = current.trim().trim_end_matches(';').trim().to_owned();
            if !s.is_empty() {
                out.push(s);
            }
            current.clear();
        }
    }
    let s = current.trim().to_owned();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_split_into_statements() {
        let s =
            statements("-- note\nCREATE TABLE a (x UInt8)\nENGINE = Log;\n\nCREATE TABLE b (y UInt8) ENGINE = Log\n");
        assert_eq!(s.len(), 2);
        assert!(s[0].starts_with("CREATE TABLE a") && s[0].ends_with("ENGINE = Log"));
        assert!(s[1].starts_with("CREATE TABLE b"));
    }

    #[test]
    fn credentials_leave_the_url_and_are_not_described() {
        let c = ClickHouse::new("http://reporter:s3cret@127.0.0.1:8123/?database=dip_test").unwrap();
        assert_eq!(c.database(), "dip_test");
        assert!(!c.describe().contains("s3cret") && !c.describe().contains("reporter"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(ClickHouse::new("http://h/?database=x;DROP").is_err());
        assert!(ClickHouse::new("ftp://h/").is_err());
    }

    #[test]
    fn event_days_count_from_the_epoch() {
        let e = Event::new(broker_core::events::EventKind::Routed, 1_793_491_200_000_000 + 5);
        assert_eq!(EventRow::new(&e).unwrap().day, 20_758);
    }
}
