//! The reporting crate's integration tests, in one binary: analytics (events, the pump,
//! every sink) and the message audit trail (search and traces, who sees what).

mod analytics;
mod trail;
