//! One webhook call and how its answer is read (`WIRE.md`, outbound).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::delivery::destinations::Destinations;
use crate::delivery::report::ErrorItem;
use crate::error::ErrorCode;
use crate::security::signature::Signer;
use crate::store::{CallDetail, Outbound};

/// Most bytes of a recipient's error answer the platform reads and relays.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Most characters of a recipient's error answer kept with the attempt.
pub const KEPT_ANSWER: usize = 2000;

/// How a recipient answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx: delivered.
    Delivered {
        /// Status.
        status: u16,
    },
    /// 4xx other than 408 and 429: the recipient refuses the data; returned to the
    /// sender and not retried.
    Rejected {
        /// Status.
        status: u16,
        /// The recipient's errors, or one describing the answer.
        errors: Vec<ErrorItem>,
    },
    /// 408, 429, 5xx, 3xx, timeout or connection failure: retried later.
    Retry {
        /// What happened, for the operational view.
        outcome: String,
        /// The recipient's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

impl Answer {
    /// A short description for the queue's last outcome.
    pub fn outcome(&self) -> String {
        match self {
            Self::Delivered { status } | Self::Rejected { status, .. } => format!("HTTP {status}"),
            Self::Retry { outcome, .. } => outcome.clone(),
        }
    }
}

/// The outbound body for an envelope (in the clear, JSON) that goes out unchanged: a
/// one-item array, built without parsing the envelope again.
pub fn body(envelope: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(envelope.len() + 16);
    body.extend_from_slice(b"[{\"payload\":");
    body.extend_from_slice(envelope.as_bytes());
    body.extend_from_slice(b"}]");
    body
}

/// POSTs one entry to a webhook and reads the answer; with what is kept of the call (the
/// platform's signature, the start of an error answer). Addresses the platform may not
/// reach are refused before connecting (names, by the client's resolver).
pub async fn send(
    http: &reqwest::Client,
    destinations: &Destinations,
    signer: Option<&Signer>,
    url: &str,
    out: &Outbound,
    body: Vec<u8>,
) -> (Answer, CallDetail) {
    let refused = |why: String| Answer::Retry {
        outcome: format!("destination refused: {why}"),
        retry_after: None,
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return (refused(format!("invalid URL ({e})")), CallDetail::default()),
    };
    if let Err(why) = destinations.check_url(&parsed) {
        return (refused(why), CallDetail::default());
    }
    let mut call = CallDetail {
        answer: String::new(),
        signature: signer.map(|s| s.sign_request("POST", parsed.as_str(), &body, chrono::Utc::now())),
    };
    let mut request = http.post(parsed);
    if let (Some(signer), Some(signature)) = (signer, &call.signature) {
        for (name, value) in signer.headers_of(signature) {
            request = request.header(name, value);
        }
    }
    let (answer, text) = exchange(request, out, body).await;
    call.answer = text;
    (answer, call)
}

/// Sends the request and reads the answer, with the start of an error answer's body.
async fn exchange(request: reqwest::RequestBuilder, out: &Outbound, body: Vec<u8>) -> (Answer, String) {
    let request = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-DIP-Transaction-ID", &out.entry.transaction_id)
        .header("X-DIP-Queue", &out.entry.queue_id)
        .header("X-DIP-Sequence", out.entry.seq.to_string())
        .body(body);
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            // The resolver's refusal, somewhere down the error chain.
            let resolver_refusal = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .map(ToString::to_string)
                .find(|s| s.starts_with("destination refused"));
            // The innermost cause says what went wrong (a refused certificate, a reset).
            let cause = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .last()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            let outcome = if let Some(why) = resolver_refusal {
                why
            } else if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connect() {
                format!("connection failed{cause}")
            } else {
                format!("request failed: {}{cause}", without_url(&e))
            };
            return (
                Answer::Retry {
                    outcome,
                    retry_after: None,
                },
                String::new(),
            );
        }
    };
    let status = response.status();
    if status.is_success() {
        // Drain the body so that the connection returns to the pool.
        let _ = response.bytes().await;
        return (
            Answer::Delivered {
                status: status.as_u16(),
            },
            String::new(),
        );
    }
    if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT && status != StatusCode::TOO_MANY_REQUESTS {
        let bytes = read_body(response, MAX_ERROR_BODY).await;
        let errors = errors_of(status.as_u16(), &bytes);
        return (
            Answer::Rejected {
                status: status.as_u16(),
                errors,
            },
            kept(&bytes),
        );
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let outcome = if status.is_redirection() {
        format!("HTTP {} (redirects are not followed)", status.as_u16())
    } else {
        format!("HTTP {}", status.as_u16())
    };
    let bytes = read_body(response, KEPT_ANSWER * 4).await;
    (Answer::Retry { outcome, retry_after }, kept(&bytes))
}

/// A reqwest error's text without the URL, which may carry credentials.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// At most `limit` bytes of an answer's body.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            bytes.truncate(limit);
            break;
        }
    }
    bytes
}

/// The start of an answer's body as text, as it is kept with the attempt.
fn kept(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(KEPT_ANSWER).collect()
}

/// The recipient's `{"errors": [...]}`, or one error describing its answer.
fn errors_of(status: u16, bytes: &[u8]) -> Vec<ErrorItem> {
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes)
        && let Some(Value::Array(items)) = body.get("errors")
    {
        let errors: Vec<ErrorItem> = items
            .iter()
            .take(100)
            .map(|e| {
                let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                ErrorItem {
                    code: text("code"),
                    path: text("path"),
                    message: text("message"),
                }
            })
            .collect();
        if !errors.is_empty() {
            return errors;
        }
    }
    let text: String = String::from_utf8_lossy(bytes).chars().take(500).collect();
    vec![ErrorItem {
        code: ErrorCode::RecipientRejected.as_str().into(),
        path: String::new(),
        message: if text.trim().is_empty() {
            format!("the recipient answered HTTP {status}")
        } else {
            format!("the recipient answered HTTP {status}: {}", text.trim())
        },
    }]
}
