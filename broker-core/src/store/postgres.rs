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
    listening: std::sync::Arc<std::sync::Once>,
}

/// The channel on which commits name the queues they filled.
const CHANNEL: &str = "dip_enqueued";

impl PostgresStore {
    const BACKEND: Backend = Backend::Postgres;

    /// Connects to the database `url` names.
    pub async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.application_name("dip"))
            .await?;
        Ok(Self {
            pool,
            notifier: super::notifier(),
            listening: std::sync::Arc::new(std::sync::Once::new()),
        })
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
    async fn notify_in_tx(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, queues: &[String]) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(super::sql::notification(queues))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Relays other nodes' commit notifications to local subscribers (once per store). A
    /// lost connection may have dropped notifications, so reconnecting announces `*`.
    fn listen(&self) {
        let pool = self.pool.clone();
        let notifier = self.notifier.clone();
        self.listening.call_once(move || {
            tokio::spawn(async move {
                loop {
                    let mut listener = match PgListener::connect_with(&pool).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for queue notifications; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    let _ = notifier.send(std::sync::Arc::new(vec![ALL_QUEUES.to_owned()]));
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => {
                                let queues = n.payload().split('\n').map(str::to_owned).collect();
                                if notifier.send(std::sync::Arc::new(queues)).is_err() {
                                    // Nobody listens any more.
                                }
                            }
                            Ok(None) => {
                                let _ = notifier.send(std::sync::Arc::new(vec![ALL_QUEUES.to_owned()]));
                            }
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
