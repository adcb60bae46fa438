//! The SQL both stores run, written once. `impl_sql_store!` expands it for a store type
//! that provides `writer()`, `reader()` pools and `run_migrations()`; the statements use
//! `$N` placeholders, which PostgreSQL and SQLite both accept.

/// Rows per multi-row INSERT: keeps every statement under both databases' bind limits.
pub(super) const CHUNK: usize = 500;

/// The stored original of a (sender, reference) key.
pub(super) const ORIGINAL: &str = "SELECT transaction_id, correlation_id, content_hash FROM messages \
     WHERE sender_dip_id = $1 AND sender_unique_reference = $2";

pub(super) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
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

            async fn catalogue(&self) -> $crate::store::Result<$crate::catalogue::CatalogueData> {
                use sqlx::Row;
                let roles = sqlx::query("SELECT code, name, description FROM roles ORDER BY code")
                    .fetch_all(self.reader())
                    .await?
                    .into_iter()
                    .map(|r| $crate::model::Role {
                        code: r.get(0),
                        name: r.get(1),
                        description: r.get(2),
                    })
                    .collect();
                let mut channels = Vec::new();
                for row in sqlx::query("SELECT id, definition FROM channels ORDER BY id")
                    .fetch_all(self.reader())
                    .await?
                {
                    let id: String = row.get(0);
                    let text: String = row.get(1);
                    channels.push(
                        serde_json::from_str(&text)
                            .map_err(|e| $crate::store::StoreError::Corrupt(format!("channel {id}: {e}")))?,
                    );
                }
                Ok($crate::catalogue::CatalogueData { roles, channels })
            }

            async fn put_role(&self, role: &$crate::model::Role) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO roles (code, name, description) VALUES ($1, $2, $3) \
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
                     description = excluded.description",
                )
                .bind(&role.code)
                .bind(&role.name)
                .bind(&role.description)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn put_channel(&self, channel: &$crate::model::Channel) -> $crate::store::Result<()> {
                let definition =
                    serde_json::to_string(channel).map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO channels (id, definition, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, \
                     updated_at = excluded.updated_at",
                )
                .bind(&channel.id)
                .bind(definition)
                .bind($crate::store::sql::now_micros())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn participants(&self) -> $crate::store::Result<Vec<$crate::model::Participant>> {
                use sqlx::Row;
                use std::collections::HashMap;
                let mut roles: HashMap<String, Vec<String>> = HashMap::new();
                for r in sqlx::query("SELECT dip_id, role FROM participant_roles ORDER BY dip_id, role")
                    .fetch_all(self.reader())
                    .await?
                {
                    roles.entry(r.get(0)).or_default().push(r.get(1));
                }
                let mut noms: HashMap<String, Vec<String>> = HashMap::new();
                for r in sqlx::query(
                    "SELECT participant_dip_id, dcp_dip_id FROM dcp_nominations \
                     ORDER BY participant_dip_id, dcp_dip_id",
                )
                .fetch_all(self.reader())
                .await?
                {
                    noms.entry(r.get(0)).or_default().push(r.get(1));
                }
                let mut out = Vec::new();
                for r in sqlx::query("SELECT dip_id, mpid, name, kind, active FROM participants ORDER BY dip_id")
                    .fetch_all(self.reader())
                    .await?
                {
                    let dip_id: String = r.get(0);
                    let kind: String = r.get(3);
                    out.push($crate::model::Participant {
                        kind: $crate::model::ParticipantKind::parse(&kind)
                            .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("participant kind {kind}")))?,
                        mpid: r.get(1),
                        name: r.get(2),
                        active: r.get(4),
                        roles: roles.remove(&dip_id).unwrap_or_default(),
                        nominated_dcps: noms.remove(&dip_id).unwrap_or_default(),
                        dip_id,
                    });
                }
                Ok(out)
            }

            async fn put_participant(&self, p: &$crate::model::Participant) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO participants (dip_id, mpid, name, kind, active, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dip_id) DO UPDATE SET \
                     mpid = excluded.mpid, name = excluded.name, kind = excluded.kind, \
                     active = excluded.active, updated_at = excluded.updated_at",
                )
                .bind(&p.dip_id)
                .bind(&p.mpid)
                .bind(&p.name)
                .bind(p.kind.as_str())
                .bind(p.active)
                .bind($crate::store::sql::now_micros())
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM participant_roles WHERE dip_id = $1")
                    .bind(&p.dip_id)
                    .execute(&mut *tx)
                    .await?;
                for role in &p.roles {
                    sqlx::query("INSERT INTO participant_roles (dip_id, role) VALUES ($1, $2)")
                        .bind(&p.dip_id)
                        .bind(role)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM dcp_nominations WHERE participant_dip_id = $1")
                    .bind(&p.dip_id)
                    .execute(&mut *tx)
                    .await?;
                for dcp in &p.nominated_dcps {
                    sqlx::query("INSERT INTO dcp_nominations (participant_dip_id, dcp_dip_id) VALUES ($1, $2)")
                        .bind(&p.dip_id)
                        .bind(dcp)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn endpoints(&self) -> $crate::store::Result<Vec<$crate::model::Endpoint>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT id, dip_id, name, url, channels FROM endpoints ORDER BY dip_id, name")
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(|r| {
                        let channels: String = r.get(4);
                        Ok($crate::model::Endpoint {
                            id: r.get(0),
                            dip_id: r.get(1),
                            name: r.get(2),
                            url: r.get(3),
                            channels: $crate::store::sql::decode_list(&channels)?,
                        })
                    })
                    .collect()
            }

            async fn put_endpoint(&self, e: &$crate::model::Endpoint) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO endpoints (id, dip_id, name, url, channels) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET url = excluded.url, channels = excluded.channels",
                )
                .bind(&e.id)
                .bind(&e.dip_id)
                .bind(&e.name)
                .bind(&e.url)
                .bind($crate::store::sql::encode_list(&e.channels))
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn put_api_key(&self, k: &$crate::store::ApiKeyRecord) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO api_keys (key_id, secret_hash, dip_id, name, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO UPDATE SET \
                     secret_hash = excluded.secret_hash, dip_id = excluded.dip_id, \
                     name = excluded.name, revoked_at = excluded.revoked_at",
                )
                .bind(&k.key_id)
                .bind(&k.secret_hash)
                .bind(&k.dip_id)
                .bind(&k.name)
                .bind(k.created_at)
                .bind(k.revoked_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn api_key(&self, key_id: &str) -> $crate::store::Result<Option<$crate::store::ApiKeyRecord>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT key_id, secret_hash, dip_id, name, created_at, revoked_at \
                     FROM api_keys WHERE key_id = $1",
                )
                .bind(key_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|r| $crate::store::ApiKeyRecord {
                    key_id: r.get(0),
                    secret_hash: r.get(1),
                    dip_id: r.get(2),
                    name: r.get(3),
                    created_at: r.get(4),
                    revoked_at: r.get(5),
                }))
            }

            async fn put_appointments(&self, rows: &[$crate::model::Appointment]) -> $crate::store::Result<u64> {
                let mut tx = self.writer().begin().await?;
                let n = Self::upsert_appointments(&mut tx, rows).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn appointments(&self, mpans: &[String]) -> $crate::store::Result<Vec<$crate::model::Appointment>> {
                use sqlx::Row;
                // Each MPAN once and in order, so that rows stay ordered across chunks.
                let mut mpans: Vec<&String> = mpans.iter().collect();
                mpans.sort();
                mpans.dedup();
                let mut out = Vec::new();
                for chunk in mpans.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT mpan, role, effective_from, dip_id, source_transaction_id \
                         FROM appointments WHERE mpan IN (",
                    );
                    let mut list = qb.separated(", ");
                    for m in chunk {
                        list.push_bind(m);
                    }
                    qb.push(") ORDER BY mpan, role, effective_from");
                    for r in qb.build().fetch_all(self.reader()).await? {
                        out.push($crate::model::Appointment {
                            mpan: r.get(0),
                            role: r.get(1),
                            effective_from: r.get(2),
                            dip_id: r.get(3),
                            source_transaction_id: r.get(4),
                        });
                    }
                }
                Ok(out)
            }

            async fn commit_messages(
                &self,
                batch: &[$crate::store::NewMessage],
            ) -> $crate::store::Result<Vec<$crate::store::CommitOutcome>> {
                use sqlx::Row;
                use std::collections::{BTreeMap, HashMap, HashSet};
                use $crate::store::CommitOutcome;

                // First occurrence of each idempotency key; later ones are duplicates of it.
                let mut first: HashMap<(&str, &str), usize> = HashMap::new();
                let mut unique: Vec<usize> = Vec::new();
                for (i, m) in batch.iter().enumerate() {
                    let key = (m.sender_dip_id.as_str(), m.sender_unique_reference.as_str());
                    if !first.contains_key(&key) {
                        first.insert(key, i);
                        unique.push(i);
                    }
                }
                // Keys in one order in every transaction, so concurrent writers never deadlock.
                unique.sort_by(|&a, &b| {
                    (&batch[a].sender_dip_id, &batch[a].sender_unique_reference)
                        .cmp(&(&batch[b].sender_dip_id, &batch[b].sender_unique_reference))
                });

                let mut tx = self.writer().begin().await?;
                let mut inserted: HashSet<String> = HashSet::new();
                for chunk in unique.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO messages (transaction_id, sender_dip_id, sender_unique_reference, \
                         content_hash, interface_id, schema_version, event_code, sender_role, dcp_dip_id, \
                         mpan, correlation_id, received_at, routing) ",
                    );
                    qb.push_values(chunk, |mut b, &i| {
                        let m = &batch[i];
                        b.push_bind(&m.transaction_id)
                            .push_bind(&m.sender_dip_id)
                            .push_bind(&m.sender_unique_reference)
                            .push_bind(&m.content_hash)
                            .push_bind(&m.interface_id)
                            .push_bind(&m.schema_version)
                            .push_bind(&m.event_code)
                            .push_bind(&m.sender_role)
                            .push_bind(&m.dcp_dip_id)
                            .push_bind(&m.mpan)
                            .push_bind(&m.correlation_id)
                            .push_bind(m.received_at)
                            .push_bind(&m.routing);
                    });
                    qb.push(
                        " ON CONFLICT (sender_dip_id, sender_unique_reference) DO NOTHING \
                         RETURNING transaction_id",
                    );
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        inserted.insert(r.get(0));
                    }
                }

                let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; batch.len()];
                for &i in &unique {
                    let m = &batch[i];
                    if inserted.contains(&m.transaction_id) {
                        outcomes[i] = Some(CommitOutcome::Accepted);
                        continue;
                    }
                    let r = sqlx::query($crate::store::sql::ORIGINAL)
                        .bind(&m.sender_dip_id)
                        .bind(&m.sender_unique_reference)
                        .fetch_one(&mut *tx)
                        .await?;
                    outcomes[i] = Some(CommitOutcome::Duplicate {
                        transaction_id: r.get(0),
                        correlation_id: r.get(1),
                        content_hash: r.get(2),
                    });
                }
                // Items repeating a key earlier in the batch duplicate that item.
                for (i, m) in batch.iter().enumerate() {
                    if outcomes[i].is_some() {
                        continue;
                    }
                    let f = first[&(m.sender_dip_id.as_str(), m.sender_unique_reference.as_str())];
                    outcomes[i] = Some(match &outcomes[f] {
                        Some(CommitOutcome::Accepted) => CommitOutcome::Duplicate {
                            transaction_id: batch[f].transaction_id.clone(),
                            correlation_id: batch[f].correlation_id.clone(),
                            content_hash: batch[f].content_hash.clone(),
                        },
                        other => other.clone().expect("first occurrence decided above"),
                    });
                }

                // Accepted messages in receipt (transaction id) order: that is their queue order.
                let mut accepted: Vec<&$crate::store::NewMessage> = batch
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| matches!(o, Some(CommitOutcome::Accepted)))
                    .map(|(m, _)| m)
                    .collect();
                accepted.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id));

                for chunk in accepted.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO archive (transaction_id, interface_id, received_at, retain_until, envelope) ",
                    );
                    qb.push_values(chunk, |mut b, m| {
                        b.push_bind(&m.transaction_id)
                            .push_bind(&m.interface_id)
                            .push_bind(m.received_at)
                            .push_bind(m.retain_until)
                            .push_bind(&m.envelope);
                    });
                    qb.build().execute(&mut *tx).await?;
                }

                // Reserve queue positions: one counter row per queue, locked in queue order.
                let mut per_queue: BTreeMap<&str, i64> = BTreeMap::new();
                for m in &accepted {
                    for d in &m.deliveries {
                        *per_queue.entry(d.queue_id.as_str()).or_default() += 1;
                    }
                }
                let mut next_seq: HashMap<String, i64> = HashMap::new();
                let queues: Vec<(&str, i64)> = per_queue.into_iter().collect();
                for chunk in queues.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO queue_counters (queue_id, last_seq) ");
                    qb.push_values(chunk, |mut b, (q, n)| {
                        b.push_bind(*q).push_bind(*n);
                    });
                    qb.push(
                        " ON CONFLICT (queue_id) DO UPDATE SET \
                         last_seq = queue_counters.last_seq + excluded.last_seq \
                         RETURNING queue_id, last_seq",
                    );
                    let counts: HashMap<&str, i64> = chunk.iter().copied().collect();
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        let q: String = r.get(0);
                        let last: i64 = r.get(1);
                        let n = counts.get(q.as_str()).copied().unwrap_or(0);
                        next_seq.insert(q, last - n + 1);
                    }
                }

                let mut entries = Vec::new();
                for m in &accepted {
                    for d in &m.deliveries {
                        let seq = next_seq.get_mut(&d.queue_id).ok_or_else(|| {
                            $crate::store::StoreError::Corrupt(format!("no position for {}", d.queue_id))
                        })?;
                        entries.push((*seq, m, d));
                        *seq += 1;
                    }
                }
                for chunk in entries.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO queue_entries (queue_id, seq, transaction_id, recipient_dip_id, \
                         recipient_role, hidden, state, enqueued_at) ",
                    );
                    qb.push_values(chunk, |mut b, (seq, m, d)| {
                        b.push_bind(&d.queue_id)
                            .push_bind(*seq)
                            .push_bind(&m.transaction_id)
                            .push_bind(&d.recipient_dip_id)
                            .push_bind(&d.recipient_role)
                            .push_bind($crate::store::sql::encode_list(&d.hidden))
                            .push_bind("pending")
                            .push_bind(m.received_at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }

                let appointments: Vec<$crate::model::Appointment> = accepted
                    .iter()
                    .flat_map(|m| m.appointments.iter().cloned())
                    .collect();
                Self::upsert_appointments(&mut tx, &appointments).await?;

                tx.commit().await?;
                Ok(outcomes
                    .into_iter()
                    .map(|o| o.expect("every outcome decided"))
                    .collect())
            }

            async fn original(
                &self,
                sender_dip_id: &str,
                reference: &str,
            ) -> $crate::store::Result<Option<$crate::store::Original>> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::sql::ORIGINAL)
                    .bind(sender_dip_id)
                    .bind(reference)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|r| $crate::store::Original {
                    transaction_id: r.get(0),
                    correlation_id: r.get(1),
                    content_hash: r.get(2),
                }))
            }

            async fn message(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Option<$crate::store::MessageRecord>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT transaction_id, sender_dip_id, sender_unique_reference, interface_id, \
                     schema_version, event_code, sender_role, dcp_dip_id, mpan, correlation_id, \
                     received_at, routing FROM messages WHERE transaction_id = $1",
                )
                .bind(transaction_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|r| $crate::store::MessageRecord {
                    transaction_id: r.get(0),
                    sender_dip_id: r.get(1),
                    sender_unique_reference: r.get(2),
                    interface_id: r.get(3),
                    schema_version: r.get(4),
                    event_code: r.get(5),
                    sender_role: r.get(6),
                    dcp_dip_id: r.get(7),
                    mpan: r.get(8),
                    correlation_id: r.get(9),
                    received_at: r.get(10),
                    routing: r.get(11),
                }))
            }

            async fn archived_envelope(&self, transaction_id: &str) -> $crate::store::Result<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT envelope FROM archive WHERE transaction_id = $1")
                        .bind(transaction_id)
                        .fetch_optional(self.reader())
                        .await?,
                )
            }

            async fn message_deliveries(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let rows = sqlx::query(
                    "SELECT queue_id, seq, transaction_id, recipient_dip_id, recipient_role, hidden, \
                     state, enqueued_at FROM queue_entries WHERE transaction_id = $1 \
                     ORDER BY recipient_dip_id, queue_id",
                )
                .bind(transaction_id)
                .fetch_all(self.reader())
                .await?;
                rows.iter().map(Self::queue_entry).collect()
            }

            async fn pending_entries(
                &self,
                queue_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let rows = sqlx::query(
                    "SELECT queue_id, seq, transaction_id, recipient_dip_id, recipient_role, hidden, \
                     state, enqueued_at FROM queue_entries \
                     WHERE queue_id = $1 AND seq > $2 AND state = 'pending' ORDER BY seq LIMIT $3",
                )
                .bind(queue_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.iter().map(Self::queue_entry).collect()
            }

            async fn queue_stats(&self, queue_ids: &[String]) -> $crate::store::Result<Vec<$crate::store::QueueStat>> {
                use sqlx::Row;
                let mut out = Vec::new();
                for q in queue_ids {
                    let r = sqlx::query(
                        "SELECT COUNT(*), MIN(enqueued_at) FROM queue_entries \
                         WHERE queue_id = $1 AND state = 'pending'",
                    )
                    .bind(q)
                    .fetch_one(self.reader())
                    .await?;
                    out.push($crate::store::QueueStat {
                        queue_id: q.clone(),
                        pending: r.get(0),
                        oldest_enqueued_at: r.get(1),
                    });
                }
                Ok(out)
            }
        }

        impl $store {
            fn queue_entry(r: &<$db as sqlx::Database>::Row) -> $crate::store::Result<$crate::store::QueueEntry> {
                use sqlx::Row;
                let hidden: String = r.get(5);
                Ok($crate::store::QueueEntry {
                    queue_id: r.get(0),
                    seq: r.get(1),
                    transaction_id: r.get(2),
                    recipient_dip_id: r.get(3),
                    recipient_role: r.get(4),
                    hidden: $crate::store::sql::decode_list(&hidden)?,
                    state: r.get(6),
                    enqueued_at: r.get(7),
                })
            }

            async fn upsert_appointments(
                tx: &mut sqlx::Transaction<'_, $db>,
                rows: &[$crate::model::Appointment],
            ) -> $crate::store::Result<u64> {
                // One row per key, in key order so that writers never deadlock. The last one
                // wins, except that a de-appointment never replaces an appointment (below).
                let mut by_key: std::collections::BTreeMap<(&str, &str, &str), &$crate::model::Appointment> =
                    std::collections::BTreeMap::new();
                for a in rows {
                    let slot = by_key.entry((&a.mpan, &a.role, &a.effective_from)).or_insert(a);
                    if a.dip_id.is_some() || slot.dip_id.is_none() {
                        *slot = a;
                    }
                }
                let rows: Vec<&$crate::model::Appointment> = by_key.into_values().collect();
                let now = $crate::store::sql::now_micros();
                let mut n = 0;
                for chunk in rows.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO appointments (mpan, role, effective_from, dip_id, \
                         source_transaction_id, recorded_at) ",
                    );
                    qb.push_values(chunk, |mut b, a| {
                        b.push_bind(&a.mpan)
                            .push_bind(&a.role)
                            .push_bind(&a.effective_from)
                            .push_bind(&a.dip_id)
                            .push_bind(&a.source_transaction_id)
                            .push_bind(now);
                    });
                    // On one date an appointment beats a de-appointment: the new service's
                    // appointment (IF-036) and the old one's de-appointment (IF-037) usually
                    // share the date, and may arrive in either order.
                    qb.push(
                        " ON CONFLICT (mpan, role, effective_from) DO UPDATE SET \
                         dip_id = excluded.dip_id, source_transaction_id = excluded.source_transaction_id, \
                         recorded_at = excluded.recorded_at \
                         WHERE excluded.dip_id IS NOT NULL OR appointments.dip_id IS NULL",
                    );
                    n += qb.build().execute(&mut **tx).await?.rows_affected();
                }
                Ok(n)
            }
        }
    };
}

pub(super) use impl_sql_store;
