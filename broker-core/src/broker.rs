//! The broker handle: what every request handler, delivery worker and admin page shares.
//!
//! [`Broker`] holds the store, the registry snapshot (the catalogue and directory in
//! memory, reloaded when either changes), the configuration and the way into the group
//! committer. It authenticates callers (API keys, client certificates) and seals or
//! opens archived envelopes; the message path itself is in [`crate::ingest`] (accepting)
//! and [`crate::delivery`] (sending on).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::committer::{self, Job};
use crate::error::{ApiError, ErrorCode};
use crate::model::{ParticipantKind, Principal};
use crate::registry::{Registry, RegistryError};
use crate::store::{
    AccountStore, AlarmStore, DirectoryStore, MessageStore, OutboxStore, QueueStore, ReplayStore, Store,
};

/// Limits and identity of a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The environment tag messages must carry (`DEV`, `SIT`, `PROD`…).
    pub environment: String,
    /// Most items in one request.
    pub max_items: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most messages committed in one transaction.
    pub commit_batch: usize,
    /// Committer tasks (SQLite serialises writes, so more than one only helps PostgreSQL).
    pub committers: usize,
    /// Requests that may wait for a commit before new ones are refused.
    pub commit_queue: usize,
    /// How long a request may wait for room in the commit queue.
    pub commit_wait: Duration,
    /// The DIP ID the platform sends its own messages (return to sender) under.
    pub platform_dip_id: String,
    /// Whether API keys authenticate callers (test environments); otherwise only client
    /// certificates do.
    pub api_keys: bool,
    /// The platform's address as participants call it (`https://dip.example`), the base
    /// of the URL in X-DIP signatures; taken from the request's `Host` when unset.
    pub public_url: Option<String>,
    /// Data keys sealing archived messages of security categories 2–4; stored in the
    /// clear without them (test setups only: PROD requires keys).
    pub vault: Option<Arc<crate::security::vault::Vault>>,
    /// The platform's P-256 key that opens CustomBlocks encrypted to it (pattern 2).
    pub decrypter: Option<Arc<crate::security::jwe::Decrypter>>,
    /// The authorities participants' certificates must chain to; signing certificates
    /// are checked against them too (the TLS handshake checks client certificates).
    pub trusted: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// The test authority that issues certificates through the admin API (non-production).
    pub authority: Option<Arc<crate::security::authority::Authority>>,
    /// The platform's signing identity: it signs every webhook (X-DIP signature headers)
    /// and every evidence bundle.
    pub signer: Option<Arc<crate::security::signature::Signer>>,
    /// Most messages replayed for one recipient within a rolling 24 hours
    /// (`replay::QUOTA_WINDOW_HOURS`); dry runs count nothing. 200,000 by default.
    pub replay_quota: i64,
    /// Replay copies join their queue this many at a time, the next batch once the last
    /// of the previous one is settled, so that live traffic on the queue waits behind one
    /// batch at most (`ReplayStore::release_held`). 100 by default (`dip bench replay`: live
    /// p99 stays in tens of milliseconds while a replay drains at thousands a second).
    pub replay_batch: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            environment: "DEV".into(),
            max_items: 1000,
            max_body_bytes: 16 * 1024 * 1024,
            commit_batch: 1000,
            committers: 4,
            commit_queue: 1024,
            commit_wait: Duration::from_secs(2),
            platform_dip_id: "0000000000".into(),
            api_keys: true,
            public_url: None,
            vault: None,
            decrypter: None,
            trusted: None,
            authority: None,
            signer: None,
            replay_quota: 200_000,
            replay_batch: 100,
        }
    }
}

const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

struct Inner {
    store: Arc<dyn Store>,
    registry: ArcSwap<Registry>,
    config: BrokerConfig,
    commits: mpsc::Sender<Job>,
    keys: std::sync::Mutex<HashMap<String, (crate::store::ApiKeyRecord, Instant)>>,
    /// Counts registry reloads, for components that follow directory changes.
    version: tokio::sync::watch::Sender<u64>,
}

/// The broker: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("environment", &self.inner.config.environment)
            .finish()
    }
}

impl Broker {
    /// Loads the registry and starts the committers. The store must be migrated.
    pub async fn start(store: Arc<dyn Store>, config: BrokerConfig) -> Result<Self, RegistryError> {
        let registry = Registry::load(store.as_ref()).await?;
        let tx = committer::start(&store, config.commit_queue, config.committers, config.commit_batch);
        let broker = Self {
            inner: Arc::new(Inner {
                store,
                registry: ArcSwap::from_pointee(registry),
                config,
                commits: tx,
                keys: std::sync::Mutex::new(HashMap::new()),
                version: tokio::sync::watch::channel(0).0,
            }),
        };
        tokio::spawn(follow_directory(Arc::downgrade(&broker.inner)));
        Ok(broker)
    }

    /// Changes each time the registry is reloaded.
    pub fn registry_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// The whole store: for what spans jobs (migrations, commit notifications, worker
    /// leases) and for handing on. Code doing one job takes that job's trait below.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Catalogue, participants, endpoints, keys, certificates and appointments.
    pub fn directory(&self) -> &dyn DirectoryStore {
        self.inner.store.as_ref()
    }

    /// Committing and reading accepted messages.
    pub fn messages(&self) -> &dyn MessageStore {
        self.inner.store.as_ref()
    }

    /// Queue entries, delivery outcomes, leases and dead letters.
    pub fn queues(&self) -> &dyn QueueStore {
        self.inner.store.as_ref()
    }

    /// Replay candidates, records and quotas.
    pub fn replays(&self) -> &dyn ReplayStore {
        self.inner.store.as_ref()
    }

    /// Lifecycle events and the embedded analytics table.
    pub fn outbox(&self) -> &dyn OutboxStore {
        self.inner.store.as_ref()
    }

    /// Portal users, sessions and the audit log.
    pub fn accounts(&self) -> &dyn AccountStore {
        self.inner.store.as_ref()
    }

    /// Alarm rules, history, subscriptions and the mail queue.
    pub fn alarms(&self) -> &dyn AlarmStore {
        self.inner.store.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The current registry snapshot.
    pub fn registry(&self) -> Arc<Registry> {
        self.inner.registry.load_full()
    }

    /// Rebuilds the registry from the store (after catalogue or directory changes) and
    /// forgets cached credentials.
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let fresh = Registry::load(self.inner.store.as_ref()).await?;
        self.inner.registry.store(Arc::new(fresh));
        self.inner.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.inner.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Resolves an API key (`dip_<id>_<secret>`) to the principal it acts for.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let unauthenticated = || ApiError::new(ErrorCode::Unauthenticated, "", "unknown or revoked API key");
        let (key_id, secret) = crate::auth::parse_api_key(token).ok_or_else(unauthenticated)?;
        let cached = {
            let keys = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(key_id)
                .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
                .map(|(k, _)| k.clone())
        };
        let record = match cached {
            Some(k) => k,
            None => {
                let k = self.inner.store.api_key(key_id).await.map_err(|e| {
                    tracing::error!(error = %e, "API key lookup failed");
                    ApiError::new(
                        ErrorCode::Unavailable,
                        "",
                        "the platform cannot check credentials now; retry",
                    )
                })?;
                let k = k.ok_or_else(unauthenticated)?;
                let mut keys = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
                keys.insert(key_id.to_owned(), (k.clone(), Instant::now()));
                k
            }
        };
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        if record.revoked_at.is_some() || !bool::from(hash.as_bytes().ct_eq(record.secret_hash.as_bytes())) {
            return Err(unauthenticated());
        }
        let Some(dip_id) = record.dip_id else {
            return Ok(Principal::Operator { name: record.name });
        };
        let registry = self.registry();
        match registry.participant(&dip_id) {
            Some(p) if !p.active => Err(ApiError::new(
                ErrorCode::Forbidden,
                "",
                format!("{dip_id} is not active"),
            )),
            Some(p) if p.kind == ParticipantKind::Dcp => Ok(Principal::Dcp { dip_id }),
            Some(_) => Ok(Principal::Participant { dip_id }),
            None => Err(unauthenticated()),
        }
    }

    /// An archived envelope in the clear (opening it if it was sealed at rest).
    pub fn open_envelope(
        &self,
        transaction_id: &str,
        stored: &str,
    ) -> Result<String, crate::security::vault::VaultError> {
        match &self.inner.config.vault {
            Some(vault) => vault.open(stored, transaction_id),
            None if crate::security::vault::is_sealed(stored) => Err(crate::security::vault::VaultError::UnknownKey(
                "(no data keys configured)".into(),
            )),
            None => Ok(stored.to_owned()),
        }
    }

    /// An envelope as it is archived: sealed for security categories 2–4.
    pub(crate) fn seal_envelope(&self, security_category: u8, transaction_id: &str, plain: String) -> String {
        match &self.inner.config.vault {
            Some(vault) if security_category >= 2 => vault.seal(&plain, transaction_id),
            _ => plain,
        }
    }

    /// Resolves a client certificate (by fingerprint) to the participant or DCP it is
    /// registered to: it must be registered, unrevoked, current, issued for this
    /// platform's environment, and its holder active.
    pub fn authenticate_certificate(&self, fingerprint: &str) -> Result<Principal, ApiError> {
        let refuse = |why: String| ApiError::new(ErrorCode::Unauthenticated, "", why);
        let registry = self.registry();
        let Some(cert) = registry.certificate(fingerprint) else {
            return Err(refuse(
                "the client certificate is not registered to any participant".into(),
            ));
        };
        if cert.revoked_at.is_some() {
            return Err(refuse("the client certificate has been revoked".into()));
        }
        let now = crate::clock::now_micros();
        if now < cert.not_before || now >= cert.not_after {
            return Err(refuse("the client certificate is not valid now".into()));
        }
        if cert.environment != self.inner.config.environment {
            return Err(refuse(format!(
                "the client certificate is for the {} environment, not {}",
                cert.environment, self.inner.config.environment
            )));
        }
        match registry.participant(&cert.dip_id) {
            Some(p) if !p.active => Err(ApiError::new(
                ErrorCode::Forbidden,
                "",
                format!("{} is not active", p.dip_id),
            )),
            Some(p) if p.kind == ParticipantKind::Dcp => Ok(Principal::Dcp {
                dip_id: p.dip_id.clone(),
            }),
            Some(p) => Ok(Principal::Participant {
                dip_id: p.dip_id.clone(),
            }),
            None => Err(refuse("the certificate's holder is not in the directory".into())),
        }
    }

    /// Where ingest hands messages to the group committer.
    pub(crate) fn commits(&self) -> &mpsc::Sender<Job> {
        &self.inner.commits
    }
}

/// Reloads the registry whenever the catalogue or directory changes, on this node or
/// (PostgreSQL) another: changes take effect everywhere without a restart. Bursts of
/// changes (a directory load) cause one reload.
async fn follow_directory(inner: std::sync::Weak<Inner>) {
    use tokio::sync::broadcast::error::RecvError;
    let Some(first) = inner.upgrade() else { return };
    let mut notices = first.store.subscribe();
    let mut seen = first.store.directory_version().await.unwrap_or_default();
    drop(first);
    // Processes that cannot notify this one (the CLI on an embedded database) are seen
    // through the version the store keeps.
    let mut poll = tokio::time::interval(DIRECTORY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let relevant = |q: &[String]| {
            q.iter()
                .any(|q| q == crate::store::DIRECTORY_CHANGED || q == crate::store::ALL_QUEUES)
        };
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(q) if relevant(&q) => {}
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = poll.tick() => {
                let Some(i) = inner.upgrade() else { return };
                match i.store.directory_version().await {
                    Ok(v) if v != seen => {}
                    _ => continue,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while !notices.is_empty() {
            let _ = notices.try_recv();
        }
        let Some(inner) = inner.upgrade() else { return };
        seen = inner.store.directory_version().await.unwrap_or(seen);
        let broker = Broker { inner };
        if let Err(e) = broker.reload().await {
            tracing::error!(error = %e, "cannot reload the registry after a directory change");
        }
    }
}

/// How often a node checks the store's directory version.
const DIRECTORY_POLL: Duration = Duration::from_secs(5);
