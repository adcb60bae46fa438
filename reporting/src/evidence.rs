//! Evidence bundles: for one transaction, a file a participant or an auditor keeps and
//! checks offline, without trusting the platform's pages. It holds what the platform
//! received (the archived envelope's SHA-256, the sender's X-DIP signature with the
//! signer's certificate), how it routed the message, and every webhook call it made with
//! the outcome and the platform's own signature of the request; `evidence.json` is signed
//! as a whole with the platform's signing key. `docs/evidence.md` shows how to verify it
//! with `openssl`; the bundle carries the same steps as `verify.sh`.
//!
//! Who gets what follows the trace ([`trail::Scope`]): the sender, its DCP and operator
//! staff get every copy; a recipient gets only its own copies and its own line of the
//! routing decision. Hashes and signatures over the whole message (the archived
//! envelope, the sender's request) go only to a viewer entitled to all of its content:
//! a recipient whose copy hides fields could otherwise confirm guesses of them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use broker_core::Broker;
use broker_core::clock::rfc3339;
use broker_core::security::signature::{SignatureRecord, Signer};
use broker_core::store::{Attempt, QueueEntry, StoreError};
use dip_admin::types::{Actor, AppError};

use crate::trail::{self, Archived, Scope, Seen};

/// The format named in every bundle, for readers that check it.
pub const FORMAT: &str = "dip-evidence/1";

/// A bundle ready to download: a tar file.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `evidence-<transaction id>.tar`.
    pub file_name: String,
    /// The tar file.
    pub bytes: Vec<u8>,
}

fn unavailable(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "evidence bundle");
    AppError::Unavailable
}

/// The evidence bundle of `transaction_id` as `actor` may see it; `NotFound` when it does
/// not exist or is not the viewer's to see.
pub async fn bundle(broker: &Broker, actor: &Actor, transaction_id: &str) -> Result<Bundle, AppError> {
    let scope = Scope::of(broker, actor)?;
    let Some(seen) = trail::seen(broker, &scope, transaction_id).await.map_err(unavailable)? else {
        return Err(AppError::NotFound(format!("transaction {transaction_id}")));
    };
    let Some(signer) = broker.config().signer.clone() else {
        return Err(AppError::Conflict(
            "evidence bundles are signed with the platform's signing key, and none is configured \
             (dip serve --signing-cert and --signing-key)"
                .into(),
        ));
    };
    let evidence = gather(broker, &scope, actor, &seen).await.map_err(unavailable)?;
    Ok(pack(&signer, &seen.message.transaction_id, &evidence))
}

/// Everything the bundle states, with the files its signatures need.
struct Evidence {
    /// `evidence.json`.
    document: Value,
    /// Further files: (path in the bundle, content).
    files: Vec<(String, Vec<u8>)>,
}

async fn gather(broker: &Broker, scope: &Scope, actor: &Actor, seen: &Seen) -> Result<Evidence, StoreError> {
    let m = &seen.message;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    // Content hashes over the whole message only for a viewer entitled to all of it.
    let full_content = seen.whole || seen.copies.iter().all(|c| c.hidden.is_empty());

    let archive = if full_content {
        archive_of(broker, &m.transaction_id).await?
    } else {
        Value::Null
    };
    let receipt = match broker.messages().receipt_signature(&m.transaction_id).await? {
        None => json!({ "signed": false }),
        Some(sig) if full_content => {
            let certificate = broker.registry().certificate(&sig.fingerprint).cloned();
            let mut receipt = json!({
                "signed": true,
                "signature": signature_json(&sig),
                "files": signature_files(&mut files, "receipt/request", &sig),
            });
            if let Some(c) = certificate {
                files.push(("receipt/sender-certificate.pem".into(), c.pem.clone().into_bytes()));
                receipt["signerCertificate"] = json!({
                    "fingerprint": c.fingerprint,
                    "dipID": c.dip_id,
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "notAfter": rfc3339(c.not_after),
                    "revokedAt": c.revoked_at.map(rfc3339),
                    "file": "receipt/sender-certificate.pem",
                });
            }
            receipt
        }
        // Which certificate signed, but not the signature over the whole request.
        Some(sig) => json!({ "signed": true, "signerCertificateFingerprint": sig.fingerprint }),
    };

    let attempts = trail::attempts_of(broker, &seen.copies).await?;
    let copies: Vec<Value> = seen.copies.iter().map(|c| copy_of(c, &attempts, &mut files)).collect();
    let routing = trail::routing_seen(scope, m, seen.whole).map_err(|e| StoreError::Corrupt(e.to_string()))?;

    let config = broker.config();
    let document = json!({
        "format": FORMAT,
        "generatedAt": rfc3339(broker_core::clock::now_micros()),
        "generatedFor": actor.name,
        "viewerSees": if seen.whole { "whole message" } else { "own copies" },
        "platform": {
            "dipID": config.platform_dip_id,
            "environment": config.environment,
            "signingCertificateFingerprint": config.signer.as_ref().map(|s| s.fingerprint().to_owned()),
            "signingCertificateFile": "platform-certificate.pem",
        },
        "message": {
            "transactionID": m.transaction_id,
            "senderDIPID": m.sender_dip_id,
            "senderUniqueReference": m.sender_unique_reference,
            "dcpDIPID": m.dcp_dip_id,
            "interfaceID": m.interface_id,
            "schemaVersion": m.schema_version,
            "eventCode": m.event_code,
            "senderRole": m.sender_role,
            "mpan": m.mpan,
            "initialCorrelationID": m.correlation_id,
            "receivedAt": rfc3339(m.received_at),
        },
        "archive": archive,
        "receipt": receipt,
        "routing": routing,
        "copies": copies,
    });
    Ok(Evidence { document, files })
}

/// The archived envelope's SHA-256 (of the envelope as archived, opened when sealed at
/// rest), or why there is none.
async fn archive_of(broker: &Broker, transaction_id: &str) -> Result<Value, StoreError> {
    Ok(match trail::archived(broker, transaction_id).await? {
        Archived::Gone => json!({ "archived": false, "note": "no longer archived: its retention has ended" }),
        Archived::Opened { plain, sealed } => json!({
            "archived": true,
            "sealedAtRest": sealed,
            "envelopeSha256": hex::encode(Sha256::digest(plain.as_bytes())),
            "envelopeBytes": plain.len(),
        }),
        Archived::Unopened { sealed } => json!({
            "archived": true,
            "sealedAtRest": sealed,
            "note": "sealed with a data key this node does not hold",
        }),
    })
}

/// One copy with its webhook calls; each signed call's signature goes into two files.
fn copy_of(c: &QueueEntry, attempts: &[Attempt], files: &mut Vec<(String, Vec<u8>)>) -> Value {
    let calls: Vec<Value> = attempts
        .iter()
        .filter(|a| a.queue_id == c.queue_id && a.seq == c.seq)
        .enumerate()
        .map(|(n, a)| {
            let mut call = json!({
                "at": rfc3339(a.at),
                "outcome": a.outcome,
                "durationMs": a.duration_us as f64 / 1000.0,
                "answer": a.call.answer,
                "signature": a.call.signature.as_ref().map(signature_json),
            });
            if let Some(sig) = &a.call.signature {
                let stem = format!("attempts/{}-{}-{}", file_safe(&c.queue_id), c.seq, n + 1);
                call["files"] = signature_files(files, &stem, sig);
            }
            call
        })
        .collect();
    json!({
        "transactionID": c.transaction_id,
        "replayID": c.replay_id,
        "recipientDIPID": c.recipient_dip_id,
        "recipientRole": c.recipient_role,
        "queue": c.queue_id,
        "position": c.seq,
        "state": trail::copy_state(c),
        "enqueuedAt": rfc3339(c.enqueued_at),
        "settledAt": c.settled_at.map(rfc3339),
        "hiddenFields": c.hidden,
        "webhookCalls": calls,
    })
}

/// A stored signature with the exact text it covers.
fn signature_json(sig: &SignatureRecord) -> Value {
    let mut v = json!(sig);
    v["stringToSign"] = json!(sig.string_to_sign());
    v
}

/// Writes a signature's signed text and its raw signature as files under `stem`; returns
/// their names.
fn signature_files(files: &mut Vec<(String, Vec<u8>)>, stem: &str, sig: &SignatureRecord) -> Value {
    use base64::Engine;
    let text = format!("{stem}.string-to-sign.txt");
    let raw = format!("{stem}.signature.bin");
    files.push((text.clone(), sig.string_to_sign().into_bytes()));
    files.push((
        raw.clone(),
        base64::engine::general_purpose::STANDARD
            .decode(&sig.signature)
            .unwrap_or_default(),
    ));
    json!({ "stringToSign": text, "signature": raw })
}

/// A queue id (`1000000001/default`) as part of a file name.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// The tar file: `evidence.json`, its signature, the platform's certificate, the files the
/// signatures need, and `README.txt` and `verify.sh` saying how to check them.
fn pack(signer: &Signer, transaction_id: &str, evidence: &Evidence) -> Bundle {
    let document = serde_json::to_vec_pretty(&evidence.document).expect("JSON values serialise");
    let dir = format!("evidence-{}", file_safe(transaction_id));
    let mut tar = Tar::default();
    tar.add(&format!("{dir}/README.txt"), README.as_bytes(), 0o644);
    tar.add(&format!("{dir}/verify.sh"), VERIFY.as_bytes(), 0o755);
    tar.add(&format!("{dir}/evidence.json"), &document, 0o644);
    tar.add(&format!("{dir}/evidence.json.sig"), &signer.sign(&document), 0o644);
    tar.add(
        &format!("{dir}/platform-certificate.pem"),
        signer.cert_pem().as_bytes(),
        0o644,
    );
    for (name, content) in &evidence.files {
        tar.add(&format!("{dir}/{name}"), content, 0o644);
    }
    Bundle {
        file_name: format!("{dir}.tar"),
        bytes: tar.finish(),
    }
}

const README: &str = include_str!("evidence/README.txt");
const VERIFY: &str = include_str!("evidence/verify.sh");

/// A POSIX ustar archive of regular files, built in memory (bundles are small).
#[derive(Default)]
struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    const BLOCK: usize = 512;

    /// Adds a file; `name` is at most 100 bytes (every name here is far shorter).
    fn add(&mut self, name: &str, content: &[u8], mode: u32) {
        let mut header = [0u8; Self::BLOCK];
        let field = |header: &mut [u8; Self::BLOCK], at: usize, value: &[u8]| {
            header[at..at + value.len()].copy_from_slice(value);
        };
        let name = name.as_bytes();
        field(&mut header, 0, &name[..name.len().min(100)]);
        field(&mut header, 100, format!("{mode:07o}\0").as_bytes());
        field(&mut header, 108, b"0000000\0");
        field(&mut header, 116, b"0000000\0");
        field(&mut header, 124, format!("{:011o}\0", content.len()).as_bytes());
        let now = broker_core::clock::now_micros() / 1_000_000;
        field(&mut header, 136, format!("{now:011o}\0").as_bytes());
        field(&mut header, 148, b"        ");
        header[156] = b'0';
        field(&mut header, 257, b"ustar\0");
        field(&mut header, 263, b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(content);
        let padding = (Self::BLOCK - content.len() % Self::BLOCK) % Self::BLOCK;
        self.bytes.resize(self.bytes.len() + padding, 0);
    }

    /// The archive with its end marker (two empty blocks).
    fn finish(mut self) -> Vec<u8> {
        self.bytes.resize(self.bytes.len() + 2 * Self::BLOCK, 0);
        self.bytes
    }
}
