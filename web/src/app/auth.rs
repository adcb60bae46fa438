//! Signing in and out, the home page and the user's own account.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::ui::{ErrorBox, Field, Loaded, Notice, no_error};
use dip_admin::rows::{EndpointRow, ParticipantRow};
use dip_admin::types::{Actor, AppError};
use dip_reporting::home_views::{AlarmLine, CertificateLine, HomeSummary, ParticipantDay, QueueLine, Tile, Tone};

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Welcome {
    /// The user.
    pub actor: Actor,
    /// Their participant, for a participant's user.
    pub participant: Option<ParticipantRow>,
    /// Their participant's endpoints.
    pub endpoints: Vec<EndpointRow>,
    /// A notice left by the last action.
    pub notice: Option<String>,
    /// "Is everything all right?": the health summary the user may see; `None` for a
    /// participant's user administrator, who may not read messages.
    pub health: Option<HomeSummary>,
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
    let health = match dip_reporting::home::summary(&state.broker, &state.analytics, &actor).await {
        Ok(h) => Some(h),
        Err(AppError::Forbidden) => None,
        Err(e) => return Err(ctx::fail(e)),
    };
    Ok(Welcome {
        actor,
        participant,
        endpoints,
        notice: ctx::take_flash().await,
        health,
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
        {data.health.map(|h| view! { <Health h/> })}
        {match data.participant {
            None => view! {
                <h2>"Administration"</h2>
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

/// The health summary: the answer first, then the figures, each linking to where it is
/// handled, today's volumes as a chart, and the lists behind the figures.
#[component]
fn Health(h: HomeSummary) -> impl IntoView {
    let whose = if h.operator {
        "the whole platform".to_owned()
    } else {
        h.participants_covered.join(", ")
    };
    let verdict_class = format!("verdict {}", h.verdict.class());
    let tiles = h.tiles.into_iter().map(|t| view! { <HealthTile t/> }).collect_view();
    let chart = if h.volume_svg.is_empty() {
        view! { <p class="hint">{h.reports_note.unwrap_or_default()}</p> }.into_any()
    } else {
        view! {
            <section class="charts" aria-label="Today's messages">
                <figure>
                    <figcaption>"Today's messages by hour (UTC): incoming, outgoing, errors"</figcaption>
                    <div class="chart" inner_html=h.volume_svg></div>
                    <p class="hint"><a href=h.reports_href>"Today's full report"</a></p>
                </figure>
            </section>
        }
        .into_any()
    };
    view! {
        <section class="health" aria-labelledby="health-heading">
            <h2 id="health-heading">"Is everything all right?"</h2>
            <p class=verdict_class id="verdict" role="status">
                <strong>{h.headline}</strong>
                <span class="muted">{format!(" · {whose} · {} as of {}", h.day, h.as_of)}</span>
            </p>
            <div class="tiles">{tiles}</div>
            {chart}
            {(!h.participants.is_empty()).then(|| view! { <ParticipantDays rows=h.participants recent_days=h.recent_days/> })}
            <Queues rows=h.queues operator=h.operator more=h.queues_more href=h.queues_href/>
            <Certificates rows=h.certificates operator=h.operator href=h.certificates_href warn_days=h.certificate_warn_days/>
            <Alarms rows=h.alarms/>
        </section>
    }
    .into_any()
}

/// One figure: a link to where it is handled (a box when the viewer has no page for it).
#[component]
fn HealthTile(t: Tile) -> impl IntoView {
    let class = format!("tile {}", t.tone.class());
    let id = format!("tile-{}", t.key);
    let word = t.tone.word();
    let body = view! {
        <span class="tile-label">{t.label}</span>
        <span class="tile-value">{t.value}</span>
        {(!word.is_empty()).then(|| view! { <span class="tile-tone">{word}</span> })}
        <span class="tile-note">{t.note}</span>
    };
    if t.href.is_empty() {
        view! { <div class=class id=id>{body}</div> }.into_any()
    } else {
        view! { <a class=class id=id href=t.href>{body}</a> }.into_any()
    }
}

fn badge(tone: Tone, text: String) -> impl IntoView {
    view! { <span class=format!("badge {}", tone.class())>{text}</span> }
}

fn queue_row(q: QueueLine) -> impl IntoView {
    // The badge says why the queue is shown, not only its delivery state.
    let mut state = q.state.clone();
    if q.backed_up {
        state.push_str(" · backed up");
    }
    if q.dead > 0 {
        state.push_str(" · dead letters");
    }
    let dead = if q.dead > 0 {
        view! { <a href=q.dead_href>{q.dead}</a> }.into_any()
    } else {
        view! { "0" }.into_any()
    };
    view! {
        <tr>
            <td><a class="mono" href=q.href>{q.queue_id}</a></td>
            <td>{q.mode}</td>
            <td>{badge(q.tone, state)}</td>
            <td class="num">{q.pending}</td>
            <td>{q.oldest_wait.unwrap_or_else(|| "—".into())}</td>
            <td class="num">{dead}</td>
            <td>
                {q.last_outcome.unwrap_or_default()}
                {q.failing_since.map(|s| view! { <span class="muted">{format!(" (failing since {s})")}</span> })}
            </td>
        </tr>
    }
    .into_any()
}

/// The queues: staff see those that need a look, a participant all of its own.
#[component]
fn Queues(rows: Vec<QueueLine>, operator: bool, more: usize, href: String) -> impl IntoView {
    let (heading, empty) = if operator {
        (
            "Queues that need a look",
            "Every queue is healthy: none failing, retrying, backed up or holding dead letters.",
        )
    } else {
        ("Your queues", "No queues yet.")
    };
    view! {
        <h3 id="queues">{heading}</h3>
        {if rows.is_empty() {
            view! { <p class="empty">{empty}</p> }.into_any()
        } else {
            view! {
                <div class="table-wrap"><table>
                    <thead><tr>
                        <th scope="col">"Queue"</th><th scope="col">"Delivery"</th><th scope="col">"State"</th>
                        <th scope="col" class="num">"Waiting"</th><th scope="col">"Oldest waiting"</th>
                        <th scope="col" class="num">"Dead letters"</th><th scope="col">"Last attempt"</th>
                    </tr></thead>
                    <tbody>{rows.into_iter().map(queue_row).collect_view()}</tbody>
                </table></div>
            }
            .into_any()
        }}
        <p class="actions">
            {(more > 0).then(|| view! { <span>{format!("{more} more not listed.")}</span> })}
            <a href=href>"Queues on the operations page"</a>
        </p>
    }
    .into_any()
}

fn participant_row(p: ParticipantDay) -> impl IntoView {
    view! {
        <tr>
            <th scope="row">{format!("{} ({})", p.name, p.dip_id)}</th>
            <td><a href=p.sent_href>{p.sent}</a></td>
            <td><a href=p.received_href>{p.received}</a></td>
            <td><a href=p.returned_href>{p.returned}</a></td>
            <td><a href=p.dead_lettered_href>{p.dead_lettered}</a></td>
            <td><a href=p.queues_href>{p.pending}</a></td>
            <td><a href=p.dead_letters_href>{p.dead_letters}</a></td>
            <td>{p.queues_failing}</td>
        </tr>
    }
    .into_any()
}

/// Each participant a DCP's user acts for.
#[component]
fn ParticipantDays(rows: Vec<ParticipantDay>, recent_days: i64) -> impl IntoView {
    view! {
        <h3 id="participants">"The participants you act for"</h3>
        <div class="table-wrap"><table class="numbers">
            <thead><tr>
                <th scope="col">"Participant"</th><th scope="col">"Sent today"</th><th scope="col">"Received today"</th>
                <th scope="col">{format!("Returned ({recent_days} days)")}</th>
                <th scope="col">{format!("Dead-lettered ({recent_days} days)")}</th>
                <th scope="col">"Waiting in queues"</th><th scope="col">"Dead letters"</th>
                <th scope="col">"Queues not healthy"</th>
            </tr></thead>
            <tbody>{rows.into_iter().map(participant_row).collect_view()}</tbody>
        </table></div>
    }
    .into_any()
}

fn certificate_row(c: CertificateLine) -> impl IntoView {
    let left = if c.days_left < 0 {
        format!("{} days ago", -c.days_left)
    } else {
        format!("{} days", c.days_left)
    };
    view! {
        <tr>
            <td>{c.dip_id}</td>
            <td>{c.subject}</td>
            <td>{c.not_after}</td>
            <td class="num">{left}</td>
            <td>{badge(c.tone, c.status)}</td>
        </tr>
    }
    .into_any()
}

/// Certificates: staff see those about to expire, a participant all of its own.
#[component]
fn Certificates(rows: Vec<CertificateLine>, operator: bool, href: String, warn_days: i64) -> impl IntoView {
    let heading = if operator {
        format!("Certificates expiring within {warn_days} days")
    } else {
        "Your certificates".to_owned()
    };
    let empty = if operator {
        format!("No certificate expires within {warn_days} days.")
    } else {
        "No certificate is registered for you.".to_owned()
    };
    let page = href.starts_with('/');
    view! {
        <h3 id="certificates">{heading}</h3>
        {if rows.is_empty() {
            view! { <p class="empty">{empty}</p> }.into_any()
        } else {
            view! {
                <div class="table-wrap"><table>
                    <thead><tr>
                        <th scope="col">"Holder"</th><th scope="col">"Subject"</th><th scope="col">"Expires"</th>
                        <th scope="col" class="num">"Left"</th><th scope="col">"Status"</th>
                    </tr></thead>
                    <tbody>{rows.into_iter().map(certificate_row).collect_view()}</tbody>
                </table></div>
            }
            .into_any()
        }}
        {if page {
            view! { <p class="actions"><a href=href>"Certificates"</a></p> }.into_any()
        } else if !operator {
            view! { <p class="hint">"A renewed certificate is registered by the platform operator: send it to them before the old one expires."</p> }.into_any()
        } else {
            ().into_any()
        }}
    }
    .into_any()
}

fn alarm_item(a: AlarmLine) -> impl IntoView {
    view! {
        <li>
            <strong>{a.name}</strong>
            {format!(" ({}): {}. Raised since {}; ", a.scope, a.watches, a.raised_since)}
            <span class="muted">{a.observed}</span>
        </li>
    }
    .into_any()
}

/// Raised alarms.
#[component]
fn Alarms(rows: Vec<AlarmLine>) -> impl IntoView {
    view! {
        <h3 id="alarms">"Raised alarms"</h3>
        {if rows.is_empty() {
            view! { <p class="empty">"No alarm is raised."</p> }.into_any()
        } else {
            view! { <ul class="alarms">{rows.into_iter().map(alarm_item).collect_view()}</ul> }.into_any()
        }}
        <p class="actions"><a href="/alarms">"Alarms"</a></p>
    }
    .into_any()
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
