//! Throwaway stores: SQLite in a temporary folder, or a fresh database on the machine's
//! PostgreSQL server (`DIP_TEST_PG_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`)
//! dropped on `Drop`; migrated, and seeded as the test asks.

use std::sync::Arc;

use broker_core::catalogue::CatalogueData;
use broker_core::seed::{DirectoryData, seed_catalogue, seed_directory};
use broker_core::store::{self, Store};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("DIP_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A migrated store of its own for one test, removed when dropped.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The database URL, for a second connection (another node, a `dip serve` process).
    pub url: String,
    demo: Option<DirectoryData>,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

/// How a [`TestStore`] is seeded; from [`TestStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct TestStoreBuilder {
    db: Db,
    catalogue: bool,
    demo: bool,
    webhooks: Vec<(String, String, String)>,
}

impl TestStoreBuilder {
    /// Seeds the shipped catalogue (roles and channels).
    pub fn catalogue(mut self) -> Self {
        self.catalogue = true;
        self
    }

    /// Seeds the catalogue and the demo directory (`broker-core/demo/demo.toml`).
    pub fn demo(mut self) -> Self {
        self.catalogue = true;
        self.demo = true;
        self
    }

    /// Seeds the demo directory with the demo endpoint `dip_id`/`endpoint` delivered by
    /// webhook to `url`.
    pub fn webhook(mut self, dip_id: &str, endpoint: &str, url: impl Into<String>) -> Self {
        self.webhooks.push((dip_id.to_owned(), endpoint.to_owned(), url.into()));
        self.demo()
    }

    /// Creates, migrates and seeds the store.
    pub async fn build(self) -> TestStore {
        let mut t = TestStore::empty(self.db).await;
        if self.catalogue {
            seed_catalogue(t.store.as_ref(), &CatalogueData::seed().expect("catalogue"))
                .await
                .expect("seed catalogue");
        }
        if self.demo {
            let mut demo = DirectoryData::demo().expect("demo directory");
            for (dip_id, endpoint, url) in self.webhooks {
                let e = demo
                    .participants
                    .iter_mut()
                    .find(|p| p.dip_id == dip_id)
                    .and_then(|p| p.endpoints.iter_mut().find(|e| e.name == endpoint))
                    .unwrap_or_else(|| panic!("no demo endpoint {dip_id}/{endpoint}"));
                e.url = Some(url);
            }
            seed_directory(t.store.as_ref(), &demo).await.expect("seed directory");
            t.demo = Some(demo);
        }
        t
    }
}

impl TestStore {
    /// A migrated, empty store.
    pub async fn new(db: Db) -> Self {
        Self::empty(db).await
    }

    /// A store with the catalogue and the demo directory.
    pub async fn seeded(db: Db) -> Self {
        Self::builder(db).demo().build().await
    }

    /// A store seeded as the builder says (empty unless told).
    pub fn builder(db: Db) -> TestStoreBuilder {
        TestStoreBuilder {
            db,
            catalogue: false,
            demo: false,
            webhooks: Vec::new(),
        }
    }

    async fn empty(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("dip.db").display());
                let store = store::connect(&url).await.expect("open sqlite");
                store.migrate().await.expect("migrate sqlite");
                Self {
                    store,
                    url,
                    demo: None,
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
                    demo: None,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The demo directory the store was seeded with (as seeded, webhook URLs included).
    pub fn demo(&self) -> &DirectoryData {
        self.demo
            .as_ref()
            .expect("a store seeded with the demo directory (TestStore::seeded)")
    }

    /// The demo API key of a participant.
    pub fn key(&self, dip_id: &str) -> String {
        self.demo()
            .key_of(dip_id)
            .unwrap_or_else(|| panic!("no demo participant {dip_id}"))
            .to_owned()
    }

    /// The demo operator key.
    pub fn operator_key(&self) -> String {
        self.demo().operator_keys[0].api_key.clone()
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
