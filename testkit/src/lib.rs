//! The test harness every DIP crate's integration tests share (a dev-dependency only):
//!
//! - [`db`]: which store a test runs on ([`Db`]), and [`TestStore`], a migrated store in
//!   a temporary folder (SQLite) or a fresh PostgreSQL database, dropped on `Drop`,
//!   empty or seeded with the catalogue and the demo directory (webhook URLs optional);
//! - [`server`]: [`TestServer`], the broker serving the participant API on 127.0.0.1;
//! - [`messages`]: the demo participants and MPANs, and message fixtures;
//! - [`clickhouse`]: [`ClickHouseServer`], a throwaway `clickhouse-server` process;
//! - [`openssl`]: keys and CSRs made by the `openssl` command line;
//! - [`both_stores!`]: registers a test once per store.
//!
//! Crate-specific helpers (web's `dip serve` clusters, its per-queue order checks) stay in
//! that crate's tests. `use dip_testkit::*;` brings everything in.

pub mod clickhouse;
pub mod db;
pub mod messages;
pub mod openssl;
pub mod server;

pub use clickhouse::ClickHouseServer;
pub use db::{Db, TestStore, TestStoreBuilder, pg_admin_url};
pub use messages::*;
pub use openssl::{openssl, openssl_csr, openssl_identity};
pub use server::{TestServer, fast_delivery};

/// A free port on 127.0.0.1 (free when asked; bind it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Registers tests that run once per store: `both_stores!(a, b)` makes `sqlite::a`,
/// `postgres::a`, … calling `a(Db)` of the module it is used in.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::Db::Postgres).await } )*
        }
    };
}
