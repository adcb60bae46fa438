//! The server side of the portal: state, sessions, sign-in, the administrative actions
//! and their REST API, and the router that serves pages, server functions and assets
//! beside the participant API.

pub mod accounts;
pub mod admin;
pub mod alarms;
pub mod charts;
pub mod ctx;
pub mod reports;
pub mod rest;
pub mod sessions;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use broker_core::ingest::Broker;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::app::{App, shell};
pub use accounts::SessionPolicy;

/// The stylesheet of the design system, compiled in.
const STYLESHEET: &str = include_str!("../../../style/dip.css");

/// Everything a request of the portal may need.
#[derive(Clone)]
pub struct AppState {
    /// The broker (store, registry, configuration).
    pub broker: Broker,
    /// Leptos' settings (where the browser bundle is).
    pub leptos: LeptosOptions,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Whether pages load the browser bundle (it was found at start).
    pub hydrate: bool,
    /// Whether the portal is served over TLS (cookies are then `Secure`).
    pub tls: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    /// The state for `broker`, with the browser bundle looked for in `site_root`.
    pub fn new(broker: Broker, site_root: PathBuf, sessions: SessionPolicy, tls: bool) -> Self {
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
        Self {
            broker,
            leptos,
            sessions,
            hydrate,
            tls,
        }
    }
}

/// The portal's routes (pages, server functions, admin REST API, assets), with sessions
/// and the cross-site request check; merge the participant API beside it.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let page_shell = {
        let options = state.leptos.clone();
        let hydrate = state.hydrate;
        move || shell(options.clone(), hydrate)
    };
    let sessions = SessionManagerLayer::new(sessions::DbSessions(state.broker.store().clone()))
        .with_name("dip_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.tls)
        // Saved on every request, so that the idle timeout counts from the last one.
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::try_from(state.sessions.idle)
                .unwrap_or(tower_sessions::cookie::time::Duration::minutes(30)),
        ));
    let pkg = tower_http::services::ServeDir::new(PathBuf::from(&*state.leptos.site_root).join("pkg"));
    let dynamic = Router::new()
        .leptos_routes_with_context(&state, routes, context, page_shell)
        .route("/fn/{*name}", post(server_fn).get(server_fn))
        .merge(rest::routes())
        .merge(reports::routes())
        .with_state(state.clone())
        .layer(sessions);
    // Assets need no session (nor a session write per file).
    Router::new()
        .route("/style/dip.css", get(stylesheet))
        .nest_service("/pkg", pkg)
        .merge(dynamic)
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::map_response(security_headers))
}

async fn server_fn(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    leptos_axum::handle_server_fns_with_context(move || provide_context(state.clone()), req).await
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLESHEET,
    )
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Whether a state-changing request comes from this site. Browsers send `Origin` on
/// cross-site posts (and `Sec-Fetch-Site`); a request with neither is not from a
/// browser page and carries no ambient credentials worth forging.
fn from_this_site(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

async fn same_origin(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !from_this_site(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (axum::http::HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(from_this_site(&headers(&[
            ("host", "dip.example:8080"),
            ("origin", "http://dip.example:8080")
        ])));
        assert!(!from_this_site(&headers(&[
            ("host", "dip.example:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!from_this_site(&headers(&[
            ("host", "dip.example"),
            ("origin", "null")
        ])));
        assert!(!from_this_site(&headers(&[
            ("host", "dip.example"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(from_this_site(&headers(&[
            ("host", "dip.example"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(from_this_site(&headers(&[("host", "dip.example")])));
    }
}
