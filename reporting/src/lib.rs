//! # reporting
//!
//! Everything that reads the platform's history.
//!
//! Always built (the browser bundle uses them): the view types of the dashboard
//! ([`report_views`], including the report URL both ways) and of alarms
//! ([`alarm_views`]).
//!
//! With the `server` feature: where lifecycle events go and reports come from
//! ([`analytics`]: ClickHouse through [`clickhouse`], or the embedded tables), the
//! [`pump`] that moves them out of the store's outbox, the report queries ([`report`]),
//! the dashboard ([`dashboard`], drawn with [`charts`]), alarms and their mail
//! ([`alarms`]) and the reports REST API ([`rest`]).

pub mod alarm_views;
pub mod report_views;

#[cfg(feature = "server")]
pub mod alarms;
#[cfg(feature = "server")]
pub mod analytics;
#[cfg(feature = "server")]
pub mod charts;
#[cfg(feature = "server")]
pub mod clickhouse;
#[cfg(feature = "server")]
pub mod dashboard;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod pump;
#[cfg(feature = "server")]
pub mod report;
#[cfg(feature = "server")]
pub mod rest;
