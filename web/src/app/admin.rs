//! The admin portal's pages and server functions: users, participants, channels,
//! endpoints, certificates and the audit log. Every server function checks rights on the
//! server through `portal::admin::Admin`, which the admin REST API shares.

// A server function takes one argument per form field.
#![allow(clippy::too_many_arguments)]

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::rows::*;
use super::types::{AppError, ListQuery, Page, PortalRole};
use super::ui::*;

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
mod server {
    use super::Screen;
    use crate::app::types::{Actor, AppError};
    pub use crate::portal::admin::{Admin, EndpointForm, NewUser, ParticipantForm, Saving, UserChange};
    pub use crate::portal::ctx::{actor, fail, flash, take_flash};

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
    pub async fn with_admin<T, F>(f: F) -> Result<T, crate::app::types::AppError>
    where
        F: AsyncFnOnce(&Admin<'_>, &crate::app::types::Actor) -> Result<T, crate::app::types::AppError>,
    {
        let (state, actor) = actor().await?;
        let admin = Admin::new(&state.broker, &actor);
        f(&admin, &actor).await.map_err(fail)
    }
}

#[cfg(feature = "ssr")]
fn need(confirm: Option<String>) -> Result<(), AppError> {
    if confirm.as_deref() == Some("yes") {
        Ok(())
    } else {
        Err(AppError::field("confirm", "Tick the box to confirm."))
    }
}

// ---------------------------------------------------------------- users

/// Users in the actor's scope.
#[server(prefix = "/fn", endpoint = "list_users")]
pub async fn list_users(query: ListQuery) -> Result<Screen<Page<UserRow>>, AppError> {
    server::with_admin(async |admin, actor| {
        let can_edit = actor.is_platform_admin() || actor.has(PortalRole::UserAdmin);
        server::screen_of(actor, can_edit, admin.users(&query).await?).await
    })
    .await
}

/// Creates a user.
#[server(prefix = "/fn", endpoint = "create_user")]
pub async fn create_user(
    username: String,
    display_name: String,
    email: String,
    dip_id: Option<String>,
    roles: Option<BTreeMap<String, String>>,
    password: String,
) -> Result<(), AppError> {
    server::with_admin(async |admin, actor| {
        let dip_id = dip_id.filter(|d| !d.trim().is_empty()).or_else(|| {
            // A participant's user administrator creates users of their own participant.
            (!actor.is_operator()).then(|| actor.dip_id.clone()).flatten()
        });
        let row = admin
            .create_user(server::NewUser {
                username,
                display_name,
                email,
                dip_id,
                roles: checked(roles),
                password,
            })
            .await?;
        server::flash(&format!("User {} created.", row.username)).await;
        Ok(())
    })
    .await
}

/// One user.
#[server(prefix = "/fn", endpoint = "get_user")]
pub async fn get_user(id: String) -> Result<Screen<UserRow>, AppError> {
    server::with_admin(async |admin, actor| {
        let user = admin.user(&id).await?;
        server::screen_of(actor, actor.manages_users_of(user.dip_id.as_deref()), user).await
    })
    .await
}

/// Changes a user's name, email and roles.
#[server(prefix = "/fn", endpoint = "update_user")]
pub async fn update_user(
    id: String,
    display_name: String,
    email: String,
    roles: Option<BTreeMap<String, String>>,
) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        let row = admin
            .update_user(
                &id,
                server::UserChange {
                    display_name,
                    email,
                    roles: checked(roles),
                },
            )
            .await?;
        server::flash(&format!("User {} saved.", row.username)).await;
        Ok(())
    })
    .await
}

/// Disables (ending their sessions) or enables a user.
#[server(prefix = "/fn", endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: String, disabled: bool, confirm: Option<String>) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        if disabled {
            need(confirm)?;
        }
        let row = admin.set_user_disabled(&id, disabled).await?;
        let what = if disabled {
            "disabled; their sessions are ended"
        } else {
            "enabled"
        };
        server::flash(&format!("User {} {what}.", row.username)).await;
        Ok(())
    })
    .await
}

/// Resets a user's password; the new one is shown once.
#[server(prefix = "/fn", endpoint = "reset_password")]
pub async fn reset_password(id: String, confirm: Option<String>) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        need(confirm)?;
        let password = admin.reset_password(&id).await?;
        server::flash(&format!(
            "Temporary password (shown once; the user must change it): {password}"
        ))
        .await;
        Ok(())
    })
    .await
}

fn role_options(operator: Option<bool>) -> Vec<(String, String)> {
    PortalRole::ALL
        .into_iter()
        .filter(|r| operator.is_none_or(|op| r.allowed_for(op)))
        .map(|r| (r.code().to_owned(), r.label().to_owned()))
        .collect()
}

fn role_labels(codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| {
            PortalRole::parse(c)
                .map(|r| r.label().to_owned())
                .unwrap_or_else(|| c.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn split(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The user list with the create form.
#[component]
pub fn UsersPage() -> impl IntoView {
    let query = use_list_query(&["dip_id"]);
    let create = ServerAction::<CreateUser>::new();
    let data = Resource::new(move || (query.get(), create.version().get()), |(q, _)| list_users(q));
    let error = move || create.value().get().and_then(Result::err);
    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <Loaded data view=move |screen| {
                        let operator = screen.operator;
                        let q = query.get_untracked();
                        let dip_filter = q.filters.get("dip_id").cloned().unwrap_or_default();
                        view! {
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            <FilterBar query=q.clone()>
                                {operator.then(|| view! {
                                    <label>"Participant (DIP ID)"
                                        <input name="dip_id" value=dip_filter inputmode="numeric"/>
                                    </label>
                                })}
                            </FilterBar>
                            <Table page=screen.data empty="No users match."
                                head=view! {
                                    <SortHeader column="username" label="Username" query=q.clone()/>
                                    <SortHeader column="name" label="Name" query=q.clone()/>
                                    <SortHeader column="participant" label="Participant" query=q.clone()/>
                                    <th scope="col">"Roles"</th>
                                    <th scope="col">"State"</th>
                                    <SortHeader column="last_sign_in" label="Last sign-in" query=q.clone()/>
                                }.into_any()
                                row=|u: UserRow| view! {
                                    <tr>
                                        <td><a href=format!("/admin/users/{}", u.id)>{u.username}</a></td>
                                        <td>{u.display_name}</td>
                                        <td>{u.dip_id.unwrap_or_else(|| "operator".into())}</td>
                                        <td>{role_labels(&u.roles)}</td>
                                        <td>{if u.disabled { view! { <span class="badge bad">"disabled"</span> } } else { view! { <span class="badge ok">"active"</span> } }}</td>
                                        <td>{u.last_sign_in.unwrap_or_else(|| "never".into())}</td>
                                    </tr>
                                }.into_any()/>
                            {screen.can_edit.then(|| view! {
                                <details open=error().is_some()>
                                    <summary>"Create a user"</summary>
                                    {move || error().filter(|e| !matches!(e, AppError::Invalid { .. })).map(|e| view! { <ErrorBox error=e/> })}
                                    <ActionForm action=create attr:class="form" attr:id="create-user">
                                        <Field name="username" label="Username" required=true
                                            value=Signal::derive(move || error().and_then(|e| e.value("username")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("username")))/>
                                        <Field name="display_name" label="Name" required=true
                                            value=Signal::derive(move || error().and_then(|e| e.value("display_name")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("display_name")))/>
                                        <Field name="email" label="Email" kind="email"
                                            value=Signal::derive(move || error().and_then(|e| e.value("email")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("email")))/>
                                        {operator.then(|| view! {
                                            <Field name="dip_id" label="Participant DIP ID" hint="Leave empty for operator staff."
                                                value=Signal::derive(move || error().and_then(|e| e.value("dip_id")).unwrap_or_default())
                                                error=Signal::derive(move || error().and_then(|e| e.field_error("dip_id")))/>
                                        })}
                                        <Checks name="roles" legend="Roles" options=role_options(None)
                                            checked=Signal::derive(move || split(error().and_then(|e| e.value("roles"))))
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("roles")))/>
                                        <Field name="password" label="Initial password" kind="password" required=true autocomplete="new-password"
                                            hint="At least 12 characters."
                                            value=Signal::derive(String::new)
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("password")))/>
                                        <button type="submit" class="primary">"Create user"</button>
                                    </ActionForm>
                                </details>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

/// One user: edit, disable or enable, reset password.
#[component]
pub fn UserPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let update = ServerAction::<UpdateUser>::new();
    let disable = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let data = Resource::new(
        move || {
            (
                id(),
                update.version().get(),
                disable.version().get(),
                reset.version().get(),
            )
        },
        |(id, ..)| get_user(id),
    );
    let error = move || update.value().get().and_then(Result::err);
    let other_error = move || {
        disable
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| reset.value().get().and_then(Result::err))
    };
    view! {
        <Title text="User"/>
        <p><a href="/admin/users">"← Users"</a></p>
        <Loaded data view=move |screen| {
                        let u = screen.data;
                        let operator = u.dip_id.is_none();
                        let roles = u.roles.clone();
                        let name = u.display_name.clone();
                        let email = u.email.clone();
                        view! {
                            <h1>{format!("User {}", u.username)}</h1>
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            {move || other_error().map(|e| view! { <ErrorBox error=e/> })}
                            <dl class="facts">
                                <dt>"Participant"</dt><dd>{u.dip_id.clone().unwrap_or_else(|| "operator".into())}</dd>
                                <dt>"State"</dt><dd>{if u.disabled { "disabled" } else { "active" }}</dd>
                                <dt>"Last sign-in"</dt><dd>{u.last_sign_in.clone().unwrap_or_else(|| "never".into())}</dd>
                            </dl>
                            {screen.can_edit.then(|| {
                                let (id1, id2, id3) = (u.id.clone(), u.id.clone(), u.id.clone());
                                view! {
                                    <h2>"Details and roles"</h2>
                                    <ActionForm action=update attr:class="form">
                                        <input type="hidden" name="id" value=id1/>
                                        <Field name="display_name" label="Name" required=true
                                            value=Signal::derive(move || error().and_then(|e| e.value("display_name")).unwrap_or_else(|| name.clone()))
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("display_name")))/>
                                        <Field name="email" label="Email" kind="email"
                                            value=Signal::derive(move || error().and_then(|e| e.value("email")).unwrap_or_else(|| email.clone()))
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("email")))/>
                                        <Checks name="roles" legend="Roles" options=role_options(Some(operator))
                                            checked=Signal::derive(move || error().and_then(|e| e.value("roles")).map(|v| split(Some(v))).unwrap_or_else(|| roles.clone()))
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("roles")))/>
                                        <button type="submit" class="primary">"Save"</button>
                                    </ActionForm>
                                    <h2>"Access"</h2>
                                    <div class="actions">
                                        <ActionForm action=disable attr:class="form">
                                            <input type="hidden" name="id" value=id2/>
                                            <input type="hidden" name="disabled" value=(!u.disabled).to_string()/>
                                            {(!u.disabled).then(|| view! { <Confirm label="Disable this user and end their sessions"/> })}
                                            <button type="submit" class=if u.disabled { "" } else { "danger" }>
                                                {if u.disabled { "Enable user" } else { "Disable user" }}
                                            </button>
                                        </ActionForm>
                                        <ActionForm action=reset attr:class="form">
                                            <input type="hidden" name="id" value=id3/>
                                            <Confirm label="Replace the password with a temporary one"/>
                                            <button type="submit" class="danger">"Reset password"</button>
                                        </ActionForm>
                                    </div>
                                }
                            })}
                        }
                        .into_any()
                    }/>

    }
}

// ---------------------------------------------------------------- participants

/// Participants in the actor's scope.
#[server(prefix = "/fn", endpoint = "list_participants")]
pub async fn list_participants(query: ListQuery) -> Result<Screen<Page<ParticipantRow>>, AppError> {
    server::platform_screen(async |admin| admin.participants(&query).await).await
}

/// One participant.
#[server(prefix = "/fn", endpoint = "get_participant")]
pub async fn get_participant(dip_id: String) -> Result<Screen<ParticipantRow>, AppError> {
    server::with_admin(async |admin, actor| {
        server::screen_of(actor, actor.is_platform_admin(), admin.participant(&dip_id).await?).await
    })
    .await
}

/// Creates (`create` = true) or saves a participant.
#[server(prefix = "/fn", endpoint = "save_participant")]
pub async fn save_participant(
    create: bool,
    dip_id: String,
    mpid: String,
    name: String,
    kind: String,
    roles: Option<BTreeMap<String, String>>,
    nominated_dcps: String,
    active: Option<String>,
    signatures_required: Option<String>,
) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        let row = admin
            .save_participant(
                server::ParticipantForm {
                    dip_id,
                    mpid,
                    name,
                    kind,
                    roles: checked(roles),
                    nominated_dcps: nominated_dcps
                        .split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    active: active.is_some(),
                    signatures_required: signatures_required.is_some(),
                },
                create,
            )
            .await?;
        let what = if create { "created" } else { "saved" };
        server::flash(&format!("Participant {} ({}) {what}.", row.name, row.dip_id)).await;
        Ok(())
    })
    .await
}

/// The market roles, for forms.
#[server(prefix = "/fn", endpoint = "market_roles")]
pub async fn market_roles() -> Result<Vec<MarketRole>, AppError> {
    server::with_admin(async |admin, _| admin.market_roles().await).await
}

#[component]
fn ParticipantForm(
    action: ServerAction<SaveParticipant>,
    create: bool,
    current: Option<ParticipantRow>,
    market: Vec<MarketRole>,
) -> impl IntoView {
    let error = move || action.value().get().and_then(Result::err);
    let cur = current.clone().unwrap_or(ParticipantRow {
        dip_id: String::new(),
        mpid: String::new(),
        name: String::new(),
        kind: "participant".into(),
        roles: vec![],
        nominated_dcps: vec![],
        active: true,
        signatures_required: false,
    });
    let value = move |name: &'static str, stored: String| {
        Signal::derive(move || error().and_then(|e| e.value(name)).unwrap_or_else(|| stored.clone()))
    };
    let field_error = move |name: &'static str| Signal::derive(move || error().and_then(|e| e.field_error(name)));
    let roles = cur.roles.clone();
    let kind = cur.kind.clone();
    view! {
        {move || error().filter(|e| !matches!(e, AppError::Invalid { .. })).map(|e| view! { <ErrorBox error=e/> })}
        <ActionForm action attr:class="form" attr:id=if create { "create-participant" } else { "edit-participant" }>
            <input type="hidden" name="create" value=create.to_string()/>
            {if create {
                view! { <Field name="dip_id" label="DIP ID" required=true hint="10 digits." value=value("dip_id", String::new()) error=field_error("dip_id")/> }.into_any()
            } else {
                view! { <input type="hidden" name="dip_id" value=cur.dip_id.clone()/> }.into_any()
            }}
            <Field name="mpid" label="MPID" required=true value=value("mpid", cur.mpid.clone()) error=field_error("mpid")/>
            <Field name="name" label="Organisation name" required=true value=value("name", cur.name.clone()) error=field_error("name")/>
            <div class="field">
                <label for="f-kind">"Kind"</label>
                <select id="f-kind" name="kind">
                    <option value="participant" selected=kind == "participant">"Market participant"</option>
                    <option value="dcp" selected=kind == "dcp">"DIP Connection Provider"</option>
                </select>
            </div>
            <Checks name="roles" legend="Market roles"
                options=market.into_iter().map(|r| (r.code.clone(), format!("{} — {}", r.code, r.name))).collect()
                checked=Signal::derive(move || error().and_then(|e| e.value("roles")).map(|v| split(Some(v))).unwrap_or_else(|| roles.clone()))
                error=field_error("roles")/>
            <Field name="nominated_dcps" label="Nominated DCPs" hint="DIP IDs, separated by commas."
                value=value("nominated_dcps", cur.nominated_dcps.join(",")) error=field_error("nominated_dcps")/>
            <label class="check"><input type="checkbox" name="active" value="on" checked=cur.active/>"Active"</label>
            <label class="check"><input type="checkbox" name="signatures_required" value="on" checked=cur.signatures_required/>"Require signed requests"</label>
            <button type="submit" class="primary">{if create { "Create participant" } else { "Save" }}</button>
        </ActionForm>
    }
}

/// The participant list with the create form.
#[component]
pub fn ParticipantsPage() -> impl IntoView {
    let query = use_list_query(&["kind", "role"]);
    let create = ServerAction::<SaveParticipant>::new();
    let data = Resource::new(
        move || (query.get(), create.version().get()),
        |(q, _)| async move { Ok((list_participants(q).await?, market_roles().await?)) },
    );
    view! {
        <Title text="Participants"/>
        <h1>"Participants"</h1>
        <Loaded data view=move |(screen, market)| {
                        let q = query.get_untracked();
                        let open = create.value().get().is_some_and(|r| r.is_err());
                        let role_filter: Vec<(String, String)> = market.iter().map(|r| (r.code.clone(), r.code.clone())).collect();
                        let (q_kind, q_role) = (q.clone(), q.clone());
                        view! {
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            <FilterBar query=q.clone()>
                                <FilterSelect name="kind" label="Kind" query=q_kind
                                    options=vec![("participant".into(), "Participant".into()), ("dcp".into(), "DCP".into())]/>
                                <FilterSelect name="role" label="Role" query=q_role
                                    options=role_filter/>
                            </FilterBar>
                            <Table page=screen.data empty="No participants match."
                                head=view! {
                                    <SortHeader column="dip_id" label="DIP ID" query=q.clone()/>
                                    <SortHeader column="mpid" label="MPID" query=q.clone()/>
                                    <SortHeader column="name" label="Name" query=q.clone()/>
                                    <SortHeader column="kind" label="Kind" query=q.clone()/>
                                    <th scope="col">"Roles"</th>
                                    <th scope="col">"State"</th>
                                }.into_any()
                                row=|p: ParticipantRow| view! {
                                    <tr>
                                        <td><a href=format!("/admin/participants/{}", p.dip_id)>{p.dip_id.clone()}</a></td>
                                        <td>{p.mpid}</td>
                                        <td>{p.name}</td>
                                        <td>{p.kind}</td>
                                        <td>{p.roles.join(", ")}</td>
                                        <td>{if p.active { view! { <span class="badge ok">"active"</span> } } else { view! { <span class="badge bad">"inactive"</span> } }}</td>
                                    </tr>
                                }.into_any()/>
                            {screen.can_edit.then(|| view! {
                                <details open=open>
                                    <summary>"Create a participant"</summary>
                                    <ParticipantForm action=create create=true current=None market/>
                                </details>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

/// One participant, editable by platform administrators.
#[component]
pub fn ParticipantPage() -> impl IntoView {
    let params = use_params_map();
    let save = ServerAction::<SaveParticipant>::new();
    let data = Resource::new(
        move || (params.read().get("dip").unwrap_or_default(), save.version().get()),
        |(d, _)| async move { Ok((get_participant(d).await?, market_roles().await?)) },
    );
    view! {
        <Title text="Participant"/>
        <p><a href="/admin/participants">"← Participants"</a></p>
        <Loaded data view=move |(screen, market)| view! {
                        <h1>{format!("{} ({})", screen.data.name, screen.data.dip_id)}</h1>
                        {screen.notice.map(|n| view! { <Notice message=n/> })}
                        {if screen.can_edit {
                            view! { <ParticipantForm action=save create=false current=Some(screen.data) market/> }.into_any()
                        } else {
                            view! {
                                <dl class="facts">
                                    <dt>"MPID"</dt><dd>{screen.data.mpid}</dd>
                                    <dt>"Roles"</dt><dd>{screen.data.roles.join(", ")}</dd>
                                </dl>
                            }.into_any()
                        }}
                    }
                    .into_any()/>

    }
}

// ---------------------------------------------------------------- channels

/// The channel catalogue (every signed-in user may read it).
#[server(prefix = "/fn", endpoint = "list_channels")]
pub async fn list_channels(query: ListQuery) -> Result<Screen<Page<ChannelRow>>, AppError> {
    server::with_admin(async |admin, actor| {
        server::screen_of(actor, actor.is_platform_admin(), admin.channels(&query).await?).await
    })
    .await
}

/// Creates a channel as a copy of a template channel.
#[server(prefix = "/fn", endpoint = "create_channel")]
pub async fn create_channel(template: String, id: String, name: String) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        let row = admin.create_channel_from_template(&template, &id, &name).await?;
        // The notice rides in the URL: the list page refetching at the same moment
        // would otherwise take a session notice first.
        leptos_axum::redirect(&format!("/channels/{}?from={template}", row.id));
        Ok(())
    })
    .await
}

/// One channel.
#[server(prefix = "/fn", endpoint = "get_channel")]
pub async fn get_channel(id: String) -> Result<Screen<ChannelDetail>, AppError> {
    server::with_admin(async |admin, actor| {
        server::screen_of(actor, actor.is_platform_admin(), admin.channel(&id).await?).await
    })
    .await
}

/// Saves the editable rules of a channel; the change applies to the next message.
#[server(prefix = "/fn", endpoint = "update_channel")]
pub async fn update_channel(
    id: String,
    name: String,
    description: String,
    sender_roles: Option<BTreeMap<String, String>>,
    recipient_roles: Option<BTreeMap<String, String>>,
    routing: Option<BTreeMap<String, String>>,
    mpan_roles: Option<BTreeMap<String, String>>,
    always: String,
    obfuscation: String,
    retention_days: String,
    versions: Option<BTreeMap<String, String>>,
) -> Result<(), AppError> {
    use crate::portal::admin::{parse_always, parse_obfuscation, parse_routing};
    server::with_admin(async |admin, _| {
        let mut channel = admin.channel_definition(&id).await?;
        let mut errors = BTreeMap::new();
        channel.name = name.trim().to_owned();
        channel.description = description.trim().to_owned();
        channel.sender_roles = checked(sender_roles);
        channel.recipient_roles = checked(recipient_roles);
        channel.mpan_roles = checked(mpan_roles);
        channel.routing = checked(routing).iter().filter_map(|m| parse_routing(m)).collect();
        match always
            .split([',', '\n'])
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_always(s).ok_or(s.trim().to_owned()))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(rules) => channel.always = rules,
            Err(bad) => {
                errors.insert(
                    "always".to_owned(),
                    format!("{bad:?}: write role:CODE or participant:DIPID."),
                );
            }
        }
        match parse_obfuscation(&obfuscation) {
            Ok(map) => channel.obfuscation = map,
            Err(e) => {
                errors.insert("obfuscation".to_owned(), e);
            }
        }
        match retention_days.trim().parse::<u32>() {
            Ok(d) if (1..=36_500).contains(&d) => channel.retention_days = d,
            _ => {
                errors.insert("retention_days".to_owned(), "Days from 1 to 36500.".to_owned());
            }
        }
        let keep: Vec<String> = checked(versions)
            .iter()
            .map(|k| k.trim_start_matches('v').to_owned())
            .collect();
        channel.schema.retain(|v| keep.contains(&v.version));
        if !errors.is_empty() {
            return Err(AppError::Invalid {
                message: "Please correct the marked fields.".into(),
                fields: errors,
                values: BTreeMap::from([("always".to_owned(), always), ("obfuscation".to_owned(), obfuscation)]),
            });
        }
        admin.save_channel(channel, false).await?;
        server::flash(&format!("Channel {id} saved; the next message follows the new rules.")).await;
        Ok(())
    })
    .await
}

/// The channel catalogue with the create-from-template form.
#[component]
pub fn ChannelsPage() -> impl IntoView {
    let query = use_list_query(&["role"]);
    let create = ServerAction::<CreateChannel>::new();
    let data = Resource::new(move || (query.get(), create.version().get()), |(q, _)| list_channels(q));
    let error = move || create.value().get().and_then(Result::err);
    view! {
        <Title text="Channels"/>
        <h1>"Channels"</h1>
        <Loaded data view=move |screen| {
                        let q = query.get_untracked();
                        let templates: Vec<String> = screen.data.rows.iter().map(|c| c.id.clone()).collect();
                        let role_filter = q.filters.get("role").cloned().unwrap_or_default();
                        view! {
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            <FilterBar query=q.clone()>
                                <label>"Role" <input name="role" value=role_filter size="6"/></label>
                            </FilterBar>
                            <Table page=screen.data empty="No channels match."
                                head=view! {
                                    <SortHeader column="id" label="Interface" query=q.clone()/>
                                    <SortHeader column="name" label="Name" query=q.clone()/>
                                    <SortHeader column="process" label="Business process" query=q.clone()/>
                                    <th scope="col">"Senders"</th>
                                    <th scope="col">"Recipients"</th>
                                    <th scope="col">"Routing"</th>
                                    <th scope="col">"Schema versions"</th>
                                }.into_any()
                                row=|c: ChannelRow| view! {
                                    <tr>
                                        <td><a href=format!("/channels/{}", c.id)>{c.id.clone()}</a></td>
                                        <td>{c.name}</td>
                                        <td>{c.business_process}</td>
                                        <td>{c.sender_roles.join(", ")}</td>
                                        <td>{c.recipient_roles.join(", ")}</td>
                                        <td>{c.routing.join(", ")}</td>
                                        <td>{c.versions.join(", ")}</td>
                                    </tr>
                                }.into_any()/>
                            {screen.can_edit.then(|| view! {
                                <details open=error().is_some()>
                                    <summary>"Create a channel from a template"</summary>
                                    {move || error().filter(|e| !matches!(e, AppError::Invalid { .. })).map(|e| view! { <ErrorBox error=e/> })}
                                    <ActionForm action=create attr:class="form" attr:id="create-channel">
                                        <div class="field">
                                            <label for="f-template">"Template"</label>
                                            <select id="f-template" name="template">
                                                {templates.into_iter().map(|t| view! { <option value=t.clone()>{t.clone()}</option> }).collect_view()}
                                            </select>
                                        </div>
                                        <Field name="id" label="Interface id" required=true hint="IF- and three digits, e.g. IF-901."
                                            value=Signal::derive(move || error().and_then(|e| e.value("id")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("id").or_else(|| e.field_error("channel"))))/>
                                        <Field name="name" label="Name" required=true
                                            value=Signal::derive(move || error().and_then(|e| e.value("name")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("name")))/>
                                        <button type="submit" class="primary">"Create channel"</button>
                                    </ActionForm>
                                </details>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

/// One channel: its rules, editable by platform administrators.
#[component]
pub fn ChannelPage() -> impl IntoView {
    let params = use_params_map();
    let save = ServerAction::<UpdateChannel>::new();
    let data = Resource::new(
        move || (params.read().get("id").unwrap_or_default(), save.version().get()),
        |(id, _)| get_channel(id),
    );
    let error = move || save.value().get().and_then(Result::err);
    let query = leptos_router::hooks::use_query_map();
    let created_from = move || query.read().get("from");
    view! {
        <Title text="Channel"/>
        <p><a href="/channels">"← Channels"</a></p>
        <Loaded data view=move |screen| {
                        let d = screen.data;
                        let roles: Vec<(String, String)> = d.market_roles.iter().map(|r| (r.code.clone(), r.code.clone())).collect();
                        let c = d.row.clone();
                        let (senders, recipients, routing, mpan, versions) =
                            (c.sender_roles.clone(), c.recipient_roles.clone(), c.routing.clone(), d.mpan_roles.clone(), c.versions.clone());
                        let (always, obfuscation) = (d.always.join(", "), d.obfuscation.clone());
                        let version_options: Vec<(String, String)> = versions.iter().map(|v| (format!("v{v}"), v.clone())).collect();
                        let version_keys: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                        view! {
                            <h1>{format!("{} {}", c.id, c.name)}</h1>
                            {created_from().map(|t| view! { <Notice message=format!("Channel {} created from {t}.", c.id)/> })}
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            {move || error().map(|e| view! { <ErrorBox error=e/> })}
                            <dl class="facts">
                                <dt>"Business process"</dt><dd>{c.business_process.clone()}</dd>
                                <dt>"Security category"</dt><dd>{d.security_category}</dd>
                                <dt>"Senders"</dt><dd>{c.sender_roles.join(", ")}</dd>
                                <dt>"Recipients"</dt><dd>{c.recipient_roles.join(", ")}</dd>
                                <dt>"Routing"</dt><dd>{c.routing.join(", ")}</dd>
                            </dl>
                            {screen.can_edit.then(|| view! {
                                <h2>"Rules"</h2>
                                <ActionForm action=save attr:class="form" attr:id="edit-channel">
                                    <input type="hidden" name="id" value=c.id.clone()/>
                                    <Field name="name" label="Name" required=true value=c.name.clone() error=no_error()/>
                                    <Field name="description" label="Description" value=d.description.clone() error=no_error()/>
                                    <Checks name="sender_roles" legend="Sender roles" options=roles.clone() checked=senders error=no_error()/>
                                    <Checks name="recipient_roles" legend="Recipient roles" options=roles.clone() checked=recipients error=no_error()/>
                                    <Checks name="routing" legend="Routing modes"
                                        options=vec![("targeted".into(), "Targeted (primary recipients)".into()), ("mpan".into(), "By MPAN appointment".into()), ("always".into(), "Always".into())]
                                        checked=routing error=no_error()/>
                                    <Checks name="mpan_roles" legend="Roles resolved by MPAN" options=roles.clone() checked=mpan error=no_error()/>
                                    <Field name="always" label="Always send to" hint="role:CODE or participant:DIPID, separated by commas."
                                        value=Signal::derive(move || error().and_then(|e| e.value("always")).unwrap_or_else(|| always.clone()))
                                        error=Signal::derive(move || error().and_then(|e| e.field_error("always")))/>
                                    <div class="field" class:invalid=move || error().and_then(|e| e.field_error("obfuscation")).is_some()>
                                        <label for="f-obfuscation">"Obfuscation"</label>
                                        <p class="hint" id="f-obfuscation-hint">"One line per recipient role: the role, then the JSON pointers it must not see."</p>
                                        <textarea id="f-obfuscation" name="obfuscation" rows="4" aria-describedby="f-obfuscation-hint">
                                            {move || error().and_then(|e| e.value("obfuscation")).unwrap_or_else(|| obfuscation.clone())}
                                        </textarea>
                                        {move || error().and_then(|e| e.field_error("obfuscation")).map(|e| view! { <p class="field-error">{e}</p> })}
                                    </div>
                                    <Field name="retention_days" label="Archive retention (days)" kind="number" required=true
                                        value=c.retention_days.to_string()
                                        error=Signal::derive(move || error().and_then(|e| e.field_error("retention_days")))/>
                                    // Keys are prefixed: a bare number in brackets would read as a list index.
                                    <Checks name="versions" legend="Accepted schema versions (untick to withdraw)"
                                        options=version_options checked=version_keys error=no_error()/>
                                    <button type="submit" class="primary">"Save channel"</button>
                                </ActionForm>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

// ---------------------------------------------------------------- endpoints

/// Endpoints in the actor's scope.
#[server(prefix = "/fn", endpoint = "list_endpoints")]
pub async fn list_endpoints(query: ListQuery) -> Result<Screen<Page<EndpointRow>>, AppError> {
    server::platform_screen(async |admin| admin.endpoints(&query).await).await
}

/// Adds an endpoint, or changes the one of that participant and name.
#[server(prefix = "/fn", endpoint = "save_endpoint")]
pub async fn save_endpoint(dip_id: String, name: String, url: String, channels: String) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        let form = server::EndpointForm {
            dip_id,
            name,
            url,
            channels: channels
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let row = admin.save_endpoint(form, server::Saving::Either).await?;
        server::flash(&format!("Endpoint {} saved.", row.id)).await;
        Ok(())
    })
    .await
}

/// The endpoint list with the add/change form.
#[component]
pub fn EndpointsPage() -> impl IntoView {
    let query = use_list_query(&[]);
    let save = ServerAction::<SaveEndpoint>::new();
    let data = Resource::new(move || (query.get(), save.version().get()), |(q, _)| list_endpoints(q));
    let error = move || save.value().get().and_then(Result::err);
    let v = move |n: &'static str| Signal::derive(move || error().and_then(|e| e.value(n)).unwrap_or_default());
    let fe = move |n: &'static str| Signal::derive(move || error().and_then(|e| e.field_error(n)));
    view! {
        <Title text="Endpoints"/>
        <h1>"Endpoints"</h1>
        <Loaded data view=move |screen| {
                        let q = query.get_untracked();
                        view! {
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            <FilterBar query=q.clone()/>
                            <Table page=screen.data empty="No endpoints match."
                                head=view! {
                                    <SortHeader column="id" label="Queue" query=q.clone()/>
                                    <SortHeader column="url" label="Webhook" query=q.clone()/>
                                    <th scope="col">"Channels"</th>
                                }.into_any()
                                row=|e: EndpointRow| view! {
                                    <tr>
                                        <td>{e.id}</td>
                                        <td>{if e.url.is_empty() { "pull".to_owned() } else { e.url }}</td>
                                        <td>{if e.channels.is_empty() { "all others".to_owned() } else { e.channels.join(", ") }}</td>
                                    </tr>
                                }.into_any()/>
                            {screen.can_edit.then(|| view! {
                                <details open=error().is_some()>
                                    <summary>"Add or change an endpoint"</summary>
                                    {move || error().filter(|e| !matches!(e, AppError::Invalid { .. })).map(|e| view! { <ErrorBox error=e/> })}
                                    <ActionForm action=save attr:class="form">
                                        <Field name="dip_id" label="Participant DIP ID" required=true value=v("dip_id") error=fe("dip_id")/>
                                        <Field name="name" label="Endpoint name" required=true value=v("name") error=fe("name")/>
                                        <Field name="url" label="Webhook URL" kind="url" hint="Empty: the participant pulls." value=v("url") error=fe("url")/>
                                        <Field name="channels" label="Channels" hint="Interface ids separated by commas; empty takes every channel not assigned elsewhere."
                                            value=v("channels") error=fe("channels")/>
                                        <button type="submit" class="primary">"Save endpoint"</button>
                                    </ActionForm>
                                </details>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

// ---------------------------------------------------------------- certificates

/// Certificates in the actor's scope.
#[server(prefix = "/fn", endpoint = "list_certificates")]
pub async fn list_certificates(query: ListQuery) -> Result<Screen<Page<CertificateRow>>, AppError> {
    server::platform_screen(async |admin| admin.certificates(&query).await).await
}

/// Registers a certificate (PEM) to a participant.
#[server(prefix = "/fn", endpoint = "register_certificate")]
pub async fn register_certificate(dip_id: String, pem: String) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        let row = admin.register_certificate(dip_id.trim(), &pem).await?;
        server::flash(&format!(
            "Certificate {} registered to {}.",
            row.fingerprint, row.dip_id
        ))
        .await;
        Ok(())
    })
    .await
}

/// Revokes a certificate.
#[server(prefix = "/fn", endpoint = "revoke_certificate")]
pub async fn revoke_certificate(fingerprint: String, confirm: Option<String>) -> Result<(), AppError> {
    server::with_admin(async |admin, _| {
        need(confirm)?;
        admin.revoke_certificate(&fingerprint).await?;
        server::flash(&format!("Certificate {fingerprint} revoked.")).await;
        Ok(())
    })
    .await
}

/// Certificates with their status, the register form and revocation.
#[component]
pub fn CertificatesPage() -> impl IntoView {
    let query = use_list_query(&["status"]);
    let register = ServerAction::<RegisterCertificate>::new();
    let revoke = ServerAction::<RevokeCertificate>::new();
    let data = Resource::new(
        move || (query.get(), register.version().get(), revoke.version().get()),
        |(q, ..)| list_certificates(q),
    );
    let error = move || register.value().get().and_then(Result::err);
    view! {
        <Title text="Certificates"/>
        <h1>"Certificates"</h1>
        {move || revoke.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
        <Loaded data view=move |screen| {
                        let q = query.get_untracked();
                        let can_edit = screen.can_edit;
                        let rows = screen.data.rows.clone();
                        let q_status = q.clone();
                        view! {
                            {screen.notice.map(|n| view! { <Notice message=n/> })}
                            <FilterBar query=q.clone()>
                                <FilterSelect name="status" label="Status" query=q_status
                                    options=["active", "expiring", "expired", "revoked"].iter().map(|s| (s.to_string(), s.to_string())).collect()/>
                            </FilterBar>
                            <Table page=screen.data empty="No certificates match."
                                head=view! {
                                    <SortHeader column="holder" label="Holder" query=q.clone()/>
                                    <th scope="col">"Subject"</th>
                                    <SortHeader column="expiry" label="Valid until" query=q.clone()/>
                                    <SortHeader column="status" label="Status" query=q.clone()/>
                                    <SortHeader column="fingerprint" label="Fingerprint" query=q.clone()/>
                                }.into_any()
                                row=|c: CertificateRow| {
                                    let badge = match c.status.as_str() { "active" => "badge ok", "expiring" => "badge warn", _ => "badge bad" };
                                    view! {
                                        <tr>
                                            <td>{c.dip_id}</td>
                                            <td>{c.subject}</td>
                                            <td>{c.not_after}</td>
                                            <td><span class=badge>{c.status}</span></td>
                                            <td><code>{c.fingerprint}</code></td>
                                        </tr>
                                    }.into_any()
                                }/>
                            {can_edit.then(|| view! {
                                <details>
                                    <summary>"Revoke a certificate"</summary>
                                    <ActionForm action=revoke attr:class="form">
                                        <div class="field">
                                            <label for="f-fingerprint">"Certificate"</label>
                                            <select id="f-fingerprint" name="fingerprint">
                                                {rows.into_iter().filter(|c| c.status != "revoked").map(|c| view! {
                                                    <option value=c.fingerprint.clone()>{format!("{} — {} — {}", c.dip_id, c.subject, &c.fingerprint[..16.min(c.fingerprint.len())])}</option>
                                                }).collect_view()}
                                            </select>
                                        </div>
                                        <Confirm label="Revoke: the holder can no longer use it, on open connections too"/>
                                        <button type="submit" class="danger">"Revoke"</button>
                                    </ActionForm>
                                </details>
                                <details open=error().is_some()>
                                    <summary>"Register a certificate"</summary>
                                    <ActionForm action=register attr:class="form">
                                        <Field name="dip_id" label="Holder DIP ID" required=true
                                            value=Signal::derive(move || error().and_then(|e| e.value("dip_id")).unwrap_or_default())
                                            error=Signal::derive(move || error().and_then(|e| e.field_error("dip_id")))/>
                                        <div class="field" class:invalid=move || error().and_then(|e| e.field_error("pem")).is_some()>
                                            <label for="f-pem">"Certificate (PEM)"</label>
                                            <textarea id="f-pem" name="pem" rows="8" required=true>
                                                {move || error().and_then(|e| e.value("pem")).unwrap_or_default()}
                                            </textarea>
                                            {move || error().and_then(|e| e.field_error("pem")).map(|e| view! { <p class="field-error">{e}</p> })}
                                        </div>
                                        <button type="submit" class="primary">"Register"</button>
                                    </ActionForm>
                                </details>
                            })}
                        }
                        .into_any()
                    }/>

    }
}

// ---------------------------------------------------------------- audit log

/// A page of the admin audit log.
#[server(prefix = "/fn", endpoint = "list_audit")]
pub async fn list_audit(query: ListQuery) -> Result<Page<AuditRow>, AppError> {
    server::with_admin(async |admin, _| admin.audit_log(&query).await).await
}

/// The admin audit log, newest first.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_list_query(&["actor", "action"]);
    let data = Resource::new(move || query.get(), list_audit);
    view! {
        <Title text="Audit log"/>
        <h1>"Audit log"</h1>
        <p>"Every administrative change, newest first. Entries cannot be changed or removed."</p>
        <Loaded data view=move |page| {
                        let q = query.get_untracked();
                        let actor_filter = q.filters.get("actor").cloned().unwrap_or_default();
                        let q_action = q.clone();
                        view! {
                            <FilterBar query=q.clone()>
                                <label>"Actor" <input name="actor" value=actor_filter/></label>
                                <FilterSelect name="action" label="Action" query=q_action
                                    options=["user.", "participant.", "channel.", "endpoint.", "certificate."].iter().map(|s| (s.to_string(), s.trim_end_matches('.').to_string())).collect()/>
                            </FilterBar>
                            <Table page empty="No entries match."
                                head=view! {
                                    <th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"Action"</th>
                                    <th scope="col">"Target"</th><th scope="col">"Change"</th>
                                }.into_any()
                                row=|e: AuditRow| view! {
                                    <tr>
                                        <td>{e.at}</td><td>{e.actor}</td><td>{e.action}</td><td>{e.target}</td>
                                        <td><pre class="json">{e.detail}</pre></td>
                                    </tr>
                                }.into_any()/>
                        }
                        .into_any()
                    }/>

    }
}
