//! Participants and DCPs: the list, and creating or editing one with its market roles.

use std::collections::BTreeMap;

use dip_admin::rows::{MarketRole, ParticipantRow};
use dip_admin::types::{AppError, ListQuery, Page};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[cfg(feature = "ssr")]
use super::server;
use super::{Screen, split};
use crate::app::ui::*;

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
