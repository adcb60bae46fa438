//! The SQL both stores run, written once. `impl_sql_store!` expands it for a store type
//! that provides `writer()`, `reader()` pools and `run_migrations()`; the statements use
//! `$N` placeholders, which PostgreSQL and SQLite both accept.

/// Rows per multi-row INSERT: keeps every statement under both databases' bind limits.
pub(super) const CHUNK: usize = 500;

/// The outbox columns, in the order `write_events` and `outbox` use them.
pub(super) const EVENT_COLUMNS: &str = "kind, at, transaction_id, interface_id, sender_dip_id, \
     recipient_dip_id, queue_id, outcome, latency_us, duration_us, replay";

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

            async fn record_events(&self, events: &[$crate::events::Event]) -> $crate::store::Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.writer().begin().await?;
                Self::write_events(&mut tx, events).await?;
                tx.commit().await?;
                self.outbox.notify_one();
                Ok(())
            }

            async fn outbox(&self, limit: i64) -> $crate::store::Result<Vec<$crate::events::Event>> {
                use sqlx::Row;
                sqlx::query(&format!(
                    "SELECT id, {} FROM analytics_outbox ORDER BY id LIMIT $1",
                    $crate::store::sql::EVENT_COLUMNS
                ))
                .bind(limit)
                .fetch_all(self.writer())
                .await?
                .iter()
                .map(|r| {
                    let kind: String = r.get(1);
                    Ok($crate::events::Event {
                        id: r.get(0),
                        kind: $crate::events::EventKind::parse(&kind)
                            .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("event kind {kind:?}")))?,
                        at: r.get(2),
                        transaction_id: r.get(3),
                        interface_id: r.get(4),
                        sender_dip_id: r.get(5),
                        recipient_dip_id: r.get(6),
                        queue_id: r.get(7),
                        outcome: r.get(8),
                        latency_us: r.get(9),
                        duration_us: r.get(10),
                        replay: r.get::<i64, _>(11) != 0,
                    })
                })
                .collect()
            }

            async fn move_to_embedded(&self, ids: &[i64]) -> $crate::store::Result<()> {
                let copy = format!(
                    "INSERT INTO analytics_events (id, {c}) SELECT id, {c} FROM analytics_outbox WHERE id IN (",
                    c = $crate::store::sql::EVENT_COLUMNS
                );
                self.on_outbox_ids(&[&copy, "DELETE FROM analytics_outbox WHERE id IN ("], ids).await
            }

            async fn discard_outbox(&self, ids: &[i64]) -> $crate::store::Result<()> {
                self.on_outbox_ids(&["DELETE FROM analytics_outbox WHERE id IN ("], ids).await
            }

            fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
                self.outbox.clone()
            }

            async fn analytics_rows(
                &self,
                sql: &str,
                values: usize,
            ) -> $crate::store::Result<Vec<$crate::store::ReportRow>> {
                use sqlx::Row;
                sqlx::query(sql)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok($crate::store::ReportRow {
                            bucket: r.try_get(0)?,
                            group: r.try_get(1)?,
                            label: r.try_get(2)?,
                            values: (3..3 + values)
                                .map(|i| r.try_get::<i64, _>(i))
                                .collect::<Result<_, _>>()?,
                        })
                    })
                    .collect()
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

            /// Runs each statement (ending in `IN (`) for the outbox events `ids`, in chunks,
            /// all in one transaction.
            async fn on_outbox_ids(&self, statements: &[&str], ids: &[i64]) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                for chunk in ids.chunks($crate::store::sql::CHUNK) {
                    for statement in statements {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(*statement);
                        let mut list = qb.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        qb.push(")");
                        qb.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            /// Appends events to the analytics outbox.
            async fn write_events(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::events::Event],
            ) -> $crate::store::Result<()> {
                for chunk in events.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO analytics_outbox ({}) ",
                        $crate::store::sql::EVENT_COLUMNS
                    ));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.kind.as_str())
                            .push_bind(e.at)
                            .push_bind(&e.transaction_id)
                            .push_bind(&e.interface_id)
                            .push_bind(&e.sender_dip_id)
                            .push_bind(&e.recipient_dip_id)
                            .push_bind(&e.queue_id)
                            .push_bind(&e.outcome)
                            .push_bind(e.latency_us)
                            .push_bind(e.duration_us)
                            .push_bind(i64::from(e.replay));
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        $crate::store::directory::impl_directory_store!($store, $db);
        $crate::store::messages::impl_message_store!($store, $db);
        $crate::store::queues::impl_queue_store!($store, $db);
        $crate::store::replays::impl_replay_store!($store, $db);
        $crate::store::accounts::impl_account_store!($store, $db);
        $crate::store::alarms::impl_alarm_store!($store, $db);
    };
}

pub(super) use impl_sql_store;
