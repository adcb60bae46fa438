//! The error of analytics: reports, the pump and ClickHouse. The portal turns it into
//! its own error (`dashboard::app_error`): invalid and forbidden requests keep their
//! message, store and ClickHouse failures are logged and hidden.

use broker_core::store::StoreError;

/// An analytics failure.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ClickHouse failed or is unreachable.
    #[error("ClickHouse: {0}")]
    ClickHouse(String),
    /// The report request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The viewer may not see what the request asks for.
    #[error("{0}")]
    Forbidden(String),
}
