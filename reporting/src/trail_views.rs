//! What the message audit trail shows (search results and a transaction's trace), shared
//! by the portal's pages, the audit REST API and the trail service.

use serde::{Deserialize, Serialize};

/// The filters of a message search, as URL query names.
pub const SEARCH_FILTERS: [&str; 10] = [
    "transaction",
    "reference",
    "correlation",
    "mpan",
    "channel",
    "sender",
    "recipient",
    "state",
    "from",
    "to",
];

/// The states a search may ask for: URL value and label.
pub const STATES: [(&str, &str); 7] = [
    ("accepted", "Accepted"),
    ("queued", "Queued"),
    ("retrying", "Retrying"),
    ("delivered", "Delivered"),
    ("returned", "Returned"),
    ("dead_lettered", "Dead-lettered"),
    ("replayed", "Replayed"),
];

/// The columns a search sorts on: URL value and label (newest first unless `dir` says).
pub const SORTS: [(&str, &str); 3] = [("received", "Received"), ("sender", "Sender"), ("channel", "Channel")];

/// One message of a search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    /// Transaction id.
    pub transaction_id: String,
    /// Receipt, RFC 3339 UTC.
    pub received_at: String,
    /// Sender DIP ID.
    pub sender_dip_id: String,
    /// Sender's unique reference.
    pub sender_reference: String,
    /// Submitting DCP, if any.
    pub dcp_dip_id: Option<String>,
    /// Channel.
    pub interface_id: String,
    /// Event code.
    pub event_code: String,
    /// MPAN core.
    pub mpan: Option<String>,
    /// Workflow correlation id.
    pub correlation_id: Option<String>,
    /// The recipient copies the viewer may see.
    pub copies: Vec<CopyRow>,
}

/// One recipient copy in a search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRow {
    /// Recipient DIP ID.
    pub recipient_dip_id: String,
    /// Recipient queue.
    pub queue_id: String,
    /// `queued`, `retrying`, `delivered`, `returned`, `dead_lettered`, `redriven`.
    pub state: String,
    /// Delivery attempts made.
    pub attempts: i64,
    /// The replay that made this copy, for a replay copy.
    pub replay_id: Option<String>,
}

/// A transaction's whole life, as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The message.
    pub message: MessageRow,
    /// Schema version.
    pub schema_version: String,
    /// Sender role.
    pub sender_role: String,
    /// The routing decision (rules, MPAN appointments and dates), pretty JSON; for a
    /// viewer who only received the message, the recipients other than its own are left
    /// out.
    pub routing: String,
    /// The routing decision line by line, as the viewer may see it.
    pub routed: Vec<RoutingLine>,
    /// Rules that reached nobody, and why (operator staff and the sender only).
    pub unresolved: Vec<String>,
    /// What happened at receipt: accepted, time to queue.
    pub receipt: Vec<Step>,
    /// The X-DIP signature the sender's request carried, as verified at receipt; `None`
    /// when the request was unsigned.
    #[serde(default)]
    pub signed_with: Option<SignedWith>,
    /// Each recipient copy the viewer may see, with its steps.
    pub copies: Vec<CopyTrace>,
    /// Whether the viewer sent the message (or is operator staff): it sees every copy.
    pub whole: bool,
    /// The payload the viewer may see, pretty JSON: as sent for the sender, as delivered
    /// (with masked fields) for a recipient; `None` when it cannot be shown.
    pub payload: Option<String>,
    /// What the payload shown is, or why there is none.
    pub payload_note: String,
}

/// One recipient copy of a transaction, step by step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyTrace {
    /// The copy as listed.
    pub copy: CopyRow,
    /// Its own transaction id (an `R-` id for a replay copy).
    pub transaction_id: String,
    /// Role the recipient receives in.
    pub recipient_role: String,
    /// Position in the queue.
    pub seq: i64,
    /// Fields hidden from this recipient (JSON pointers).
    pub hidden: Vec<String>,
    /// Queued, attempts, delivery, return, dead letter, redrive: in order of time.
    pub steps: Vec<Step>,
    /// The return-to-sender reports the platform sent the sender about this copy (shown
    /// to the sender and operator staff only).
    #[serde(default)]
    pub reports: Vec<ReportLink>,
    /// The earlier messages of its queue it joined behind, if any.
    #[serde(default)]
    pub queued_behind: Option<QueuedBehind>,
}

/// What a copy joined its queue behind. A queue is delivered strictly in order, one
/// message at a time, so a copy waits for the messages ahead of it and for their retries:
/// why a message can arrive seconds late at a recipient that answers in milliseconds.
/// Counts only: the messages ahead may be other senders'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedBehind {
    /// Earlier messages of the queue still unsettled when it joined (`1000+` beyond the
    /// look-back).
    pub messages: String,
    /// How many of them the recipient failed at first, so that they were retried.
    pub retried: i64,
    /// What the recipient first answered the first of those (`HTTP 503`, `timeout`…).
    pub retry_outcome: Option<String>,
    /// From joining until the last of them was settled (`None` while one is unsettled).
    pub waited_ms: Option<f64>,
}

/// A return-to-sender report about a copy: a message on `IF-990` to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLink {
    /// The report's transaction id.
    pub transaction_id: String,
    /// `RECIPIENT_REJECTED`, `RECIPIENT_REPORTED` or `DEAD_LETTER`.
    pub reason: String,
}

/// One step of a message's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `received`, `routed`, `failed_attempt`, `delivered`, `returned`, `dead_lettered`,
    /// `replayed`, `redriven`.
    pub kind: String,
    /// HTTP status, `timeout`, error code…
    pub outcome: String,
    /// The webhook call's own duration, milliseconds (attempts, deliveries, returns).
    pub duration_ms: Option<f64>,
    /// Time since the previous step of this copy (or since receipt), milliseconds.
    pub after_ms: f64,
    /// The start of the recipient's answer when a webhook call did not succeed.
    #[serde(default)]
    pub answer: Option<String>,
}

/// The signature a sender's request carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedWith {
    /// When the sender signed (`X-DIP-Signature-Date`).
    pub signed_at: String,
    /// Hex SHA-256 of the signing certificate.
    pub fingerprint: String,
    /// The certificate's subject, when it is registered.
    pub subject: Option<String>,
}

/// The label of a copy or step state.
pub fn state_label(state: &str) -> &str {
    match state {
        "received" => "Received",
        "routed" | "queued" => "Queued",
        "retrying" => "Retrying",
        "failed_attempt" => "Attempt failed",
        "delivered" => "Delivered",
        "returned" => "Returned to sender",
        "dead_lettered" => "Dead-lettered",
        "redriven" => "Redriven",
        "replayed" => "Replayed",
        other => other,
    }
}

/// One workflow (every message sharing an `initialCorrelationID`) as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The correlation id.
    pub correlation_id: String,
    /// The participants, in order of appearance: "Name (DIP ID)".
    pub lanes: Vec<String>,
    /// The messages, oldest first, with the copies the viewer may see.
    pub messages: Vec<MessageRow>,
    /// Copies still waiting for delivery (queued or retrying).
    pub waiting: usize,
    /// The sequence diagram, SVG drawn on the server.
    pub svg: String,
    /// Whether there were more messages than are shown.
    pub truncated: bool,
}

/// The MPAN report (spec 5.11.3, Figure 18): an MPAN's appointment history beside the
/// messages about it that the viewer may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpanReport {
    /// MPAN core.
    pub mpan: String,
    /// Who was appointed in which role, from when to when, by role then date.
    pub appointments: Vec<AppointmentRow>,
    /// The messages about the MPAN (one page), newest first.
    pub messages: dip_admin::types::Page<MessageRow>,
    /// For a participant's viewer: the periods its messages are shown for.
    pub periods: Option<String>,
}

/// One appointment of an MPAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentRow {
    /// Role code.
    pub role: String,
    /// Appointed DIP ID with its name; `None` for a de-appointment.
    pub participant: Option<String>,
    /// First day it applies, `YYYY-MM-DD`.
    pub effective_from: String,
    /// First day of the next appointment in the role, if any.
    pub effective_to: Option<String>,
    /// The transaction that recorded it (a registration message), if any.
    pub source_transaction_id: Option<String>,
}

/// One recipient of a routing decision: who, in which role and queue, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingLine {
    /// Recipient DIP ID.
    pub recipient: String,
    /// Role it receives in (governs what is hidden from it).
    pub role: String,
    /// Its queue.
    pub queue: String,
    /// Every rule that chose it, in words (an MPAN rule with the appointment's dates).
    pub reasons: Vec<String>,
    /// Fields hidden from it (JSON pointers).
    pub hidden: Vec<String>,
}

/// A time as the tables show it: `YYYY-MM-DD HH:MM:SS.mmm` (UTC), from RFC 3339.
pub fn short_time(rfc3339: &str) -> String {
    let t = rfc3339.replacen('T', " ", 1);
    t.get(..23).map_or(t.trim_end_matches('Z').to_owned(), str::to_owned)
}
