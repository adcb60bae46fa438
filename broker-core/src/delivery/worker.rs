//! One queue's worker: sends the entries in order, one at a time, and records outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::context::Ctx;
use super::report::Reason;
use super::webhook::{self, Answer};
use crate::store::{AttemptFailure, EntryState, NewMessage, Outbound, Settlement};

pub(super) struct Worker {
    ctx: Arc<Ctx>,
    queue: String,
    wake: Arc<Notify>,
    deadline: Arc<AtomicU64>,
    /// Deliveries not yet written.
    delivered: Vec<Settlement>,
    /// When the oldest of them was made.
    unflushed_since: Option<tokio::time::Instant>,
    /// Position of the last entry handled; later reads start after it.
    cursor: i64,
    /// A replay copy was settled since the queue last took held copies in.
    replay_settled: bool,
}

/// What to do after an entry.
enum Next {
    Continue,
    Stop,
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, queue: String, wake: Arc<Notify>, deadline: Arc<AtomicU64>) -> Self {
        Self {
            ctx,
            queue,
            wake,
            deadline,
            delivered: Vec::new(),
            unflushed_since: None,
            cursor: 0,
            replay_settled: false,
        }
    }

    /// Runs until the queue has been idle a while, the lease is lost or the node stops.
    /// Returns the queue and whether it may have work left.
    pub async fn run(mut self) -> (String, bool) {
        let more = self.drain().await;
        self.flush(&[], vec![]).await;
        if let Err(e) = self
            .ctx
            .broker
            .queues()
            .release_queue(&self.ctx.config.node_id, &self.queue)
            .await
        {
            tracing::warn!(queue = %self.queue, error = %e, "cannot release queue lease");
        }
        (self.queue, more)
    }

    fn stopping(&self) -> bool {
        *self.ctx.shutdown.borrow()
    }

    /// Whether the lease outlasts one more attempt.
    fn may_send(&self) -> bool {
        let timeout = u64::try_from(self.ctx.config.request_timeout.as_millis()).unwrap_or(u64::MAX);
        self.ctx.now_ms().saturating_add(timeout) < self.deadline.load(Ordering::Acquire)
    }

    async fn drain(&mut self) -> bool {
        let mut shutdown = self.ctx.shutdown.clone();
        let mut read = true;
        loop {
            if self.stopping() || !self.may_send() {
                return false;
            }
            if read {
                let batch = match self
                    .ctx
                    .broker
                    .queues()
                    .next_outbound(&self.queue, self.cursor, self.ctx.config.fetch)
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(queue = %self.queue, error = %e, "cannot read queue");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= self.ctx.config.fetch;
                for out in batch {
                    let replay = out.entry.replay_id.is_some();
                    match self.deliver(out).await {
                        Next::Continue => self.replay_settled |= replay,
                        Next::Stop => return false,
                    }
                    // Settled and written already (returned, dead-lettered): the next
                    // replay copies may join now.
                    if replay && self.delivered.is_empty() {
                        self.release_replays().await;
                    }
                    if self.delivered.len() >= self.ctx.config.flush_every || self.flush_due() {
                        self.flush(&[], vec![]).await;
                    }
                }
                // A short batch was the whole queue: anything committed since wakes us.
                if full {
                    continue;
                }
            }
            read = true;
            // Deliveries are written at the latest `flush_interval` after the first of
            // them, so that a trickle of messages does not cost a transaction each.
            let flush_at = self.unflushed_since.map(|t| t + self.ctx.config.flush_interval);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)), if flush_at.is_some() => {
                    self.flush(&[], vec![]).await;
                    read = false;
                }
                _ = tokio::time::sleep(self.ctx.config.idle_release), if flush_at.is_none() => return true,
                _ = shutdown.changed() => return false,
            }
        }
    }

    fn flush_due(&self) -> bool {
        self.unflushed_since
            .is_some_and(|t| t.elapsed() >= self.ctx.config.flush_interval)
    }

    /// Delivers one entry, retrying until it is delivered, returned or dead-lettered.
    async fn deliver(&mut self, mut out: Outbound) -> Next {
        let broker = self.ctx.broker.clone();
        loop {
            let now = crate::clock::now_micros();
            if let Some((settlement, report)) = super::expire(&broker, &out, now) {
                self.flush(&[settlement], report.into_iter().collect()).await;
                self.cursor = out.entry.seq;
                return Next::Continue;
            }
            if self.stopping() || !self.may_send() {
                return Next::Stop;
            }
            // The endpoint may have been changed or turned to pull since the queue was leased.
            let Some(url) = broker.registry().endpoint(&self.queue).and_then(|e| e.url.clone()) else {
                return Next::Stop;
            };
            let body = match super::recipient_body(&broker, &out) {
                Ok(b) => b,
                Err(e) => {
                    // It cannot be sent (unreadable archive, no certificate to encrypt to):
                    // keep it out of the way of the rest of the queue.
                    tracing::error!(queue = %self.queue, seq = out.entry.seq, error = %e, "message undeliverable");
                    let (settlement, report) = super::dead_letter(
                        &broker,
                        &out,
                        crate::clock::now_micros(),
                        &format!("undeliverable: {e}"),
                        "PLATFORM_ERROR",
                        format!("the platform could not prepare the message for its recipient: {e}"),
                    );
                    self.flush(&[settlement], report.into_iter().collect()).await;
                    self.cursor = out.entry.seq;
                    return Next::Continue;
                }
            };
            let config = &self.ctx.config;
            let signer = broker.config().signer.as_deref();
            let started = std::time::Instant::now();
            let (answer, call) = webhook::send(&self.ctx.http, &config.destinations, signer, &url, &out, body).await;
            let at = crate::clock::now_micros();
            let duration_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
            match answer {
                Answer::Delivered { .. } => {
                    self.unflushed_since.get_or_insert_with(tokio::time::Instant::now);
                    self.delivered.push(Settlement {
                        queue_id: self.queue.clone(),
                        seq: out.entry.seq,
                        state: EntryState::Delivered,
                        at,
                        outcome: answer.outcome(),
                        duration_us,
                        call: Some(call),
                    });
                    self.cursor = out.entry.seq;
                    return Next::Continue;
                }
                Answer::Rejected { status, ref errors } => {
                    out.entry.attempts += 1;
                    let report = super::returned(
                        &broker,
                        out.origin.as_ref(),
                        &out.entry,
                        &out.interface_id,
                        Reason::RecipientRejected,
                        Some(status),
                        errors.clone(),
                        "",
                    );
                    let settlement = Settlement {
                        queue_id: self.queue.clone(),
                        seq: out.entry.seq,
                        state: EntryState::Returned,
                        at,
                        outcome: answer.outcome(),
                        duration_us,
                        call: Some(call),
                    };
                    self.flush(&[settlement], report.into_iter().collect()).await;
                    self.cursor = out.entry.seq;
                    return Next::Continue;
                }
                Answer::Retry {
                    ref outcome,
                    retry_after,
                } => {
                    out.entry.attempts += 1;
                    out.entry.last_outcome = Some(outcome.clone());
                    let policy = super::policy(&broker, &out.interface_id);
                    let delay = retry_after.unwrap_or_else(|| super::backoff(&policy, out.entry.attempts));
                    // Wake at the staleness limit at the latest, to dead-letter on time.
                    let until_stale = super::stale_at(&policy, &out).saturating_sub(at).max(0);
                    let delay = delay.min(Duration::from_micros(u64::try_from(until_stale).unwrap_or(0)));
                    let retry_at = at.saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
                    self.flush(&[], vec![]).await;
                    let failure = AttemptFailure {
                        queue_id: self.queue.clone(),
                        seq: out.entry.seq,
                        at,
                        outcome: outcome.clone(),
                        retry_at,
                        duration_us,
                        call: Some(call),
                    };
                    if let Err(e) = broker.queues().record_failure(&failure).await {
                        tracing::warn!(queue = %self.queue, error = %e, "cannot record failed attempt");
                    }
                    tracing::debug!(queue = %self.queue, seq = out.entry.seq, %outcome, ?delay, "delivery failed; will retry");
                    let mut shutdown = self.ctx.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return Next::Stop,
                    }
                }
            }
        }
    }

    /// Writes the deliveries made so far with `extra` settlements and their reports, in
    /// one transaction. On failure the deliveries are kept to write later; the others
    /// are retried a few times, after which the entries stay pending and are sent again
    /// (at least once).
    async fn flush(&mut self, extra: &[Settlement], reports: Vec<NewMessage>) {
        if self.delivered.is_empty() && extra.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.delivered);
        let kept = all.len();
        all.extend_from_slice(extra);
        for attempt in 0..5 {
            match self.ctx.broker.queues().settle(&all, &reports).await {
                Ok(()) => {
                    self.unflushed_since = None;
                    self.release_replays().await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(queue = %self.queue, error = %e, attempt, "cannot record deliveries");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        all.truncate(kept);
        self.delivered = all;
    }

    /// Lets the next batch of held replay copies join the queue once the last one is
    /// settled (`ReplayStore::release_held`); their commit wakes this worker.
    async fn release_replays(&mut self) {
        if !std::mem::take(&mut self.replay_settled) {
            return;
        }
        let broker = &self.ctx.broker;
        let queues = [self.queue.clone()];
        let batch = broker.config().replay_batch;
        if let Err(e) = broker
            .replays()
            .release_held(Some(&queues), batch, crate::clock::now_micros())
            .await
        {
            // The dispatcher's sweep releases them later.
            tracing::warn!(queue = %self.queue, error = %e, "cannot release held replay copies");
        }
    }
}
