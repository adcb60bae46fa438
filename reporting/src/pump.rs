//! The analytics pump: moves events from the store's outbox to the sink in batches.
//!
//! One node pumps at a time (a `worker_leases` row). Into the embedded tables, a batch
//! is copied and deleted from the outbox in one transaction. Into ClickHouse, a batch is
//! inserted as one block and then deleted from the outbox; a crash between the two leaves
//! events in both, so after any failure or a fresh start the pump first asks ClickHouse
//! which of the batch it already holds and inserts only the rest. No event is lost or
//! counted twice. ClickHouse being down only grows the outbox: nothing on the message
//! path waits for the pump.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use broker_core::events::Event;
use broker_core::store::Store;
use broker_core::task::TaskHandle;

use crate::analytics::Sink;
use crate::error::AnalyticsError;

/// The lease name.
const LEASE: &str = "analytics-pump";

/// How the pump runs.
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// This node's name in the lease.
    pub owner: String,
    /// Most events per batch.
    pub batch: i64,
    /// After a wake-up, how long to let events gather before moving them (ClickHouse
    /// prefers fewer, larger inserts).
    pub linger: Duration,
    /// Lease length; another node takes over this long after this one dies.
    pub lease: Duration,
    /// Longest sleep between looks at the outbox: events written by other nodes
    /// without a notification (failed attempts, settlements) wait at most this long.
    pub idle_check: Duration,
}

impl Default for PumpConfig {
    fn default() -> Self {
        Self {
            owner: format!("node-{}", uuid::Uuid::new_v4().simple()),
            batch: 5_000,
            linger: Duration::from_millis(250),
            lease: Duration::from_secs(15),
            idle_check: Duration::from_secs(1),
        }
    }
}

/// Moves outbox batches to a sink.
pub struct Pump {
    store: Arc<dyn Store>,
    sink: Sink,
    config: PumpConfig,
    /// Set after a failure or at start: the sink may hold part of the outbox already.
    recovering: bool,
}

impl Pump {
    /// A pump from `store`'s outbox to `sink`.
    pub fn new(store: Arc<dyn Store>, sink: Sink, config: PumpConfig) -> Self {
        Self {
            store,
            sink,
            config,
            recovering: true,
        }
    }

    /// Moves one batch (the oldest events); returns how many left the outbox.
    pub async fn step(&mut self) -> Result<usize, AnalyticsError> {
        let batch = self.store.outbox(self.config.batch).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        let recovering = std::mem::replace(&mut self.recovering, true);
        match &self.sink {
            Sink::Embedded => {
                self.store.move_to_embedded(&ids).await?;
            }
            Sink::ClickHouse(c) => {
                let fresh: Vec<Event> = if recovering {
                    let held = c.existing(&batch).await?;
                    batch.into_iter().filter(|e| !held.contains(&e.id)).collect()
                } else {
                    batch
                };
                c.insert(&fresh).await?;
                self.store.discard_outbox(&ids).await?;
            }
        }
        self.recovering = false;
        Ok(ids.len())
    }

    /// Pumps until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let signal = self.store.outbox_signal();
        let mut commits = self.store.subscribe();
        let mut backoff = Duration::from_millis(500);
        let mut failing = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = broker_core::clock::now_micros();
            let until = now + i64::try_from(self.config.lease.as_micros()).unwrap_or(i64::MAX / 2);
            match self.store.claim_worker(LEASE, &self.config.owner, now, until).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another node pumps; when it stops, we may find part of its last
                    // batch in the sink.
                    self.recovering = true;
                    if sleep_or_stop(self.config.lease / 2, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "analytics pump: cannot take its lease");
                    if sleep_or_stop(backoff, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            match self.step().await {
                Ok(n) => {
                    if failing {
                        tracing::info!(sink = ?self.sink, "analytics pump: the sink takes events again");
                        failing = false;
                    }
                    backoff = Duration::from_millis(500);
                    if i64::try_from(n).unwrap_or(0) >= self.config.batch {
                        continue;
                    }
                    tokio::select! {
                        () = signal.notified() => {}
                        _ = commits.recv() => {}
                        () = tokio::time::sleep(self.config.idle_check) => {}
                        _ = shutdown.changed() => return,
                    }
                    if sleep_or_stop(self.config.linger, &mut shutdown).await {
                        return;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(sink = ?self.sink, error = %e, "analytics pump: events wait in the outbox");
                        failing = true;
                    }
                    if sleep_or_stop(backoff, &mut shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Sleeps `d`; true when shutdown came first.
async fn sleep_or_stop(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

/// Starts pumping `store`'s outbox into `sink`.
pub fn start(store: Arc<dyn Store>, sink: Sink, config: PumpConfig) -> TaskHandle {
    let pump = Pump::new(store, sink, config);
    TaskHandle::spawn(|shutdown| pump.run(shutdown))
}
