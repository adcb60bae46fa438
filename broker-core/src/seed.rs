//! Loading reference data into a store: the catalogue (on first start and on upgrade).

use crate::catalogue::CatalogueData;
use crate::store::{DirectoryStore, Result};

/// Writes roles and channels of `data` that the store does not have yet; channels already
/// present (perhaps edited by an administrator) are left alone. Returns how many channels
/// were added.
pub async fn seed_catalogue(store: &dyn DirectoryStore, data: &CatalogueData) -> Result<usize> {
    let existing = store.catalogue().await?;
    for role in &data.roles {
        if !existing.roles.iter().any(|r| r.code == role.code) {
            store.put_role(role).await?;
        }
    }
    let mut added = 0;
    for channel in &data.channels {
        if !existing.channels.iter().any(|c| c.id == channel.id) {
            store.put_channel(channel).await?;
            added += 1;
        }
    }
    Ok(added)
}

/// A directory to load: participants with their API keys and endpoints, operator keys and
/// the initial MPAN appointment table. `dip demo` loads the shipped demo set.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryData {
    /// Environment the data is meant for.
    pub environment: String,
    /// Operator API keys.
    #[serde(default, rename = "operator_key")]
    pub operator_keys: Vec<OperatorKey>,
    /// Participants and DCPs.
    #[serde(default, rename = "participant")]
    pub participants: Vec<ParticipantSeed>,
    /// Appointment rows.
    #[serde(default, rename = "appointment")]
    pub appointments: Vec<AppointmentSeed>,
}

/// An operator key of a directory file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorKey {
    /// Label.
    pub name: String,
    /// The key.
    pub api_key: String,
}

/// A participant of a directory file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantSeed {
    /// DIP ID.
    pub dip_id: String,
    /// MPID.
    pub mpid: String,
    /// Name.
    pub name: String,
    /// Participant or DCP.
    pub kind: crate::model::ParticipantKind,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// API key.
    pub api_key: String,
    /// DCPs nominated.
    #[serde(default)]
    pub nominated_dcps: Vec<String>,
    /// Logical queues.
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointSeed>,
}

/// An endpoint of a directory file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSeed {
    /// Name.
    pub name: String,
    /// Channels assigned.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Webhook URL; absent for pull.
    #[serde(default)]
    pub url: Option<String>,
}

/// An appointment row of a directory file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentSeed {
    /// MPAN core.
    pub mpan: String,
    /// Role.
    pub role: String,
    /// Appointed DIP ID.
    pub dip_id: Option<String>,
    /// First day.
    pub effective_from: String,
}

/// Why a directory file cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// It does not parse.
    #[error("directory file: {0}")]
    Parse(String),
    /// An API key is not of the key format.
    #[error("participant {0}: malformed API key")]
    Key(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl DirectoryData {
    /// The demo directory shipped with the platform.
    pub fn demo() -> Result<Self, DirectoryError> {
        Self::parse(include_str!("../demo/demo.toml"))
    }

    /// Parses a directory file.
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        toml::from_str(text).map_err(|e| DirectoryError::Parse(e.to_string()))
    }

    /// The API key of a participant, by DIP ID.
    pub fn key_of(&self, dip_id: &str) -> Option<&str> {
        self.participants
            .iter()
            .find(|p| p.dip_id == dip_id)
            .map(|p| p.api_key.as_str())
    }
}

/// Writes a directory into the store (idempotent: re-running replaces the same rows).
pub async fn seed_directory(store: &dyn DirectoryStore, data: &DirectoryData) -> Result<(), DirectoryError> {
    use crate::model::{Appointment, Endpoint, Participant};
    // DCPs first: nominations refer to them.
    let mut ordered: Vec<&ParticipantSeed> = data.participants.iter().collect();
    ordered.sort_by_key(|p| p.kind != crate::model::ParticipantKind::Dcp);
    for p in ordered {
        store
            .put_participant(&Participant {
                dip_id: p.dip_id.clone(),
                mpid: p.mpid.clone(),
                name: p.name.clone(),
                kind: p.kind,
                roles: p.roles.clone(),
                nominated_dcps: p.nominated_dcps.clone(),
                active: true,
                signatures_required: false,
            })
            .await?;
        for e in &p.endpoints {
            store
                .put_endpoint(&Endpoint {
                    id: Endpoint::make_id(&p.dip_id, &e.name),
                    dip_id: p.dip_id.clone(),
                    name: e.name.clone(),
                    url: e.url.clone(),
                    channels: e.channels.clone(),
                })
                .await?;
        }
        let key = crate::auth::record_for(&p.api_key, Some(&p.dip_id), &format!("{} key", p.mpid))
            .ok_or_else(|| DirectoryError::Key(p.dip_id.clone()))?;
        store.put_api_key(&key).await?;
    }
    for k in &data.operator_keys {
        let key =
            crate::auth::record_for(&k.api_key, None, &k.name).ok_or_else(|| DirectoryError::Key(k.name.clone()))?;
        store.put_api_key(&key).await?;
    }
    let rows: Vec<Appointment> = data
        .appointments
        .iter()
        .map(|a| Appointment {
            mpan: a.mpan.clone(),
            role: a.role.clone(),
            effective_from: a.effective_from.clone(),
            dip_id: a.dip_id.clone(),
            source_transaction_id: None,
        })
        .collect();
    store.put_appointments(&rows).await?;
    Ok(())
}
