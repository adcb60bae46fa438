//! The SQL both stores run, written once. `impl_sql_store!` implements [`Store`](super::Store)
//! and, through each job's own macro (`impl_directory_store!` in `directory.rs` and so on),
//! every sub-trait for a store type that provides `writer()` and `reader()` pools,
//! `run_migrations()`, `notify_in_tx()`, `lock_replays()`, `listen()`, a `notifier` and
//! an `outbox` signal. The statements use `$N` placeholders, which PostgreSQL and SQLite
//! both accept. The jobs' macros share a few transaction helpers (`enqueue`,
//! `write_events`, `finish`…), each defined by the job it belongs to.

/// Rows per multi-row INSERT: keeps every statement under both databases' bind limits.
pub(super) const CHUNK: usize = 500;

/// The notification payload naming queues that received entries; `*` when it would not
/// fit PostgreSQL's 8000-byte limit.
pub(super) fn notification(queues: &[String]) -> String {
    let text = queues.join("\n");
    if text.len() > 7000 {
        super::ALL_QUEUES.to_owned()
    } else {
        text
    }
}

pub(super) fn decode_list(s: &str) -> super::Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| super::StoreError::Corrupt(format!("list {s:?}: {e}")))
}

/// A value as its JSON column holds it.
pub(super) fn encode_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("a stored value serialises to JSON")
}

/// A JSON column read back into its type; unreadable JSON is corruption.
pub(super) fn decode_json<T: serde::de::DeserializeOwned>(s: &str) -> super::Result<T> {
    serde_json::from_str(s).map_err(|e| super::StoreError::Corrupt(format!("JSON column: {e}")))
}

pub(super) fn encode_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                Self::BACKEND
            }

            async fn migrate(&self) -> $crate::store::Result<()> {
                self.run_migrations().await
            }

            fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<String>>> {
                self.listen();
                self.notifier.subscribe()
            }

            async fn claim_worker(&self, name: &str, owner: &str, now: i64, until: i64) -> $crate::store::Result<bool> {
                Ok(sqlx::query_scalar::<_, String>(
                    "INSERT INTO worker_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
                     WHERE worker_leases.owner = excluded.owner OR worker_leases.lease_until < $4 RETURNING name",
                )
                .bind(name)
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .is_some())
            }

            async fn hold_node(&self, node_id: &str) -> $crate::store::Result<Option<$crate::store::NodeHold>> {
                let hold = self.hold_node_identity(node_id).await?;
                if hold.is_some() {
                    sqlx::query(
                        "INSERT INTO node_holds (node_id, held_at) VALUES ($1, $2) \
                         ON CONFLICT (node_id) DO UPDATE SET held_at = excluded.held_at",
                    )
                    .bind(node_id)
                    .bind($crate::clock::now_micros())
                    .execute(self.writer())
                    .await?;
                }
                Ok(hold)
            }

            async fn release_dead_nodes(&self, me: &str, now: i64) -> $crate::store::Result<Vec<(String, Vec<String>)>> {
                let owners: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT s.owner FROM queue_status s JOIN node_holds h ON h.node_id = s.owner \
                     WHERE s.owner <> $1 AND s.lease_until >= $2",
                )
                .bind(me)
                .bind(now)
                .fetch_all(self.reader())
                .await?;
                let mut released = Vec::new();
                for owner in owners {
                    let mut tx = self.writer().begin().await?;
                    // Held by us until the commit: the node cannot come back meanwhile.
                    let Some(probe) = self.probe_node(&mut tx, &owner).await? else {
                        continue;
                    };
                    let queues: Vec<String> = sqlx::query_scalar(
                        "UPDATE queue_status SET owner = NULL, lease_until = 0 WHERE owner = $1 RETURNING queue_id",
                    )
                    .bind(&owner)
                    .fetch_all(&mut *tx)
                    .await?;
                    self.finish(tx, queues.clone()).await?;
                    drop(probe);
                    released.push((owner, queues));
                }
                Ok(released)
            }
        }

        impl $store {
            /// Commits, telling every node which queues received entries.
            async fn finish(&self, mut tx: sqlx::Transaction<'_, $db>, queues: Vec<String>) -> $crate::store::Result<()> {
                if !queues.is_empty() {
                    self.notify_in_tx(&mut tx, &queues).await?;
                }
                tx.commit().await?;
                self.outbox.notify_one();
                if !queues.is_empty() {
                    let _ = self.notifier.send(std::sync::Arc::new(queues));
                }
                Ok(())
            }
        }

        $crate::store::directory::impl_directory_store!($store, $db);
        $crate::store::messages::impl_message_store!($store, $db);
        $crate::store::queues::impl_queue_store!($store, $db);
        $crate::store::replays::impl_replay_store!($store, $db);
        $crate::store::outbox::impl_outbox_store!($store, $db);
        $crate::store::accounts::impl_account_store!($store, $db);
        $crate::store::alarms::impl_alarm_store!($store, $db);
    };
}

pub(super) use impl_sql_store;
