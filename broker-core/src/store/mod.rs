//! Persistence: the [`Store`] trait and its SQLite (embedded default) and PostgreSQL
//! (production, shared by several nodes) implementations.
//!
//! Both implementations run the same SQL (written once in `sql.rs`); they differ in how
//! they connect, in migrations and in how writers are serialised.

mod postgres;
mod sql;
mod sqlite;

pub use postgres::{PostgresStore, create_database, drop_database};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::catalogue::CatalogueData;
use crate::model::{Appointment, Channel, Endpoint, Participant, Role};

/// A store failure. The participant API answers 503 for these: nothing was accepted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not decode.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The configuration names no usable store.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A stored API key. The secret itself is never stored, only its SHA-256 (keys carry
/// 190 bits of entropy, so a slow password hash would add latency and no safety).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id of the key (the part after `dip_`).
    pub key_id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The participant or DCP the key acts for; `None` for operator keys.
    pub dip_id: Option<String>,
    /// Label.
    pub name: String,
    /// Creation time, microseconds since the epoch.
    pub created_at: i64,
    /// Revocation time, when revoked.
    pub revoked_at: Option<i64>,
}

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
    /// `pending` until delivered.
    pub state: String,
    /// When queued, microseconds since the epoch.
    pub enqueued_at: i64,
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

/// Everything the broker persists. Implemented by [`SqliteStore`] and [`PostgresStore`];
/// `tests/store_conformance.rs` runs the same behaviour suite against both.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Roles and channels.
    async fn catalogue(&self) -> Result<CatalogueData>;
    /// Creates or replaces a role.
    async fn put_role(&self, role: &Role) -> Result<()>;
    /// Creates or replaces a channel definition.
    async fn put_channel(&self, channel: &Channel) -> Result<()>;

    /// Every participant and DCP with roles and nominations.
    async fn participants(&self) -> Result<Vec<Participant>>;
    /// Creates or replaces a participant, its roles and nominations.
    async fn put_participant(&self, participant: &Participant) -> Result<()>;
    /// Every endpoint.
    async fn endpoints(&self) -> Result<Vec<Endpoint>>;
    /// Creates or replaces an endpoint.
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Stores an API key.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Finds an API key by id.
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>>;

    /// Inserts or replaces appointment rows (keyed by MPAN, role and effective date);
    /// returns how many were written.
    async fn put_appointments(&self, rows: &[Appointment]) -> Result<u64>;
    /// All appointment rows of the given MPANs, ordered by MPAN, role, effective date.
    async fn appointments(&self, mpans: &[String]) -> Result<Vec<Appointment>>;

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
    /// The queue entries created for a message.
    async fn message_deliveries(&self, transaction_id: &str) -> Result<Vec<QueueEntry>>;
    /// Pending entries of one queue after position `after_seq`, in FIFO order.
    async fn pending_entries(&self, queue_id: &str, after_seq: i64, limit: i64) -> Result<Vec<QueueEntry>>;
    /// Depth and age of the given queues.
    async fn queue_stats(&self, queue_ids: &[String]) -> Result<Vec<QueueStat>>;
}

/// Opens the store a database URL names: `postgres://…` or `sqlite://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(SqliteStore::open(std::path::Path::new(path)).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL scheme (expected postgres:// or sqlite://): {}",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
