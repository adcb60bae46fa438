//! The application state every request of the portal may need, and the parts of it the
//! admin and reporting crates' extractors take (`FromRef`), so those crates never see
//! this type.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::FromRef;
use broker_core::Broker;
use dip_admin::accounts::SessionPolicy;
use dip_reporting::analytics::Analytics;
use leptos::config::LeptosOptions;

/// Everything a request of the portal may need.
#[derive(Clone)]
pub struct AppState {
    /// The broker (store, registry, configuration).
    pub broker: Broker,
    /// Reports over the configured analytics sink.
    pub analytics: Analytics,
    /// Leptos' settings (where the browser bundle is).
    pub leptos: LeptosOptions,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Whether pages load the browser bundle (it was found at start).
    pub hydrate: bool,
    /// Whether the portal is served over TLS (cookies are then `Secure`).
    pub tls: bool,
    /// The origin of `--public-url`, where it is set: browsers reaching the portal
    /// through a proxy send it as their `Origin`.
    pub public_origin: Option<url::Origin>,
    /// Limits on sign-in attempts per client address.
    pub sign_ins: Arc<dip_admin::throttle::AddressLimits>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl FromRef<AppState> for Broker {
    fn from_ref(state: &AppState) -> Self {
        state.broker.clone()
    }
}

impl FromRef<AppState> for Analytics {
    fn from_ref(state: &AppState) -> Self {
        state.analytics.clone()
    }
}

impl FromRef<AppState> for SessionPolicy {
    fn from_ref(state: &AppState) -> Self {
        state.sessions
    }
}

impl AppState {
    /// The state for `broker` and its `analytics`, with the browser bundle looked for in
    /// `site_root`.
    pub fn new(broker: Broker, analytics: Analytics, site_root: PathBuf, sessions: SessionPolicy, tls: bool) -> Self {
        let leptos = LeptosOptions::builder()
            .output_name("dip")
            .site_root(site_root.to_string_lossy().to_string())
            .site_pkg_dir("pkg")
            .build();
        let bundle = site_root.join("pkg").join("dip_bg.wasm");
        let hydrate = bundle.is_file();
        if !hydrate {
            tracing::warn!(
                bundle = %bundle.display(),
                "browser bundle not found: pages are served without hydration (run scripts/build-site)"
            );
        }
        let public_origin = broker
            .config()
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple);
        Self {
            broker,
            analytics,
            leptos,
            sessions,
            hydrate,
            tls,
            public_origin,
            sign_ins: Arc::default(),
        }
    }
}
