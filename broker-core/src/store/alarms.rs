//! Alarm rules, their history and subscriptions, and the mail outbox. An alarm's change
//! of state, its history entry and the notices to its subscribers are written in one
//! transaction; the mailer sends from the outbox afterwards.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Result;

/// What an alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The 90th percentile end-to-end latency over the window exceeds `threshold` ms.
    Latency,
    /// At least `threshold` messages were dead-lettered within the window.
    DeadLetters,
    /// An endpoint has failed for more than `threshold` seconds.
    EndpointFailing,
    /// A certificate expires within `threshold` days.
    CertificateExpiring,
}

impl AlarmKind {
    /// Every kind.
    pub const ALL: [AlarmKind; 4] = [
        Self::Latency,
        Self::DeadLetters,
        Self::EndpointFailing,
        Self::CertificateExpiring,
    ];

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::DeadLetters => "dead_letters",
            Self::EndpointFailing => "endpoint_failing",
            Self::CertificateExpiring => "certificate_expiring",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRule {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What it watches.
    pub kind: AlarmKind,
    /// Only this channel; empty: any.
    pub interface_id: String,
    /// Only this recipient (endpoint owner, certificate holder); empty: any.
    pub recipient_dip_id: String,
    /// The limit, in the kind's unit.
    pub threshold: i64,
    /// Look-back window for latency and dead letters, seconds.
    pub window_secs: i64,
    /// The participant whose traffic it watches; `None` for the operator's rules.
    pub owner_dip_id: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// Evaluated at all.
    pub enabled: bool,
    /// Since when raised; `None` when clear.
    pub raised_at: Option<i64>,
    /// What the last evaluation saw.
    pub observed: String,
    /// When last evaluated.
    pub evaluated_at: Option<i64>,
    /// Created.
    pub created_at: i64,
}

/// A raise or clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmEvent {
    /// Sequence.
    pub id: i64,
    /// Rule.
    pub rule_id: String,
    /// `raised` or `cleared`.
    pub state: String,
    /// When.
    pub at: i64,
    /// What was seen.
    pub detail: String,
}

/// A notice to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Id in the outbox (0 before it is stored).
    pub id: i64,
    /// Address.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Persistence of alarms and the mail outbox.
#[async_trait]
pub trait AlarmStore: Send + Sync {
    /// Every rule, by name.
    async fn alarm_rules(&self) -> Result<Vec<AlarmRule>>;
    /// Creates or replaces a rule's definition (its state is kept).
    async fn put_alarm_rule(&self, rule: &AlarmRule) -> Result<()>;
    /// Deletes a rule with its subscriptions (its history stays).
    async fn delete_alarm_rule(&self, id: &str) -> Result<bool>;
    /// Records an evaluation. When `raise` differs from the rule's state, changes it,
    /// appends the history entry and queues `mails`, in one transaction; returns
    /// whether the state changed.
    async fn alarm_evaluated(&self, id: &str, raise: bool, at: i64, observed: &str, mails: &[Mail]) -> Result<bool>;
    /// Recent raises and clears, newest first; of one rule or of all.
    async fn alarm_history(&self, rule_id: Option<&str>, limit: i64) -> Result<Vec<AlarmEvent>>;
    /// Subscribes or unsubscribes a user.
    async fn set_alarm_subscription(&self, rule_id: &str, user_id: &str, on: bool) -> Result<()>;
    /// The users subscribed to a rule.
    async fn alarm_subscribers(&self, rule_id: &str) -> Result<Vec<String>>;
    /// The rules a user subscribes to.
    async fn subscriptions_of(&self, user_id: &str) -> Result<Vec<String>>;
    /// Unsent mail due at `now`, oldest first.
    async fn mail_due(&self, now: i64, limit: i64) -> Result<Vec<Mail>>;
    /// Marks a mail sent.
    async fn mail_sent(&self, id: i64, at: i64) -> Result<()>;
    /// Records a failed send; retried at `retry_at`.
    async fn mail_failed(&self, id: i64, error: &str, retry_at: i64) -> Result<()>;
}

/// Columns of `alarm_rules` in the order `rule_row` reads them.
pub(super) const RULE_COLUMNS: &str = "id, name, kind, interface_id, recipient_dip_id, threshold, window_secs, \
     owner_dip_id, created_by, enabled, raised_at, observed, evaluated_at, created_at";

macro_rules! impl_alarm_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::alarms::AlarmStore for $store {
            async fn alarm_rules(&self) -> $crate::store::Result<Vec<$crate::store::alarms::AlarmRule>> {
                use sqlx::Row;
                sqlx::query(&format!(
                    "SELECT {} FROM alarm_rules ORDER BY name, id",
                    $crate::store::alarms::RULE_COLUMNS
                ))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    let kind: String = r.get(2);
                    Ok($crate::store::alarms::AlarmRule {
                        id: r.get(0),
                        name: r.get(1),
                        kind: $crate::store::alarms::AlarmKind::parse(&kind)
                            .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("alarm kind {kind:?}")))?,
                        interface_id: r.get(3),
                        recipient_dip_id: r.get(4),
                        threshold: r.get(5),
                        window_secs: r.get(6),
                        owner_dip_id: r.get(7),
                        created_by: r.get(8),
                        enabled: r.get(9),
                        raised_at: r.get(10),
                        observed: r.get(11),
                        evaluated_at: r.get(12),
                        created_at: r.get(13),
                    })
                })
                .collect()
            }

            async fn put_alarm_rule(&self, rule: &$crate::store::alarms::AlarmRule) -> $crate::store::Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO alarm_rules ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
                     interface_id = excluded.interface_id, recipient_dip_id = excluded.recipient_dip_id, \
                     threshold = excluded.threshold, window_secs = excluded.window_secs, enabled = excluded.enabled",
                    $crate::store::alarms::RULE_COLUMNS
                ))
                .bind(&rule.id)
                .bind(&rule.name)
                .bind(rule.kind.as_str())
                .bind(&rule.interface_id)
                .bind(&rule.recipient_dip_id)
                .bind(rule.threshold)
                .bind(rule.window_secs)
                .bind(&rule.owner_dip_id)
                .bind(&rule.created_by)
                .bind(rule.enabled)
                .bind(rule.raised_at)
                .bind(&rule.observed)
                .bind(rule.evaluated_at)
                .bind(rule.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn delete_alarm_rule(&self, id: &str) -> $crate::store::Result<bool> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("DELETE FROM alarm_subscriptions WHERE rule_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query("DELETE FROM alarm_rules WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn alarm_evaluated(
                &self,
                id: &str,
                raise: bool,
                at: i64,
                observed: &str,
                mails: &[$crate::store::alarms::Mail],
            ) -> $crate::store::Result<bool> {
                let mut tx = self.writer().begin().await?;
                // The state changes only from the other state, so two evaluators racing
                // record one change.
                let changed = sqlx::query(if raise {
                    "UPDATE alarm_rules SET raised_at = $2, observed = $3, evaluated_at = $2 \
                     WHERE id = $1 AND raised_at IS NULL"
                } else {
                    "UPDATE alarm_rules SET raised_at = NULL, observed = $3, evaluated_at = $2 \
                     WHERE id = $1 AND raised_at IS NOT NULL"
                })
                .bind(id)
                .bind(at)
                .bind(observed)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if changed {
                    sqlx::query("INSERT INTO alarm_history (rule_id, state, at, detail) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(if raise { "raised" } else { "cleared" })
                        .bind(at)
                        .bind(observed)
                        .execute(&mut *tx)
                        .await?;
                    for m in mails {
                        sqlx::query(
                            "INSERT INTO mail_outbox (recipient, subject, body, created_at, next_attempt_at) \
                             VALUES ($1, $2, $3, $4, $4)",
                        )
                        .bind(&m.recipient)
                        .bind(&m.subject)
                        .bind(&m.body)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                } else {
                    sqlx::query("UPDATE alarm_rules SET observed = $2, evaluated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(observed)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn alarm_history(
                &self,
                rule_id: Option<&str>,
                limit: i64,
            ) -> $crate::store::Result<Vec<$crate::store::alarms::AlarmEvent>> {
                use sqlx::Row;
                let rows = match rule_id {
                    Some(id) => sqlx::query(
                        "SELECT id, rule_id, state, at, detail FROM alarm_history WHERE rule_id = $1 \
                         ORDER BY at DESC, id DESC LIMIT $2",
                    )
                    .bind(id)
                    .bind(limit),
                    None => sqlx::query(
                        "SELECT id, rule_id, state, at, detail FROM alarm_history ORDER BY at DESC, id DESC LIMIT $1",
                    )
                    .bind(limit),
                }
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| $crate::store::alarms::AlarmEvent {
                        id: r.get(0),
                        rule_id: r.get(1),
                        state: r.get(2),
                        at: r.get(3),
                        detail: r.get(4),
                    })
                    .collect())
            }

            async fn set_alarm_subscription(&self, rule_id: &str, user_id: &str, on: bool) -> $crate::store::Result<()> {
                sqlx::query(if on {
                    "INSERT INTO alarm_subscriptions (rule_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM alarm_subscriptions WHERE rule_id = $1 AND user_id = $2"
                })
                .bind(rule_id)
                .bind(user_id)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn alarm_subscribers(&self, rule_id: &str) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT user_id FROM alarm_subscriptions WHERE rule_id = $1 ORDER BY user_id")
                    .bind(rule_id)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn subscriptions_of(&self, user_id: &str) -> $crate::store::Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT rule_id FROM alarm_subscriptions WHERE user_id = $1 ORDER BY rule_id")
                    .bind(user_id)
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn mail_due(&self, now: i64, limit: i64) -> $crate::store::Result<Vec<$crate::store::alarms::Mail>> {
                use sqlx::Row;
                Ok(sqlx::query(
                    "SELECT id, recipient, subject, body, attempts FROM mail_outbox \
                     WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(self.writer())
                .await?
                .iter()
                .map(|r| $crate::store::alarms::Mail {
                    id: r.get(0),
                    recipient: r.get(1),
                    subject: r.get(2),
                    body: r.get(3),
                    attempts: r.get(4),
                })
                .collect())
            }

            async fn mail_sent(&self, id: i64, at: i64) -> $crate::store::Result<()> {
                sqlx::query("UPDATE mail_outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn mail_failed(&self, id: i64, error: &str, retry_at: i64) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(retry_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_alarm_store;
