//! Reading certificates: what the registry records of one, and its fingerprint.

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::store::CertificateRecord;

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Not PEM or not X.509.
    #[error("not a readable X.509 certificate: {0}")]
    Unreadable(String),
    /// A CA certificate cannot identify a participant.
    #[error("a CA certificate cannot identify a participant")]
    IsCa,
    /// Expired before it was registered.
    #[error("the certificate has expired")]
    Expired,
}

/// Hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Every certificate in a PEM text, in order.
pub fn parse_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.map_err(|e| CertError::Unreadable(e.to_string()))?;
        if p.label == "CERTIFICATE" {
            out.push(CertificateDer::from(p.contents));
        }
    }
    if out.is_empty() {
        return Err(CertError::Unreadable("no CERTIFICATE block".into()));
    }
    Ok(out)
}

/// The record of a participant's certificate (the first of `pem`), checked: readable, not
/// a CA, not expired.
pub fn record(
    pem: &str,
    dip_id: &str,
    environment: &str,
    source: &str,
    now: i64,
) -> Result<CertificateRecord, CertError> {
    let der = parse_pem(pem)?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| CertError::Unreadable(e.to_string()))?;
    if cert.is_ca() {
        return Err(CertError::IsCa);
    }
    let validity = cert.validity();
    let not_after = validity.not_after.timestamp().saturating_mul(1_000_000);
    if not_after <= now {
        return Err(CertError::Expired);
    }
    Ok(CertificateRecord {
        fingerprint: fingerprint(&der),
        dip_id: dip_id.to_owned(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: validity.not_before.timestamp().saturating_mul(1_000_000),
        not_after,
        environment: environment.to_owned(),
        source: source.to_owned(),
        pem: pem_of(&der),
        created_at: now,
        revoked_at: None,
    })
}

/// PEM text of one DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A certificate's standing at `now`: `revoked`, `expired`, `not yet valid`, `expiring`
/// (within `warn_days`) or `active`.
pub fn status(c: &CertificateRecord, now: i64, warn_days: i64) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.not_after <= now {
        "expired"
    } else if c.not_before > now {
        "not yet valid"
    } else if c.not_after - now < warn_days.saturating_mul(86_400_000_000) {
        "expiring"
    } else {
        "active"
    }
}
