//! Return to sender (spec 5.5.8, 5.5.9, 5.5.13 D and E): what went wrong with a message
//! after it was accepted reaches its sender as a message on the platform channel
//! `IF-990`, queued and delivered like any other.

use serde_json::{Value, json};

use crate::envelope;
use crate::envelope::transaction_wrapper;
use crate::registry::Registry;
use crate::routing::{Decision, Recipient, RuleMatch};
use crate::store::{Delivery, NewMessage, Origin};

/// The platform channel that carries reports.
pub const REPORT_CHANNEL: &str = "IF-990";

/// One error in a report: the recipient's own codes are relayed as they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorItem {
    /// Code.
    pub code: String,
    /// JSON pointer into the original item (may be empty).
    #[serde(default)]
    pub path: String,
    /// Explanation.
    pub message: String,
}

/// Why a message is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The recipient's webhook refused the data (4xx).
    RecipientRejected,
    /// The recipient reported an error after taking the message.
    RecipientReported,
    /// The message went stale undelivered.
    DeadLetter,
}

impl Reason {
    /// Wire form (the report's event code and `reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecipientRejected => "RECIPIENT_REJECTED",
            Self::RecipientReported => "RECIPIENT_REPORTED",
            Self::DeadLetter => "DEAD_LETTER",
        }
    }
}

/// A return to sender: what went wrong delivering one message to one recipient, to be
/// sent to the message's sender on [`REPORT_CHANNEL`].
#[derive(Debug, Clone)]
pub struct ReturnToSender<'a> {
    /// Why.
    pub reason: Reason,
    /// The original message.
    pub origin: &'a Origin,
    /// Its transaction id.
    pub transaction_id: &'a str,
    /// Its channel.
    pub interface_id: &'a str,
    /// The recipient concerned.
    pub recipient_dip_id: &'a str,
    /// Its role.
    pub recipient_role: &'a str,
    /// HTTP status of the recipient's answer, when there was one.
    pub http_status: Option<u16>,
    /// Delivery attempts made.
    pub attempts: i64,
    /// Outcome of the last attempt.
    pub last_outcome: Option<&'a str>,
    /// The errors.
    pub errors: Vec<ErrorItem>,
    /// Distinguishes several reports of one reason about the same delivery (the
    /// recipient's report hash); empty otherwise. With the rest it forms the report's
    /// unique reference, so a report is committed once however often it is produced.
    pub discriminator: &'a str,
}

impl ReturnToSender<'_> {
    /// The report as a message for the original sender; `None` for a report about a
    /// report (never returned, so that errors cannot loop) or when the catalogue lacks
    /// the report channel.
    pub fn into_message(self, registry: &Registry, environment: &str, platform_dip_id: &str) -> Option<NewMessage> {
        if self.interface_id == REPORT_CHANNEL {
            return None;
        }
        let Some(channel) = registry.channel(REPORT_CHANNEL) else {
            tracing::warn!("the catalogue has no {REPORT_CHANNEL}; a return to sender was not sent");
            return None;
        };
        let def = &channel.channel;
        let now = chrono::Utc::now();
        let transaction_id = uuid::Uuid::now_v7().to_string();
        let reference = format!(
            "RTS-{}-{}-{}{}{}",
            self.reason.as_str(),
            self.transaction_id,
            self.recipient_dip_id,
            if self.discriminator.is_empty() { "" } else { "-" },
            self.discriminator
        );
        let sender = &self.origin.sender_dip_id;
        let custom = json!({
            "reason": self.reason.as_str(),
            "originalTransactionID": self.transaction_id,
            "originalSenderUniqueReference": self.origin.sender_unique_reference,
            "originalInterfaceID": self.interface_id,
            "originalTransactionTimestamp": chrono::DateTime::from_timestamp_micros(self.origin.received_at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            "recipientDIPID": self.recipient_dip_id,
            "recipientRoleID": self.recipient_role,
            "httpStatus": self.http_status,
            "attempts": self.attempts,
            "lastOutcome": self.last_outcome,
            "errors": self.errors,
        });
        let correlation = self.origin.correlation_id.as_deref();
        let payload = json!({
            "CommonBlock": {
                "S0": { "interfaceID": REPORT_CHANNEL, "schemaVersion": "001", "eventCode": self.reason.as_str() },
                "S1": {
                    "environmentTag": environment,
                    "senderUniqueReference": reference,
                    "senderTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "senderDIPID": platform_dip_id,
                    "senderRoleID": "DIP",
                    "senderCorrelationID": correlation,
                    "DIPConnectionProviderID": Value::Null,
                },
                "M0": { "MPANCore": self.origin.mpan },
                "A0": { "primaryRecipients": [sender], "secondaryRecipients": [], "always": [] },
                "D0": transaction_wrapper(&transaction_id, now, def, correlation, false, environment),
            },
            "CustomBlock": custom,
        });
        let queue = registry.queue_for(sender, REPORT_CHANNEL);
        let decision = Decision {
            interface_id: REPORT_CHANNEL.into(),
            modes: def.routing.clone(),
            applicable_date: now.format("%Y-%m-%d").to_string(),
            date_source: "receipt".into(),
            recipients: vec![Recipient {
                dip_id: sender.clone(),
                role: self.origin.sender_role.clone(),
                queue: queue.clone(),
                matched_by: vec![RuleMatch {
                    rule: "targeted",
                    role: self.origin.sender_role.clone(),
                    appointment: None,
                }],
                hidden: vec![],
            }],
            unresolved: vec![],
        };
        let received_at = now.timestamp_micros();
        Some(NewMessage {
            transaction_id,
            sender_dip_id: platform_dip_id.to_owned(),
            sender_unique_reference: reference,
            content_hash: envelope::content_hash(&payload),
            interface_id: REPORT_CHANNEL.into(),
            schema_version: "001".into(),
            event_code: self.reason.as_str().into(),
            sender_role: "DIP".into(),
            dcp_dip_id: None,
            mpan: self.origin.mpan.clone(),
            correlation_id: self.origin.correlation_id.clone(),
            received_at,
            retain_until: received_at.saturating_add(i64::from(def.retention_days) * 86_400_000_000),
            routing: serde_json::to_string(&decision).unwrap_or_default(),
            envelope: serde_json::to_string(&payload).unwrap_or_default(),
            deliveries: vec![Delivery {
                queue_id: queue,
                recipient_dip_id: sender.clone(),
                recipient_role: self.origin.sender_role.clone(),
                hidden: vec![],
            }],
            appointments: vec![],
            receipt_signature: None,
        })
    }
}
