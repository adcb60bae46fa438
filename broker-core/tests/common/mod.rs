//! Test harness: real stores (SQLite in a temporary folder, a fresh PostgreSQL database
//! on the machine's server, dropped afterwards) and a real HTTP server on 127.0.0.1:0.
#![allow(dead_code)]

use std::sync::Arc;

use broker_core::catalogue::CatalogueData;
use broker_core::delivery::DeliveryConfig;
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};
use broker_core::task::TaskHandle;
use broker_core::{Broker, BrokerConfig};
use serde_json::{Value, json};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// PostgreSQL server the tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("DIP_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A migrated, empty store that cleans up after itself.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The database URL, for a second connection (another node).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestStore {
    pub async fn new(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("dip.db").display());
                let store = store::connect(&url).await.expect("open sqlite");
                store.migrate().await.expect("migrate sqlite");
                Self {
                    store,
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Db::Postgres => {
                let name = format!("dip_test_{}", uuid::Uuid::new_v4().simple());
                let url = store::create_database(&pg_admin_url(), &name)
                    .await
                    .expect("create test database (is PostgreSQL running?)");
                let store = store::connect(&url).await.expect("connect postgres");
                store.migrate().await.expect("migrate postgres");
                Self {
                    store,
                    url,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop needs a runtime of its own: the test's may be shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let _ = rt.block_on(store::drop_database(&pg_admin_url(), &name));
            })
            .join();
        }
    }
}

/// The platform with the shipped catalogue and the demo directory, serving HTTP.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub broker: Broker,
    pub demo: DirectoryData,
    pub db: TestStore,
    pub delivery: Option<TaskHandle>,
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, BrokerConfig::default()).await
    }

    pub async fn start_with(db: Db, config: BrokerConfig) -> Self {
        let db = TestStore::new(db).await;
        seed_catalogue(db.store.as_ref(), &CatalogueData::seed().expect("seed catalogue"))
            .await
            .expect("seed catalogue");
        let demo = DirectoryData::demo().expect("demo data");
        seed_directory(db.store.as_ref(), &demo).await.expect("seed directory");
        let broker = Broker::start(db.store.clone(), config).await.expect("start broker");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = broker_core::api::router(broker.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            http: reqwest::Client::new(),
            broker,
            demo,
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
        let mut s = Self::start(db).await;
        s.delivery = Some(broker_core::delivery::start(s.broker.clone(), config).expect("start delivery"));
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

    /// The demo API key of a participant.
    pub fn key(&self, dip_id: &str) -> String {
        self.demo
            .key_of(dip_id)
            .unwrap_or_else(|| panic!("no demo participant {dip_id}"))
            .to_owned()
    }

    /// The demo operator key.
    pub fn operator_key(&self) -> String {
        self.demo.operator_keys[0].api_key.clone()
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

/// A message item with a well-formed CommonBlock; `custom` is the CustomBlock.
pub fn item(interface: &str, sender: &str, role: &str, reference: &str, custom: Value) -> Value {
    json!({
        "payload": {
            "CommonBlock": {
                "S0": { "interfaceID": interface, "schemaVersion": "001", "eventCode": "[Test]" },
                "S1": {
                    "environmentTag": "DEV",
                    "senderUniqueReference": reference,
                    "senderTimestamp": "2026-11-27T09:00:00+00:00",
                    "senderDIPID": sender,
                    "senderRoleID": role,
                    "senderCorrelationID": null,
                    "DIPConnectionProviderID": null
                },
                "M0": {},
                "A0": { "primaryRecipients": [] }
            },
            "CustomBlock": custom
        }
    })
}

/// Sets a field of an item by JSON pointer (parents must exist).
pub fn set(item: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = item.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    target
        .as_object_mut()
        .expect("object")
        .insert(key.replace("~1", "/"), value);
}

/// Generates the lists of tests that run once per store: `both_stores!(a, b)` makes
/// `sqlite::a`, `postgres::a`, … calling `a(Db)`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Db::Postgres).await } )*
        }
    };
}

// Demo participants (broker-core/demo/demo.toml).
pub const SUP1: &str = "1000000001"; // splits channels over `registration` and `default`
pub const SUP2: &str = "1000000002"; // nominated DCP 1000000090
pub const SUP3: &str = "1000000003";
pub const REGS_N: &str = "1000000011";
pub const LDSO_P: &str = "1000000021";
pub const MS_KEY: &str = "1000000031"; // MSS and MSA
pub const SDS_O: &str = "1000000041"; // nominated DCP 1000000090
pub const DS_Q: &str = "1000000042"; // SDS, ADS, UMDS
pub const MDS: &str = "1000000051"; // MDS, LSS, VAS
pub const LSS: &str = "1000000052"; // LSS, VAS
pub const DCP: &str = "1000000090";

/// Smart MPAN whose supplier changes from SUP1 to SUP2 on 2024-10-15.
pub const MPAN_COS: &str = "1600001000010";
/// Smart MPAN: SUP1, LDSO_P, REGS_N, MSS 1000000032, SDS DS_Q, all from 2024-04-01.
pub const MPAN_SMART: &str = "1600001000020";

/// An item with event code, MPAN and primary recipients set.
#[allow(clippy::too_many_arguments)]
pub fn msg(
    interface: &str,
    sender: &str,
    role: &str,
    reference: &str,
    event: &str,
    mpan: Option<&str>,
    targets: &[&str],
    custom: Value,
) -> Value {
    let mut it = item(interface, sender, role, reference, custom);
    set(&mut it, "/payload/CommonBlock/S0/eventCode", json!(event));
    if let Some(m) = mpan {
        set(&mut it, "/payload/CommonBlock/M0/MPANCore", json!(m));
    }
    set(&mut it, "/payload/CommonBlock/A0/primaryRecipients", json!(targets));
    it
}

/// IF-031 Supplier Service Appointment Request: SUP1 to its Registration Service
/// (targeted; starts a workflow; event codes restricted).
pub fn if031(reference: &str) -> Value {
    msg(
        "IF-031",
        SUP1,
        "SUP",
        reference,
        "SupplierServiceAppointmentRequest",
        Some(MPAN_SMART),
        &[REGS_N],
        if031_block(),
    )
}

pub fn if031_block() -> Value {
    json!({
        "mpanCore": MPAN_SMART,
        "supplierId": "AURA",
        "serviceRole": "MSS",
        "serviceProviderId": "KYST",
        "serviceProviderDIPID": MS_KEY,
        "effectiveFromDate": "2025-02-01",
        "contractReference": "C-1"
    })
}

/// The spec 5.5.12 worked example IF-909: the MSS targets a Registration Service; every
/// supplier always gets a copy without three fields.
pub fn if909(reference: &str) -> Value {
    msg(
        "IF-909",
        MS_KEY,
        "MSS",
        reference,
        "[NotificationOfDataServiceAppointment]",
        Some(MPAN_COS),
        &[REGS_N],
        if909_block(),
    )
}

pub fn if909_block() -> Value {
    json!({
        "mpanCore": MPAN_COS,
        "contractReferenceMeteringService": "MS-42",
        "supplierId": "AURA",
        "meteringServiceId": "KYST",
        "meteringServiceEffectiveFromDate": "2025-01-01T00:00:00Z",
        "appointmentCode": "A"
    })
}

/// Runs `openssl` (an implementation independent of ours) in `dir`; panics on failure.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// An RSA key and a CSR for it made by openssl: (key, CSR) PEM.
pub fn openssl_csr(subject: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("dir");
    openssl(
        dir.path(),
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "r.csr", "-subj", subject,
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("read");
    (read("k.pem"), read("r.csr"))
}
