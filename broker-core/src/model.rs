//! The domain model: roles, channels (interfaces), participants, endpoints, appointments.

use serde::{Deserialize, Serialize};

/// A market role such as `SUP` (supplier) or `REGS` (registration service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Role code as used in `senderRoleID`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// What the role does.
    #[serde(default)]
    pub description: String,
}

/// How a channel finds the recipients of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// To the DIP IDs in `A0.primaryRecipients`.
    Targeted,
    /// To the parties appointed to the message's MPAN in the channel's MPAN roles.
    Mpan,
    /// Always to named participants or to every holder of a role.
    Always,
}

/// One "always" routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AlwaysRule {
    /// Every active holder of the role.
    Role {
        /// Role code.
        role: String,
    },
    /// One named participant.
    Participant {
        /// DIP ID.
        participant: String,
    },
}

/// Message pattern of spec 5.4: A (routed messages) or B (large-payload publications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    /// Pattern A.
    A,
    /// Pattern B.
    B,
}

/// One accepted schema version of a channel's CustomBlock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaVersion {
    /// The 3-digit `schemaVersion`.
    pub version: String,
    /// Path of the schema file in the catalogue (seed files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The JSON Schema of the CustomBlock (loaded from `file` when seeding).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub schema: serde_json::Value,
}

/// How a registration channel maintains the MPAN appointment table (spec 5.5.14):
/// JSON pointers into the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentUpdate {
    /// Pointer to the role code being (de-)appointed.
    pub role: String,
    /// Pointer to the appointed DIP ID; absent on de-appointment channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Pointer to the effective-from date (`YYYY-MM-DD` or an RFC 3339 date-time).
    pub effective_from: String,
}

/// A message channel: one interface with its rules (spec 5.1, 5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Interface id, `IF-` and three digits.
    pub id: String,
    /// Interface name.
    pub name: String,
    /// Business process it serves.
    pub business_process: String,
    /// Pattern A or B.
    pub pattern: Pattern,
    /// Free description.
    #[serde(default)]
    pub description: String,
    /// Accepted event codes; empty accepts any.
    #[serde(default)]
    pub event_codes: Vec<String>,
    /// Roles that may send.
    pub sender_roles: Vec<String>,
    /// Roles that may receive.
    pub recipient_roles: Vec<String>,
    /// Routing modes the channel applies.
    pub routing: Vec<RoutingMode>,
    /// Recipient roles resolved by MPAN lookup.
    #[serde(default)]
    pub mpan_roles: Vec<String>,
    /// Always-routing rules.
    #[serde(default)]
    pub always: Vec<AlwaysRule>,
    /// Whether `M0.MPANCore` must be present.
    #[serde(default)]
    pub mpan_required: bool,
    /// Pointer to the date used for MPAN lookup; receipt time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicable_date: Option<String>,
    /// Whether messages on this channel start a workflow (correlation id generated).
    #[serde(default)]
    pub workflow_start: bool,
    /// Security category 1–4 (spec 5.2.2).
    pub security_category: u8,
    /// Archive retention in days.
    pub retention_days: u32,
    /// Recipient role → pointers the role must not see.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub obfuscation: std::collections::BTreeMap<String, Vec<String>>,
    /// Maintenance of the MPAN appointment table from this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_update: Option<AppointmentUpdate>,
    /// Accepted schema versions.
    pub schema: Vec<SchemaVersion>,
    /// Retry schedule and staleness limit of deliveries on this channel.
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    /// Whether messages on this channel must come in X-DIP-signed requests (also implied
    /// by security pattern 1 and above).
    #[serde(default)]
    pub signature_required: bool,
    /// Security pattern (spec 5.2.2): 0 none; 1 signed; 2 the CustomBlock encrypted to the
    /// platform (JWE), decrypted, archived sealed and re-encrypted to each recipient's
    /// certificate; 3 end-to-end, an opaque JWE relayed and archived as received.
    #[serde(default)]
    pub security_pattern: u8,
}

/// How deliveries of a channel are retried (spec 5.5.8, 5.5.13): exponential back-off
/// with jitter from `retry_initial_ms` up to `retry_max_ms`, until the message has waited
/// `stale_after_secs` in the queue; it is then dead-lettered and reported to its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// First retry delay.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Age in the queue after which an undelivered message is stale.
    pub stale_after_secs: u64,
}

impl Default for DeliveryPolicy {
    /// Retries from 1 s up to 5 min; messages are kept for a recipient 14 days (spec 5.4,
    /// durable subscriptions) before they are dead-lettered.
    fn default() -> Self {
        Self {
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
            stale_after_secs: 14 * 86_400,
        }
    }
}

impl Channel {
    /// The publication id of the channel: `IF-033` is published as `PUB-033`.
    pub fn publication_id(&self) -> String {
        match self.id.strip_prefix("IF-") {
            Some(n) => format!("PUB-{n}"),
            None => format!("PUB-{}", self.id),
        }
    }

    /// Whether the channel applies a routing mode.
    pub fn routes_by(&self, mode: RoutingMode) -> bool {
        self.routing.contains(&mode)
    }

    /// Whether requests carrying this channel's messages must be signed.
    pub fn requires_signature(&self) -> bool {
        self.signature_required || self.security_pattern >= 1
    }

    /// Whether the CustomBlock arrives encrypted to the platform and leaves re-encrypted to
    /// each recipient (pattern 2).
    pub fn encrypted_to_platform(&self) -> bool {
        self.security_pattern == 2
    }

    /// Whether the CustomBlock is end-to-end encrypted (pattern 3): opaque to the platform.
    pub fn end_to_end(&self) -> bool {
        self.security_pattern == 3
    }
}

/// Whether a directory entry is a market participant or a DIP Connection Provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantKind {
    /// A market participant.
    Participant,
    /// A DIP Connection Provider acting for participants that nominated it.
    Dcp,
}

impl ParticipantKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Participant => "participant",
            Self::Dcp => "dcp",
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "participant" => Some(Self::Participant),
            "dcp" => Some(Self::Dcp),
            _ => None,
        }
    }
}

/// A participant or DCP of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// 10-digit DIP ID.
    pub dip_id: String,
    /// 4-letter market participant id.
    pub mpid: String,
    /// Organisation name.
    pub name: String,
    /// Participant or DCP.
    pub kind: ParticipantKind,
    /// Role codes held.
    pub roles: Vec<String>,
    /// DCPs this participant nominated to connect on its behalf.
    pub nominated_dcps: Vec<String>,
    /// Inactive participants neither send nor receive.
    pub active: bool,
    /// Whether messages sent as this participant must come in X-DIP-signed requests.
    #[serde(default)]
    pub signatures_required: bool,
}

/// A logical queue of a participant (spec 5.5.10): a webhook URL, or none for pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Unique id of the queue, `<dip_id>/<name>`.
    pub id: String,
    /// Owner.
    pub dip_id: String,
    /// Name unique within the participant.
    pub name: String,
    /// Webhook URL; `None` means the participant pulls.
    pub url: Option<String>,
    /// Channels assigned to this endpoint; empty takes every channel not assigned elsewhere.
    pub channels: Vec<String>,
}

impl Endpoint {
    /// The queue id of endpoint `name` of participant `dip_id`.
    pub fn make_id(dip_id: &str, name: &str) -> String {
        format!("{dip_id}/{name}")
    }
}

/// One row of the MPAN appointment table: from `effective_from` on, `dip_id` holds `role`
/// for `mpan` (or nobody when `None`) until the next row of the same MPAN and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// MPAN core.
    pub mpan: String,
    /// Role code.
    pub role: String,
    /// First day (`YYYY-MM-DD`) the appointment applies.
    pub effective_from: String,
    /// Appointed DIP ID; `None` records a de-appointment.
    pub dip_id: Option<String>,
    /// Transaction that recorded it, when maintained from a registration channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_transaction_id: Option<String>,
}

/// Who is calling the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Principal {
    /// A market participant.
    Participant {
        /// DIP ID.
        dip_id: String,
    },
    /// A DIP Connection Provider.
    Dcp {
        /// DIP ID.
        dip_id: String,
    },
    /// The platform operator (administrative API).
    Operator {
        /// Key name.
        name: String,
    },
}

impl Principal {
    /// The caller's DIP ID, for participants and DCPs.
    pub fn dip_id(&self) -> Option<&str> {
        match self {
            Self::Participant { dip_id } | Self::Dcp { dip_id } => Some(dip_id),
            Self::Operator { .. } => None,
        }
    }
}
