//! The alarms page (spec 5.11, 5.11.4): rules with their current state, the raise and
//! clear history, creating and deleting rules, and choosing which to receive by email.

use leptos::prelude::*;
use leptos_meta::Title;

use dip_admin::types::AppError;
pub use dip_reporting::alarm_views::*;
#[cfg(feature = "ssr")]
use dip_reporting::alarms::service;

use super::ui::*;
#[cfg(feature = "ssr")]
use crate::ctx;

/// The page's data.
#[server(prefix = "/fn", endpoint = "load_alarms")]
pub async fn load_alarms() -> Result<(AlarmsView, Option<String>), AppError> {
    let (state, actor) = ctx::actor().await?;
    let view = service::view(&state.broker, &state.analytics, &actor)
        .await
        .map_err(ctx::fail)?;
    Ok((view, ctx::take_flash().await))
}

/// Creates a rule.
#[server(prefix = "/fn", endpoint = "create_alarm")]
pub async fn create_alarm(
    name: String,
    kind: String,
    channel: String,
    recipient: String,
    threshold: String,
    window_minutes: String,
) -> Result<(), AppError> {
    let (state, actor) = ctx::actor().await?;
    let form = AlarmForm {
        name,
        kind,
        channel,
        recipient,
        threshold,
        window_minutes,
    };
    let rule = service::create(&state.broker, &state.analytics, &actor, form)
        .await
        .map_err(ctx::fail)?;
    ctx::flash(&format!("Alarm “{}” created; you receive its notices.", rule.name)).await;
    Ok(())
}

/// Deletes a rule.
#[server(prefix = "/fn", endpoint = "delete_alarm")]
pub async fn delete_alarm(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, actor) = ctx::actor().await?;
    if confirm.as_deref() != Some("yes") {
        return Err(ctx::fail(AppError::field("confirm", "Tick the box to confirm.")));
    }
    let name = service::delete(&state.broker, &actor, &id).await.map_err(ctx::fail)?;
    ctx::flash(&format!("Alarm “{name}” deleted.")).await;
    Ok(())
}

/// Receives a rule's notices by email, or stops.
#[server(prefix = "/fn", endpoint = "subscribe_alarm")]
pub async fn subscribe_alarm(id: String, on: String) -> Result<(), AppError> {
    let (state, actor) = ctx::actor().await?;
    let on = on == "yes";
    let name = service::subscribe(&state.broker, &actor, &id, on)
        .await
        .map_err(ctx::fail)?;
    ctx::flash(&if on {
        format!("You will receive “{name}” by email.")
    } else {
        format!("You no longer receive “{name}”.")
    })
    .await;
    Ok(())
}

/// Sets where the viewer's notices go.
#[server(prefix = "/fn", endpoint = "save_alarm_email")]
pub async fn save_alarm_email(email: String) -> Result<(), AppError> {
    let (state, actor) = ctx::actor().await?;
    service::set_email(&state.broker, &actor, &email)
        .await
        .map_err(ctx::fail)?;
    ctx::flash("Email address saved.").await;
    Ok(())
}

/// `/alarms`.
#[component]
pub fn AlarmsPage() -> impl IntoView {
    let create = ServerAction::<CreateAlarm>::new();
    let delete = ServerAction::<DeleteAlarm>::new();
    let subscribe = ServerAction::<SubscribeAlarm>::new();
    let email = ServerAction::<SaveAlarmEmail>::new();
    let data = Resource::new(
        move || {
            (
                create.version().get(),
                delete.version().get(),
                subscribe.version().get(),
                email.version().get(),
            )
        },
        |_| load_alarms(),
    );
    let create_error = move || create.value().get().and_then(Result::err);
    let email_error = move || email.value().get().and_then(Result::err);
    view! {
        <Title text="Alarms"/>
        <h1>"Alarms"</h1>
        <p>"Rules evaluated continuously. When one is raised or cleared, everyone who chose to receive it gets an email."</p>
        {move || {
            [delete.value().get(), subscribe.value().get()]
                .into_iter()
                .flatten()
                .find_map(Result::err)
                .map(|e| view! { <ErrorBox error=e/> })
        }}
        <Loaded data view=move |(v, notice): (AlarmsView, Option<String>)| {
            let channels = v.channels.clone();
            let participants = v.participants.clone();
            let email_value = v.email.clone();
            view! {
                {notice.map(|n| view! { <Notice message=n/> })}
                <ActionForm action=email attr:class="form inline-form">
                    <Field name="email" label="Your email for alarm notices" kind="email" autocomplete="email"
                        value=Signal::derive(move || email_error().and_then(|e| e.value("email")).unwrap_or_else(|| email_value.clone()))
                        error=Signal::derive(move || email_error().and_then(|e| e.field_error("email")))/>
                    <button type="submit">"Save"</button>
                </ActionForm>
                <h2>"Rules"</h2>
                {if v.rows.is_empty() {
                    view! { <Empty message="No alarms yet."/> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap">
                            <table id="alarms">
                                <thead><tr>
                                    <th scope="col">"Alarm"</th><th scope="col">"Watches"</th><th scope="col">"For"</th>
                                    <th scope="col">"State"</th><th scope="col">"Last seen"</th><th scope="col">"Email me"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr></thead>
                                <tbody>{v.rows.into_iter().map(|r| view! { <Rule r subscribe delete/> }).collect_view()}</tbody>
                            </table>
                        </div>
                    }.into_any()
                }}
                {v.can_create.then(|| view! {
                    <details open=create_error().is_some()>
                        <summary>"New alarm"</summary>
                        <NewAlarm create channels participants/>
                    </details>
                })}
                <h2>"History"</h2>
                {if v.history.is_empty() {
                    view! { <Empty message="Nothing raised yet."/> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap">
                            <table id="alarm-history">
                                <thead><tr>
                                    <th scope="col">"When (UTC)"</th><th scope="col">"Alarm"</th>
                                    <th scope="col">"Change"</th><th scope="col">"What was seen"</th>
                                </tr></thead>
                                <tbody>{v.history.into_iter().map(|h| {
                                    let badge = if h.state == "raised" { "badge bad" } else { "badge ok" };
                                    view! {
                                        <tr><td>{h.at}</td><td>{h.rule}</td><td><span class=badge>{h.state}</span></td><td>{h.detail}</td></tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        </div>
                    }.into_any()
                }}
            }
            .into_any()
        }/>
    }
}

#[component]
fn Rule(r: AlarmRow, subscribe: ServerAction<SubscribeAlarm>, delete: ServerAction<DeleteAlarm>) -> impl IntoView {
    let state = match &r.raised_since {
        Some(since) => view! { <span class="badge bad">{format!("raised since {since}")}</span> }.into_any(),
        None if !r.enabled => view! { <span class="badge">"off"</span> }.into_any(),
        None => view! { <span class="badge ok">"clear"</span> }.into_any(),
    };
    let toggle = if r.subscribed { "no" } else { "yes" };
    let label = if r.subscribed { "Stop emails" } else { "Email me" };
    let id = r.id.clone();
    let delete_form = r.can_delete.then(|| {
        let (id, name) = (r.id.clone(), r.name.clone());
        view! {
            <ActionForm action=delete attr:class="inline-form">
                <input type="hidden" name="id" value=id/>
                <Confirm label="Delete"/>
                <button type="submit" class="danger" aria-label=format!("Delete {name}")>"Delete"</button>
            </ActionForm>
        }
    });
    let subscribe_label = format!("{label}: {}", r.name);
    view! {
        <tr>
            <th scope="row">{r.name.clone()}</th>
            <td>{r.watches.clone()}</td>
            <td>{r.scope.clone()}</td>
            <td>{state}</td>
            <td>{r.observed.clone()}{r.evaluated.clone().map(|e| view! { <br/><small class="hint">{format!("at {e}")}</small> })}</td>
            <td>
                <ActionForm action=subscribe>
                    <input type="hidden" name="id" value=id/>
                    <input type="hidden" name="on" value=toggle/>
                    <button type="submit" class="link" aria-label=subscribe_label>{label}</button>
                </ActionForm>
            </td>
            <td>{delete_form}</td>
        </tr>
    }
}

#[component]
fn NewAlarm(
    create: ServerAction<CreateAlarm>,
    channels: Vec<String>,
    participants: Vec<(String, String)>,
) -> impl IntoView {
    let error = move || create.value().get().and_then(Result::err);
    let value = move |name: &'static str, default: &'static str| {
        Signal::derive(move || {
            error()
                .and_then(|e| e.value(name))
                .unwrap_or_else(|| default.to_owned())
        })
    };
    let field_error = move |name: &'static str| Signal::derive(move || error().and_then(|e| e.field_error(name)));
    let kinds = [
        ("latency", "Latency above a threshold (ms, 90th percentile end to end)"),
        ("dead_letters", "Messages dead-lettered (count)"),
        ("endpoint_failing", "An endpoint failing (seconds)"),
        ("certificate_expiring", "A certificate expiring (days)"),
    ];
    view! {
        <ActionForm action=create attr:class="form">
            {move || error().map(|e| view! { <ErrorBox error=e/> })}
            <Field name="name" label="Name" required=true value=value("name", "") error=field_error("name")/>
            <div class="field" class:invalid=move || field_error("kind").get().is_some()>
                <label for="f-kind">"Watches"</label>
                <select id="f-kind" name="kind">
                    {kinds.into_iter().map(|(k, t)| {
                        view! { <option value=k selected=move || value("kind", "latency").get() == k>{t}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field" class:invalid=move || field_error("channel").get().is_some()>
                <label for="f-channel">"Channel"</label>
                <select id="f-channel" name="channel">
                    <option value="">"Any"</option>
                    {channels.into_iter().map(|c| {
                        let v = c.clone();
                        view! { <option value=c.clone() selected=move || value("channel", "").get() == v>{c.clone()}</option> }
                    }).collect_view()}
                </select>
                {move || field_error("channel").get().map(|e| view! { <p class="field-error">{e}</p> })}
            </div>
            <div class="field" class:invalid=move || field_error("recipient").get().is_some()>
                <label for="f-recipient">"Recipient (endpoint owner, certificate holder)"</label>
                <select id="f-recipient" name="recipient">
                    <option value="">"Any"</option>
                    {participants.into_iter().map(|(id, n)| {
                        let v = id.clone();
                        view! { <option value=id.clone() selected=move || value("recipient", "").get() == v>{format!("{id} {n}")}</option> }
                    }).collect_view()}
                </select>
                {move || field_error("recipient").get().map(|e| view! { <p class="field-error">{e}</p> })}
            </div>
            <Field name="threshold" label="Threshold" required=true kind="number" value=value("threshold", "3000")
                hint="Milliseconds for latency, a count for dead letters, seconds for a failing endpoint, days for a certificate."
                error=field_error("threshold")/>
            <Field name="window_minutes" label="Window (minutes)" required=true kind="number" value=value("window_minutes", "5")
                hint="How far back latency and dead letters are looked at."
                error=field_error("window_minutes")/>
            <button type="submit" class="primary">"Create alarm"</button>
        </ActionForm>
    }
}
