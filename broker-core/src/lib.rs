//! # broker-core
//!
//! The DIP message broker as a library: the participant envelope and its validation,
//! routing (targeted, MPAN lookup with effective dates, always), obfuscation by recipient
//! role, idempotent ingest with the `D0` transaction wrapper, durable per-recipient FIFO
//! queues, the [`store::Store`] trait with SQLite and PostgreSQL implementations, and the
//! participant HTTP API as an axum router ([`api::router`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use broker_core::{api, Broker, BrokerConfig, seed, catalogue::CatalogueData, store};
//! let store = store::connect("sqlite://data/dip.db").await?;
//! store.migrate().await?;
//! seed::seed_catalogue(store.as_ref(), &CatalogueData::seed()?).await?;
//! let broker = Broker::start(store, BrokerConfig::default()).await?;
//! let app = api::router(broker);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod appointments;
pub mod auth;
pub mod broker;
pub mod catalogue;
pub mod clock;
mod committer;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod events;
pub mod ingest;
pub mod input;
pub mod mock_recipient;
pub mod model;
pub mod mpan;
pub mod obfuscate;
pub mod registry;
pub mod replay;
pub mod routing;
pub mod security;
pub mod seed;
pub mod store;
pub mod task;

pub use broker::{Broker, BrokerConfig};
