//! X-DIP request signatures (WIRE.md): requests in both directions may carry an RSA
//! PKCS#1 v1.5 SHA-256 signature over `METHOD;url;timestamp;content-hash`, as the
//! production MHHS DIP does. Inbound signatures are checked against the sender's
//! registered certificates; outbound requests are signed with the platform's own key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;

use super::certs;

/// Header carrying base64 (standard, padded) of the SHA-256 of the exact body bytes.
pub const CONTENT_HASH: &str = "X-DIP-Content-Hash";
/// Header carrying the RFC 3339 UTC time of signing; it is signed, so it cannot be replayed
/// with a fresher value.
pub const SIGNATURE_DATE: &str = "X-DIP-Signature-Date";
/// Header carrying the base64 RSA PKCS#1 v1.5 SHA-256 signature of [`string_to_sign`].
pub const SIGNATURE: &str = "X-DIP-Signature";
/// Header carrying base64 of the signer's whole PEM certificate text.
pub const SIGNATURE_CERTIFICATE: &str = "X-DIP-Signature-Certificate";

/// Freshness window used when configuration gives none: a signature dated further than
/// this from the receiver's clock, either way, is refused.
pub const DEFAULT_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Why a request cannot be signed or its signature is refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// One of the four signature headers is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The body is not the one that was hashed (and so signed).
    #[error("{CONTENT_HASH} does not match the SHA-256 of the body")]
    ContentHashMismatch,
    /// The date header is not an RFC 3339 timestamp.
    #[error("{SIGNATURE_DATE} is not an RFC 3339 timestamp: {0}")]
    BadDate(String),
    /// The date is outside the freshness window: a replay or a badly skewed clock.
    #[error("{SIGNATURE_DATE} {date} is outside the freshness window of {window_secs} s")]
    StaleDate {
        /// The header value as received (shortened: it is quoted back).
        date: String,
        /// The window, in seconds either side of the receiver's clock.
        window_secs: i64,
    },
    /// The certificate header is not base64 of a PEM X.509 certificate.
    #[error("{SIGNATURE_CERTIFICATE} is not a readable certificate: {0}")]
    BadCertificate(String),
    /// The certificate is not one the sender has registered (or it was revoked).
    #[error("NOT_REGISTERED: signing certificate {0} is not a registered certificate of the sender")]
    NotRegistered(String),
    /// The certificate (or private key) is not RSA; only RSA signatures are defined.
    #[error("the signing key is not an RSA key")]
    NotRsa,
    /// The signature header is not base64.
    #[error("{SIGNATURE} is not base64")]
    SignatureEncoding,
    /// The signature does not verify over the string-to-sign under the certificate's key.
    #[error("{SIGNATURE} does not verify under the signing certificate")]
    BadSignature,
    /// The signer's own key or certificate cannot be loaded.
    #[error("cannot load the signing key: {0}")]
    BadKey(String),
}

impl SignatureError {
    /// A stable, machine-readable code for the error, for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "SIGNATURE_MISSING",
            Self::ContentHashMismatch => "CONTENT_HASH_MISMATCH",
            Self::BadDate(_) => "SIGNATURE_DATE_INVALID",
            Self::StaleDate { .. } => "SIGNATURE_DATE_STALE",
            Self::BadCertificate(_) => "SIGNATURE_CERTIFICATE_INVALID",
            Self::NotRegistered(_) => "NOT_REGISTERED",
            Self::NotRsa => "SIGNATURE_KEY_NOT_RSA",
            Self::SignatureEncoding | Self::BadSignature => "SIGNATURE_INVALID",
            Self::BadKey(_) => "SIGNING_KEY_INVALID",
        }
    }
}

/// Base64 (standard, padded) of the SHA-256 of `body`: the `X-DIP-Content-Hash` value.
pub fn content_hash(body: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(body))
}

/// The text that is signed: `METHOD;url;timestamp;content-hash`, method upper-cased and the
/// URL lower-cased so that neither side's casing choices break the signature; `timestamp`
/// and `content_hash` are the header values exactly.
pub fn string_to_sign(method: &str, url: &str, timestamp: &str, content_hash: &str) -> String {
    format!(
        "{};{};{timestamp};{content_hash}",
        method.to_ascii_uppercase(),
        url.to_lowercase()
    )
}

/// Signs outbound requests with one RSA key and presents its certificate.
pub struct Signer {
    key: RsaKeyPair,
    /// Base64 of the certificate PEM, computed once since it is sent on every request.
    cert_header: String,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    // The private key must never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a PEM certificate and its PEM private key (PKCS#8 `PRIVATE KEY` or
    /// PKCS#1 `RSA PRIVATE KEY`). Refuses a key that does not match the certificate, since
    /// every signature it made would then fail verification at the receiver.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Self, SignatureError> {
        let der = certs::parse_pem(cert_pem)
            .map_err(|e| SignatureError::BadCertificate(e.to_string()))?
            .remove(0);
        let cert_key = rsa_public_key(&der)?;
        let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| SignatureError::BadKey(e.to_string()))?
        {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(SignatureError::NotRsa),
        }
        .map_err(|e| SignatureError::BadKey(e.to_string()))?;
        if key.public().as_ref() != cert_key.as_slice() {
            return Err(SignatureError::BadKey(
                "the private key does not match the certificate".into(),
            ));
        }
        Ok(Self {
            key,
            cert_header: STANDARD.encode(cert_pem.as_bytes()),
            fingerprint: certs::fingerprint(&der),
        })
    }

    /// Hex SHA-256 of the signer's certificate DER, as the receiver registers it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The signer's certificate (PEM), as relying parties check its signatures.
    pub fn cert_pem(&self) -> String {
        let pem = STANDARD.decode(&self.cert_header).unwrap_or_default();
        String::from_utf8(pem).unwrap_or_default()
    }

    /// The RSA PKCS#1 v1.5 SHA-256 signature of `data`: what `openssl dgst -sha256 -verify`
    /// checks against the certificate's public key.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        // PKCS#1 v1.5 is deterministic (the RNG is unused) and the buffer is sized to the
        // modulus, so ring has no failure left to report for a key it accepted.
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), data, &mut sig)
            .expect("RSA PKCS#1 v1.5 signing with a validated key cannot fail");
        sig
    }

    /// Signs a request of `method` to `url` with `body`, dated `now`.
    pub fn sign_request(&self, method: &str, url: &str, body: &[u8], now: DateTime<Utc>) -> SignatureRecord {
        let mut record = SignatureRecord {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            signed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            content_hash: content_hash(body),
            signature: String::new(),
            fingerprint: self.fingerprint.clone(),
        };
        record.signature = STANDARD.encode(self.sign(record.string_to_sign().as_bytes()));
        record
    }

    /// The four signature headers of a signed request.
    pub fn headers_of(&self, record: &SignatureRecord) -> Vec<(&'static str, String)> {
        vec![
            (CONTENT_HASH, record.content_hash.clone()),
            (SIGNATURE_DATE, record.signed_at.clone()),
            (SIGNATURE, record.signature.clone()),
            (SIGNATURE_CERTIFICATE, self.cert_header.clone()),
        ]
    }

    /// The four signature headers for a request of `method` to `url` with `body`, dated `now`.
    pub fn headers(&self, method: &str, url: &str, body: &[u8], now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        self.headers_of(&self.sign_request(method, url, body, now))
    }
}

/// An X-DIP signature as it was made or checked, kept so that it can be verified again
/// later, offline, with the signer's certificate: the platform stores the one a sender's
/// request carried and the one on every webhook it sent (evidence bundles).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRecord {
    /// The request's method, upper-case.
    pub method: String,
    /// The URL signed (as the signer named it).
    pub url: String,
    /// `X-DIP-Signature-Date`, exactly.
    pub signed_at: String,
    /// `X-DIP-Content-Hash`: base64 SHA-256 of the request body.
    pub content_hash: String,
    /// `X-DIP-Signature`: base64 RSA PKCS#1 v1.5 SHA-256 over [`Self::string_to_sign`].
    pub signature: String,
    /// Hex SHA-256 of the signing certificate's DER.
    pub fingerprint: String,
}

impl SignatureRecord {
    /// The exact text the signature covers.
    pub fn string_to_sign(&self) -> String {
        string_to_sign(&self.method, &self.url, &self.signed_at, &self.content_hash)
    }
}

/// What a verified signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Hex SHA-256 of the signing certificate's DER: which registered certificate signed.
    pub fingerprint: String,
    /// When the sender says it signed.
    pub signed_at: DateTime<Utc>,
    /// The signature as received, to keep as evidence.
    pub record: SignatureRecord,
}

/// Checks the signature of a request of `method` to `url` with `body`. `headers` looks a
/// header up by name (case-insensitively, as HTTP requires); `expected_fingerprints` are the
/// sender's registered, unrevoked certificates; the date must be within `window` of `now`.
/// Checks run cheapest first, so a plain mistake is reported before any RSA work.
pub fn verify(
    method: &str,
    url: &str,
    body: &[u8],
    headers: impl Fn(&str) -> Option<String>,
    expected_fingerprints: &[String],
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<Verified, SignatureError> {
    let get = |name: &'static str| headers(name).ok_or(SignatureError::MissingHeader(name));
    let hash = get(CONTENT_HASH)?;
    let date = get(SIGNATURE_DATE)?;
    let signature = get(SIGNATURE)?;
    let cert = get(SIGNATURE_CERTIFICATE)?;

    // The hash is public, so a plain comparison leaks nothing worth a constant-time one.
    if content_hash(body) != hash.trim() {
        return Err(SignatureError::ContentHashMismatch);
    }

    let signed_at = DateTime::parse_from_rfc3339(date.trim())
        .map_err(|e| SignatureError::BadDate(e.to_string()))?
        .with_timezone(&Utc);
    let window = window.abs();
    if (now - signed_at).abs() > window {
        return Err(SignatureError::StaleDate {
            date: crate::input::echo(&date).into_owned(),
            window_secs: window.num_seconds(),
        });
    }

    let pem = STANDARD
        .decode(cert.trim())
        .map_err(|e| SignatureError::BadCertificate(format!("not base64: {e}")))?;
    let pem = String::from_utf8(pem).map_err(|_| SignatureError::BadCertificate("not PEM text".into()))?;
    let der = certs::parse_pem(&pem)
        .map_err(|e| SignatureError::BadCertificate(e.to_string()))?
        .remove(0);
    let fingerprint = certs::fingerprint(&der);
    if !expected_fingerprints
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&fingerprint))
    {
        return Err(SignatureError::NotRegistered(fingerprint));
    }
    let public_key = rsa_public_key(&der)?;

    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::SignatureEncoding)?;
    // Signed over the header values as received, so any change to them breaks the signature.
    let record = SignatureRecord {
        method: method.to_ascii_uppercase(),
        url: url.to_owned(),
        signed_at: date,
        content_hash: hash,
        signature: STANDARD.encode(&signature),
        fingerprint: fingerprint.clone(),
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public_key)
        .verify(record.string_to_sign().as_bytes(), &signature)
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(Verified {
        fingerprint,
        signed_at,
        record,
    })
}

/// The PKCS#1 `RSAPublicKey` DER of a certificate's subject key, which is what ring verifies
/// against; any other key type is refused.
fn rsa_public_key(der: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| SignatureError::BadCertificate(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_pki;
    if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err(SignatureError::NotRsa);
    }
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    //! The openssl CLI serves as an independent implementation of the same scheme.

    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::*;

    const URL: &str = "https://dip.example.com/Messages/Submit?x=1";
    const BODY: &[u8] = b"{\"CommonBlock\":{\"S01\":{}}}";

    /// Runs openssl in `dir`, failing the test when it fails.
    fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?} failed");
        out.stdout
    }

    /// A fresh RSA 2048 key and self-signed certificate: (cert PEM, key PEM), also written
    /// to `{name}c.pem` and `{name}k.pem`.
    fn keypair(dir: &Path, name: &str) -> (String, String) {
        let (k, c) = (format!("{name}k.pem"), format!("{name}c.pem"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &k,
                "-out",
                &c,
                "-days",
                "2",
                "-subj",
                "/CN=1000000001",
            ],
        );
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read pem");
        (read(&c), read(&k))
    }

    /// The four headers signed by openssl with `{name}k.pem`, presenting `cert_pem`.
    fn openssl_headers(
        dir: &Path,
        name: &str,
        cert_pem: &str,
        method: &str,
        url: &str,
        body: &[u8],
        date: &str,
    ) -> Vec<(&'static str, String)> {
        let hash = content_hash(body);
        std::fs::write(dir.join("data.txt"), string_to_sign(method, url, date, &hash)).expect("write");
        let sig = openssl(dir, &["dgst", "-sha256", "-sign", &format!("{name}k.pem"), "data.txt"]);
        vec![
            (CONTENT_HASH, hash),
            (SIGNATURE_DATE, date.to_owned()),
            (SIGNATURE, STANDARD.encode(sig)),
            (SIGNATURE_CERTIFICATE, STANDARD.encode(cert_pem)),
        ]
    }

    fn fp(pem: &str) -> String {
        certs::fingerprint(&certs::parse_pem(pem).expect("pem")[0])
    }

    fn check(
        method: &str,
        url: &str,
        body: &[u8],
        headers: &[(&'static str, String)],
        expected: &[String],
        now: DateTime<Utc>,
    ) -> Result<Verified, SignatureError> {
        let lookup = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        verify(method, url, body, lookup, expected, now, DEFAULT_WINDOW)
    }

    fn with(headers: &[(&'static str, String)], name: &str, value: String) -> Vec<(&'static str, String)> {
        headers
            .iter()
            .map(|(k, v)| (*k, if *k == name { value.clone() } else { v.clone() }))
            .collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("date").with_timezone(&Utc)
    }

    #[test]
    fn content_hash_is_base64_sha256() {
        assert_eq!(content_hash(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(string_to_sign("post", "HTTPS://A/B", "T", "H"), "POST;https://a/b;T;H");
    }

    #[test]
    fn openssl_signature_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = keypair(dir.path(), "a");
        let date = "2025-01-02T03:04:05Z";
        let h = openssl_headers(dir.path(), "a", &cert, "POST", URL, BODY, date);
        let now = at(date) + TimeDelta::seconds(90);
        let v = check("POST", URL, BODY, &h, &[fp(&cert)], now).expect("verifies");
        assert_eq!(v.fingerprint, fp(&cert));
        assert_eq!(v.signed_at, at(date));
        // The URL is lower-cased before signing, so casing differences do not matter.
        let upper = URL.replace("dip.example.com/Messages", "DIP.EXAMPLE.COM/MESSAGES");
        check("post", &upper, BODY, &h, &[fp(&cert).to_uppercase()], now).expect("case-insensitive");
        // Upper-case URL on the signing side too.
        let h2 = openssl_headers(dir.path(), "a", &cert, "post", &upper, BODY, date);
        check("POST", URL, BODY, &h2, &[fp(&cert)], now).expect("case-insensitive signer");
    }

    #[test]
    fn our_signature_verifies_with_openssl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = keypair(dir.path(), "a");
        let signer = Signer::new(&cert, &key).expect("signer");
        assert_eq!(signer.fingerprint(), fp(&cert));
        let now = at("2025-06-30T12:00:00Z");
        let h = signer.headers("put", URL, BODY, now);
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()).expect("header");
        assert_eq!(get(SIGNATURE_DATE), "2025-06-30T12:00:00Z");
        assert_eq!(get(CONTENT_HASH), content_hash(BODY));
        assert_eq!(
            STANDARD.decode(get(SIGNATURE_CERTIFICATE)).expect("b64"),
            cert.as_bytes()
        );

        let data = string_to_sign("PUT", URL, &get(SIGNATURE_DATE), &get(CONTENT_HASH));
        std::fs::write(dir.path().join("data.txt"), data).expect("write");
        std::fs::write(
            dir.path().join("sig.bin"),
            STANDARD.decode(get(SIGNATURE)).expect("b64"),
        )
        .expect("write");
        let pubkey = openssl(dir.path(), &["x509", "-pubkey", "-noout", "-in", "ac.pem"]);
        std::fs::write(dir.path().join("pub.pem"), pubkey).expect("write");
        let out = openssl(
            dir.path(),
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                "data.txt",
            ],
        );
        assert!(String::from_utf8_lossy(&out).contains("Verified OK"));

        // And our own verifier accepts it.
        check("PUT", URL, BODY, &h, &[fp(&cert)], now).expect("verifies");
    }

    #[test]
    fn pkcs1_key_is_accepted_and_mismatched_key_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = keypair(dir.path(), "a");
        let (_, other_key) = keypair(dir.path(), "b");
        let pkcs1 = openssl(dir.path(), &["rsa", "-in", "ak.pem", "-traditional"]);
        let pkcs1 = String::from_utf8(pkcs1).expect("utf8");
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
        let signer = Signer::new(&cert, &pkcs1).expect("pkcs1 signer");
        let now = Utc::now();
        check(
            "POST",
            URL,
            BODY,
            &signer.headers("POST", URL, BODY, now),
            &[fp(&cert)],
            now,
        )
        .expect("verifies");
        assert!(matches!(Signer::new(&cert, &other_key), Err(SignatureError::BadKey(_))));
        assert!(matches!(Signer::new(&cert, "junk"), Err(SignatureError::BadKey(_))));
    }

    #[test]
    fn tampering_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = keypair(dir.path(), "a");
        let (other_cert, _) = keypair(dir.path(), "b");
        let signer = Signer::new(&cert, &key).expect("signer");
        let now = at("2025-06-30T12:00:00Z");
        let h = signer.headers("POST", URL, BODY, now);
        let reg = [fp(&cert)];
        let err = |r: Result<Verified, SignatureError>| r.expect_err("must be refused");

        assert!(matches!(
            err(check("POST", URL, b"{}", &h, &reg, now)),
            SignatureError::ContentHashMismatch
        ));
        let url2 = URL.replace("x=1", "x=2");
        assert!(matches!(
            err(check("POST", &url2, BODY, &h, &reg, now)),
            SignatureError::BadSignature
        ));
        assert!(matches!(
            err(check("PUT", URL, BODY, &h, &reg, now)),
            SignatureError::BadSignature
        ));

        // A different date, still within the window, is not the one that was signed.
        let h2 = with(&h, SIGNATURE_DATE, "2025-06-30T12:00:01Z".into());
        assert!(matches!(
            err(check("POST", URL, BODY, &h2, &reg, now)),
            SignatureError::BadSignature
        ));

        // A changed hash header no longer matches the body; with a matching body it still
        // is not what was signed.
        let h3 = with(&h, CONTENT_HASH, content_hash(b"{}"));
        assert!(matches!(
            err(check("POST", URL, BODY, &h3, &reg, now)),
            SignatureError::ContentHashMismatch
        ));
        assert!(matches!(
            err(check("POST", URL, b"{}", &h3, &reg, now)),
            SignatureError::BadSignature
        ));

        // Another valid certificate: unregistered, then registered but not the signer's key.
        let h4 = with(&h, SIGNATURE_CERTIFICATE, STANDARD.encode(&other_cert));
        let e = err(check("POST", URL, BODY, &h4, &reg, now));
        assert!(matches!(e, SignatureError::NotRegistered(_)));
        assert_eq!(e.code(), "NOT_REGISTERED");
        let both = [fp(&cert), fp(&other_cert)];
        assert!(matches!(
            err(check("POST", URL, BODY, &h4, &both, now)),
            SignatureError::BadSignature
        ));
        // The genuine certificate is refused too once it is no longer registered.
        assert!(matches!(
            err(check("POST", URL, BODY, &h, &[fp(&other_cert)], now)),
            SignatureError::NotRegistered(_)
        ));

        // Flipped signature bits.
        let sig = h
            .iter()
            .find(|(k, _)| *k == SIGNATURE)
            .map(|(_, v)| v.clone())
            .expect("sig");
        let mut bytes = STANDARD.decode(sig).expect("b64");
        bytes[10] ^= 0x01;
        let h5 = with(&h, SIGNATURE, STANDARD.encode(&bytes));
        assert!(matches!(
            err(check("POST", URL, BODY, &h5, &reg, now)),
            SignatureError::BadSignature
        ));
        let h6 = with(&h, SIGNATURE, "not base64!".into());
        assert!(matches!(
            err(check("POST", URL, BODY, &h6, &reg, now)),
            SignatureError::SignatureEncoding
        ));

        // Malformed or missing headers.
        let h7 = with(&h, SIGNATURE_CERTIFICATE, STANDARD.encode("hello"));
        assert!(matches!(
            err(check("POST", URL, BODY, &h7, &reg, now)),
            SignatureError::BadCertificate(_)
        ));
        let h8 = with(&h, SIGNATURE_DATE, "yesterday".into());
        assert!(matches!(
            err(check("POST", URL, BODY, &h8, &reg, now)),
            SignatureError::BadDate(_)
        ));
        for name in [CONTENT_HASH, SIGNATURE_DATE, SIGNATURE, SIGNATURE_CERTIFICATE] {
            let missing: Vec<_> = h.iter().filter(|(k, _)| *k != name).cloned().collect();
            assert!(matches!(
                err(check("POST", URL, BODY, &missing, &reg, now)),
                SignatureError::MissingHeader(n) if n == name
            ));
        }
    }

    #[test]
    fn non_rsa_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = keypair(dir.path(), "a");
        let signer =
            Signer::new(&cert, &std::fs::read_to_string(dir.path().join("ak.pem")).expect("key")).expect("signer");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "eck.pem",
                "-out",
                "ecc.pem",
                "-days",
                "2",
                "-subj",
                "/CN=1000000001",
            ],
        );
        let ec_cert = std::fs::read_to_string(dir.path().join("ecc.pem")).expect("read");
        let ec_key = std::fs::read_to_string(dir.path().join("eck.pem")).expect("read");
        assert!(matches!(Signer::new(&ec_cert, &ec_key), Err(SignatureError::NotRsa)));
        let now = Utc::now();
        let h = with(
            &signer.headers("POST", URL, BODY, now),
            SIGNATURE_CERTIFICATE,
            STANDARD.encode(&ec_cert),
        );
        let r = check("POST", URL, BODY, &h, &[fp(&ec_cert)], now);
        assert!(matches!(r, Err(SignatureError::NotRsa)));
    }

    #[test]
    fn stale_and_future_dates_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = keypair(dir.path(), "a");
        let signer = Signer::new(&cert, &key).expect("signer");
        let now = at("2025-06-30T12:00:00Z");
        let reg = [fp(&cert)];
        let signed = |t: DateTime<Utc>| signer.headers("POST", URL, BODY, t);
        let stale = |r: Result<Verified, SignatureError>| matches!(r, Err(SignatureError::StaleDate { .. }));

        assert!(stale(check(
            "POST",
            URL,
            BODY,
            &signed(now - TimeDelta::minutes(6)),
            &reg,
            now
        )));
        assert!(stale(check(
            "POST",
            URL,
            BODY,
            &signed(now + TimeDelta::minutes(6)),
            &reg,
            now
        )));
        check("POST", URL, BODY, &signed(now - TimeDelta::minutes(4)), &reg, now).expect("within window");
        check("POST", URL, BODY, &signed(now + TimeDelta::minutes(4)), &reg, now).expect("within window");

        // The window is a parameter.
        let h = signed(now - TimeDelta::minutes(4));
        let lookup = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        let r = verify("POST", URL, BODY, lookup, &reg, now, TimeDelta::minutes(1));
        assert!(matches!(r, Err(SignatureError::StaleDate { window_secs: 60, .. })));
    }
}
