//! Replays: messages a recipient received, selected again and queued as `R-` copies,
//! within a per-recipient quota over a rolling window.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use super::messages::Delivery;

/// A message a recipient received, candidate for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCandidate {
    /// Original transaction id.
    pub transaction_id: String,
    /// Receipt time.
    pub received_at: i64,
    /// Recipient.
    pub recipient_dip_id: String,
    /// Role it received in.
    pub recipient_role: String,
    /// Pointers hidden from it.
    pub hidden: Vec<String>,
    /// Archived envelope.
    pub envelope: String,
}

/// A replayed copy to archive and queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCopy {
    /// `R-` transaction id.
    pub transaction_id: String,
    /// The message it copies.
    pub original_transaction_id: String,
    /// Channel.
    pub interface_id: String,
    /// Envelope with the replay `D0`.
    pub envelope: String,
    /// End of retention.
    pub retain_until: i64,
    /// Where it goes.
    pub delivery: Delivery,
}

/// A replay request as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayRecord {
    /// Replay id.
    pub id: String,
    /// Who asked (principal description).
    pub requested_by: String,
    /// Recipient the replay is for.
    pub recipient: String,
    /// Channel.
    pub interface_id: String,
    /// The request, JSON.
    pub request: String,
    /// Whether only counted.
    pub dry_run: bool,
    /// Messages selected.
    pub messages: i64,
    /// When.
    pub created_at: i64,
}

/// The per-recipient replay quota: at most `limit` messages replayed for one recipient
/// within any rolling `window`. Dry runs count nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayQuota {
    /// Most messages in the window.
    pub limit: i64,
    /// Length of the window, microseconds.
    pub window: i64,
}

/// How much of its replay quota a recipient has used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayUsage {
    /// Messages replayed for the recipient within the window.
    pub used: i64,
    /// When the replay asked about does not fit: when enough of `used` leaves the window
    /// for it to fit (microseconds), or `None` when it exceeds the whole quota. `None`
    /// when it fits.
    pub frees_at: Option<i64>,
}

/// Where a replay's copies are: waiting to join their queue, queued, or settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayProgress {
    /// Copies waiting to join the queue (paced, see `release_held`).
    pub held: i64,
    /// Copies in the queue, not yet settled.
    pub queued: i64,
    /// Copies the recipient took.
    pub delivered: i64,
    /// Copies the recipient refused (returned).
    pub returned: i64,
    /// Copies dead-lettered (and not redriven).
    pub dead_lettered: i64,
}

impl ReplayProgress {
    /// Copies in all.
    pub fn total(&self) -> i64 {
        self.held + self.queued + self.delivered + self.returned + self.dead_lettered
    }

    /// Whether every copy is settled.
    pub fn done(&self) -> bool {
        self.held == 0 && self.queued == 0
    }
}

/// What `record_replay` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayAdmission {
    /// Recorded, and the copies queued; the usage includes this replay.
    Recorded(ReplayUsage),
    /// Refused: the replay would exceed the quota; nothing was written.
    OverQuota(ReplayUsage),
}

/// Persistence of replays: what may be replayed, the record of each replay and its copies.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Messages of a channel received by the given recipients in `[from, to]`, in receipt
    /// order, at most `limit`.
    async fn replay_candidates(
        &self,
        interface_id: &str,
        recipients: &[String],
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<ReplayCandidate>>;
    /// The receipt time of message `transaction_id` if it is on channel `interface_id` and
    /// was queued for `recipient` as business traffic (not a replay copy); `None` when it
    /// does not exist, is on another channel or was not sent to the recipient, so that a
    /// replay cannot tell those apart nor learn about others' messages.
    async fn received_by(&self, transaction_id: &str, interface_id: &str, recipient: &str) -> Result<Option<i64>>;
    /// Records a replay and archives and holds its copies, in one transaction, if the
    /// recipient's quota over the window ending at `replay.created_at` has room for
    /// `replay.messages` more (a dry run is recorded whatever its size and uses none).
    /// The check and the write hold a per-recipient lock, so concurrent replays for one
    /// recipient cannot both pass it. The first `batch` copies join their queue at once
    /// (see `release_held`).
    async fn record_replay(
        &self,
        replay: &ReplayRecord,
        copies: &[ReplayCopy],
        quota: ReplayQuota,
        batch: i64,
    ) -> Result<ReplayAdmission>;
    /// Moves held replay copies to the tail of their queues, at most `batch` per queue
    /// and only where the last copy released before is settled (or none was): so a live
    /// message waits behind one batch of replay copies at most, and a replay drains as
    /// fast as its recipient answers. `queue_ids` limits the queues looked at (`None`:
    /// all). Returns the queues that took copies (their workers are woken on commit).
    async fn release_held(&self, queue_ids: Option<&[String]>, batch: i64, at: i64) -> Result<Vec<String>>;
    /// Where replay `replay_id`'s copies are.
    async fn replay_progress(&self, replay_id: &str) -> Result<ReplayProgress>;
    /// How many replay copies wait to join each queue that has any.
    async fn held_per_queue(&self) -> Result<Vec<(String, i64)>>;
    /// The recipient's use of `quota` over the window ending at `at`, and when `requested`
    /// more messages would fit. A reading only: `record_replay` decides.
    async fn replay_usage(&self, recipient: &str, quota: ReplayQuota, at: i64, requested: i64) -> Result<ReplayUsage>;
    /// Recorded replays, newest first.
    async fn replays(&self, limit: i64) -> Result<Vec<ReplayRecord>>;
}

/// When the oldest replays for recipient `$1` since `$2` that hold `$3` messages were made.
pub(super) const QUOTA_FREES_AT: &str = include_str!("replays/quota_frees_at.sql");

/// Implements [`ReplayStore`] for a store type with `lock_replays()`. Adds `quota_usage`;
/// uses `archive` (messages), `enqueue` (queues), `write_events` (outbox) and `finish`.
macro_rules! impl_replay_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::replays::ReplayStore for $store {
            async fn replay_candidates(
                &self,
                interface_id: &str,
                recipients: &[String],
                from: i64,
                to: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::ReplayCandidate>> {
                use sqlx::Row;
                if recipients.is_empty() {
                    return Ok(vec![]);
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT m.transaction_id, m.received_at, q.recipient_dip_id, q.recipient_role, q.hidden, a.envelope \
                     FROM messages m JOIN queue_entries q ON q.transaction_id = m.transaction_id \
                     JOIN archive a ON a.transaction_id = m.transaction_id \
                     WHERE q.replay_id IS NULL AND q.state <> 'redriven' AND m.interface_id = ",
                );
                qb.push_bind(interface_id)
                    .push(" AND m.received_at >= ")
                    .push_bind(from)
                    .push(" AND m.received_at <= ")
                    .push_bind(to)
                    .push(" AND q.recipient_dip_id IN (");
                let mut list = qb.separated(", ");
                for r in recipients.iter().take($crate::store::sql::CHUNK) {
                    list.push_bind(r);
                }
                qb.push(") ORDER BY m.received_at, m.transaction_id, q.recipient_dip_id LIMIT ")
                    .push_bind(limit.max(0));
                qb.build()
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        let hidden: String = r.get(4);
                        Ok($crate::store::ReplayCandidate {
                            transaction_id: r.get(0),
                            received_at: r.get(1),
                            recipient_dip_id: r.get(2),
                            recipient_role: r.get(3),
                            hidden: $crate::store::sql::decode_list(&hidden)?,
                            envelope: r.get(5),
                        })
                    })
                    .collect()
            }

            async fn received_by(
                &self,
                transaction_id: &str,
                interface_id: &str,
                recipient: &str,
            ) -> $crate::store::Result<Option<i64>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT m.received_at FROM messages m JOIN queue_entries q ON q.transaction_id = m.transaction_id \
                     WHERE m.transaction_id = $1 AND m.interface_id = $2 AND q.recipient_dip_id = $3 \
                     AND q.replay_id IS NULL LIMIT 1",
                )
                .bind(transaction_id)
                .bind(interface_id)
                .bind(recipient)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|r| r.get(0)))
            }

            async fn record_replay(
                &self,
                replay: &$crate::store::ReplayRecord,
                copies: &[$crate::store::ReplayCopy],
                quota: $crate::store::ReplayQuota,
                batch: i64,
            ) -> $crate::store::Result<$crate::store::ReplayAdmission> {
                let mut tx = self.writer().begin().await?;
                // Held until commit: a concurrent replay for the recipient reads the usage
                // only once this one is written (or refused).
                self.lock_replays(&mut tx, &replay.recipient).await?;
                let requested = if replay.dry_run { 0 } else { replay.messages };
                let usage = Self::quota_usage(&mut tx, &replay.recipient, quota, replay.created_at, requested).await?;
                if usage.used + requested > quota.limit {
                    tx.rollback().await?;
                    return Ok($crate::store::ReplayAdmission::OverQuota(usage));
                }
                sqlx::query(
                    "INSERT INTO replays (id, requested_by, recipient, interface_id, request, dry_run, messages, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&replay.id)
                .bind(&replay.requested_by)
                .bind(&replay.recipient)
                .bind(&replay.interface_id)
                .bind(&replay.request)
                .bind(replay.dry_run)
                .bind(replay.messages)
                .bind(replay.created_at)
                .execute(&mut *tx)
                .await?;
                let archived: Vec<$crate::store::messages::ArchiveRow<'_>> = copies
                    .iter()
                    .map(|c| $crate::store::messages::ArchiveRow {
                        transaction_id: &c.transaction_id,
                        interface_id: &c.interface_id,
                        received_at: replay.created_at,
                        retain_until: c.retain_until,
                        envelope: &c.envelope,
                    })
                    .collect();
                Self::archive(&mut tx, &archived).await?;
                for (chunk_no, chunk) in copies.chunks($crate::store::sql::CHUNK).enumerate() {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO replay_held (replay_id, ord, queue_id, transaction_id, recipient_dip_id, \
                         recipient_role, hidden, replay_of, held_at) ",
                    );
                    let first = chunk_no * $crate::store::sql::CHUNK;
                    qb.push_values(chunk.iter().enumerate(), |mut b, (i, c)| {
                        b.push_bind(&replay.id)
                            .push_bind(i64::try_from(first + i).unwrap_or(i64::MAX))
                            .push_bind(&c.delivery.queue_id)
                            .push_bind(&c.transaction_id)
                            .push_bind(&c.delivery.recipient_dip_id)
                            .push_bind(&c.delivery.recipient_role)
                            .push_bind($crate::store::sql::encode_list(&c.delivery.hidden))
                            .push_bind(&c.original_transaction_id)
                            .push_bind(replay.created_at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                let events: Vec<$crate::events::Event> = copies
                    .iter()
                    .map(|c| $crate::events::Event {
                        transaction_id: c.transaction_id.clone(),
                        interface_id: c.interface_id.clone(),
                        recipient_dip_id: c.delivery.recipient_dip_id.clone(),
                        queue_id: c.delivery.queue_id.clone(),
                        replay: true,
                        ..$crate::events::Event::new($crate::events::EventKind::Replayed, replay.created_at)
                    })
                    .collect();
                self.write_events(&mut tx, &events).await?;
                let mut queues: Vec<String> = copies.iter().map(|c| c.delivery.queue_id.clone()).collect();
                queues.sort();
                queues.dedup();
                let mut released = Vec::new();
                for q in &queues {
                    if Self::release_queue_held(&mut tx, q, batch, replay.created_at).await? {
                        released.push(q.clone());
                    }
                }
                self.finish(tx, released).await?;
                Ok($crate::store::ReplayAdmission::Recorded($crate::store::ReplayUsage {
                    used: usage.used + requested,
                    frees_at: None,
                }))
            }

            async fn release_held(
                &self,
                queue_ids: Option<&[String]>,
                batch: i64,
                at: i64,
            ) -> $crate::store::Result<Vec<String>> {
                use sqlx::Row;
                // A reading first: nearly always nothing is held, and then nothing is written.
                let held: Vec<String> = match queue_ids {
                    None => sqlx::query("SELECT DISTINCT queue_id FROM replay_held")
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect(),
                    Some(ids) => {
                        let mut out = Vec::new();
                        for q in ids {
                            if sqlx::query("SELECT 1 FROM replay_held WHERE queue_id = $1 LIMIT 1")
                                .bind(q)
                                .fetch_optional(self.reader())
                                .await?
                                .is_some()
                            {
                                out.push(q.clone());
                            }
                        }
                        out
                    }
                };
                let mut released = Vec::new();
                for q in held {
                    let mut tx = self.writer().begin().await?;
                    if Self::release_queue_held(&mut tx, &q, batch, at).await? {
                        self.finish(tx, vec![q.clone()]).await?;
                        released.push(q);
                    } else {
                        tx.commit().await?;
                    }
                }
                Ok(released)
            }

            async fn replay_progress(&self, replay_id: &str) -> $crate::store::Result<$crate::store::ReplayProgress> {
                use sqlx::Row;
                let mut p = $crate::store::ReplayProgress::default();
                for r in sqlx::query(
                    "SELECT state, COUNT(*) FROM queue_entries WHERE replay_id = $1 GROUP BY state",
                )
                .bind(replay_id)
                .fetch_all(self.reader())
                .await?
                {
                    let state: String = r.get(0);
                    let n: i64 = r.get(1);
                    match state.as_str() {
                        "pending" => p.queued += n,
                        "delivered" => p.delivered += n,
                        "returned" => p.returned += n,
                        "dead" => p.dead_lettered += n,
                        // A redriven entry lives on as the new entry it became.
                        _ => {}
                    }
                }
                p.held = sqlx::query("SELECT COUNT(*) FROM replay_held WHERE replay_id = $1")
                    .bind(replay_id)
                    .fetch_one(self.reader())
                    .await?
                    .get(0);
                Ok(p)
            }

            async fn held_per_queue(&self) -> $crate::store::Result<Vec<(String, i64)>> {
                use sqlx::Row;
                Ok(sqlx::query("SELECT queue_id, COUNT(*) FROM replay_held GROUP BY queue_id")
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            }

            async fn replay_usage(
                &self,
                recipient: &str,
                quota: $crate::store::ReplayQuota,
                at: i64,
                requested: i64,
            ) -> $crate::store::Result<$crate::store::ReplayUsage> {
                let mut tx = self.reader().begin().await?;
                let usage = Self::quota_usage(&mut tx, recipient, quota, at, requested).await?;
                tx.commit().await?;
                Ok(usage)
            }

            async fn replays(&self, limit: i64) -> $crate::store::Result<Vec<$crate::store::ReplayRecord>> {
                use sqlx::Row;
                Ok(sqlx::query(
                    "SELECT id, requested_by, recipient, interface_id, request, dry_run, messages, created_at \
                     FROM replays ORDER BY created_at DESC, id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(|r| $crate::store::ReplayRecord {
                    id: r.get(0),
                    requested_by: r.get(1),
                    recipient: r.get(2),
                    interface_id: r.get(3),
                    request: r.get(4),
                    dry_run: r.get(5),
                    messages: r.get(6),
                    created_at: r.get(7),
                })
                .collect())
            }
        }

        impl $store {
            /// Releases the next batch of queue `queue_id`'s held replay copies to its tail
            /// if the last copy released before is settled; whether any was released.
            async fn release_queue_held(
                tx: &mut sqlx::Transaction<'_, $db>,
                queue_id: &str,
                batch: i64,
                at: i64,
            ) -> $crate::store::Result<bool> {
                use sqlx::Row;
                // Taking the queue's pacing row serialises releases across nodes.
                let tail: i64 = sqlx::query(
                    "INSERT INTO replay_pacing (queue_id, tail_seq) VALUES ($1, 0) \
                     ON CONFLICT (queue_id) DO UPDATE SET tail_seq = replay_pacing.tail_seq RETURNING tail_seq",
                )
                .bind(queue_id)
                .fetch_one(&mut **tx)
                .await?
                .get(0);
                if tail > 0 {
                    let state: Option<String> =
                        sqlx::query("SELECT state FROM queue_entries WHERE queue_id = $1 AND seq = $2")
                            .bind(queue_id)
                            .bind(tail)
                            .fetch_optional(&mut **tx)
                            .await?
                            .map(|r| r.get(0));
                    if state.as_deref() == Some("pending") {
                        return Ok(false);
                    }
                }
                let rows = sqlx::query(
                    "SELECT replay_id, ord, transaction_id, recipient_dip_id, recipient_role, hidden, replay_of \
                     FROM replay_held WHERE queue_id = $1 ORDER BY held_at, replay_id, ord LIMIT $2",
                )
                .bind(queue_id)
                .bind(batch.max(1))
                .fetch_all(&mut **tx)
                .await?;
                if rows.is_empty() {
                    return Ok(false);
                }
                #[allow(clippy::type_complexity)]
                let held: Vec<(String, i64, String, String, String, String, String)> = rows
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
                    .collect();
                // Each replay's copies are contiguous in `ord`: one delete per replay.
                let mut spans: Vec<(&str, i64, i64)> = Vec::new();
                for h in &held {
                    match spans.last_mut() {
                        Some(s) if s.0 == h.0 => s.2 = h.1,
                        _ => spans.push((&h.0, h.1, h.1)),
                    }
                }
                for (replay, first, last) in spans {
                    sqlx::query("DELETE FROM replay_held WHERE replay_id = $1 AND ord >= $2 AND ord <= $3")
                        .bind(replay)
                        .bind(first)
                        .bind(last)
                        .execute(&mut **tx)
                        .await?;
                }
                let entries: Vec<$crate::store::queues::NewEntry<'_>> = held
                    .iter()
                    .map(|h| $crate::store::queues::NewEntry {
                        queue_id,
                        transaction_id: &h.2,
                        recipient_dip_id: &h.3,
                        recipient_role: &h.4,
                        hidden: h.5.clone(),
                        enqueued_at: at,
                        replay_id: Some(&h.0),
                        replay_of: Some(&h.6),
                    })
                    .collect();
                let seqs = Self::enqueue(tx, &entries).await?;
                let last = seqs.iter().copied().max().unwrap_or(tail);
                sqlx::query("UPDATE replay_pacing SET tail_seq = $2 WHERE queue_id = $1")
                    .bind(queue_id)
                    .bind(last)
                    .execute(&mut **tx)
                    .await?;
                Ok(true)
            }

            /// The recipient's replay quota use over the window ending at `at`, and when
            /// `requested` more messages would fit.
            async fn quota_usage(
                tx: &mut sqlx::Transaction<'_, $db>,
                recipient: &str,
                quota: $crate::store::ReplayQuota,
                at: i64,
                requested: i64,
            ) -> $crate::store::Result<$crate::store::ReplayUsage> {
                use sqlx::Row;
                let since = at.saturating_sub(quota.window);
                // PostgreSQL sums BIGINT to NUMERIC; the casts keep both databases at BIGINT.
                let used: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(messages), 0) AS BIGINT) FROM replays \
                     WHERE recipient = $1 AND NOT dry_run AND created_at > $2",
                )
                .bind(recipient)
                .bind(since)
                .fetch_one(&mut **tx)
                .await?
                .get(0);
                let excess = used.saturating_add(requested).saturating_sub(quota.limit);
                if excess <= 0 || requested > quota.limit {
                    return Ok($crate::store::ReplayUsage { used, frees_at: None });
                }
                // The replay fits once the oldest replays holding `excess` messages have
                // left the window: the first whose running total reaches it.
                let oldest: Option<i64> = sqlx::query($crate::store::replays::QUOTA_FREES_AT)
                    .bind(recipient)
                    .bind(since)
                    .bind(excess)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|r| r.get(0));
                Ok($crate::store::ReplayUsage {
                    used,
                    frees_at: oldest.map(|t| t.saturating_add(quota.window)),
                })
            }
        }
    };
}

pub(super) use impl_replay_store;
