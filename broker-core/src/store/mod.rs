//! Persistence: the [`Store`] trait and its SQLite (embedded default) and PostgreSQL
//! (production, shared by several nodes) implementations.
//!
//! Both implementations run the same SQL (written once in `sql.rs`); they differ in how
//! they connect, in migrations and in how writers are serialised.

pub mod accounts;
pub mod alarms;
pub mod directory;
pub mod messages;
pub mod queues;
mod postgres;
mod sql;
mod sqlite;

pub use accounts::{AccountStore, AuditEntry, AuditFilter, SessionRecord, UserRecord};
pub use alarms::{AlarmEvent, AlarmKind, AlarmRule, AlarmStore, Mail};
pub use directory::{ApiKeyRecord, CertificateRecord, DirectoryStore};
pub use messages::{CommitOutcome, Delivery, MessageRecord, MessageStore, NewMessage, Original};
pub use queues::{
    AttemptFailure, DeadLetter, DeadLetterFilter, EntryState, Origin, Outbound, QueueEntry, QueueHealth, QueueStat,
    QueueStore, Settlement,
};
pub use postgres::{PostgresStore, create_database, drop_database};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::events::Event;

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

/// Everything the broker persists. Implemented by [`SqliteStore`] and [`PostgresStore`];
/// `tests/store_conformance.rs` runs the same behaviour suite against both.
#[async_trait]
pub trait Store:
    DirectoryStore + MessageStore + QueueStore + AccountStore + AlarmStore + Send + Sync + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

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

    /// Wakes on every commit that queued entries, here or (PostgreSQL) on another node:
    /// the queue ids, or `*` when some notifications were missed; [`DIRECTORY_CHANGED`]
    /// after a change to the catalogue or directory.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<String>>>;

    /// Appends events that go with no state change (API rejections) to the analytics
    /// outbox. State changes write theirs in their own transaction.
    async fn record_events(&self, events: &[Event]) -> Result<()>;
    /// The oldest events of the analytics outbox.
    async fn outbox(&self, limit: i64) -> Result<Vec<Event>>;
    /// Moves outbox events into the embedded analytics table, in one transaction.
    async fn move_to_embedded(&self, ids: &[i64]) -> Result<()>;
    /// Deletes outbox events that a sink holds.
    async fn discard_outbox(&self, ids: &[i64]) -> Result<()>;
    /// Signalled on this node whenever events are written to the outbox.
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify>;
    /// Runs a report statement (built by `analytics::report`) over the embedded analytics
    /// table: bucket, group, label, then `values` integers per row.
    async fn analytics_rows(&self, sql: &str, values: usize) -> Result<Vec<ReportRow>>;
    /// Takes or renews the lease `name` of a singleton background job for `owner`
    /// until `until`; false while another owner holds it past `now`.
    async fn claim_worker(&self, name: &str, owner: &str, now: i64, until: i64) -> Result<bool>;
}

/// Queue id standing for "any queue may have work" in notifications.
pub const ALL_QUEUES: &str = "*";

/// Notification that the catalogue or directory changed (never a queue id: queue ids
/// start with a DIP ID).
pub const DIRECTORY_CHANGED: &str = "#directory";

/// In-process announcements of queues that received entries.
pub(crate) type Notifier = tokio::sync::broadcast::Sender<Arc<Vec<String>>>;

fn notifier() -> Notifier {
    tokio::sync::broadcast::channel(4096).0
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

/// One row of a report statement over the embedded analytics table (or ClickHouse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// Bucket start (the range start for totals).
    pub bucket: i64,
    /// Group value (empty without grouping).
    pub group: String,
    /// Event kind (volumes) or measure (latency).
    pub label: String,
    /// The figures.
    pub values: Vec<i64>,
}
