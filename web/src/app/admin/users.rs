//! Users: the list, creating, editing, disabling and resetting passwords.

use std::collections::BTreeMap;

use dip_admin::rows::UserRow;
use dip_admin::types::{AppError, ListQuery, Page, PortalRole};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::{Screen, split};
#[cfg(feature = "ssr")]
use super::{need, server};
use crate::app::ui::*;

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
