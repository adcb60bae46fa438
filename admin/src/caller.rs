//! Who calls an HTTP API of the portal: an operator API key (acting as platform
//! administrator, recorded as `api:<key name>`), a participant's or DCP's credentials
//! (reads only, as its message user), or the portal's session cookie (as that user).
//! The extractors are generic over the application state: they need only the
//! [`Broker`] and the [`SessionPolicy`] from it (`FromRef`).

use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use broker_core::Broker;
use broker_core::api::Caller;
use broker_core::model::Principal;
use serde_json::json;
use tower_sessions::Session;

use crate::accounts::{self, SessionPolicy};
use crate::types::{Actor, AppError, PortalRole};

/// An admin API failure: the error's status and stable code, never internals.
pub struct ApiFailure(pub AppError);

impl From<AppError> for ApiFailure {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let fields = match &self.0 {
            AppError::Invalid { fields, .. } => json!(fields),
            _ => json!({}),
        };
        (
            status,
            Json(json!({"error": {"code": self.0.code(), "message": self.0.to_string(), "fields": fields}})),
        )
            .into_response()
    }
}

/// The answer of an API handler: JSON, or the failure as JSON with its status.
pub type ApiResult<T> = Result<Json<T>, ApiFailure>;

/// The caller of the admin API: operator keys and sessions.
pub struct ApiActor(pub Actor);

/// A caller of read-only APIs (reports): also participants' and DCPs' API keys, which
/// act as their participant's message user.
pub struct ApiReader(pub Actor);

/// The two extractors differ only in whether participants' credentials are accepted.
macro_rules! caller_extractor {
    ($extractor:ident, participants: $participants:expr) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            S: Send + Sync,
            Broker: FromRef<S>,
            SessionPolicy: FromRef<S>,
        {
            type Rejection = ApiFailure;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiFailure> {
                caller(parts, state, $participants).await.map(Self)
            }
        }
    };
}

caller_extractor!(ApiActor, participants: false);
caller_extractor!(ApiReader, participants: true);

/// The actor behind a request's credentials (an API key or client certificate) or
/// session; participants' credentials only with `participants`.
async fn caller<S>(parts: &mut Parts, state: &S, participants: bool) -> Result<Actor, ApiFailure>
where
    S: Send + Sync,
    Broker: FromRef<S>,
    SessionPolicy: FromRef<S>,
{
    let broker = Broker::from_ref(state);
    {
        let has_credentials = parts.headers.contains_key(axum::http::header::AUTHORIZATION)
            || parts
                .extensions
                .get::<broker_core::security::tls::ClientCertificate>()
                .is_some_and(|c| c.0.is_some());
        if !has_credentials {
            let session = Session::from_request_parts(parts, state)
                .await
                .map_err(|_| AppError::Unavailable)?;
            return match accounts::current(broker.accounts(), &session, &SessionPolicy::from_ref(state)).await? {
                Some(actor) if actor.must_change_password => Err(AppError::PasswordChangeRequired.into()),
                Some(actor) => Ok(actor),
                None => Err(AppError::SignInRequired.into()),
            };
        }
        let Caller(principal) = Caller::from_request_parts(parts, &broker)
            .await
            .map_err(|_| AppError::SignInRequired)?;
        match principal {
            Principal::Operator { name } => Ok(Actor {
                user_id: None,
                name: format!("api:{name}"),
                display_name: name,
                dip_id: None,
                roles: vec![PortalRole::PlatformAdmin],
                must_change_password: false,
            }),
            Principal::Participant { dip_id } | Principal::Dcp { dip_id } if participants => Ok(Actor {
                user_id: None,
                name: format!("api:{dip_id}"),
                display_name: dip_id.clone(),
                dip_id: Some(dip_id),
                roles: vec![PortalRole::MessageUser],
                must_change_password: false,
            }),
            _ => Err(AppError::Forbidden.into()),
        }
    }
}
