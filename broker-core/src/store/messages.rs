//! Accepted messages: a batch committed with everything that belongs to each message
//! (archive copy, routing decision, queue entries, appointment changes and lifecycle
//! events) in one transaction, idempotently per sender reference; and messages read back.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use crate::model::Appointment;
use crate::security::signature::SignatureRecord;

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
    /// The verified X-DIP signature of the request that carried it (`None`: unsigned).
    pub receipt_signature: Option<SignatureRecord>,
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

/// The state of a message's recipient copies that a search asks for, as the audit trail
/// names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// Accepted: every message (the filter is off).
    Accepted,
    /// A copy waits for its first attempt.
    Queued,
    /// A copy waits after failed attempts.
    Retrying,
    /// A copy was delivered.
    Delivered,
    /// A copy was refused by its recipient and returned to the sender.
    Returned,
    /// A copy went stale and was dead-lettered (and not redriven since).
    DeadLettered,
    /// A copy was replayed to its recipient.
    Replayed,
}

impl CopyState {
    /// Every state, in the order of a message's life.
    pub const ALL: [CopyState; 7] = [
        Self::Accepted,
        Self::Queued,
        Self::Retrying,
        Self::Delivered,
        Self::Returned,
        Self::DeadLettered,
        Self::Replayed,
    ];

    /// The form in URLs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Returned => "returned",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
        }
    }

    /// The state written `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The condition on a queue entry `q` (of the message, or a replay copy of it).
    pub(crate) fn condition(self) -> &'static str {
        match self {
            Self::Accepted => "1 = 1",
            Self::Queued => "q.state = 'pending' AND q.attempts = 0",
            Self::Retrying => "q.state = 'pending' AND q.attempts > 0",
            Self::Delivered => "q.state = 'delivered'",
            Self::Returned => "q.state = 'returned'",
            Self::DeadLettered => "q.state = 'dead'",
            Self::Replayed => "1 = 1",
        }
    }
}

/// How search results are ordered (then newest first, by transaction id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageOrder {
    /// By time of receipt.
    #[default]
    Received,
    /// By sender.
    Sender,
    /// By channel.
    Channel,
}

/// A message search: every filter that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Any of transaction id, sender reference, correlation id or MPAN (a search box).
    pub any_id: Option<String>,
    /// Transaction id.
    pub transaction_id: Option<String>,
    /// Sender's unique reference.
    pub sender_reference: Option<String>,
    /// Workflow correlation id (`initialCorrelationID`).
    pub correlation_id: Option<String>,
    /// MPAN core.
    pub mpan: Option<String>,
    /// Channel.
    pub interface_id: Option<String>,
    /// Sender DIP ID.
    pub sender_dip_id: Option<String>,
    /// A recipient's DIP ID: messages queued for it.
    pub recipient_dip_id: Option<String>,
    /// Messages with a copy in this state (among the copies the viewer may see).
    pub state: Option<CopyState>,
    /// Received at or after, microseconds since the epoch.
    pub received_from: Option<i64>,
    /// Received before, microseconds since the epoch.
    pub received_to: Option<i64>,
    /// Received within one of these `[from, to)` spans (a participant's appointments to
    /// an MPAN); `None`: any time. An empty list matches nothing.
    pub received_within: Option<Vec<(i64, i64)>>,
    /// Row-level access: `None` for everything; otherwise only messages one of these
    /// participants sent (itself or as the DCP) or received, and for a message it only
    /// received, only its own copies count for `state`.
    pub visible_to: Option<Vec<String>>,
    /// Order of results.
    pub order: MessageOrder,
    /// Ascending instead of descending.
    pub ascending: bool,
    /// Results skipped.
    pub offset: i64,
    /// Most results returned.
    pub limit: i64,
}

/// Most matches a search counts; beyond it the count says "more than".
pub const SEARCH_COUNT_CAP: i64 = 10_000;

/// The question of a sender report (spec 5.11.3, Figure 16): what became of the messages
/// one sender had accepted in a period.
#[derive(Debug, Clone, Default)]
pub struct SenderQuery {
    /// Sender DIP ID.
    pub sender_dip_id: String,
    /// Only these channels (any when empty).
    pub interface_ids: Vec<String>,
    /// Received at or after, microseconds since the epoch.
    pub received_from: i64,
    /// Received before, microseconds since the epoch.
    pub received_to: i64,
}

/// How many of a sender's messages on one channel are in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderOutcome {
    /// Channel.
    pub interface_id: String,
    /// [`CopyState::Accepted`]: the messages themselves; otherwise their recipient copies
    /// in that state now (a redriven dead letter counts as its new entry; replay copies
    /// are not counted).
    pub state: CopyState,
    /// Copies in the state (for `Accepted`: messages).
    pub copies: i64,
    /// Messages with a copy in the state: what a search for the state finds.
    pub messages: i64,
}

/// The copy states a sender report counts, each copy in exactly one of them.
pub(super) const SENDER_STATES: [CopyState; 5] = [
    CopyState::Queued,
    CopyState::Retrying,
    CopyState::Delivered,
    CopyState::Returned,
    CopyState::DeadLettered,
];

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
    /// The verified X-DIP signature of the request that carried a message; `None` when it
    /// was unsigned or is unknown.
    async fn receipt_signature(&self, transaction_id: &str) -> Result<Option<SignatureRecord>>;
    /// Messages matching a search, and how many match (counted up to
    /// [`SEARCH_COUNT_CAP`] + 1, so a count above the cap means "more than").
    async fn search_messages(&self, query: &MessageQuery) -> Result<(Vec<MessageRecord>, i64)>;
    /// A sender's messages received in a period, per channel: how many were accepted, and
    /// how many of their copies (and of the messages) are in each state now.
    async fn sender_outcomes(&self, query: &SenderQuery) -> Result<Vec<SenderOutcome>>;
}

/// The columns of a [`MessageRecord`], in the order `message_record` reads them.
pub(super) const MESSAGE_COLUMNS: &str = "m.transaction_id, m.sender_dip_id, m.sender_unique_reference, \
     m.interface_id, m.schema_version, m.event_code, m.sender_role, m.dcp_dip_id, m.mpan, m.correlation_id, \
     m.received_at, m.routing";

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
                let (outcomes, queues) = self.insert_messages(&mut tx, batch).await?;
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
                let row = sqlx::query(&format!(
                    "SELECT {} FROM messages m WHERE m.transaction_id = $1",
                    $crate::store::messages::MESSAGE_COLUMNS
                ))
                .bind(transaction_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.as_ref().map(Self::message_record))
            }

            async fn search_messages(
                &self,
                query: &$crate::store::MessageQuery,
            ) -> $crate::store::Result<(Vec<$crate::store::MessageRecord>, i64)> {
                use $crate::store::{CopyState, MessageOrder};
                let q = query;
                // Everything after FROM: the filters, with the viewer's row-level access.
                let filtered = |qb: &mut sqlx::QueryBuilder<'_, $db>| {
                    qb.push(" FROM messages m WHERE 1 = 1");
                    let exact = [
                        ("m.transaction_id", &q.transaction_id),
                        ("m.sender_unique_reference", &q.sender_reference),
                        ("m.correlation_id", &q.correlation_id),
                        ("m.mpan", &q.mpan),
                        ("m.interface_id", &q.interface_id),
                        ("m.sender_dip_id", &q.sender_dip_id),
                    ];
                    for (column, value) in exact {
                        if let Some(v) = value {
                            qb.push(format!(" AND {column} = ")).push_bind(v.clone());
                        }
                    }
                    if let Some(v) = &q.any_id {
                        qb.push(" AND (m.transaction_id = ")
                            .push_bind(v.clone())
                            .push(" OR m.sender_unique_reference = ")
                            .push_bind(v.clone())
                            .push(" OR m.correlation_id = ")
                            .push_bind(v.clone())
                            .push(" OR m.mpan = ")
                            .push_bind(v.clone())
                            .push(")");
                    }
                    if let Some(from) = q.received_from {
                        qb.push(" AND m.received_at >= ").push_bind(from);
                    }
                    if let Some(to) = q.received_to {
                        qb.push(" AND m.received_at < ").push_bind(to);
                    }
                    if let Some(spans) = &q.received_within {
                        qb.push(" AND (1 = 0");
                        for (from, to) in spans {
                            qb.push(" OR (m.received_at >= ")
                                .push_bind(*from)
                                .push(" AND m.received_at < ")
                                .push_bind(*to)
                                .push(")");
                        }
                        qb.push(")");
                    }
                    let in_list = |qb: &mut sqlx::QueryBuilder<'_, $db>, ids: &[String]| {
                        qb.push(" IN (");
                        let mut list = qb.separated(", ");
                        for id in ids {
                            list.push_bind(id.clone());
                        }
                        list.push_unseparated(")");
                    };
                    // The viewer sent it (or submitted it as the DCP): every copy counts.
                    let sent_by = |qb: &mut sqlx::QueryBuilder<'_, $db>, ids: &[String]| {
                        qb.push("(m.sender_dip_id");
                        in_list(qb, ids);
                        qb.push(" OR m.dcp_dip_id");
                        in_list(qb, ids);
                        qb.push(")");
                    };
                    if let Some(ids) = &q.visible_to {
                        qb.push(" AND (");
                        sent_by(qb, ids);
                        qb.push(
                            " OR EXISTS (SELECT 1 FROM queue_entries q WHERE q.transaction_id = m.transaction_id \
                             AND q.recipient_dip_id",
                        );
                        in_list(qb, ids);
                        qb.push("))");
                    }
                    if let Some(r) = &q.recipient_dip_id {
                        qb.push(
                            " AND EXISTS (SELECT 1 FROM queue_entries q WHERE q.transaction_id = m.transaction_id \
                             AND q.recipient_dip_id = ",
                        )
                        .push_bind(r.clone())
                        .push(")");
                    }
                    if let Some(state) = q.state.filter(|s| *s != CopyState::Accepted) {
                        let link = if state == CopyState::Replayed {
                            "q.replay_of"
                        } else {
                            "q.transaction_id"
                        };
                        qb.push(format!(
                            " AND EXISTS (SELECT 1 FROM queue_entries q WHERE {link} = m.transaction_id AND {}",
                            state.condition()
                        ));
                        if let Some(ids) = &q.visible_to {
                            qb.push(" AND (");
                            sent_by(qb, ids);
                            qb.push(" OR q.recipient_dip_id");
                            in_list(qb, ids);
                            qb.push(")");
                        }
                        qb.push(")");
                    }
                };
                let mut count = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM (SELECT 1");
                filtered(&mut count);
                count
                    .push(" LIMIT ")
                    .push_bind($crate::store::messages::SEARCH_COUNT_CAP + 1)
                    .push(") AS matching");
                let total: i64 = count.build_query_scalar().fetch_one(self.reader()).await?;

                let mut rows =
                    sqlx::QueryBuilder::<$db>::new(format!("SELECT {}", $crate::store::messages::MESSAGE_COLUMNS));
                filtered(&mut rows);
                let dir = if q.ascending { "ASC" } else { "DESC" };
                let first = match q.order {
                    MessageOrder::Received => String::new(),
                    MessageOrder::Sender => format!("m.sender_dip_id {dir}, "),
                    MessageOrder::Channel => format!("m.interface_id {dir}, "),
                };
                let time = if q.order == MessageOrder::Received {
                    dir
                } else {
                    "DESC"
                };
                rows.push(format!(
                    " ORDER BY {first}m.received_at {time}, m.transaction_id {time} LIMIT "
                ))
                .push_bind(q.limit.clamp(0, 10_000))
                .push(" OFFSET ")
                .push_bind(q.offset.max(0));
                let found = rows
                    .build()
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(Self::message_record)
                    .collect();
                Ok((found, total))
            }

            async fn sender_outcomes(
                &self,
                query: &$crate::store::SenderQuery,
            ) -> $crate::store::Result<Vec<$crate::store::SenderOutcome>> {
                use sqlx::Row;
                use $crate::store::CopyState;
                // The sender's messages of the period (and channels): the sender and time
                // first, which `messages_sender_received` covers.
                let filter = |qb: &mut sqlx::QueryBuilder<'_, $db>| {
                    qb.push(" WHERE m.sender_dip_id = ")
                        .push_bind(query.sender_dip_id.clone())
                        .push(" AND m.received_at >= ")
                        .push_bind(query.received_from)
                        .push(" AND m.received_at < ")
                        .push_bind(query.received_to);
                    if !query.interface_ids.is_empty() {
                        qb.push(" AND m.interface_id IN (");
                        let mut list = qb.separated(", ");
                        for id in &query.interface_ids {
                            list.push_bind(id.clone());
                        }
                        list.push_unseparated(")");
                    }
                };
                // Each copy in the one state a search would find it in (a redriven dead
                // letter's old entry in none: its new entry stands for it).
                let state = $crate::store::messages::SENDER_STATES
                    .iter()
                    .map(|s| format!("WHEN {} THEN '{}'", s.condition(), s.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT m.interface_id, '{}', COUNT(*), COUNT(*) FROM messages m",
                    CopyState::Accepted.as_str()
                ));
                filter(&mut qb);
                qb.push(format!(
                    " GROUP BY m.interface_id UNION ALL SELECT m.interface_id, CASE {state} END, COUNT(*), \
                     COUNT(DISTINCT m.transaction_id) FROM messages m \
                     JOIN queue_entries q ON q.transaction_id = m.transaction_id"
                ));
                filter(&mut qb);
                qb.push(" GROUP BY 1, 2");
                let rows = qb.build().fetch_all(self.reader()).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let Some(state) = r.try_get::<Option<String>, _>(1)? else {
                        continue;
                    };
                    out.push($crate::store::SenderOutcome {
                        interface_id: r.try_get(0)?,
                        state: CopyState::parse(&state)
                            .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("copy state {state:?}")))?,
                        copies: r.try_get(2)?,
                        messages: r.try_get(3)?,
                    });
                }
                out.sort_by(|a, b| (&a.interface_id, a.state as u8).cmp(&(&b.interface_id, b.state as u8)));
                Ok(out)
            }

            async fn archived_envelope(&self, transaction_id: &str) -> $crate::store::Result<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT envelope FROM archive WHERE transaction_id = $1")
                        .bind(transaction_id)
                        .fetch_optional(self.reader())
                        .await?,
                )
            }

            async fn receipt_signature(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Option<$crate::security::signature::SignatureRecord>> {
                let stored: Option<Option<String>> =
                    sqlx::query_scalar("SELECT receipt_signature FROM messages WHERE transaction_id = $1")
                        .bind(transaction_id)
                        .fetch_optional(self.reader())
                        .await?;
                stored
                    .flatten()
                    .map(|json| $crate::store::sql::decode_json(&json))
                    .transpose()
            }
        }

        impl $store {
            /// A message read as `SELECT MESSAGE_COLUMNS`.
            fn message_record(r: &<$db as sqlx::Database>::Row) -> $crate::store::MessageRecord {
                use sqlx::Row;
                $crate::store::MessageRecord {
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
                }
            }

            /// Inserts messages with their archive copies, queue entries and appointment
            /// changes; returns the outcomes and the queues that received entries.
            async fn insert_messages(
                &self,
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
                         mpan, correlation_id, received_at, routing, receipt_signature) ",
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
                            .push_bind(&m.routing)
                            .push_bind(m.receipt_signature.as_ref().map($crate::store::sql::encode_json));
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
                            replay_of: None,
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
                self.write_events(tx, &events).await?;
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
