//! `dip bench replay`: what a large replay does to live traffic on the same queue. One
//! recipient with a webhook sink on loopback receives a backlog of messages; then a replay
//! of all of them starts while live messages keep arriving at a fixed rate. Printed per
//! store and replay batch size (`BrokerConfig::replay_batch`; a batch as large as the
//! replay is the same as no pacing): the live messages' receipt-to-delivery latency, and
//! how long the replay took to drain.

use broker_core::model::Principal;
use broker_core::replay::{self, ReplayRequest};
use clap::Args;

use super::*;

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    stores: StoreChoice,
    /// Messages the recipient receives first, then has replayed.
    #[arg(long, default_value_t = 5000)]
    backlog: usize,
    /// Live messages per second during the replay.
    #[arg(long, default_value_t = 20.0)]
    live_rate: f64,
    /// Seconds of live traffic.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Replay batch sizes to compare (one as large as the backlog means no pacing).
    #[arg(long, value_delimiter = ',', default_value = "20,1000000")]
    batches: Vec<i64>,
    /// Longest wait, in seconds, for everything to be delivered.
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
}

pub(super) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let route = &ROUTES[0];
    println!(
        "dip bench replay: {} messages {}→{} then replayed, live messages at {}/s for {} s meanwhile, {} cores",
        args.backlog,
        route.channel,
        route.recipient,
        args.live_rate,
        args.seconds,
        cores()
    );
    for &kind in &args.stores.stores {
        for &batch in &args.batches {
            anyhow::ensure!(batch >= 1, "--batches must be at least 1");
            let config = BrokerConfig {
                replay_batch: batch,
                ..BrokerConfig::default()
            };
            let platform = Platform::start_with(kind, &args.stores.pg_admin_url, config).await?;
            let result = measure(&platform, &args).await;
            platform.stop().await?;
            let (live, drain, replayed) = result.with_context(|| format!("{kind:?} batch {batch}"))?;
            println!(
                "store={:<8} batch={:<8} live_ms {} replay: {} copies in {:.1} s ({:.0}/s)",
                store_name(kind),
                batch,
                percentiles(&live),
                replayed,
                drain.as_secs_f64(),
                replayed as f64 / drain.as_secs_f64().max(1e-9),
            );
        }
    }
    Ok(())
}

/// The backlog, then the replay with live traffic beside it: the live messages' latency,
/// the replay's drain time and its copies.
async fn measure(platform: &Platform, args: &ReplayArgs) -> anyhow::Result<(Histogram<u64>, Duration, usize)> {
    let route = &ROUTES[0];
    let sink = MockRecipient::start(false).await?;
    platform
        .broker
        .directory()
        .put_endpoint(&Endpoint {
            id: route.queue(),
            dip_id: route.recipient.to_owned(),
            name: "default".to_owned(),
            url: Some(sink.url()),
            channels: vec![],
        })
        .await?;
    platform.broker.reload().await?;
    let loopback = "127.0.0.0/8".parse().context("loopback range")?;
    let delivering = delivery::start(
        platform.broker.clone(),
        DeliveryConfig {
            destinations: delivery::destinations::Destinations::allowing(vec![loopback]),
            ..DeliveryConfig::default()
        },
    )?;
    let key: Arc<str> = DirectoryData::demo()?
        .key_of(route.sender)
        .context("demo sender")?
        .into();
    let http = http_client(64)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout);
    let wait_for = |n: usize| {
        let sink = &sink;
        async move {
            while sink.delivered().len() < n {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "only {} of {n} delivered",
                    sink.delivered().len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };

    // The backlog, 64 requests at a time.
    let from = chrono::Utc::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (http, url, key, next, run_id) = (
            http.clone(),
            platform.url.clone(),
            key.clone(),
            next.clone(),
            run_id.clone(),
        );
        let total = args.backlog as u64;
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let body = serde_json::to_vec(&[ROUTES[0].item(&format!("b{run_id}-{i}"))]).expect("json");
                post(&http, &url, &key, body).await;
            }
        });
    }
    while senders.join_next().await.is_some() {}
    wait_for(args.backlog).await?;

    // The replay, then live messages on schedule while it drains.
    let request = ReplayRequest {
        interface_id: route.channel.to_owned(),
        start_transaction_id: None,
        from_time: Some(from),
        end_transaction_id: None,
        to_time: None,
        recipient_dip_id: Some(route.recipient.to_owned()),
        dry_run: false,
    };
    let operator = Principal::Operator { name: "bench".into() };
    let outcome = replay::replay(&platform.broker, &operator, "operator:bench", &request)
        .await
        .map_err(|e| anyhow::anyhow!("replay refused: {e:?}"))?;
    let replayed = usize::try_from(outcome.messages).unwrap_or(0);
    let live_total = (args.live_rate * args.seconds as f64).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.live_rate.max(0.001));
    let mut live = HashSet::new();
    let mut tick = tokio::time::interval(period);
    for i in 0..live_total {
        tick.tick().await;
        let body = serde_json::to_vec(&[route.item(&format!("l{run_id}-{i}"))]).expect("json");
        let answer = post(&http, &platform.url, &key, body)
            .await
            .context("a live message was refused")?;
        let answer: Value = serde_json::from_slice(&answer)?;
        let id = answer
            .pointer("/results/0/transactionID")
            .and_then(Value::as_str)
            .context("no id")?;
        live.insert(id.to_owned());
    }
    wait_for(args.backlog + replayed + live.len()).await?;
    let delivered = sink.delivered();
    let copies: Vec<_> = delivered
        .iter()
        .filter(|r| r.transaction_id.starts_with("R-"))
        .collect();
    anyhow::ensure!(
        copies.len() == replayed,
        "{} of {replayed} copies delivered",
        copies.len()
    );
    // A copy's D0 is stamped when the replay ran: the last copy's latency is the drain.
    let drain = Duration::from_micros(
        copies
            .iter()
            .map(|r| u64::try_from(r.latency_us.max(0)).unwrap_or(0))
            .max()
            .unwrap_or(0),
    );

    let mut latency = histogram();
    for r in delivered.iter().filter(|r| live.contains(&r.transaction_id)) {
        record(
            &mut latency,
            Duration::from_micros(u64::try_from(r.latency_us.max(0)).unwrap_or(0)),
        );
    }
    delivering.stop().await;
    Ok((latency, drain, replayed))
}
