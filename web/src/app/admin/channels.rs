//! Channels: the list, new channels from the catalogue's templates, and a channel's routing, always rules and obfuscation.

use std::collections::BTreeMap;

use dip_admin::rows::{ChannelDetail, ChannelRow};
use dip_admin::types::{AppError, ListQuery, Page};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::Screen;
#[cfg(feature = "ssr")]
use super::server;
use crate::app::ui::*;

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
    use dip_admin::service::{parse_always, parse_obfuscation, parse_routing};
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
