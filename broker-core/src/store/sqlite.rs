//! The embedded store: one SQLite database file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::sql::impl_sql_store;
use super::{Backend, Notifier, Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// SQLite store. SQLite admits one writer at a time, so writes go through a pool of one
/// connection (queueing in the pool rather than failing with `SQLITE_BUSY`); reads use a
/// separate pool and see committed data through WAL.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: std::path::PathBuf,
    write: SqlitePool,
    read: SqlitePool,
    notifier: Notifier,
    outbox: std::sync::Arc<tokio::sync::Notify>,
    /// Lifecycle events go straight into the embedded analytics table (no outbox).
    events_embedded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit that was acknowledged survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            path: path.to_owned(),
            write,
            read,
            notifier: super::notifier(),
            outbox: std::sync::Arc::default(),
            events_embedded: std::sync::Arc::default(),
        })
    }

    /// Takes the exclusive lock of `node_id`'s lock file beside the database, if no live
    /// process holds it.
    fn lock_node_file(&self, node_id: &str) -> Result<Option<std::fs::File>> {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".node-{:016x}.lock", super::node_key(node_id)));
        let name = std::path::PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| StoreError::Config(format!("cannot open the node lock {}: {e}", name.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Config(format!(
                "cannot lock the node lock {}: {e}",
                name.display()
            ))),
        }
    }

    /// Holds `node_id` with an exclusive lock on a file beside the database.
    async fn hold_node_identity(&self, node_id: &str) -> Result<Option<super::NodeHold>> {
        Ok(self
            .lock_node_file(node_id)?
            .map(|file| super::NodeHold(Box::new(file))))
    }

    /// Takes `node_id`'s lock file for as long as the returned probe lives, if no live
    /// process holds it (the node is gone); `None` while it lives.
    async fn probe_node(
        &self,
        _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        node_id: &str,
    ) -> Result<Option<Box<dyn std::any::Any + Send>>> {
        Ok(self
            .lock_node_file(node_id)?
            .map(|file| Box::new(file) as Box<dyn std::any::Any + Send>))
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    async fn run_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    /// One process owns an embedded database, so commits are announced in-process only.
    async fn notify_in_tx(&self, _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, _queues: &[String]) -> Result<()> {
        Ok(())
    }

    /// Nothing to take: every write transaction runs on the one writer connection, so
    /// replays for a recipient are serialised already.
    async fn lock_replays(&self, _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, _recipient: &str) -> Result<()> {
        Ok(())
    }

    fn listen(&self) {}
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);
