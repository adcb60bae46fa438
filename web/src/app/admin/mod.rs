//! The admin portal's pages and server functions, one file per area: users,
//! participants, channels, endpoints, certificates and the audit log. Every server
//! function checks rights on the server through `dip_admin::service::Admin`, which the
//! admin REST API shares.

// A server function takes one argument per form field.
#![allow(clippy::too_many_arguments)]

mod audit;
mod certificates;
mod channels;
mod endpoints;
mod participants;
mod users;

pub use audit::AuditPage;
pub use certificates::CertificatesPage;
pub use channels::{ChannelPage, ChannelsPage};
pub use endpoints::EndpointsPage;
pub use participants::{ParticipantPage, ParticipantsPage};
pub use users::{UserPage, UsersPage};

#[cfg(feature = "ssr")]
use dip_admin::types::AppError;

/// A page's data and the notice left by the last action.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Screen<T> {
    /// The data.
    pub data: T,
    /// Notice.
    pub notice: Option<String>,
    /// Whether the viewer may change what is shown.
    pub can_edit: bool,
    /// Whether the viewer is operator staff (rather than a participant's user).
    pub operator: bool,
}

#[cfg(feature = "ssr")]
pub(super) mod server {
    use super::Screen;
    pub use crate::ctx::{actor, fail, flash, take_flash};
    pub use dip_admin::service::{Admin, EndpointForm, NewUser, ParticipantForm, Saving, UserChange};
    use dip_admin::types::{Actor, AppError};

    /// A page's data, the notice left for it, and whether the viewer may edit it.
    pub async fn screen_of<T>(actor: &Actor, can_edit: bool, data: T) -> Result<Screen<T>, AppError> {
        Ok(Screen {
            data,
            notice: take_flash().await,
            can_edit,
            operator: actor.is_operator(),
        })
    }

    /// A page for the platform's readers only (administrators edit it), with the data
    /// `load` gives.
    pub async fn platform_screen<T, F>(load: F) -> Result<Screen<T>, AppError>
    where
        F: AsyncFnOnce(&Admin<'_>) -> Result<T, AppError>,
    {
        with_admin(async |admin, actor| {
            if !actor.reads_platform() {
                return Err(AppError::Forbidden);
            }
            screen_of(actor, actor.is_platform_admin(), load(admin).await?).await
        })
        .await
    }

    /// Runs `f` with the actor's admin actions, turning errors into response statuses.
    pub async fn with_admin<T, F>(f: F) -> Result<T, dip_admin::types::AppError>
    where
        F: AsyncFnOnce(&Admin<'_>, &dip_admin::types::Actor) -> Result<T, dip_admin::types::AppError>,
    {
        let (state, actor) = actor().await?;
        let admin = Admin::new(&state.broker, &actor);
        f(&admin, &actor).await.map_err(fail)
    }
}

#[cfg(feature = "ssr")]
pub(super) fn need(confirm: Option<String>) -> Result<(), AppError> {
    if confirm.as_deref() == Some("yes") {
        Ok(())
    } else {
        Err(AppError::field("confirm", "Tick the box to confirm."))
    }
}

/// The values of a comma-separated form field.
pub(super) fn split(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}
