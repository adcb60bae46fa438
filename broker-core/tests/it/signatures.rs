//! X-DIP signatures on the wire (`WIRE.md`), on SQLite and PostgreSQL: inbound requests
//! signed with a participant's registered certificate are accepted, any tampering or an
//! unregistered or revoked certificate is refused, channels can require signatures, and
//! every webhook carries the platform's signature. Keys and certificates come from the
//! `openssl` command line, an implementation independent of ours.

use dip_testkit::*;

use std::time::Duration;

use broker_core::mock_recipient::MockRecipient;
use broker_core::security::signature::{self, Signer};
use serde_json::{Value, json};

fn body_of(reference: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([if031(reference)])).expect("json")
}

async fn signed_requests_verified(db: Db) {
    let s = TestServer::start(db).await;
    let (cert, key) = openssl_identity(SUP1);
    let fp = s.register_certificate(&cert, SUP1).await;
    let signer = Signer::new(&cert, &key).expect("signer");
    let url = format!("{}/api/v1/messages", s.base);
    let sup1 = s.key(SUP1);
    let now = || chrono::Utc::now();

    let body = body_of("signed-1");
    let (status, reply) = s
        .post_with_headers(&sup1, &body, &signer.headers("POST", &url, &body, now()))
        .await;
    assert_eq!(status, 202, "{reply}");

    // Tampering: the body, the URL signed, the date, the certificate.
    let refused = |reply: &Value, code: &str| {
        assert_eq!(reply["errors"][0]["code"], "SIGNATURE_INVALID", "{reply}");
        assert!(
            reply["errors"][0]["message"].as_str().unwrap().starts_with(code),
            "{reply}"
        );
    };
    let headers = signer.headers("POST", &url, &body_of("original"), now());
    let (status, reply) = s.post_with_headers(&sup1, &body_of("changed"), &headers).await;
    assert_eq!(status, 401);
    refused(&reply, "CONTENT_HASH_MISMATCH");
    let body = body_of("elsewhere");
    let headers = signer.headers("POST", "https://other.example/api/v1/messages", &body, now());
    let (status, reply) = s.post_with_headers(&sup1, &body, &headers).await;
    assert_eq!(status, 401);
    refused(&reply, "SIGNATURE_INVALID");
    let stale = signer.headers("POST", &url, &body, now() - chrono::TimeDelta::minutes(10));
    let (status, reply) = s.post_with_headers(&sup1, &body, &stale).await;
    assert_eq!(status, 401);
    refused(&reply, "SIGNATURE_DATE_STALE");
    // A valid signature by a certificate not registered to the caller.
    let (other_cert, other_key) = openssl_identity(SUP2);
    s.register_certificate(&other_cert, SUP2).await;
    let other = Signer::new(&other_cert, &other_key).expect("signer");
    let (status, reply) = s
        .post_with_headers(&sup1, &body, &other.headers("POST", &url, &body, now()))
        .await;
    assert_eq!(status, 401);
    refused(&reply, "NOT_REGISTERED");
    // Revoked: refused from then on.
    assert!(s.broker.store().revoke_certificate(&fp, 1).await.expect("revoke"));
    s.broker.reload().await.expect("reload");
    let body = body_of("after-revocation");
    let (status, reply) = s
        .post_with_headers(&sup1, &body, &signer.headers("POST", &url, &body, now()))
        .await;
    assert_eq!(status, 401);
    refused(&reply, "NOT_REGISTERED");
}

async fn channels_can_require_signatures(db: Db) {
    let s = TestServer::start(db).await;
    let mut channel = s.broker.registry().channel("IF-031").expect("channel").channel.clone();
    channel.signature_required = true;
    s.broker.store().put_channel(&channel).await.expect("put");
    s.broker.reload().await.expect("reload");
    let (cert, key) = openssl_identity(SUP1);
    s.register_certificate(&cert, SUP1).await;

    let (status, reply) = s.post(&s.key(SUP1), &json!([if031("unsigned")])).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["results"][0]["errors"][0]["code"], "SIGNATURE_REQUIRED");
    let body = body_of("signed");
    let url = format!("{}/api/v1/messages", s.base);
    let headers = Signer::new(&cert, &key)
        .unwrap()
        .headers("POST", &url, &body, chrono::Utc::now());
    let (status, reply) = s.post_with_headers(&s.key(SUP1), &body, &headers).await;
    assert_eq!(status, 202, "{reply}");
}

async fn webhooks_are_signed_by_the_platform(db: Db) {
    let (cert, key) = openssl_identity("0000000000");
    let platform = Signer::new(&cert, &key).expect("signer");
    let fingerprint = platform.fingerprint().to_owned();
    let config = broker_core::broker::BrokerConfig {
        signer: Some(std::sync::Arc::new(platform)),
        ..Default::default()
    };
    let s = TestServer::configured(db, config, fast_delivery()).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    let (status, _) = s.post(&s.key(SUP1), &json!([if031("to-be-signed")])).await;
    assert_eq!(status, 202);
    let got = sink.wait_delivered(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let header = |n: &str| r.dip_headers.get(&n.to_ascii_lowercase()).cloned();
    let raw = r.raw.as_ref().expect("raw body");
    let verified = signature::verify(
        "POST",
        &sink.url(),
        raw,
        header,
        std::slice::from_ref(&fingerprint),
        chrono::Utc::now(),
        signature::DEFAULT_WINDOW,
    )
    .expect("the recipient can verify the platform's signature");
    assert_eq!(verified.fingerprint, fingerprint);
}

/// Security pattern 3: the CustomBlock is a JWE from sender to recipient that the platform
/// cannot read; it is relayed and archived exactly as received, and its requests must be
/// signed.
async fn end_to_end_payload_relayed_unchanged(db: Db) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut s = TestServer::start(db).await;
    s.delivery = Some(broker_core::delivery::start(s.broker.clone(), fast_delivery()).expect("delivery"));
    let mut channel = s.broker.registry().channel("IF-031").expect("channel").channel.clone();
    channel.security_pattern = 3;
    s.broker.store().put_channel(&channel).await.expect("put");
    s.broker.reload().await.expect("reload");
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    let (cert, key) = openssl_identity(SUP1);
    s.register_certificate(&cert, SUP1).await;
    let signer = Signer::new(&cert, &key).expect("signer");

    let random = |n: usize| (0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>();
    let jwe = format!(
        "{}..{}.{}.{}",
        b64(br#"{"alg":"ECDH-ES","enc":"A256GCM","kid":"regs-2026"}"#),
        b64(&random(12)),
        b64(&random(900)),
        b64(&random(16))
    );
    let mut it = if031("e2e-1");
    set(&mut it, "/payload/CustomBlock", json!(jwe));
    let (status, reply) = s.post_signed(&s.key(SUP1), &signer, &json!([it])).await;
    assert_eq!(status, 202, "{reply}");
    let got = sink.wait_delivered(1, Duration::from_secs(15)).await;
    assert_eq!(
        got[0].body.as_ref().unwrap()[0]["payload"]["CustomBlock"],
        json!(jwe),
        "bytes unchanged"
    );
    let tx = reply["results"][0]["transactionID"].as_str().unwrap();
    let archived = s.broker.store().archived_envelope(tx).await.unwrap().unwrap();
    assert!(archived.contains(&jwe), "archived as received");

    // Anything but a compact JWE is refused, and so is an unsigned request.
    let mut clear = if031("e2e-2");
    set(&mut clear, "/payload/CustomBlock/mpanCore", json!("1600001000020"));
    let (status, reply) = s.post_signed(&s.key(SUP1), &signer, &json!([clear])).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["results"][0]["errors"][0]["code"], "SCHEMA_VIOLATION");
    let (status, reply) = s.post(&s.key(SUP1), &json!([it])).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["results"][0]["errors"][0]["code"], "SIGNATURE_REQUIRED");
}

/// Security pattern 2: the sender encrypts the CustomBlock to the platform; the platform
/// decrypts, validates, archives it sealed, and re-encrypts to each recipient's own
/// certificate (after obfuscation), so each reads only what is meant for it.
async fn pattern_2_reencrypted_per_recipient(db: Db) {
    use broker_core::security::authority::Authority;
    use broker_core::security::jwe::{self, Decrypter};
    use broker_core::security::vault::{Vault, is_sealed};
    let ca = Authority::generate("DEV").expect("authority");
    let platform = ca.issue_client("0000000000", 30, None).expect("platform");
    let config = broker_core::BrokerConfig {
        decrypter: Some(std::sync::Arc::new(
            Decrypter::from_pem(platform.key_pem.as_deref().unwrap()).unwrap(),
        )),
        vault: Some(std::sync::Arc::new(
            Vault::from_text(&format!("k1 {}\n", {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            }))
            .unwrap(),
        )),
        ..Default::default()
    };
    let mut s = TestServer::start_with(db, config).await;
    s.delivery = Some(broker_core::delivery::start(s.broker.clone(), fast_delivery()).expect("delivery"));
    let mut channel = s.broker.registry().channel("IF-909").expect("channel").channel.clone();
    channel.security_pattern = 2;
    s.broker.store().put_channel(&channel).await.expect("put");
    s.broker.reload().await.expect("reload");

    // Two recipients with webhooks and certificates of their own.
    let mut recipients = Vec::new();
    for dip in [REGS_N, SUP2] {
        let issued = ca.issue_client(dip, 30, None).expect("issue");
        s.register_certificate(&issued.cert_pem, dip).await;
        let sink = MockRecipient::start(true).await.expect("sink");
        s.endpoint(dip, "default", Some(sink.url()), &[]).await;
        recipients.push((
            dip,
            Decrypter::from_pem(issued.key_pem.as_deref().unwrap()).unwrap(),
            sink,
        ));
    }
    let (cert, key) = openssl_identity(MS_KEY);
    s.register_certificate(&cert, MS_KEY).await;
    let signer = Signer::new(&cert, &key).expect("signer");

    let mut it = if909("p2-1");
    let sealed_for_platform = jwe::encrypt(if909_block().to_string().as_bytes(), &platform.cert_pem).unwrap();
    set(&mut it, "/payload/CustomBlock", json!(sealed_for_platform));
    let body = serde_json::to_vec(&json!([it])).unwrap();
    let url = format!("{}/api/v1/messages", s.base);
    let (status, reply) = s
        .post_with_headers(
            &s.key(MS_KEY),
            &body,
            &signer.headers("POST", &url, &body, chrono::Utc::now()),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    let tx = reply["results"][0]["transactionID"].as_str().unwrap();
    let archived = s.broker.store().archived_envelope(tx).await.unwrap().unwrap();
    assert!(is_sealed(&archived) && !archived.contains("KYST"), "archived sealed");

    let mut received = Vec::new();
    for (dip, _, sink) in &recipients {
        let got = sink.wait_delivered(1, Duration::from_secs(15)).await;
        assert_eq!(got.len(), 1, "{dip}");
        let custom = got[0].body.as_ref().unwrap()[0]["payload"]["CustomBlock"].clone();
        let jwe = custom
            .as_str()
            .unwrap_or_else(|| panic!("{dip} got a clear CustomBlock: {custom}"))
            .to_owned();
        assert!(!jwe.contains("KYST"));
        received.push(jwe);
    }
    // Each opens its own: the registration service the whole block, the supplier the
    // obfuscated one; neither opens the other's.
    let open = |d: &Decrypter, jwe: &str| -> Option<Value> {
        d.decrypt(jwe).ok().map(|p| serde_json::from_slice(&p).unwrap())
    };
    assert_eq!(open(&recipients[0].1, &received[0]), Some(if909_block()));
    let supplier = open(&recipients[1].1, &received[1]).expect("supplier opens its copy");
    assert_eq!(supplier["supplierId"], "AURA");
    assert!(supplier.get("meteringServiceId").is_none(), "{supplier}");
    assert!(open(&recipients[0].1, &received[1]).is_none() && open(&recipients[1].1, &received[0]).is_none());

    // A CustomBlock not encrypted to the platform is refused.
    let (status, reply) = s
        .post_signed(&s.key(MS_KEY), &signer, &json!([if909("p2-clear")]))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["results"][0]["errors"][0]["code"], "DECRYPTION_FAILED");

    // A NUL inside the encryption is refused as one outside would be, at its place.
    let mut block = if909_block();
    block["contractReferenceMeteringService"] = json!("MS\u{0}42");
    let mut it = if909("p2-nul");
    let sealed = jwe::encrypt(block.to_string().as_bytes(), &platform.cert_pem).unwrap();
    set(&mut it, "/payload/CustomBlock", json!(sealed));
    let (status, reply) = s.post_signed(&s.key(MS_KEY), &signer, &json!([it])).await;
    assert_eq!(status, 400, "{reply}");
    let error = &reply["results"][0]["errors"][0];
    assert_eq!(error["code"], "NUL_CHARACTER", "{reply}");
    assert_eq!(error["path"], "/payload/CustomBlock/contractReferenceMeteringService");
}

/// With trusted authorities configured, a signing certificate must chain to one of them:
/// a self-signed one is refused even when registered.
async fn signing_certificates_must_chain_to_a_trusted_authority(db: Db) {
    use broker_core::security::authority::Authority;
    let ca = Authority::generate("DEV").expect("authority");
    let config = broker_core::BrokerConfig {
        trusted: Some(broker_core::security::tls::trust(&ca.cert_pem()).expect("trust")),
        ..Default::default()
    };
    let s = TestServer::start_with(db, config).await;
    let url = format!("{}/api/v1/messages", s.base);
    let body = body_of("chain-1");

    let (self_signed, self_key) = openssl_identity(SUP1);
    s.register_certificate(&self_signed, SUP1).await;
    let headers = Signer::new(&self_signed, &self_key)
        .unwrap()
        .headers("POST", &url, &body, chrono::Utc::now());
    let (status, reply) = s.post_with_headers(&s.key(SUP1), &body, &headers).await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("UNTRUSTED_CERTIFICATE"),
        "{reply}"
    );

    // The same kind of RSA key, certified by the trusted authority from a CSR.
    let (key, csr) = openssl_csr("/CN=x");
    let issued = ca.issue_from_csr(&csr, SUP1, 30).expect("issue");
    s.register_certificate(&issued.cert_pem, SUP1).await;
    let headers = Signer::new(&issued.cert_pem, &key)
        .unwrap()
        .headers("POST", &url, &body, chrono::Utc::now());
    let (status, reply) = s.post_with_headers(&s.key(SUP1), &body, &headers).await;
    assert_eq!(status, 202, "{reply}");
}

async fn participants_can_require_signatures(db: Db) {
    let s = TestServer::start(db).await;
    let mut sup2 = s
        .broker
        .store()
        .participants()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.dip_id == SUP2)
        .expect("SUP2");
    sup2.signatures_required = true;
    s.broker.store().put_participant(&sup2).await.expect("put");
    s.broker.reload().await.expect("reload");
    let as_sup2 = |reference: &str| {
        let mut it = if031(reference);
        set(&mut it, "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
        it
    };
    let (status, reply) = s.post(&s.key(SUP2), &json!([as_sup2("unsigned")])).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["results"][0]["errors"][0]["code"], "SIGNATURE_REQUIRED");
    // Others are not affected.
    let (status, reply) = s.post(&s.key(SUP1), &json!([if031("sup1-unsigned")])).await;
    assert_eq!(status, 202, "{reply}");
    let (cert, key) = openssl_identity(SUP2);
    s.register_certificate(&cert, SUP2).await;
    let body = serde_json::to_vec(&json!([as_sup2("signed")])).unwrap();
    let url = format!("{}/api/v1/messages", s.base);
    let headers = Signer::new(&cert, &key)
        .unwrap()
        .headers("POST", &url, &body, chrono::Utc::now());
    let (status, reply) = s.post_with_headers(&s.key(SUP2), &body, &headers).await;
    assert_eq!(status, 202, "{reply}");
}

both_stores!(
    participants_can_require_signatures,
    signing_certificates_must_chain_to_a_trusted_authority,
    pattern_2_reencrypted_per_recipient,
    end_to_end_payload_relayed_unchanged,
    signed_requests_verified,
    channels_can_require_signatures,
    webhooks_are_signed_by_the_platform,
);
