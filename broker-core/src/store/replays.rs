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
    /// Records a replay and archives and queues its copies, in one transaction, if the
    /// recipient's quota over the window ending at `replay.created_at` has room for
    /// `replay.messages` more (a dry run is recorded whatever its size and uses none).
    /// The check and the write hold a per-recipient lock, so concurrent replays for one
    /// recipient cannot both pass it.
    async fn record_replay(
        &self,
        replay: &ReplayRecord,
        copies: &[ReplayCopy],
        quota: ReplayQuota,
    ) -> Result<ReplayAdmission>;
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
                let entries: Vec<$crate::store::queues::NewEntry<'_>> = copies
                    .iter()
                    .map(|c| $crate::store::queues::NewEntry {
                        queue_id: &c.delivery.queue_id,
                        transaction_id: &c.transaction_id,
                        recipient_dip_id: &c.delivery.recipient_dip_id,
                        recipient_role: &c.delivery.recipient_role,
                        hidden: $crate::store::sql::encode_list(&c.delivery.hidden),
                        enqueued_at: replay.created_at,
                        replay_id: Some(&replay.id),
                        replay_of: Some(&c.original_transaction_id),
                    })
                    .collect();
                Self::enqueue(&mut tx, &entries).await?;
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
                Self::write_events(&mut tx, &events).await?;
                let mut queues: Vec<String> = copies.iter().map(|c| c.delivery.queue_id.clone()).collect();
                queues.sort();
                queues.dedup();
                drop(entries);
                self.finish(tx, queues).await?;
                Ok($crate::store::ReplayAdmission::Recorded($crate::store::ReplayUsage {
                    used: usage.used + requested,
                    frees_at: None,
                }))
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
