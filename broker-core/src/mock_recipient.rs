//! A mock participant: a webhook recipient on loopback that records what it receives
//! and answers as scripted, the participant end of delivery for benchmarks and tests
//! (here and in `web`), so that delivery is checked over real HTTP. It checks what a
//! recipient can check: per-queue order (`X-DIP-Sequence`), duplicates (same transaction
//! id), and whether one queue was ever delivered by two requests at once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;

/// One answer of the mock recipient.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200.
    Ok,
    /// This status with an empty body.
    Status(u16),
    /// This status with a JSON body.
    Json(u16, Value),
    /// This status with `Retry-After` seconds.
    RetryAfter(u16, u64),
    /// Wait, then answer 200 (a slow recipient, or a timeout for the sender).
    Delay(Duration),
    /// 302 to this URL.
    Redirect(String),
}

/// One request the mock recipient took.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-DIP-Transaction-ID`.
    pub transaction_id: String,
    /// `X-DIP-Queue`.
    pub queue: String,
    /// `X-DIP-Sequence`.
    pub seq: i64,
    /// The body, when the mock recipient keeps bodies.
    pub body: Option<Value>,
    /// `D0.transactionTimestamp` to arrival, microseconds.
    pub latency_us: i64,
    /// The status the mock recipient answered.
    pub status: u16,
    /// Fingerprint of the sender's client certificate (over TLS).
    pub client_certificate: Option<String>,
    /// The request's `X-DIP-*` headers (names lower-case).
    pub dip_headers: std::collections::BTreeMap<String, String>,
    /// The exact body bytes, when the mock recipient keeps bodies.
    pub raw: Option<Bytes>,
}

#[derive(Default)]
struct RecipientState {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlaps: Mutex<usize>,
    arrived: Notify,
    keep_bodies: bool,
}

/// A running mock recipient on 127.0.0.1.
pub struct MockRecipient {
    addr: SocketAddr,
    state: Arc<RecipientState>,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
}

impl Drop for MockRecipient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockRecipient {
    /// Starts a mock recipient; `keep_bodies` keeps every body (tests) rather than only headers
    /// and latency (benchmarks).
    pub async fn start(keep_bodies: bool) -> std::io::Result<Self> {
        Self::serve(keep_bodies, None).await
    }

    /// Starts a mock recipient over TLS with `settings` (its server certificate, and the
    /// authorities whose client certificates it accepts or requires).
    pub async fn start_tls(keep_bodies: bool, settings: &crate::security::tls::TlsSettings) -> std::io::Result<Self> {
        let config = crate::security::tls::server_config(settings).map_err(std::io::Error::other)?;
        Self::serve(keep_bodies, Some(config)).await
    }

    async fn serve(keep_bodies: bool, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(RecipientState {
            keep_bodies,
            ..RecipientState::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some(config) => tokio::spawn(crate::security::tls::serve(
                listener,
                config,
                app,
                std::future::pending(),
            )),
        };
        Ok(Self {
            addr,
            state,
            task,
            scheme,
        })
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("{}://{}/hook", self.scheme, self.addr)
    }

    /// Answers the next requests with `replies` in order (then 200 again).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.script).extend(replies);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Requests answered 2xx so far.
    pub fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.status < 300).collect()
    }

    /// How many times a request arrived while another of the same queue was in progress.
    pub fn overlaps(&self) -> usize {
        *lock(&self.state.overlaps)
    }

    /// Waits until at least `n` requests were answered 2xx or `timeout` passes; returns
    /// the 2xx requests.
    pub async fn wait_delivered(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.delivered();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn receive(
    State(state): State<Arc<RecipientState>>,
    client: Option<axum::Extension<crate::security::tls::ClientCertificate>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let queue = header("x-dip-queue");
    {
        let mut in_flight = lock(&state.in_flight);
        let n = in_flight.entry(queue.clone()).or_default();
        if *n > 0 {
            *lock(&state.overlaps) += 1;
        }
        *n += 1;
    }
    // Decrements even when the sender gives up and the request is dropped mid-way.
    let _guard = InFlight {
        state: state.clone(),
        queue: queue.clone(),
    };
    let reply = lock(&state.script).pop_front().unwrap_or(Reply::Ok);
    if let Reply::Delay(d) = &reply {
        tokio::time::sleep(*d).await;
    }
    let arrived_at = chrono::Utc::now();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let sent_at = parsed
        .as_ref()
        .and_then(|v| v.pointer("/0/payload/CommonBlock/D0/transactionTimestamp"))
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let (status, response) = match reply {
        Reply::Ok | Reply::Delay(_) => (200, StatusCode::OK.into_response()),
        Reply::Status(s) => (s, status_of(s).into_response()),
        Reply::Json(s, v) => (s, (status_of(s), axum::Json(v)).into_response()),
        Reply::RetryAfter(s, secs) => (s, (status_of(s), [("retry-after", secs.to_string())]).into_response()),
        Reply::Redirect(to) => (302, (StatusCode::FOUND, [("location", to)]).into_response()),
    };
    lock(&state.received).push(Received {
        transaction_id: header("x-dip-transaction-id"),
        seq: header("x-dip-sequence").parse().unwrap_or(-1),
        queue: queue.clone(),
        body: if state.keep_bodies { parsed } else { None },
        latency_us: sent_at.map_or(-1, |t| {
            (arrived_at - t.with_timezone(&chrono::Utc))
                .num_microseconds()
                .unwrap_or(-1)
        }),
        status,
        client_certificate: client.and_then(|c| c.0.0.clone()),
        dip_headers: headers
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("x-dip-"))
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        raw: state.keep_bodies.then(|| body.clone()),
    });
    state.arrived.notify_waiters();
    response
}

struct InFlight {
    state: Arc<RecipientState>,
    queue: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.state.in_flight).get_mut(&self.queue) {
            *n = n.saturating_sub(1);
        }
    }
}

fn status_of(s: u16) -> StatusCode {
    StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
