//! The participant HTTP API as an axum [`Router`] that any host application can mount.
//! Shapes are documented in `docs/api.md`.

mod certificates;
mod delivery;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::appointments;
use crate::broker::Broker;
use crate::error::{ApiError, ErrorCode};
use crate::ingest::IngestReply;
use crate::model::Principal;
use crate::security::tls::ClientCertificate;
use crate::store::{MessageRecord, StoreError};

/// The participant API routes, under `/api/v1`.
pub fn router(broker: Broker) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/messages", post(post_messages))
        .route("/api/v1/messages/{transaction_id}", get(get_message))
        .route("/api/v1/messages/{transaction_id}/routing", get(get_routing))
        .route("/api/v1/channels", get(list_channels))
        .route("/api/v1/channels/{interface_id}/schemas/{version}", get(get_schema))
        .route("/api/v1/admin/appointments", post(load_appointments))
        .route("/api/v1/admin/appointments/{mpan}", get(appointment_history))
        .merge(delivery::routes())
        .merge(certificates::routes())
        .with_state(broker)
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
}

/// An error answer: `{"errors": [...]}` with a status.
#[derive(Debug)]
pub struct Failure(StatusCode, ApiError);

impl Failure {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self(status, ApiError::new(code, "", message))
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource visible to you",
        )
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the platform cannot answer now; retry",
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(self.0, vec![self.1])
    }
}

/// Refuses a request whose URL carries a NUL character (`%00`) with `400 NUL_CHARACTER`
/// before any handler: no identifier holds one, and PostgreSQL text cannot store one
/// (a lookup would fail as a store error). For the host application's router.
pub async fn refuse_nul_in_url(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let nul = request
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().as_bytes().windows(3).any(|w| w == b"%00"));
    if nul {
        return error_response(
            StatusCode::BAD_REQUEST,
            vec![ApiError::new(
                ErrorCode::NulCharacter,
                "",
                "the URL carries a NUL character (%00)",
            )],
        );
    }
    next.run(request).await
}

/// The answer to a path under `/api/` that names no route: the API's coded 404, for a
/// host application's fallback.
pub async fn unknown_route() -> Response {
    Failure::not_found().into_response()
}

pub(crate) fn error_response(status: StatusCode, errors: Vec<ApiError>) -> Response {
    let mut response = (status, Json(json!({ "errors": errors }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<Broker> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, broker: &Broker) -> Result<Self, Failure> {
        let status_of = |e: &ApiError| match e.code {
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        // A client certificate identifies the caller; it takes precedence over any key.
        if let Some(ClientCertificate(Some(fingerprint))) = parts.extensions.get::<ClientCertificate>() {
            return broker
                .authenticate_certificate(fingerprint)
                .map(Self)
                .map_err(|e| Failure(status_of(&e), e));
        }
        if !broker.config().api_keys {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "present a client certificate registered to you",
            ));
        }
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    "send Authorization: Bearer <API key>, or a client certificate",
                )
            })?;
        broker
            .authenticate(token.trim())
            .await
            .map(Self)
            .map_err(|e| Failure(status_of(&e), e))
    }
}

/// Appends an administrative action made through this API to the admin audit log
/// (the portal's actions are recorded the same way): the actor is `api:<key name>` for
/// the operator, `api:<DIP ID>` for a participant or DCP.
/// How an API credential is named in the audit log.
pub(crate) fn audit_actor(caller: &Principal) -> String {
    match caller {
        Principal::Operator { name } => format!("api:{name}"),
        Principal::Participant { dip_id } | Principal::Dcp { dip_id } => format!("api:{dip_id}"),
    }
}

pub(crate) async fn audit(
    broker: &Broker,
    caller: &Principal,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), Failure> {
    let (actor, actor_dip_id) = (audit_actor(caller), caller.dip_id().map(str::to_owned));
    broker
        .accounts()
        .append_audit(&crate::store::AuditEntry::now(
            actor,
            actor_dip_id,
            action,
            target,
            &detail,
        ))
        .await?;
    Ok(())
}

pub(crate) fn require_operator(caller: &Principal) -> Result<(), Failure> {
    match caller {
        Principal::Operator { .. } => Ok(()),
        _ => Err(Failure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "operator credentials required",
        )),
    }
}

async fn health(State(broker): State<Broker>) -> Result<Json<Value>, Failure> {
    broker.directory().api_key("health").await?;
    Ok(Json(
        json!({ "status": "ok", "store": broker.store().backend(), "environment": broker.config().environment }),
    ))
}

/// Reads a request body up to the platform's limit (`BrokerConfig::max_body_bytes`).
pub(crate) async fn read_body(broker: &Broker, body: Body) -> Result<Bytes, Failure> {
    let limit = broker.config().max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds {limit} bytes"),
        )
    })
}

pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
}

/// Reads a JSON body into `T` (`input::parse_body`: NUL refused), answering 400 with the
/// reason.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(broker: &Broker, body: Body) -> Result<T, Failure> {
    let bytes = read_body(broker, body).await?;
    crate::input::parse_body(&bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            e.to_api_error(ErrorCode::InvalidRequest, "the body does not parse"),
        )
    })
}

async fn post_messages(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    tls: Option<axum::Extension<ClientCertificate>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(&broker, body).await {
        Ok(b) => b,
        Err(f) => return f.into_response(),
    };
    let signed = match verify_signature(&broker, &caller, tls.is_some(), &uri, &headers, &bytes) {
        Ok(signed) => signed,
        Err(f) => return f.into_response(),
    };
    match broker.ingest_request(&caller, &bytes, signed).await {
        IngestReply::Items { status, results } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({ "results": results })),
        )
            .into_response(),
        IngestReply::Failed { status, error } => error_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            vec![error],
        ),
    }
}

/// Verifies the request's X-DIP signature, if it carries one, against the caller's
/// registered certificates; the signature when verified, `None` when unsigned.
fn verify_signature(
    broker: &Broker,
    caller: &Principal,
    over_tls: bool,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<crate::security::signature::SignatureRecord>, Failure> {
    use crate::security::signature;
    let names = [
        signature::CONTENT_HASH,
        signature::SIGNATURE_DATE,
        signature::SIGNATURE,
        signature::SIGNATURE_CERTIFICATE,
    ];
    if !names.iter().any(|n| headers.contains_key(*n)) {
        return Ok(None);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let base = match &broker.config().public_url {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => {
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
            format!("{}://{host}", if over_tls { "https" } else { "http" })
        }
    };
    let url = format!("{base}{path}");
    let now = chrono::Utc::now();
    let signers = caller.dip_id().map_or_else(Vec::new, |me| {
        broker
            .registry()
            .signing_certificates(me, &broker.config().environment, now.timestamp_micros())
    });
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let verified =
        signature::verify("POST", &url, body, header, &signers, now, signature::DEFAULT_WINDOW).map_err(|e| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SignatureInvalid,
                format!("{}: {e}", e.code()),
            )
        })?;
    // The signing certificate must also chain to an authority the platform trusts.
    if let Some(trusted) = &broker.config().trusted {
        let registry = broker.registry();
        let chained = registry
            .certificate(&verified.fingerprint)
            .and_then(|c| crate::security::certs::parse_pem(&c.pem).ok())
            .is_some_and(|chain| {
                trusted
                    .verify_client_cert(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
                    .is_ok()
            });
        if !chained {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SignatureInvalid,
                "UNTRUSTED_CERTIFICATE: the signing certificate does not chain to a trusted authority",
            ));
        }
    }
    Ok(Some(verified.record))
}

/// A message, if the caller sent it (itself or through a DCP it acts for) or is the operator.
async fn visible_message(broker: &Broker, caller: &Principal, transaction_id: &str) -> Result<MessageRecord, Failure> {
    let message = broker
        .messages()
        .message(transaction_id)
        .await?
        .ok_or_else(Failure::not_found)?;
    let allowed = match caller {
        Principal::Operator { .. } => true,
        other => {
            let me = other.dip_id().unwrap_or_default();
            message.sender_dip_id == me || message.dcp_dip_id.as_deref() == Some(me)
        }
    };
    if allowed {
        Ok(message)
    } else {
        Err(Failure::not_found())
    }
}

pub(crate) use crate::clock::rfc3339;

async fn get_message(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let m = visible_message(&broker, &caller, &id).await?;
    let deliveries: Vec<Value> = broker
        .queues()
        .message_deliveries(&id)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "recipientDIPID": d.recipient_dip_id, "role": d.recipient_role, "queue": d.queue_id,
                "position": d.seq, "state": d.state, "attempts": d.attempts, "lastOutcome": d.last_outcome,
                "lastAttemptAt": d.last_attempt_at.map(rfc3339), "settledAt": d.settled_at.map(rfc3339),
                "replayID": d.replay_id,
            })
        })
        .collect();
    Ok(Json(json!({
        "transactionID": m.transaction_id,
        "interfaceID": m.interface_id,
        "schemaVersion": m.schema_version,
        "eventCode": m.event_code,
        "senderDIPID": m.sender_dip_id,
        "senderRoleID": m.sender_role,
        "senderUniqueReference": m.sender_unique_reference,
        "DIPConnectionProviderID": m.dcp_dip_id,
        "MPANCore": m.mpan,
        "initialCorrelationID": m.correlation_id,
        "transactionTimestamp": rfc3339(m.received_at),
        "deliveries": deliveries,
    })))
}

async fn get_routing(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let m = visible_message(&broker, &caller, &id).await?;
    let decision: Value = serde_json::from_str(&m.routing).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Json(json!({ "transactionID": m.transaction_id, "decision": decision })))
}

async fn list_channels(State(broker): State<Broker>, Caller(_): Caller) -> Json<Value> {
    let registry = broker.registry();
    let mut channels: Vec<Value> = registry
        .catalogue
        .channels
        .values()
        .map(|c| {
            let d = &c.channel;
            json!({
                "interfaceID": d.id, "publicationID": d.publication_id(), "name": d.name,
                "businessProcess": d.business_process, "pattern": d.pattern, "eventCodes": d.event_codes,
                "senderRoles": d.sender_roles, "recipientRoles": d.recipient_roles, "routing": d.routing,
                "mpanRequired": d.mpan_required, "workflowStart": d.workflow_start,
                "securityCategory": d.security_category, "schemaVersions": c.versions().collect::<Vec<_>>(),
            })
        })
        .collect();
    channels.sort_by(|a, b| a["interfaceID"].as_str().cmp(&b["interfaceID"].as_str()));
    Json(json!({ "channels": channels }))
}

async fn get_schema(
    State(broker): State<Broker>,
    Caller(_): Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, Failure> {
    let registry = broker.registry();
    let channel = registry.channel(&id).ok_or_else(Failure::not_found)?;
    let schema = channel
        .channel
        .schema
        .iter()
        .find(|s| s.version == version)
        .ok_or_else(Failure::not_found)?;
    Ok(Json(schema.schema.clone()))
}

/// Bulk load of the MPAN appointment table: a JSON array of rows, or CSV with the header
/// `mpan,role,dip_id,effective_from` (empty `dip_id` = de-appointment). All or nothing.
async fn load_appointments(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(f) = require_operator(&caller) {
        return f.into_response();
    }
    // An initial load is large: the platform's body limit applies rather than the
    // framework's 2 MiB default, and an oversized body gets the API's error shape.
    let body = match read_body(&broker, body).await {
        Ok(b) => b,
        Err(f) => return f.into_response(),
    };
    let is_csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let rows = if is_csv {
        std::str::from_utf8(&body)
            .map_err(|_| vec![ApiError::new(ErrorCode::InvalidRequest, "", "CSV must be UTF-8")])
            .and_then(appointments::parse_csv)
    } else {
        appointments::parse_json(&body)
    };
    match rows.and_then(|rows| appointments::validate(rows, &broker.registry())) {
        Err(errors) => error_response(StatusCode::BAD_REQUEST, errors),
        Ok(rows) => match broker.directory().put_appointments(&rows).await {
            Ok(n) => match audit(
                &broker,
                &caller,
                "appointments.load",
                "appointments",
                json!({ "rows": rows.len(), "loaded": n }),
            )
            .await
            {
                Ok(()) => (StatusCode::OK, Json(json!({ "loaded": n }))).into_response(),
                Err(f) => f.into_response(),
            },
            Err(e) => Failure::from(e).into_response(),
        },
    }
}

async fn appointment_history(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path(mpan): Path<String>,
) -> Result<Json<Value>, Failure> {
    require_operator(&caller)?;
    let rows = broker.directory().appointments(std::slice::from_ref(&mpan)).await?;
    let rows: Vec<Value> = crate::routing::appointment_periods(&rows)
        .map(|(a, to)| {
            json!({ "role": a.role, "dipID": a.dip_id, "effectiveFrom": a.effective_from, "effectiveTo": to, "sourceTransactionID": a.source_transaction_id })
        })
        .collect();
    Ok(Json(json!({ "mpan": mpan, "appointments": rows })))
}
