//! Reports on the server: the URL's parameters turned into an authorised report query,
//! and the dashboard's view (tables and charts); [`crate::rest`] serves the same as JSON
//! and CSV.
//!
//! Visibility (spec 5.11): operator staff see everything; a participant's users and
//! API keys see traffic their participant sent or received, or market totals that name
//! no participant.

use broker_core::Broker;
use dip_admin::types::{Actor, AppError};

use crate::analytics::Analytics;
use crate::charts::{self, Line};
use crate::error::AnalyticsError;
use crate::report::{GroupBy, Latency, Measure, Report, ReportQuery, Viewer};
use crate::report_views::{BucketRow, INTERVALS, LatencyCells, RANGES, ReportParams, ReportView, TotalsRow};

/// Parameters from a URL query (`channel` may repeat).
pub fn params_from_query(query: &str) -> ReportParams {
    let mut p = ReportParams::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "range" => p.range = v,
            "from" => p.from = v,
            "to" => p.to = v,
            "interval" => p.interval = v,
            "channel" if !v.is_empty() => p.channels.push(v),
            "sender" => p.sender = v,
            "recipient" => p.recipient = v,
            "group" => p.group = v,
            "scope" => p.scope = v,
            "live" => p.live = v == "1",
            _ => {}
        }
    }
    p
}

const MINUTE: i64 = 60;

fn interval_secs(code: &str) -> Option<i64> {
    match code {
        "1m" => Some(MINUTE),
        "5m" => Some(5 * MINUTE),
        "15m" => Some(15 * MINUTE),
        "1h" => Some(60 * MINUTE),
        "1d" => Some(1440 * MINUTE),
        other => other.parse().ok(),
    }
}

fn range_secs(code: &str) -> Option<i64> {
    match code {
        "1h" => Some(3600),
        "6h" => Some(6 * 3600),
        "24h" => Some(86_400),
        "7d" => Some(7 * 86_400),
        "30d" => Some(30 * 86_400),
        _ => None,
    }
}

fn parse_time(field: &str, s: &str) -> Result<i64, AppError> {
    crate::time::utc_micros(s, false).ok_or_else(|| AppError::field(field, "Give a UTC time as YYYY-MM-DDTHH:MM."))
}

/// The report query the parameters ask for, with the defaults filled into `params`;
/// also whether market totals were asked for.
pub fn query_of(params: &mut ReportParams, now: i64) -> Result<(ReportQuery, bool), AppError> {
    if params.live {
        params.range = "1h".into();
    }
    if params.range.is_empty() {
        params.range = "24h".into();
    }
    let (from, to, default_interval) = match range_secs(&params.range) {
        Some(span) => {
            let default = RANGES.iter().find(|r| r.0 == params.range).map_or("1h", |r| r.2);
            let step = interval_secs(if params.interval.is_empty() {
                default
            } else {
                &params.interval
            })
            .unwrap_or(3600)
            .max(MINUTE)
                * 1_000_000;
            // The range ends with the interval holding now, so the last bucket is whole.
            let to = (now / step + 1) * step;
            (to - span * 1_000_000, to, default)
        }
        None if params.range == "custom" => {
            let from = parse_time("from", &params.from)?;
            let to = parse_time("to", &params.to)?;
            if to <= from {
                return Err(AppError::field("to", "The end must come after the start."));
            }
            // The shortest interval that keeps the chart readable (at most 500 points).
            let span = (to - from) / 1_000_000;
            let auto = INTERVALS
                .iter()
                .map(|i| i.0)
                .find(|i| interval_secs(i).is_some_and(|s| span / s <= 500))
                .unwrap_or("1d");
            (from, to, auto)
        }
        None => return Err(AppError::field("range", "Choose one of the ranges offered, or custom.")),
    };
    if params.interval.is_empty() {
        params.interval = default_interval.to_owned();
    }
    let interval = interval_secs(&params.interval)
        .ok_or_else(|| AppError::field("interval", "Choose one of the intervals offered."))?;
    let group_by = GroupBy::parse(&params.group)
        .ok_or_else(|| AppError::field("group", "Split by channel, sender or recipient."))?;
    let one = |v: &str| if v.is_empty() { vec![] } else { vec![v.to_owned()] };
    let query = ReportQuery {
        from,
        to,
        interval_secs: interval,
        channels: params.channels.clone(),
        senders: one(&params.sender),
        recipients: one(&params.recipient),
        group_by,
        participant: None,
    };
    Ok((query, params.scope == "market"))
}

/// Who the actor is for reports.
pub fn viewer(actor: &Actor) -> Viewer {
    match &actor.dip_id {
        None => Viewer::Operator,
        Some(dip) => Viewer::Participant(dip.clone()),
    }
}

pub(crate) fn app_error(e: AnalyticsError) -> AppError {
    match e {
        AnalyticsError::Invalid(m) => AppError::Invalid {
            message: m,
            fields: Default::default(),
            values: Default::default(),
        },
        AnalyticsError::Forbidden(_) => AppError::Forbidden,
        other => {
            tracing::error!(error = %other, "report failed");
            AppError::Unavailable
        }
    }
}

/// Runs the report `params` ask for, as `actor` may see it: the series without
/// grouping, and the totals split as asked.
pub async fn run(
    analytics: &Analytics,
    actor: &Actor,
    params: &mut ReportParams,
) -> Result<(Report, Report), AppError> {
    let (mut query, market) = query_of(params, broker_core::clock::now_micros())?;
    query.authorise(&viewer(actor), market).map_err(app_error)?;
    let grouped = query.clone();
    query.group_by = GroupBy::None;
    let series = analytics.report(&query).await.map_err(app_error)?;
    let totals = if grouped.group_by == GroupBy::None {
        series.clone()
    } else {
        analytics.totals(&grouped).await.map_err(app_error)?
    };
    Ok((series, totals))
}

/// The participants `actor`'s views may name, by DIP ID with their names: every one for
/// operator staff; for a participant's user their own, those it acts for, and the
/// counterparties it exchanged messages with in `[from, to)`, and nobody else.
pub async fn named_participants(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    from: i64,
    to: i64,
) -> Result<Vec<(String, String)>, AppError> {
    let registry = broker.registry();
    let ids = match &actor.dip_id {
        None => registry.participants().into_iter().map(|p| p.dip_id.clone()).collect(),
        Some(own) => {
            let mut ids = registry.acts_for(own);
            ids.extend(analytics.counterparties(own, from, to).await.map_err(app_error)?);
            ids.sort();
            ids.dedup();
            ids
        }
    };
    Ok(ids
        .into_iter()
        .filter_map(|id| registry.participant(&id).map(|p| (id.clone(), p.name.clone())))
        .collect())
}

/// A latency's figures as tables show them, in milliseconds.
pub(crate) fn cells(l: &Latency) -> LatencyCells {
    LatencyCells {
        count: l.count,
        min_ms: l.min_us as f64 / 1000.0,
        avg_ms: l.avg_us / 1000.0,
        p50_ms: l.p50_us as f64 / 1000.0,
        p90_ms: l.p90_us as f64 / 1000.0,
        p99_ms: l.p99_us as f64 / 1000.0,
        max_ms: l.max_us as f64 / 1000.0,
        within_3s_pct: l.fast_share() * 100.0,
        slo_met: l.slo_met(),
    }
}

fn totals_row(r: &Report, group: &str) -> TotalsRow {
    let v = r.total(group);
    let avg = |m| r.latency_total(group, m).map(|l: &Latency| l.avg_us / 1000.0);
    TotalsRow {
        group: group.to_owned(),
        received: v.received,
        routed: v.routed,
        delivered: v.delivered,
        errors: v.errors(),
        failed_attempts: v.failed_attempts,
        end_to_end: r.latency_total(group, Measure::EndToEnd).map(cells),
        internal: r.latency_total(group, Measure::Internal).map(cells),
        platform_avg_ms: avg(Measure::Platform),
        webhook_avg_ms: avg(Measure::Webhook),
    }
}

fn latency_of(r: &Report, bucket: i64, m: Measure) -> Option<&Latency> {
    r.latency
        .iter()
        .find(|l| l.bucket == bucket && l.measure == m && l.group.is_empty())
}

fn minute(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The chart of a report's incoming, outgoing and error messages per interval (the
/// dashboard's first chart, and the home page's).
pub(crate) fn volume_chart(series: &Report) -> String {
    let q = &series.query;
    let volume = |pick: fn(&crate::report::Volume) -> i64| -> Vec<(i64, f64)> {
        series
            .buckets
            .iter()
            .map(|b| {
                let n = series
                    .volumes
                    .iter()
                    .find(|v| v.bucket == *b && v.group.is_empty())
                    .map_or(0, pick);
                (*b, n as f64)
            })
            .collect()
    };
    charts::lines(
        "Incoming, outgoing and error messages per interval",
        "messages",
        q.from,
        q.to,
        &[
            Line {
                label: "incoming",
                color: charts::BLUE,
                points: volume(|v| v.received),
            },
            Line {
                label: "outgoing",
                color: charts::GREEN,
                points: volume(|v| v.delivered),
            },
            Line {
                label: "errors",
                color: charts::VERMILLION,
                points: volume(|v| v.errors()),
            },
        ],
        None,
    )
}

/// The dashboard of `params` for `actor`.
pub async fn view(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    mut params: ReportParams,
) -> Result<ReportView, AppError> {
    let (series, totals) = run(analytics, actor, &mut params).await?;
    let q = &series.query;
    let interval = INTERVALS
        .iter()
        .find(|i| i.0 == params.interval)
        .map_or_else(|| format!("{} s", q.interval_secs), |i| i.1.to_owned());
    let span = format!("{} – {} UTC by {interval}", minute(q.from), minute(q.to));
    let scope = match (&q.participant, &actor.dip_id) {
        (Some(p), _) => format!("traffic sent or received by {p}"),
        (None, Some(_)) => "market totals".to_owned(),
        (None, None) => "all traffic".to_owned(),
    };

    // "All" comes from the unsplit report: a split report has no empty group.
    let mut rows = vec![totals_row(&series, "")];
    if totals.query.group_by != GroupBy::None {
        rows.extend(
            totals
                .groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| totals_row(&totals, g)),
        );
    }
    let buckets: Vec<BucketRow> = series
        .volumes
        .iter()
        .filter(|v| v.group.is_empty())
        .map(|v| BucketRow {
            start: minute(v.bucket),
            received: v.received,
            delivered: v.delivered,
            errors: v.errors(),
            end_to_end: latency_of(&series, v.bucket, Measure::EndToEnd).map(cells),
        })
        .collect();

    let per_bucket = |f: &dyn Fn(i64) -> Option<f64>| -> Vec<(i64, f64)> {
        series.buckets.iter().filter_map(|b| f(*b).map(|v| (*b, v))).collect()
    };
    let volume_svg = volume_chart(&series);
    let seconds = |m: Measure, pick: fn(&Latency) -> f64| per_bucket(&|b| latency_of(&series, b, m).map(pick));
    let latency_svg = charts::lines(
        "End-to-end latency per interval: median, 90th and 99th percentiles in seconds, against the 3 second objective",
        "seconds",
        q.from,
        q.to,
        &[
            Line {
                label: "p50",
                color: charts::GREEN,
                points: seconds(Measure::EndToEnd, |l| l.p50_us as f64 / 1e6),
            },
            Line {
                label: "p90",
                color: charts::BLUE,
                points: seconds(Measure::EndToEnd, |l| l.p90_us as f64 / 1e6),
            },
            Line {
                label: "p99",
                color: charts::ORANGE,
                points: seconds(Measure::EndToEnd, |l| l.p99_us as f64 / 1e6),
            },
        ],
        Some((3.0, "3 s objective")),
    );
    let hops_svg = charts::lines(
        "Mean time per interval spent in the platform and in the recipient's webhook, in seconds",
        "seconds",
        q.from,
        q.to,
        &[
            Line {
                label: "platform",
                color: charts::BLUE,
                points: seconds(Measure::Platform, |l| l.avg_us / 1e6),
            },
            Line {
                label: "recipient webhook",
                color: charts::ORANGE,
                points: seconds(Measure::Webhook, |l| l.avg_us / 1e6),
            },
        ],
        None,
    );

    let registry = broker.registry();
    let mut channel_options: Vec<String> = registry.catalogue.channels.keys().cloned().collect();
    channel_options.sort();
    let participant_options = named_participants(broker, analytics, actor, q.from, q.to).await?;
    Ok(ReportView {
        group_label: match totals.query.group_by {
            GroupBy::None => String::new(),
            GroupBy::Channel => "Channel".into(),
            GroupBy::Sender => "Sender".into(),
            GroupBy::Recipient => "Recipient".into(),
        },
        params,
        span,
        scope,
        participant_user: actor.dip_id.is_some(),
        volume_svg,
        latency_svg,
        hops_svg,
        totals: rows,
        series: buckets,
        channel_options,
        participant_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000_000;

    #[test]
    fn relative_ranges_end_with_the_current_interval() {
        let mut p = params_from_query("range=1h");
        let (q, market) = query_of(&mut p, NOW).unwrap();
        assert_eq!((q.interval_secs, p.interval.as_str(), market), (60, "1m", false));
        assert!(q.to > NOW && q.to - NOW <= 60_000_000);
        assert_eq!(q.to - q.from, 3_600_000_000);
    }

    #[test]
    fn custom_ranges_and_filters_are_read_from_the_url() {
        let mut p = params_from_query(
            "range=custom&from=2026-11-01T00:00&to=2026-11-02T00:00&channel=IF-031&channel=IF-032&sender=1000000001&group=recipient&scope=market",
        );
        let (q, market) = query_of(&mut p, NOW).unwrap();
        assert_eq!(q.channels, ["IF-031", "IF-032"]);
        assert_eq!(q.senders, ["1000000001"]);
        assert_eq!(q.group_by, GroupBy::Recipient);
        assert_eq!(q.interval_secs, 300, "a day at most 500 points: 5 minutes");
        assert!(market);
        assert_eq!(params_from_query(&p.to_query()), p, "the URL round-trips");
        let mut bad = params_from_query("range=custom&from=yesterday&to=2026-11-02T00:00");
        assert!(query_of(&mut bad, NOW).unwrap_err().field_error("from").is_some());
    }
}
