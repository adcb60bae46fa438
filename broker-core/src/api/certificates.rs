//! Certificate endpoints (spec 8.4): holders see their certificates with expiry warnings;
//! the operator registers externally issued certificates and revokes.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Failure, audit, json_body, require_operator, rfc3339};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::security::certs;
use crate::store::CertificateRecord;

/// Days before expiry from which a certificate is reported `expiring`, by default.
const WARN_DAYS: i64 = 30;

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/api/v1/certificates", get(list))
        .route("/api/v1/admin/certificates", post(register))
        .route("/api/v1/admin/certificates/issue", post(issue))
        .route("/api/v1/admin/certificates/{fingerprint}/revoke", post(revoke))
}

fn certificate_json(c: &CertificateRecord, now: i64, warn_days: i64) -> Value {
    json!({
        "fingerprint": c.fingerprint, "dipID": c.dip_id, "subject": c.subject, "issuer": c.issuer,
        "serial": c.serial, "notBefore": rfc3339(c.not_before), "notAfter": rfc3339(c.not_after),
        "daysLeft": (c.not_after - now).div_euclid(86_400_000_000), "environment": c.environment,
        "source": c.source, "revokedAt": c.revoked_at.map(rfc3339),
        "status": certs::status(c, now, warn_days),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    #[serde(rename = "dipID")]
    dip_id: Option<String>,
    status: Option<String>,
    warn_days: Option<i64>,
}

/// The caller's certificates (those of every participant it acts for), or all for the
/// operator, each with its status; `?status=expiring` gives the warnings.
async fn list(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, Failure> {
    let mine = caller.dip_id().map(|me| broker.registry().acts_for(me));
    let now = crate::clock::now_micros();
    let warn_days = q.warn_days.unwrap_or(WARN_DAYS).clamp(0, 3650);
    let rows: Vec<Value> = broker
        .directory()
        .certificates()
        .await?
        .iter()
        .filter(|c| mine.as_ref().is_none_or(|m| m.contains(&c.dip_id)))
        .filter(|c| q.dip_id.as_ref().is_none_or(|d| d == &c.dip_id))
        .filter(|c| {
            q.status
                .as_deref()
                .is_none_or(|s| s == certs::status(c, now, warn_days))
        })
        .map(|c| certificate_json(c, now, warn_days))
        .collect();
    Ok(Json(json!({ "certificates": rows })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    #[serde(rename = "dipID")]
    dip_id: String,
    pem: String,
    environment: Option<String>,
}

/// Registers an externally issued certificate to a participant or DCP (operator).
async fn register(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Failure> {
    require_operator(&caller)?;
    let r: Registration = json_body(&broker, body).await?;
    if broker.registry().participant(&r.dip_id).is_none() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidField,
            format!("no participant or DCP {}", crate::input::echo(&r.dip_id)),
        ));
    }
    let environment = r.environment.unwrap_or_else(|| broker.config().environment.clone());
    let now = crate::clock::now_micros();
    let record = certs::record(&r.pem, &r.dip_id, &environment, "registered", now)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, e.to_string()))?;
    broker.directory().put_certificate(&record).await?;
    tracing::info!(dip_id = %record.dip_id, fingerprint = %record.fingerprint, "certificate registered");
    let detail = json!({ "dipID": record.dip_id, "subject": record.subject, "notAfter": rfc3339(record.not_after) });
    audit(&broker, &caller, "certificate.register", &record.fingerprint, detail).await?;
    Ok((StatusCode::CREATED, Json(certificate_json(&record, now, WARN_DAYS))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Issue {
    #[serde(rename = "dipID")]
    dip_id: String,
    csr: Option<String>,
    days: Option<i64>,
}

/// Issues a client certificate from the platform's test authority and registers it
/// (operator, non-production): for a CSR's key, or with a new key pair returned once.
async fn issue(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Failure> {
    require_operator(&caller)?;
    let Some(authority) = broker.config().authority.clone() else {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            ErrorCode::Forbidden,
            "this platform has no test authority (production certificates are issued outside and registered)",
        ));
    };
    let r: Issue = json_body(&broker, body).await?;
    let bad = |m: String| Failure::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, m);
    if broker.registry().participant(&r.dip_id).is_none() {
        return Err(bad(format!("no participant or DCP {}", crate::input::echo(&r.dip_id))));
    }
    let days = r.days.unwrap_or(365).clamp(1, 825);
    let issued = match &r.csr {
        Some(csr) => authority.issue_from_csr(csr, &r.dip_id, days),
        None => authority.issue_client(&r.dip_id, days, None),
    }
    .map_err(|e| bad(e.to_string()))?;
    let now = crate::clock::now_micros();
    let record = certs::record(&issued.cert_pem, &r.dip_id, authority.environment(), "issued", now)
        .map_err(|e| bad(e.to_string()))?;
    broker.directory().put_certificate(&record).await?;
    tracing::info!(dip_id = %record.dip_id, fingerprint = %record.fingerprint, "certificate issued");
    let detail = json!({ "dipID": record.dip_id, "subject": record.subject, "notAfter": rfc3339(record.not_after) });
    audit(&broker, &caller, "certificate.issue", &record.fingerprint, detail).await?;
    let mut out = certificate_json(&record, now, WARN_DAYS);
    out["certificatePem"] = json!(issued.cert_pem);
    out["privateKeyPem"] = json!(issued.key_pem);
    Ok((StatusCode::CREATED, Json(out)))
}

/// Revokes a certificate (operator); it stops identifying its holder at once.
async fn revoke(
    State(broker): State<Broker>,
    Caller(caller): Caller,
    Path(fingerprint): Path<String>,
) -> Result<Json<Value>, Failure> {
    require_operator(&caller)?;
    let now = crate::clock::now_micros();
    if !broker.directory().revoke_certificate(&fingerprint, now).await? {
        return Err(Failure::not_found());
    }
    tracing::info!(%fingerprint, "certificate revoked");
    audit(&broker, &caller, "certificate.revoke", &fingerprint, json!({})).await?;
    Ok(Json(json!({ "fingerprint": fingerprint, "revokedAt": rfc3339(now) })))
}
