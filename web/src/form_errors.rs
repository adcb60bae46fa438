//! The error round trip of forms posted without JavaScript, made trustworthy.
//!
//! When a server function fails for a plain form post, Leptos redirects back to the form
//! with the error in the URL (`?__path=…&__err=…`), and the page shows it with the values
//! the user typed. Anyone could craft such a link, so a page would show an attacker's
//! message and pre-fill an attacker's values ("confirm the new webhook address…"). Here
//! the redirect gets a signature (`__sig`), bound to the session and valid for a few
//! minutes; a page request whose error is not signed for its session loses it before
//! Leptos sees it.
//!
//! The key is the session id (a secret only this browser and the server know, the same
//! on every node); a browser without a session gets this process's random key, so the
//! sign-in form's error arrives when the redirect reaches the same node.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use ring::hmac;

use dip_admin::sessions::COOKIE;

const PATH: &str = "__path";
const ERR: &str = "__err";
const SIG: &str = "__sig";
/// How long a signed error may be shown.
const VALID_SECS: i64 = 600;

/// The middleware: signs the errors server functions send back and drops unsigned ones
/// from page requests.
pub async fn sign(mut request: Request, next: Next) -> Response {
    let key = key_of(request.headers());
    let server_fn = request.uri().path().starts_with("/fn/");
    if !server_fn
        && let Some(query) = request.uri().query()
        && let Some(kept) = verified_query(query, &key, now())
    {
        let path_and_query = match kept.is_empty() {
            true => request.uri().path().to_owned(),
            false => format!("{}?{kept}", request.uri().path()),
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = path_and_query.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    let mut response = next.run(request).await;
    if server_fn
        && let Some(location) = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok())
        && let Some(signed) = signed_location(location, &key, now())
        && let Ok(value) = HeaderValue::from_str(&signed)
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The signing key for a request: its session id, or this process's key.
fn key_of(headers: &axum::http::HeaderMap) -> hmac::Key {
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned());
    match session {
        Some(id) => hmac::Key::new(hmac::HMAC_SHA256, id.as_bytes()),
        None => {
            static PROCESS: OnceLock<[u8; 32]> = OnceLock::new();
            let bytes = PROCESS.get_or_init(|| {
                use rand::RngCore;
                let mut b = [0u8; 32];
                rand::rng().fill_bytes(&mut b);
                b
            });
            hmac::Key::new(hmac::HMAC_SHA256, bytes)
        }
    }
}

/// What a signature covers: when, which server function, which error.
fn signed_text(at: i64, path: &str, err: &str) -> String {
    format!("{at}\n{path}\n{err}")
}

fn mac(key: &hmac::Key, at: i64, path: &str, err: &str) -> String {
    hex::encode(hmac::sign(key, signed_text(at, path, err).as_bytes()).as_ref())
}

/// The query pairs of a URL query.
fn pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn encode_query(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// For a page's query that carries error parameters: the query to use instead (`None`
/// when it carries none and stays as it is). A valid signature keeps the error (the
/// signature itself stays too; Leptos ignores it); anything else drops all three.
fn verified_query(query: &str, key: &hmac::Key, now: i64) -> Option<String> {
    let mut pairs = pairs(query);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (path, err, sig) = (get(PATH), get(ERR), get(SIG));
    if path.is_none() && err.is_none() && sig.is_none() {
        return None;
    }
    let valid = match (path, err, sig) {
        (Some(path), Some(err), Some(sig)) => sig.split_once('.').is_some_and(|(at, tag)| {
            at.parse::<i64>().is_ok_and(|at| {
                (0..=VALID_SECS).contains(&(now - at))
                    && hex::decode(tag)
                        .is_ok_and(|tag| hmac::verify(key, signed_text(at, &path, &err).as_bytes(), &tag).is_ok())
            })
        }),
        _ => false,
    };
    if valid {
        return Some(query.to_owned());
    }
    pairs.retain(|(k, _)| k != PATH && k != ERR && k != SIG);
    Some(encode_query(&pairs))
}

/// A server function's redirect with its error signed (and a stale signature from an
/// earlier round trip removed); `None` when it needs no change.
fn signed_location(location: &str, key: &hmac::Key, now: i64) -> Option<String> {
    let (base, query) = location.split_once('?')?;
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut pairs = pairs(query);
    let had_sig = pairs.iter().any(|(k, _)| k == SIG);
    pairs.retain(|(k, _)| k != SIG);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (get(PATH), get(ERR)) {
        (Some(path), Some(err)) => pairs.push((SIG.to_owned(), format!("{now}.{}", mac(key, now, &path, &err)))),
        _ if had_sig => {}
        _ => return None,
    }
    let mut out = base.to_owned();
    if !pairs.is_empty() {
        out.push('?');
        out.push_str(&encode_query(&pairs));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())
    }

    #[test]
    fn an_error_signed_for_a_session_is_kept_only_for_that_session_and_not_for_long() {
        let now = 1_800_000_000;
        let location = "http://dip.example/admin/endpoints?q=x&__path=%2Ffn%2Fsave&__err=e30";
        let signed = signed_location(location, &key("session-a"), now).unwrap();
        let query = signed.split_once('?').unwrap().1;
        assert_eq!(
            verified_query(query, &key("session-a"), now + 5),
            Some(query.to_owned())
        );
        assert_eq!(
            verified_query(query, &key("session-b"), now + 5),
            Some("q=x".to_owned())
        );
        assert_eq!(
            verified_query(query, &key("session-a"), now + VALID_SECS + 1),
            Some("q=x".to_owned())
        );
        // Another error under the same signature is dropped.
        let forged = query.replace("__err=e30", "__err=e31");
        assert_eq!(verified_query(&forged, &key("session-a"), now), Some("q=x".to_owned()));
    }

    #[test]
    fn crafted_errors_without_a_signature_are_dropped_and_other_queries_left_alone() {
        let k = key("s");
        assert_eq!(verified_query("__path=%2Ffn%2Fx&__err=e30", &k, 0), Some(String::new()));
        assert_eq!(verified_query("page=2&__err=e30", &k, 0), Some("page=2".to_owned()));
        assert_eq!(verified_query("page=2&q=a+b", &k, 0), None);
    }

    #[test]
    fn a_successful_round_trip_drops_the_old_signature() {
        let k = key("s");
        assert_eq!(
            signed_location("/admin/users?page=2&__sig=1.ab", &k, 0).as_deref(),
            Some("/admin/users?page=2")
        );
        assert_eq!(signed_location("/admin/users?page=2", &k, 0), None);
        assert_eq!(signed_location("/admin/users", &k, 0), None);
    }
}
