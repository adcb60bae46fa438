//! The broker with the shipped catalogue and the demo directory, serving the participant
//! API over HTTP on 127.0.0.1 (a port of its own), and delivering webhooks when asked.

use broker_core::delivery::DeliveryConfig;
use broker_core::task::TaskHandle;
use broker_core::{Broker, BrokerConfig};
use serde_json::Value;

use crate::db::{Db, TestStore};

/// The platform serving HTTP on a demo-seeded [`TestStore`].
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub broker: Broker,
    pub db: TestStore,
    pub delivery: Option<TaskHandle>,
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, BrokerConfig::default()).await
    }

    pub async fn start_with(db: Db, config: BrokerConfig) -> Self {
        let db = TestStore::seeded(db).await;
        let broker = Broker::start(db.store.clone(), config).await.expect("start broker");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = broker_core::api::router(broker.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            http: reqwest::Client::new(),
            broker,
            db,
            delivery: None,
        }
    }

    /// The platform delivering webhooks with short timeouts and leases, for tests.
    pub async fn delivering(db: Db) -> Self {
        Self::delivering_with(db, fast_delivery()).await
    }

    /// The platform delivering webhooks as `config` says.
    pub async fn delivering_with(db: Db, config: DeliveryConfig) -> Self {
        Self::configured(db, BrokerConfig::default(), config).await
    }

    /// The platform configured as `broker` says, delivering webhooks as `delivery` says.
    pub async fn configured(db: Db, broker: BrokerConfig, delivery: DeliveryConfig) -> Self {
        let mut s = Self::start_with(db, broker).await;
        s.delivery = Some(broker_core::delivery::start(s.broker.clone(), delivery).expect("start delivery"));
        s
    }

    /// Points a participant's endpoint at `url` (`None`: pull) for `channels` (empty: all
    /// others) and reloads the registry.
    pub async fn endpoint(&self, dip_id: &str, name: &str, url: Option<String>, channels: &[&str]) {
        self.broker
            .store()
            .put_endpoint(&broker_core::model::Endpoint {
                id: format!("{dip_id}/{name}"),
                dip_id: dip_id.into(),
                name: name.into(),
                url,
                channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            })
            .await
            .expect("put endpoint");
        self.broker.reload().await.expect("reload");
    }

    /// Changes a channel's delivery policy and reloads the registry.
    pub async fn policy(&self, interface: &str, policy: broker_core::model::DeliveryPolicy) {
        let mut channel = self
            .broker
            .registry()
            .channel(interface)
            .expect("channel")
            .channel
            .clone();
        channel.delivery = policy;
        self.broker.store().put_channel(&channel).await.expect("put channel");
        self.broker.reload().await.expect("reload");
    }

    /// Retries of `interface` after 50 ms, at most 200 ms apart, dead-lettered after an
    /// hour: a failed attempt is retried well within a test.
    pub async fn fast_retries(&self, interface: &str) {
        let policy = broker_core::model::DeliveryPolicy {
            retry_initial_ms: 50,
            retry_max_ms: 200,
            stale_after_secs: 3600,
        };
        self.policy(interface, policy).await;
    }

    /// The demo API key of a participant.
    pub fn key(&self, dip_id: &str) -> String {
        self.db.key(dip_id)
    }

    /// The demo operator key.
    pub fn operator_key(&self) -> String {
        self.db.operator_key()
    }

    /// POSTs a body of a content type to a path.
    pub async fn post_to(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs raw bytes to the messages endpoint.
    pub async fn post_raw(&self, key: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.post_to("/api/v1/messages", key, "application/json", body).await
    }

    /// Registers a certificate (PEM) to `dip_id` and reloads the registry; returns its
    /// fingerprint.
    pub async fn register_certificate(&self, cert_pem: &str, dip_id: &str) -> String {
        let record = broker_core::security::certs::record(cert_pem, dip_id, "DEV", "registered", 0).expect("record");
        self.broker.store().put_certificate(&record).await.expect("put");
        self.broker.reload().await.expect("reload");
        record.fingerprint
    }

    /// POSTs `body` to the messages endpoint as `key` with extra `headers`.
    pub async fn post_with_headers(&self, key: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (n, v) in headers {
            r = r.header(*n, v);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Signs `items` with `signer` for the messages endpoint and POSTs them as `key`.
    pub async fn post_signed(
        &self,
        key: &str,
        signer: &broker_core::security::signature::Signer,
        items: &Value,
    ) -> (u16, Value) {
        let body = serde_json::to_vec(items).expect("json");
        let url = format!("{}/api/v1/messages", self.base);
        let headers = signer.headers("POST", &url, &body, chrono::Utc::now());
        self.post_with_headers(key, &body, &headers).await
    }

    /// POSTs JSON to the messages endpoint.
    pub async fn post(&self, key: &str, body: &Value) -> (u16, Value) {
        self.post_raw(key, serde_json::to_vec(body).expect("json")).await
    }

    /// GETs a path with a key.
    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Delivery settings that make retries and hand-overs quick enough for tests.
pub fn fast_delivery() -> DeliveryConfig {
    DeliveryConfig {
        request_timeout: std::time::Duration::from_millis(300),
        connect_timeout: std::time::Duration::from_millis(300),
        lease_ttl: std::time::Duration::from_secs(3),
        sweep_interval: std::time::Duration::from_millis(200),
        idle_release: std::time::Duration::from_secs(1),
        // The sinks listen on loopback, which production refuses.
        destinations: broker_core::delivery::destinations::Destinations::allowing(vec![
            "127.0.0.0/8".parse().expect("range"),
        ]),
        ..DeliveryConfig::default()
    }
}
