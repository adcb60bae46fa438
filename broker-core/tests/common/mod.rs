//! Test harness: real stores (SQLite in a temporary folder, a fresh PostgreSQL database
//! on the machine's server, dropped afterwards) and a real HTTP server on 127.0.0.1:0.
#![allow(dead_code)]

use std::sync::Arc;

use broker_core::catalogue::CatalogueData;
use broker_core::ingest::{Broker, BrokerConfig};
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};
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
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestStore {
    pub async fn new(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = store::connect(&format!("sqlite://{}", dir.path().join("dip.db").display()))
                    .await
                    .expect("open sqlite");
                store.migrate().await.expect("migrate sqlite");
                Self {
                    store,
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
        }
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
