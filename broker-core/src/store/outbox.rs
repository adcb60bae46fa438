//! The analytics outbox: lifecycle events, written in the transaction of the change they
//! record and handed on by the analytics pump; and the embedded analytics table the
//! pump may move them to, which report statements run over.

use std::sync::Arc;

use async_trait::async_trait;

use super::Result;
use crate::events::Event;

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

/// Persistence of lifecycle events: the outbox and the embedded analytics table.
#[async_trait]
pub trait OutboxStore: Send + Sync {
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
    /// Writes lifecycle events from now on straight into the embedded analytics table, in
    /// the transaction of their change, instead of the outbox: for a platform whose sink
    /// is the embedded table, so that each event is one row written once rather than an
    /// outbox row the pump copies and deletes. Every node of a platform must agree.
    fn write_events_to_embedded(&self, on: bool);
    /// Runs a report statement (built by `analytics::report`) over the embedded analytics
    /// table: bucket, group, label, then `values` integers per row.
    async fn analytics_rows(&self, sql: &str, values: usize) -> Result<Vec<ReportRow>>;
    /// The lifecycle events of these transactions that are still in the outbox or in the
    /// embedded table, in order of time (a message's trace; ClickHouse holds the rest).
    async fn events_of(&self, transaction_ids: &[String]) -> Result<Vec<Event>>;
}

/// The outbox columns, in the order `write_events` and `outbox` use them.
pub(super) const EVENT_COLUMNS: &str = "kind, at, transaction_id, interface_id, sender_dip_id, \
     recipient_dip_id, queue_id, outcome, latency_us, duration_us, replay";

/// Implements [`OutboxStore`] for a store type with `writer()`, `reader()` and an `outbox`
/// signal. Adds `write_events` (every change that records events writes them with it) and
/// `on_outbox_ids`.
macro_rules! impl_outbox_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::outbox::OutboxStore for $store {
            async fn record_events(&self, events: &[$crate::events::Event]) -> $crate::store::Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.writer().begin().await?;
                self.write_events(&mut tx, events).await?;
                tx.commit().await?;
                self.outbox.notify_one();
                Ok(())
            }

            async fn outbox(&self, limit: i64) -> $crate::store::Result<Vec<$crate::events::Event>> {
                sqlx::query(&format!(
                    "SELECT id, {} FROM analytics_outbox ORDER BY id LIMIT $1",
                    $crate::store::outbox::EVENT_COLUMNS
                ))
                .bind(limit)
                .fetch_all(self.writer())
                .await?
                .iter()
                .map(Self::event_row)
                .collect()
            }

            async fn events_of(&self, transaction_ids: &[String]) -> $crate::store::Result<Vec<$crate::events::Event>> {
                let mut events = Vec::new();
                for chunk in transaction_ids.chunks($crate::store::sql::CHUNK / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("");
                    for (i, table) in ["analytics_outbox", "analytics_events"].into_iter().enumerate() {
                        if i > 0 {
                            qb.push(" UNION ALL ");
                        }
                        qb.push(format!(
                            "SELECT id, {} FROM {table} WHERE transaction_id IN (",
                            $crate::store::outbox::EVENT_COLUMNS
                        ));
                        let mut ids = qb.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.as_str());
                        }
                        qb.push(")");
                    }
                    for r in qb.build().fetch_all(self.reader()).await? {
                        events.push(Self::event_row(&r)?);
                    }
                }
                // Each statement reads both tables from one snapshot, and a move is one
                // transaction, so an event is read once (ids are each table's own: an
                // outbox id may equal an embedded one).
                events.sort_by_key(|e| (e.at, e.id));
                Ok(events)
            }

            fn write_events_to_embedded(&self, on: bool) {
                self.events_embedded
                    .store(on, std::sync::atomic::Ordering::Relaxed);
            }

            async fn move_to_embedded(&self, ids: &[i64]) -> $crate::store::Result<()> {
                // New ids: events written there directly have their own (one move, in one
                // transaction with the delete, keeps each event once without them).
                let copy = format!(
                    "INSERT INTO analytics_events ({c}) SELECT {c} FROM analytics_outbox WHERE id IN (",
                    c = $crate::store::outbox::EVENT_COLUMNS
                );
                self.on_outbox_ids(&[&copy, "DELETE FROM analytics_outbox WHERE id IN ("], ids)
                    .await
            }

            async fn discard_outbox(&self, ids: &[i64]) -> $crate::store::Result<()> {
                self.on_outbox_ids(&["DELETE FROM analytics_outbox WHERE id IN ("], ids)
                    .await
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
        }

        impl $store {
            /// An event read as `SELECT id, EVENT_COLUMNS`.
            fn event_row(r: &<$db as sqlx::Database>::Row) -> $crate::store::Result<$crate::events::Event> {
                use sqlx::Row;
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
            }

            /// Where lifecycle events are written: the outbox, or the embedded table.
            fn events_table(&self) -> &'static str {
                if self.events_embedded.load(std::sync::atomic::Ordering::Relaxed) {
                    "analytics_events"
                } else {
                    "analytics_outbox"
                }
            }

            /// Appends events to the analytics outbox (or the embedded table).
            async fn write_events(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::events::Event],
            ) -> $crate::store::Result<()> {
                if !$crate::events::recording() {
                    return Ok(());
                }
                for chunk in events.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {} ({}) ",
                        self.events_table(),
                        $crate::store::outbox::EVENT_COLUMNS
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
        }
    };
}

pub(super) use impl_outbox_store;
