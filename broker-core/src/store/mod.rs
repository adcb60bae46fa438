//! Persistence: the [`Store`] trait and its SQLite (embedded default) and PostgreSQL
//! (production, shared by several nodes) implementations.
//!
//! `Store` is the union of one small trait per job, each in its own file with its records
//! and its SQL: [`DirectoryStore`] (catalogue, participants, endpoints, keys, certificates,
//! appointments), [`MessageStore`] (committing and reading accepted messages),
//! [`QueueStore`] (queue entries, delivery outcomes, leases, dead letters),
//! [`ReplayStore`], [`OutboxStore`] (lifecycle events and the embedded analytics table),
//! [`AccountStore`] (portal users, sessions, audit log) and [`AlarmStore`]. Code that does
//! one job can take just that trait; an `Arc<dyn Store>` converts to any of them.
//!
//! Both implementations run the same SQL, written once: each job's file has a macro that
//! implements its trait for a store type, and `sql.rs` puts them together
//! (`impl_sql_store!`). The implementations differ in how they connect, in migrations and
//! in how writers are serialised.

pub mod accounts;
pub mod alarms;
pub mod directory;
pub mod messages;
pub mod outbox;
mod postgres;
pub mod queues;
pub mod replays;
mod sql;
mod sqlite;

pub use accounts::{AccountStore, AuditEntry, AuditFilter, SessionRecord, UserRecord};
pub use alarms::{AlarmEvent, AlarmKind, AlarmRule, AlarmStore, Mail};
pub use directory::{ApiKeyRecord, CertificateRecord, DirectoryStore};
pub use messages::{
    CommitOutcome, CopyState, Delivery, MessageOrder, MessageQuery, MessageRecord, MessageStore, NewMessage, Original,
    SEARCH_COUNT_CAP, SenderOutcome, SenderQuery,
};
pub use outbox::{OutboxStore, ReportRow};
pub use postgres::{PostgresStore, create_database, drop_database};
pub use queues::{
    AHEAD_LIMIT, Ahead, Attempt, AttemptFailure, CallDetail, DeadLetter, DeadLetterFilter, EntryState, Origin,
    Outbound, QueueEntry, QueueHealth, QueueStat, QueueStore, Settlement,
};
pub use replays::{
    ReplayAdmission, ReplayCandidate, ReplayCopy, ReplayProgress, ReplayQuota, ReplayRecord, ReplayStore, ReplayUsage,
};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

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

/// Everything the broker persists: every job's trait, and what spans them (migrations,
/// commit notifications, leases of singleton background jobs). Implemented by
/// [`SqliteStore`] and [`PostgresStore`]; `tests/store_conformance.rs` runs the same
/// behaviour suite against both.
#[async_trait]
pub trait Store:
    DirectoryStore
    + MessageStore
    + QueueStore
    + ReplayStore
    + OutboxStore
    + AccountStore
    + AlarmStore
    + Send
    + Sync
    + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Wakes on every commit that queued entries, here or (PostgreSQL) on another node:
    /// the queue ids, or `*` when some notifications were missed; [`DIRECTORY_CHANGED`]
    /// after a change to the catalogue or directory.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<String>>>;

    /// Takes or renews the lease `name` of a singleton background job for `owner`
    /// until `until`; false while another owner holds it past `now`.
    async fn claim_worker(&self, name: &str, owner: &str, now: i64, until: i64) -> Result<bool>;

    /// Holds the delivery node identity `node_id` for this process until the returned
    /// hold is dropped; `None` while a live process holds it. The hold ends when its
    /// process does, however it ends (`kill -9` included), so a node restarted under its
    /// own identity may resume its queues' leases at once: no other process can be
    /// delivering them under that name. PostgreSQL: a session advisory lock on a
    /// connection of the hold's own, released by the server when that connection closes;
    /// SQLite: an exclusive lock on a file beside the database.
    async fn hold_node(&self, node_id: &str) -> Result<Option<NodeHold>>;

    /// Frees the queue leases of every other node that ran under a held identity and is
    /// gone (its identity lock is free), announcing the queues so that live nodes claim
    /// them at once; returns each such node with its queues. `me` is never freed, nor is a
    /// node that never held its identity (its leases simply expire). Probing a node's
    /// lock and freeing its leases is one transaction under that lock, so a restart of
    /// the node cannot slip between them.
    async fn release_dead_nodes(&self, me: &str, now: i64) -> Result<Vec<(String, Vec<String>)>>;
}

/// A held node identity ([`Store::hold_node`]); dropping it lets the identity go.
pub struct NodeHold(#[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for NodeHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeHold")
    }
}

/// The lock key of a node identity (the advisory lock's, or the lock file's name).
pub(crate) fn node_key(node_id: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("dip-node:{node_id}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
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
