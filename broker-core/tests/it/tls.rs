//! The participant API over TLS with client certificates, with real handshakes and
//! certificates made by the built-in authority (and by `openssl` for a CSR), on SQLite
//! and PostgreSQL: an accepted client, an unknown authority, an expired, a revoked and an
//! unregistered certificate, a certificate of one participant used to send as another,
//! rollover with two active certificates, environment separation, and API keys switched
//! off.

use dip_testkit::*;

use std::future::pending;

use broker_core::BrokerConfig;
use broker_core::security::authority::{Authority, Issued};
use broker_core::security::certs;
use broker_core::security::tls::{self, TlsSettings};
use serde_json::{Value, json};

/// A platform serving its API over TLS; the authority issues every certificate.
struct TlsPlatform {
    s: TestServer,
    ca: Authority,
    base: String,
}

impl TlsPlatform {
    async fn start(db: Db, require_client_cert: bool, api_keys: bool) -> Self {
        let s = TestServer::start_with(
            db,
            BrokerConfig {
                api_keys,
                ..BrokerConfig::default()
            },
        )
        .await;
        let ca = Authority::generate("DEV").expect("authority");
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .expect("server certificate");
        let settings = TlsSettings {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem.expect("key"),
            client_ca_pem: ca.cert_pem(),
            require_client_cert,
        };
        let config = tls::server_config(&settings).expect("TLS config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("https://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let app = broker_core::api::router(s.broker.clone());
        tokio::spawn(tls::serve(listener, config, app, pending()));
        Self { s, ca, base }
    }

    /// Issues a client certificate for `dip_id` and registers it for `environment`.
    async fn enrol(&self, dip_id: &str, environment: &str) -> Issued {
        let issued = self.ca.issue_client(dip_id, 30, None).expect("issue");
        self.register(&issued.cert_pem, dip_id, environment).await;
        issued
    }

    async fn register(&self, pem: &str, dip_id: &str, environment: &str) -> String {
        let now = broker_core::clock::now_micros();
        let record = certs::record(pem, dip_id, environment, "issued", now).expect("record");
        self.s.broker.store().put_certificate(&record).await.expect("put");
        self.s.broker.reload().await.expect("reload");
        record.fingerprint
    }

    async fn revoke(&self, fingerprint: &str) {
        let now = broker_core::clock::now_micros();
        assert!(
            self.s
                .broker
                .store()
                .revoke_certificate(fingerprint, now)
                .await
                .expect("revoke")
        );
        self.s.broker.reload().await.expect("reload");
    }

    /// A client trusting the authority, presenting `identity` (certificate and key PEM).
    fn client(&self, identity: Option<(&str, &str)>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.cert_pem().as_bytes()).expect("ca"));
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}{key}");
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        b.build().expect("client")
    }

    /// POSTs one IF-031 from `sender` through `client`; the status and body, or the
    /// transport error.
    async fn send(&self, client: &reqwest::Client, sender: &str, reference: &str) -> Result<(u16, Value), String> {
        let mut it = if031(reference);
        set(&mut it, "/payload/CommonBlock/S1/senderDIPID", json!(sender));
        let r = client
            .post(format!("{}/api/v1/messages", self.base))
            .json(&json!([it]))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

fn identity(i: &Issued) -> (&str, &str) {
    (&i.cert_pem, i.key_pem.as_deref().expect("key"))
}

async fn accepted_client_and_unknown_authority(db: Db) {
    let p = TlsPlatform::start(db, true, false).await;
    let mine = p.enrol(SUP1, "DEV").await;
    let (status, body) = p
        .send(&p.client(Some(identity(&mine))), SUP1, "tls-1")
        .await
        .expect("sent");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted");

    // A certificate from another authority, even for the right participant, never gets
    // past the handshake; nor does a client without a certificate.
    let stranger = Authority::generate("DEV").expect("other authority");
    let foreign = stranger.issue_client(SUP1, 30, None).expect("issue");
    let err = p
        .send(&p.client(Some(identity(&foreign))), SUP1, "tls-2")
        .await
        .expect_err("refused");
    assert!(!err.is_empty());
    assert!(
        p.send(&p.client(None), SUP1, "tls-3").await.is_err(),
        "no certificate, no connection"
    );
}

async fn expired_revoked_and_unregistered_refused(db: Db) {
    let p = TlsPlatform::start(db, true, false).await;
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(40);
    let expired = p.ca.issue_client(SUP1, 30, Some(long_ago)).expect("issue");
    let now = broker_core::clock::now_micros();
    assert!(matches!(
        certs::record(&expired.cert_pem, SUP1, "DEV", "issued", now),
        Err(certs::CertError::Expired)
    ));
    assert!(
        p.send(&p.client(Some(identity(&expired))), SUP1, "exp").await.is_err(),
        "handshake refuses it"
    );

    let unregistered = p.ca.issue_client(SUP1, 30, None).expect("issue");
    let (status, body) = p
        .send(&p.client(Some(identity(&unregistered))), SUP1, "unreg")
        .await
        .expect("sent");
    assert_eq!(status, 401, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not registered"),
        "{body}"
    );

    let revoked = p.enrol(SUP1, "DEV").await;
    let fp = certs::fingerprint(&certs::parse_pem(&revoked.cert_pem).unwrap()[0]);
    let client = p.client(Some(identity(&revoked)));
    let (status, _) = p.send(&client, SUP1, "before-revocation").await.expect("sent");
    assert_eq!(status, 202);
    p.revoke(&fp).await;
    // The same open connection is refused from the next request on.
    let (status, body) = p.send(&client, SUP1, "after-revocation").await.expect("sent");
    assert_eq!(status, 401, "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

async fn a_certificate_cannot_act_for_another(db: Db) {
    let p = TlsPlatform::start(db, true, false).await;
    let theirs = p.enrol(SUP2, "DEV").await;
    let (status, body) = p
        .send(&p.client(Some(identity(&theirs))), SUP1, "as-other")
        .await
        .expect("sent");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["results"][0]["errors"][0]["code"], "SENDER_MISMATCH");
    // And an API key does not override the certificate's identity.
    let r = p
        .client(Some(identity(&theirs)))
        .post(format!("{}/api/v1/messages", p.base))
        .bearer_auth(p.s.key(SUP1))
        .json(&json!([if031("key-and-cert")]))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 403);
}

async fn rollover_with_two_active_certificates(db: Db) {
    let p = TlsPlatform::start(db, true, false).await;
    let old = p.enrol(SUP1, "DEV").await;
    let new = p.enrol(SUP1, "DEV").await;
    for (i, cert) in [&old, &new].into_iter().enumerate() {
        let (status, body) = p
            .send(&p.client(Some(identity(cert))), SUP1, &format!("roll-{i}"))
            .await
            .expect("sent");
        assert_eq!(status, 202, "{body}");
    }
    let old_fp = certs::fingerprint(&certs::parse_pem(&old.cert_pem).unwrap()[0]);
    p.revoke(&old_fp).await;
    let (status, _) = p
        .send(&p.client(Some(identity(&old))), SUP1, "roll-old")
        .await
        .expect("sent");
    assert_eq!(status, 401);
    let (status, _) = p
        .send(&p.client(Some(identity(&new))), SUP1, "roll-new")
        .await
        .expect("sent");
    assert_eq!(status, 202);
}

async fn environment_separation_and_api_keys(db: Db) {
    // API keys off (production style), client certificates optional at the handshake.
    let p = TlsPlatform::start(db, false, false).await;
    let sit = p.ca.issue_client(SUP1, 30, None).expect("issue");
    p.register(&sit.cert_pem, SUP1, "SIT").await;
    let (status, body) = p
        .send(&p.client(Some(identity(&sit))), SUP1, "env")
        .await
        .expect("sent");
    assert_eq!(status, 401, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("SIT"), "{body}");

    let r = p
        .client(None)
        .post(format!("{}/api/v1/messages", p.base))
        .bearer_auth(p.s.key(SUP1))
        .json(&json!([if031("key")]))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401, "API keys are off");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("client certificate"),
        "{body}"
    );
}

/// A CSR made by an independent implementation (`openssl`, RSA key) is issued with the
/// subject the authority decides, and the certificate works.
async fn certificate_from_openssl_csr(db: Db) {
    let p = TlsPlatform::start(db, true, false).await;
    let (key_pem, csr) = openssl_csr("/CN=someone-else");
    let issued = p.ca.issue_from_csr(&csr, SUP1, 30).expect("issue from CSR");
    let record = certs::record(&issued.cert_pem, SUP1, "DEV", "issued", 0).expect("record");
    assert!(record.subject.contains(&format!("CN={SUP1}")), "{}", record.subject);
    p.register(&issued.cert_pem, SUP1, "DEV").await;
    let (status, body) = p
        .send(&p.client(Some((&issued.cert_pem, &key_pem))), SUP1, "csr")
        .await
        .expect("sent");
    assert_eq!(status, 202, "{body}");
    assert!(p.ca.issue_from_csr("not a csr", SUP1, 30).is_err());
}

/// The certificate API: the operator registers and revokes, holders see theirs with
/// expiry warnings, nobody else does.
async fn certificate_api(db: Db) {
    // API keys on for the operator and the holders' reads over plain HTTP.
    let p = TlsPlatform::start(db, true, true).await;
    let op = p.s.operator_key();
    let issued = p.ca.issue_client(SUP1, 10, None).expect("issue");
    let register = |key: String, body: Value| {
        let s = &p.s;
        async move {
            s.post_to("/api/v1/admin/certificates", &key, "application/json", body.to_string())
                .await
        }
    };
    let (status, body) = register(op.clone(), json!({ "dipID": SUP1, "pem": issued.cert_pem })).await;
    assert_eq!(status, 201, "{body}");
    let fp = body["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        (body["status"].as_str(), body["source"].as_str()),
        (Some("expiring"), Some("registered"))
    );
    assert_eq!(body["daysLeft"], 9);
    // It identifies SUP1 as soon as the registry has it (directory notification).
    let client = p.client(Some(identity(&issued)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = p
            .send(&client, SUP1, &format!("api-{}", deadline.elapsed().as_nanos()))
            .await
            .expect("sent");
        if status == 202 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never registered: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    for (key, expected) in [(p.s.key(SUP1), 1), (p.s.key(SUP2), 0), (op.clone(), 1)] {
        let (status, body) = p.s.get(&key, "/api/v1/certificates?status=expiring").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["certificates"].as_array().unwrap().len(), expected, "{body}");
    }
    let (_, body) = p.s.get(&op, "/api/v1/certificates?status=active").await;
    assert_eq!(body["certificates"], json!([]));

    // Only the operator registers or revokes; bad certificates are refused with a reason.
    let (status, _) = register(p.s.key(SUP1), json!({ "dipID": SUP1, "pem": issued.cert_pem })).await;
    assert_eq!(status, 403);
    for (bad, why) in [
        (json!({ "dipID": SUP1, "pem": "not a certificate" }), "not a readable"),
        (
            json!({ "dipID": "9999999999", "pem": issued.cert_pem }),
            "no participant",
        ),
        (json!({ "dipID": SUP1, "pem": p.ca.cert_pem() }), "CA certificate"),
    ] {
        let (status, body) = register(op.clone(), bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(why), "{body}");
    }
    let revoke = format!("/api/v1/admin/certificates/{fp}/revoke");
    let (status, _) = p.s.post_to(&revoke, &p.s.key(SUP1), "application/json", "").await;
    assert_eq!(status, 403);
    let (status, body) = p.s.post_to(&revoke, &op, "application/json", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = p.s.post_to(&revoke, &op, "application/json", "").await;
    assert_eq!(status, 404, "already revoked");
    // Both changes are in the admin audit log, refusals are not.
    let (entries, _) =
        p.s.db
            .store
            .audit_log(&broker_core::store::AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("audit log");
    let seen: Vec<(&str, &str)> = entries.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("certificate.revoke", fp.as_str()),
            ("certificate.register", fp.as_str())
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.actor.starts_with("api:") && e.actor_dip_id.is_none())
    );
    p.s.broker.reload().await.expect("reload");
    let (status, _) = p.send(&client, SUP1, "api-revoked").await.expect("sent");
    assert_eq!(status, 401);
}

/// The operator issues from the platform's test authority through the API: with a new
/// key pair (returned once) or for a CSR; the certificate then works on the TLS listener.
async fn certificate_issued_through_the_api(db: Db) {
    let p = TlsPlatform::start(db, true, true).await;
    let op = p.s.operator_key();
    let issue = |base: String, key: String, body: Value| {
        let http = p.s.http.clone();
        async move {
            let r = http
                .post(format!("{base}/api/v1/admin/certificates/issue"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("issue");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Without an authority the platform refuses to issue.
    let (status, _) = issue(p.s.base.clone(), op.clone(), json!({ "dipID": SUP1 })).await;
    assert_eq!(status, 409);

    // A node of the same platform holding the authority the TLS listener trusts.
    let authority = Authority::load(&p.ca.cert_pem(), &p.ca.key_pem(), "DEV").expect("load authority");
    let config = BrokerConfig {
        authority: Some(std::sync::Arc::new(authority)),
        ..BrokerConfig::default()
    };
    let node = broker_core::Broker::start(p.s.db.store.clone(), config)
        .await
        .expect("node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, broker_core::api::router(node)).await });

    let (status, body) = issue(admin.clone(), op.clone(), json!({ "dipID": SUP1, "days": 10 })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["source"].as_str(), body["status"].as_str()),
        (Some("issued"), Some("expiring"))
    );
    let (cert, key) = (
        body["certificatePem"].as_str().unwrap(),
        body["privateKeyPem"].as_str().unwrap(),
    );
    p.s.broker.reload().await.expect("reload");
    let (status, reply) = p
        .send(&p.client(Some((cert, key))), SUP1, "issued-by-api")
        .await
        .expect("sent");
    assert_eq!(status, 202, "{reply}");

    let (status, body) = issue(admin.clone(), op, json!({ "dipID": SUP1, "csr": "not a CSR" })).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = issue(admin, p.s.key(SUP1), json!({ "dipID": SUP1 })).await;
    assert_eq!(status, 403);
}

both_stores!(
    certificate_issued_through_the_api,
    certificate_api,
    accepted_client_and_unknown_authority,
    expired_revoked_and_unregistered_refused,
    a_certificate_cannot_act_for_another,
    rollover_with_two_active_certificates,
    environment_separation_and_api_keys,
    certificate_from_openssl_csr,
);
