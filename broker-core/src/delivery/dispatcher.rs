//! The node's dispatcher: leases webhook queues and runs one worker per leased queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;

use super::DeliveryConfig;
use super::context::Ctx;
use super::worker::Worker;
use crate::broker::Broker;
use crate::store::ALL_QUEUES;
use crate::task::TaskHandle;

/// A running worker as the dispatcher sees it.
struct Running {
    wake: Arc<Notify>,
    deadline: Arc<AtomicU64>,
}

pub(super) fn start(broker: Broker, config: DeliveryConfig) -> Result<TaskHandle, reqwest::Error> {
    let guard = super::destinations::GuardedResolver::new(Arc::new(config.destinations.clone()));
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some(identity) = &config.client_identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(identity.as_bytes())?);
    }
    if let Some(roots) = &config.extra_roots_pem {
        for root in reqwest::Certificate::from_pem_bundle(roots.as_bytes())? {
            builder = builder.add_root_certificate(root);
        }
    }
    let http = builder
        .dns_resolver(Arc::new(guard))
        // A proxy would connect on the webhook's behalf, past the address checks.
        .no_proxy()
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .user_agent(concat!("dip/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(TaskHandle::spawn(move |shutdown| {
        let ctx = Arc::new(Ctx {
            broker,
            http,
            config,
            epoch: Instant::now(),
            shutdown,
        });
        Dispatcher::new(ctx).run()
    }))
}

struct Dispatcher {
    ctx: Arc<Ctx>,
    workers: HashMap<String, Running>,
    tasks: JoinSet<(String, bool)>,
    /// Queues another node held when last asked, and when to ask again.
    elsewhere: HashMap<String, Instant>,
}

impl Dispatcher {
    fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            ctx,
            workers: HashMap::new(),
            tasks: JoinSet::new(),
            elsewhere: HashMap::new(),
        }
    }

    async fn run(mut self) {
        let mut notices = self.ctx.broker.store().subscribe();
        let mut directory = self.ctx.broker.registry_changes();
        let mut shutdown = self.ctx.shutdown.clone();
        let mut sweep = tokio::time::interval(self.ctx.config.sweep_interval);
        let mut renew = tokio::time::interval((self.ctx.config.lease_ttl / 6).max(Duration::from_millis(100)));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry = tokio::time::interval(self.ctx.config.sweep_interval * 12);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(self.ctx.config.liveness_interval);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.resume().await;
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(queues) if queues.iter().any(|q| q == ALL_QUEUES) => self.sweep().await,
                    Ok(queues) => self.wake(&queues).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.sweep().await,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = sweep.tick() => self.sweep().await,
                _ = expiry.tick() => self.expire_pull_queues().await,
                // An endpoint may have become a webhook, or its queue have moved.
                Ok(()) = directory.changed() => self.sweep().await,
                _ = renew.tick() => self.renew().await,
                _ = liveness.tick() => self.take_over_dead_nodes().await,
                Some(done) = self.tasks.join_next() => {
                    if let Ok((queue, more)) = done {
                        self.workers.remove(&queue);
                        // A worker that gave an idle queue up may have just missed a wake.
                        if more {
                            self.claim(vec![queue]).await;
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        // Workers see the shutdown too; wait for them to record their work and let go.
        for running in self.workers.values() {
            running.wake.notify_one();
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// Wakes the workers of `queues`, starting those this node can lease.
    async fn wake(&mut self, queues: &[String]) {
        let mut claim = Vec::new();
        for q in queues {
            match self.workers.get(q) {
                Some(running) => running.wake.notify_one(),
                None => claim.push(q.clone()),
            }
        }
        if !claim.is_empty() {
            self.claim(claim).await;
        }
    }

    /// Leases every queue with work that nobody holds (after letting in replay copies
    /// whose release a crash may have missed).
    async fn sweep(&mut self) {
        let now = crate::clock::now_micros();
        let broker = &self.ctx.broker;
        if let Err(e) = broker
            .replays()
            .release_held(None, broker.config().replay_batch, now)
            .await
        {
            tracing::warn!(error = %e, "replay release sweep failed");
        }
        match self.ctx.broker.queues().claimable_queues(now).await {
            Ok(queues) => {
                self.elsewhere.clear();
                let free: Vec<String> = queues.into_iter().filter(|q| !self.workers.contains_key(q)).collect();
                if !free.is_empty() {
                    self.claim(free).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "delivery sweep failed"),
        }
    }

    /// Dead-letters stale messages of pull queues nobody is pulling, so that their senders
    /// hear of them (a consumer that pulls meets them itself).
    async fn expire_pull_queues(&mut self) {
        let now = crate::clock::now_micros();
        let queues = match self.ctx.broker.queues().claimable_queues(now).await {
            Ok(q) => q,
            Err(e) => return tracing::warn!(error = %e, "pull queue expiry failed"),
        };
        let registry = self.ctx.broker.registry();
        for q in queues
            .iter()
            .filter(|q| registry.endpoint(q).is_none_or(|e| e.url.is_none()))
        {
            if let Err(e) = super::pull::head(&self.ctx.broker, q, 1, now).await {
                tracing::warn!(queue = %q, error = %e, "pull queue expiry failed");
            }
        }
    }

    async fn claim(&mut self, queues: Vec<String>) {
        let registry = self.ctx.broker.registry();
        let now = Instant::now();
        let webhook: Vec<String> = queues
            .into_iter()
            .filter(|q| !self.workers.contains_key(q))
            .filter(|q| self.elsewhere.get(q).is_none_or(|until| *until <= now))
            .filter(|q| registry.endpoint(q).is_some_and(|e| e.url.is_some()))
            .collect();
        if webhook.is_empty() {
            return;
        }
        let start_ms = self.ctx.now_ms();
        let now_us = crate::clock::now_micros();
        let until = now_us.saturating_add(i64::try_from(self.ctx.config.lease_ttl.as_micros()).unwrap_or(i64::MAX));
        let held = match self
            .ctx
            .broker
            .queues()
            .claim_queues(&self.ctx.config.node_id, &webhook, now_us, until)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease queues");
                return;
            }
        };
        for q in webhook {
            if held.contains(&q) {
                let running = Running {
                    wake: Arc::new(Notify::new()),
                    deadline: Arc::new(AtomicU64::new(self.ctx.deadline(start_ms))),
                };
                let worker = Worker::new(
                    self.ctx.clone(),
                    q.clone(),
                    running.wake.clone(),
                    running.deadline.clone(),
                );
                self.tasks.spawn(worker.run());
                self.workers.insert(q, running);
            } else {
                // Held elsewhere: the sweep takes it over if that node dies.
                self.elsewhere.insert(q, now + Duration::from_secs(1));
            }
        }
    }

    /// Takes back at once the queues still leased to this node's identity: a node
    /// restarted under its own name (which `Store::hold_node` keeps to one live process)
    /// need not wait for its previous incarnation's leases to expire.
    async fn resume(&mut self) {
        match self.renew_all().await {
            Ok(held) if !held.is_empty() => {
                tracing::info!(queues = held.len(), node = %self.ctx.config.node_id, "resuming this node's queues");
                self.claim(held).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot resume this node's queues"),
        }
    }

    /// Claims the queues of nodes found gone (their identity lock free), without waiting
    /// for their leases to expire.
    async fn take_over_dead_nodes(&mut self) {
        let now = crate::clock::now_micros();
        let released = match self
            .ctx
            .broker
            .store()
            .release_dead_nodes(&self.ctx.config.node_id, now)
            .await
        {
            Ok(r) => r,
            Err(e) => return tracing::warn!(error = %e, "cannot look for nodes that are gone"),
        };
        for (node, queues) in released {
            tracing::warn!(%node, queues = queues.len(), "node gone: taking its queues over");
            for q in &queues {
                self.elsewhere.remove(q);
            }
            self.claim(queues).await;
        }
    }

    /// Extends every lease in this node's name by the TTL; the queues still held.
    async fn renew_all(&self) -> crate::store::Result<Vec<String>> {
        let until = crate::clock::now_micros()
            .saturating_add(i64::try_from(self.ctx.config.lease_ttl.as_micros()).unwrap_or(i64::MAX));
        self.ctx
            .broker
            .queues()
            .renew_leases(&self.ctx.config.node_id, until)
            .await
    }

    /// Extends this node's leases; a worker whose lease was lost stops.
    async fn renew(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        let start_ms = self.ctx.now_ms();
        match self.renew_all().await {
            Ok(held) => {
                for (queue, running) in &self.workers {
                    if held.contains(queue) {
                        running.deadline.store(self.ctx.deadline(start_ms), Ordering::Release);
                    } else {
                        running.deadline.store(0, Ordering::Release);
                        running.wake.notify_one();
                    }
                }
            }
            // Workers stop by themselves when their deadline passes.
            Err(e) => tracing::warn!(error = %e, "cannot renew queue leases"),
        }
    }
}
