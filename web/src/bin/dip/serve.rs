//! Opening the store and serving the platform.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use broker_core::Broker;
use broker_core::catalogue::CatalogueData;
use broker_core::store::{self, Store};

use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::pump::{self, PumpConfig};
use dip_web::state::AppState;

use crate::config::Settings;

/// Opens the configured store, applies migrations and adds catalogue channels it lacks.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening the store at {}", settings.database_for_log()))?;
    store.migrate().await.context("applying migrations")?;
    // Without ClickHouse, events need no outbox: each is written once, where reports read.
    store.write_events_to_embedded(matches!(settings.analytics, Sink::Embedded));
    if let Sink::ClickHouse(clickhouse) = &settings.analytics {
        let applied = clickhouse
            .migrate()
            .await
            .with_context(|| format!("applying ClickHouse migrations at {}", clickhouse.describe()))?;
        if !applied.is_empty() {
            tracing::info!(?applied, "ClickHouse migrations applied");
        }
    }
    let added = broker_core::seed::seed_catalogue(store.as_ref(), &CatalogueData::seed()?).await?;
    if added > 0 {
        tracing::info!(added, "catalogue channels added");
    }
    Ok(store)
}

/// The whole application: the portal (pages, server functions, admin REST API) beside
/// the participant API.
pub fn app(broker: Broker, analytics: Analytics, settings: &Settings) -> Router {
    let state = AppState::new(
        broker,
        analytics,
        settings.site_dir.clone(),
        settings.sessions,
        settings.tls.is_some(),
    );
    dip_web::router::platform(state)
}

/// Something that runs beside the platform, such as the demo's simulated participants.
pub trait Companion {
    /// Stops it; called once the server and delivery have stopped.
    fn stop(self) -> impl Future<Output = ()>;
}

impl Companion for () {
    async fn stop(self) {}
}

/// Serves until interrupted (SIGINT or SIGTERM), finishing requests in flight.
pub async fn serve(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<()> {
    serve_with(settings, store, async |_| Ok(())).await
}

/// [`serve`], with a companion that `start` starts once the platform can take messages
/// and deliver them.
pub async fn serve_with<C: Companion>(
    settings: &Settings,
    store: Arc<dyn Store>,
    start: impl AsyncFnOnce(Broker) -> anyhow::Result<C>,
) -> anyhow::Result<()> {
    let node = &settings.delivery.node_id;
    // Held while this process lives: no second live process can deliver as this node.
    // Another node checking whether this identity is free (to take over its queues)
    // holds it for a moment: try again briefly before refusing.
    let mut hold = None;
    for attempt in 0..5 {
        hold = store.hold_node(node).await.context("holding the node identity")?;
        if hold.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    let _node_hold = hold.with_context(|| {
        format!("node id {node:?} is held by another live process on this store: give each node its own --node-id")
    })?;
    let broker = Broker::start(store, settings.broker.clone()).await?;
    let delivery = broker_core::delivery::start(broker.clone(), settings.delivery.clone())?;
    let analytics = Analytics::new(broker.store().clone(), settings.analytics.clone());
    let pump = pump::start(
        broker.store().clone(),
        settings.analytics.clone(),
        PumpConfig {
            owner: settings.delivery.node_id.clone(),
            ..Default::default()
        },
    );
    let alarms = dip_reporting::alarms::start(broker.clone(), analytics.clone(), settings.alarms.clone())
        .context("alarm settings")?;
    dip_admin::accounts::start_session_sweeper(broker.store().clone());
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        store = ?broker.store().backend(),
        environment = %settings.environment,
        node = %settings.delivery.node_id,
        analytics = ?settings.analytics,
        "DIP serving"
    );
    let companion = start(broker.clone()).await?;
    match &settings.tls {
        Some(tls) => {
            let config = broker_core::security::tls::server_config(tls).context("TLS settings")?;
            tracing::info!(
                client_certificates = if tls.require_client_cert {
                    "required"
                } else {
                    "optional"
                },
                "TLS on"
            );
            broker_core::security::tls::serve(listener, config, app(broker, analytics, settings), shutdown()).await;
        }
        None => {
            // The peer's address limits sign-in attempts per client.
            let service =
                app(broker, analytics, settings).into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown())
                .await?
        }
    }
    delivery.stop().await;
    companion.stop().await;
    alarms.stop().await;
    pump.stop().await;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
