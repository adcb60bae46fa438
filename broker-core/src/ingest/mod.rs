//! Ingest (spec 5.5.1–5.5.7): from the body of `POST /api/v1/messages` to the answer,
//! with every accepted message durable before the answer is sent.
//!
//! A request is checked as a whole (size, JSON, item count), then its items go through
//! the pipeline's steps, one module each:
//!
//! 1. `prepare`: each item is opened (a CustomBlock encrypted to the platform is
//!    decrypted), validated, authorised and given its idempotency key;
//! 2. `route`: the items that passed are routed (one appointment query for the whole
//!    request) and become messages with their `D0` wrapper, sealed for the archive;
//! 3. `commit`: items refused after authorisation are recognised as resends of accepted
//!    messages, and the messages go to the group committer ([`crate::committer`]); the
//!    store's outcomes settle each item as accepted, duplicate or conflicting.
//!
//! This module holds the entry points, the answer's types, and the recording of
//! rejections for reports.

use serde::Serialize;
use serde_json::Value;

use crate::broker::Broker;
use crate::envelope::{self, PAYLOAD};
use crate::error::{ApiError, ErrorCode};
use crate::events::{Event, EventKind};
use crate::model::Principal;
use crate::security::signature::SignatureRecord;
use crate::store::StoreError;

mod commit;
mod prepare;
mod route;

use prepare::{Key, Prepared, Rejection};

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
    /// Handles the body of an unsigned `POST /api/v1/messages` from `principal`.
    pub async fn ingest(&self, principal: &Principal, body: &[u8]) -> IngestReply {
        self.ingest_request(principal, body, None).await
    }

    /// Handles the body of `POST /api/v1/messages` from `principal`; `signature` is the
    /// request's verified X-DIP signature (channels may require one), kept with each
    /// message it carries as evidence of receipt.
    pub async fn ingest_request(
        &self,
        principal: &Principal,
        body: &[u8],
        signature: Option<SignatureRecord>,
    ) -> IngestReply {
        let reply = self.ingest_items(principal, body, signature.as_ref()).await;
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
        if let Err(e) = self.outbox().record_events(&events).await {
            tracing::warn!(error = %e, rejected = events.len(), "cannot record rejections for reports");
        }
    }

    async fn ingest_items(
        &self,
        principal: &Principal,
        body: &[u8],
        signature: Option<&SignatureRecord>,
    ) -> IngestReply {
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
            match prepare::prepare(
                opened.as_ref().unwrap_or(item),
                principal,
                signature.is_some(),
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

        let batch = match self
            .route_and_seal(
                ready,
                &registry,
                received,
                signature,
                &mut results,
                &mut authorised_rejects,
            )
            .await
        {
            Ok(batch) => batch,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.settle_resends(authorised_rejects, &mut results).await {
            return reply;
        }
        if let Err(reply) = self.commit_batch(batch, &mut results).await {
            return reply;
        }

        let at = received.timestamp_micros();
        let rejected: Vec<Event> = results
            .iter()
            .filter(|r| r.status == ItemStatus::Rejected)
            .map(|r| {
                let mut event = Event::new(EventKind::Rejected, at);
                event.sender_dip_id = rejected_sender(principal, &items[r.index], &registry);
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
}

/// Whose refused item this is, for reports: the caller's; for a DCP, the participant the
/// item names as its sender when that participant nominated the DCP (its sender report
/// shows the refusals of what its DCP sent for it).
fn rejected_sender(principal: &Principal, item: &Value, registry: &crate::registry::Registry) -> String {
    let caller = principal.dip_id().unwrap_or_default();
    if matches!(principal, Principal::Dcp { .. })
        && let Some(named) = item
            .pointer(&format!("{PAYLOAD}/CommonBlock/S1/senderDIPID"))
            .and_then(Value::as_str)
        && registry.is_nominated(named, caller)
    {
        return named.to_owned();
    }
    caller.to_owned()
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
