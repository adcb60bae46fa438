//! The router that serves the portal's pages, server functions, REST APIs (admin,
//! reports) and assets beside the participant API, with sessions and the protections
//! every answer gets: same-origin checks, security headers, refused NUL characters.

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::{AnyView, IntoAny, provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use dip_admin::sessions;
use dip_admin::types::AppError;

use crate::app::{App, shell};
use crate::form_errors;
use crate::state::AppState;

/// The stylesheet of the design system, compiled in.
const STYLESHEET: &str = include_str!("../../style/dip.css");

/// The whole platform as one router: the portal (pages, server functions, admin REST
/// API, assets) beside the participant API, every answer with the security headers.
pub fn platform(state: AppState) -> Router {
    let api = broker_core::api::router(state.broker.clone());
    router(state)
        .merge(api)
        .layer(middleware::from_fn(broker_core::api::refuse_nul_in_url))
        .layer(middleware::map_response(security_headers))
}

/// The portal's page routes, generated once per process. Generating them renders the app
/// with resource loading suppressed process-wide (leptos' `SuppressResourceLoad`), so a
/// page whose resource first polled meanwhile, in any router of the process, would wait
/// forever (leptos issue 4773): tests that start one portal while another serves saw
/// such pages hang. Once, before any router exists, no page can be rendering.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::LazyLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::LazyLock::new(|| generate_route_list(App));
    ROUTES.clone()
}

/// The portal's routes (pages, server functions, admin REST API, assets), with sessions
/// and the cross-site request check; [`platform`] puts the participant API beside it.
pub fn router(state: AppState) -> Router {
    let routes = route_list();
    let (context, page_shell) = (context(&state), page_shell(&state));
    let sessions = SessionManagerLayer::new(sessions::DbSessions(state.broker.store().clone()))
        .with_name(sessions::COOKIE)
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
        .merge(dip_admin::rest::routes())
        .merge(dip_reporting::rest::routes())
        .fallback(not_found)
        .with_state(state.clone())
        .layer(middleware::from_fn(server_fn_status))
        .layer(middleware::from_fn(refuse_nul_in_body))
        .layer(middleware::from_fn(form_errors::sign))
        .layer(sessions)
        .layer(middleware::from_fn(page_redirects));
    // Assets need no session (nor a session write per file).
    Router::new()
        .route("/style/dip.css", get(stylesheet))
        .nest_service("/pkg", pkg)
        .layer(middleware::map_response(revalidate))
        .merge(dynamic)
        .layer(middleware::from_fn_with_state(state, same_origin))
}

/// Puts the state in the context of every page and server function.
fn context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let state = state.clone();
    move || provide_context(state.clone())
}

/// The HTML shell around every page.
fn page_shell(state: &AppState) -> impl Fn() -> AnyView + Clone + Send + Sync + 'static {
    let (options, hydrate) = (state.leptos.clone(), state.hydrate);
    move || shell(options.clone(), hydrate).into_any()
}

/// Unknown paths: the participant API's coded 404 under `/api/`, otherwise the portal's
/// not-found page (the router's fallback view, which answers 404).
async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        return broker_core::api::unknown_route().await;
    }
    let mut response = leptos_axum::render_app_async_with_context(context(&state), page_shell(&state))(request).await;
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Largest body the portal reads (forms and admin API documents are far smaller).
const MAX_BODY: usize = 2 << 20;

/// Refuses a form or JSON body holding the NUL character (U+0000) with `400` naming the
/// field, before any handler: no field may hold one and PostgreSQL text cannot store one
/// (the write would fail as a store error). The participant API checks its own bodies.
async fn refuse_nul_in_body(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let field = if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(&bytes)
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.replace('\0', ""))
    } else if content_type.starts_with("application/json") {
        match broker_core::input::parse_body::<serde::de::IgnoredAny>(&bytes) {
            Err(broker_core::input::BodyError::Nul(path)) => Some(path),
            _ => None,
        }
    } else {
        None
    };
    if let Some(field) = field {
        let error = AppError::field(&field, "No field may hold the NUL character (U+0000).");
        let body = match parts.uri.path().starts_with("/api/") {
            true => {
                serde_json::json!({"error": {"code": error.code(), "message": error.to_string(), "fields": {field: error.to_string()}}})
            }
            false => serde_json::to_value(&error).unwrap_or_default(),
        };
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// A page that sends its reader elsewhere (to sign in, say) is a redirect whatever the
/// client accepts: Leptos sets `302` only for clients that ask for HTML and leaves
/// others a `200` with a `Location`.
async fn page_redirects(request: Request, next: Next) -> Response {
    let page = request.method() == Method::GET && !request.uri().path().starts_with("/fn/");
    let mut response = next.run(request).await;
    if page && response.status().is_success() && response.headers().contains_key(header::LOCATION) {
        *response.status_mut() = StatusCode::FOUND;
    }
    response
}

async fn server_fn(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    leptos_axum::handle_server_fns_with_context(move || provide_context(state.clone()), req).await
}

/// A failed server function answers with the status of its [`AppError`]: Leptos answers
/// 500 for every error, even a bad argument or a wrong password.
async fn server_fn_status(request: Request, next: Next) -> Response {
    let server_fn = request.uri().path().starts_with("/fn/");
    let response = next.run(request).await;
    if !server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes)
        && let Ok(status) = StatusCode::from_u16(error.status())
    {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
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

/// Headers on every answer, the participant API's included. Nothing is cached unless
/// its route says otherwise: pages and API answers carry personal and market data.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Assets may be kept by the browser but are checked with the server before each use,
/// so a new bundle takes effect at once.
async fn revalidate(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The origin (scheme, host, port) a request was addressed to: its authority is the
/// URI's under HTTP/2 (`:authority`) and the `Host` header's under HTTP/1; its scheme is
/// the listener's.
fn own_origin(uri: &Uri, headers: &HeaderMap, tls: bool) -> Option<url::Origin> {
    let authority = match uri.authority() {
        Some(a) => a.as_str(),
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let scheme = if tls { "https" } else { "http" };
    let origin = url::Url::parse(&format!("{scheme}://{authority}/")).ok()?.origin();
    origin.is_tuple().then_some(origin)
}

/// Whether a state-changing request comes from this site. Browsers send `Origin` on
/// cross-site posts (and `Sec-Fetch-Site`); it must be the whole origin the request
/// was addressed to, or the public URL's. A request with neither header is not from a
/// browser page and carries no ambient credentials worth forging.
fn from_this_site(uri: &Uri, headers: &HeaderMap, tls: bool, public: Option<&url::Origin>) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Some(origin) = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
        else {
            return false;
        };
        return own_origin(uri, headers, tls).as_ref() == Some(&origin) || public == Some(&origin);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && !from_this_site(
            request.uri(),
            request.headers(),
            state.tls,
            state.public_origin.as_ref(),
        )
    {
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

    /// An HTTP/1 request (origin-form URI, `Host` header) to a plain-HTTP listener.
    fn http1(pairs: &[(&'static str, &'static str)]) -> bool {
        from_this_site(&Uri::from_static("/fn/sign_in"), &headers(pairs), false, None)
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(http1(&[
            ("host", "dip.example:8080"),
            ("origin", "http://dip.example:8080")
        ]));
        assert!(http1(&[
            ("host", "DIP.example:8080"),
            ("origin", "http://dip.example:8080")
        ]));
        assert!(!http1(&[
            ("host", "dip.example:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!http1(&[("host", "dip.example"), ("origin", "null")]));
        assert!(!http1(&[("host", "dip.example"), ("sec-fetch-site", "cross-site")]));
        assert!(http1(&[("host", "dip.example"), ("sec-fetch-site", "same-origin")]));
        assert!(http1(&[("host", "dip.example")]));
    }

    #[test]
    fn the_scheme_and_port_are_part_of_the_origin() {
        // An https page posting to the plain-HTTP portal is another origin.
        assert!(!http1(&[
            ("host", "dip.example:8080"),
            ("origin", "https://dip.example:8080")
        ]));
        assert!(!http1(&[
            ("host", "dip.example:8080"),
            ("origin", "http://dip.example:8081")
        ]));
        // Default ports may be written or not.
        let tls = |host, origin| {
            from_this_site(
                &Uri::from_static("/fn/sign_in"),
                &headers(&[("host", host), ("origin", origin)]),
                true,
                None,
            )
        };
        assert!(tls("dip.example", "https://dip.example"));
        assert!(tls("dip.example:443", "https://dip.example"));
        assert!(!tls("dip.example", "http://dip.example"));
    }

    #[test]
    fn http2_requests_carry_their_authority_in_the_uri() {
        // HTTP/2 has no Host header: `:authority` arrives as the URI's authority.
        let uri = Uri::from_static("https://127.0.0.1:8443/fn/sign_in");
        let origin = |o| headers(&[("origin", o)]);
        assert!(from_this_site(&uri, &origin("https://127.0.0.1:8443"), true, None));
        assert!(!from_this_site(&uri, &origin("https://evil.example"), true, None));
        assert!(!from_this_site(&uri, &origin("http://127.0.0.1:8443"), true, None));
    }

    #[test]
    fn the_public_url_is_an_origin_of_this_site() {
        // Behind a proxy that ends TLS, the portal sees plain HTTP on its own address.
        let public = url::Url::parse("https://dip.example/").unwrap().origin();
        let uri = Uri::from_static("/fn/sign_in");
        let h = headers(&[("host", "10.0.0.5:8080"), ("origin", "https://dip.example")]);
        assert!(from_this_site(&uri, &h, false, Some(&public)));
        assert!(!from_this_site(&uri, &h, false, None));
    }
}
