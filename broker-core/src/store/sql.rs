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

            async fn replay_candidates(
                &self,
                interface_id: &str,
                recipients: &[String],
                from: i64,
                to: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::ReplayCandidate>> {
                use sqlx::Row;
                if recipients.is_empty() {
                    return Ok(vec![]);
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT m.transaction_id, m.received_at, q.recipient_dip_id, q.recipient_role, q.hidden, a.envelope \
                     FROM messages m JOIN queue_entries q ON q.transaction_id = m.transaction_id \
                     JOIN archive a ON a.transaction_id = m.transaction_id \
                     WHERE q.replay_id IS NULL AND q.state <> 'redriven' AND m.interface_id = ",
                );
                qb.push_bind(interface_id)
                    .push(" AND m.received_at >= ")
                    .push_bind(from)
                    .push(" AND m.received_at <= ")
                    .push_bind(to)
                    .push(" AND q.recipient_dip_id IN (");
                let mut list = qb.separated(", ");
                for r in recipients.iter().take($crate::store::sql::CHUNK) {
                    list.push_bind(r);
                }
                qb.push(") ORDER BY m.received_at, m.transaction_id, q.recipient_dip_id LIMIT ")
                    .push_bind(limit.max(0));
                qb.build()
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        let hidden: String = r.get(4);
                        Ok($crate::store::ReplayCandidate {
                            transaction_id: r.get(0),
                            received_at: r.get(1),
                            recipient_dip_id: r.get(2),
                            recipient_role: r.get(3),
                            hidden: $crate::store::sql::decode_list(&hidden)?,
                            envelope: r.get(5),
                        })
                    })
                    .collect()
            }

            async fn received_by(
                &self,
                transaction_id: &str,
                interface_id: &str,
                recipient: &str,
            ) -> $crate::store::Result<Option<i64>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT m.received_at FROM messages m JOIN queue_entries q ON q.transaction_id = m.transaction_id \
                     WHERE m.transaction_id = $1 AND m.interface_id = $2 AND q.recipient_dip_id = $3 \
                     AND q.replay_id IS NULL LIMIT 1",
                )
                .bind(transaction_id)
                .bind(interface_id)
                .bind(recipient)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|r| r.get(0)))
            }

            async fn record_replay(
                &self,
                replay: &$crate::store::ReplayRecord,
                copies: &[$crate::store::ReplayCopy],
                quota: $crate::store::ReplayQuota,
            ) -> $crate::store::Result<$crate::store::ReplayAdmission> {
                let mut tx = self.writer().begin().await?;
                // Held until commit: a concurrent replay for the recipient reads the usage
                // only once this one is written (or refused).
                self.lock_replays(&mut tx, &replay.recipient).await?;
                let requested = if replay.dry_run { 0 } else { replay.messages };
                let usage = Self::quota_usage(&mut tx, &replay.recipient, quota, replay.created_at, requested).await?;
                if usage.used + requested > quota.limit {
                    tx.rollback().await?;
                    return Ok($crate::store::ReplayAdmission::OverQuota(usage));
                }
                sqlx::query(
                    "INSERT INTO replays (id, requested_by, recipient, interface_id, request, dry_run, messages, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&replay.id)
                .bind(&replay.requested_by)
                .bind(&replay.recipient)
                .bind(&replay.interface_id)
                .bind(&replay.request)
                .bind(replay.dry_run)
                .bind(replay.messages)
                .bind(replay.created_at)
                .execute(&mut *tx)
                .await?;
                let archived: Vec<$crate::store::messages::ArchiveRow<'_>> = copies
                    .iter()
                    .map(|c| $crate::store::messages::ArchiveRow {
                        transaction_id: &c.transaction_id,
                        interface_id: &c.interface_id,
                        received_at: replay.created_at,
                        retain_until: c.retain_until,
                        envelope: &c.envelope,
                    })
                    .collect();
                Self::archive(&mut tx, &archived).await?;
                let entries: Vec<$crate::store::queues::NewEntry<'_>> = copies
                    .iter()
                    .map(|c| $crate::store::queues::NewEntry {
                        queue_id: &c.delivery.queue_id,
                        transaction_id: &c.transaction_id,
                        recipient_dip_id: &c.delivery.recipient_dip_id,
                        recipient_role: &c.delivery.recipient_role,
                        hidden: $crate::store::sql::encode_list(&c.delivery.hidden),
                        enqueued_at: replay.created_at,
                        replay_id: Some(&replay.id),
                    })
                    .collect();
                Self::enqueue(&mut tx, &entries).await?;
                let events: Vec<$crate::events::Event> = copies
                    .iter()
                    .map(|c| $crate::events::Event {
                        transaction_id: c.transaction_id.clone(),
                        interface_id: c.interface_id.clone(),
                        recipient_dip_id: c.delivery.recipient_dip_id.clone(),
                        queue_id: c.delivery.queue_id.clone(),
                        replay: true,
                        ..$crate::events::Event::new($crate::events::EventKind::Replayed, replay.created_at)
                    })
                    .collect();
                Self::write_events(&mut tx, &events).await?;
                let mut queues: Vec<String> = copies.iter().map(|c| c.delivery.queue_id.clone()).collect();
                queues.sort();
                queues.dedup();
                drop(entries);
                self.finish(tx, queues).await?;
                Ok($crate::store::ReplayAdmission::Recorded($crate::store::ReplayUsage {
                    used: usage.used + requested,
                    frees_at: None,
                }))
            }

            async fn replay_usage(
                &self,
                recipient: &str,
                quota: $crate::store::ReplayQuota,
                at: i64,
                requested: i64,
            ) -> $crate::store::Result<$crate::store::ReplayUsage> {
                let mut tx = self.reader().begin().await?;
                let usage = Self::quota_usage(&mut tx, recipient, quota, at, requested).await?;
                tx.commit().await?;
                Ok(usage)
            }

            async fn replays(&self, limit: i64) -> $crate::store::Result<Vec<$crate::store::ReplayRecord>> {
                use sqlx::Row;
                Ok(sqlx::query(
                    "SELECT id, requested_by, recipient, interface_id, request, dry_run, messages, created_at \
                     FROM replays ORDER BY created_at DESC, id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(|r| $crate::store::ReplayRecord {
                    id: r.get(0),
                    requested_by: r.get(1),
                    recipient: r.get(2),
                    interface_id: r.get(3),
                    request: r.get(4),
                    dry_run: r.get(5),
                    messages: r.get(6),
                    created_at: r.get(7),
                })
                .collect())
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
            /// The recipient's replay quota use over the window ending at `at`, and when
            /// `requested` more messages would fit.
            async fn quota_usage(
                tx: &mut sqlx::Transaction<'_, $db>,
                recipient: &str,
                quota: $crate::store::ReplayQuota,
                at: i64,
                requested: i64,
            ) -> $crate::store::Result<$crate::store::ReplayUsage> {
                use sqlx::Row;
                let since = at.saturating_sub(quota.window);
                // PostgreSQL sums BIGINT to NUMERIC; the casts keep both databases at BIGINT.
                let used: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(messages), 0) AS BIGINT) FROM replays \
                     WHERE recipient = $1 AND NOT dry_run AND created_at > $2",
                )
                .bind(recipient)
                .bind(since)
                .fetch_one(&mut **tx)
                .await?
                .get(0);
                let excess = used.saturating_add(requested).saturating_sub(quota.limit);
                if excess <= 0 || requested > quota.limit {
                    return Ok($crate::store::ReplayUsage { used, frees_at: None });
                }
                // The replay fits once the oldest replays holding `excess` messages have
                // left the window: the first whose running total reaches it.
                let oldest: Option<i64> = sqlx::query(
                    "SELECT created_at FROM (SELECT created_at, id, CAST(SUM(messages) OVER \
                     (ORDER BY created_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) \
                     AS running FROM replays WHERE recipient = $1 AND NOT dry_run AND created_at > $2) w \
                     WHERE running >= $3 ORDER BY created_at, id LIMIT 1",
                )
                .bind(recipient)
                .bind(since)
                .bind(excess)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.get(0));
                Ok($crate::store::ReplayUsage {
                    used,
                    frees_at: oldest.map(|t| t.saturating_add(quota.window)),
                })
            }

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
        $crate::store::accounts::impl_account_store!($store, $db);
        $crate::store::alarms::impl_alarm_store!($store, $db);
    };
}

pub(super) use impl_sql_store;
