//! What the reports dashboard shows and is asked for (parameters kept in the URL), shared
//! by the page and the report service.

use serde::{Deserialize, Serialize};

use dip_admin::types::encode;

/// The ranges offered, with the interval each uses unless one is chosen.
pub const RANGES: [(&str, &str, &str); 5] = [
    ("1h", "Last hour", "1m"),
    ("6h", "Last 6 hours", "5m"),
    ("24h", "Last 24 hours", "15m"),
    ("7d", "Last 7 days", "1h"),
    ("30d", "Last 30 days", "1d"),
];

/// The intervals offered.
pub const INTERVALS: [(&str, &str); 5] = [
    ("1m", "1 minute"),
    ("5m", "5 minutes"),
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("1d", "1 day"),
];

/// What a report shows, as the URL says it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportParams {
    /// One of [`RANGES`], or `custom` with `from` and `to`.
    pub range: String,
    /// Custom start, `YYYY-MM-DDTHH:MM` UTC.
    pub from: String,
    /// Custom end.
    pub to: String,
    /// One of [`INTERVALS`]; empty: the range's own.
    pub interval: String,
    /// Channels (any when empty).
    pub channels: Vec<String>,
    /// Sender DIP ID.
    pub sender: String,
    /// Recipient DIP ID.
    pub recipient: String,
    /// `channel`, `sender`, `recipient` or empty.
    pub group: String,
    /// `market` for a participant's view of market totals.
    pub scope: String,
    /// Refresh the last hour continuously.
    pub live: bool,
}

impl ReportParams {
    /// The URL query of these parameters (empty values left out).
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("range", self.range.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("interval", self.interval.clone()),
            ("sender", self.sender.clone()),
            ("recipient", self.recipient.clone()),
            ("group", self.group.clone()),
            ("scope", self.scope.clone()),
            ("live", if self.live { "1".into() } else { String::new() }),
        ];
        pairs.extend(self.channels.iter().map(|c| ("channel", c.clone())));
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyCells {
    /// Messages measured.
    pub count: i64,
    /// Fastest.
    pub min_ms: f64,
    /// Mean.
    pub avg_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Share within 3 s, percent.
    pub within_3s_pct: f64,
    /// Whether 90 % within 3 s and all within 30 s.
    pub slo_met: bool,
}

/// One row of the totals table: everything, or one channel, sender or recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalsRow {
    /// Group value; empty for everything.
    pub group: String,
    /// Incoming.
    pub received: i64,
    /// Copies queued.
    pub routed: i64,
    /// Outgoing.
    pub delivered: i64,
    /// Refused, returned or dead-lettered.
    pub errors: i64,
    /// Failed webhook attempts.
    pub failed_attempts: i64,
    /// Receipt to acknowledgement.
    pub end_to_end: Option<LatencyCells>,
    /// Receipt to queued.
    pub internal: Option<LatencyCells>,
    /// Mean platform time of webhook deliveries.
    pub platform_avg_ms: Option<f64>,
    /// Mean recipient webhook time.
    pub webhook_avg_ms: Option<f64>,
}

/// One interval of the series table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRow {
    /// Start, `YYYY-MM-DD HH:MM` UTC.
    pub start: String,
    /// Incoming.
    pub received: i64,
    /// Outgoing.
    pub delivered: i64,
    /// Errors.
    pub errors: i64,
    /// End-to-end latency.
    pub end_to_end: Option<LatencyCells>,
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportView {
    /// The parameters as applied (defaults filled in).
    pub params: ReportParams,
    /// "27 Nov 2026 09:00 – 10:00 UTC by 1 minute".
    pub span: String,
    /// Whose traffic.
    pub scope: String,
    /// Whether the viewer is a participant's user (who may switch to market totals).
    pub participant_user: bool,
    /// Volumes chart, SVG.
    pub volume_svg: String,
    /// Latency chart, SVG.
    pub latency_svg: String,
    /// Hop split chart, SVG.
    pub hops_svg: String,
    /// Totals: first the whole, then per group.
    pub totals: Vec<TotalsRow>,
    /// Intervals with traffic.
    pub series: Vec<BucketRow>,
    /// Heading of the group column.
    pub group_label: String,
    /// Channels for the filter.
    pub channel_options: Vec<String>,
    /// Participants for the filters: DIP ID and name.
    pub participant_options: Vec<(String, String)>,
}
