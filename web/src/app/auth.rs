//! Signing in and out, the home page and the user's own account.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::ui::{ErrorBox, Field, Loaded, Notice, no_error};
use dip_admin::rows::{EndpointRow, ParticipantRow};
use dip_admin::types::{Actor, AppError};

/// The signed-in user, or `None`.
#[server(prefix = "/fn", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Actor>, AppError> {
    crate::ctx::maybe_actor().await
}

/// Signs in and goes to `next` (a path on this site) or home.
#[server(prefix = "/fn", endpoint = "sign_in")]
pub async fn sign_in(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::ctx;
    use dip_admin::accounts;
    let (state, session) = ctx::state_and_session().await?;
    let _attempt = accounts::admit_attempt(&state.sign_ins, ctx::client_address())?;
    accounts::sign_in(state.broker.accounts(), &session, &username, &password).await?;
    leptos_axum::redirect(&ctx::local_path(next.as_deref()));
    Ok(())
}

/// Ends the session on the server.
#[server(prefix = "/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let (_, session) = crate::ctx::state_and_session().await?;
    dip_admin::accounts::sign_out(&session).await?;
    leptos_axum::redirect("/sign-in");
    Ok(())
}

/// Changes the signed-in user's password (the current one is asked again).
#[server(prefix = "/fn", endpoint = "change_password")]
pub async fn change_password(current: String, new_password: String, repeat: String) -> Result<(), AppError> {
    change_own_password(current, new_password, repeat)
        .await
        .map_err(crate::ctx::fail)
}

#[cfg(feature = "ssr")]
async fn change_own_password(current: String, new_password: String, repeat: String) -> Result<(), AppError> {
    use crate::ctx;
    use dip_admin::accounts;
    let (state, actor) = ctx::actor_changing_password().await?;
    let user_id = actor.user_id.clone().ok_or(AppError::Forbidden)?;
    let mut user = state
        .broker
        .accounts()
        .user(&user_id)
        .await?
        .ok_or(AppError::SignInRequired)?;
    {
        let _attempt = accounts::admit_attempt(&state.sign_ins, ctx::client_address())?;
        accounts::check_current_password(state.broker.accounts(), &user, &current).await?;
    }
    accounts::check_password("new_password", &new_password, &user.username)?;
    if new_password != repeat {
        return Err(AppError::field("repeat", "The two new passwords differ."));
    }
    user.password_hash = accounts::hash_password(new_password).await?;
    user.must_change_password = false;
    user.updated_at = broker_core::clock::now_micros();
    state.broker.accounts().update_user(&user).await?;
    // Other sessions of this user (perhaps someone who knew the old password) end.
    let (_, session) = ctx::state_and_session().await?;
    let current = session.id().map(|id| id.to_string());
    state
        .broker
        .accounts()
        .delete_user_sessions(&user.id, current.as_deref())
        .await?;
    ctx::flash("Your password is changed.").await;
    Ok(())
}

/// What the home page shows a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Welcome {
    /// The user.
    pub actor: Actor,
    /// Their participant, for a participant's user.
    pub participant: Option<ParticipantRow>,
    /// Their participant's endpoints.
    pub endpoints: Vec<EndpointRow>,
    /// A notice left by the last action.
    pub notice: Option<String>,
}

/// The home page's data.
#[server(prefix = "/fn", endpoint = "home_data")]
pub async fn home_data() -> Result<Welcome, AppError> {
    use crate::ctx;
    use dip_admin::service::Admin;
    let (state, actor) = ctx::actor().await?;
    let admin = Admin::new(&state.broker, &actor);
    let participant = match &actor.dip_id {
        Some(d) => Some(admin.participant(d).await?),
        None => None,
    };
    let endpoints = match &actor.dip_id {
        Some(_) => {
            let q = dip_admin::types::ListQuery::default();
            admin.endpoints(&q).await?.rows
        }
        None => Vec::new(),
    };
    Ok(Welcome {
        actor,
        participant,
        endpoints,
        notice: ctx::take_flash().await,
    })
}

/// The home page: who you are and what you can do.
#[component]
pub fn Home() -> impl IntoView {
    let data = Resource::new(|| (), |_| home_data());
    view! {
        <Title text="Home"/>
        <Loaded data view=|d| view! { <HomeView data=d/> }.into_any()/>
    }
}

#[component]
fn HomeView(data: Welcome) -> impl IntoView {
    let roles = data
        .actor
        .roles
        .iter()
        .map(|r| r.label())
        .collect::<Vec<_>>()
        .join(", ");
    view! {
        <h1>{format!("Welcome, {}", data.actor.display_name)}</h1>
        {data.notice.map(|n| view! { <Notice message=n/> })}
        {data.actor.must_change_password.then(|| view! {
            <div class="error-box" role="alert">
                <p>"Your password was reset. " <a href="/account">"Choose a new password"</a> " now."</p>
            </div>
        })}
        <p>"Your roles: " {roles}</p>
        {match data.participant {
            None => view! {
                <section class="cards">
                    <a class="card" href="/admin/participants"><h2>"Participants"</h2><p>"The directory: DIP IDs, roles, DCP nominations."</p></a>
                    <a class="card" href="/channels"><h2>"Channels"</h2><p>"Interfaces, routing, obfuscation, schemas."</p></a>
                    <a class="card" href="/admin/users"><h2>"Users"</h2><p>"Portal users and their roles."</p></a>
                    <a class="card" href="/admin/audit"><h2>"Audit log"</h2><p>"Every administrative change."</p></a>
                </section>
            }
            .into_any(),
            Some(p) => view! {
                <section>
                    <h2>{format!("{} ({})", p.name, p.dip_id)}</h2>
                    <dl class="facts">
                        <dt>"MPID"</dt><dd>{p.mpid}</dd>
                        <dt>"Roles"</dt><dd>{p.roles.join(", ")}</dd>
                        <dt>"Nominated DCPs"</dt><dd>{if p.nominated_dcps.is_empty() { "none".to_owned() } else { p.nominated_dcps.join(", ") }}</dd>
                    </dl>
                    <h2>"Endpoints"</h2>
                    {if data.endpoints.is_empty() {
                        view! { <p class="empty">"No endpoints yet: ask the platform operator to add one."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap"><table>
                                <thead><tr><th scope="col">"Queue"</th><th scope="col">"Delivery"</th><th scope="col">"Channels"</th></tr></thead>
                                <tbody>
                                    {data.endpoints.into_iter().map(|e| view! {
                                        <tr>
                                            <td>{e.id}</td>
                                            <td>{if e.url.is_empty() { "pull".to_owned() } else { e.url }}</td>
                                            <td>{if e.channels.is_empty() { "all others".to_owned() } else { e.channels.join(", ") }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table></div>
                        }.into_any()
                    }}
                </section>
            }
            .into_any(),
        }}
    }
}

/// The sign-in form. A plain form post (also with JavaScript on), so that the new
/// session cookie and the whole page arrive together.
#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let error = move || action.value().get().and_then(Result::err);
    let url = <SignIn as leptos::server_fn::ServerFn>::PATH;
    view! {
        <Title text="Sign in"/>
        <div class="narrow">
            <h1>"Sign in"</h1>
            {move || error().map(|e| view! { <ErrorBox error=e/> })}
            <form method="post" action=url class="form">
                <input type="hidden" name="next" value=next/>
                <Field name="username" label="Username" required=true autocomplete="username"
                    value=Signal::derive(move || error().and_then(|e| e.value("username")).unwrap_or_default())
                    error=Signal::derive(move || error().and_then(|e| e.field_error("username")))/>
                <Field name="password" label="Password" kind="password" required=true autocomplete="current-password"
                    value=Signal::derive(String::new) error=no_error()/>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </div>
    }
}

/// The user's own account: change password.
#[component]
pub fn AccountPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let me = super::use_me();
    let error = move || change.value().get().and_then(Result::err);
    let done = move || change.value().get().is_some_and(|r| r.is_ok());
    view! {
        <Title text="Your account"/>
        <div class="narrow">
            <h1>"Your account"</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(Some(a)) => view! { <p>{format!("Signed in as {} ({})", a.display_name, a.name)}</p> }.into_any(),
                        Ok(None) => view! { <ErrorBox error=AppError::SignInRequired/> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Suspense>
            <h2>"Change password"</h2>
            {move || done().then(|| view! { <Notice message="Your password is changed."/> })}
            {move || error().filter(|e| !matches!(e, AppError::Invalid { .. })).map(|e| view! { <ErrorBox error=e/> })}
            <ActionForm action=change attr:class="form">
                <Field name="current" label="Current password" kind="password" required=true autocomplete="current-password"
                    value=Signal::derive(String::new) error=Signal::derive(move || error().and_then(|e| e.field_error("current")))/>
                <Field name="new_password" label="New password" kind="password" required=true autocomplete="new-password"
                    hint="At least 12 characters, not containing your username."
                    value=Signal::derive(String::new) error=Signal::derive(move || error().and_then(|e| e.field_error("new_password")))/>
                <Field name="repeat" label="New password again" kind="password" required=true autocomplete="new-password"
                    value=Signal::derive(String::new) error=Signal::derive(move || error().and_then(|e| e.field_error("repeat")))/>
                <button type="submit" class="primary">"Change password"</button>
            </ActionForm>
        </div>
    }
}
