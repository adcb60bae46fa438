//! Pull mode (spec 5.4 push/pull; `WIRE.md`): a participant without a webhook reads the
//! head of its queue under a lease and acknowledges by transaction id. While a lease is
//! live nobody else reads the queue, so order holds; what is not acknowledged before the
//! lease ends is offered again (at least once).

use std::time::Duration;

use crate::broker::Broker;
use crate::store::{EntryState, Outbound, Settlement, StoreError};

/// Messages handed to a pulling consumer.
#[derive(Debug)]
pub struct Pulled {
    /// The lease to acknowledge under and to present on the next pull.
    pub lease_id: String,
    /// When the lease ends, microseconds since the epoch.
    pub lease_until: i64,
    /// The head of the queue, in order.
    pub items: Vec<Outbound>,
}

/// Why a pull or acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// No such queue: neither an endpoint nor a participant's `default` queue.
    #[error("no such queue")]
    UnknownQueue,
    /// The queue has a webhook.
    #[error("the queue is delivered by webhook")]
    NotPull,
    /// Another consumer holds the lease until then (microseconds since the epoch).
    #[error("another consumer holds the queue")]
    Leased(i64),
    /// The lease presented is no longer held.
    #[error("the lease has expired or was taken over")]
    LeaseLost,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn owner(lease_id: &str) -> String {
    format!("pull:{lease_id}")
}

/// Leases `queue_id` (or extends `lease_id`) and returns up to `max` entries from its
/// head. Stale entries met at the head are dead-lettered and reported as the webhook
/// worker would.
pub async fn pull(
    broker: &Broker,
    queue_id: &str,
    lease_id: Option<&str>,
    max: i64,
    lease: Duration,
) -> Result<Pulled, PullError> {
    let registry = broker.registry();
    // Leasing a name nobody routes to would answer as if it were a queue, and leave a
    // lease row behind for every name tried.
    if !registry.has_queue(queue_id) {
        return Err(PullError::UnknownQueue);
    }
    if registry.endpoint(queue_id).is_some_and(|e| e.url.is_some()) {
        return Err(PullError::NotPull);
    }
    let lease_id = lease_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let queues = broker.queues();
    let now = crate::clock::now_micros();
    let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    let held = queues
        .claim_queues(&owner(&lease_id), &[queue_id.to_owned()], now, until)
        .await?;
    if held.is_empty() {
        let until = queues.lease(queue_id).await?.map_or(now, |(_, u)| u);
        return Err(PullError::Leased(until));
    }
    let items = head(broker, queue_id, max, now).await?;
    Ok(Pulled {
        lease_id,
        lease_until: until,
        items,
    })
}

/// Up to `max` entries from the head of a queue; stale entries met on the way are
/// dead-lettered and reported as the webhook worker would.
pub(crate) async fn head(broker: &Broker, queue_id: &str, max: i64, now: i64) -> Result<Vec<Outbound>, StoreError> {
    let queues = broker.queues();
    let max = usize::try_from(max).unwrap_or(0);
    let mut items = Vec::new();
    let mut after = 0;
    while items.len() < max {
        let batch = queues
            .next_outbound(queue_id, after, i64::try_from(max).unwrap_or(1))
            .await?;
        if batch.is_empty() {
            break;
        }
        let mut dead = Vec::new();
        let mut reports = Vec::new();
        for out in batch {
            after = out.entry.seq;
            match super::expire(broker, &out, now) {
                Some((settlement, report)) => {
                    dead.push(settlement);
                    reports.extend(report);
                }
                None if items.len() < max => items.push(out),
                None => break,
            }
        }
        if !dead.is_empty() {
            queues.settle(&dead, &reports).await?;
        }
    }
    Ok(items)
}

/// Acknowledges entries of `queue_id` by transaction id under `lease_id`; returns the
/// transaction ids acknowledged now (others were not pending in the queue). With
/// `release` the lease ends, letting another consumer in at once.
pub async fn ack(
    broker: &Broker,
    queue_id: &str,
    lease_id: &str,
    transaction_ids: &[String],
    release: bool,
) -> Result<Vec<String>, PullError> {
    if !broker.registry().has_queue(queue_id) {
        return Err(PullError::UnknownQueue);
    }
    let queues = broker.queues();
    match queues.lease(queue_id).await? {
        Some((o, _)) if o == owner(lease_id) => {}
        _ => return Err(PullError::LeaseLost),
    }
    let entries = queues.pending_by_transaction(queue_id, transaction_ids).await?;
    let at = crate::clock::now_micros();
    let settlements: Vec<Settlement> = entries
        .iter()
        .map(|e| Settlement {
            queue_id: queue_id.to_owned(),
            seq: e.seq,
            state: EntryState::Delivered,
            at,
            outcome: "acknowledged".into(),
            duration_us: 0,
            call: None,
        })
        .collect();
    queues.settle(&settlements, &[]).await?;
    if entries.iter().any(|e| e.replay_id.is_some()) {
        let queue = [queue_id.to_owned()];
        broker
            .replays()
            .release_held(Some(&queue), broker.config().replay_batch, at)
            .await?;
    }
    if release {
        queues.release_queue(&owner(lease_id), queue_id).await?;
    }
    Ok(entries.into_iter().map(|e| e.transaction_id).collect())
}
