//! Administrative actions, shared by the portal's pages and the admin REST API: each
//! checks the actor's rights on the server, validates, changes the store (the directory
//! notifies every node, so changes apply without a restart) and appends to the audit log.
//! One file per area; [`Admin`] is the actions of one actor.

mod audit;
mod certificates;
mod channels;
mod endpoints;
mod participants;
mod users;

pub use channels::{obfuscation_text, parse_always, parse_obfuscation, parse_routing};
pub use endpoints::{EndpointForm, Saving};
pub use participants::ParticipantForm;
pub use users::{NewUser, UserChange};

use std::collections::BTreeMap;

use broker_core::Broker;
use broker_core::store::AuditEntry;
use serde_json::Value;

use crate::types::{Actor, AppError};

pub(crate) type Result<T> = std::result::Result<T, AppError>;

pub(crate) fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub(crate) fn now() -> i64 {
    broker_core::clock::now_micros()
}

/// The admin actions of one actor.
pub struct Admin<'a> {
    broker: &'a Broker,
    actor: &'a Actor,
}

pub(crate) fn require(ok: bool) -> Result<()> {
    if ok { Ok(()) } else { Err(AppError::Forbidden) }
}

pub(crate) fn invalid(errors: BTreeMap<String, String>, values: BTreeMap<String, String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(AppError::Invalid {
        message: "Please correct the marked fields.".into(),
        fields: errors,
        values,
    })
}

impl<'a> Admin<'a> {
    /// The actions `actor` may take on `broker`.
    pub fn new(broker: &'a Broker, actor: &'a Actor) -> Self {
        Self { broker, actor }
    }

    /// Whether `dip_id` is a registered participant (as stored now, not as cached).
    pub(crate) async fn participant_exists(&self, dip_id: &str) -> Result<bool> {
        let participants = self.broker.directory().participants().await?;
        Ok(participants.iter().any(|p| p.dip_id == dip_id))
    }

    pub(crate) async fn audit(&self, action: &str, target: &str, detail: Value) -> Result<()> {
        let entry = AuditEntry::now(
            self.actor.name.clone(),
            self.actor.dip_id.clone(),
            action,
            target,
            &detail,
        );
        Ok(self.broker.accounts().append_audit(&entry).await?)
    }

    /// Waits until this node's registry has the latest directory, so that what the admin
    /// changed applies to the next message.
    pub(crate) async fn apply(&self) -> Result<()> {
        self.broker.reload().await.map_err(|e| {
            tracing::error!(error = %e, "registry reload after an admin change");
            AppError::Unavailable
        })
    }
}
