//! The reports REST API, to operator staff, participants' users and API keys, each seeing
//! what the portal would show them for the same URL parameters: the dashboard's report as
//! JSON and as CSV, and the message audit trail (search as JSON and CSV, a transaction's
//! trace and evidence bundle, the sender report as JSON and CSV).

use axum::Router;
use axum::extract::{FromRef, Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use broker_core::Broker;
use dip_admin::accounts::SessionPolicy;
use dip_admin::caller::{ApiFailure, ApiReader};
use dip_admin::rest::ListParams;
use dip_admin::types::{ListQuery, Page};

use crate::analytics::Analytics;
use crate::dashboard::{app_error, params_from_query, query_of, run, viewer};
use crate::report::{Measure, Report};
use crate::sender;
use crate::sender_views::SenderReport;
use crate::trail;
use crate::trail_views::{MessageRow, MpanReport, Trace, Workflow};

/// Routes under `/api/v1/reports/`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Broker: FromRef<S>,
    Analytics: FromRef<S>,
    SessionPolicy: FromRef<S>,
{
    Router::new()
        .route("/api/v1/reports/throughput", get(throughput_json))
        .route("/api/v1/reports/throughput.csv", get(throughput_csv))
        .route("/api/v1/audit/messages", get(search_messages))
        .route("/api/v1/audit/messages.csv", get(export_messages))
        .route("/api/v1/audit/messages/{transaction_id}", get(trace_message))
        .route("/api/v1/audit/messages/{transaction_id}/evidence", get(evidence_bundle))
        .route("/api/v1/audit/workflows/{correlation_id}", get(workflow))
        .route("/api/v1/audit/mpans/{mpan}", get(mpan_report))
        .route("/api/v1/audit/sender-report", get(sender_report))
        .route("/api/v1/audit/sender-report.csv", get(sender_report_csv))
        .route("/api/v1/home", get(home_summary))
}

/// `GET /api/v1/home`: the home page's health summary ("is everything all right?") as
/// the caller may see it: the platform for operator staff, its own participant (and
/// those it acts for) for a participant's caller.
async fn home_summary(
    State(broker): State<Broker>,
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
) -> Result<axum::Json<crate::home_views::HomeSummary>, ApiFailure> {
    Ok(axum::Json(crate::home::summary(&broker, &analytics, &actor).await?))
}

/// `GET /api/v1/audit/sender-report`: a sender's messages of a period per channel and
/// outcome (`sender`, `process`, `channel`, `from`, `to`, `sort`, `dir`); a participant's
/// caller defaults to its own participant and gets 404 for a sender not its to see.
async fn sender_report(
    State(broker): State<Broker>,
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<SenderReport>, ApiFailure> {
    let list: ListQuery = params.into();
    Ok(axum::Json(sender::report(&broker, &analytics, &actor, &list).await?))
}

/// `GET /api/v1/audit/sender-report.csv`: the same report, one line per channel and one
/// for all channels.
async fn sender_report_csv(
    State(broker): State<Broker>,
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiFailure> {
    let list: ListQuery = params.into();
    let report = sender::report(&broker, &analytics, &actor, &list).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dip-sender-report.csv\"",
            ),
        ],
        sender::csv(&report),
    )
        .into_response())
}

/// `GET /api/v1/audit/mpans/{mpan}`: the MPAN's appointment history and a page of the
/// messages about it the caller may see (`from`, `to`, `state`, `sort`, `dir`, `page`).
async fn mpan_report(
    State(broker): State<Broker>,
    ApiReader(actor): ApiReader,
    Path(mpan): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<MpanReport>, ApiFailure> {
    let list: ListQuery = params.into();
    Ok(axum::Json(trail::mpan_report(&broker, &actor, &mpan, &list).await?))
}

/// `GET /api/v1/audit/workflows/{correlation_id}`: every message of the workflow the
/// caller may see, oldest first, with the sequence diagram; 404 when it sees none.
async fn workflow(
    State(broker): State<Broker>,
    ApiReader(actor): ApiReader,
    Path(correlation_id): Path<String>,
) -> Result<axum::Json<Workflow>, ApiFailure> {
    Ok(axum::Json(trail::workflow(&broker, &actor, &correlation_id).await?))
}

/// `GET /api/v1/audit/messages`: a page of the message search, with the portal's
/// filters (`transaction`, `reference`, `correlation`, `mpan`, `channel`, `sender`,
/// `recipient`, `state`, `from`, `to`), `sort`, `dir` and `page`.
async fn search_messages(
    State(broker): State<Broker>,
    ApiReader(actor): ApiReader,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<MessageRow>>, ApiFailure> {
    let list: ListQuery = params.into();
    Ok(axum::Json(trail::search(&broker, &actor, &list).await?))
}

/// `GET /api/v1/audit/messages.csv`: the same search, up to 10,000 messages, one line
/// per visible recipient copy.
async fn export_messages(
    State(broker): State<Broker>,
    ApiReader(actor): ApiReader,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiFailure> {
    let list: ListQuery = params.into();
    let rows = trail::export(&broker, &actor, &list).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"dip-messages.csv\""),
        ],
        trail::csv(&rows),
    )
        .into_response())
}

/// `GET /api/v1/audit/messages/{transaction_id}`: the transaction's trace; 404 when it
/// is not the caller's to see.
async fn trace_message(
    State(broker): State<Broker>,
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
    Path(transaction_id): Path<String>,
) -> Result<axum::Json<Trace>, ApiFailure> {
    Ok(axum::Json(
        trail::trace(&broker, &analytics, &actor, &transaction_id).await?,
    ))
}

/// `GET /api/v1/audit/messages/{transaction_id}/evidence`: the transaction's evidence
/// bundle (a tar file signed by the platform, `docs/evidence.md`) as the caller may see it.
async fn evidence_bundle(
    State(broker): State<Broker>,
    ApiReader(actor): ApiReader,
    Path(transaction_id): Path<String>,
) -> Result<Response, ApiFailure> {
    let bundle = crate::evidence::bundle(&broker, &actor, &transaction_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", bundle.file_name),
            ),
        ],
        bundle.bytes,
    )
        .into_response())
}

/// `GET /api/v1/reports/throughput`: the report as JSON, the same parameters as the page.
async fn throughput_json(
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Report>, ApiFailure> {
    let mut params = params_from_query(query.as_deref().unwrap_or(""));
    let (series, totals) = run(&analytics, &actor, &mut params).await?;
    Ok(axum::Json(if params.group.is_empty() {
        series
    } else {
        merge(series, totals)
    }))
}

/// The series with the grouped totals in place of the ungrouped ones.
fn merge(series: Report, totals: Report) -> Report {
    Report {
        volume_totals: totals.volume_totals,
        latency_totals: totals.latency_totals,
        groups: totals.groups,
        ..series
    }
}

/// `GET /api/v1/reports/throughput.csv`: one row per interval (and group when split),
/// with volumes and every latency figure, in milliseconds.
async fn throughput_csv(
    State(analytics): State<Analytics>,
    ApiReader(actor): ApiReader,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiFailure> {
    let mut params = params_from_query(query.as_deref().unwrap_or(""));
    let (mut query, market) = query_of(&mut params, broker_core::clock::now_micros())?;
    query.authorise(&viewer(&actor), market).map_err(app_error)?;
    let report = analytics.report(&query).await.map_err(app_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dip-throughput.csv\"",
            ),
        ],
        csv(&report),
    )
        .into_response())
}

/// The CSV of a report.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "interval_start,group,received,rejected,routed,failed_attempts,delivered,returned,dead_lettered,replayed,errors",
    );
    for m in Measure::ALL {
        let n = m.as_str();
        out.push_str(&format!(
            ",{n}_count,{n}_min_ms,{n}_avg_ms,{n}_p50_ms,{n}_p90_ms,{n}_p99_ms,{n}_max_ms,{n}_within_3s,{n}_within_30s"
        ));
    }
    out.push('\n');
    let mut keys: Vec<(i64, &str)> = report
        .volumes
        .iter()
        .map(|v| (v.bucket, v.group.as_str()))
        .chain(report.latency.iter().map(|l| (l.bucket, l.group.as_str())))
        .collect();
    keys.sort();
    keys.dedup();
    for (bucket, group) in keys {
        let v = report
            .volumes
            .iter()
            .find(|v| v.bucket == bucket && v.group == group)
            .cloned()
            .unwrap_or_default();
        let start = chrono::DateTime::from_timestamp_micros(bucket)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push_str(&format!(
            "{start},{},{},{},{},{},{},{},{},{},{}",
            crate::csv::field(group),
            v.received,
            v.rejected,
            v.routed,
            v.failed_attempts,
            v.delivered,
            v.returned,
            v.dead_lettered,
            v.replayed,
            v.errors()
        ));
        for m in Measure::ALL {
            match report
                .latency
                .iter()
                .find(|l| l.bucket == bucket && l.group == group && l.measure == m)
            {
                Some(l) => out.push_str(&format!(
                    ",{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{}",
                    l.count,
                    l.min_us as f64 / 1000.0,
                    l.avg_us / 1000.0,
                    l.p50_us as f64 / 1000.0,
                    l.p90_us as f64 / 1000.0,
                    l.p99_us as f64 / 1000.0,
                    l.max_us as f64 / 1000.0,
                    l.within_3s,
                    l.within_30s
                )),
                None => out.push_str(",0,,,,,,,0,0"),
            }
        }
        out.push('\n');
    }
    out
}
