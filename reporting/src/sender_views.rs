//! What the sender report shows (spec 5.11.3, Figure 16) and is asked for, shared by the
//! portal's page, the audit REST API and the report service ([`crate::sender`]).

use serde::{Deserialize, Serialize};

use dip_admin::types::encode;

use crate::report_views::LatencyCells;

/// The parameters of a sender report, as URL query names: the sender (DIP ID; a
/// participant's viewer defaults to its own), a business process or a channel, and the
/// period (`from` inclusive, `to` exclusive, UTC).
pub const SENDER_FILTERS: [&str; 5] = ["sender", "process", "channel", "from", "to"];

/// The columns the table of channels sorts on: URL value and label (channel A to Z unless
/// `sort` says).
pub const SENDER_SORTS: [(&str, &str); 7] = [
    ("channel", "Channel"),
    ("accepted", "Accepted"),
    ("rejected", "Rejected"),
    ("delivered", "Delivered"),
    ("returned", "Returned"),
    ("dead_lettered", "Dead-lettered"),
    ("latency", "Latency p90"),
];

/// Error codes the report lists over all channels; a channel's line names its first
/// [`LINE_ERRORS`] (the CSV has every one).
pub const TOP_ERRORS: usize = 5;

/// Error codes a channel's line names.
pub const LINE_ERRORS: usize = 3;

/// The copies of a sender's messages in one state, and the messages that have one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Recipient copies in the state now.
    pub copies: i64,
    /// Messages with a copy in the state (what the message search for it lists).
    pub messages: i64,
}

/// How often the API refused items for one error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The error code (`SCHEMA_VIOLATION`, `UNKNOWN_EVENT_CODE`…).
    pub code: String,
    /// Items refused with it (the first error of each item).
    pub count: i64,
}

/// One channel's line of the report (or the line of all channels); the default is an
/// empty line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelOutcomes {
    /// Interface id; empty for refusals of items that named no channel of the platform,
    /// and for the line of all channels.
    pub interface_id: String,
    /// The channel's name, or what the line stands for.
    pub name: String,
    /// Messages accepted in the period.
    pub accepted: i64,
    /// Items the API refused in the period.
    pub rejected: i64,
    /// Why, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// Copies waiting for their first attempt.
    pub queued: Outcome,
    /// Copies waiting after failed attempts.
    pub retrying: Outcome,
    /// Copies the recipients took.
    pub delivered: Outcome,
    /// Copies refused by their recipients and returned to the sender.
    pub returned: Outcome,
    /// Copies dead-lettered (and not redriven since).
    pub dead_lettered: Outcome,
    /// End-to-end latency (receipt to the recipient's acknowledgement) of the copies
    /// delivered in the period, replays left out; `None` when none was.
    pub latency: Option<LatencyCells>,
}

/// The sender report: a sender's traffic of a period per channel and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderReport {
    /// Sender DIP ID.
    pub sender: String,
    /// "Name (DIP ID)".
    pub sender_name: String,
    /// Start as the search and the form take it (`YYYY-MM-DDTHH:MM`, or RFC 3339 when not
    /// on a minute), UTC.
    pub from: String,
    /// End (exclusive), the same way.
    pub to: String,
    /// "2026-11-27 09:00 – 2026-11-28 09:00 UTC".
    pub period: String,
    /// The business process asked for.
    pub process: Option<String>,
    /// The channel asked for.
    pub channel: Option<String>,
    /// One line per channel with traffic (refusals naming no channel last), sorted as
    /// asked.
    pub channels: Vec<ChannelOutcomes>,
    /// All of them together.
    pub total: ChannelOutcomes,
}

/// What the report's form offers the viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderChoices {
    /// The senders the viewer may report on: DIP ID and "Name (DIP ID)" (every
    /// participant for operator staff).
    pub senders: Vec<(String, String)>,
    /// The sender shown when none is chosen: a participant's own (none for operator
    /// staff, who choose).
    pub default_sender: Option<String>,
    /// The catalogue's business processes.
    pub processes: Vec<String>,
    /// The channels: interface id and name.
    pub channels: Vec<(String, String)>,
}

impl SenderReport {
    /// The URL query of the report as applied (the period resolved, so that its CSV covers
    /// exactly what the page shows).
    pub fn query(&self) -> String {
        let mut pairs = vec![("sender", self.sender.as_str())];
        pairs.extend(self.process.as_deref().map(|p| ("process", p)));
        pairs.extend(self.channel.as_deref().map(|c| ("channel", c)));
        pairs.extend([("from", self.from.as_str()), ("to", self.to.as_str())]);
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The message search listing the messages behind a figure: the sender's messages of
    /// the period on `channel` (all channels: `None`) with a copy in `state` (`accepted`:
    /// every message). `None` where no search can list them: refusals (never stored), or
    /// all channels of a business process (the search takes one channel).
    pub fn messages_href(&self, channel: Option<&str>, state: &str) -> Option<String> {
        let channel = match channel {
            Some("") => return None,
            Some(c) => Some(c),
            None if self.process.is_some() && self.channel.is_none() => return None,
            None => self.channel.as_deref(),
        };
        let mut query = vec![("sender", self.sender.as_str())];
        if let Some(c) = channel {
            query.push(("channel", c));
        }
        query.extend([("state", state), ("from", &self.from), ("to", &self.to)]);
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        Some(format!("/messages?{}", query.join("&")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> ChannelOutcomes {
        ChannelOutcomes {
            interface_id: id.into(),
            ..ChannelOutcomes::default()
        }
    }

    #[test]
    fn drill_downs_are_message_searches_of_the_period() {
        let mut r = SenderReport {
            sender: "1000000001".into(),
            sender_name: String::new(),
            from: "2026-01-01T00:00".into(),
            to: "2026-01-02T00:00".into(),
            period: String::new(),
            process: None,
            channel: None,
            channels: vec![line("IF-031")],
            total: line(""),
        };
        assert_eq!(
            r.messages_href(Some("IF-031"), "delivered").as_deref(),
            Some(
                "/messages?sender=1000000001&channel=IF-031&state=delivered&from=2026-01-01T00%3A00&to=2026-01-02T00%3A00"
            )
        );
        assert_eq!(
            r.messages_href(None, "accepted").as_deref(),
            Some("/messages?sender=1000000001&state=accepted&from=2026-01-01T00%3A00&to=2026-01-02T00%3A00")
        );
        assert_eq!(r.messages_href(Some(""), "accepted"), None, "refusals are not stored");
        assert_eq!(
            r.query(),
            "sender=1000000001&from=2026-01-01T00%3A00&to=2026-01-02T00%3A00"
        );
        r.process = Some("BP002".into());
        assert_eq!(r.messages_href(None, "accepted"), None, "several channels");
        assert!(r.messages_href(Some("IF-031"), "accepted").is_some());
    }
}
