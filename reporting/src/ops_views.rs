//! View types of the operations pages (queue health, dead letters, replays), shared by
//! the server and the browser bundle. The server fills them in `ops`, within what the
//! viewer may see.

use serde::{Deserialize, Serialize};

/// Filters of the queue table (`/ops/queues`).
pub const QUEUE_FILTERS: [&str; 2] = ["participant", "state"];

/// Queue states a filter may ask for, with their labels.
pub const QUEUE_STATES: [(&str, &str); 4] = [
    ("healthy", "Healthy"),
    ("retrying", "Retrying"),
    ("failing", "Failing"),
    ("backlog", "Backed up"),
];

/// Filters of the dead-letter table (`/ops/dead-letters`), and the confirmation step of
/// a redrive (`redrive`: `all` or `queue:position`) and its result (`done`).
pub const DEAD_LETTER_FILTERS: [&str; 8] = [
    "recipient",
    "queue",
    "channel",
    "sender",
    "from",
    "to",
    "redrive",
    "done",
];

/// The fields of the replay form (`/replays/new`), all in its URL.
pub const REPLAY_FIELDS: [&str; 7] = ["channel", "recipient", "start", "end", "from", "to", "preview"];

/// A queue older than this (seconds) at its head counts as backed up.
pub const BACKLOG_AGE_SECS: f64 = 300.0;

/// One queue's health, as the table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    /// Queue id.
    pub queue: String,
    /// Its participant's DIP ID.
    pub dip_id: String,
    /// Its participant, named.
    pub participant: String,
    /// `webhook` or `pull`.
    pub mode: String,
    /// Channels it takes, or "all others".
    pub channels: String,
    /// `healthy`, `retrying` or `failing`.
    pub state: String,
    /// Entries waiting.
    pub pending: i64,
    /// Replay copies waiting to join it.
    pub replay_held: i64,
    /// Dead letters.
    pub dead_letters: i64,
    /// Age of the oldest waiting entry, seconds.
    pub oldest_age_seconds: Option<f64>,
    /// Last attempt (RFC 3339) and its outcome.
    pub last_attempt: Option<(String, String)>,
    /// Next attempt due (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// Who holds it now.
    pub leased_by: Option<String>,
}

impl QueueRow {
    /// Whether its head has waited longer than [`BACKLOG_AGE_SECS`].
    pub fn backed_up(&self) -> bool {
        self.oldest_age_seconds.is_some_and(|a| a > BACKLOG_AGE_SECS)
    }
}

/// One dead letter, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterLine {
    /// Queue id.
    pub queue: String,
    /// Position.
    pub position: i64,
    /// Transaction id (the copy's, for a replay copy).
    pub transaction_id: String,
    /// Channel.
    pub interface_id: String,
    /// Sender's DIP ID (none for a replay copy).
    pub sender_dip_id: Option<String>,
    /// Sender's reference.
    pub sender_reference: Option<String>,
    /// Recipient's DIP ID.
    pub recipient_dip_id: String,
    /// When it was dead-lettered (RFC 3339).
    pub dead_lettered_at: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// The last attempt's outcome.
    pub last_outcome: Option<String>,
    /// Whether it is a replay copy.
    pub replay_copy: bool,
}

/// The dead letters page: a page of rows, and when asked, the confirmation of a redrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// The page.
    pub page: dip_admin::types::Page<DeadLetterLine>,
    /// Whether the viewer may redrive.
    pub may_redrive: bool,
    /// The redrive asked for, counted (dry run) but not done.
    pub confirm: Option<RedrivePreview>,
}

/// What a redrive would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedrivePreview {
    /// `all` (every dead letter the filters match) or `queue:position`.
    pub target: String,
    /// How many dead letters it would queue again.
    pub count: usize,
    /// What it covers, in words.
    pub description: String,
}

/// Where a replay's copies are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Waiting to join the queue.
    pub held: i64,
    /// In the queue.
    pub queued: i64,
    /// Delivered.
    pub delivered: i64,
    /// Returned to the platform by the recipient.
    pub returned: i64,
    /// Dead-lettered.
    pub dead_lettered: i64,
}

impl Progress {
    /// Copies in all.
    pub fn total(&self) -> i64 {
        self.held + self.queued + self.delivered + self.returned + self.dead_lettered
    }

    /// Copies settled.
    pub fn settled(&self) -> i64 {
        self.delivered + self.returned + self.dead_lettered
    }

    /// Whether every copy is settled.
    pub fn done(&self) -> bool {
        self.held == 0 && self.queued == 0
    }
}

/// One replay of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayLine {
    /// Replay id.
    pub id: String,
    /// Who asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// Recipient, named.
    pub recipient: String,
    /// The queue its copies go to.
    pub queue: String,
    /// Channel.
    pub interface_id: String,
    /// Messages selected.
    pub messages: i64,
    /// Whether it only counted (an API dry run).
    pub dry_run: bool,
    /// The range asked for, in words.
    pub range: String,
    /// Where its copies are (none for a dry run).
    pub progress: Option<Progress>,
}

/// The replay form's choices for the viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayChoices {
    /// Whether the viewer may replay at all.
    pub may_replay: bool,
    /// Participants it may replay for: (DIP ID, label); the operator types one in.
    pub recipients: Vec<(String, String)>,
    /// Channels: (interface id, label).
    pub channels: Vec<(String, String)>,
}

/// A replay's dry-run preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPreview {
    /// Messages selected.
    pub messages: i64,
    /// Recipient, named.
    pub recipient: String,
    /// The queue the copies would go to.
    pub queue: String,
    /// The effective range (RFC 3339).
    pub from: String,
    /// Its end.
    pub to: String,
    /// The first message: (transaction id, received at).
    pub first: Option<(String, String)>,
    /// The last message.
    pub last: Option<(String, String)>,
    /// Replay quota left for the recipient, and its limit.
    pub quota: (i64, i64),
}
