//! Evidence bundles on both stores: what each viewer's bundle holds, and that openssl (an
//! implementation independent of ours) verifies every signature in it: the platform's
//! over the document, the sender's over its request, the platform's over each webhook.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_core::BrokerConfig;
use broker_core::mock_recipient::{MockRecipient, Reply};
use broker_core::security::signature::Signer;
use dip_admin::types::{Actor, AppError, PortalRole};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::{evidence, trail};
use dip_testkit::*;
use serde_json::{Value, json};

use crate::actor;

/// The bundle of `tx` for `who`, unpacked by `tar` into a new folder; with its document.
fn unpack(bundle: &evidence::Bundle) -> (tempfile::TempDir, std::path::PathBuf, Value) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(&bundle.file_name);
    std::fs::write(&file, &bundle.bytes).expect("write");
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .current_dir(dir.path())
        .status()
        .expect("tar")
        .success();
    assert!(ok, "tar reads the bundle");
    let root = dir.path().join(bundle.file_name.trim_end_matches(".tar"));
    let document: Value = serde_json::from_slice(&std::fs::read(root.join("evidence.json")).expect("evidence.json"))
        .expect("evidence.json is JSON");
    (dir, root, document)
}

/// Runs the bundle's `verify.sh`: (success, output).
fn verify(root: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .arg("verify.sh")
        .current_dir(root)
        .output()
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// openssl itself, not our script: `openssl dgst -sha256 -verify` of `file` under the
/// public key of `cert`.
fn openssl_verifies(root: &Path, cert: &str, signature: &str, file: &str) -> bool {
    openssl(
        root,
        &["x509", "-in", cert, "-pubkey", "-noout", "-out", "check-key.pem"],
    );
    Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "check-key.pem",
            "-signature",
            signature,
            file,
        ])
        .current_dir(root)
        .output()
        .expect("openssl")
        .status
        .success()
}

async fn bundle(s: &TestServer, who: &Actor, tx: &str) -> Result<evidence::Bundle, AppError> {
    evidence::bundle(&s.broker, who, tx).await
}

async fn wait_settled(s: &TestServer, tx: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.db.store.message_deliveries(tx).await.unwrap()[0].state != "delivered" {
        assert!(Instant::now() < deadline, "not delivered in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_bundle_holds_receipt_routing_and_every_call_and_openssl_verifies_it(db: Db) {
    let (platform_cert, platform_key) = openssl_identity("0000000000");
    let platform = Signer::new(&platform_cert, &platform_key).expect("platform signer");
    let platform_fp = platform.fingerprint().to_owned();
    let config = BrokerConfig {
        signer: Some(Arc::new(platform)),
        ..Default::default()
    };
    let s = TestServer::configured(db, config, fast_delivery()).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    sink.script([Reply::Json(503, json!({ "error": "busy, try later" }))]);
    s.fast_retries("IF-031").await;
    let (sender_cert, sender_key) = openssl_identity(SUP1);
    let sender_fp = s.register_certificate(&sender_cert, SUP1).await;
    let signer = Signer::new(&sender_cert, &sender_key).expect("sender signer");
    let (status, reply) = s
        .post_signed(&s.key(SUP1), &signer, &json!([if031("evidence-1")]))
        .await;
    assert_eq!(status, 202, "{reply}");
    let tx = reply["results"][0]["transactionID"].as_str().unwrap().to_owned();
    wait_settled(&s, &tx).await;

    // The sender's bundle: everything, and every signature verifies.
    let sender = actor(Some(SUP1), PortalRole::MessageUser);
    let b = bundle(&s, &sender, &tx).await.expect("sender's bundle");
    assert_eq!(b.file_name, format!("evidence-{tx}.tar"));
    let (_dir, root, doc) = unpack(&b);
    assert_eq!(doc["format"], "dip-evidence/1");
    assert_eq!(doc["message"]["transactionID"], json!(tx));
    assert_eq!(doc["platform"]["signingCertificateFingerprint"], json!(platform_fp));
    let archived = s.db.store.archived_envelope(&tx).await.unwrap().unwrap();
    assert_eq!(
        doc["archive"]["envelopeSha256"],
        json!(openssl_sha256(&root, archived.as_bytes()))
    );
    assert_eq!(doc["receipt"]["signed"], true);
    assert_eq!(doc["receipt"]["signature"]["fingerprint"], json!(sender_fp));
    assert_eq!(doc["receipt"]["signerCertificate"]["dipID"], json!(SUP1));
    assert_eq!(doc["routing"]["recipients"][0]["dipID"], json!(REGS_N));
    let copies = doc["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["state"], "delivered");
    let calls = copies[0]["webhookCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "HTTP 503");
    assert!(
        calls[0]["answer"].as_str().unwrap().contains("busy, try later"),
        "{calls:?}"
    );
    assert_eq!(calls[1]["outcome"], "HTTP 200");
    assert_eq!(calls[1]["answer"], "");
    for call in calls {
        assert_eq!(call["signature"]["fingerprint"], json!(platform_fp));
        assert_eq!(call["signature"]["url"], json!(sink.url()));
    }
    // The content hash the platform signed is the hash of the body the recipient got.
    let delivered = sink.delivered();
    let raw = delivered[0].raw.as_ref().expect("raw body");
    assert_eq!(
        calls[1]["signature"]["contentHash"],
        json!(broker_core::security::signature::content_hash(raw))
    );

    let (ok, out) = verify(&root);
    assert!(ok, "verify.sh: {out}");
    assert_eq!(out.matches("OK ").count(), 4, "document, request, two calls: {out}");
    assert!(openssl_verifies(
        &root,
        "platform-certificate.pem",
        "evidence.json.sig",
        "evidence.json"
    ));
    assert!(openssl_verifies(
        &root,
        "receipt/sender-certificate.pem",
        "receipt/request.signature.bin",
        "receipt/request.string-to-sign.txt"
    ));

    // Tampering with any of it is caught.
    let original = std::fs::read_to_string(root.join("evidence.json")).unwrap();
    std::fs::write(root.join("evidence.json"), original.replace("HTTP 503", "HTTP 200")).unwrap();
    let (ok, out) = verify(&root);
    assert!(!ok && out.contains("is not signed by"), "{out}");
    std::fs::write(root.join("evidence.json"), &original).unwrap();
    std::fs::write(
        root.join("receipt/request.string-to-sign.txt"),
        "POST;https://elsewhere;x;y",
    )
    .unwrap();
    let (ok, out) = verify(&root);
    assert!(!ok && out.contains("is not the text evidence.json states"), "{out}");

    // The trace shows the same: the receipt signature and the recipient's answer.
    let analytics = Analytics::new(s.db.store.clone(), Sink::Embedded);
    let t = trail::trace(&s.broker, &analytics, &sender, &tx).await.unwrap();
    let signed = t.signed_with.expect("signed");
    assert_eq!(signed.fingerprint, sender_fp);
    let failed = t.copies[0]
        .steps
        .iter()
        .find(|s| s.kind == "failed_attempt")
        .expect("attempt");
    assert!(
        failed.answer.as_deref().unwrap_or_default().contains("busy"),
        "{failed:?}"
    );

    // Operator staff and the recipient get it too; others are told it does not exist.
    for who in [
        actor(None, PortalRole::Auditor),
        actor(Some(REGS_N), PortalRole::Auditor),
    ] {
        let b = bundle(&s, &who, &tx).await.expect("entitled");
        let (_dir, root, doc) = unpack(&b);
        assert_eq!(doc["copies"].as_array().unwrap().len(), 1);
        let (ok, out) = verify(&root);
        assert!(ok, "{out}");
    }
    for who in [
        actor(Some(LDSO_P), PortalRole::Auditor),
        actor(Some(DCP), PortalRole::MessageUser),
    ] {
        assert!(matches!(bundle(&s, &who, &tx).await, Err(AppError::NotFound(_))));
    }
    assert!(matches!(
        bundle(&s, &sender, "no-such-transaction").await,
        Err(AppError::NotFound(_))
    ));
    assert_eq!(
        bundle(&s, &actor(Some(SUP1), PortalRole::UserAdmin), &tx)
            .await
            .unwrap_err(),
        AppError::Forbidden
    );
}

async fn a_recipient_with_hidden_fields_gets_only_its_own_copy_and_no_whole_message_hashes(db: Db) {
    let (platform_cert, platform_key) = openssl_identity("0000000000");
    let config = BrokerConfig {
        signer: Some(Arc::new(Signer::new(&platform_cert, &platform_key).unwrap())),
        ..Default::default()
    };
    let s = TestServer::configured(db, config, fast_delivery()).await;
    // IF-909 from MS_KEY reaches REGS_N and every supplier; suppliers may not see three
    // of its fields.
    let (cert, key) = openssl_identity(MS_KEY);
    let fp = s.register_certificate(&cert, MS_KEY).await;
    let signer = Signer::new(&cert, &key).unwrap();
    let (status, reply) = s.post_signed(&s.key(MS_KEY), &signer, &json!([if909("ev-909")])).await;
    assert_eq!(status, 202, "{reply}");
    let tx = reply["results"][0]["transactionID"].as_str().unwrap().to_owned();

    let b = bundle(&s, &actor(Some(SUP1), PortalRole::MessageUser), &tx)
        .await
        .unwrap();
    let (_dir, root, doc) = unpack(&b);
    let copies = doc["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["recipientDIPID"], json!(SUP1));
    assert_eq!(copies[0]["hiddenFields"].as_array().unwrap().len(), 3);
    assert_eq!(doc["viewerSees"], "own copies");
    assert_eq!(
        doc["routing"]["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dipID"].clone())
            .collect::<Vec<_>>(),
        [json!(SUP1)]
    );
    // Which certificate signed, but nothing hashed over fields it may not see.
    assert_eq!(doc["archive"], Value::Null);
    assert_eq!(
        doc["receipt"],
        json!({ "signed": true, "signerCertificateFingerprint": fp })
    );
    assert!(!root.join("receipt").exists());
    let body = String::from_utf8_lossy(&b.bytes).to_string();
    for other in [SUP2, SUP3] {
        assert!(
            !body.contains(other),
            "another recipient ({other}) leaks into the bundle"
        );
    }
    let (ok, out) = verify(&root);
    assert!(ok, "{out}");

    // The sender's bundle of the same message has all four copies.
    let b = bundle(&s, &actor(Some(MS_KEY), PortalRole::Auditor), &tx)
        .await
        .unwrap();
    let (_dir, _root, doc) = unpack(&b);
    assert_eq!(doc["copies"].as_array().unwrap().len(), 4);
    assert!(doc["archive"]["envelopeSha256"].is_string());
}

async fn without_a_signing_key_a_bundle_is_refused_clearly(db: Db) {
    let s = TestServer::start(db).await;
    let (status, reply) = s.post(&s.key(SUP1), &json!([if031("unsigned-platform")])).await;
    assert_eq!(status, 202, "{reply}");
    let tx = reply["results"][0]["transactionID"].as_str().unwrap();
    match bundle(&s, &actor(Some(SUP1), PortalRole::MessageUser), tx).await {
        Err(AppError::Conflict(why)) => assert!(why.contains("--signing-key"), "{why}"),
        other => panic!("expected a conflict, got {:?}", other.map(|b| b.file_name)),
    }
    // Existence is not told before the key is missing.
    assert!(matches!(
        bundle(&s, &actor(Some(LDSO_P), PortalRole::Auditor), tx).await,
        Err(AppError::NotFound(_))
    ));
}

/// Hex SHA-256 of `data` by openssl.
fn openssl_sha256(dir: &Path, data: &[u8]) -> String {
    let file = dir.join("hash-input");
    std::fs::write(&file, data).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(&file)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

both_stores!(
    a_bundle_holds_receipt_routing_and_every_call_and_openssl_verifies_it,
    a_recipient_with_hidden_fields_gets_only_its_own_copy_and_no_whole_message_hashes,
    without_a_signing_key_a_bundle_is_refused_clearly,
);
