//! Participants' X.509 certificates: registering (validated), listing with their expiry, revoking.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Admin, Result, now, require, rfc3339};
use crate::rows::{CertificateRow, paginate};
use crate::types::{AppError, ListQuery, Page};

fn certificate_row(c: &broker_core::store::CertificateRecord, now: i64) -> CertificateRow {
    CertificateRow {
        fingerprint: c.fingerprint.clone(),
        dip_id: c.dip_id.clone(),
        subject: c.subject.clone(),
        not_after: rfc3339(c.not_after),
        status: broker_core::security::certs::status(c, now, 30).to_owned(),
        environment: c.environment.clone(),
    }
}

impl Admin<'_> {
    /// Certificates the actor may see.
    pub async fn certificates(&self, q: &ListQuery) -> Result<Page<CertificateRow>> {
        let now = now();
        let all = self.broker.directory().certificates().await?;
        let rows = all
            .iter()
            .filter(|c| self.actor.sees_participant(&c.dip_id))
            .map(|c| certificate_row(c, now))
            .filter(|c| q.filters.get("status").is_none_or(|s| s.is_empty() || &c.status == s))
            .collect();
        Ok(paginate(
            rows,
            q,
            |c| format!("{} {} {}", c.fingerprint, c.dip_id, c.subject),
            |c, col| match col {
                "holder" => c.dip_id.clone(),
                "expiry" => c.not_after.clone(),
                "status" => c.status.clone(),
                _ => c.fingerprint.clone(),
            },
        ))
    }

    /// Registers a PEM certificate to a participant.
    pub async fn register_certificate(&self, dip_id: &str, pem: &str) -> Result<CertificateRow> {
        require(self.actor.is_platform_admin())?;
        let values = BTreeMap::from([
            ("dip_id".to_owned(), dip_id.to_owned()),
            ("pem".to_owned(), pem.to_owned()),
        ]);
        if !self.participant_exists(dip_id).await? {
            return Err(AppError::Invalid {
                message: format!("No participant {dip_id}."),
                fields: [("dip_id".to_owned(), format!("No participant {dip_id}."))].into(),
                values,
            });
        }
        let now = now();
        let environment = &self.broker.config().environment;
        let record =
            broker_core::security::certs::record(pem, dip_id, environment, "registered", now).map_err(|e| {
                AppError::Invalid {
                    message: format!("Certificate refused: {e}"),
                    fields: [("pem".to_owned(), e.to_string())].into(),
                    values: values.clone(),
                }
            })?;
        self.broker.directory().put_certificate(&record).await?;
        self.apply().await?;
        self.audit(
            "certificate.register",
            &record.fingerprint,
            json!({"dipID": dip_id, "subject": record.subject, "notAfter": rfc3339(record.not_after)}),
        )
        .await?;
        Ok(certificate_row(&record, now))
    }

    /// Revokes a certificate: refused from the next request on, on open connections too.
    pub async fn revoke_certificate(&self, fingerprint: &str) -> Result<()> {
        require(self.actor.is_platform_admin())?;
        if !self.broker.directory().revoke_certificate(fingerprint, now()).await? {
            return Err(AppError::NotFound(format!("certificate {fingerprint}")));
        }
        self.apply().await?;
        self.audit("certificate.revoke", fingerprint, json!({})).await
    }
}
