//! The directory: the catalogue (roles and channels), participants, endpoints, API keys,
//! certificates, and MPAN appointments. Every change but an appointment bumps the
//! directory version and announces [`DIRECTORY_CHANGED`](super::DIRECTORY_CHANGED), so
//! that every node reloads its registry.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use crate::catalogue::CatalogueData;
use crate::model::{Appointment, Channel, Endpoint, Participant, Role};

/// A stored API key. The secret itself is never stored, only its SHA-256 (keys carry
/// 190 bits of entropy, so a slow password hash would add latency and no safety).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id of the key (the part after `dip_`).
    pub key_id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The participant or DCP the key acts for; `None` for operator keys.
    pub dip_id: Option<String>,
    /// Label.
    pub name: String,
    /// Creation time, microseconds since the epoch.
    pub created_at: i64,
    /// Revocation time, when revoked.
    pub revoked_at: Option<i64>,
}

/// A certificate registered to a participant or DCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRecord {
    /// Hex SHA-256 of the DER encoding: the certificate's identity.
    pub fingerprint: String,
    /// Holder.
    pub dip_id: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Valid from, microseconds since the epoch.
    pub not_before: i64,
    /// Valid until, microseconds since the epoch.
    pub not_after: i64,
    /// Environment the certificate is for (`DEV`, `PROD`…).
    pub environment: String,
    /// `issued` by the platform's authority or `registered` from outside.
    pub source: String,
    /// The certificate, PEM.
    pub pem: String,
    /// When it was recorded.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// Persistence of what the registry is built from (catalogue, participants, endpoints,
/// keys and certificates) and of the appointments routing consults.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Roles and channels.
    async fn catalogue(&self) -> Result<CatalogueData>;
    /// Creates or replaces a role.
    async fn put_role(&self, role: &Role) -> Result<()>;
    /// Creates or replaces a channel definition.
    async fn put_channel(&self, channel: &Channel) -> Result<()>;

    /// Every participant and DCP with roles and nominations.
    async fn participants(&self) -> Result<Vec<Participant>>;
    /// Creates or replaces a participant, its roles and nominations.
    async fn put_participant(&self, participant: &Participant) -> Result<()>;
    /// Every endpoint.
    async fn endpoints(&self) -> Result<Vec<Endpoint>>;
    /// Creates or replaces an endpoint.
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Stores an API key.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Finds an API key by id.
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>>;
    /// A number that changes with every change to the catalogue or directory.
    async fn directory_version(&self) -> Result<i64>;
    /// Records a certificate (replacing one with the same fingerprint).
    async fn put_certificate(&self, certificate: &CertificateRecord) -> Result<()>;
    /// Every recorded certificate, by holder then expiry.
    async fn certificates(&self) -> Result<Vec<CertificateRecord>>;
    /// Revokes a certificate at `at`; false if there is no such unrevoked certificate.
    async fn revoke_certificate(&self, fingerprint: &str, at: i64) -> Result<bool>;

    /// Inserts or replaces appointment rows (keyed by MPAN, role and effective date);
    /// returns how many were written.
    async fn put_appointments(&self, rows: &[Appointment]) -> Result<u64>;
    /// All appointment rows of the given MPANs, ordered by MPAN, role, effective date.
    async fn appointments(&self, mpans: &[String]) -> Result<Vec<Appointment>>;
}

/// Creates or updates a participant's own row.
pub(super) const PUT_PARTICIPANT: &str = include_str!("directory/put_participant.sql");

/// Records a certificate; a known fingerprint keeps its details but takes the new holder,
/// environment and revocation.
pub(super) const PUT_CERTIFICATE: &str = include_str!("directory/put_certificate.sql");

/// Implements [`DirectoryStore`] for a store type with `writer()`, `reader()`,
/// `notify_in_tx()` and a `notifier`. Adds `directory_changed` and `upsert_appointments`
/// (committing messages writes appointment changes with it too).
macro_rules! impl_directory_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::directory::DirectoryStore for $store {
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
                self.directory_changed().await
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
                .bind($crate::clock::now_micros())
                .execute(self.writer())
                .await?;
                self.directory_changed().await
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
                for r in sqlx::query(
                    "SELECT dip_id, mpid, name, kind, active, signatures_required FROM participants ORDER BY dip_id",
                )
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
                        signatures_required: r.get(5),
                        roles: roles.remove(&dip_id).unwrap_or_default(),
                        nominated_dcps: noms.remove(&dip_id).unwrap_or_default(),
                        dip_id,
                    });
                }
                Ok(out)
            }

            async fn put_participant(&self, p: &$crate::model::Participant) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query($crate::store::directory::PUT_PARTICIPANT)
                    .bind(&p.dip_id)
                    .bind(&p.mpid)
                    .bind(&p.name)
                    .bind(p.kind.as_str())
                    .bind(p.active)
                    .bind($crate::clock::now_micros())
                    .bind(p.signatures_required)
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
                self.directory_changed().await
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
                self.directory_changed().await
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
                self.directory_changed().await
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

            async fn directory_version(&self) -> $crate::store::Result<i64> {
                Ok(
                    sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
                        .fetch_one(self.reader())
                        .await?,
                )
            }

            async fn put_certificate(&self, c: &$crate::store::CertificateRecord) -> $crate::store::Result<()> {
                sqlx::query($crate::store::directory::PUT_CERTIFICATE)
                    .bind(&c.fingerprint)
                    .bind(&c.dip_id)
                    .bind(&c.subject)
                    .bind(&c.issuer)
                    .bind(&c.serial)
                    .bind(c.not_before)
                    .bind(c.not_after)
                    .bind(&c.environment)
                    .bind(&c.source)
                    .bind(&c.pem)
                    .bind(c.created_at)
                    .bind(c.revoked_at)
                    .execute(self.writer())
                    .await?;
                self.directory_changed().await
            }

            async fn certificates(&self) -> $crate::store::Result<Vec<$crate::store::CertificateRecord>> {
                use sqlx::Row;
                Ok(sqlx::query(
                    "SELECT fingerprint, dip_id, subject, issuer, serial, not_before, not_after, environment, source, \
                     pem, created_at, revoked_at FROM certificates ORDER BY dip_id, not_after, fingerprint",
                )
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(|r| $crate::store::CertificateRecord {
                    fingerprint: r.get(0),
                    dip_id: r.get(1),
                    subject: r.get(2),
                    issuer: r.get(3),
                    serial: r.get(4),
                    not_before: r.get(5),
                    not_after: r.get(6),
                    environment: r.get(7),
                    source: r.get(8),
                    pem: r.get(9),
                    created_at: r.get(10),
                    revoked_at: r.get(11),
                })
                .collect())
            }

            async fn revoke_certificate(&self, fingerprint: &str, at: i64) -> $crate::store::Result<bool> {
                let n = sqlx::query(
                    "UPDATE certificates SET revoked_at = $2 WHERE fingerprint = $1 AND revoked_at IS NULL",
                )
                .bind(fingerprint)
                .bind(at)
                .execute(self.writer())
                .await?
                .rows_affected();
                self.directory_changed().await?;
                Ok(n > 0)
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
        }

        impl $store {
            /// Tells every node (this one included) that the catalogue or directory changed,
            /// so that each reloads its registry.
            async fn directory_changed(&self) -> $crate::store::Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE directory_version SET version = version + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                self.notify_in_tx(&mut tx, &[$crate::store::DIRECTORY_CHANGED.to_owned()])
                    .await?;
                tx.commit().await?;
                let _ = self.notifier.send(std::sync::Arc::new(vec![
                    $crate::store::DIRECTORY_CHANGED.to_owned(),
                ]));
                Ok(())
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
                let now = $crate::clock::now_micros();
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

pub(super) use impl_directory_store;
