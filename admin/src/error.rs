//! Which error goes where: services and server functions return [`AppError`]; a store
//! failure becomes [`AppError::Unavailable`] through this one conversion (so `?` works),
//! logged here once with its cause, which the caller never sees.

use broker_core::store::StoreError;

use crate::types::AppError;

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        AppError::Unavailable
    }
}
