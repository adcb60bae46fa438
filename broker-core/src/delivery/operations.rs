//! Operating delivery, for the participant API and the portal alike: queue health, dead
//! letters and their redrive. The caller says whose queues its viewer may see, as the
//! DIP IDs it acts for (`None`: the operator, every queue); everything here stays within
//! them, and anything outside answers as if it did not exist.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::broker::Broker;
use crate::clock::rfc3339;
use crate::model::Endpoint;
use crate::store::{AuditEntry, DeadLetter, DeadLetterFilter, QueueHealth, StoreError};

/// Most dead letters one redrive by filter takes.
pub const MAX_REDRIVE: i64 = 10_000;

/// One queue's health, as the API and the portal show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Queue id (`DIP-ID/name`).
    pub queue: String,
    /// Its participant.
    #[serde(rename = "dipID")]
    pub dip_id: String,
    /// Endpoint name.
    pub name: String,
    /// `webhook` or `pull`.
    pub mode: String,
    /// Channels it takes (empty: every other channel).
    pub channels: Vec<String>,
    /// `healthy`, `retrying` or `failing` (`QueueHealth::state`).
    pub state: String,
    /// Entries waiting.
    pub pending: i64,
    /// Replay copies waiting to join the queue.
    pub replay_held: i64,
    /// Dead letters not redriven.
    pub dead_letters: i64,
    /// The oldest waiting entry's enqueue time.
    pub oldest_enqueued_at: Option<String>,
    /// Its age, seconds.
    pub oldest_age_seconds: Option<f64>,
    /// Last attempt.
    pub last_attempt_at: Option<String>,
    /// Its outcome.
    pub last_outcome: Option<String>,
    /// Last delivery.
    pub last_success_at: Option<String>,
    /// Since when the head has been failing.
    pub failing_since: Option<String>,
    /// Next attempt due.
    pub next_attempt_at: Option<String>,
    /// Who holds the queue now: `delivery node` or `pull consumer`.
    pub leased_by: Option<String>,
}

/// The queues of the participants in `visible` (every endpoint and the implicit default
/// queue), or every queue with entries for the operator (`None`), with their health.
pub async fn queues(broker: &Broker, visible: Option<&[String]>) -> Result<Vec<QueueStatus>, StoreError> {
    let registry = broker.registry();
    let ids = match visible {
        None => broker.queues().queue_ids().await?,
        Some(owners) => {
            let mut ids = Vec::new();
            for owner in owners {
                let endpoints = registry.endpoints_of(owner);
                ids.extend(endpoints.iter().map(|e| e.id.clone()));
                if !endpoints.iter().any(|e| e.channels.is_empty()) {
                    ids.push(Endpoint::make_id(owner, "default"));
                }
            }
            ids
        }
    };
    let health = broker.queues().queue_health(&ids).await?;
    let held = broker.replays().held_per_queue().await?;
    let now = crate::clock::now_micros();
    Ok(health
        .iter()
        .map(|h| {
            let held = held.iter().find(|(q, _)| *q == h.queue_id).map_or(0, |(_, n)| *n);
            status(broker, h, held, now)
        })
        .collect())
}

fn status(broker: &Broker, h: &QueueHealth, held: i64, now: i64) -> QueueStatus {
    let endpoint = broker.registry().endpoint(&h.queue_id).cloned();
    let mode = if endpoint.as_ref().is_some_and(|e| e.url.is_some()) {
        "webhook"
    } else {
        "pull"
    };
    let (dip_id, name) = h.queue_id.split_once('/').unwrap_or((&h.queue_id, ""));
    let leased_by = (h.lease_until > now).then_some(()).and(h.owner.as_deref()).map(|o| {
        if o.starts_with("pull:") {
            "pull consumer".to_owned()
        } else {
            "delivery node".to_owned()
        }
    });
    QueueStatus {
        queue: h.queue_id.clone(),
        dip_id: dip_id.to_owned(),
        name: name.to_owned(),
        mode: mode.to_owned(),
        channels: endpoint.map(|e| e.channels).unwrap_or_default(),
        state: h.state(now).to_owned(),
        pending: h.pending,
        replay_held: held,
        dead_letters: h.dead,
        oldest_enqueued_at: h.oldest_enqueued_at.map(rfc3339),
        oldest_age_seconds: h.oldest_enqueued_at.map(|t| (now - t).max(0) as f64 / 1e6),
        last_attempt_at: h.last_attempt_at.map(rfc3339),
        last_outcome: h.last_outcome.clone(),
        last_success_at: h.last_success_at.map(rfc3339),
        failing_since: h.failing_since.map(rfc3339),
        next_attempt_at: h.retry_at.map(rfc3339),
        leased_by,
    }
}

/// Which dead letters: the API's query parameters, the portal's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only this recipient.
    #[serde(rename = "recipientDIPID")]
    pub recipient_dip_id: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this channel.
    #[serde(rename = "interfaceID")]
    pub interface_id: Option<String>,
    /// Only messages of this sender.
    #[serde(rename = "senderDIPID")]
    pub sender_dip_id: Option<String>,
    /// Dead-lettered at or after.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Dead-lettered before.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Most rows.
    pub limit: Option<i64>,
}

impl DeadLetterQuery {
    /// The store filter, limited to the queues of `visible` and to `max` rows.
    pub fn filter(&self, visible: Option<&[String]>, max: i64) -> DeadLetterFilter {
        let mut recipients = visible.map(<[String]>::to_vec);
        if let Some(r) = &self.recipient_dip_id {
            recipients = Some(match recipients {
                None => vec![r.clone()],
                Some(mine) => mine.into_iter().filter(|m| m == r).collect(),
            });
        }
        DeadLetterFilter {
            recipients,
            queue_id: self.queue.clone(),
            seq: None,
            interface_id: self.interface_id.clone(),
            sender_dip_id: self.sender_dip_id.clone(),
            from: self.from.map(|t| t.timestamp_micros()),
            to: self.to.map(|t| t.timestamp_micros()),
            limit: self.limit.unwrap_or(100).clamp(1, max),
        }
    }
}

/// A dead letter as the API and the portal list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRow {
    /// Queue id.
    pub queue: String,
    /// Position in the queue.
    pub position: i64,
    /// The API address of the dead letter with its message.
    pub href: String,
    /// Transaction id.
    #[serde(rename = "transactionID")]
    pub transaction_id: String,
    /// Channel.
    #[serde(rename = "interfaceID")]
    pub interface_id: String,
    /// Sender (`None` for a replay copy).
    #[serde(rename = "senderDIPID")]
    pub sender_dip_id: Option<String>,
    /// Sender's reference.
    pub sender_unique_reference: Option<String>,
    /// Recipient.
    #[serde(rename = "recipientDIPID")]
    pub recipient_dip_id: String,
    /// The role it was sent to.
    pub role: String,
    /// Queued at.
    pub enqueued_at: String,
    /// Dead-lettered at.
    pub dead_lettered_at: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// Last attempt.
    pub last_attempt_at: Option<String>,
    /// Its outcome.
    pub last_outcome: Option<String>,
    /// The replay that queued it, if a replay copy.
    #[serde(rename = "replayID")]
    pub replay_id: Option<String>,
}

impl From<&DeadLetter> for DeadLetterRow {
    fn from(d: &DeadLetter) -> Self {
        let (dip_id, name) = d.entry.queue_id.split_once('/').unwrap_or((&d.entry.queue_id, ""));
        Self {
            queue: d.entry.queue_id.clone(),
            position: d.entry.seq,
            href: format!("/api/v1/dead-letters/{dip_id}/{name}/{}", d.entry.seq),
            transaction_id: d.entry.transaction_id.clone(),
            interface_id: d.interface_id.clone(),
            sender_dip_id: d.sender_dip_id.clone(),
            sender_unique_reference: d.sender_unique_reference.clone(),
            recipient_dip_id: d.entry.recipient_dip_id.clone(),
            role: d.entry.recipient_role.clone(),
            enqueued_at: rfc3339(d.entry.enqueued_at),
            dead_lettered_at: d.entry.settled_at.map(rfc3339),
            attempts: d.entry.attempts,
            last_attempt_at: d.entry.last_attempt_at.map(rfc3339),
            last_outcome: d.entry.last_outcome.clone(),
            replay_id: d.entry.replay_id.clone(),
        }
    }
}

/// Dead letters of the queues of `visible` matching `query`, at most `max`.
pub async fn dead_letters(
    broker: &Broker,
    visible: Option<&[String]>,
    query: &DeadLetterQuery,
    max: i64,
) -> Result<Vec<DeadLetter>, StoreError> {
    broker.queues().dead_letters(&query.filter(visible, max)).await
}

/// A dead letter named by its queue and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRef {
    /// Queue id.
    pub queue: String,
    /// Position.
    pub position: i64,
}

/// A redrive: listed dead letters, or those a filter matches (up to [`MAX_REDRIVE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveRequest {
    /// Dead letters by position.
    #[serde(default)]
    pub entries: Vec<EntryRef>,
    /// Dead letters by filter.
    #[serde(default)]
    pub filter: Option<DeadLetterQuery>,
    /// Only count what would be redriven.
    #[serde(default)]
    pub dry_run: bool,
}

/// A dead letter queued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redriven {
    /// Queue id.
    pub queue: String,
    /// Its dead letter's position.
    pub position: i64,
    /// Its new position at the tail of the queue (`None` on a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_position: Option<i64>,
}

/// What a redrive did, or on a dry run would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveOutcome {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How many dead letters were (or would be) queued again.
    pub count: usize,
    /// Each of them.
    pub redriven: Vec<Redriven>,
}

/// Why a redrive was refused.
#[derive(Debug)]
pub enum RedriveError {
    /// Neither entries nor a filter.
    Empty,
    /// A listed entry is not in a queue the caller may see.
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for RedriveError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Queues the dead letters of `request` again at the tail of their queues (or counts them,
/// on a dry run), within the queues of `visible`. A redrive that did something is written
/// to the audit log as done by `actor` (of participant `actor_dip_id`).
pub async fn redrive(
    broker: &Broker,
    visible: Option<&[String]>,
    request: &RedriveRequest,
    actor: &str,
    actor_dip_id: Option<&str>,
) -> Result<RedriveOutcome, RedriveError> {
    if request.entries.is_empty() && request.filter.is_none() {
        return Err(RedriveError::Empty);
    }
    let mut listed: Vec<(String, i64)> = Vec::new();
    for e in &request.entries {
        let owner = e.queue.split_once('/').map_or("", |(d, _)| d);
        if visible.is_some_and(|m| !m.iter().any(|d| d == owner)) {
            return Err(RedriveError::NotFound);
        }
        listed.push((e.queue.clone(), e.position));
    }
    let mut targets: Vec<(String, i64)> = Vec::new();
    if request.dry_run {
        // Only what is still a dead letter counts: the filter finds only those; listed
        // entries are looked up one by one.
        for (queue, seq) in listed {
            let filter = DeadLetterFilter {
                queue_id: Some(queue.clone()),
                seq: Some(seq),
                limit: 1,
                ..DeadLetterFilter::default()
            };
            if !broker.queues().dead_letters(&filter).await?.is_empty() {
                targets.push((queue, seq));
            }
        }
    } else {
        targets = listed;
    }
    if let Some(q) = &request.filter {
        let filter = DeadLetterFilter {
            limit: q.limit.unwrap_or(MAX_REDRIVE).clamp(1, MAX_REDRIVE),
            ..q.filter(visible, MAX_REDRIVE)
        };
        let rows = broker.queues().dead_letters(&filter).await?;
        targets.extend(rows.into_iter().map(|d| (d.entry.queue_id, d.entry.seq)));
    }
    targets.sort();
    targets.dedup();
    if request.dry_run {
        let redriven: Vec<Redriven> = targets
            .into_iter()
            .map(|(queue, position)| Redriven {
                queue,
                position,
                new_position: None,
            })
            .collect();
        return Ok(RedriveOutcome {
            dry_run: true,
            count: redriven.len(),
            redriven,
        });
    }
    let done = broker.queues().redrive(&targets, crate::clock::now_micros()).await?;
    let redriven: Vec<Redriven> = done
        .into_iter()
        .map(|(queue, position, new)| Redriven {
            queue,
            position,
            new_position: Some(new),
        })
        .collect();
    if !redriven.is_empty() {
        let entry = AuditEntry::now(
            actor.to_owned(),
            actor_dip_id.map(str::to_owned),
            "dead_letter.redrive",
            &format!("{} dead letters", redriven.len()),
            &json!({ "redriven": redriven }),
        );
        broker.accounts().append_audit(&entry).await?;
    }
    Ok(RedriveOutcome {
        dry_run: false,
        count: redriven.len(),
        redriven,
    })
}
