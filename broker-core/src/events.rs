//! Lifecycle events: what happened to a message, written to the store's analytics
//! outbox in the same transaction as the change itself (so an event exists exactly when
//! its change does). The message path and the stores write them; analytics reads them.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// Whether this process writes lifecycle events (always, but for `dip bench e2e
/// --analytics off`, which measures what analytics costs the message path).
static RECORDING: AtomicBool = AtomicBool::new(true);

/// Turns the writing of lifecycle events on or off for this whole process. For
/// benchmarks only: with it off, reports, alarms and traces miss what happens meanwhile.
pub fn record_for_benchmark(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// Whether lifecycle events are written (see [`record_for_benchmark`]).
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A message was accepted (incoming volume).
    Received,
    /// An item was refused at the API (error volume).
    Rejected,
    /// A recipient's copy was queued (internal latency: receipt to queued).
    Routed,
    /// A webhook attempt failed and will be retried (status and duration).
    FailedAttempt,
    /// The recipient took it (outgoing volume; end-to-end latency, webhook duration).
    Delivered,
    /// The recipient refused it (4xx) and it went back to the sender.
    Returned,
    /// It went stale and was dead-lettered.
    DeadLettered,
    /// A replay queued a copy.
    Replayed,
    /// A dead letter was queued again.
    Redriven,
}

impl EventKind {
    /// Every kind, in report order.
    pub const ALL: [EventKind; 9] = [
        Self::Received,
        Self::Rejected,
        Self::Routed,
        Self::FailedAttempt,
        Self::Delivered,
        Self::Returned,
        Self::DeadLettered,
        Self::Replayed,
        Self::Redriven,
    ];

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Routed => "routed",
            Self::FailedAttempt => "failed_attempt",
            Self::Delivered => "delivered",
            Self::Returned => "returned",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
            Self::Redriven => "redriven",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One lifecycle event. Empty strings and zeros stand for "not applicable", so that the
/// three stores hold the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Id in the table it is read from: the outbox's is its identity in ClickHouse (0
    /// before it is stored).
    pub id: i64,
    /// What happened.
    pub kind: EventKind,
    /// When, microseconds since the epoch.
    pub at: i64,
    /// Transaction id (a replay copy's own `R-` id).
    pub transaction_id: String,
    /// Channel.
    pub interface_id: String,
    /// Sender DIP ID.
    pub sender_dip_id: String,
    /// Recipient DIP ID.
    pub recipient_dip_id: String,
    /// Recipient queue.
    pub queue_id: String,
    /// `HTTP 503`, `timeout`, an error code…
    pub outcome: String,
    /// Receipt to this event (routed: internal latency; delivered: end to end).
    pub latency_us: i64,
    /// The webhook call's own duration (attempts, deliveries, returns).
    pub duration_us: i64,
    /// Whether replay traffic (kept out of latency figures).
    pub replay: bool,
}

impl Event {
    /// An event of `kind` at `at` with everything else empty.
    pub fn new(kind: EventKind, at: i64) -> Self {
        Self {
            id: 0,
            kind,
            at,
            transaction_id: String::new(),
            interface_id: String::new(),
            sender_dip_id: String::new(),
            recipient_dip_id: String::new(),
            queue_id: String::new(),
            outcome: String::new(),
            latency_us: 0,
            duration_us: 0,
            replay: false,
        }
    }
}
