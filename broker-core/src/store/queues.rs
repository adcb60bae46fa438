//! Recipient queues: entries in FIFO order and how they leave the pending state, queue
//! health, the leases that give each queue to one node (or one pull client) at a time,
//! and dead letters.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use super::messages::NewMessage;
use crate::security::signature::SignatureRecord;

/// One entry of a recipient queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueEntry {
    /// Queue (endpoint id).
    pub queue_id: String,
    /// Position in the queue; strictly increasing in order of acceptance.
    pub seq: i64,
    /// Transaction id.
    pub transaction_id: String,
    /// Recipient.
    pub recipient_dip_id: String,
    /// Role the recipient receives in.
    pub recipient_role: String,
    /// Pointers hidden from this recipient.
    pub hidden: Vec<String>,
    /// `pending` until settled (see [`EntryState`]).
    pub state: String,
    /// When queued, microseconds since the epoch.
    pub enqueued_at: i64,
    /// Delivery attempts made.
    pub attempts: i64,
    /// Time of the last attempt.
    pub last_attempt_at: Option<i64>,
    /// Outcome of the last attempt (`HTTP 503`, `timeout`, …).
    pub last_outcome: Option<String>,
    /// When the entry left the pending state.
    pub settled_at: Option<i64>,
    /// The replay that queued this entry; `None` for business traffic.
    pub replay_id: Option<String>,
    /// The message a replay copy copies (its own transaction id is an `R-` one).
    pub replay_of: Option<String>,
}

/// The life of a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Waiting for delivery.
    Pending,
    /// The recipient took it (2xx, or acknowledged a pull).
    Delivered,
    /// The recipient refused the data (4xx); returned to the sender.
    Returned,
    /// Stale: moved to the dead-letter queue and reported to the sender.
    Dead,
    /// A dead letter queued again under a new position.
    Redriven,
}

impl EntryState {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Returned => "returned",
            Self::Dead => "dead",
            Self::Redriven => "redriven",
        }
    }
}

/// The message a queue entry carries, as the delivery path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Sender.
    pub sender_dip_id: String,
    /// Sender's reference.
    pub sender_unique_reference: String,
    /// Sender role.
    pub sender_role: String,
    /// Workflow correlation id.
    pub correlation_id: Option<String>,
    /// MPAN core.
    pub mpan: Option<String>,
    /// Receipt time.
    pub received_at: i64,
}

/// A queue entry ready to deliver, with the archived envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The entry.
    pub entry: QueueEntry,
    /// Channel.
    pub interface_id: String,
    /// The archived envelope (payload with `D0`), JSON.
    pub envelope: String,
    /// The business message; `None` for a replay copy.
    pub origin: Option<Origin>,
}

/// How an entry left the pending state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Queue.
    pub queue_id: String,
    /// Position.
    pub seq: i64,
    /// New state.
    pub state: EntryState,
    /// When.
    pub at: i64,
    /// Outcome of the last attempt.
    pub outcome: String,
    /// How long the webhook call took, microseconds (0 when there was none: a pull
    /// acknowledgement, a dead letter).
    pub duration_us: i64,
    /// What the platform keeps of the webhook call that settled it; `None` when there
    /// was none.
    pub call: Option<CallDetail>,
}

/// What the platform keeps of one webhook call besides its outcome, for the trace and
/// evidence bundles. Every failed call is stored; an empty successful one (unsigned) is
/// not: its outcome and duration are in the lifecycle events already, and bundles are
/// made only by a platform that signs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallDetail {
    /// The start of the recipient's answer when it was not a success (empty otherwise).
    pub answer: String,
    /// The platform's X-DIP signature of the request, when it signs webhooks.
    pub signature: Option<SignatureRecord>,
}

impl CallDetail {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.answer.is_empty() && self.signature.is_none()
    }
}

/// One recorded webhook call to a queue entry's recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Queue.
    pub queue_id: String,
    /// Position.
    pub seq: i64,
    /// When it was answered (or failed), microseconds since the epoch.
    pub at: i64,
    /// `HTTP 200`, `HTTP 503`, `timeout`…
    pub outcome: String,
    /// How long the call took, microseconds.
    pub duration_us: i64,
    /// What was kept of it.
    pub call: CallDetail,
}

/// How far back [`QueueStore::ahead_of`] looks.
pub const AHEAD_LIMIT: i64 = 1000;

/// The entries a queue entry joined behind: a copy waits for them (per-recipient FIFO),
/// and for their retries when the recipient fails them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ahead {
    /// How many (at most [`AHEAD_LIMIT`]).
    pub entries: i64,
    /// How many of them the recipient failed at first: settled after more than one
    /// attempt, or failed and waiting to be retried.
    pub retried: i64,
    /// What the recipient answered the first attempt of the first of those.
    pub retry_outcome: Option<String>,
    /// When the last of them was settled (`None` while one is still unsettled).
    pub cleared_at: Option<i64>,
}

/// A failed attempt on the head of a queue, to be retried at `retry_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// Queue.
    pub queue_id: String,
    /// Position.
    pub seq: i64,
    /// When.
    pub at: i64,
    /// What happened (`HTTP 503`, `timeout`, …).
    pub outcome: String,
    /// When the next attempt is due.
    pub retry_at: i64,
    /// How long the attempt took, microseconds.
    pub duration_us: i64,
    /// What the platform keeps of the call; `None` when nothing was.
    pub call: Option<CallDetail>,
}

/// Delivery health of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueueHealth {
    /// Queue.
    pub queue_id: String,
    /// Entries waiting.
    pub pending: i64,
    /// Enqueue time of the oldest waiting entry.
    pub oldest_enqueued_at: Option<i64>,
    /// Dead letters not yet redriven.
    pub dead: i64,
    /// Node or pull lease holding the queue.
    pub owner: Option<String>,
    /// Until when.
    pub lease_until: i64,
    /// Last attempt.
    pub last_attempt_at: Option<i64>,
    /// Its outcome.
    pub last_outcome: Option<String>,
    /// Last successful delivery.
    pub last_success_at: Option<i64>,
    /// Since when the head has been failing; `None` when healthy.
    pub failing_since: Option<i64>,
    /// Next attempt due.
    pub retry_at: Option<i64>,
}

impl QueueHealth {
    /// How long a queue's head may keep failing before the queue counts as `failing`
    /// rather than `retrying`.
    pub const FAILING_AFTER_MICROS: i64 = 5 * 60 * 1_000_000;

    /// The queue's delivery state at `now`: `healthy`, `retrying` (its head has been
    /// failing for less than [`Self::FAILING_AFTER_MICROS`]) or `failing`.
    pub fn state(&self, now: i64) -> &'static str {
        match self.failing_since {
            None => "healthy",
            Some(since) if now - since < Self::FAILING_AFTER_MICROS => "retrying",
            Some(_) => "failing",
        }
    }
}

/// Which dead letters to list. Unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only these recipients.
    pub recipients: Option<Vec<String>>,
    /// Only this queue.
    pub queue_id: Option<String>,
    /// Only this position (with `queue_id`).
    pub seq: Option<i64>,
    /// Only this channel.
    pub interface_id: Option<String>,
    /// Only messages of this sender.
    pub sender_dip_id: Option<String>,
    /// Dead-lettered at or after (microseconds).
    pub from: Option<i64>,
    /// Dead-lettered before (microseconds).
    pub to: Option<i64>,
    /// Most rows.
    pub limit: i64,
}

/// A dead-lettered entry with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The entry.
    pub entry: QueueEntry,
    /// Channel.
    pub interface_id: String,
    /// Sender (`None` for a replay copy).
    pub sender_dip_id: Option<String>,
    /// Sender's reference.
    pub sender_unique_reference: Option<String>,
}

/// Depth of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStat {
    /// Queue (endpoint id).
    pub queue_id: String,
    /// Entries waiting.
    pub pending: i64,
    /// Enqueue time of the oldest waiting entry.
    pub oldest_enqueued_at: Option<i64>,
}

/// Persistence of recipient queues: entries, delivery outcomes, leases and dead letters.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// The queue entries created for a message.
    async fn message_deliveries(&self, transaction_id: &str) -> Result<Vec<QueueEntry>>;
    /// Every copy of these messages: their queue entries (redriven ones included) and
    /// their replay copies, by message, recipient, queue and position.
    async fn copies_of(&self, transaction_ids: &[String]) -> Result<Vec<QueueEntry>>;
    /// Pending entries of one queue after position `after_seq`, in FIFO order.
    async fn pending_entries(&self, queue_id: &str, after_seq: i64, limit: i64) -> Result<Vec<QueueEntry>>;
    /// Depth and age of the given queues.
    async fn queue_stats(&self, queue_ids: &[String]) -> Result<Vec<QueueStat>>;

    /// Pending entries of one queue after position `after_seq`, with their envelopes, in
    /// FIFO order.
    async fn next_outbound(&self, queue_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Outbound>>;
    /// Settles pending entries (entries no longer pending are left alone) and commits the
    /// reports they cause (return to sender) in the same transaction.
    async fn settle(&self, settlements: &[Settlement], reports: &[NewMessage]) -> Result<()>;
    /// Records a failed attempt on a queue's head.
    async fn record_failure(&self, failure: &AttemptFailure) -> Result<()>;
    /// The recorded webhook calls of the given entries (queue, position), oldest first.
    async fn attempts_of(&self, entries: &[(String, i64)]) -> Result<Vec<Attempt>>;
    /// What was ahead of entry `seq` of `queue_id` when it joined at `enqueued_at`: the
    /// earlier entries still unsettled then, looked for among the [`AHEAD_LIMIT`] before
    /// it (FIFO settles them in order, so they are the nearest).
    async fn ahead_of(&self, queue_id: &str, seq: i64, enqueued_at: i64) -> Result<Ahead>;
    /// Pending entries of a queue carrying the given transactions.
    async fn pending_by_transaction(&self, queue_id: &str, transaction_ids: &[String]) -> Result<Vec<QueueEntry>>;
    /// Delivery health of the given queues.
    async fn queue_health(&self, queue_ids: &[String]) -> Result<Vec<QueueHealth>>;
    /// Every queue that has ever held an entry.
    async fn queue_ids(&self) -> Result<Vec<String>>;

    /// Takes the lease of each queue that is free, expired (before `now`) or already
    /// `owner`'s, until `until`; returns the queues now held.
    async fn claim_queues(&self, owner: &str, queue_ids: &[String], now: i64, until: i64) -> Result<Vec<String>>;
    /// Extends every lease `owner` still holds; returns those queues.
    async fn renew_leases(&self, owner: &str, until: i64) -> Result<Vec<String>>;
    /// Gives up `owner`'s lease of a queue, announcing the queue if work is left in it.
    async fn release_queue(&self, owner: &str, queue_id: &str) -> Result<()>;
    /// The lease of a queue: holder and expiry.
    async fn lease(&self, queue_id: &str) -> Result<Option<(String, i64)>>;
    /// Queues with pending entries whose lease is free or expired at `now`.
    async fn claimable_queues(&self, now: i64) -> Result<Vec<String>>;

    /// Dead letters matching a filter, oldest first.
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>>;
    /// Queues dead letters again at the tail of their queues; returns (queue, old position,
    /// new position) for each entry that was dead.
    async fn redrive(&self, entries: &[(String, i64)], at: i64) -> Result<Vec<(String, i64, i64)>>;
}

/// Columns of a queue entry, in the order `queue_entry` reads them (table alias `q`).
pub(super) const ENTRY: &str = "q.queue_id, q.seq, q.transaction_id, q.recipient_dip_id, q.recipient_role, \
     q.hidden, q.state, q.enqueued_at, q.attempts, q.last_attempt_at, q.last_outcome, q.settled_at, q.replay_id, \
     q.replay_of";

/// Number of columns in [`ENTRY`].
pub(super) const ENTRY_LEN: usize = 14;

/// A queue entry to create.
pub(super) struct NewEntry<'a> {
    pub queue_id: &'a str,
    pub transaction_id: &'a str,
    pub recipient_dip_id: &'a str,
    pub recipient_role: &'a str,
    pub hidden: String,
    pub enqueued_at: i64,
    pub replay_id: Option<&'a str>,
    pub replay_of: Option<&'a str>,
}

/// An event about an existing queue entry; the rest is read from the entry and its
/// message when the event is written.
pub(super) struct EntryEvent<'a> {
    pub queue_id: &'a str,
    pub seq: i64,
    pub kind: crate::events::EventKind,
    pub at: i64,
    pub outcome: &'a str,
    pub duration_us: i64,
}

/// A webhook call to record, of an entry settled or failed in the same transaction.
pub(super) struct CallRow<'a> {
    pub queue_id: &'a str,
    pub seq: i64,
    pub at: i64,
    pub outcome: &'a str,
    pub duration_us: i64,
    pub call: &'a CallDetail,
}

/// Depth, age and dead letters of one queue (`$1`), with its status row if it has one.
pub(super) const QUEUE_HEALTH: &str = include_str!("queues/queue_health.sql");

/// Queues with pending entries whose lease is free or expired at `$1`.
pub(super) const CLAIMABLE_QUEUES: &str = include_str!("queues/claimable_queues.sql");

/// Implements [`QueueStore`]. Adds `enqueue` (committing messages and replays queue their
/// entries with it), `entry_events` and `queue_entry`; uses `insert_messages` (messages)
/// and `finish`.
macro_rules! impl_queue_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::queues::QueueStore for $store {
            async fn message_deliveries(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM queue_entries q WHERE q.transaction_id = $1 \
                     ORDER BY q.recipient_dip_id, q.queue_id, q.seq",
                    $crate::store::queues::ENTRY
                ))
                .bind(transaction_id)
                .fetch_all(self.reader())
                .await?;
                rows.iter().map(Self::queue_entry).collect()
            }

            async fn copies_of(
                &self,
                transaction_ids: &[String],
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let mut copies = Vec::new();
                for chunk in transaction_ids.chunks($crate::store::sql::CHUNK / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM queue_entries q WHERE q.transaction_id IN (",
                        $crate::store::queues::ENTRY
                    ));
                    let mut ids = qb.separated(", ");
                    for id in chunk {
                        ids.push_bind(id.as_str());
                    }
                    qb.push(") OR q.replay_of IN (");
                    let mut ids = qb.separated(", ");
                    for id in chunk {
                        ids.push_bind(id.as_str());
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(self.reader()).await? {
                        copies.push(Self::queue_entry(&r)?);
                    }
                }
                // By the message copied (a replay copy's original), then recipient and queue.
                let key = |e: &$crate::store::QueueEntry| {
                    let message = e.replay_of.as_deref().unwrap_or(&e.transaction_id).to_owned();
                    (message, e.recipient_dip_id.clone(), e.queue_id.clone(), e.seq)
                };
                copies.sort_by_cached_key(key);
                Ok(copies)
            }

            async fn pending_entries(
                &self,
                queue_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM queue_entries q \
                     WHERE q.queue_id = $1 AND q.seq > $2 AND q.state = 'pending' ORDER BY q.seq LIMIT $3",
                    $crate::store::queues::ENTRY
                ))
                .bind(queue_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.iter().map(Self::queue_entry).collect()
            }

            async fn queue_stats(&self, queue_ids: &[String]) -> $crate::store::Result<Vec<$crate::store::QueueStat>> {
                use sqlx::Row;
                let mut out = Vec::new();
                for q in queue_ids {
                    let r = sqlx::query(
                        "SELECT COUNT(*), MIN(enqueued_at) FROM queue_entries \
                         WHERE queue_id = $1 AND state = 'pending'",
                    )
                    .bind(q)
                    .fetch_one(self.reader())
                    .await?;
                    out.push($crate::store::QueueStat {
                        queue_id: q.clone(),
                        pending: r.get(0),
                        oldest_enqueued_at: r.get(1),
                    });
                }
                Ok(out)
            }

            async fn next_outbound(
                &self,
                queue_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::Outbound>> {
                use sqlx::Row;
                let rows = sqlx::query(&format!(
                    "SELECT {}, a.interface_id, a.envelope, m.sender_dip_id, m.sender_unique_reference, \
                     m.sender_role, m.correlation_id, m.mpan, m.received_at \
                     FROM queue_entries q JOIN archive a ON a.transaction_id = q.transaction_id \
                     LEFT JOIN messages m ON m.transaction_id = q.transaction_id \
                     WHERE q.queue_id = $1 AND q.seq > $2 AND q.state = 'pending' ORDER BY q.seq LIMIT $3",
                    $crate::store::queues::ENTRY
                ))
                .bind(queue_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                let n = $crate::store::queues::ENTRY_LEN;
                rows.iter()
                    .map(|r| {
                        let sender: Option<String> = r.get(n + 2);
                        Ok($crate::store::Outbound {
                            entry: Self::queue_entry(r)?,
                            interface_id: r.get(n),
                            envelope: r.get(n + 1),
                            origin: sender.map(|sender_dip_id| $crate::store::Origin {
                                sender_dip_id,
                                sender_unique_reference: r.get(n + 3),
                                sender_role: r.get(n + 4),
                                correlation_id: r.get(n + 5),
                                mpan: r.get(n + 6),
                                received_at: r.get(n + 7),
                            }),
                        })
                    })
                    .collect()
            }

            async fn settle(
                &self,
                settlements: &[$crate::store::Settlement],
                reports: &[$crate::store::NewMessage],
            ) -> $crate::store::Result<()> {
                use $crate::store::EntryState;
                let mut sorted: Vec<&$crate::store::Settlement> = settlements.iter().collect();
                sorted.sort_by(|a, b| (&a.queue_id, a.seq).cmp(&(&b.queue_id, b.seq)));
                let mut tx = self.writer().begin().await?;
                let mut settled: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
                for chunk in sorted.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE queue_entries SET state = v.column3, settled_at = v.column4, \
                         attempts = queue_entries.attempts + v.column6, \
                         last_attempt_at = CASE WHEN v.column6 > 0 THEN v.column4 ELSE queue_entries.last_attempt_at END, \
                         last_outcome = v.column5 FROM (",
                    );
                    qb.push_values(chunk, |mut b, st| {
                        let attempted: i64 = if st.state == EntryState::Dead { 0 } else { 1 };
                        b.push_bind(&st.queue_id)
                            .push_bind(st.seq)
                            .push_bind(st.state.as_str())
                            .push_bind(st.at)
                            .push_bind(&st.outcome)
                            .push_bind(attempted);
                    });
                    qb.push(
                        ") AS v WHERE queue_entries.queue_id = v.column1 AND queue_entries.seq = v.column2 \
                         AND queue_entries.state = 'pending' RETURNING queue_id, seq",
                    );
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        use sqlx::Row;
                        settled.insert((r.get::<String, _>(0), r.get::<i64, _>(1)));
                    }
                }
                // Events only for entries this call settled: a repeat changes nothing.
                let events: Vec<$crate::store::queues::EntryEvent<'_>> = sorted
                    .iter()
                    .filter(|st| settled.contains(&(st.queue_id.clone(), st.seq)))
                    .map(|st| $crate::store::queues::EntryEvent {
                        queue_id: &st.queue_id,
                        seq: st.seq,
                        kind: match st.state {
                            EntryState::Returned => $crate::events::EventKind::Returned,
                            EntryState::Dead => $crate::events::EventKind::DeadLettered,
                            _ => $crate::events::EventKind::Delivered,
                        },
                        at: st.at,
                        outcome: &st.outcome,
                        duration_us: st.duration_us,
                    })
                    .collect();
                self.entry_events(&mut tx, &events).await?;
                let calls: Vec<$crate::store::queues::CallRow<'_>> = sorted
                    .iter()
                    .filter(|st| settled.contains(&(st.queue_id.clone(), st.seq)))
                    .filter_map(|st| {
                        st.call.as_ref().filter(|c| !c.is_empty()).map(|call| $crate::store::queues::CallRow {
                            queue_id: &st.queue_id,
                            seq: st.seq,
                            at: st.at,
                            outcome: &st.outcome,
                            duration_us: st.duration_us,
                            call,
                        })
                    })
                    .collect();
                Self::record_calls(&mut tx, &calls).await?;
                // A recipient that answered is reachable, whatever it answered.
                let mut answered: std::collections::BTreeMap<&str, (i64, &str)> = std::collections::BTreeMap::new();
                for st in settlements
                    .iter()
                    .filter(|st| matches!(st.state, EntryState::Delivered | EntryState::Returned))
                {
                    let slot = answered.entry(&st.queue_id).or_insert((st.at, &st.outcome));
                    if st.at >= slot.0 {
                        *slot = (st.at, &st.outcome);
                    }
                }
                for (queue, (at, outcome)) in answered {
                    sqlx::query(
                        "UPDATE queue_status SET last_attempt_at = $2, last_outcome = $3, last_success_at = $2, \
                         failing_since = NULL, retry_at = NULL WHERE queue_id = $1",
                    )
                    .bind(queue)
                    .bind(at)
                    .bind(outcome)
                    .execute(&mut *tx)
                    .await?;
                }
                let queues = if reports.is_empty() {
                    vec![]
                } else {
                    self.insert_messages(&mut tx, reports).await?.1
                };
                self.finish(tx, queues).await
            }

            async fn record_failure(&self, f: &$crate::store::AttemptFailure) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                let changed = sqlx::query(
                    "UPDATE queue_entries SET attempts = attempts + 1, last_attempt_at = $3, last_outcome = $4 \
                     WHERE queue_id = $1 AND seq = $2 AND state = 'pending'",
                )
                .bind(&f.queue_id)
                .bind(f.seq)
                .bind(f.at)
                .bind(&f.outcome)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed > 0 {
                    let event = $crate::store::queues::EntryEvent {
                        queue_id: &f.queue_id,
                        seq: f.seq,
                        kind: $crate::events::EventKind::FailedAttempt,
                        at: f.at,
                        outcome: &f.outcome,
                        duration_us: f.duration_us,
                    };
                    self.entry_events(&mut tx, std::slice::from_ref(&event)).await?;
                    // Every failed call is kept, empty or not: the failures of an entry
                    // stay in the store whatever analytics holds.
                    let call = f.call.clone().unwrap_or_default();
                    let row = $crate::store::queues::CallRow {
                        queue_id: &f.queue_id,
                        seq: f.seq,
                        at: f.at,
                        outcome: &f.outcome,
                        duration_us: f.duration_us,
                        call: &call,
                    };
                    Self::record_calls(&mut tx, std::slice::from_ref(&row)).await?;
                }
                sqlx::query(
                    "UPDATE queue_status SET last_attempt_at = $2, last_outcome = $3, \
                     failing_since = COALESCE(failing_since, $2), retry_at = $4 WHERE queue_id = $1",
                )
                .bind(&f.queue_id)
                .bind(f.at)
                .bind(&f.outcome)
                .bind(f.retry_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.outbox.notify_one();
                Ok(())
            }

            async fn ahead_of(
                &self,
                queue_id: &str,
                seq: i64,
                enqueued_at: i64,
            ) -> $crate::store::Result<$crate::store::Ahead> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT seq, attempts, settled_at FROM queue_entries \
                     WHERE queue_id = $1 AND seq < $2 AND seq >= $3 AND (settled_at IS NULL OR settled_at > $4) \
                     ORDER BY seq",
                )
                .bind(queue_id)
                .bind(seq)
                .bind(seq.saturating_sub($crate::store::queues::AHEAD_LIMIT))
                .bind(enqueued_at)
                .fetch_all(self.reader())
                .await?;
                let mut ahead = $crate::store::Ahead {
                    entries: i64::try_from(rows.len()).unwrap_or(i64::MAX),
                    ..Default::default()
                };
                let mut first_retried = None;
                let mut cleared = (!rows.is_empty()).then_some(i64::MIN);
                for r in &rows {
                    let (seq, attempts, settled): (i64, i64, Option<i64>) = (r.get(0), r.get(1), r.get(2));
                    // Retried: settled after more than one attempt, or failed and waiting.
                    if attempts > 1 || (settled.is_none() && attempts > 0) {
                        ahead.retried += 1;
                        first_retried.get_or_insert(seq);
                    }
                    cleared = cleared.zip(settled).map(|(a, b)| a.max(b));
                }
                ahead.cleared_at = cleared;
                // Its first attempt failed (it was retried): what the recipient answered.
                if let Some(first) = first_retried {
                    ahead.retry_outcome = sqlx::query_scalar(
                        "SELECT outcome FROM delivery_attempts WHERE queue_id = $1 AND seq = $2 ORDER BY at LIMIT 1",
                    )
                    .bind(queue_id)
                    .bind(first)
                    .fetch_optional(self.reader())
                    .await?;
                }
                Ok(ahead)
            }

            async fn attempts_of(&self, entries: &[(String, i64)]) -> $crate::store::Result<Vec<$crate::store::Attempt>> {
                use sqlx::Row;
                let mut out = Vec::new();
                for chunk in entries.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT d.queue_id, d.seq, d.at, d.outcome, d.duration_us, d.answer, d.signature \
                         FROM delivery_attempts d JOIN (",
                    );
                    qb.push_values(chunk, |mut b, (queue, seq)| {
                        b.push_bind(queue).push_bind(*seq);
                    });
                    qb.push(") AS v ON d.queue_id = v.column1 AND d.seq = v.column2");
                    for r in qb.build().fetch_all(self.reader()).await? {
                        let signature: Option<String> = r.get(6);
                        out.push($crate::store::Attempt {
                            queue_id: r.get(0),
                            seq: r.get(1),
                            at: r.get(2),
                            outcome: r.get(3),
                            duration_us: r.get(4),
                            call: $crate::store::CallDetail {
                                answer: r.get(5),
                                signature: signature
                                    .map(|json| $crate::store::sql::decode_json(&json))
                                    .transpose()?,
                            },
                        });
                    }
                }
                out.sort_by(|a, b| (&a.queue_id, a.seq, a.at).cmp(&(&b.queue_id, b.seq, b.at)));
                Ok(out)
            }

            async fn pending_by_transaction(
                &self,
                queue_id: &str,
                transaction_ids: &[String],
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let mut out = Vec::new();
                for chunk in transaction_ids.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM queue_entries q WHERE q.state = 'pending' AND q.queue_id = ",
                        $crate::store::queues::ENTRY
                    ));
                    qb.push_bind(queue_id).push(" AND q.transaction_id IN (");
                    let mut list = qb.separated(", ");
                    for t in chunk {
                        list.push_bind(t);
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(self.writer()).await? {
                        out.push(Self::queue_entry(&r)?);
                    }
                }
                out.sort_by_key(|e| e.seq);
                Ok(out)
            }

            async fn queue_health(
                &self,
                queue_ids: &[String],
            ) -> $crate::store::Result<Vec<$crate::store::QueueHealth>> {
                use sqlx::Row;
                let mut out = Vec::with_capacity(queue_ids.len());
                for q in queue_ids {
                    let r = sqlx::query($crate::store::queues::QUEUE_HEALTH)
                        .bind(q)
                        .fetch_one(self.reader())
                        .await?;
                    out.push($crate::store::QueueHealth {
                        queue_id: q.clone(),
                        pending: r.get(0),
                        oldest_enqueued_at: r.get(1),
                        dead: r.get(2),
                        owner: r.get(3),
                        lease_until: r.get(4),
                        last_attempt_at: r.get(5),
                        last_outcome: r.get(6),
                        last_success_at: r.get(7),
                        failing_since: r.get(8),
                        retry_at: r.get(9),
                    });
                }
                Ok(out)
            }

            async fn queue_ids(&self) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT queue_id FROM queue_counters ORDER BY queue_id")
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn claim_queues(
                &self,
                owner: &str,
                queue_ids: &[String],
                now: i64,
                until: i64,
            ) -> $crate::store::Result<Vec<String>> {
                let mut ids: Vec<&String> = queue_ids.iter().collect();
                ids.sort();
                ids.dedup();
                let mut held = Vec::new();
                for chunk in ids.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO queue_status (queue_id, owner, lease_until) ");
                    qb.push_values(chunk, |mut b, q| {
                        b.push_bind(*q).push_bind(owner).push_bind(until);
                    });
                    qb.push(
                        " ON CONFLICT (queue_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
                         WHERE queue_status.owner IS NULL OR queue_status.owner = excluded.owner \
                         OR queue_status.lease_until < ",
                    );
                    qb.push_bind(now).push(" RETURNING queue_id");
                    held.extend(qb.build_query_scalar::<String>().fetch_all(self.writer()).await?);
                }
                Ok(held)
            }

            async fn renew_leases(&self, owner: &str, until: i64) -> $crate::store::Result<Vec<String>> {
                Ok(
                    sqlx::query_scalar("UPDATE queue_status SET lease_until = $2 WHERE owner = $1 RETURNING queue_id")
                        .bind(owner)
                        .bind(until)
                        .fetch_all(self.writer())
                        .await?,
                )
            }

            async fn release_queue(&self, owner: &str, queue_id: &str) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE queue_status SET owner = NULL, lease_until = 0 WHERE queue_id = $1 AND owner = $2")
                    .bind(queue_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                // Work left behind (a node stopping) is announced, so another node takes
                // the queue at once rather than at its next sweep.
                let pending: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM queue_entries WHERE queue_id = $1 AND state = 'pending')",
                )
                .bind(queue_id)
                .fetch_one(&mut *tx)
                .await?;
                self.finish(tx, if pending { vec![queue_id.to_owned()] } else { vec![] }).await
            }

            async fn lease(&self, queue_id: &str) -> $crate::store::Result<Option<(String, i64)>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT owner, lease_until FROM queue_status WHERE queue_id = $1")
                    .bind(queue_id)
                    .fetch_optional(self.writer())
                    .await?;
                Ok(row.and_then(|r| {
                    let owner: Option<String> = r.get(0);
                    owner.map(|o| (o, r.get(1)))
                }))
            }

            async fn claimable_queues(&self, now: i64) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar($crate::store::queues::CLAIMABLE_QUEUES)
                    .bind(now)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn dead_letters(
                &self,
                f: &$crate::store::DeadLetterFilter,
            ) -> $crate::store::Result<Vec<$crate::store::DeadLetter>> {
                use sqlx::Row;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {}, a.interface_id, m.sender_dip_id, m.sender_unique_reference \
                     FROM queue_entries q JOIN archive a ON a.transaction_id = q.transaction_id \
                     LEFT JOIN messages m ON m.transaction_id = q.transaction_id WHERE q.state = 'dead'",
                    $crate::store::queues::ENTRY
                ));
                if let Some(recipients) = &f.recipients {
                    if recipients.is_empty() {
                        return Ok(vec![]);
                    }
                    qb.push(" AND q.recipient_dip_id IN (");
                    let mut list = qb.separated(", ");
                    for r in recipients.iter().take($crate::store::sql::CHUNK) {
                        list.push_bind(r);
                    }
                    qb.push(")");
                }
                if let Some(v) = &f.queue_id {
                    qb.push(" AND q.queue_id = ").push_bind(v);
                }
                if let Some(v) = f.seq {
                    qb.push(" AND q.seq = ").push_bind(v);
                }
                if let Some(v) = &f.interface_id {
                    qb.push(" AND a.interface_id = ").push_bind(v);
                }
                if let Some(v) = &f.sender_dip_id {
                    qb.push(" AND m.sender_dip_id = ").push_bind(v);
                }
                if let Some(v) = f.from {
                    qb.push(" AND q.settled_at >= ").push_bind(v);
                }
                if let Some(v) = f.to {
                    qb.push(" AND q.settled_at < ").push_bind(v);
                }
                qb.push(" ORDER BY q.settled_at, q.queue_id, q.seq LIMIT ").push_bind(f.limit.max(0));
                let n = $crate::store::queues::ENTRY_LEN;
                qb.build()
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok($crate::store::DeadLetter {
                            entry: Self::queue_entry(r)?,
                            interface_id: r.get(n),
                            sender_dip_id: r.get(n + 1),
                            sender_unique_reference: r.get(n + 2),
                        })
                    })
                    .collect()
            }

            async fn redrive(&self, entries: &[(String, i64)], at: i64) -> $crate::store::Result<Vec<(String, i64, i64)>> {
                use sqlx::Row;
                let mut sorted: Vec<&(String, i64)> = entries.iter().collect();
                sorted.sort();
                sorted.dedup();
                let mut tx = self.writer().begin().await?;
                #[allow(clippy::type_complexity)]
                let mut revived: Vec<(String, i64, String, String, String, String, Option<String>, Option<String>)> =
                    Vec::new();
                for (queue, seq) in sorted {
                    let row = sqlx::query(
                        "UPDATE queue_entries SET state = 'redriven', settled_at = $3 \
                         WHERE queue_id = $1 AND seq = $2 AND state = 'dead' \
                         RETURNING transaction_id, recipient_dip_id, recipient_role, hidden, replay_id, replay_of",
                    )
                    .bind(queue)
                    .bind(seq)
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(r) = row {
                        revived.push((queue.clone(), *seq, r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)));
                    }
                }
                let new: Vec<$crate::store::queues::NewEntry<'_>> = revived
                    .iter()
                    .map(|(queue, _, tx_id, dip, role, hidden, replay, of)| $crate::store::queues::NewEntry {
                        queue_id: queue,
                        transaction_id: tx_id,
                        recipient_dip_id: dip,
                        recipient_role: role,
                        hidden: hidden.clone(),
                        enqueued_at: at,
                        replay_id: replay.as_deref(),
                        replay_of: of.as_deref(),
                    })
                    .collect();
                let seqs = Self::enqueue(&mut tx, &new).await?;
                let events: Vec<$crate::store::queues::EntryEvent<'_>> = revived
                    .iter()
                    .map(|r| $crate::store::queues::EntryEvent {
                        queue_id: &r.0,
                        seq: r.1,
                        kind: $crate::events::EventKind::Redriven,
                        at,
                        outcome: "",
                        duration_us: 0,
                    })
                    .collect();
                self.entry_events(&mut tx, &events).await?;
                drop(events);
                let mut queues: Vec<String> = revived.iter().map(|r| r.0.clone()).collect();
                queues.dedup();
                let out = revived.iter().zip(seqs).map(|(r, s)| (r.0.clone(), r.1, s)).collect();
                drop(new);
                self.finish(tx, queues).await?;
                Ok(out)
            }
        }

        impl $store {
            /// Appends entries to their queues in the order given. Each queue's counter row
            /// is locked (in queue order, so writers never deadlock) until commit, which
            /// makes positions follow commit order.
            async fn enqueue(
                tx: &mut sqlx::Transaction<'_, $db>,
                entries: &[$crate::store::queues::NewEntry<'_>],
            ) -> $crate::store::Result<Vec<i64>> {
                use sqlx::Row;
                use std::collections::{BTreeMap, HashMap};
                let mut per_queue: BTreeMap<&str, i64> = BTreeMap::new();
                for e in entries {
                    *per_queue.entry(e.queue_id).or_default() += 1;
                }
                let mut next_seq: HashMap<String, i64> = HashMap::new();
                let queues: Vec<(&str, i64)> = per_queue.into_iter().collect();
                for chunk in queues.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO queue_counters (queue_id, last_seq) ");
                    qb.push_values(chunk, |mut b, (q, n)| {
                        b.push_bind(*q).push_bind(*n);
                    });
                    qb.push(
                        " ON CONFLICT (queue_id) DO UPDATE SET \
                         last_seq = queue_counters.last_seq + excluded.last_seq \
                         RETURNING queue_id, last_seq",
                    );
                    let counts: HashMap<&str, i64> = chunk.iter().copied().collect();
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        let q: String = r.get(0);
                        let last: i64 = r.get(1);
                        let n = counts.get(q.as_str()).copied().unwrap_or(0);
                        next_seq.insert(q, last - n + 1);
                    }
                }
                let mut seqs = Vec::with_capacity(entries.len());
                for e in entries {
                    let seq = next_seq.get_mut(e.queue_id).ok_or_else(|| {
                        $crate::store::StoreError::Corrupt(format!("no position for {}", e.queue_id))
                    })?;
                    seqs.push(*seq);
                    *seq += 1;
                }
                let rows: Vec<(i64, &$crate::store::queues::NewEntry<'_>)> = seqs.iter().copied().zip(entries).collect();
                for chunk in rows.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO queue_entries (queue_id, seq, transaction_id, recipient_dip_id, \
                         recipient_role, hidden, state, enqueued_at, replay_id, replay_of) ",
                    );
                    qb.push_values(chunk, |mut b, (seq, e)| {
                        b.push_bind(e.queue_id)
                            .push_bind(*seq)
                            .push_bind(e.transaction_id)
                            .push_bind(e.recipient_dip_id)
                            .push_bind(e.recipient_role)
                            .push_bind(&e.hidden)
                            .push_bind("pending")
                            .push_bind(e.enqueued_at)
                            .push_bind(e.replay_id)
                            .push_bind(e.replay_of);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(seqs)
            }

            /// Records webhook calls (a repeat of one already recorded changes nothing).
            async fn record_calls(
                tx: &mut sqlx::Transaction<'_, $db>,
                calls: &[$crate::store::queues::CallRow<'_>],
            ) -> $crate::store::Result<()> {
                for chunk in calls.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO delivery_attempts (queue_id, seq, at, outcome, duration_us, answer, signature) ",
                    );
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.queue_id)
                            .push_bind(c.seq)
                            .push_bind(c.at)
                            .push_bind(c.outcome)
                            .push_bind(c.duration_us)
                            .push_bind(&c.call.answer)
                            .push_bind(c.call.signature.as_ref().map($crate::store::sql::encode_json));
                    });
                    qb.push(" ON CONFLICT (queue_id, seq, at) DO NOTHING");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Appends events about queue entries, completed from each entry and its
            /// message (latency counts from receipt, or from queueing for replay copies).
            async fn entry_events(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::store::queues::EntryEvent<'_>],
            ) -> $crate::store::Result<()> {
                if !$crate::events::recording() {
                    return Ok(());
                }
                for chunk in events.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {} ({}) SELECT v.column3, v.column4, q.transaction_id, \
                         a.interface_id, COALESCE(m.sender_dip_id, ''), q.recipient_dip_id, q.queue_id, v.column5, \
                         v.column4 - COALESCE(m.received_at, q.enqueued_at), v.column6, \
                         CASE WHEN q.replay_id IS NULL THEN 0 ELSE 1 END FROM (",
                        self.events_table(),
                        $crate::store::outbox::EVENT_COLUMNS
                    ));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.queue_id)
                            .push_bind(e.seq)
                            .push_bind(e.kind.as_str())
                            .push_bind(e.at)
                            .push_bind(e.outcome)
                            .push_bind(e.duration_us);
                    });
                    qb.push(
                        ") AS v JOIN queue_entries q ON q.queue_id = v.column1 AND q.seq = v.column2 \
                         JOIN archive a ON a.transaction_id = q.transaction_id \
                         LEFT JOIN messages m ON m.transaction_id = q.transaction_id",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            fn queue_entry(r: &<$db as sqlx::Database>::Row) -> $crate::store::Result<$crate::store::QueueEntry> {
                use sqlx::Row;
                let hidden: String = r.get(5);
                Ok($crate::store::QueueEntry {
                    queue_id: r.get(0),
                    seq: r.get(1),
                    transaction_id: r.get(2),
                    recipient_dip_id: r.get(3),
                    recipient_role: r.get(4),
                    hidden: $crate::store::sql::decode_list(&hidden)?,
                    state: r.get(6),
                    enqueued_at: r.get(7),
                    attempts: r.get(8),
                    last_attempt_at: r.get(9),
                    last_outcome: r.get(10),
                    settled_at: r.get(11),
                    replay_id: r.get(12),
                    replay_of: r.get(13),
                })
            }
        }
    };
}

pub(super) use impl_queue_store;
