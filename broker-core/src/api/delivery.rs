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
use crate::delivery::operations::{self, DeadLetterQuery, DeadLetterRow, QueueStatus, RedriveError, RedriveRequest};
use crate::delivery::pull::{self, PullError};
use crate::delivery::report::{ErrorItem, Reason};
use crate::error::ErrorCode;
use crate::model::{Endpoint, Principal};
use crate::obfuscate;
use crate::replay::{self, ReplayError, ReplayRequest};
use crate::store::{CommitOutcome, DeadLetterFilter, Origin, Outbound, StoreError};

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

/// The caller's queues (every endpoint and the implicit default queue) with health.
async fn list_queues(State(broker): State<Broker>, Caller(caller): Caller) -> Result<Json<Value>, Failure> {
    let Some(owners) = visible_recipients(&broker, &caller) else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "participant credentials required; the operator uses /api/v1/admin/queues",
        ));
    };
    let queues = operations::queues(&broker, Some(&owners)).await?;
    Ok(Json(json!({ "queues": queues })))
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
    let queues: Vec<QueueStatus> = operations::queues(&broker, None)
        .await?
        .into_iter()
        .filter(|q| filter.state.as_deref().is_none_or(|s| q.state == s))
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

/// Dead letters the caller may see (its own queues; all for the operator), filtered.
async fn list_dead_letters(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<Value>, Failure> {
    let visible = visible_recipients(&broker, &caller);
    let rows = operations::dead_letters(&broker, visible.as_deref(), &q, 1000).await?;
    Ok(Json(
        json!({ "deadLetters": rows.iter().map(DeadLetterRow::from).collect::<Vec<_>>() }),
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
    let mut out = json!(DeadLetterRow::from(&dead));
    out["body"] = json!([{ "payload": obfuscate::redact(&payload, &dead.entry.hidden) }]);
    Ok(Json(out))
}

/// Queues dead letters again, listed or by filter, at the tail of their queues; with
/// `dryRun`, counts them.
async fn redrive(State(broker): State<Broker>, Caller(caller): Caller, body: Body) -> Result<Json<Value>, Failure> {
    let request: RedriveRequest = json_body(&broker, body).await?;
    let visible = visible_recipients(&broker, &caller);
    let actor = super::audit_actor(&caller);
    match operations::redrive(&broker, visible.as_deref(), &request, &actor, caller.dip_id()).await {
        Ok(outcome) => Ok(Json(json!(outcome))),
        Err(RedriveError::Empty) => Err(bad_request("give entries or a filter")),
        Err(RedriveError::NotFound) => Err(Failure::not_found()),
        Err(RedriveError::Store(e)) => Err(e.into()),
    }
}

/// Starts (or, with `dryRun`, counts) a replay.
async fn start_replay(State(broker): State<Broker>, Caller(caller): Caller, body: Body) -> Response {
    let request: ReplayRequest = match json_body(&broker, body).await {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    match replay::replay(&broker, &caller, &replay::requested_by(&caller), &request).await {
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

/// Recorded replays: the caller's (those for recipients it acts for), or all for the
/// operator, newest first, each with where its copies are.
async fn list_replays(State(broker): State<Broker>, Caller(caller): Caller) -> Result<Json<Value>, Failure> {
    let mine = visible_recipients(&broker, &caller);
    let (rows, _) = replay::history(&broker, mine.as_deref(), 0, usize::MAX).await?;
    Ok(Json(json!({ "replays": rows })))
}
