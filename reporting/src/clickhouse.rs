//! The ClickHouse sink, over ClickHouse's HTTP interface: schema migrations from
//! `migrations/clickhouse/`, batch inserts, and report queries. Kept to SQL that runs on
//! old (18.x) and modern servers alike.

use std::collections::HashSet;
use std::time::Duration;

use include_dir::{Dir, include_dir};

use broker_core::events::Event;
use broker_core::store::ReportRow;

use crate::analytics::AnalyticsError;

static MIGRATIONS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/clickhouse");

/// Longest wait for a query or insert.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A ClickHouse database reached over HTTP.
pub struct ClickHouse {
    http: reqwest::Client,
    /// Server address without credentials or database.
    base: url::Url,
    database: String,
    user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            base,
            database,
            user,
            password,
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

    /// Runs one statement, in the database unless `server_wide`; returns the body.
    async fn run(&self, sql: String, server_wide: bool) -> Result<String, AnalyticsError> {
        let mut url = self.base.clone();
        if !server_wide {
            url.query_pairs_mut().append_pair("database", &self.database);
        }
        let mut request = self.http.post(url).body(sql);
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_deref());
        }
        let response = request
            .send()
            .await
            .map_err(|e| AnalyticsError::ClickHouse(e.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AnalyticsError::ClickHouse(e.without_url().to_string()))?;
        if !status.is_success() {
            let first: String = text.lines().next().unwrap_or("").chars().take(400).collect();
            return Err(AnalyticsError::ClickHouse(format!("{status}: {first}")));
        }
        Ok(text)
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> Result<(), AnalyticsError> {
        self.run("SELECT 1".into(), true).await.map(|_| ())
    }

    /// Creates the database and applies pending migrations in file-name order; returns
    /// the names applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, AnalyticsError> {
        self.run(format!("CREATE DATABASE IF NOT EXISTS {}", self.database), true)
            .await?;
        self.run(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at UInt64) \
             ENGINE = MergeTree() ORDER BY name"
                .into(),
            false,
        )
        .await?;
        let done: HashSet<String> = self
            .run("SELECT name FROM schema_migrations FORMAT TabSeparated".into(), false)
            .await?
            .lines()
            .map(str::to_owned)
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
                self.run(statement, false).await?;
            }
            self.run(
                format!(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES ('{name}', {})",
                    chrono::Utc::now().timestamp()
                ),
                false,
            )
            .await?;
            applied.push(name);
        }
        Ok(applied)
    }

    /// Inserts `events` as one block (atomic on a MergeTree table).
    pub async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut body = String::from("INSERT INTO events FORMAT JSONEachRow\n");
        for e in events {
            let day = chrono::DateTime::from_timestamp_micros(e.at)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string();
            let row = serde_json::json!({
                "id": e.id,
                "kind": e.kind.as_str(),
                "at": e.at,
                "day": day,
                "transaction_id": e.transaction_id,
                "interface_id": e.interface_id,
                "sender_dip_id": e.sender_dip_id,
                "recipient_dip_id": e.recipient_dip_id,
                "queue_id": e.queue_id,
                "outcome": e.outcome,
                "latency_us": e.latency_us,
                "duration_us": e.duration_us,
                "replay": u8::from(e.replay),
            });
            body.push_str(&row.to_string());
            body.push('\n');
        }
        self.run(body, false).await.map(|_| ())
    }

    /// Which of `events` the table already holds (after a crash between an insert and
    /// the outbox delete). Looks only within their time span, which the table is sorted by.
    pub async fn existing(&self, events: &[Event]) -> Result<HashSet<i64>, AnalyticsError> {
        let (Some(from), Some(to)) = (events.iter().map(|e| e.at).min(), events.iter().map(|e| e.at).max()) else {
            return Ok(HashSet::new());
        };
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let text = self
            .run(
                format!(
                    "SELECT id FROM events WHERE at >= {from} AND at <= {to} AND id IN ({}) FORMAT TabSeparated",
                    ids.join(",")
                ),
                false,
            )
            .await?;
        text.lines()
            .map(|l| {
                l.parse::<i64>()
                    .map_err(|e| AnalyticsError::ClickHouse(format!("id {l:?}: {e}")))
            })
            .collect()
    }

    /// Runs a report statement: bucket, group, label, then `values` integers per row.
    pub async fn rows(&self, sql: &str, values: usize) -> Result<Vec<ReportRow>, AnalyticsError> {
        let text = self.run(format!("{sql} FORMAT TabSeparated"), false).await?;
        let corrupt = |l: &str| AnalyticsError::ClickHouse(format!("unexpected row {l:?}"));
        text.lines()
            .map(|line| {
                let cols: Vec<&str> = line.split('\t').collect();
                if cols.len() < 3 + values {
                    return Err(corrupt(line));
                }
                let int = |s: &str| s.parse::<i64>().map_err(|_| corrupt(line));
                Ok(ReportRow {
                    bucket: int(cols[0])?,
                    group: unescape(cols[1]),
                    label: unescape(cols[2]),
                    values: cols[3..3 + values].iter().map(|s| int(s)).collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }

    /// Drops the database (throwaway databases of tests and benchmarks).
    pub async fn drop_database(&self) -> Result<(), AnalyticsError> {
        self.run(format!("DROP DATABASE IF EXISTS {}", self.database), true)
            .await
            .map(|_| ())
    }

    /// Fills the table with `n` synthetic events spread evenly over `[from, to)`, made
    /// inside the server (for benchmarks): every kind, 40 channels, senders and
    /// recipients, latencies up to 2 s with one in fifty 5 s slower.
    pub async fn generate_events(&self, n: u64, from: i64, to: i64) -> Result<(), AnalyticsError> {
        let step = ((to - from) / i64::try_from(n.max(1)).unwrap_or(i64::MAX)).max(1);
        let kinds: Vec<String> = [
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
        ]
        .iter()
        .map(|k| format!("'{k}'"))
        .collect();
        self.run(
            format!(
                "INSERT INTO events (id, kind, at, day, transaction_id, interface_id, sender_dip_id, \
                 recipient_dip_id, queue_id, outcome, latency_us, duration_us, replay) \
                 SELECT number + 1000000000000, arrayElement([{kinds}], intHash64(number) % 10 + 1), \
                 {from} + toInt64(number) * {step}, toDate(toDateTime(intDiv({from} + toInt64(number) * {step}, 1000000))), \
                 concat('T', toString(number)), concat('IF-0', toString(10 + intHash64(number + 1) % 40)), \
                 concat('10000000', toString(10 + intHash64(number + 2) % 40)), \
                 concat('10000000', toString(10 + intHash64(number + 3) % 40)), '', 'HTTP 200', \
                 toInt64(intHash64(number + 4) % 2000000) + if(intHash64(number + 5) % 50 = 0, 5000000, 0), \
                 toInt64(intHash64(number + 6) % 500000), 0 FROM numbers({n})",
                kinds = kinds.join(", ")
            ),
            false,
        )
        .await
        .map(|_| ())
    }

    /// Every event, for tests and checks: count per kind.
    pub async fn count_by_kind(&self) -> Result<Vec<(String, i64)>, AnalyticsError> {
        let text = self
            .run(
                "SELECT kind, toInt64(count()) FROM events GROUP BY kind ORDER BY kind FORMAT TabSeparated".into(),
                false,
            )
            .await?;
        text.lines()
            .map(|l| {
                let (k, n) = l
                    .split_once('\t')
                    .ok_or_else(|| AnalyticsError::ClickHouse(format!("unexpected row {l:?}")))?;
                Ok((
                    k.to_owned(),
                    n.parse()
                        .map_err(|_| AnalyticsError::ClickHouse(format!("unexpected row {l:?}")))?,
                ))
            })
            .collect()
    }
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

/// Undoes TabSeparated escaping.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
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
        assert!(ClickHouse::new("http://h/?database=x;DROP").is_err());
        assert!(ClickHouse::new("ftp://h/").is_err());
    }

    #[test]
    fn tab_separated_escapes_are_undone() {
        assert_eq!(unescape(r"a\tb\\c"), "a\tb\\c");
    }
}
