//! The SQL both stores run, written once. `impl_sql_store!` expands it for a store type
//! that provides `writer()`, `reader()` pools and `run_migrations()`; the statements use
//! `$N` placeholders, which PostgreSQL and SQLite both accept.

/// Rows per multi-row INSERT: keeps every statement under both databases' bind limits.
pub(super) const CHUNK: usize = 500;

/// Columns of a queue entry, in the order `queue_entry` reads them (table alias `q`).
pub(super) const ENTRY: &str = "q.queue_id, q.seq, q.transaction_id, q.recipient_dip_id, q.recipient_role, \
     q.hidden, q.state, q.enqueued_at, q.attempts, q.last_attempt_at, q.last_outcome, q.settled_at, q.replay_id";

/// Number of columns in [`ENTRY`].
pub(super) const ENTRY_LEN: usize = 13;

/// A queue entry to create.
pub(super) struct NewEntry<'a> {
    pub queue_id: &'a str,
    pub transaction_id: &'a str,
    pub recipient_dip_id: &'a str,
    pub recipient_role: &'a str,
    pub hidden: String,
    pub enqueued_at: i64,
    pub replay_id: Option<&'a str>,
}

/// An event about an existing queue entry; the rest is read from the entry and its
/// message when the event is written.
pub(super) struct EntryEvent<'a> {
    pub queue_id: &'a str,
    pub seq: i64,
    pub kind: crate::events::EventKind,
    pub at: i64,
    pub outcome: &'a str,
    pub duration_us: i64,
}

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

            async fn message_deliveries(
                &self,
                transaction_id: &str,
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM queue_entries q WHERE q.transaction_id = $1 \
                     ORDER BY q.recipient_dip_id, q.queue_id, q.seq",
                    $crate::store::sql::ENTRY
                ))
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
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM queue_entries q \
                     WHERE q.queue_id = $1 AND q.seq > $2 AND q.state = 'pending' ORDER BY q.seq LIMIT $3",
                    $crate::store::sql::ENTRY
                ))
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

            async fn next_outbound(
                &self,
                queue_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::Outbound>> {
                use sqlx::Row;
                let rows = sqlx::query(&format!(
                    "SELECT {}, a.interface_id, a.envelope, m.sender_dip_id, m.sender_unique_reference, \
                     m.sender_role, m.correlation_id, m.mpan, m.received_at \
                     FROM queue_entries q JOIN archive a ON a.transaction_id = q.transaction_id \
                     LEFT JOIN messages m ON m.transaction_id = q.transaction_id \
                     WHERE q.queue_id = $1 AND q.seq > $2 AND q.state = 'pending' ORDER BY q.seq LIMIT $3",
                    $crate::store::sql::ENTRY
                ))
                .bind(queue_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                let n = $crate::store::sql::ENTRY_LEN;
                rows.iter()
                    .map(|r| {
                        let sender: Option<String> = r.get(n + 2);
                        Ok($crate::store::Outbound {
                            entry: Self::queue_entry(r)?,
                            interface_id: r.get(n),
                            envelope: r.get(n + 1),
                            origin: sender.map(|sender_dip_id| $crate::store::Origin {
                                sender_dip_id,
                                sender_unique_reference: r.get(n + 3),
                                sender_role: r.get(n + 4),
                                correlation_id: r.get(n + 5),
                                mpan: r.get(n + 6),
                                received_at: r.get(n + 7),
                            }),
                        })
                    })
                    .collect()
            }

            async fn settle(
                &self,
                settlements: &[$crate::store::Settlement],
                reports: &[$crate::store::NewMessage],
            ) -> $crate::store::Result<()> {
                use $crate::store::EntryState;
                let mut sorted: Vec<&$crate::store::Settlement> = settlements.iter().collect();
                sorted.sort_by(|a, b| (&a.queue_id, a.seq).cmp(&(&b.queue_id, b.seq)));
                let mut tx = self.writer().begin().await?;
                let mut settled: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
                for chunk in sorted.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE queue_entries SET state = v.column3, settled_at = v.column4, \
                         attempts = queue_entries.attempts + v.column6, \
                         last_attempt_at = CASE WHEN v.column6 > 0 THEN v.column4 ELSE queue_entries.last_attempt_at END, \
                         last_outcome = v.column5 FROM (",
                    );
                    qb.push_values(chunk, |mut b, st| {
                        let attempted: i64 = if st.state == EntryState::Dead { 0 } else { 1 };
                        b.push_bind(&st.queue_id)
                            .push_bind(st.seq)
                            .push_bind(st.state.as_str())
                            .push_bind(st.at)
                            .push_bind(&st.outcome)
                            .push_bind(attempted);
                    });
                    qb.push(
                        ") AS v WHERE queue_entries.queue_id = v.column1 AND queue_entries.seq = v.column2 \
                         AND queue_entries.state = 'pending' RETURNING queue_id, seq",
                    );
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        use sqlx::Row;
                        settled.insert((r.get::<String, _>(0), r.get::<i64, _>(1)));
                    }
                }
                // Events only for entries this call settled: a repeat changes nothing.
                let events: Vec<$crate::store::sql::EntryEvent<'_>> = sorted
                    .iter()
                    .filter(|st| settled.contains(&(st.queue_id.clone(), st.seq)))
                    .map(|st| $crate::store::sql::EntryEvent {
                        queue_id: &st.queue_id,
                        seq: st.seq,
                        kind: match st.state {
                            EntryState::Returned => $crate::events::EventKind::Returned,
                            EntryState::Dead => $crate::events::EventKind::DeadLettered,
                            _ => $crate::events::EventKind::Delivered,
                        },
                        at: st.at,
                        outcome: &st.outcome,
                        duration_us: st.duration_us,
                    })
                    .collect();
                Self::entry_events(&mut tx, &events).await?;
                // A recipient that answered is reachable, whatever it answered.
                let mut answered: std::collections::BTreeMap<&str, (i64, &str)> = std::collections::BTreeMap::new();
                for st in settlements
                    .iter()
                    .filter(|st| matches!(st.state, EntryState::Delivered | EntryState::Returned))
                {
                    let slot = answered.entry(&st.queue_id).or_insert((st.at, &st.outcome));
                    if st.at >= slot.0 {
                        *slot = (st.at, &st.outcome);
                    }
                }
                for (queue, (at, outcome)) in answered {
                    sqlx::query(
                        "UPDATE queue_status SET last_attempt_at = $2, last_outcome = $3, last_success_at = $2, \
                         failing_since = NULL, retry_at = NULL WHERE queue_id = $1",
                    )
                    .bind(queue)
                    .bind(at)
                    .bind(outcome)
                    .execute(&mut *tx)
                    .await?;
                }
                let queues = if reports.is_empty() {
                    vec![]
                } else {
                    Self::insert_messages(&mut tx, reports).await?.1
                };
                self.finish(tx, queues).await
            }

            async fn record_failure(&self, f: &$crate::store::AttemptFailure) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                let changed = sqlx::query(
                    "UPDATE queue_entries SET attempts = attempts + 1, last_attempt_at = $3, last_outcome = $4 \
                     WHERE queue_id = $1 AND seq = $2 AND state = 'pending'",
                )
                .bind(&f.queue_id)
                .bind(f.seq)
                .bind(f.at)
                .bind(&f.outcome)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed > 0 {
                    let event = $crate::store::sql::EntryEvent {
                        queue_id: &f.queue_id,
                        seq: f.seq,
                        kind: $crate::events::EventKind::FailedAttempt,
                        at: f.at,
                        outcome: &f.outcome,
                        duration_us: f.duration_us,
                    };
                    Self::entry_events(&mut tx, std::slice::from_ref(&event)).await?;
                }
                sqlx::query(
                    "UPDATE queue_status SET last_attempt_at = $2, last_outcome = $3, \
                     failing_since = COALESCE(failing_since, $2), retry_at = $4 WHERE queue_id = $1",
                )
                .bind(&f.queue_id)
                .bind(f.at)
                .bind(&f.outcome)
                .bind(f.retry_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.outbox.notify_one();
                Ok(())
            }

            async fn pending_by_transaction(
                &self,
                queue_id: &str,
                transaction_ids: &[String],
            ) -> $crate::store::Result<Vec<$crate::store::QueueEntry>> {
                let mut out = Vec::new();
                for chunk in transaction_ids.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM queue_entries q WHERE q.state = 'pending' AND q.queue_id = ",
                        $crate::store::sql::ENTRY
                    ));
                    qb.push_bind(queue_id).push(" AND q.transaction_id IN (");
                    let mut list = qb.separated(", ");
                    for t in chunk {
                        list.push_bind(t);
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(self.writer()).await? {
                        out.push(Self::queue_entry(&r)?);
                    }
                }
                out.sort_by_key(|e| e.seq);
                Ok(out)
            }

            async fn queue_health(
                &self,
                queue_ids: &[String],
            ) -> $crate::store::Result<Vec<$crate::store::QueueHealth>> {
                use sqlx::Row;
                let mut out = Vec::with_capacity(queue_ids.len());
                for q in queue_ids {
                    let r = sqlx::query(
                        "SELECT (SELECT COUNT(*) FROM queue_entries WHERE queue_id = $1 AND state = 'pending'), \
                         (SELECT MIN(enqueued_at) FROM queue_entries WHERE queue_id = $1 AND state = 'pending'), \
                         (SELECT COUNT(*) FROM queue_entries WHERE queue_id = $1 AND state = 'dead'), \
                         s.owner, COALESCE(s.lease_until, 0), s.last_attempt_at, s.last_outcome, s.last_success_at, \
                         s.failing_since, s.retry_at \
                         FROM (SELECT 1 AS one) AS x LEFT JOIN queue_status s ON s.queue_id = $1",
                    )
                    .bind(q)
                    .fetch_one(self.reader())
                    .await?;
                    out.push($crate::store::QueueHealth {
                        queue_id: q.clone(),
                        pending: r.get(0),
                        oldest_enqueued_at: r.get(1),
                        dead: r.get(2),
                        owner: r.get(3),
                        lease_until: r.get(4),
                        last_attempt_at: r.get(5),
                        last_outcome: r.get(6),
                        last_success_at: r.get(7),
                        failing_since: r.get(8),
                        retry_at: r.get(9),
                    });
                }
                Ok(out)
            }

            async fn queue_ids(&self) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT queue_id FROM queue_counters ORDER BY queue_id")
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn claim_queues(
                &self,
                owner: &str,
                queue_ids: &[String],
                now: i64,
                until: i64,
            ) -> $crate::store::Result<Vec<String>> {
                let mut ids: Vec<&String> = queue_ids.iter().collect();
                ids.sort();
                ids.dedup();
                let mut held = Vec::new();
                for chunk in ids.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO queue_status (queue_id, owner, lease_until) ");
                    qb.push_values(chunk, |mut b, q| {
                        b.push_bind(*q).push_bind(owner).push_bind(until);
                    });
                    qb.push(
                        " ON CONFLICT (queue_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
                         WHERE queue_status.owner IS NULL OR queue_status.owner = excluded.owner \
                         OR queue_status.lease_until < ",
                    );
                    qb.push_bind(now).push(" RETURNING queue_id");
                    held.extend(qb.build_query_scalar::<String>().fetch_all(self.writer()).await?);
                }
                Ok(held)
            }

            async fn renew_leases(&self, owner: &str, until: i64) -> $crate::store::Result<Vec<String>> {
                Ok(
                    sqlx::query_scalar("UPDATE queue_status SET lease_until = $2 WHERE owner = $1 RETURNING queue_id")
                        .bind(owner)
                        .bind(until)
                        .fetch_all(self.writer())
                        .await?,
                )
            }

            async fn release_queue(&self, owner: &str, queue_id: &str) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE queue_status SET owner = NULL, lease_until = 0 WHERE queue_id = $1 AND owner = $2")
                    .bind(queue_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                // Work left behind (a node stopping) is announced, so another node takes
                // the queue at once rather than at its next sweep.
                let pending: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM queue_entries WHERE queue_id = $1 AND state = 'pending')",
                )
                .bind(queue_id)
                .fetch_one(&mut *tx)
                .await?;
                self.finish(tx, if pending { vec![queue_id.to_owned()] } else { vec![] }).await
            }

            async fn lease(&self, queue_id: &str) -> $crate::store::Result<Option<(String, i64)>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT owner, lease_until FROM queue_status WHERE queue_id = $1")
                    .bind(queue_id)
                    .fetch_optional(self.writer())
                    .await?;
                Ok(row.and_then(|r| {
                    let owner: Option<String> = r.get(0);
                    owner.map(|o| (o, r.get(1)))
                }))
            }

            async fn claimable_queues(&self, now: i64) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT c.queue_id FROM queue_counters c LEFT JOIN queue_status s ON s.queue_id = c.queue_id \
                     WHERE (s.owner IS NULL OR s.lease_until < $1) AND EXISTS (SELECT 1 FROM queue_entries e \
                     WHERE e.queue_id = c.queue_id AND e.state = 'pending') ORDER BY c.queue_id",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }

            async fn dead_letters(
                &self,
                f: &$crate::store::DeadLetterFilter,
            ) -> $crate::store::Result<Vec<$crate::store::DeadLetter>> {
                use sqlx::Row;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {}, a.interface_id, m.sender_dip_id, m.sender_unique_reference \
                     FROM queue_entries q JOIN archive a ON a.transaction_id = q.transaction_id \
                     LEFT JOIN messages m ON m.transaction_id = q.transaction_id WHERE q.state = 'dead'",
                    $crate::store::sql::ENTRY
                ));
                if let Some(recipients) = &f.recipients {
                    if recipients.is_empty() {
                        return Ok(vec![]);
                    }
                    qb.push(" AND q.recipient_dip_id IN (");
                    let mut list = qb.separated(", ");
                    for r in recipients.iter().take($crate::store::sql::CHUNK) {
                        list.push_bind(r);
                    }
                    qb.push(")");
                }
                if let Some(v) = &f.queue_id {
                    qb.push(" AND q.queue_id = ").push_bind(v);
                }
                if let Some(v) = f.seq {
                    qb.push(" AND q.seq = ").push_bind(v);
                }
                if let Some(v) = &f.interface_id {
                    qb.push(" AND a.interface_id = ").push_bind(v);
                }
                if let Some(v) = &f.sender_dip_id {
                    qb.push(" AND m.sender_dip_id = ").push_bind(v);
                }
                if let Some(v) = f.from {
                    qb.push(" AND q.settled_at >= ").push_bind(v);
                }
                if let Some(v) = f.to {
                    qb.push(" AND q.settled_at < ").push_bind(v);
                }
                qb.push(" ORDER BY q.settled_at, q.queue_id, q.seq LIMIT ").push_bind(f.limit.max(0));
                let n = $crate::store::sql::ENTRY_LEN;
                qb.build()
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok($crate::store::DeadLetter {
                            entry: Self::queue_entry(r)?,
                            interface_id: r.get(n),
                            sender_dip_id: r.get(n + 1),
                            sender_unique_reference: r.get(n + 2),
                        })
                    })
                    .collect()
            }

            async fn redrive(&self, entries: &[(String, i64)], at: i64) -> $crate::store::Result<Vec<(String, i64, i64)>> {
                use sqlx::Row;
                let mut sorted: Vec<&(String, i64)> = entries.iter().collect();
                sorted.sort();
                sorted.dedup();
                let mut tx = self.writer().begin().await?;
                let mut revived: Vec<(String, i64, String, String, String, String, Option<String>)> = Vec::new();
                for (queue, seq) in sorted {
                    let row = sqlx::query(
                        "UPDATE queue_entries SET state = 'redriven', settled_at = $3 \
                         WHERE queue_id = $1 AND seq = $2 AND state = 'dead' \
                         RETURNING transaction_id, recipient_dip_id, recipient_role, hidden, replay_id",
                    )
                    .bind(queue)
                    .bind(seq)
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(r) = row {
                        revived.push((queue.clone(), *seq, r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)));
                    }
                }
                let new: Vec<$crate::store::sql::NewEntry<'_>> = revived
                    .iter()
                    .map(|(queue, _, tx_id, dip, role, hidden, replay)| $crate::store::sql::NewEntry {
                        queue_id: queue,
                        transaction_id: tx_id,
                        recipient_dip_id: dip,
                        recipient_role: role,
                        hidden: hidden.clone(),
                        enqueued_at: at,
                        replay_id: replay.as_deref(),
                    })
                    .collect();
                let seqs = Self::enqueue(&mut tx, &new).await?;
                let events: Vec<$crate::store::sql::EntryEvent<'_>> = revived
                    .iter()
                    .map(|r| $crate::store::sql::EntryEvent {
                        queue_id: &r.0,
                        seq: r.1,
                        kind: $crate::events::EventKind::Redriven,
                        at,
                        outcome: "",
                        duration_us: 0,
                    })
                    .collect();
                Self::entry_events(&mut tx, &events).await?;
                drop(events);
                let mut queues: Vec<String> = revived.iter().map(|r| r.0.clone()).collect();
                queues.dedup();
                let out = revived.iter().zip(seqs).map(|(r, s)| (r.0.clone(), r.1, s)).collect();
                drop(new);
                self.finish(tx, queues).await?;
                Ok(out)
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
                let entries: Vec<$crate::store::sql::NewEntry<'_>> = copies
                    .iter()
                    .map(|c| $crate::store::sql::NewEntry {
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

            /// Appends events about queue entries, completed from each entry and its
            /// message (latency counts from receipt, or from queueing for replay copies).
            async fn entry_events(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::store::sql::EntryEvent<'_>],
            ) -> $crate::store::Result<()> {
                for chunk in events.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO analytics_outbox ({}) SELECT v.column3, v.column4, q.transaction_id, \
                         a.interface_id, COALESCE(m.sender_dip_id, ''), q.recipient_dip_id, q.queue_id, v.column5, \
                         v.column4 - COALESCE(m.received_at, q.enqueued_at), v.column6, \
                         CASE WHEN q.replay_id IS NULL THEN 0 ELSE 1 END FROM (",
                        $crate::store::sql::EVENT_COLUMNS
                    ));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.queue_id)
                            .push_bind(e.seq)
                            .push_bind(e.kind.as_str())
                            .push_bind(e.at)
                            .push_bind(e.outcome)
                            .push_bind(e.duration_us);
                    });
                    qb.push(
                        ") AS v JOIN queue_entries q ON q.queue_id = v.column1 AND q.seq = v.column2 \
                         JOIN archive a ON a.transaction_id = q.transaction_id \
                         LEFT JOIN messages m ON m.transaction_id = q.transaction_id",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Appends entries to their queues in the order given. Each queue's counter row
            /// is locked (in queue order, so writers never deadlock) until commit, which
            /// makes positions follow commit order.
            async fn enqueue(
                tx: &mut sqlx::Transaction<'_, $db>,
                entries: &[$crate::store::sql::NewEntry<'_>],
            ) -> $crate::store::Result<Vec<i64>> {
                use sqlx::Row;
                use std::collections::{BTreeMap, HashMap};
                let mut per_queue: BTreeMap<&str, i64> = BTreeMap::new();
                for e in entries {
                    *per_queue.entry(e.queue_id).or_default() += 1;
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
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        let q: String = r.get(0);
                        let last: i64 = r.get(1);
                        let n = counts.get(q.as_str()).copied().unwrap_or(0);
                        next_seq.insert(q, last - n + 1);
                    }
                }
                let mut seqs = Vec::with_capacity(entries.len());
                for e in entries {
                    let seq = next_seq.get_mut(e.queue_id).ok_or_else(|| {
                        $crate::store::StoreError::Corrupt(format!("no position for {}", e.queue_id))
                    })?;
                    seqs.push(*seq);
                    *seq += 1;
                }
                let rows: Vec<(i64, &$crate::store::sql::NewEntry<'_>)> = seqs.iter().copied().zip(entries).collect();
                for chunk in rows.chunks($crate::store::sql::CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO queue_entries (queue_id, seq, transaction_id, recipient_dip_id, \
                         recipient_role, hidden, state, enqueued_at, replay_id) ",
                    );
                    qb.push_values(chunk, |mut b, (seq, e)| {
                        b.push_bind(e.queue_id)
                            .push_bind(*seq)
                            .push_bind(e.transaction_id)
                            .push_bind(e.recipient_dip_id)
                            .push_bind(e.recipient_role)
                            .push_bind(&e.hidden)
                            .push_bind("pending")
                            .push_bind(e.enqueued_at)
                            .push_bind(e.replay_id);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(seqs)
            }

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
                    attempts: r.get(8),
                    last_attempt_at: r.get(9),
                    last_outcome: r.get(10),
                    settled_at: r.get(11),
                    replay_id: r.get(12),
                })
            }
        }

        $crate::store::directory::impl_directory_store!($store, $db);
        $crate::store::messages::impl_message_store!($store, $db);
        $crate::store::accounts::impl_account_store!($store, $db);
        $crate::store::alarms::impl_alarm_store!($store, $db);
    };
}

pub(super) use impl_sql_store;
