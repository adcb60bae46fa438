//! The production store: PostgreSQL, shared by every `dip` node.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::sql::impl_sql_store;
use super::{ALL_QUEUES, Backend, Notifier, Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// PostgreSQL store. Concurrent writers are safe: idempotency rests on the unique key of
/// (sender, reference) and queue positions on row locks of the queue counters.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    notifier: Notifier,
    outbox: std::sync::Arc<tokio::sync::Notify>,
    /// Lifecycle events go straight into the embedded analytics table (no outbox).
    events_embedded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    listening: std::sync::Arc<std::sync::Once>,
    instance: std::sync::Arc<Instance>,
}

/// What the clones of one store share for notifications: a name that marks its own
/// notifications (announced in-process already, so the relay skips them), and a signal
/// that ends the relay when the last clone is dropped.
#[derive(Debug)]
struct Instance {
    id: String,
    alive: tokio::sync::watch::Sender<()>,
}

/// The advisory lock class of per-recipient replay locks (the second key is a hash of
/// the recipient); "RPLY" in ASCII, to stay clear of other advisory locks.
const REPLAY_LOCKS: i32 = 0x5250_4c59;

/// The channel on which commits name the queues they filled.
const CHANNEL: &str = "dip_enqueued";

impl PostgresStore {
    const BACKEND: Backend = Backend::Postgres;

    /// Connects to the database `url` names.
    pub async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Failures surface on use anyway; a ping per acquire cost 15 % of the CPU.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.application_name("dip"))
            .await?;
        Ok(Self {
            pool,
            notifier: super::notifier(),
            outbox: std::sync::Arc::default(),
            events_embedded: std::sync::Arc::default(),
            listening: std::sync::Arc::new(std::sync::Once::new()),
            instance: std::sync::Arc::new(Instance {
                id: uuid::Uuid::new_v4().simple().to_string(),
                alive: tokio::sync::watch::channel(()).0,
            }),
        })
    }

    /// Holds `node_id` with a session advisory lock on a connection of its own.
    async fn hold_node_identity(&self, node_id: &str) -> Result<Option<super::NodeHold>> {
        use sqlx::ConnectOptions;
        let mut connection = self.pool.connect_options().as_ref().clone().connect().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(super::node_key(node_id))
            .fetch_one(&mut connection)
            .await?;
        Ok(held.then(|| super::NodeHold(Box::new(std::sync::Mutex::new(connection)))))
    }

    /// Takes `node_id`'s identity lock for the transaction `tx` if no live process holds
    /// it (the node is gone); `None` while it lives.
    async fn probe_node(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        node_id: &str,
    ) -> Result<Option<Box<dyn std::any::Any + Send>>> {
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(super::node_key(node_id))
            .fetch_one(&mut **tx)
            .await?;
        Ok(free.then(|| Box::new(()) as Box<dyn std::any::Any + Send>))
    }

    /// The connection pool, for components that need PostgreSQL itself (LISTEN/NOTIFY).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn run_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Tells every node (delivered on commit) which queues received entries.
    async fn notify_in_tx(&self, tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, queues: &[String]) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{}\n{}", self.instance.id, super::sql::notification(queues)))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Serialises replays for one recipient (on every node) until the transaction ends,
    /// so that two cannot both read the quota before either records its use.
    async fn lock_replays(&self, tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, recipient: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(REPLAY_LOCKS)
            .bind(recipient)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Relays other nodes' commit notifications to local subscribers (once per store,
    /// until the store is dropped). A lost connection may have dropped notifications, so
    /// (re)connecting announces `*`.
    fn listen(&self) {
        let pool = self.pool.clone();
        let notifier = self.notifier.clone();
        let own = format!("{}\n", self.instance.id);
        let mut alive = self.instance.alive.subscribe();
        self.listening.call_once(move || {
            let announce = move |queues: Vec<String>| {
                let _ = notifier.send(std::sync::Arc::new(queues));
            };
            tokio::spawn(async move {
                loop {
                    let connected = async {
                        let mut listener = PgListener::connect_with(&pool).await?;
                        listener.listen(CHANNEL).await?;
                        Ok::<_, sqlx::Error>(listener)
                    };
                    let mut listener = tokio::select! {
                        l = connected => match l {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot listen for queue notifications; retrying");
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                    _ = alive.changed() => return,
                                }
                            }
                        },
                        _ = alive.changed() => return,
                    };
                    announce(vec![ALL_QUEUES.to_owned()]);
                    loop {
                        let received = tokio::select! {
                            r = listener.try_recv() => r,
                            _ = alive.changed() => return,
                        };
                        match received {
                            Ok(Some(n)) if n.payload().starts_with(&own) => {}
                            Ok(Some(n)) => {
                                let queues = n.payload().split_once('\n').map_or("", |(_, q)| q);
                                announce(queues.split('\n').map(str::to_owned).collect());
                            }
                            Ok(None) => announce(vec![ALL_QUEUES.to_owned()]),
                            Err(e) => {
                                tracing::warn!(error = %e, "queue notifications interrupted");
                                break;
                            }
                        }
                    }
                }
            });
        });
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres);

/// Creates database `name` on the server of `admin_url` (tests, benchmarks, setup).
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    check_name(name)?;
    let options: PgConnectOptions = admin_url.parse()?;
    let mut conn = options.connect().await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(with_database(admin_url, name))
}

/// Drops database `name` on the server of `admin_url`, ending its sessions.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    let options: PgConnectOptions = admin_url.parse()?;
    let mut conn = options.connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = base[host_start..].find('/').map_or(base, |i| &base[..host_start + i]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Config(format!(
            "database name {name:?}: use a-z, 0-9 and _"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_replaced_in_url() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
