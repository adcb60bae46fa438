//! Endpoints: participants' webhook URLs (or pull) and the channels each takes.

use dip_admin::rows::EndpointRow;
use dip_admin::types::{AppError, ListQuery, Page};
use leptos::prelude::*;
use leptos_meta::Title;

use super::Screen;
#[cfg(feature = "ssr")]
use super::server;
use crate::app::ui::*;

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
