//! broker-core's integration tests in one binary (one link instead of six), on the shared
//! harness `dip_testkit`: real stores (SQLite and PostgreSQL), real HTTP, real webhooks.

mod api_ingest;
mod at_rest;
mod delivery;
mod signatures;
mod store_conformance;
mod tls;
