//! What the alarms page shows and sends, shared by the page and the alarm service.

use serde::{Deserialize, Serialize};

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What it watches, in words.
    pub watches: String,
    /// `platform` or the participant it watches for.
    pub scope: String,
    /// Since when raised (UTC); `None` when clear.
    pub raised_since: Option<String>,
    /// What the last evaluation saw.
    pub observed: String,
    /// When last evaluated (UTC).
    pub evaluated: Option<String>,
    /// Evaluated at all.
    pub enabled: bool,
    /// The viewer receives its notices.
    pub subscribed: bool,
    /// The viewer may delete it.
    pub can_delete: bool,
}

/// One raise or clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmHistoryRow {
    /// When (UTC).
    pub at: String,
    /// Rule name.
    pub rule: String,
    /// `raised` or `cleared`.
    pub state: String,
    /// What was seen.
    pub detail: String,
}

/// The page's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmsView {
    /// Rules the viewer sees.
    pub rows: Vec<AlarmRow>,
    /// Recent raises and clears of those rules, newest first.
    pub history: Vec<AlarmHistoryRow>,
    /// The viewer may create rules.
    pub can_create: bool,
    /// The viewer's email address.
    pub email: String,
    /// Channels to choose from.
    pub channels: Vec<String>,
    /// Participants to choose from.
    pub participants: Vec<(String, String)>,
}

/// The create form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmForm {
    /// Name.
    pub name: String,
    /// Kind code.
    pub kind: String,
    /// Channel or empty.
    pub channel: String,
    /// Recipient or empty.
    pub recipient: String,
    /// Threshold in the kind's unit.
    pub threshold: String,
    /// Window, minutes.
    pub window_minutes: String,
}
