//! Accepted messages: a batch committed with everything that belongs to each message
//! (archive copy, routing decision, queue entries, appointment changes and lifecycle
//! events) in one transaction, idempotently per sender reference; and messages read back.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use crate::model::Appointment;

/// One recipient queue entry to create for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The recipient's logical queue (endpoint id).
    pub queue_id: String,
    /// Recipient DIP ID.
    pub recipient_dip_id: String,
    /// Role in which the recipient receives the message (drives obfuscation).
    pub recipient_role: String,
    /// JSON pointers removed from the payload for this recipient.
    pub hidden: Vec<String>,
}

/// An accepted message ready to be committed with everything that belongs to it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Time-ordered transaction id.
    pub transaction_id: String,
    /// Sender DIP ID (idempotency key, with the reference).
    pub sender_dip_id: String,
    /// Sender's unique reference.
    pub sender_unique_reference: String,
    /// SHA-256 of the canonical payload, to tell a retry from a reused reference.
    pub content_hash: String,
    /// Channel.
    pub interface_id: String,
    /// Schema version.
    pub schema_version: String,
    /// Event code (first when several).
    pub event_code: String,
    /// Sender role.
    pub sender_role: String,
    /// DCP that submitted it.
    pub dcp_dip_id: Option<String>,
    /// MPAN core.
    pub mpan: Option<String>,
    /// Workflow correlation id.
    pub correlation_id: Option<String>,
    /// Receipt time, microseconds since the epoch.
    pub received_at: i64,
    /// End of archive retention, microseconds since the epoch.
    pub retain_until: i64,
    /// The routing decision, JSON.
    pub routing: String,
    /// The archived envelope (payload with `D0`), JSON.
    pub envelope: String,
    /// Queue entries to create.
    pub deliveries: Vec<Delivery>,
    /// MPAN appointment changes the message carries (registration channels).
    pub appointments: Vec<Appointment>,
}

/// What committing one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored and queued.
    Accepted,
    /// The sender's reference was already used; nothing was written.
    Duplicate {
        /// The original transaction id.
        transaction_id: String,
        /// The original correlation id.
        correlation_id: Option<String>,
        /// The original content hash.
        content_hash: String,
    },
}

/// The stored original of a sender's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// Its transaction id.
    pub transaction_id: String,
    /// Its correlation id.
    pub correlation_id: Option<String>,
    /// Its content hash.
    pub content_hash: String,
}

/// A stored message's operational record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageRecord {
    /// Transaction id.
    pub transaction_id: String,
    /// Sender.
    pub sender_dip_id: String,
    /// Sender's reference.
    pub sender_unique_reference: String,
    /// Channel.
    pub interface_id: String,
    /// Schema version.
    pub schema_version: String,
    /// Event code.
    pub event_code: String,
    /// Sender role.
    pub sender_role: String,
    /// Submitting DCP.
    pub dcp_dip_id: Option<String>,
    /// MPAN core.
    pub mpan: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Receipt time, microseconds since the epoch.
    pub received_at: i64,
    /// Routing decision, JSON.
    pub routing: String,
}

/// Persistence of accepted messages and their archived envelopes.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Commits a batch of accepted messages in one transaction: message, archive copy,
    /// routing decision, queue entries and appointment changes, or none of it. Outcomes
    /// are in the order of `batch`; an item whose sender reference is already stored (or
    /// appears earlier in the batch) is a duplicate and writes nothing.
    async fn commit_messages(&self, batch: &[NewMessage]) -> Result<Vec<CommitOutcome>>;
    /// The message stored for a sender's reference, if any.
    async fn original(&self, sender_dip_id: &str, reference: &str) -> Result<Option<Original>>;
    /// A message's operational record.
    async fn message(&self, transaction_id: &str) -> Result<Option<MessageRecord>>;
    /// A message's archived envelope.
    async fn archived_envelope(&self, transaction_id: &str) -> Result<Option<String>>;
}

/// The stored original of a (sender, reference) key.
pub(super) const ORIGINAL: &str = "SELECT transaction_id, correlation_id, content_hash FROM messages \
     WHERE sender_dip_id = $1 AND sender_unique_reference = $2";

/// An archive row to create.
pub(super) struct ArchiveRow<'a> {
    pub transaction_id: &'a str,
    pub interface_id: &'a str,
    pub received_at: i64,
    pub retain_until: i64,
    pub envelope: &'a str,
}

impl<'a> From<&'a NewMessage> for ArchiveRow<'a> {
    fn from(m: &'a NewMessage) -> Self {
        Self {
            transaction_id: &m.transaction_id,
            interface_id: &m.interface_id,
            received_at: m.received_at,
            retain_until: m.retain_until,
            envelope: &m.envelope,
        }
    }
}

/// Implements [`MessageStore`]. Adds `insert_messages` (settling commits the reports it
/// causes with it) and `archive` (replays archive their copies with it); uses `enqueue`
/// (queues), `upsert_appointments` (directory), `write_events` (outbox) and `finish`.
macro_rules! impl_message_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::messages::MessageStore for $store {
            async fn commit_messages(
                &self,
                batch: &[$crate::store::NewMessage],
            ) -> $crate::store::Result<Vec<$crate::store::CommitOutcome>> {
                let mut tx = self.writer().begin().await?;
                let (outcomes, queues) = Self::insert_messages(&mut tx, batch).await?;
                self.finish(tx, queues).await?;
                Ok(outcomes)
            }

            async fn original(
                &self,
                sender_dip_id: &str,
                reference: &str,
            ) -> $crate::store::Result<Option<$crate::store::Original>> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::messages::ORIGINAL)
                    .bind(sender_dip_id)
                    .bind(reference)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|r| $crate::store::Original {
                    transaction_id: r.get(0),
                    correlation_id: r.get(1),
                    content_hash: r.get(2),
                }))
            }

            async fn message(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Option<$crate::store::MessageRecord>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT transaction_id, sender_dip_id, sender_unique_reference, interface_id, \
                     schema_version, event_code, sender_role, dcp_dip_id, mpan, correlation_id, \
                     received_at, routing FROM messages WHERE transaction_id = $1",
                )
                .bind(transaction_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|r| $crate::store::MessageRecord {
                    transaction_id: r.get(0),
                    sender_dip_id: r.get(1),
                    sender_unique_reference: r.get(2),
                    interface_id: r.get(3),
                    schema_version: r.get(4),
                    event_code: r.get(5),
                    sender_role: r.get(6),
                    dcp_dip_id: r.get(7),
                    mpan: r.get(8),
                    correlation_id: r.get(9),
                    received_at: r.get(10),
                    routing: r.get(11),
                }))
            }

            async fn archived_envelope(&self, transaction_id: &str) -> $crate::store::Result<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT envelope FROM archive WHERE transaction_id = $1")
                        .bind(transaction_id)
                        .fetch_optional(self.reader())
                        .await?,
                )
            }
        }

        impl $store {
            /// Inserts messages with their archive copies, queue entries and appointment
            /// changes; returns the outcomes and the queues that received entries.
            async fn insert_messages(
                tx: &mut sqlx::Transaction<'_, $db>,
                batch: &[$crate::store::NewMessage],
            ) -> $crate::store::Result<(Vec<$crate::store::CommitOutcome>, Vec<String>)> {
                use sqlx::Row;
                use std::collections::{HashMap, HashSet};
                use $crate::store::CommitOutcome;

                // First occurrence of each idempotency key; later ones are duplicates of it.
                let mut first: HashMap<(&str, &str), usize> = HashMap::new();
                let mut unique: Vec<usize> = Vec::new();
                for (i, m) in batch.iter().enumerate() {
                    let key = (m.sender_dip_id.as_str(), m.sender_unique_reference.as_str());
                    if !first.contains_key(&key) {
                        first.insert(key, i);
                        unique.push(i);
                    }
                }
                // Keys in one order in every transaction, so concurrent writers never deadlock.
                unique.sort_by(|&a, &b| {
                    (&batch[a].sender_dip_id, &batch[a].sender_unique_reference)
                        .cmp(&(&batch[b].sender_dip_id, &batch[b].sender_unique_reference))
                });

                let mut inserted: HashSet<String> = HashSet::new();
                for chunk in unique.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO messages (transaction_id, sender_dip_id, sender_unique_reference, \
                         content_hash, interface_id, schema_version, event_code, sender_role, dcp_dip_id, \
                         mpan, correlation_id, received_at, routing) ",
                    );
                    qb.push_values(chunk, |mut b, &i| {
                        let m = &batch[i];
                        b.push_bind(&m.transaction_id)
                            .push_bind(&m.sender_dip_id)
                            .push_bind(&m.sender_unique_reference)
                            .push_bind(&m.content_hash)
                            .push_bind(&m.interface_id)
                            .push_bind(&m.schema_version)
                            .push_bind(&m.event_code)
                            .push_bind(&m.sender_role)
                            .push_bind(&m.dcp_dip_id)
                            .push_bind(&m.mpan)
                            .push_bind(&m.correlation_id)
                            .push_bind(m.received_at)
                            .push_bind(&m.routing);
                    });
                    qb.push(
                        " ON CONFLICT (sender_dip_id, sender_unique_reference) DO NOTHING \
                         RETURNING transaction_id",
                    );
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        inserted.insert(r.get(0));
                    }
                }

                let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; batch.len()];
                for &i in &unique {
                    let m = &batch[i];
                    if inserted.contains(&m.transaction_id) {
                        outcomes[i] = Some(CommitOutcome::Accepted);
                        continue;
                    }
                    let r = sqlx::query($crate::store::messages::ORIGINAL)
                        .bind(&m.sender_dip_id)
                        .bind(&m.sender_unique_reference)
                        .fetch_one(&mut **tx)
                        .await?;
                    outcomes[i] = Some(CommitOutcome::Duplicate {
                        transaction_id: r.get(0),
                        correlation_id: r.get(1),
                        content_hash: r.get(2),
                    });
                }
                // Items repeating a key earlier in the batch duplicate that item.
                for (i, m) in batch.iter().enumerate() {
                    if outcomes[i].is_some() {
                        continue;
                    }
                    let f = first[&(m.sender_dip_id.as_str(), m.sender_unique_reference.as_str())];
                    outcomes[i] = Some(match &outcomes[f] {
                        Some(CommitOutcome::Accepted) => CommitOutcome::Duplicate {
                            transaction_id: batch[f].transaction_id.clone(),
                            correlation_id: batch[f].correlation_id.clone(),
                            content_hash: batch[f].content_hash.clone(),
                        },
                        other => other.clone().expect("first occurrence decided above"),
                    });
                }

                // Accepted messages in receipt (transaction id) order: that is their queue order.
                let mut accepted: Vec<&$crate::store::NewMessage> = batch
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| matches!(o, Some(CommitOutcome::Accepted)))
                    .map(|(m, _)| m)
                    .collect();
                accepted.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id));

                let archived: Vec<$crate::store::messages::ArchiveRow<'_>> = accepted
                    .iter()
                    .map(|m| $crate::store::messages::ArchiveRow::from(*m))
                    .collect();
                Self::archive(tx, &archived).await?;
                let entries: Vec<$crate::store::queues::NewEntry<'_>> = accepted
                    .iter()
                    .flat_map(|m| {
                        m.deliveries.iter().map(move |d| $crate::store::queues::NewEntry {
                            queue_id: &d.queue_id,
                            transaction_id: &m.transaction_id,
                            recipient_dip_id: &d.recipient_dip_id,
                            recipient_role: &d.recipient_role,
                            hidden: $crate::store::sql::encode_list(&d.hidden),
                            enqueued_at: m.received_at,
                            replay_id: None,
                        })
                    })
                    .collect();
                Self::enqueue(tx, &entries).await?;
                let appointments: Vec<$crate::model::Appointment> = accepted
                    .iter()
                    .flat_map(|m| m.appointments.iter().cloned())
                    .collect();
                Self::upsert_appointments(tx, &appointments).await?;
                let queued_at = $crate::clock::now_micros();
                let mut events = Vec::with_capacity(accepted.len() + entries.len());
                for m in &accepted {
                    let message = $crate::events::Event {
                        transaction_id: m.transaction_id.clone(),
                        interface_id: m.interface_id.clone(),
                        sender_dip_id: m.sender_dip_id.clone(),
                        ..$crate::events::Event::new($crate::events::EventKind::Received, m.received_at)
                    };
                    for d in &m.deliveries {
                        events.push($crate::events::Event {
                            kind: $crate::events::EventKind::Routed,
                            at: queued_at,
                            recipient_dip_id: d.recipient_dip_id.clone(),
                            queue_id: d.queue_id.clone(),
                            latency_us: queued_at - m.received_at,
                            ..message.clone()
                        });
                    }
                    events.push(message);
                }
                Self::write_events(tx, &events).await?;
                let mut queues: Vec<String> = entries.iter().map(|e| e.queue_id.to_owned()).collect();
                queues.sort();
                queues.dedup();
                Ok((
                    outcomes
                        .into_iter()
                        .map(|o| o.expect("every outcome decided"))
                        .collect(),
                    queues,
                ))
            }

            async fn archive(
                tx: &mut sqlx::Transaction<'_, $db>,
                rows: &[$crate::store::messages::ArchiveRow<'_>],
            ) -> $crate::store::Result<()> {
                for chunk in rows.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO archive (transaction_id, interface_id, received_at, retain_until, envelope) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.transaction_id)
                            .push_bind(r.interface_id)
                            .push_bind(r.received_at)
                            .push_bind(r.retain_until)
                            .push_bind(r.envelope);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }
        }
    };
}

pub(super) use impl_message_store;
