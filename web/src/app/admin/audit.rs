//! The audit log of administrative actions.

use dip_admin::rows::AuditRow;
use dip_admin::types::{AppError, ListQuery, Page};
use leptos::prelude::*;
use leptos_meta::Title;

#[cfg(feature = "ssr")]
use super::server;
use crate::app::ui::*;

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
