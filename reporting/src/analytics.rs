//! Analytics (spec 5.11): where the broker's lifecycle events end up ([`Sink`]) and the
//! throughput, latency and SLO reports read from them ([`Analytics`]).
//!
//! Every state change on the message path writes its events to `analytics_outbox` in the
//! same transaction (see the stores), so an event exists exactly when its change does.
//! The [`crate::pump`] moves them in batches into ClickHouse (production) or into the embedded
//! store's `analytics_events` table (the default); [`crate::report`] builds the same queries
//! for both, so they give the same numbers.

use std::sync::Arc;

use broker_core::events::Event;
use broker_core::store::{OutboxStore, ReportRow};

use crate::clickhouse::ClickHouse;
use crate::error::AnalyticsError;
use crate::report::{self, Report, ReportQuery};

/// Where events end up and reports are read from.
#[derive(Clone)]
pub enum Sink {
    /// The store's own `analytics_events` table.
    Embedded,
    /// A ClickHouse database.
    ClickHouse(Arc<ClickHouse>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::ClickHouse(c) => write!(f, "ClickHouse {}", c.describe()),
        }
    }
}

/// Report queries against the configured sink.
#[derive(Clone)]
pub struct Analytics {
    store: Arc<dyn OutboxStore>,
    sink: Sink,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "analytics over the {:?} sink", self.sink)
    }
}

impl Analytics {
    /// Reports over `store`'s events, or over ClickHouse's when `sink` says so.
    pub fn new(store: Arc<dyn OutboxStore>, sink: Sink) -> Self {
        Self { store, sink }
    }

    /// Runs `query` (already authorised, see [`ReportQuery::authorise`]).
    pub async fn report(&self, query: &ReportQuery) -> Result<Report, AnalyticsError> {
        self.run(query, false).await
    }

    /// Runs `query` for the totals over its range only (no series).
    pub async fn totals(&self, query: &ReportQuery) -> Result<Report, AnalyticsError> {
        self.run(query, true).await
    }

    /// Whom `participant` exchanged messages with in `[from, to)`, by DIP ID (itself
    /// excluded), so that its views can name them and nobody else.
    pub async fn counterparties(&self, participant: &str, from: i64, to: i64) -> Result<Vec<String>, AnalyticsError> {
        let sql = report::counterparties_sql(participant, from, to, self.dialect())
            .ok_or_else(|| AnalyticsError::Invalid(format!("not a DIP ID: {participant}")))?;
        let mut out: Vec<String> = self
            .rows(&sql, 1)
            .await?
            .into_iter()
            .map(|r| r.group)
            .filter(|g| !g.is_empty() && g != participant)
            .collect();
        out.dedup();
        Ok(out)
    }

    /// The API's refusals `query` selects (already authorised) over its whole range, per
    /// channel and error code: `(channel, code, count)`, by channel then code; the channel
    /// is empty for an item that named none of the platform's.
    pub async fn rejections(&self, query: &ReportQuery) -> Result<Vec<(String, String, i64)>, AnalyticsError> {
        query.validate()?;
        let sql = report::rejections_sql(query, self.dialect());
        Ok(self
            .rows(&sql, 1)
            .await?
            .into_iter()
            .map(|r| (r.group, r.label, r.values.first().copied().unwrap_or(0)))
            .collect())
    }

    /// Every lifecycle event of these transactions, received at or after `since`, in
    /// order of time: those the pump has moved (to ClickHouse or the embedded table) and
    /// those still in the outbox, so a trace is whole the moment it is asked for.
    pub async fn events_of(&self, transaction_ids: &[String], since: i64) -> Result<Vec<Event>, AnalyticsError> {
        let mut events = self.store.events_of(transaction_ids).await?;
        if let Sink::ClickHouse(c) = &self.sink {
            events.extend(c.events_of(transaction_ids, since).await?);
            events.sort_by_key(|e| (e.at, e.id));
            events.dedup_by_key(|e| e.id);
        }
        Ok(events)
    }

    fn dialect(&self) -> report::Dialect {
        match self.sink {
            Sink::Embedded => report::Dialect::Sql,
            Sink::ClickHouse(_) => report::Dialect::ClickHouse,
        }
    }

    async fn run(&self, query: &ReportQuery, totals_only: bool) -> Result<Report, AnalyticsError> {
        query.validate()?;
        let dialect = self.dialect();
        // The statements are independent: run together, they take the time of the slowest.
        let statements = report::statements(query, dialect, totals_only);
        let rows = futures::future::try_join_all(statements.iter().map(|(part, sql, values)| async move {
            Ok::<_, AnalyticsError>((*part, self.rows(sql, *values).await?))
        }))
        .await?;
        Ok(report::assemble(query, rows))
    }

    async fn rows(&self, sql: &report::Statement, values: usize) -> Result<Vec<ReportRow>, AnalyticsError> {
        match &self.sink {
            // The embedded dialect inlines its values: nothing to bind.
            Sink::Embedded => Ok(self.store.analytics_rows(&sql.sql, values).await?),
            Sink::ClickHouse(c) => c.rows(sql, values).await,
        }
    }
}
