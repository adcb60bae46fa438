//! # reporting
//!
//! Everything that reads the platform's history.
//!
//! Always built (the browser bundle uses them): the view types of the dashboard
//! ([`report_views`], including the report URL both ways) and of alarms
//! ([`alarm_views`]), of the message audit trail ([`trail_views`]), of the sender
//! report ([`sender_views`]), of the home page's health summary ([`home_views`]) and of
//! the operations pages ([`ops_views`]).
//!
//! With the `server` feature: where lifecycle events go and reports come from
//! ([`analytics`]: ClickHouse through [`clickhouse`], or the embedded tables), the
//! [`pump`] that moves them out of the store's outbox, the report queries ([`report`]),
//! the dashboard ([`dashboard`], drawn with [`charts`]), alarms and their mail
//! ([`alarms`]), the message audit trail ([`trail`]: search and traces with row-level
//! access), the sender report ([`sender`]: per channel and outcome, Figure 16), the
//! home page's health summary ([`home`]), evidence bundles ([`evidence`]: one
//! transaction's receipt, routing and webhook calls, signed), the operations pages ([`ops`]: queue health,
//! dead letters and redrive, replays), CSV fields ([`csv`]) and the
//! reports and audit REST API ([`rest`]).

pub mod alarm_views;
pub mod home_views;
pub mod ops_views;
pub mod report_views;
pub mod sender_views;
pub mod trail_views;

#[cfg(feature = "server")]
pub mod alarms;
#[cfg(feature = "server")]
pub mod analytics;
#[cfg(feature = "server")]
pub mod charts;
#[cfg(feature = "server")]
pub mod clickhouse;
#[cfg(feature = "server")]
pub mod csv;
#[cfg(feature = "server")]
pub mod dashboard;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod evidence;
#[cfg(feature = "server")]
pub mod home;
#[cfg(feature = "server")]
pub mod ops;
#[cfg(feature = "server")]
pub mod pump;
#[cfg(feature = "server")]
pub mod report;
#[cfg(feature = "server")]
pub mod rest;
#[cfg(feature = "server")]
pub mod sender;
#[cfg(feature = "server")]
pub mod time;
#[cfg(feature = "server")]
pub mod trail;
