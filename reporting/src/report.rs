//! Throughput, latency and SLO reports (spec 5.11.1, 5.11.2), written once for both
//! sinks. The SQL differs only where the dialects do: bucketing and exact percentiles.
//!
//! Percentiles are exact and defined alike everywhere: p-th is the value at 0-based
//! position `n * p / 100` (integer division) of the sorted values, which is what
//! ClickHouse's `quantilesExact` returns. Averages are computed here from integer sums,
//! so both sinks give identical numbers for identical events.
//!
//! The request's values (range, interval, filters) are bound to `?` placeholders for
//! ClickHouse, whose client escapes them (the versions we support have no server-side
//! parameters), and inlined as literals for the embedded sink: every filter value is
//! checked against a strict identifier pattern first, and times and intervals are integers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use broker_core::events::EventKind;
use broker_core::store::ReportRow;

use crate::error::AnalyticsError;

/// Shortest and longest report interval.
pub const MIN_INTERVAL_SECS: i64 = 60;
/// One day.
pub const MAX_INTERVAL_SECS: i64 = 86_400;
/// Most buckets one report may have.
pub const MAX_BUCKETS: i64 = 1_500;
/// Most values in one filter.
pub const MAX_FILTER_VALUES: usize = 50;
/// The latency objective (spec 5.10.3): 90 % within 3 s…
pub const SLO_FAST_US: i64 = 3_000_000;
/// …and all within 30 s.
pub const SLO_ALL_US: i64 = 30_000_000;

/// How rows are split besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One series.
    #[default]
    None,
    /// Per channel.
    Channel,
    /// Per sender.
    Sender,
    /// Per recipient.
    Recipient,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            Self::None => "''",
            Self::Channel => "interface_id",
            Self::Sender => "sender_dip_id",
            Self::Recipient => "recipient_dip_id",
        }
    }

    /// Parses the URL form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "none" => Some(Self::None),
            "channel" => Some(Self::Channel),
            "sender" => Some(Self::Sender),
            "recipient" => Some(Self::Recipient),
            _ => None,
        }
    }

    /// The URL form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Channel => "channel",
            Self::Sender => "sender",
            Self::Recipient => "recipient",
        }
    }
}

/// Who asks: row-level visibility (spec 5.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Platform staff: everything.
    Operator,
    /// A participant's user: traffic the participant sent or received, and market
    /// totals with no participant detail.
    Participant(String),
}

/// A report request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQuery {
    /// Start, microseconds since the epoch (inclusive).
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
    /// Bucket width, 60 s to one day; buckets start at multiples of it since the epoch
    /// (so minutes, hours and days are UTC-aligned).
    pub interval_secs: i64,
    /// Only these channels (any when empty).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Only these senders.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Only these recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Split by.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Only traffic this participant sent or received (row-level visibility); `None`
    /// for everything.
    #[serde(default)]
    pub participant: Option<String>,
}

impl ReportQuery {
    /// Applies `viewer`'s visibility: a participant's query is limited to its own
    /// traffic unless it asks for market totals (`market`), which may carry no sender,
    /// recipient or participant detail.
    pub fn authorise(&mut self, viewer: &Viewer, market: bool) -> Result<(), AnalyticsError> {
        let Viewer::Participant(own) = viewer else {
            return Ok(());
        };
        if market {
            if !self.senders.is_empty()
                || !self.recipients.is_empty()
                || matches!(self.group_by, GroupBy::Sender | GroupBy::Recipient)
                || self.participant.is_some()
            {
                return Err(AnalyticsError::Invalid(
                    "market totals cannot be filtered or split by sender or recipient".into(),
                ));
            }
            return Ok(());
        }
        match &self.participant {
            Some(p) if p != own => Err(AnalyticsError::Forbidden(format!(
                "you may report on {own}'s traffic only"
            ))),
            _ => {
                self.participant = Some(own.clone());
                Ok(())
            }
        }
    }

    /// Checks ranges and filter values.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |m: String| Err(AnalyticsError::Invalid(m));
        if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&self.interval_secs) {
            return bad(format!(
                "the interval must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS} seconds"
            ));
        }
        if self.to <= self.from || self.from < 0 {
            return bad("the range must end after it starts".into());
        }
        let step = self.interval_us();
        let first = self.from - self.from.rem_euclid(step);
        let buckets = (self.to - first + step - 1) / step;
        if buckets > MAX_BUCKETS {
            return bad(format!(
                "{buckets} intervals in that range; at most {MAX_BUCKETS}: choose a longer interval"
            ));
        }
        for (what, list) in [
            ("channel", &self.channels),
            ("sender", &self.senders),
            ("recipient", &self.recipients),
        ] {
            if list.len() > MAX_FILTER_VALUES {
                return bad(format!("at most {MAX_FILTER_VALUES} {what} values"));
            }
            if let Some(v) = list.iter().find(|v| !identifier(v)) {
                return bad(format!("{what} {v:?} is not a valid identifier"));
            }
        }
        if let Some(p) = self.participant.as_ref().filter(|p| !identifier(p)) {
            return bad(format!("participant {p:?} is not a valid identifier"));
        }
        Ok(())
    }

    fn interval_us(&self) -> i64 {
        self.interval_secs * 1_000_000
    }

    /// The start of every bucket of the range.
    pub fn buckets(&self) -> Vec<i64> {
        let step = self.interval_us();
        let mut b = self.from - self.from.rem_euclid(step);
        let mut out = Vec::new();
        while b < self.to {
            out.push(b);
            b += step;
        }
        out
    }
}

/// Whether `s` may be inlined in SQL: DIP IDs, interface ids and the like.
fn identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Which latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Receipt to the recipient's acknowledgement (spec 5.11.1).
    EndToEnd,
    /// Receipt to queued for the recipient (spec 5.11.2).
    Internal,
    /// The platform's share of a webhook delivery: receipt to the start of the
    /// successful call (queueing, earlier attempts, preparation).
    Platform,
    /// The recipient's share: the successful webhook call itself.
    Webhook,
}

impl Measure {
    /// Every measure.
    pub const ALL: [Measure; 4] = [Self::EndToEnd, Self::Internal, Self::Platform, Self::Webhook];

    /// Display and CSV name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndToEnd => "end_to_end",
            Self::Internal => "internal",
            Self::Platform => "platform",
            Self::Webhook => "webhook",
        }
    }

    /// Event kind, value expression and extra condition.
    fn source(self) -> (EventKind, &'static str, &'static str) {
        match self {
            Self::EndToEnd => (EventKind::Delivered, "latency_us", ""),
            Self::Internal => (EventKind::Routed, "latency_us", ""),
            Self::Platform => (EventKind::Delivered, "latency_us - duration_us", " AND duration_us > 0"),
            Self::Webhook => (EventKind::Delivered, "duration_us", " AND duration_us > 0"),
        }
    }
}

/// The SQL flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite and PostgreSQL (the embedded sink).
    Sql,
    /// ClickHouse.
    ClickHouse,
}

/// Which part of a report a statement computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Event counts per kind; `whole`: over the whole range.
    Volumes {
        /// Over the whole range rather than per bucket.
        whole: bool,
    },
    /// Latency statistics of one measure.
    Latency {
        /// Which.
        measure: Measure,
        /// Over the whole range rather than per bucket.
        whole: bool,
    },
}

/// Figures per latency row: count, min, max, sum, p50, p90, p99, within 3 s, within 30 s.
const LATENCY_VALUES: usize = 9;

/// A value bound to a `?` of a ClickHouse statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
    /// Strings for `IN ?`: serialised as a tuple, which the client writes `('a', 'b')`.
    List(Vec<String>),
}

impl Serialize for Param {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        match self {
            Self::Int(v) => s.serialize_i64(*v),
            Self::Text(v) => s.serialize_str(v),
            Self::List(values) => {
                let mut t = s.serialize_tuple(values.len())?;
                for v in values {
                    t.serialize_element(v)?;
                }
                t.end()
            }
        }
    }
}

/// A statement and the values of its `?` placeholders in order (ClickHouse; the
/// embedded dialect inlines them and binds nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// What its placeholders stand for.
    pub binds: Vec<Param>,
}

/// The request's values in one statement: literals for the embedded dialect, `?` with
/// the value kept for ClickHouse. Call in the order they appear in the SQL.
struct Values {
    d: Dialect,
    binds: Vec<Param>,
}

impl Values {
    fn new(d: Dialect) -> Self {
        Self { d, binds: Vec::new() }
    }

    fn add(&mut self, literal: String, p: Param) -> String {
        match self.d {
            Dialect::Sql => literal,
            Dialect::ClickHouse => {
                self.binds.push(p);
                "?".into()
            }
        }
    }

    fn int(&mut self, v: i64) -> String {
        self.add(v.to_string(), Param::Int(v))
    }

    fn text(&mut self, v: &str) -> String {
        self.add(quote_list(&[v.to_owned()]), Param::Text(v.to_owned()))
    }

    /// A parenthesised list, for `IN`.
    fn list(&mut self, v: &[String]) -> String {
        self.add(format!("({})", quote_list(v)), Param::List(v.to_vec()))
    }

    fn finish(self, sql: String) -> Statement {
        Statement { sql, binds: self.binds }
    }
}

/// The statements a report runs, with the number of integer columns each returns;
/// only those over the whole range with `totals_only`.
pub fn statements(q: &ReportQuery, d: Dialect, totals_only: bool) -> Vec<(Part, Statement, usize)> {
    let mut out = Vec::new();
    let spans: &[bool] = if totals_only { &[true] } else { &[false, true] };
    for &whole in spans {
        out.push((Part::Volumes { whole }, volumes_sql(q, d, whole), 1));
        for measure in Measure::ALL {
            out.push((
                Part::Latency { measure, whole },
                latency_sql(q, d, measure, whole),
                LATENCY_VALUES,
            ));
        }
    }
    out
}

fn bucket_expr(q: &ReportQuery, v: &mut Values, whole: bool) -> String {
    if whole {
        let from = v.int(q.from);
        return match v.d {
            Dialect::Sql => format!("CAST({from} AS BIGINT)"),
            Dialect::ClickHouse => format!("toInt64({from})"),
        };
    }
    let (a, b) = (v.int(q.interval_us()), v.int(q.interval_us()));
    match v.d {
        Dialect::Sql => format!("(at / {a}) * {b}"),
        Dialect::ClickHouse => format!("toInt64(intDiv(at, {a}) * {b})"),
    }
}

fn table(d: Dialect) -> &'static str {
    match d {
        Dialect::Sql => "analytics_events",
        Dialect::ClickHouse => "events",
    }
}

fn int(d: Dialect, expr: &str) -> String {
    match d {
        Dialect::Sql => format!("CAST({expr} AS BIGINT)"),
        Dialect::ClickHouse => format!("toInt64({expr})"),
    }
}

/// The integer columns of a row: as they are for the embedded dialect, one
/// `Array(Int64)` for ClickHouse (whose rows are read in binary, into one shape).
fn figures(d: Dialect, columns: &[String]) -> String {
    match d {
        Dialect::Sql => columns.join(", "),
        Dialect::ClickHouse => format!("[{}]", columns.join(", ")),
    }
}

fn quote_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The WHERE clause: range, kinds, filters and visibility.
fn filter(q: &ReportQuery, v: &mut Values, kinds: &[EventKind]) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    let kinds = v.list(&kinds);
    let from = v.int(q.from);
    let to = v.int(q.to);
    let mut w = format!("WHERE kind IN {kinds} AND at >= {from} AND at < {to}");
    for (column, list) in [
        ("interface_id", &q.channels),
        ("sender_dip_id", &q.senders),
        ("recipient_dip_id", &q.recipients),
    ] {
        if !list.is_empty() {
            w.push_str(&format!(" AND {column} IN {}", v.list(list)));
        }
    }
    if let Some(p) = &q.participant {
        let (a, b) = (v.text(p), v.text(p));
        w.push_str(&format!(" AND (sender_dip_id = {a} OR recipient_dip_id = {b})"));
    }
    w
}

/// The statement listing whom `participant` exchanged messages with in `[from, to)`
/// (as sender or recipient of a routed copy): one row per counterparty, its DIP ID as
/// the group and the copies as the value. `None` when `participant` is not an identifier.
pub fn counterparties_sql(participant: &str, from: i64, to: i64, d: Dialect) -> Option<Statement> {
    if !identifier(participant) {
        return None;
    }
    let mut v = Values::new(d);
    let (me, from, to, me2, me3) = (
        v.text(participant),
        v.int(from),
        v.int(to),
        v.text(participant),
        v.text(participant),
    );
    let bucket = match d {
        Dialect::Sql => "0",
        Dialect::ClickHouse => "toInt64(0)",
    };
    let sql = format!(
        "SELECT {bucket} AS bucket, CASE WHEN sender_dip_id = {me} THEN recipient_dip_id ELSE sender_dip_id END AS grp, \
         '' AS label, {n} FROM {t} WHERE kind = 'routed' AND at >= {from} AND at < {to} \
         AND (sender_dip_id = {me2} OR recipient_dip_id = {me3}) GROUP BY bucket, grp, label ORDER BY grp",
        n = figures(d, &[int(d, "COUNT(*)")]),
        t = table(d),
    );
    Some(v.finish(sql))
}

/// The statement counting the API's refusals that `q` selects over its whole range, per
/// channel and error code (the sender report's "rejected, with the top error codes"): the
/// channel as the group (empty when the refused item named no channel of the platform),
/// the code as the label, the count as the value.
pub fn rejections_sql(q: &ReportQuery, d: Dialect) -> Statement {
    let mut v = Values::new(d);
    let w = filter(q, &mut v, &[EventKind::Rejected]);
    let sql = format!(
        "SELECT {b} AS bucket, interface_id AS grp, outcome AS label, {n} FROM {t} {w} \
         GROUP BY bucket, grp, label ORDER BY grp, label",
        b = int(d, "0"),
        n = figures(d, &[int(d, "COUNT(*)")]),
        t = table(d),
    );
    v.finish(sql)
}

fn volumes_sql(q: &ReportQuery, d: Dialect, whole: bool) -> Statement {
    let mut values = Values::new(d);
    let b = bucket_expr(q, &mut values, whole);
    let w = filter(q, &mut values, &EventKind::ALL);
    let sql = format!(
        "SELECT {b} AS bucket, {g} AS grp, kind AS label, {n} FROM {t} {w} \
         GROUP BY bucket, grp, label ORDER BY bucket, grp, label",
        g = q.group_by.column(),
        n = figures(d, &[int(d, "COUNT(*)")]),
        t = table(d),
    );
    values.finish(sql)
}

fn latency_sql(q: &ReportQuery, d: Dialect, measure: Measure, whole: bool) -> Statement {
    let (kind, v, extra) = measure.source();
    let mut values = Values::new(d);
    // Placeholders in this order only: the bucket comes before the WHERE clause.
    let b = bucket_expr(q, &mut values, whole);
    let g = q.group_by.column();
    let w = format!("{} AND replay = 0{extra}", filter(q, &mut values, &[kind]));
    let label = measure.as_str();
    let sql = match d {
        Dialect::Sql => {
            let pct = |p: i64| format!("MAX(CASE WHEN rn = (cnt * {p}) / 100 + 1 THEN v END)");
            format!(
                "SELECT bucket, grp, '{label}' AS label, {n}, MIN(v), MAX(v), {sum}, {p50}, {p90}, {p99}, \
                 {fast}, {all} FROM (SELECT {b} AS bucket, {g} AS grp, {v} AS v, \
                 ROW_NUMBER() OVER (PARTITION BY {b}, {g} ORDER BY {v}) AS rn, \
                 COUNT(*) OVER (PARTITION BY {b}, {g}) AS cnt FROM analytics_events {w}) AS x \
                 GROUP BY bucket, grp ORDER BY bucket, grp",
                n = int(d, "COUNT(*)"),
                sum = int(d, "SUM(v)"),
                p50 = pct(50),
                p90 = pct(90),
                p99 = pct(99),
                fast = int(d, &format!("SUM(CASE WHEN v <= {SLO_FAST_US} THEN 1 ELSE 0 END)")),
                all = int(d, &format!("SUM(CASE WHEN v <= {SLO_ALL_US} THEN 1 ELSE 0 END)")),
            )
        }
        Dialect::ClickHouse => format!(
            "SELECT {b} AS bucket, {g} AS grp, '{label}' AS label, [toInt64(count()), toInt64(min({v})), \
             toInt64(max({v})), toInt64(sum({v})), toInt64((quantilesExact(0.5, 0.9, 0.99)({v}) AS qs)[1]), \
             toInt64(qs[2]), toInt64(qs[3]), toInt64(countIf({v} <= {SLO_FAST_US})), \
             toInt64(countIf({v} <= {SLO_ALL_US}))] FROM events {w} \
             GROUP BY bucket, grp ORDER BY bucket, grp"
        ),
    };
    values.finish(sql)
}

/// Event counts of one bucket (or of the whole range) and group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Bucket start.
    pub bucket: i64,
    /// Group value.
    pub group: String,
    /// Messages accepted (incoming).
    pub received: i64,
    /// Items refused at the API.
    pub rejected: i64,
    /// Recipient copies queued.
    pub routed: i64,
    /// Webhook attempts that failed (retried).
    pub failed_attempts: i64,
    /// Copies the recipients took (outgoing).
    pub delivered: i64,
    /// Copies returned to the sender.
    pub returned: i64,
    /// Copies dead-lettered.
    pub dead_lettered: i64,
    /// Replay copies queued.
    pub replayed: i64,
    /// Dead letters queued again.
    pub redriven: i64,
}

impl Volume {
    /// Error volume: refused, returned or dead-lettered.
    pub fn errors(&self) -> i64 {
        self.rejected + self.returned + self.dead_lettered
    }

    fn add(&mut self, kind: EventKind, n: i64) {
        let slot = match kind {
            EventKind::Received => &mut self.received,
            EventKind::Rejected => &mut self.rejected,
            EventKind::Routed => &mut self.routed,
            EventKind::FailedAttempt => &mut self.failed_attempts,
            EventKind::Delivered => &mut self.delivered,
            EventKind::Returned => &mut self.returned,
            EventKind::DeadLettered => &mut self.dead_lettered,
            EventKind::Replayed => &mut self.replayed,
            EventKind::Redriven => &mut self.redriven,
        };
        *slot += n;
    }
}

/// Latency statistics of one measure in one bucket (or the whole range) and group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Bucket start.
    pub bucket: i64,
    /// Group value.
    pub group: String,
    /// Which latency.
    pub measure: Measure,
    /// Messages measured.
    pub count: i64,
    /// Fastest, microseconds.
    pub min_us: i64,
    /// Mean, microseconds.
    pub avg_us: f64,
    /// Slowest.
    pub max_us: i64,
    /// Median.
    pub p50_us: i64,
    /// 90th percentile.
    pub p90_us: i64,
    /// 99th percentile.
    pub p99_us: i64,
    /// How many within 3 s.
    pub within_3s: i64,
    /// How many within 30 s.
    pub within_30s: i64,
}

impl Latency {
    fn from_row(measure: Measure, r: &ReportRow) -> Option<Self> {
        let [
            count,
            min_us,
            max_us,
            sum,
            p50_us,
            p90_us,
            p99_us,
            within_3s,
            within_30s,
        ] = <[i64; LATENCY_VALUES]>::try_from(r.values.as_slice()).ok()?;
        Some(Self {
            bucket: r.bucket,
            group: r.group.clone(),
            measure,
            count,
            min_us,
            avg_us: if count > 0 { sum as f64 / count as f64 } else { 0.0 },
            max_us,
            p50_us,
            p90_us,
            p99_us,
            within_3s,
            within_30s,
        })
    }

    /// Share within 3 s, 0–1.
    pub fn fast_share(&self) -> f64 {
        if self.count == 0 {
            1.0
        } else {
            self.within_3s as f64 / self.count as f64
        }
    }

    /// Whether the objective holds: 90 % within 3 s and all within 30 s.
    pub fn slo_met(&self) -> bool {
        self.fast_share() >= 0.9 && self.within_30s == self.count
    }
}

/// A report: series per bucket and totals over the range, per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was asked (after authorisation).
    pub query: ReportQuery,
    /// Bucket starts, every one of the range (empty buckets included).
    pub buckets: Vec<i64>,
    /// Groups present, sorted.
    pub groups: Vec<String>,
    /// Counts per bucket and group (only where something happened).
    pub volumes: Vec<Volume>,
    /// Latency per bucket, group and measure (only where something was measured).
    pub latency: Vec<Latency>,
    /// Counts over the whole range per group.
    pub volume_totals: Vec<Volume>,
    /// Latency over the whole range per group and measure.
    pub latency_totals: Vec<Latency>,
}

impl Report {
    /// Counts over the whole range of `group`.
    pub fn total(&self, group: &str) -> Volume {
        self.volume_totals
            .iter()
            .find(|v| v.group == group)
            .cloned()
            .unwrap_or_else(|| Volume {
                bucket: self.query.from,
                group: group.into(),
                ..Volume::default()
            })
    }

    /// Latency over the whole range of `group`.
    pub fn latency_total(&self, group: &str, measure: Measure) -> Option<&Latency> {
        self.latency_totals
            .iter()
            .find(|l| l.group == group && l.measure == measure)
    }
}

/// Builds the report from each statement's rows.
pub fn assemble(query: &ReportQuery, parts: Vec<(Part, Vec<ReportRow>)>) -> Report {
    let mut volumes: [BTreeMap<(i64, String), Volume>; 2] = Default::default();
    let mut latency: [Vec<Latency>; 2] = Default::default();
    let mut groups = std::collections::BTreeSet::new();
    for (part, rows) in parts {
        for r in rows {
            groups.insert(r.group.clone());
            match part {
                Part::Volumes { whole } => {
                    let Some(kind) = EventKind::parse(&r.label) else {
                        continue;
                    };
                    let n = r.values.first().copied().unwrap_or(0);
                    volumes[usize::from(whole)]
                        .entry((r.bucket, r.group.clone()))
                        .or_insert_with(|| Volume {
                            bucket: r.bucket,
                            group: r.group.clone(),
                            ..Volume::default()
                        })
                        .add(kind, n);
                }
                Part::Latency { measure, whole } => {
                    latency[usize::from(whole)].extend(Latency::from_row(measure, &r));
                }
            }
        }
    }
    let [per_bucket, whole] = volumes;
    let [latency, latency_totals] = latency;
    Report {
        query: query.clone(),
        buckets: query.buckets(),
        groups: groups.into_iter().collect(),
        volumes: per_bucket.into_values().collect(),
        latency,
        volume_totals: whole.into_values().collect(),
        latency_totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> ReportQuery {
        ReportQuery {
            from: 0,
            to: 3_600_000_000,
            interval_secs: 60,
            channels: vec![],
            senders: vec![],
            recipients: vec![],
            group_by: GroupBy::None,
            participant: None,
        }
    }

    #[test]
    fn filter_values_must_be_identifiers() {
        let mut q = query();
        q.channels = vec!["IF-031".into()];
        assert!(q.validate().is_ok());
        q.senders = vec!["x' OR 1=1 --".into()];
        assert!(matches!(q.validate(), Err(AnalyticsError::Invalid(m)) if m.contains("sender")));
    }

    #[test]
    fn ranges_and_intervals_are_bounded() {
        let mut q = query();
        q.interval_secs = 30;
        assert!(q.validate().is_err());
        q.interval_secs = 60;
        q.to = 60 * 1_000_000 * (MAX_BUCKETS + 1);
        assert!(q.validate().unwrap_err().to_string().contains("longer interval"));
        q.to = q.from;
        assert!(q.validate().is_err());
    }

    #[test]
    fn participants_see_their_own_traffic_or_market_totals() {
        let viewer = Viewer::Participant("SUP1".into());
        let mut q = query();
        q.authorise(&viewer, false).unwrap();
        assert_eq!(q.participant.as_deref(), Some("SUP1"));

        let mut q = query();
        q.participant = Some("SUP2".into());
        assert!(q.authorise(&viewer, false).is_err());

        let mut q = query();
        q.group_by = GroupBy::Channel;
        q.authorise(&viewer, true).unwrap();
        assert_eq!(q.participant, None);
        q.group_by = GroupBy::Recipient;
        assert!(q.authorise(&viewer, true).is_err());

        let mut q = query();
        q.participant = Some("SUP2".into());
        q.authorise(&Viewer::Operator, false).unwrap();
        assert_eq!(q.participant.as_deref(), Some("SUP2"));
    }

    #[test]
    fn clickhouse_statements_bind_the_request_values_in_order() {
        let mut q = query();
        q.channels = vec!["IF-031".into(), "IF-033".into()];
        q.participant = Some("1000000021".into());
        for (_, s, _) in statements(&q, Dialect::ClickHouse, false) {
            assert_eq!(s.sql.matches('?').count(), s.binds.len(), "{}", s.sql);
            assert!(!s.sql.contains("IF-031") && !s.sql.contains("1000000021") && !s.sql.contains("3600000000"));
            assert!(s.binds.contains(&Param::List(q.channels.clone())));
        }
        for (_, s, _) in statements(&q, Dialect::Sql, false) {
            assert!(s.binds.is_empty() && !s.sql.contains('?'));
            assert!(s.sql.contains("interface_id IN ('IF-031', 'IF-033')"), "{}", s.sql);
        }
        let me = || Param::Text("SUP1".into());
        let c = counterparties_sql("SUP1", 0, 60, Dialect::ClickHouse).unwrap();
        assert_eq!(c.binds, [me(), Param::Int(0), Param::Int(60), me(), me()]);
        let mut r = query();
        r.senders = vec!["SUP1".into()];
        let s = rejections_sql(&r, Dialect::ClickHouse);
        assert_eq!(s.sql.matches('?').count(), s.binds.len(), "{}", s.sql);
        assert_eq!(s.binds[0], Param::List(vec!["rejected".into()]));
        assert!(s.binds.contains(&Param::List(r.senders.clone())));
        let s = rejections_sql(&r, Dialect::Sql);
        assert!(
            s.sql.contains("kind IN ('rejected')") && s.sql.contains("sender_dip_id IN ('SUP1')"),
            "{}",
            s.sql
        );
    }

    #[test]
    fn buckets_cover_the_range_aligned_to_the_interval() {
        let mut q = query();
        q.from = 90_000_000;
        q.to = 200_000_000;
        assert_eq!(q.buckets(), vec![60_000_000, 120_000_000, 180_000_000]);
    }
}
