//! The registry: an immutable snapshot of the catalogue and the participant directory that
//! the ingest path reads without touching the database. Admin changes build a new snapshot
//! and swap it in atomically, so channels change without a restart or outage.

use std::collections::HashMap;

use crate::catalogue::{CatalogueError, Compiled, CompiledChannel};
use crate::model::{Endpoint, Participant, ParticipantKind};
use crate::store::{CertificateRecord, DirectoryStore, StoreError};

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored catalogue is invalid.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// Catalogue and directory at one point in time.
#[derive(Debug, Default)]
pub struct Registry {
    /// Roles and compiled channels.
    pub catalogue: Compiled,
    participants: HashMap<String, Participant>,
    role_holders: HashMap<String, Vec<String>>,
    endpoints: HashMap<String, Vec<Endpoint>>,
    certificates: HashMap<String, CertificateRecord>,
}

impl Registry {
    /// Loads the current catalogue and directory from the store.
    pub async fn load(store: &dyn DirectoryStore) -> Result<Self, RegistryError> {
        let catalogue = Compiled::build(&store.catalogue().await?)?;
        let mut registry = Self::new(catalogue, store.participants().await?, store.endpoints().await?);
        registry.certificates = store
            .certificates()
            .await?
            .into_iter()
            .map(|c| (c.fingerprint.clone(), c))
            .collect();
        Ok(registry)
    }

    /// Builds a registry from its parts.
    pub fn new(catalogue: Compiled, participants: Vec<Participant>, endpoints: Vec<Endpoint>) -> Self {
        let mut role_holders: HashMap<String, Vec<String>> = HashMap::new();
        for p in participants
            .iter()
            .filter(|p| p.active && p.kind == ParticipantKind::Participant)
        {
            for role in &p.roles {
                role_holders.entry(role.clone()).or_default().push(p.dip_id.clone());
            }
        }
        for holders in role_holders.values_mut() {
            holders.sort();
        }
        let mut by_owner: HashMap<String, Vec<Endpoint>> = HashMap::new();
        for e in endpoints {
            by_owner.entry(e.dip_id.clone()).or_default().push(e);
        }
        Self {
            catalogue,
            participants: participants.into_iter().map(|p| (p.dip_id.clone(), p)).collect(),
            role_holders,
            endpoints: by_owner,
            certificates: HashMap::new(),
        }
    }

    /// Every participant and DCP, in DIP ID order.
    pub fn participants(&self) -> Vec<&Participant> {
        let mut all: Vec<&Participant> = self.participants.values().collect();
        all.sort_by(|a, b| a.dip_id.cmp(&b.dip_id));
        all
    }

    /// A registered certificate by fingerprint (hex SHA-256 of its DER).
    pub fn certificate(&self, fingerprint: &str) -> Option<&CertificateRecord> {
        self.certificates.get(fingerprint)
    }

    /// Fingerprints of the certificates that may sign for `dip_id` at `now`.
    pub fn signing_certificates(&self, dip_id: &str, environment: &str, now: i64) -> Vec<String> {
        self.certificates
            .values()
            .filter(|c| usable(c, dip_id, environment, now))
            .map(|c| c.fingerprint.clone())
            .collect()
    }

    /// The certificate to encrypt to for `dip_id` (pattern 2): its usable certificate that
    /// lasts longest.
    pub fn encryption_certificate(&self, dip_id: &str, environment: &str, now: i64) -> Option<&CertificateRecord> {
        self.certificates
            .values()
            .filter(|c| usable(c, dip_id, environment, now))
            .max_by_key(|c| c.not_after)
    }

    /// A channel by interface id.
    pub fn channel(&self, interface_id: &str) -> Option<&CompiledChannel> {
        self.catalogue.channels.get(interface_id)
    }

    /// A participant or DCP by DIP ID.
    pub fn participant(&self, dip_id: &str) -> Option<&Participant> {
        self.participants.get(dip_id)
    }

    /// Active market participants holding `role`, in DIP ID order.
    pub fn holders(&self, role: &str) -> &[String] {
        self.role_holders.get(role).map_or(&[], Vec::as_slice)
    }

    /// Whether DCP `dcp` may act for participant `dip_id`.
    pub fn is_nominated(&self, dip_id: &str, dcp: &str) -> bool {
        self.participant(dip_id)
            .is_some_and(|p| p.nominated_dcps.iter().any(|d| d == dcp))
    }

    /// The endpoints of a participant.
    pub fn endpoints_of(&self, dip_id: &str) -> &[Endpoint] {
        self.endpoints.get(dip_id).map_or(&[], Vec::as_slice)
    }

    /// The endpoint behind a queue id (`<dip_id>/<name>`); `None` for the implicit
    /// `default` pull queue of a participant without endpoints.
    pub fn endpoint(&self, queue_id: &str) -> Option<&Endpoint> {
        let (dip_id, _) = queue_id.split_once('/')?;
        self.endpoints_of(dip_id).iter().find(|e| e.id == queue_id)
    }

    /// Whether `queue_id` (`<dip_id>/<name>`) names a queue of the directory: an endpoint
    /// of a participant or DCP, or its implicit `default` queue. Nothing else ever
    /// receives messages, so nothing else may be read or leased.
    pub fn has_queue(&self, queue_id: &str) -> bool {
        let Some((dip_id, name)) = queue_id.split_once('/') else {
            return false;
        };
        self.participant(dip_id).is_some() && (name == "default" || self.endpoint(queue_id).is_some())
    }

    /// The logical queue that receives `channel` for `dip_id`: the endpoint the channel is
    /// assigned to, else the endpoint taking unassigned channels, else the participant's
    /// implicit `default` pull queue.
    pub fn queue_for(&self, dip_id: &str, channel: &str) -> String {
        let endpoints = self.endpoints_of(dip_id);
        endpoints
            .iter()
            .find(|e| e.channels.iter().any(|c| c == channel))
            .or_else(|| endpoints.iter().find(|e| e.channels.is_empty()))
            .map_or_else(|| Endpoint::make_id(dip_id, "default"), |e| e.id.clone())
    }

    /// The DIP IDs a principal may act for: itself, and for a DCP the participants that
    /// nominated it.
    pub fn acts_for(&self, caller: &str) -> Vec<String> {
        let mut out = vec![caller.to_owned()];
        if self.participant(caller).is_some_and(|p| p.kind == ParticipantKind::Dcp) {
            out.extend(
                self.participants
                    .values()
                    .filter(|p| p.nominated_dcps.iter().any(|d| d == caller))
                    .map(|p| p.dip_id.clone()),
            );
            out[1..].sort();
        }
        out
    }
}

/// Whether `c` is usable for `dip_id` at `now`: registered to it for `environment`,
/// current and unrevoked.
fn usable(c: &CertificateRecord, dip_id: &str, environment: &str, now: i64) -> bool {
    c.dip_id == dip_id
        && c.environment == environment
        && c.revoked_at.is_none()
        && c.not_before <= now
        && now < c.not_after
}
