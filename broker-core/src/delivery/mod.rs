//! Delivery (spec 5.4, 5.5.8–5.5.13): per-recipient FIFO queues drained by webhook
//! workers, with retries, dead letters and return to sender; pull for participants
//! without a webhook.
//!
//! Each webhook queue is delivered by one worker at a time across every node: a node
//! holds a lease on the queue (a row of `queue_status`) and renews it while it works.
//! Workers wake when a commit queues entries (in-process, and through PostgreSQL
//! LISTEN/NOTIFY from other nodes); a slow sweep only picks up queues whose lease holder
//! died. No database transaction is open during an HTTP call: an entry is read, sent,
//! and its outcome written afterwards, deliveries in batches.

mod context;
pub mod destinations;
mod dispatcher;
pub mod operations;
pub mod pull;
pub mod report;
pub mod webhook;
mod worker;

use std::time::Duration;

use crate::broker::Broker;
use crate::model::DeliveryPolicy;
use crate::store::{EntryState, NewMessage, Origin, Outbound, QueueEntry, Settlement};
use report::{ErrorItem, Reason, ReturnToSender};

/// How a node delivers.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// This node's name in queue leases; unique per running process.
    pub node_id: String,
    /// Longest wait for a recipient's answer.
    pub request_timeout: Duration,
    /// Longest wait to connect to a recipient.
    pub connect_timeout: Duration,
    /// How long a queue lease lasts without renewal. A node that dies holds its queues
    /// this long, unless it ran under a held identity (`Store::hold_node`, as `dip serve`
    /// does): then other nodes see it gone within `liveness_interval`. A worker sends only
    /// while its lease outlasts `request_timeout`.
    pub lease_ttl: Duration,
    /// How often to look for queues with work that nobody holds (a dead node's).
    pub sweep_interval: Duration,
    /// How often to look for nodes that are gone (their identity lock free) and take
    /// their queues over (`Store::release_dead_nodes`).
    pub liveness_interval: Duration,
    /// A worker with nothing to do gives its queue up after this long.
    pub idle_release: Duration,
    /// Most deliveries recorded per write.
    pub flush_every: usize,
    /// Longest a delivery waits to be recorded (a crash within it means the message is
    /// sent again, with the same transaction id).
    pub flush_interval: Duration,
    /// Entries read per query.
    pub fetch: i64,
    /// Addresses webhooks may connect to (public ones unless ranges are allow-listed).
    pub destinations: destinations::Destinations,
    /// The platform's client certificate and key (PEM, concatenated), presented to every
    /// webhook.
    pub client_identity_pem: Option<String>,
    /// Authorities trusted for recipients' server certificates besides the public roots
    /// (PEM bundle; a test environment's authority).
    pub extra_roots_pem: Option<String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(5),
            liveness_interval: Duration::from_secs(1),
            idle_release: Duration::from_secs(30),
            flush_every: 256,
            flush_interval: Duration::from_millis(20),
            fetch: 256,
            destinations: destinations::Destinations::public(),
            client_identity_pem: None,
            extra_roots_pem: None,
        }
    }
}

/// Starts delivering every webhook queue this node can lease.
pub fn start(broker: Broker, config: DeliveryConfig) -> Result<crate::task::TaskHandle, reqwest::Error> {
    dispatcher::start(broker, config)
}

/// What the recipient of `out` receives as `payload`: the envelope in the clear without
/// what its role may not see, and under security pattern 2 with the CustomBlock
/// encrypted to the recipient's certificate.
pub(crate) fn recipient_payload(broker: &Broker, out: &Outbound) -> Result<serde_json::Value, String> {
    let plain = broker
        .open_envelope(&out.entry.transaction_id, &out.envelope)
        .map_err(|e| e.to_string())?;
    let payload: serde_json::Value = serde_json::from_str(&plain).map_err(|e| e.to_string())?;
    let mut payload = crate::obfuscate::redact(&payload, &out.entry.hidden);
    let registry = broker.registry();
    if registry
        .channel(&out.interface_id)
        .is_some_and(|c| c.channel.encrypted_to_platform())
    {
        let cert = registry
            .encryption_certificate(
                &out.entry.recipient_dip_id,
                &broker.config().environment,
                crate::clock::now_micros(),
            )
            .ok_or_else(|| format!("{} has no certificate to encrypt to", out.entry.recipient_dip_id))?;
        let custom = payload.get("CustomBlock").cloned().unwrap_or(serde_json::Value::Null);
        let jwe = crate::security::jwe::encrypt(custom.to_string().as_bytes(), &cert.pem).map_err(|e| e.to_string())?;
        if let Some(slot) = payload.get_mut("CustomBlock") {
            *slot = serde_json::Value::String(jwe);
        }
    }
    Ok(payload)
}

/// The webhook body for `out` (see [`recipient_payload`]), without re-parsing the
/// archived envelope when it goes out unchanged.
fn recipient_body(broker: &Broker, out: &Outbound) -> Result<Vec<u8>, String> {
    let unchanged = out.entry.hidden.is_empty()
        && broker
            .registry()
            .channel(&out.interface_id)
            .is_none_or(|c| !c.channel.encrypted_to_platform());
    if unchanged {
        let plain = broker
            .open_envelope(&out.entry.transaction_id, &out.envelope)
            .map_err(|e| e.to_string())?;
        return Ok(webhook::body(&plain));
    }
    let payload = recipient_payload(broker, out)?;
    serde_json::to_vec(&serde_json::json!([{ "payload": payload }])).map_err(|e| e.to_string())
}

/// The channel's delivery policy (the default when the channel has been removed).
fn policy(broker: &Broker, interface_id: &str) -> DeliveryPolicy {
    broker
        .registry()
        .channel(interface_id)
        .map(|c| c.channel.delivery.clone())
        .unwrap_or_default()
}

/// When an entry goes stale under its channel's policy, microseconds since the epoch.
fn stale_at(policy: &DeliveryPolicy, out: &Outbound) -> i64 {
    out.entry.enqueued_at.saturating_add(
        i64::try_from(policy.stale_after_secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1_000_000),
    )
}

/// The dead-lettering of an entry that is stale at `now`, with the report to its sender.
fn expire(broker: &Broker, out: &Outbound, now: i64) -> Option<(Settlement, Option<NewMessage>)> {
    let policy = policy(broker, &out.interface_id);
    if now < stale_at(&policy, out) {
        return None;
    }
    let limit = policy.stale_after_secs;
    let why = format!(
        "not delivered within {limit} s after {} attempt(s); last outcome: {}",
        out.entry.attempts,
        out.entry.last_outcome.as_deref().unwrap_or("none")
    );
    Some(dead_letter(
        broker,
        out,
        now,
        &format!("stale after {limit} s"),
        "STALE",
        why,
    ))
}

/// Moves an entry to the dead letters (`outcome` recorded on it) and reports `code` and
/// `why` to its sender.
fn dead_letter(
    broker: &Broker,
    out: &Outbound,
    now: i64,
    outcome: &str,
    code: &str,
    why: String,
) -> (Settlement, Option<NewMessage>) {
    let errors = vec![ErrorItem {
        code: code.into(),
        path: String::new(),
        message: why,
    }];
    let settlement = Settlement {
        queue_id: out.entry.queue_id.clone(),
        seq: out.entry.seq,
        state: EntryState::Dead,
        at: now,
        outcome: outcome.into(),
        duration_us: 0,
        call: None,
    };
    let report = returned(
        broker,
        out.origin.as_ref(),
        &out.entry,
        &out.interface_id,
        Reason::DeadLetter,
        None,
        errors,
        "",
    );
    (settlement, report)
}

/// The report to the sender about one delivery (none for replay copies, which have no
/// origin, and for reports).
#[allow(clippy::too_many_arguments)]
pub(crate) fn returned(
    broker: &Broker,
    origin: Option<&Origin>,
    entry: &QueueEntry,
    interface_id: &str,
    reason: Reason,
    http_status: Option<u16>,
    errors: Vec<ErrorItem>,
    discriminator: &str,
) -> Option<NewMessage> {
    let config = broker.config();
    ReturnToSender {
        reason,
        origin: origin?,
        transaction_id: &entry.transaction_id,
        interface_id,
        recipient_dip_id: &entry.recipient_dip_id,
        recipient_role: &entry.recipient_role,
        http_status,
        attempts: entry.attempts,
        last_outcome: entry.last_outcome.as_deref(),
        errors,
        discriminator,
    }
    .into_message(&broker.registry(), &config.environment, &config.platform_dip_id)
}

/// The delay before retry number `failures` (1 for the first retry): exponential from
/// the policy's initial delay, capped, with jitter over the upper half so that many
/// queues failing together do not retry in step.
fn backoff(policy: &DeliveryPolicy, failures: i64) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = policy
        .retry_initial_ms
        .saturating_mul(1u64 << exp)
        .min(policy.retry_max_ms);
    let jitter = rand::random_range(0..=base / 2);
    Duration::from_millis(base - base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = DeliveryPolicy {
            retry_initial_ms: 100,
            retry_max_ms: 1000,
            stale_after_secs: 60,
        };
        for _ in 0..100 {
            let first = backoff(&p, 1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = backoff(&p, 3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            let late = backoff(&p, 40).as_millis();
            assert!((500..=1000).contains(&late), "{late}");
        }
    }
}
