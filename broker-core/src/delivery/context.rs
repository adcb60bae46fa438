//! What a node's delivery dispatcher and its queue workers share.

use std::time::Instant;

use tokio::sync::watch;

use super::DeliveryConfig;
use crate::broker::Broker;

/// What the dispatcher and its workers share.
pub(super) struct Ctx {
    pub broker: Broker,
    pub http: reqwest::Client,
    pub config: DeliveryConfig,
    /// Origin of the lease deadlines (milliseconds since).
    pub epoch: Instant,
    pub shutdown: watch::Receiver<bool>,
}

impl Ctx {
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The local deadline of a lease taken or renewed at `start_ms`: a margin short of
    /// its expiry in the database, so that clock drift never lets two nodes overlap.
    pub fn deadline(&self, start_ms: u64) -> u64 {
        let ttl = u64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        start_ms.saturating_add(ttl / 10 * 9)
    }
}
