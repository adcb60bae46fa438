//! Portal accounts: users, their sessions and the append-only administrative audit log.
//! A separate trait from [`Store`](super::Store) (which requires it) so that the message
//! path and the portal's persistence stay apart; the SQL is shared by both backends.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;

/// A user of the web portal: of the platform operator (`dip_id` `None`) or of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// Stable id.
    pub id: String,
    /// Sign-in name, unique, lower case.
    pub username: String,
    /// Name shown.
    pub display_name: String,
    /// Address for notices.
    pub email: String,
    /// Participant the user belongs to; `None` for the operator's staff.
    pub dip_id: Option<String>,
    /// Portal role codes.
    pub roles: Vec<String>,
    /// Argon2 PHC string; never leaves the server.
    #[serde(skip)]
    pub password_hash: String,
    /// Disabled users cannot sign in and have no sessions.
    pub disabled: bool,
    /// Set by a password reset: the user must choose a new one.
    pub must_change_password: bool,
    /// Failed sign-ins since the last success.
    pub failed_sign_ins: i64,
    /// Last failed sign-in, microseconds since the epoch.
    pub last_failed_at: Option<i64>,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<i64>,
    /// Created.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

/// A stored web session (the encoded session record of the web layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id (random, from the cookie).
    pub id: String,
    /// Signed-in user, so that disabling a user can end their sessions.
    pub user_id: Option<String>,
    /// Encoded session data.
    pub data: String,
    /// Expiry, microseconds since the epoch.
    pub expires_at: i64,
}

/// One administrative action as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number (assigned by the store).
    pub id: i64,
    /// When, microseconds since the epoch.
    pub at: i64,
    /// Who: a username, or `api:<key name>` for the admin API.
    pub actor: String,
    /// The actor's participant, when not the operator.
    pub actor_dip_id: Option<String>,
    /// What, e.g. `user.create`, `channel.update`.
    pub action: String,
    /// On what, e.g. a username, DIP ID or interface id.
    pub target: String,
    /// The change, JSON (secrets never included).
    pub detail: String,
}

impl AuditEntry {
    /// An entry for an action taken now (`id` is assigned when it is appended).
    pub fn now(
        actor: String,
        actor_dip_id: Option<String>,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Self {
        Self {
            id: 0,
            at: crate::clock::now_micros(),
            actor,
            actor_dip_id,
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// Which audit entries to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Actor, exact.
    pub actor: Option<String>,
    /// Action prefix, e.g. `channel.`.
    pub action: Option<String>,
    /// Substring of the target.
    pub target: Option<String>,
    /// Only actions by users of this participant.
    pub actor_dip_id: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// Persistence of portal accounts, sessions and the audit log.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Every user, by username.
    async fn users(&self) -> Result<Vec<UserRecord>>;
    /// One user by id.
    async fn user(&self, id: &str) -> Result<Option<UserRecord>>;
    /// One user by username.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;
    /// Adds a user; `false` when the username is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<bool>;
    /// Saves a user's profile, roles, password and state (not the sign-in counters).
    async fn update_user(&self, user: &UserRecord) -> Result<()>;
    /// Records a sign-in attempt: success resets the failure count.
    async fn note_sign_in(&self, user_id: &str, success: bool, at: i64) -> Result<()>;

    /// Creates a session; `false` when the id exists already.
    async fn create_session(&self, session: &SessionRecord) -> Result<bool>;
    /// Creates or replaces a session.
    async fn save_session(&self, session: &SessionRecord) -> Result<()>;
    /// A session that has not expired at `now`.
    async fn session(&self, id: &str, now: i64) -> Result<Option<SessionRecord>>;
    /// Ends a session.
    async fn delete_session(&self, id: &str) -> Result<()>;
    /// Ends every session of a user but `except`; returns how many.
    async fn delete_user_sessions(&self, user_id: &str, except: Option<&str>) -> Result<u64>;
    /// Removes sessions expired at `now`; returns how many.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64>;

    /// Appends to the audit log (`id` is ignored and assigned).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// A page of the audit log, newest first, and the number of matching entries.
    async fn audit_log(&self, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, i64)>;
}

/// Columns of `users` in the order `user_row` reads them.
pub(super) const USER_COLUMNS: &str = "id, username, display_name, email, dip_id, roles, password_hash, disabled, \
     must_change_password, failed_sign_ins, last_failed_at, last_sign_in_at, created_at, updated_at";

macro_rules! impl_account_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::accounts::AccountStore for $store {
            async fn users(&self) -> $crate::store::Result<Vec<$crate::store::accounts::UserRecord>> {
                let sql = format!(
                    "SELECT {} FROM users ORDER BY username",
                    $crate::store::accounts::USER_COLUMNS
                );
                sqlx::query(&sql)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(user_row)
                    .collect()
            }

            async fn user(&self, id: &str) -> $crate::store::Result<Option<$crate::store::accounts::UserRecord>> {
                let sql = format!(
                    "SELECT {} FROM users WHERE id = $1",
                    $crate::store::accounts::USER_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(user_row)
                    .transpose()
            }

            async fn user_by_username(
                &self,
                username: &str,
            ) -> $crate::store::Result<Option<$crate::store::accounts::UserRecord>> {
                let sql = format!(
                    "SELECT {} FROM users WHERE username = $1",
                    $crate::store::accounts::USER_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(username)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(user_row)
                    .transpose()
            }

            async fn insert_user(&self, u: &$crate::store::accounts::UserRecord) -> $crate::store::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO users (id, username, display_name, email, dip_id, roles, password_hash, disabled, \
                     must_change_password, failed_sign_ins, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(&u.dip_id)
                .bind($crate::store::sql::encode_list(&u.roles))
                .bind(&u.password_hash)
                .bind(u.disabled)
                .bind(u.must_change_password)
                .bind(u.created_at)
                .bind(u.updated_at)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_user(&self, u: &$crate::store::accounts::UserRecord) -> $crate::store::Result<()> {
                sqlx::query(
                    "UPDATE users SET display_name = $2, email = $3, roles = $4, password_hash = $5, \
                     disabled = $6, must_change_password = $7, updated_at = $8 WHERE id = $1",
                )
                .bind(&u.id)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind($crate::store::sql::encode_list(&u.roles))
                .bind(&u.password_hash)
                .bind(u.disabled)
                .bind(u.must_change_password)
                .bind(u.updated_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn note_sign_in(&self, user_id: &str, success: bool, at: i64) -> $crate::store::Result<()> {
                let sql = if success {
                    "UPDATE users SET failed_sign_ins = 0, last_sign_in_at = $2 WHERE id = $1"
                } else {
                    "UPDATE users SET failed_sign_ins = failed_sign_ins + 1, last_failed_at = $2 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn create_session(&self, s: &$crate::store::accounts::SessionRecord) -> $crate::store::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO sessions (id, user_id, data, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&s.id)
                .bind(&s.user_id)
                .bind(&s.data)
                .bind(s.expires_at)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn save_session(&self, s: &$crate::store::accounts::SessionRecord) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, data, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, data = excluded.data, \
                     expires_at = excluded.expires_at",
                )
                .bind(&s.id)
                .bind(&s.user_id)
                .bind(&s.data)
                .bind(s.expires_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                id: &str,
                now: i64,
            ) -> $crate::store::Result<Option<$crate::store::accounts::SessionRecord>> {
                use sqlx::Row;
                // The writer: a session saved a moment ago must be seen (SQLite readers lag).
                Ok(
                    sqlx::query("SELECT id, user_id, data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
                        .bind(id)
                        .bind(now)
                        .fetch_optional(self.writer())
                        .await?
                        .map(|r| $crate::store::accounts::SessionRecord {
                            id: r.get(0),
                            user_id: r.get(1),
                            data: r.get(2),
                            expires_at: r.get(3),
                        }),
                )
            }

            async fn delete_session(&self, id: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user_id: &str, except: Option<&str>) -> $crate::store::Result<u64> {
                Ok(
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> COALESCE($2, '')")
                        .bind(user_id)
                        .bind(except)
                        .execute(self.writer())
                        .await?
                        .rows_affected(),
                )
            }

            async fn delete_expired_sessions(&self, now: i64) -> $crate::store::Result<u64> {
                Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.writer())
                    .await?
                    .rows_affected())
            }

            async fn append_audit(&self, e: &$crate::store::accounts::AuditEntry) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO admin_audit (at, actor, actor_dip_id, action, target, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.actor_dip_id)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.detail)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn audit_log(
                &self,
                f: &$crate::store::accounts::AuditFilter,
            ) -> $crate::store::Result<(Vec<$crate::store::accounts::AuditEntry>, i64)> {
                use sqlx::Row;
                let filtered = |select: &str| {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(select);
                    qb.push(" FROM admin_audit WHERE 1 = 1");
                    if let Some(actor) = &f.actor {
                        qb.push(" AND actor = ").push_bind(actor.clone());
                    }
                    if let Some(action) = &f.action {
                        qb.push(" AND action LIKE ")
                            .push_bind(format!("{}%", like_escape(action)))
                            .push(" ESCAPE '\\'");
                    }
                    if let Some(target) = &f.target {
                        qb.push(" AND target LIKE ")
                            .push_bind(format!("%{}%", like_escape(target)))
                            .push(" ESCAPE '\\'");
                    }
                    if let Some(dip) = &f.actor_dip_id {
                        qb.push(" AND actor_dip_id = ").push_bind(dip.clone());
                    }
                    qb
                };
                let total: i64 = filtered("SELECT COUNT(*)")
                    .build()
                    .fetch_one(self.reader())
                    .await?
                    .get(0);
                let mut qb = filtered("SELECT id, at, actor, actor_dip_id, action, target, detail");
                qb.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(f.limit.clamp(1, 1000));
                qb.push(" OFFSET ").push_bind(f.offset.max(0));
                let rows = qb
                    .build()
                    .fetch_all(self.reader())
                    .await?
                    .into_iter()
                    .map(|r| $crate::store::accounts::AuditEntry {
                        id: r.get(0),
                        at: r.get(1),
                        actor: r.get(2),
                        actor_dip_id: r.get(3),
                        action: r.get(4),
                        target: r.get(5),
                        detail: r.get(6),
                    })
                    .collect();
                Ok((rows, total))
            }
        }

        fn user_row(r: &<$db as sqlx::Database>::Row) -> $crate::store::Result<$crate::store::accounts::UserRecord> {
            use sqlx::Row;
            Ok($crate::store::accounts::UserRecord {
                id: r.get(0),
                username: r.get(1),
                display_name: r.get(2),
                email: r.get(3),
                dip_id: r.get(4),
                roles: $crate::store::sql::decode_list(&r.get::<String, _>(5))?,
                password_hash: r.get(6),
                disabled: r.get(7),
                must_change_password: r.get(8),
                failed_sign_ins: r.get(9),
                last_failed_at: r.get(10),
                last_sign_in_at: r.get(11),
                created_at: r.get(12),
                updated_at: r.get(13),
            })
        }

        fn like_escape(s: &str) -> String {
            s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        }
    };
}

pub(super) use impl_account_store;
