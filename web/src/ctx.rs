//! What server functions get from the request: the application state, the session, the
//! signed-in actor, and one-shot notices carried in the session.

use leptos::prelude::*;
use tower_sessions::Session;

use dip_admin::accounts;
use dip_admin::types::{Actor, AppError};

use crate::state::AppState;

/// Session key of the notice shown on the next page.
const FLASH: &str = "flash";

/// Sets the response status for `error` (a page that failed to load answers 403, not
/// 200; a server function called by the browser bundle answers 400 for invalid input,
/// not 500) and hands the error back. Not for a form posted without JavaScript, which
/// must stay a redirect back to the form, nor for `SignInRequired` ([`actor`] has
/// redirected).
pub fn fail(error: AppError) -> AppError {
    let status_applies = use_context::<axum::http::request::Parts>().is_some_and(|p| {
        let form_post = p
            .headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        !p.uri.path().starts_with("/fn/") || !form_post
    });
    if status_applies
        && !matches!(error, AppError::SignInRequired)
        && let Some(r) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(status) = axum::http::StatusCode::from_u16(error.status())
    {
        r.set_status(status);
    }
    error
}

/// The state and the session of the request.
pub async fn state_and_session() -> Result<(AppState, Session), AppError> {
    let state = use_context::<AppState>().ok_or(AppError::Unavailable)?;
    let session: Session = leptos_axum::extract().await.map_err(|_| AppError::Unavailable)?;
    Ok((state, session))
}

/// The client's address (the TCP peer), where the server knows it.
pub fn client_address() -> Option<std::net::IpAddr> {
    use_context::<axum::http::request::Parts>().and_then(|p| {
        p.extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
    })
}

/// The signed-in actor, if any.
pub async fn maybe_actor() -> Result<Option<Actor>, AppError> {
    let (state, session) = state_and_session().await?;
    accounts::current(state.broker.accounts(), &session, &state.sessions).await
}

/// The signed-in actor; otherwise the browser is sent to sign in, or, when the user
/// must first choose a new password, to their account page.
pub async fn actor() -> Result<(AppState, Actor), AppError> {
    match actor_changing_password().await? {
        (_, actor) if actor.must_change_password => {
            leptos_axum::redirect("/account");
            Err(AppError::PasswordChangeRequired)
        }
        found => Ok(found),
    }
}

/// The signed-in actor, also one who must change their password (for doing just that).
pub async fn actor_changing_password() -> Result<(AppState, Actor), AppError> {
    let (state, session) = state_and_session().await?;
    match accounts::current(state.broker.accounts(), &session, &state.sessions).await? {
        Some(actor) => Ok((state, actor)),
        None => {
            let here = use_context::<axum::http::request::Parts>()
                .map(|p| p.uri.path().to_owned())
                .filter(|p| !p.starts_with("/fn/"))
                .unwrap_or_else(|| "/".into());
            leptos_axum::redirect(&format!("/sign-in?next={here}"));
            Err(AppError::SignInRequired)
        }
    }
}

/// Leaves a notice for the next page this session shows.
pub async fn flash(message: &str) {
    if let Ok((_, session)) = state_and_session().await {
        let _ = session.insert(FLASH, message).await;
    }
}

/// Takes the notice left by the last action.
pub async fn take_flash() -> Option<String> {
    let (_, session) = state_and_session().await.ok()?;
    session.remove::<String>(FLASH).await.ok().flatten()
}

/// `next` as a path on this site to go to after an action, normalised; anything a
/// browser could resolve to another site (`//host`, `/\\host`, a tab or newline that
/// browsers drop, a scheme) gives `/`.
pub fn local_path(next: Option<&str>) -> String {
    const HOME: &str = "/";
    let Some(next) = next.filter(|n| n.starts_with('/')) else {
        return HOME.into();
    };
    if next.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return HOME.into();
    }
    let Ok(base) = url::Url::parse("http://portal.invalid/") else {
        return HOME.into();
    };
    match base.join(next) {
        Ok(url) if url.origin() == base.origin() => url[url::Position::BeforePath..].to_owned(),
        _ => HOME.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_paths_on_this_site_are_followed() {
        assert_eq!(local_path(Some("/admin/users?page=2")), "/admin/users?page=2");
        assert_eq!(local_path(Some("/a/../reports")), "/reports");
        for bad in [
            "/\\evil.example/x",
            "/\t/evil.example",
            "/\n/evil.example",
            "//evil.example",
            "///evil.example",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
        // Percent-encoded, a tab is only a character of the path.
        assert_eq!(local_path(Some("/%09/evil.example")), "/%09/evil.example");
    }
}
