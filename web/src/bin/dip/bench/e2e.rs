//! `dip bench e2e`: ingest and delivery, to one webhook recipient per queue on loopback,
//! measured from receipt (`D0.transactionTimestamp`) to arrival at the recipient. Messages
//! go round-robin over targeted channels to K distinct recipients, one item per request.
//! A closed-loop saturation phase finds the end-to-end rate; open-loop phases then offer
//! fixed rates (a request is sent on schedule whatever the earlier ones are doing, and its
//! latency counts from the schedule, so a stalled server cannot hide its stall). Each
//! phase also checks what recipients can see: every accepted message delivered, per-queue
//! order, duplicates, and no queue delivered by two requests at once. Before each store's
//! phases, the raw-SQL baseline R ([`super::baseline`]) is measured on the same kind of
//! database, and the saturation rate B is printed as B/R.

use clap::Args;

use super::*;

#[derive(Args)]
pub struct E2eArgs {
    #[command(flatten)]
    stores: StoreChoice,
    /// Measured seconds per phase (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds per phase, left out of every figure.
    #[arg(long, default_value_t = 1)]
    warm_up: u64,
    /// Closed-loop clients of the saturation phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Distinct recipient queues, each with its own webhook sink.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=ROUTES.len() as i64))]
    recipients: u8,
    /// Open-loop phases at these fractions of the measured saturation rate.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,1.0")]
    fractions: Vec<f64>,
    /// Open-loop phases at these offered rates (messages/s) instead of fractions of saturation.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Skip the saturation phase (only with --rates).
    #[arg(long, requires = "rates")]
    no_saturation: bool,
    /// Longest wait, in seconds, for the backlog to be delivered after a phase.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Most requests in flight in an open-loop phase; a request due beyond it is not sent
    /// and counts as an error.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// Skip the raw-SQL baseline R (then no B/R is printed).
    #[arg(long)]
    no_baseline: bool,
    /// Sign every webhook with an RSA-2048 platform key made for the run, as production
    /// does (each call's signature is then kept as evidence too).
    #[arg(long)]
    sign: bool,
    /// `on`: lifecycle events are written with each change into the embedded analytics
    /// table, as `dip serve` does without ClickHouse (the pump runs, with nothing to move);
    /// `outbox`: they are written to the outbox and the pump moves them to the embedded
    /// table, as events bound for ClickHouse go; `off`: no events, no pump (benchmark only:
    /// the differences are what analytics costs the message path).
    #[arg(long, value_enum, default_value = "on")]
    analytics: Switch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Outbox,
    Off,
}

#[derive(Debug, Clone, Copy)]
enum Load {
    /// Closed-loop clients, as many requests as the platform answers.
    Saturation { clients: usize },
    /// A fixed offered rate, messages per second.
    Open { rate: f64 },
}

/// What recipients saw, checked against what the platform accepted.
#[derive(Debug, Default)]
struct Check {
    /// Messages the platform accepted (202).
    accepted: usize,
    /// 2xx webhook requests.
    delivered: usize,
    /// Accepted messages no recipient received.
    undelivered: usize,
    /// Second and later deliveries of a message.
    duplicates: usize,
    /// Deliveries whose `X-DIP-Sequence` was not above the queue's previous one.
    out_of_order: usize,
    /// Requests that arrived while another of the same queue was in progress.
    overlaps: usize,
    /// Deliveries to a queue other than the message's recipient.
    misrouted: usize,
    /// Deliveries of transactions the generator was never told of.
    unknown: usize,
    /// Measured deliveries without a readable `D0.transactionTimestamp`.
    no_timestamp: usize,
}

impl Check {
    fn passed(&self) -> bool {
        self.undelivered + self.duplicates + self.out_of_order + self.overlaps + self.misrouted + self.unknown == 0
    }
}

struct Phase {
    store: StoreKind,
    load: Load,
    window: Window,
    /// 2xx deliveries per second during the measured window (any message).
    delivered_per_s: f64,
    /// From the end of the load until every accepted message was delivered (`None`: not
    /// within the drain timeout).
    drain: Option<Duration>,
    /// Receipt to arrival at the recipient, messages sent in the measured window.
    delivery: Histogram<u64>,
    check: Check,
}

impl Phase {
    fn ingest_per_s(&self) -> f64 {
        self.window.per_second(self.window.messages)
    }

    /// What the platform carried end to end: it cannot deliver more than it took in.
    fn end_to_end_per_s(&self) -> f64 {
        self.ingest_per_s().min(self.delivered_per_s)
    }

    fn label(&self) -> String {
        match self.load {
            Load::Saturation { clients } => format!("saturation clients={clients}"),
            Load::Open { rate } => format!("open offered/s={rate:.0}"),
        }
    }

    fn drain_text(&self) -> String {
        self.drain
            .map_or_else(|| "timeout".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
    }
}

pub(super) async fn run(args: E2eArgs) -> anyhow::Result<()> {
    let routes = &ROUTES[..usize::from(args.recipients)];
    println!(
        "dip bench e2e: one message per request to {} recipient queue(s) ({}) with webhook sinks on loopback, \
         {} s per phase after {} s of warm-up, {} cores, webhooks {}, analytics {}",
        routes.len(),
        routes
            .iter()
            .map(|r| format!("{}→{}", r.channel, r.recipient))
            .collect::<Vec<_>>()
            .join(" "),
        args.seconds,
        args.warm_up,
        cores(),
        if args.sign { "signed (RSA-2048)" } else { "unsigned" },
        match args.analytics {
            Switch::On => "on (events written into the embedded table)",
            Switch::Outbox => "through the outbox (events written to the outbox, the pump moving them)",
            Switch::Off => "off (no events, no pump)",
        }
    );
    broker_core::events::record_for_benchmark(args.analytics != Switch::Off);
    let config = broker_config(&args)?;
    let mut phases = Vec::new();
    let mut ratios = Vec::new();
    for &kind in &args.stores.stores {
        let baseline = if args.no_baseline {
            None
        } else {
            Some(baseline::measure(kind, &args.stores.pg_admin_url, args.seconds).await?)
        };
        let mut rates = args.rates.clone();
        if !args.no_saturation {
            let saturation = phase(kind, Load::Saturation { clients: args.clients }, &args, &config)
                .await
                .with_context(|| format!("{kind:?} saturation"))?;
            print_phase(&saturation);
            let rate = saturation.end_to_end_per_s();
            println!(
                "store={:<8} saturation end to end: {rate:.0} messages/s (lower of ingest and delivery)",
                store_name(kind)
            );
            if let Some(r) = baseline {
                println!(
                    "store={:<8} B/R = {rate:.0} / {r:.0} = {:.2}",
                    store_name(kind),
                    rate / r
                );
                ratios.push((kind, rate, r));
            }
            if rates.is_empty() {
                rates = args.fractions.iter().map(|f| (f * rate).max(1.0)).collect();
            }
            phases.push(saturation);
        }
        for rate in rates {
            let open = phase(kind, Load::Open { rate }, &args, &config)
                .await
                .with_context(|| format!("{kind:?} at {rate:.0}/s"))?;
            print_phase(&open);
            phases.push(open);
        }
    }
    print_summary(&phases);
    if !ratios.is_empty() {
        println!();
        println!("| store | saturation B msg/s | raw-SQL baseline R msg/s | B/R |");
        println!("|---|---:|---:|---:|");
        for (kind, b, r) in ratios {
            println!("| {} | {b:.0} | {r:.0} | {:.2} |", store_name(kind), b / r);
        }
    }
    let failed = phases.iter().filter(|p| !p.check.passed()).count();
    if failed > 0 {
        anyhow::bail!("the delivery check failed in {failed} phase(s)");
    }
    Ok(())
}

fn print_phase(p: &Phase) {
    let w = &p.window;
    println!(
        "store={:<8} {:<24} ingest/s={:>7.0} delivered/s={:>7.0} drain_s={:>7} ingest_ms {} delivery_ms {}",
        store_name(p.store),
        p.label(),
        p.ingest_per_s(),
        p.delivered_per_s,
        p.drain_text(),
        percentiles(&w.latency),
        percentiles(&p.delivery),
    );
    let c = &p.check;
    println!(
        "    check {}: requests={} errors={} accepted={} delivered={} undelivered={} duplicates={} out_of_order={} \
         overlaps={} misrouted={} unknown={} no_timestamp={}",
        if c.passed() { "ok" } else { "FAILED" },
        w.requests,
        w.errors,
        c.accepted,
        c.delivered,
        c.undelivered,
        c.duplicates,
        c.out_of_order,
        c.overlaps,
        c.misrouted,
        c.unknown,
        c.no_timestamp,
    );
}

/// The figures again as a Markdown table, for docs/performance.md.
fn print_summary(phases: &[Phase]) {
    println!();
    println!(
        "| store | phase | ingest msg/s | delivered msg/s | drain s | ingest p99 ms | delivery p50 ms | p90 ms | p99 ms | max ms | errors | check |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in phases {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            store_name(p.store),
            p.label(),
            p.ingest_per_s(),
            p.delivered_per_s,
            p.drain_text(),
            ms(&p.window.latency, 0.99),
            ms(&p.delivery, 0.50),
            ms(&p.delivery, 0.90),
            ms(&p.delivery, 0.99),
            p.delivery.max() as f64 / 1000.0,
            p.window.errors,
            if p.check.passed() { "ok" } else { "FAILED" },
        );
    }
}

/// An accepted message: transaction id, route index, sent in the measured window.
type Accepted = (String, usize, bool);

fn delivered_count(sinks: &[MockRecipient]) -> usize {
    sinks.iter().map(|s| s.delivered().len()).sum()
}

/// The platform's settings for every phase: with a signing key made once for the run
/// when webhooks are signed.
fn broker_config(args: &E2eArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if args.sign {
        let identity = broker_core::security::authority::signing_identity("bench platform", "DEV", 2)?;
        let signer = broker_core::security::signature::Signer::new(
            &identity.cert_pem,
            identity.key_pem.as_deref().unwrap_or_default(),
        )?;
        config.signer = Some(Arc::new(signer));
    }
    Ok(config)
}

/// One phase on a fresh platform, which is removed afterwards whatever happened.
async fn phase(kind: StoreKind, load: Load, args: &E2eArgs, config: &BrokerConfig) -> anyhow::Result<Phase> {
    let platform = Platform::start_with(kind, &args.stores.pg_admin_url, config.clone()).await?;
    let phase = run_phase(&platform, kind, load, args).await;
    platform.stop().await?;
    phase
}

/// Webhook sinks for the recipients, delivery running, the load, then the wait until
/// everything accepted was delivered.
async fn run_phase(platform: &Platform, kind: StoreKind, load: Load, args: &E2eArgs) -> anyhow::Result<Phase> {
    let routes = &ROUTES[..usize::from(args.recipients)];
    let mut sinks = Vec::new();
    for r in routes {
        let sink = MockRecipient::start(false).await?;
        platform
            .broker
            .directory()
            .put_endpoint(&Endpoint {
                id: r.queue(),
                dip_id: r.recipient.to_owned(),
                name: "default".to_owned(),
                url: Some(sink.url()),
                channels: vec![],
            })
            .await?;
        sinks.push(sink);
    }
    platform.broker.reload().await?;
    let sinks = Arc::new(sinks);
    let loopback = "127.0.0.0/8".parse().context("loopback range")?;
    let config = DeliveryConfig {
        // The sinks listen on loopback, which webhooks may reach only when allow-listed.
        destinations: delivery::destinations::Destinations::allowing(vec![loopback]),
        ..DeliveryConfig::default()
    };
    let delivering = delivery::start(platform.broker.clone(), config)?;
    let pump = (args.analytics != Switch::Off).then(|| {
        let store = platform.broker.store().clone();
        store.write_events_to_embedded(args.analytics == Switch::On);
        dip_reporting::pump::start(store, dip_reporting::analytics::Sink::Embedded, Default::default())
    });

    let demo = DirectoryData::demo()?;
    let keys: Arc<[String]> = routes
        .iter()
        .map(|r| demo.key_of(r.sender).map(str::to_owned).context("demo sender"))
        .collect::<anyhow::Result<_>>()?;
    let accepted: Arc<Mutex<Vec<Accepted>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let (warm_up, measured) = (Duration::from_secs(args.warm_up), Duration::from_secs(args.seconds));
    let http = http_client(match load {
        Load::Saturation { clients } => clients,
        Load::Open { .. } => args.max_in_flight,
    })?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let url = platform.url.clone();
    let send = {
        let accepted = accepted.clone();
        move |measuring: bool| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let r = usize::try_from(i).unwrap_or_default() % keys.len();
            let body = serde_json::to_vec(&[ROUTES[r].item(&format!("e{run_id}-{i}"))]).expect("json");
            let (http, url, keys, accepted) = (http.clone(), url.clone(), keys.clone(), accepted.clone());
            async move {
                let answer = post(&http, &url, &keys[r], body).await?;
                let answer: Value = serde_json::from_slice(&answer).ok()?;
                let transaction = answer.pointer("/results/0/transactionID")?.as_str()?.to_owned();
                lock(&accepted).push((transaction, r, measuring));
                Some(1)
            }
        }
    };

    // Deliveries counted at the edges of the measured window, on the same clock as the load.
    let sampler = {
        let sinks = sinks.clone();
        tokio::spawn(async move {
            tokio::time::sleep(warm_up).await;
            let (from, at_from) = (Instant::now(), delivered_count(&sinks));
            tokio::time::sleep(measured).await;
            let (to, at_to) = (Instant::now(), delivered_count(&sinks));
            (at_to - at_from) as f64 / (to - from).as_secs_f64()
        })
    };
    let window = match load {
        Load::Saturation { clients } => closed_loop(clients, warm_up, measured, move |_, _, m| send(m)).await?,
        Load::Open { rate } => open_loop(rate, warm_up, measured, args.max_in_flight, move |_, m| send(m)).await?,
    };
    let load_end = Instant::now();
    let delivered_per_s = sampler.await?;

    let accepted = std::mem::take(&mut *lock(&accepted));
    let expected: HashMap<&str, (usize, bool)> = accepted.iter().map(|(t, r, m)| (t.as_str(), (*r, *m))).collect();
    let deadline = load_end + Duration::from_secs(args.drain_timeout);
    let drain = loop {
        if delivered_count(&sinks) >= expected.len() && all_delivered(&sinks, &expected) {
            break Some(load_end.elapsed());
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    delivering.stop().await;
    if let Some(pump) = pump {
        pump.stop().await;
    }
    let (check, delivery) = check(routes, &sinks, &expected);
    Ok(Phase {
        store: kind,
        load,
        window,
        delivered_per_s,
        drain,
        delivery,
        check,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn all_delivered(sinks: &[MockRecipient], expected: &HashMap<&str, (usize, bool)>) -> bool {
    let mut seen = HashSet::new();
    for sink in sinks {
        for r in sink.delivered() {
            if expected.contains_key(r.transaction_id.as_str()) {
                seen.insert(r.transaction_id);
            }
        }
    }
    seen.len() == expected.len()
}

/// Checks what every sink received against the accepted messages; the delivery latency of
/// first deliveries of measured messages.
fn check(
    routes: &[Route],
    sinks: &[MockRecipient],
    expected: &HashMap<&str, (usize, bool)>,
) -> (Check, Histogram<u64>) {
    let mut c = Check {
        accepted: expected.len(),
        ..Check::default()
    };
    let mut latency = histogram();
    let mut seen: HashSet<String> = HashSet::new();
    for (index, sink) in sinks.iter().enumerate() {
        c.overlaps += sink.overlaps();
        let queue = routes[index].queue();
        let mut last_seq: HashMap<String, i64> = HashMap::new();
        for r in sink.delivered() {
            c.delivered += 1;
            if let Some(previous) = last_seq.insert(r.queue.clone(), r.seq)
                && r.seq <= previous
            {
                c.out_of_order += 1;
            }
            let Some(&(route, measured)) = expected.get(r.transaction_id.as_str()) else {
                c.unknown += 1;
                continue;
            };
            if route != index || r.queue != queue {
                c.misrouted += 1;
            }
            if !seen.insert(r.transaction_id) {
                c.duplicates += 1;
                continue;
            }
            if measured {
                match u64::try_from(r.latency_us) {
                    Ok(us) => latency.saturating_record(us.max(1)),
                    Err(_) => c.no_timestamp += 1,
                }
            }
        }
    }
    c.undelivered = expected.len() - seen.len();
    (c, latency)
}
