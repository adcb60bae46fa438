//! What the home page's health summary shows ("is everything all right?"), shared by the
//! portal's home page, the `GET /api/v1/home` route and the service that computes it
//! ([`crate::home`]). Every figure comes computed from the server; these types only carry it.

use serde::{Deserialize, Serialize};

/// How a figure stands. Shown as a word as well as a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    /// Information only: nothing to judge.
    Info,
    /// All right.
    Ok,
    /// Worth a look.
    Warn,
    /// Needs action.
    Bad,
}

impl Tone {
    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Bad => "bad",
        }
    }

    /// The word for it (colour is never the only sign).
    pub fn word(self) -> &'static str {
        match self {
            Self::Info => "",
            Self::Ok => "all right",
            Self::Warn => "worth a look",
            Self::Bad => "needs action",
        }
    }
}

/// One figure of the summary, linking to where it is handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    /// Stable name (`sent_today`, `queues_failing`, …): the element's id is `tile-<key>`.
    pub key: String,
    /// What it counts.
    pub label: String,
    /// The figure as shown (`1234`, `10000+`, `97.5 %`, `none yet`).
    pub value: String,
    /// The number behind it, where it is a count.
    pub count: Option<i64>,
    /// How it stands.
    pub tone: Tone,
    /// A line of explanation.
    pub note: String,
    /// Where it is handled; empty when the viewer has no page for it.
    pub href: String,
}

/// A queue as the summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLine {
    /// Queue id (`<DIP ID>/<name>`).
    pub queue_id: String,
    /// Its participant.
    pub dip_id: String,
    /// `webhook` or `pull`.
    pub mode: String,
    /// `healthy`, `retrying` or `failing`.
    pub state: String,
    /// Its oldest waiting message has waited longer than the objective's 30 s.
    pub backed_up: bool,
    /// Messages waiting.
    pub pending: i64,
    /// How long the oldest has waited (`42 s`, `3 h 5 min`).
    pub oldest_wait: Option<String>,
    /// Dead letters not yet redriven.
    pub dead: i64,
    /// Outcome of the last attempt.
    pub last_outcome: Option<String>,
    /// Since when the head has been failing (UTC).
    pub failing_since: Option<String>,
    /// How it stands.
    pub tone: Tone,
    /// The queue on the operations page.
    pub href: String,
    /// Its dead letters on the operations page.
    pub dead_href: String,
}

/// A certificate as the summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLine {
    /// Fingerprint (hex SHA-256).
    pub fingerprint: String,
    /// Holder.
    pub dip_id: String,
    /// Subject.
    pub subject: String,
    /// Expiry (UTC day and time).
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// `active`, `expiring`, `expired` or `not yet valid`.
    pub status: String,
    /// How it stands.
    pub tone: Tone,
}

/// A raised alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmLine {
    /// Rule name.
    pub name: String,
    /// What it watches, in words.
    pub watches: String,
    /// `platform` or the participant it watches for.
    pub scope: String,
    /// Raised since (UTC).
    pub raised_since: String,
    /// What the last evaluation saw.
    pub observed: String,
}

/// One participant's day, for a viewer who acts for several (a DCP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantDay {
    /// DIP ID.
    pub dip_id: String,
    /// Name.
    pub name: String,
    /// Messages it sent today.
    pub sent: i64,
    /// Messages addressed to it today.
    pub received: i64,
    /// Messages it sent in the recent days that a recipient returned.
    pub returned: i64,
    /// Messages it sent in the recent days that were dead-lettered.
    pub dead_lettered: i64,
    /// Messages waiting in its queues.
    pub pending: i64,
    /// Dead letters in its queues.
    pub dead_letters: i64,
    /// Its queues failing or retrying.
    pub queues_failing: i64,
    /// The message search for what it sent today.
    pub sent_href: String,
    /// … received today.
    pub received_href: String,
    /// … had returned.
    pub returned_href: String,
    /// … had dead-lettered.
    pub dead_lettered_href: String,
    /// Its queues on the operations page.
    pub queues_href: String,
    /// Its dead letters on the operations page.
    pub dead_letters_href: String,
}

/// Today's delivery objective: 90 % of deliveries within 3 s of receipt, all within 30 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Deliveries measured today.
    pub measured: i64,
    /// Share within 3 s, percent.
    pub within_3s_pct: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
    /// Whether the objective holds.
    pub met: bool,
}

/// The health summary of a home page: what the viewer may see of the platform (operator
/// staff) or of its own participant (and those it acts for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomeSummary {
    /// For operator staff: the whole platform.
    pub operator: bool,
    /// The participants it covers (a participant's viewer), by DIP ID; empty for staff.
    pub participants_covered: Vec<String>,
    /// Today, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// When computed, `HH:MM:SS UTC`.
    pub as_of: String,
    /// The worst tone of any figure.
    pub verdict: Tone,
    /// The answer in words.
    pub headline: String,
    /// The figures.
    pub tiles: Vec<Tile>,
    /// Today's messages by hour (incoming, outgoing, errors), SVG; empty without reports.
    pub volume_svg: String,
    /// Why today's volumes are missing, when they are.
    pub reports_note: Option<String>,
    /// Today's report on the reports page.
    pub reports_href: String,
    /// Today's delivery objective, once something was delivered.
    pub objective: Option<Objective>,
    /// Queues: for staff those that need a look (worst first); for a participant all of
    /// its queues.
    pub queues: Vec<QueueLine>,
    /// Further queues needing a look that are not listed.
    pub queues_more: usize,
    /// The queues on the operations page.
    pub queues_href: String,
    /// Each participant covered, for a viewer who acts for several.
    pub participants: Vec<ParticipantDay>,
    /// Certificates: for staff those expiring within the warning period or expired within
    /// it; for a participant all of its own that are not revoked or long expired.
    pub certificates: Vec<CertificateLine>,
    /// Where certificates are handled; empty when the viewer has no page for them.
    pub certificates_href: String,
    /// Days before expiry from which a certificate is `expiring`.
    pub certificate_warn_days: i64,
    /// Raised alarms the viewer sees.
    pub alarms: Vec<AlarmLine>,
    /// How many days "recent" returned and dead-lettered messages go back (today included).
    pub recent_days: i64,
}

impl HomeSummary {
    /// A figure by key.
    pub fn tile(&self, key: &str) -> Option<&Tile> {
        self.tiles.iter().find(|t| t.key == key)
    }
}
