//! Delivery endpoints of the participant API: queues and their health, pull and
//! acknowledge, asynchronous error reports, dead letters and replay.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Failure, bad_request, error_response, json_body, require_operator, rfc3339};
use crate::broker::Broker;
use crate::delivery::pull::{self, PullError};
use crate::delivery::report::{ErrorItem, Reason};
use crate::error::ErrorCode;
use crate::model::{Endpoint, Principal};
use crate::obfuscate;
use crate::replay::{self, ReplayError, ReplayRequest};
use crate::store::{CommitOutcome, DeadLetter, DeadLetterFilter, Origin, Outbound, QueueHealth, StoreError};

/// A queue failing longer than this is reported `failing` rather than `retrying`.
const FAILING_AFTER_MICROS: i64 = 5 * 60 * 1_000_000;

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/api/v1/queues", get(list_queues))
        .route("/api/v1/admin/queues", get(all_queues))
        .route("/api/v1/participants/{dip_id}/queues/{name}/messages", get(peek_queue))
        .route("/api/v1/participants/{dip_id}/queues/{name}/pull", post(pull_queue))
        .route("/api/v1/participants/{dip_id}/queues/{name}/ack", post(ack_queue))
        .route("/api/v1/messages/{transaction_id}/errors", post(report_error))
        .route("/api/v1/dead-letters", get(list_dead_letters))
        .route("/api/v1/dead-letters/{dip_id}/{name}/{position}", get(get_dead_letter))
        .route("/api/v1/dead-letters/redrive", post(redrive))
        .route("/api/v1/replays", post(start_replay).get(list_replays))
}

/// The DIP IDs whose queues and deliveries a caller may see: everyone for the operator.
fn visible_recipients(broker: &Broker, caller: &Principal) -> Option<Vec<String>> {
    caller.dip_id().map(|me| broker.registry().acts_for(me))
}

/// The queue `dip_id/name` if it exists and the caller may use it (a participant its own,
/// a DCP those of participants that nominated it); the same 404 otherwise, so that
/// queues do not leak and names that are no queue are never read or leased.
fn own_queue(
    broker: &Broker,
    caller: &Principal,
    dip_id: &str,
    name: &str,
    operator_too: bool,
) -> Result<String, Failure> {
    let allowed = match visible_recipients(broker, caller) {
        None => operator_too,
        Some(mine) => mine.iter().any(|d| d == dip_id),
    };
    let queue = Endpoint::make_id(dip_id, name);
    if allowed && broker.registry().has_queue(&queue) {
        Ok(queue)
    } else {
        Err(Failure::not_found())
    }
}

/// A queue's health as the API shows it.
fn health_json(broker: &Broker, h: &QueueHealth) -> Value {
    let now = crate::clock::now_micros();
    let endpoint = broker.registry().endpoint(&h.queue_id).cloned();
    let mode = if endpoint.as_ref().is_some_and(|e| e.url.is_some()) {
        "webhook"
    } else {
        "pull"
    };
    let state = match h.failing_since {
        None => "healthy",
        Some(since) if now - since < FAILING_AFTER_MICROS => "retrying",
        Some(_) => "failing",
    };
    let (dip_id, name) = h.queue_id.split_once('/').unwrap_or((&h.queue_id, ""));
    json!({
        "queue": h.queue_id, "dipID": dip_id, "name": name, "mode": mode,
        "channels": endpoint.map(|e| e.channels).unwrap_or_default(),
        "state": state, "pending": h.pending, "deadLetters": h.dead,
        "oldestEnqueuedAt": h.oldest_enqueued_at.map(rfc3339),
        "oldestAgeSeconds": h.oldest_enqueued_at.map(|t| (now - t).max(0) as f64 / 1e6),
        "lastAttemptAt": h.last_attempt_at.map(rfc3339), "lastOutcome": h.last_outcome,
        "lastSuccessAt": h.last_success_at.map(rfc3339), "failingSince": h.failing_since.map(rfc3339),
        "nextAttemptAt": h.retry_at.map(rfc3339),
        "leasedBy": if h.lease_until > now { h.owner.as_deref().map(|o| if o.starts_with("pull:") { "pull consumer" } else { "delivery node" }) } else { None },
    })
}

/// The caller's queues (every endpoint and the implicit default queue) with health.
async fn list_queues(State(broker): State<Broker>, Caller(caller): Caller) -> Result<Json<Value>, Failure> {
    let Some(owners) = visible_recipients(&broker, &caller) else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "participant credentials required; the operator uses /api/v1/admin/queues",
        ));
    };
    let registry = broker.registry();
    let mut ids = Vec::new();
    for owner in &owners {
        let endpoints = registry.endpoints_of(owner);
        ids.extend(endpoints.iter().map(|e| e.id.clone()));
        if !endpoints.iter().any(|e| e.channels.is_empty()) {
            ids.push(Endpoint::make_id(owner, "default"));
        }
    }
    let health = broker.queues().queue_health(&ids).await?;
    Ok(Json(
        json!({ "queues": health.iter().map(|h| health_json(&broker, h)).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
struct QueueFilter {
    state: Option<String>,
}

/// Every queue of the platform with health (operator).
async fn all_queues(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Query(filter): Query<QueueFilter>,
) -> Result<Json<Value>, Failure> {
    require_operator(&caller)?;
    let ids = broker.queues().queue_ids().await?;
    let health = broker.queues().queue_health(&ids).await?;
    let queues: Vec<Value> = health
        .iter()
        .map(|h| health_json(&broker, h))
        .filter(|q| filter.state.as_deref().is_none_or(|s| q["state"] == s))
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

/// An archived envelope, opened and parsed.
fn payload_of(broker: &Broker, transaction_id: &str, stored: &str) -> Result<Value, Failure> {
    let plain = broker
        .open_envelope(transaction_id, stored)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(serde_json::from_str(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?)
}

/// One queue item as the recipient receives it.
fn item_json(broker: &Broker, out: &Outbound) -> Result<Value, Failure> {
    let payload = crate::delivery::recipient_payload(broker, out).map_err(StoreError::Corrupt)?;
    Ok(json!({
        "position": out.entry.seq, "transactionID": out.entry.transaction_id, "interfaceID": out.interface_id,
        "role": out.entry.recipient_role, "enqueuedAt": rfc3339(out.entry.enqueued_at),
        "attempts": out.entry.attempts, "replayID": out.entry.replay_id,
        "body": [{ "payload": payload }],
    }))
}

#[derive(Deserialize)]
struct PeekParams {
    after: Option<i64>,
    limit: Option<i64>,
}

/// The pending messages of a queue as the recipient will receive them (obfuscated), in
/// FIFO order, without consuming them.
async fn peek_queue(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path((dip_id, name)): Path<(String, String)>,
    Query(params): Query<PeekParams>,
) -> Result<Json<Value>, Failure> {
    let queue = own_queue(&broker, &caller, &dip_id, &name, true)?;
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    let entries = broker
        .queues()
        .next_outbound(&queue, params.after.unwrap_or(0), limit)
        .await?;
    let items = entries
        .iter()
        .map(|o| item_json(&broker, o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({ "queue": queue, "items": items, "next": entries.last().map(|e| e.entry.seq) }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullParams {
    max: Option<i64>,
    lease_seconds: Option<u64>,
    #[serde(rename = "leaseID")]
    lease_id: Option<String>,
}

fn pull_failure(e: PullError) -> Failure {
    match e {
        PullError::UnknownQueue => Failure::not_found(),
        PullError::NotPull => Failure::new(
            StatusCode::CONFLICT,
            ErrorCode::NotPullQueue,
            "this queue is delivered by webhook",
        ),
        PullError::Leased(until) => Failure::new(
            StatusCode::CONFLICT,
            ErrorCode::QueueLeased,
            format!("another consumer holds this queue until {}", rfc3339(until)),
        ),
        PullError::LeaseLost => Failure::new(
            StatusCode::CONFLICT,
            ErrorCode::LeaseLost,
            "the lease has expired or was taken over; pull again (unacknowledged messages are offered again)",
        ),
        PullError::Store(e) => e.into(),
    }
}

/// Reads the head of a pull queue under a lease.
async fn pull_queue(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path((dip_id, name)): Path<(String, String)>,
    Query(params): Query<PullParams>,
) -> Result<Json<Value>, Failure> {
    let queue = own_queue(&broker, &caller, &dip_id, &name, false)?;
    let max = params.max.unwrap_or(10).clamp(1, 500);
    let lease = Duration::from_secs(params.lease_seconds.unwrap_or(60).clamp(1, 3600));
    let pulled = pull::pull(&broker, &queue, params.lease_id.as_deref(), max, lease)
        .await
        .map_err(pull_failure)?;
    let items = pulled
        .items
        .iter()
        .map(|o| item_json(&broker, o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "queue": queue, "leaseID": pulled.lease_id, "leaseExpiresAt": rfc3339(pulled.lease_until), "items": items,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AckBody {
    #[serde(rename = "leaseID")]
    lease_id: String,
    #[serde(rename = "transactionIDs")]
    transaction_ids: Vec<String>,
    #[serde(default)]
    release: bool,
}

/// Acknowledges pulled messages by transaction id.
async fn ack_queue(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path((dip_id, name)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, Failure> {
    let queue = own_queue(&broker, &caller, &dip_id, &name, false)?;
    let ack: AckBody = json_body(&broker, body).await?;
    if ack.transaction_ids.len() > 1000 {
        return Err(bad_request("at most 1000 transaction ids per acknowledgement"));
    }
    let acked = pull::ack(&broker, &queue, &ack.lease_id, &ack.transaction_ids, ack.release)
        .await
        .map_err(pull_failure)?;
    Ok(Json(json!({ "queue": queue, "acknowledged": acked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorReport {
    errors: Vec<ErrorItem>,
}

/// A recipient reports an error in a message it took (spec 5.5.13 E); the report goes
/// back to the message's sender on the return-to-sender channel.
async fn report_error(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path(transaction_id): Path<String>,
    body: Body,
) -> Response {
    match report_error_inner(&broker, &caller, &transaction_id, body).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn report_error_inner(
    broker: &Broker,
    caller: &Principal,
    transaction_id: &str,
    body: Body,
) -> Result<Response, Failure> {
    let Some(mine) = visible_recipients(broker, caller) else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "participant credentials required",
        ));
    };
    let report: ErrorReport = json_body(broker, body).await?;
    if report.errors.is_empty() || report.errors.len() > 100 {
        return Err(bad_request("give 1 to 100 errors"));
    }
    if report
        .errors
        .iter()
        .any(|e| e.code.is_empty() || e.code.len() > 100 || e.message.len() > 2000 || e.path.len() > 500)
    {
        return Err(bad_request(
            "each error needs a code (up to 100 characters) and a message (up to 2000)",
        ));
    }
    // The reporter must be a recipient of the message.
    let entry = broker
        .queues()
        .message_deliveries(transaction_id)
        .await?
        .into_iter()
        .find(|e| e.replay_id.is_none() && mine.contains(&e.recipient_dip_id))
        .ok_or_else(Failure::not_found)?;
    let message = broker
        .messages()
        .message(transaction_id)
        .await?
        .ok_or_else(Failure::not_found)?;
    let origin = Origin {
        sender_dip_id: message.sender_dip_id,
        sender_unique_reference: message.sender_unique_reference,
        sender_role: message.sender_role,
        correlation_id: message.correlation_id,
        mpan: message.mpan,
        received_at: message.received_at,
    };
    let digest = crate::envelope::content_hash(&serde_json::to_value(&report.errors).unwrap_or(Value::Null));
    let Some(returned) = crate::delivery::returned(
        broker,
        Some(&origin),
        &entry,
        &message.interface_id,
        Reason::RecipientReported,
        None,
        report.errors,
        &digest[..16],
    ) else {
        return Err(bad_request("errors about a return-to-sender report are not returned"));
    };
    let report_id = returned.transaction_id.clone();
    let outcome = broker
        .messages()
        .commit_messages(std::slice::from_ref(&returned))
        .await?;
    let report_id = match outcome.into_iter().next() {
        Some(CommitOutcome::Duplicate { transaction_id, .. }) => transaction_id,
        _ => report_id,
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "transactionID": transaction_id, "reportTransactionID": report_id })),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeadLetterQuery {
    #[serde(rename = "recipientDIPID")]
    recipient_dip_id: Option<String>,
    queue: Option<String>,
    #[serde(rename = "interfaceID")]
    interface_id: Option<String>,
    #[serde(rename = "senderDIPID")]
    sender_dip_id: Option<String>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

/// The store filter for a query, limited to what the caller may see.
fn dead_letter_filter(broker: &Broker, caller: &Principal, q: &DeadLetterQuery, max: i64) -> DeadLetterFilter {
    let mut recipients = visible_recipients(broker, caller);
    if let Some(r) = &q.recipient_dip_id {
        recipients = Some(match recipients {
            None => vec![r.clone()],
            Some(mine) => mine.into_iter().filter(|m| m == r).collect(),
        });
    }
    DeadLetterFilter {
        recipients,
        queue_id: q.queue.clone(),
        seq: None,
        interface_id: q.interface_id.clone(),
        sender_dip_id: q.sender_dip_id.clone(),
        from: q.from.map(|t| t.timestamp_micros()),
        to: q.to.map(|t| t.timestamp_micros()),
        limit: q.limit.unwrap_or(100).clamp(1, max),
    }
}

fn dead_letter_json(d: &DeadLetter) -> Value {
    let (dip_id, name) = d.entry.queue_id.split_once('/').unwrap_or((&d.entry.queue_id, ""));
    json!({
        "queue": d.entry.queue_id, "position": d.entry.seq,
        "href": format!("/api/v1/dead-letters/{dip_id}/{name}/{}", d.entry.seq),
        "transactionID": d.entry.transaction_id, "interfaceID": d.interface_id,
        "senderDIPID": d.sender_dip_id, "senderUniqueReference": d.sender_unique_reference,
        "recipientDIPID": d.entry.recipient_dip_id, "role": d.entry.recipient_role,
        "enqueuedAt": rfc3339(d.entry.enqueued_at), "deadLetteredAt": d.entry.settled_at.map(rfc3339),
        "attempts": d.entry.attempts, "lastAttemptAt": d.entry.last_attempt_at.map(rfc3339),
        "lastOutcome": d.entry.last_outcome, "replayID": d.entry.replay_id,
    })
}

/// Dead letters the caller may see (its own queues; all for the operator), filtered.
async fn list_dead_letters(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<Value>, Failure> {
    let filter = dead_letter_filter(&broker, &caller, &q, 1000);
    let rows = broker.queues().dead_letters(&filter).await?;
    Ok(Json(
        json!({ "deadLetters": rows.iter().map(dead_letter_json).collect::<Vec<_>>() }),
    ))
}

/// One dead letter with the message as its recipient would receive it.
async fn get_dead_letter(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path((dip_id, name, position)): Path<(String, String, i64)>,
) -> Result<Json<Value>, Failure> {
    let queue = own_queue(&broker, &caller, &dip_id, &name, true)?;
    let filter = DeadLetterFilter {
        queue_id: Some(queue),
        seq: Some(position),
        limit: 1,
        ..DeadLetterFilter::default()
    };
    let dead = broker
        .queues()
        .dead_letters(&filter)
        .await?
        .into_iter()
        .next()
        .ok_or_else(Failure::not_found)?;
    let envelope = broker
        .messages()
        .archived_envelope(&dead.entry.transaction_id)
        .await?
        .unwrap_or_default();
    let payload = payload_of(&broker, &dead.entry.transaction_id, &envelope)?;
    let mut out = dead_letter_json(&dead);
    out["body"] = json!([{ "payload": obfuscate::redact(&payload, &dead.entry.hidden) }]);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRef {
    queue: String,
    position: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    #[serde(default)]
    entries: Vec<EntryRef>,
    #[serde(default)]
    filter: Option<DeadLetterQuery>,
}

/// Queues dead letters again, listed or by filter, at the tail of their queues.
async fn redrive(State(broker): State<Broker>, Caller(caller): Caller, body: Body) -> Result<Json<Value>, Failure> {
    let request: RedriveBody = json_body(&broker, body).await?;
    let mut targets: Vec<(String, i64)> = Vec::new();
    let mine = visible_recipients(&broker, &caller);
    for e in &request.entries {
        let owner = e.queue.split_once('/').map_or("", |(d, _)| d);
        if mine.as_ref().is_some_and(|m| !m.iter().any(|d| d == owner)) {
            return Err(Failure::not_found());
        }
        targets.push((e.queue.clone(), e.position));
    }
    if let Some(q) = &request.filter {
        let filter = dead_letter_filter(&broker, &caller, q, 10_000);
        let filter = DeadLetterFilter {
            limit: q.limit.unwrap_or(10_000).clamp(1, 10_000),
            ..filter
        };
        targets.extend(
            broker
                .queues()
                .dead_letters(&filter)
                .await?
                .into_iter()
                .map(|d| (d.entry.queue_id, d.entry.seq)),
        );
    }
    if request.entries.is_empty() && request.filter.is_none() {
        return Err(bad_request("give entries or a filter"));
    }
    let done = broker.queues().redrive(&targets, crate::clock::now_micros()).await?;
    let redriven: Vec<Value> = done
        .iter()
        .map(|(queue, old, new)| json!({ "queue": queue, "position": old, "newPosition": new }))
        .collect();
    if !redriven.is_empty() {
        let target = format!("{} dead letters", redriven.len());
        super::audit(
            &broker,
            &caller,
            "dead_letter.redrive",
            &target,
            json!({ "redriven": redriven }),
        )
        .await?;
    }
    Ok(Json(json!({ "redriven": redriven })))
}

/// Starts (or, with `dryRun`, counts) a replay.
async fn start_replay(State(broker): State<Broker>, Caller(caller): Caller, body: Body) -> Response {
    let request: ReplayRequest = match json_body(&broker, body).await {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    match replay::replay(&broker, &caller, &request).await {
        Ok(outcome) => {
            let status = if outcome.dry_run {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            (status, Json(json!(outcome))).into_response()
        }
        Err(ReplayError::Invalid(e)) => error_response(StatusCode::BAD_REQUEST, vec![e]),
        Err(ReplayError::Forbidden(e)) => error_response(StatusCode::FORBIDDEN, vec![e]),
        Err(ReplayError::QuotaExceeded {
            error,
            quota,
            retry_after,
        }) => {
            // Not `error_response`: its one-second Retry-After would invite a retry that
            // cannot succeed before the quota frees.
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "errors": [error], "quota": quota })),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Err(ReplayError::Store(e)) => Failure::from(e).into_response(),
    }
}

/// Recorded replays: the caller's (those for recipients it acts for), or all for the operator.
async fn list_replays(State(broker): State<Broker>, Caller(caller): Caller) -> Result<Json<Value>, Failure> {
    let mine = visible_recipients(&broker, &caller);
    let rows = broker.replays().replays(1000).await?;
    let replays: Vec<Value> = rows
        .into_iter()
        .filter(|r| mine.as_ref().is_none_or(|m| m.contains(&r.recipient)))
        .map(|r| {
            json!({
                "replayID": r.id, "requestedBy": r.requested_by, "recipientDIPID": r.recipient,
                "interfaceID": r.interface_id, "dryRun": r.dry_run, "messages": r.messages,
                "requestedAt": rfc3339(r.created_at),
                "request": serde_json::from_str::<Value>(&r.request).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "replays": replays })))
}
