//! Certificates: registering a participant's X.509 certificate, the list with expiry, revoking.

use dip_admin::rows::CertificateRow;
use dip_admin::types::{AppError, ListQuery, Page};
use leptos::prelude::*;
use leptos_meta::Title;

use super::Screen;
#[cfg(feature = "ssr")]
use super::{need, server};
use crate::app::ui::*;

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
