//! Ingest (spec 5.5.1–5.5.7): validation, authorisation, routing and sealing of each
//! item, and the hand-over of accepted messages to the group committer
//! ([`crate::committer`]), which makes them durable before the answer is sent.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::catalogue::CompiledChannel;
use crate::committer::Job;
use crate::envelope::{self, Header, PAYLOAD, transaction_wrapper};
use crate::error::{ApiError, ErrorCode};
use crate::events::{Event, EventKind};
use crate::model::{Appointment, Principal, RoutingMode};
use crate::registry::Registry;
use crate::routing::{self, Decision};
use crate::store::{CommitOutcome, Delivery, NewMessage, StoreError};

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

impl Broker {
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
        let Some(decrypter) = &self.config().decrypter else {
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
        if let Err(e) = self.store().record_events(&events).await {
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
        if body.len() > self.config().max_body_bytes {
            return fail(
                413,
                ErrorCode::PayloadTooLarge,
                &format!("the body exceeds {} bytes", self.config().max_body_bytes),
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
        if items.len() > self.config().max_items {
            return fail(
                413,
                ErrorCode::TooManyItems,
                &format!("at most {} items per request", self.config().max_items),
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
                &self.config().environment,
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
            match self.store().appointments(&mpans).await {
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
                    let mut message = p.into_message(decision, received, &self.config().environment);
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
            match self.store().original(&key.sender, &key.reference).await {
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
        self.commits()
            .send_timeout(Job { messages, reply }, self.config().commit_wait)
            .await
            .map_err(|_| busy())?;
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(busy()),
        }
    }
}

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
