//! Ingest (spec 5.5.1–5.5.7): validation, authorisation, routing, the `D0` transaction
//! wrapper, and the group committer that makes accepted messages durable before the
//! answer is sent.
//!
//! Requests are validated and routed concurrently; their messages then go to a bounded
//! queue that committer tasks drain, committing everything waiting (up to a batch limit)
//! in one transaction. Under load many requests share one commit, which is what lets a
//! one-message-per-request workload scale. When the queue stays full the request is
//! refused with 503 rather than accepted and put at risk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::catalogue::CompiledChannel;
use crate::envelope::{self, Header, PAYLOAD};
use crate::error::{ApiError, ErrorCode};
use crate::events::{Event, EventKind};
use crate::model::{Appointment, ParticipantKind, Principal, RoutingMode};
use crate::registry::{Registry, RegistryError};
use crate::routing::{self, Decision};
use crate::store::{CommitOutcome, Delivery, NewMessage, Store, StoreError};

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
    /// Where lifecycle events go and reports are read from.
    pub analytics: crate::analytics::Sink,
    /// Most messages replayed for one recipient within a rolling 24 hours
    /// (`replay::QUOTA_WINDOW_HOURS`); dry runs count nothing. 200,000 by default.
    pub replay_quota: i64,
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
            analytics: crate::analytics::Sink::Embedded,
            replay_quota: 200_000,
        }
    }
}

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Stored and queued now.
    Accepted,
    /// Stored earlier: the original transaction id is returned.
    Duplicate,
    /// Not stored.
    Rejected,
}

/// The per-item answer of `POST /api/v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// Position of the item in the request.
    pub index: usize,
    /// The sender's reference, when it could be read.
    pub sender_unique_reference: Option<String>,
    /// Outcome.
    pub status: ItemStatus,
    /// Transaction id (the original one for a duplicate).
    #[serde(rename = "transactionID")]
    pub transaction_id: Option<String>,
    /// Workflow correlation id.
    #[serde(rename = "initialCorrelationID")]
    pub initial_correlation_id: Option<String>,
    /// Why it was rejected.
    pub errors: Vec<ApiError>,
}

/// The answer to a whole ingest request.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestReply {
    /// Items were judged: 202, 207, 400 or 403 with per-item results.
    Items {
        /// HTTP status.
        status: u16,
        /// One result per item, in request order.
        results: Vec<ItemResult>,
    },
    /// The request as a whole failed: nothing was accepted.
    Failed {
        /// HTTP status.
        status: u16,
        /// The error.
        error: ApiError,
    },
}

struct Job {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<CommitOutcome>, Arc<StoreError>>>,
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
        let (tx, rx) = mpsc::channel(config.commit_queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let committers = match store.backend() {
            crate::store::Backend::Sqlite => 1,
            crate::store::Backend::Postgres => config.committers.max(1),
        };
        for _ in 0..committers {
            tokio::spawn(commit_loop(store.clone(), rx.clone(), config.commit_batch.max(1)));
        }
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

    /// Reports over the configured analytics sink.
    pub fn analytics(&self) -> crate::analytics::Analytics {
        crate::analytics::Analytics::new(self.inner.store.clone(), self.inner.config.analytics.clone())
    }

    /// Changes each time the registry is reloaded.
    pub fn registry_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
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

    /// For a channel of security pattern 2, the item with its CustomBlock (a JWE made for
    /// the platform) decrypted, so that it is validated, routed and archived like any
    /// other; `None` for other channels.
    fn open_custom_block(&self, item: &Value, registry: &Registry) -> Result<Option<Value>, Vec<ApiError>> {
        let pattern_2 = item
            .pointer(&format!("{PAYLOAD}/CommonBlock/S0/interfaceID"))
            .and_then(Value::as_str)
            .and_then(|id| registry.channel(id))
            .is_some_and(|c| c.channel.encrypted_to_platform());
        if !pattern_2 {
            return Ok(None);
        }
        let path = format!("{PAYLOAD}/CustomBlock");
        let fail = |why: String| vec![ApiError::new(ErrorCode::DecryptionFailed, path.clone(), why)];
        let Some(jwe) = item.pointer(&path).and_then(Value::as_str) else {
            return Err(fail(
                "this channel takes a CustomBlock encrypted to the platform (compact JWE)".into(),
            ));
        };
        let Some(decrypter) = &self.inner.config.decrypter else {
            return Err(fail("the platform has no decryption key configured".into()));
        };
        let plain = decrypter.decrypt(jwe).map_err(|e| fail(e.to_string()))?;
        // Read like a request body: a NUL inside the encryption is refused as one outside,
        // at its place in the item.
        let custom: Value = crate::input::parse_body(&plain).map_err(|e| match e {
            crate::input::BodyError::Nul(_) => {
                let mut error = e.to_api_error(ErrorCode::DecryptionFailed, "");
                error.path = format!("{path}{}", error.path);
                vec![error]
            }
            crate::input::BodyError::Parse(_) => fail("the decrypted CustomBlock is not JSON".into()),
        })?;
        let mut opened = item.clone();
        if let Some(slot) = opened.pointer_mut(&path) {
            *slot = custom;
        }
        Ok(Some(opened))
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

    /// Handles the body of an unsigned `POST /api/v1/messages` from `principal`.
    pub async fn ingest(&self, principal: &Principal, body: &[u8]) -> IngestReply {
        self.ingest_request(principal, body, false).await
    }

    /// Handles the body of `POST /api/v1/messages` from `principal`; `signed` when the
    /// request's X-DIP signature was verified (channels may require it).
    pub async fn ingest_request(&self, principal: &Principal, body: &[u8], signed: bool) -> IngestReply {
        let reply = self.ingest_items(principal, body, signed).await;
        // A request refused whole counts once as a rejection (not one refused for lack of
        // rights to send at all, nor for the platform being unavailable).
        if let IngestReply::Failed {
            status: 400 | 413,
            error,
        } = &reply
        {
            let mut event = Event::new(EventKind::Rejected, crate::clock::now_micros());
            event.sender_dip_id = principal.dip_id().unwrap_or_default().to_owned();
            event.outcome = error.code.as_str().to_owned();
            self.record_rejections(vec![event]).await;
        }
        reply
    }

    /// Writes rejection events; a failure only costs the figures, never the answer.
    async fn record_rejections(&self, events: Vec<Event>) {
        if let Err(e) = self.inner.store.record_events(&events).await {
            tracing::warn!(error = %e, rejected = events.len(), "cannot record rejections for reports");
        }
    }

    async fn ingest_items(&self, principal: &Principal, body: &[u8], signed: bool) -> IngestReply {
        let fail = |status, code, message: &str| IngestReply::Failed {
            status,
            error: ApiError::new(code, "", message),
        };
        if matches!(principal, Principal::Operator { .. }) {
            return fail(403, ErrorCode::Forbidden, "operator credentials cannot send messages");
        }
        if body.len() > self.inner.config.max_body_bytes {
            return fail(
                413,
                ErrorCode::PayloadTooLarge,
                &format!("the body exceeds {} bytes", self.inner.config.max_body_bytes),
            );
        }
        let parsed: Value = match crate::input::parse_body(body) {
            Ok(v) => v,
            Err(e) => {
                return IngestReply::Failed {
                    status: 400,
                    error: e.to_api_error(ErrorCode::InvalidJson, "the body is not JSON"),
                };
            }
        };
        let items = match parsed {
            Value::Array(items) => items,
            item @ Value::Object(_) => vec![item],
            _ => {
                return fail(
                    400,
                    ErrorCode::InvalidRequest,
                    "the body must be an item object or an array of items",
                );
            }
        };
        if items.is_empty() {
            return fail(400, ErrorCode::EmptyRequest, "the array holds no item");
        }
        if items.len() > self.inner.config.max_items {
            return fail(
                413,
                ErrorCode::TooManyItems,
                &format!("at most {} items per request", self.inner.config.max_items),
            );
        }

        let registry = self.registry();
        let received = chrono::Utc::now();
        let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
        let mut ready: Vec<(usize, Prepared)> = Vec::new();
        // Items the caller may send but that fail later checks: each may be the resend of
        // a message accepted before the directory or catalogue changed.
        let mut authorised_rejects: Vec<(usize, Key)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            // Returned as sent while it may be a reference; a longer one is invalid anyway
            // and is only quoted.
            let reference = item
                .pointer(&format!("{PAYLOAD}/CommonBlock/S1/senderUniqueReference"))
                .and_then(Value::as_str)
                .map(|r| match r.chars().nth(envelope::MAX_TEXT) {
                    None => r.to_owned(),
                    Some(_) => crate::input::echo(r).into_owned(),
                });
            results.push(ItemResult {
                index,
                sender_unique_reference: reference,
                status: ItemStatus::Rejected,
                transaction_id: None,
                initial_correlation_id: None,
                errors: vec![],
            });
            let opened = match self.open_custom_block(item, &registry) {
                Ok(o) => o,
                Err(errors) => {
                    results[index].errors = errors;
                    continue;
                }
            };
            match prepare(
                opened.as_ref().unwrap_or(item),
                principal,
                signed,
                &registry,
                &self.inner.config.environment,
                received,
            ) {
                Ok(p) => ready.push((index, p)),
                Err(Rejection { errors, key }) => {
                    results[index].errors = errors;
                    authorised_rejects.extend(key.map(|k| (index, k)));
                }
            }
        }

        // One appointment query for every MPAN the request routes by.
        let mpans: Vec<String> = ready
            .iter()
            .filter(|(_, p)| p.channel.channel.routes_by(RoutingMode::Mpan))
            .filter_map(|(_, p)| p.header.mpan.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut appointments: HashMap<String, Vec<Appointment>> = HashMap::new();
        if !mpans.is_empty() {
            match self.inner.store.appointments(&mpans).await {
                Ok(rows) => rows
                    .into_iter()
                    .for_each(|a| appointments.entry(a.mpan.clone()).or_default().push(a)),
                Err(e) => return unavailable(&e),
            }
        }

        let mut batch: Vec<NewMessage> = Vec::new();
        let mut batch_index: Vec<usize> = Vec::new();
        for (index, p) in ready {
            let rows = p
                .header
                .mpan
                .as_ref()
                .and_then(|m| appointments.get(m))
                .map_or(&[][..], Vec::as_slice);
            match routing::route(p.channel, &p.header, &registry, rows, p.date.clone()) {
                Ok(decision) => {
                    let category = p.channel.channel.security_category;
                    let mut message = p.into_message(decision, received, &self.inner.config.environment);
                    message.envelope =
                        self.seal_envelope(category, &message.transaction_id, std::mem::take(&mut message.envelope));
                    results[index].transaction_id = Some(message.transaction_id.clone());
                    results[index].initial_correlation_id = message.correlation_id.clone();
                    batch.push(message);
                    batch_index.push(index);
                }
                Err(errors) => {
                    results[index].errors = errors;
                    authorised_rejects.push((index, p.key));
                }
            }
        }

        // A resend of an accepted message is a duplicate even if it would now be refused.
        for (index, key) in authorised_rejects {
            match self.inner.store.original(&key.sender, &key.reference).await {
                Ok(Some(original)) if original.content_hash == key.content_hash => {
                    let r = &mut results[index];
                    r.status = ItemStatus::Duplicate;
                    r.transaction_id = Some(original.transaction_id);
                    r.initial_correlation_id = original.correlation_id;
                    r.errors.clear();
                }
                Ok(_) => {}
                Err(e) => return unavailable(&e),
            }
        }

        if !batch.is_empty() {
            let hashes: Vec<String> = batch.iter().map(|m| m.content_hash.clone()).collect();
            let outcomes = match self.commit(batch).await {
                Ok(o) => o,
                Err(reply) => return reply,
            };
            for ((index, outcome), hash) in batch_index.into_iter().zip(outcomes).zip(hashes) {
                let r = &mut results[index];
                match outcome {
                    CommitOutcome::Accepted => r.status = ItemStatus::Accepted,
                    CommitOutcome::Duplicate {
                        transaction_id,
                        correlation_id,
                        content_hash,
                    } if content_hash == hash => {
                        r.status = ItemStatus::Duplicate;
                        r.transaction_id = Some(transaction_id);
                        r.initial_correlation_id = correlation_id;
                    }
                    CommitOutcome::Duplicate { transaction_id, .. } => {
                        r.transaction_id = None;
                        r.initial_correlation_id = None;
                        r.errors = vec![ApiError::new(
                            ErrorCode::DuplicateReferenceConflict,
                            format!("{PAYLOAD}/CommonBlock/S1/senderUniqueReference"),
                            format!("this reference was used for a different payload (transaction {transaction_id})"),
                        )];
                    }
                }
            }
        }

        let at = received.timestamp_micros();
        let rejected: Vec<Event> = results
            .iter()
            .filter(|r| r.status == ItemStatus::Rejected)
            .map(|r| {
                let mut event = Event::new(EventKind::Rejected, at);
                event.sender_dip_id = principal.dip_id().unwrap_or_default().to_owned();
                event.outcome = r.errors.first().map(|e| e.code.as_str()).unwrap_or_default().to_owned();
                // Only a channel that exists names the event's channel: anything else
                // the caller wrote stays out of the reports.
                event.interface_id = items[r.index]
                    .pointer(&format!("{PAYLOAD}/CommonBlock/S0/interfaceID"))
                    .and_then(Value::as_str)
                    .filter(|id| registry.channel(id).is_some())
                    .unwrap_or_default()
                    .to_owned();
                event
            })
            .collect();
        if !rejected.is_empty() {
            self.record_rejections(rejected).await;
        }

        let accepted = results.iter().filter(|r| r.status != ItemStatus::Rejected).count();
        let status = if accepted == results.len() {
            202
        } else if accepted > 0 {
            207
        } else if results
            .iter()
            .all(|r| r.errors.iter().all(|e| e.code.is_authorisation()))
        {
            403
        } else {
            400
        };
        IngestReply::Items { status, results }
    }

    async fn commit(&self, messages: Vec<NewMessage>) -> Result<Vec<CommitOutcome>, IngestReply> {
        let (reply, answer) = oneshot::channel();
        let busy = || IngestReply::Failed {
            status: 503,
            error: ApiError::new(
                ErrorCode::Unavailable,
                "",
                "the platform is at capacity; nothing was accepted; retry",
            ),
        };
        self.inner
            .commits
            .send_timeout(Job { messages, reply }, self.inner.config.commit_wait)
            .await
            .map_err(|_| busy())?;
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(busy()),
        }
    }
}

/// The `D0` block the platform adds to a message (`WIRE.md`).
pub(crate) fn transaction_wrapper(
    transaction_id: &str,
    at: chrono::DateTime<chrono::Utc>,
    channel: &crate::model::Channel,
    correlation_id: Option<&str>,
    replay: bool,
    environment: &str,
) -> Value {
    json!({
        "transactionID": transaction_id,
        "transactionTimestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "publicationID": channel.publication_id(),
        "initialCorrelationID": correlation_id,
        "replayIndicator": replay,
        "serviceTicketURL": null,
        "environmentTag": environment,
    })
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

fn unavailable(e: &StoreError) -> IngestReply {
    tracing::error!(error = %e, "store failure; request refused");
    IngestReply::Failed {
        status: 503,
        error: ApiError::new(
            ErrorCode::Unavailable,
            "",
            "the platform cannot store messages now; nothing was accepted; retry",
        ),
    }
}

/// Takes every job waiting (up to `max` messages) and commits them together.
async fn commit_loop(store: Arc<dyn Store>, rx: Arc<Mutex<mpsc::Receiver<Job>>>, max: usize) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(job) = rx.recv().await else { return };
            let mut n = job.messages.len();
            jobs.push(job);
            while n < max {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.messages.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let batch: Vec<NewMessage> = jobs.iter().flat_map(|j| j.messages.iter().cloned()).collect();
        let mut result = store.commit_messages(&batch).await;
        // Concurrent committers on PostgreSQL can still meet a deadlock or serialisation
        // failure; the transaction rolled back, so trying again is safe.
        for _ in 0..3 {
            match &result {
                Err(e) if is_retryable(e) => result = store.commit_messages(&batch).await,
                _ => break,
            }
        }
        match result {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for job in jobs {
                    let mine: Vec<CommitOutcome> = outcomes.by_ref().take(job.messages.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// The idempotency key of an authorised item and the hash of its payload.
#[derive(Clone)]
struct Key {
    sender: String,
    reference: String,
    content_hash: String,
}

/// Why an item was refused; `key` is set once the caller was authorised to send it.
struct Rejection {
    errors: Vec<ApiError>,
    key: Option<Key>,
}

impl From<Vec<ApiError>> for Rejection {
    fn from(errors: Vec<ApiError>) -> Self {
        Self { errors, key: None }
    }
}

/// An item that passed validation and authorisation, ready to be routed.
struct Prepared<'r> {
    key: Key,
    header: Header,
    channel: &'r CompiledChannel,
    payload: Value,
    date: (chrono::NaiveDate, String),
    appointments: Vec<Appointment>,
}

fn prepare<'r>(
    item: &Value,
    principal: &Principal,
    signed: bool,
    registry: &'r Registry,
    environment: &str,
    received: chrono::DateTime<chrono::Utc>,
) -> Result<Prepared<'r>, Rejection> {
    let (header, channel) = envelope::check_item(item, registry, environment)?;
    let mut errors = envelope::authorise(principal, &header, channel, registry);
    if !signed {
        if channel.channel.requires_signature() {
            errors.push(ApiError::new(
                ErrorCode::SignatureRequired,
                "",
                format!("{} takes only X-DIP-signed requests", channel.channel.id),
            ));
        } else if registry
            .participant(&header.sender_dip_id)
            .is_some_and(|p| p.signatures_required)
        {
            errors.push(ApiError::new(
                ErrorCode::SignatureRequired,
                "",
                format!("{} sends only X-DIP-signed requests", header.sender_dip_id),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let payload = item.get("payload").cloned().unwrap_or(Value::Null);
    let key = Key {
        sender: header.sender_dip_id.clone(),
        reference: header.sender_unique_reference.clone(),
        content_hash: envelope::content_hash(&payload),
    };
    let reject = |errors| Rejection {
        errors,
        key: Some(key.clone()),
    };
    let date = match &channel.channel.applicable_date {
        Some(ptr) => match envelope::date_at(&payload, ptr) {
            Some(d) => (d, ptr.clone()),
            None => {
                return Err(reject(vec![ApiError::new(
                    ErrorCode::InvalidField,
                    format!("{PAYLOAD}{ptr}"),
                    "the routing date must be a date or date-time",
                )]));
            }
        },
        None => (received.date_naive(), "receipt".to_owned()),
    };
    let appointments = appointment_changes(channel, &header, &payload, registry).map_err(reject)?;
    Ok(Prepared {
        key,
        header,
        channel,
        payload,
        date,
        appointments,
    })
}

/// The MPAN appointment change a registration channel's message carries (spec 5.5.14).
fn appointment_changes(
    channel: &CompiledChannel,
    header: &Header,
    payload: &Value,
    registry: &Registry,
) -> Result<Vec<Appointment>, Vec<ApiError>> {
    let Some(rule) = &channel.channel.appointment_update else {
        return Ok(vec![]);
    };
    let invalid = |ptr: &str, why: &str| {
        vec![ApiError::new(
            ErrorCode::InvalidField,
            format!("{PAYLOAD}{ptr}"),
            why.to_owned(),
        )]
    };
    let Some(mpan) = header.mpan.clone() else {
        return Err(vec![ApiError::new(
            ErrorCode::MissingField,
            format!("{PAYLOAD}/CommonBlock/M0/MPANCore"),
            "this channel maintains MPAN appointments and needs MPANCore",
        )]);
    };
    let role = payload
        .pointer(&rule.role)
        .and_then(Value::as_str)
        .filter(|r| registry.catalogue.roles.contains_key(*r));
    let Some(role) = role else {
        return Err(invalid(&rule.role, "must be a known role code"));
    };
    let dip_id = match &rule.participant {
        None => None,
        Some(ptr) => match payload.pointer(ptr).and_then(Value::as_str) {
            Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) => Some(d.to_owned()),
            _ => return Err(invalid(ptr, "must be a DIP ID of 10 digits")),
        },
    };
    let Some(from) = envelope::date_at(payload, &rule.effective_from) else {
        return Err(invalid(&rule.effective_from, "must be a date or date-time"));
    };
    Ok(vec![Appointment {
        mpan,
        role: role.to_owned(),
        effective_from: from.format("%Y-%m-%d").to_string(),
        dip_id,
        source_transaction_id: None,
    }])
}

impl Prepared<'_> {
    fn into_message(
        mut self,
        decision: Decision,
        received: chrono::DateTime<chrono::Utc>,
        environment: &str,
    ) -> NewMessage {
        let def = &self.channel.channel;
        let transaction_id = uuid::Uuid::now_v7().to_string();
        let correlation_id = if def.workflow_start {
            Some(uuid::Uuid::new_v4().to_string())
        } else {
            self.header.sender_correlation_id.clone()
        };
        if let Some(cb) = self.payload.get_mut("CommonBlock").and_then(Value::as_object_mut) {
            let a0 = cb.entry("A0").or_insert_with(|| json!({}));
            if let Some(a0) = a0.as_object_mut() {
                a0.entry("primaryRecipients").or_insert_with(|| json!([]));
                a0.insert("secondaryRecipients".into(), json!(decision.reached_by(&["mpan"])));
                a0.insert(
                    "always".into(),
                    json!(decision.reached_by(&["always-role", "always-participant"])),
                );
            }
            cb.insert(
                "D0".into(),
                transaction_wrapper(
                    &transaction_id,
                    received,
                    def,
                    correlation_id.as_deref(),
                    false,
                    environment,
                ),
            );
        }
        let received_at = received.timestamp_micros();
        let deliveries = decision
            .recipients
            .iter()
            .map(|r| Delivery {
                queue_id: r.queue.clone(),
                recipient_dip_id: r.dip_id.clone(),
                recipient_role: r.role.clone(),
                hidden: r.hidden.clone(),
            })
            .collect();
        for a in &mut self.appointments {
            a.source_transaction_id = Some(transaction_id.clone());
        }
        NewMessage {
            sender_dip_id: self.header.sender_dip_id,
            sender_unique_reference: self.header.sender_unique_reference,
            content_hash: self.key.content_hash,
            interface_id: def.id.clone(),
            schema_version: self.header.schema_version,
            event_code: self.header.event_codes.first().cloned().unwrap_or_default(),
            sender_role: self.header.sender_role,
            dcp_dip_id: self.header.dcp_dip_id,
            mpan: self.header.mpan,
            correlation_id,
            received_at,
            retain_until: received_at.saturating_add(i64::from(def.retention_days) * 86_400_000_000),
            routing: serde_json::to_string(&decision).unwrap_or_default(),
            envelope: serde_json::to_string(&self.payload).unwrap_or_default(),
            deliveries,
            appointments: self.appointments,
            transaction_id,
        }
    }
}
