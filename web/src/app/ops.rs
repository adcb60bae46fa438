//! Operations (spec 5.5.8–5.5.11): `/ops/queues` shows each queue's health,
//! `/ops/dead-letters` lists dead letters and redrives one or all a filter matches after
//! a counted confirmation, `/replays` previews a replay, runs it after confirmation and
//! lists the replay history, `/replays/:id` follows one replay's copies until every one
//! is settled. Who sees and does what is decided on the server (`dip_reporting::ops`);
//! the participant API offers the same under `/api/v1/queues`, `/dead-letters` and
//! `/replays`.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use dip_admin::types::{AppError, ListQuery, Page, encode};
pub use dip_reporting::ops_views::*;
use dip_reporting::trail_views::short_time;

use super::ui::*;

/// A page of the queue table.
#[server(prefix = "/fn", endpoint = "load_queues")]
pub async fn load_queues(query: ListQuery) -> Result<Page<QueueRow>, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::ops::queues(&state.broker, &actor, &query)
        .await
        .map_err(crate::ctx::fail)
}

/// A page of dead letters, with a redrive's count when one is being confirmed.
#[server(prefix = "/fn", endpoint = "load_dead_letters")]
pub async fn load_dead_letters(query: ListQuery) -> Result<DeadLetters, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::ops::dead_letters(&state.broker, &actor, &query)
        .await
        .map_err(crate::ctx::fail)
}

/// Redrives what the confirmation named, then shows the list with how many went.
#[server(prefix = "/fn", endpoint = "redrive_dead_letters")]
pub async fn redrive_dead_letters(filters: BTreeMap<String, String>, confirm: Option<String>) -> Result<(), AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    if confirm.as_deref() != Some("yes") {
        return Err(crate::ctx::fail(AppError::field("confirm", "tick the box to confirm")));
    }
    let filters: BTreeMap<String, String> = filters
        .into_iter()
        .filter(|(k, v)| DEAD_LETTER_FILTERS.contains(&k.as_str()) && k != "done" && !v.is_empty())
        .collect();
    let list = ListQuery {
        filters: filters.clone(),
        ..ListQuery::default()
    };
    let count = dip_reporting::ops::redrive(&state.broker, &actor, &list)
        .await
        .map_err(crate::ctx::fail)?;
    let kept: Vec<String> = filters
        .iter()
        .filter(|(k, _)| k.as_str() != "redrive")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .chain([format!("done={count}")])
        .collect();
    leptos_axum::redirect(&format!("/ops/dead-letters?{}", kept.join("&")));
    Ok(())
}

/// The replay form's choices, and its preview when the form asks for one.
#[server(prefix = "/fn", endpoint = "load_replay_form")]
pub async fn load_replay_form(
    form: BTreeMap<String, String>,
) -> Result<(ReplayChoices, Option<ReplayPreview>), AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    let choices = dip_reporting::ops::replay_choices(&state.broker, &actor).map_err(crate::ctx::fail)?;
    let preview = match form.get("preview").map(String::as_str) {
        Some("1") => Some(
            dip_reporting::ops::replay_preview(&state.broker, &actor, &form)
                .await
                .map_err(crate::ctx::fail)?,
        ),
        _ => None,
    };
    Ok((choices, preview))
}

/// Runs the previewed replay, then follows it.
#[server(prefix = "/fn", endpoint = "start_replay")]
pub async fn start_replay(form: BTreeMap<String, String>, confirm: Option<String>) -> Result<(), AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    if confirm.as_deref() != Some("yes") {
        return Err(crate::ctx::fail(AppError::field("confirm", "tick the box to confirm")));
    }
    let id = dip_reporting::ops::replay_run(&state.broker, &actor, &form)
        .await
        .map_err(crate::ctx::fail)?;
    leptos_axum::redirect(&format!("/replays/{}", encode(&id)));
    Ok(())
}

/// A page of the replay history.
#[server(prefix = "/fn", endpoint = "load_replays")]
pub async fn load_replays(query: ListQuery) -> Result<Page<ReplayLine>, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::ops::replay_history(&state.broker, &actor, &query)
        .await
        .map_err(crate::ctx::fail)
}

/// One replay and its progress.
#[server(prefix = "/fn", endpoint = "load_replay")]
pub async fn load_replay(id: String) -> Result<ReplayLine, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::ops::replay_status(&state.broker, &actor, &id)
        .await
        .map_err(crate::ctx::fail)
}

/// The operations pages' own navigation.
#[component]
fn OpsNav(current: &'static str) -> impl IntoView {
    let link = move |href: &'static str, label: &'static str| {
        let here = href == current;
        view! { <a href=href aria-current=here.then_some("page")>{label}</a> }
    };
    view! {
        <nav class="subnav" aria-label="Operations">
            {link("/ops/queues", "Queues")}
            {link("/ops/dead-letters", "Dead letters")}
            {link("/replays", "Replays")}
        </nav>
    }
}

/// The badge class of a queue state.
fn queue_tone(state: &str) -> &'static str {
    match state {
        "healthy" => "badge ok",
        "retrying" => "badge warn",
        _ => "badge bad",
    }
}

/// A duration in seconds, short.
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `/ops/queues`: every queue the viewer may see, worst first.
#[component]
pub fn QueuesPage() -> impl IntoView {
    let query = use_list_query(&QUEUE_FILTERS);
    let data = Resource::new(move || query.get(), load_queues);
    let results = move |page: Page<QueueRow>| {
        let q = query.get_untracked();
        let head = view! {
            <SortHeader column="queue" label="Queue" query=q.clone()/>
            <th scope="col">"Participant"</th>
            <th scope="col">"Delivery"</th>
            <th scope="col">"State"</th>
            <SortHeader column="pending" label="Waiting" query=q.clone()/>
            <SortHeader column="age" label="Oldest waiting" query=q.clone()/>
            <SortHeader column="dead" label="Dead letters" query=q.clone()/>
            <th scope="col">"Last attempt"</th>
            <th scope="col">"Next attempt"</th>
            <th scope="col">"Held by"</th>
        }
        .into_any();
        view! { <Table page empty="No queues match." head row=|r: QueueRow| view! { <QueueLine r/> }.into_any()/> }
            .into_any()
    };
    view! {
        <Title text="Queues"/>
        <h1>"Queues"</h1>
        <OpsNav current="/ops/queues"/>
        <p>"Each recipient queue's health, worst first: failing queues (their head has failed for more than five minutes), retrying ones, then by the age of the oldest waiting message."</p>
        {move || {
            let q = query.get();
            let states: Vec<(String, String)> = QUEUE_STATES.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect();
            let participant = q.filters.get("participant").cloned().unwrap_or_default();
            view! {
                <FilterBar query=q.clone()>
                    <label>"Participant" <input name="participant" placeholder="DIP ID" value=participant/></label>
                    <FilterSelect name="state" label="State" options=states query=q.clone()/>
                </FilterBar>
            }
        }}
        <Loaded data view=results/>
    }
}

#[component]
fn QueueLine(r: QueueRow) -> impl IntoView {
    let dead = format!("/ops/dead-letters?queue={}", encode(&r.queue));
    let waiting = format!("/messages?recipient={}&state=queued", encode(&r.dip_id));
    let backed_up = r.backed_up();
    view! {
        <tr>
            <td class="mono">{r.queue.clone()}</td>
            <td>{r.participant.clone()}</td>
            <td>{r.mode.clone()}<br/><span class="muted">{r.channels.clone()}</span></td>
            <td><span class=queue_tone(&r.state)>{r.state.clone()}</span>
                {backed_up.then(|| view! { " "<span class="badge warn">"backed up"</span> })}</td>
            <td><a href=waiting>{r.pending}</a>
                {(r.replay_held > 0).then(|| view! { <br/><span class="muted">{format!("+{} replay copies held", r.replay_held)}</span> })}</td>
            <td>{r.oldest_age_seconds.map(age).unwrap_or_else(|| "—".into())}</td>
            <td>{if r.dead_letters > 0 { view! { <a href=dead>{r.dead_letters}</a> }.into_any() } else { "0".into_any() }}</td>
            <td>{r.last_attempt.clone().map(|(at, outcome)| view! {
                <time datetime=at.clone()>{short_time(&at)}</time><br/><span class="muted">{outcome}</span>
            })}</td>
            <td>{r.next_attempt_at.clone().map(|at| view! { <time datetime=at.clone()>{short_time(&at)}</time> })}</td>
            <td>{r.leased_by.clone().unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}

/// `/ops/dead-letters`: dead letters the viewer may see, with redrive.
#[component]
pub fn DeadLettersPage() -> impl IntoView {
    let query = use_list_query(&DEAD_LETTER_FILTERS);
    let data = Resource::new(move || query.get(), load_dead_letters);
    let redrive = ServerAction::<RedriveDeadLetters>::new();
    let error = move || redrive.value().get().and_then(Result::err);
    let results = move |d: DeadLetters| {
        let q = query.get_untracked();
        let done = q.filters.get("done").cloned();
        let all = d.page.total;
        let may = d.may_redrive;
        let filters_of = |q: &ListQuery| -> Vec<(String, String)> {
            q.filters
                .iter()
                .filter(|(k, _)| *k != "done" && *k != "redrive")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let base: String = filters_of(&q)
            .iter()
            .map(|(k, v)| format!("{}={}&", encode(k), encode(v)))
            .collect();
        let redrive_all = format!("/ops/dead-letters?{base}redrive=all");
        let head = view! {
            <th scope="col">"Dead-lettered (UTC)"</th>
            <th scope="col">"Transaction"</th>
            <th scope="col">"Channel"</th>
            <th scope="col">"Sender"</th>
            <th scope="col">"Recipient queue"</th>
            <th scope="col">"Attempts"</th>
            <th scope="col">"Last outcome"</th>
            {may.then(|| view! { <th scope="col">"Action"</th> })}
        }
        .into_any();
        let cancel = format!("/ops/dead-letters?{}", base.trim_end_matches('&'));
        let confirm = d.confirm.clone().map(|c| {
            let hidden = filters_of(&q);
            view! {
                <section class="confirm-box" aria-labelledby="confirm-title">
                    <h2 id="confirm-title">"Redrive "{c.description.clone()}"?"</h2>
                    {if c.count == 0 {
                        view! { <p>"Nothing to redrive: no dead letter matches any more."</p> }.into_any()
                    } else {
                        view! {
                            <p>{format!("{} dead letter{} will be queued again at the tail of {} queue and delivered in order with the messages behind it.",
                                c.count, if c.count == 1 { "" } else { "s" }, if c.count == 1 { "its" } else { "their" })}</p>
                            <ActionForm action=redrive attr:class="form" attr:id="redrive-form">
                                {hidden.into_iter().map(|(k, v)| view! { <input type="hidden" name=format!("filters[{k}]") value=v/> }).collect_view()}
                                <input type="hidden" name="filters[redrive]" value=c.target.clone()/>
                                <Confirm label=format!("Queue {} dead letter{} again", c.count, if c.count == 1 { "" } else { "s" })/>
                                <button type="submit" class="primary">"Redrive"</button>
                                " "<a href=cancel>"Cancel"</a>
                            </ActionForm>
                        }.into_any()
                    }}
                </section>
            }
        });
        view! {
            {done.map(|n| view! { <Notice message=format!("{n} dead letter(s) queued again.")/> })}
            {confirm}
            {(may && all > 0 && d.confirm.is_none()).then(|| view! {
                <p class="actions"><a href=redrive_all.clone()>{format!("Redrive all {all} matching…")}</a></p>
            })}
            {if d.page.rows.is_empty() {
                view! { <Empty message="No dead letters match."/> }.into_any()
            } else {
                let (page, pages, total) = (d.page.page, d.page.pages(), d.page.total);
                view! {
                    <div class="table-wrap">
                        <table id="dead-letters">
                            <thead><tr>{head}</tr></thead>
                            <tbody>{d.page.rows.clone().into_iter().map(|l| view! { <DeadLetterRow l may base=base.clone()/> }).collect_view()}</tbody>
                        </table>
                    </div>
                    <Pager page pages total/>
                }.into_any()
            }}
        }
        .into_any()
    };
    view! {
        <Title text="Dead letters"/>
        <h1>"Dead letters"</h1>
        <OpsNav current="/ops/dead-letters"/>
        <p>"Messages that went stale before their recipient took them. Their senders were told; redriving one queues it again at the tail of its queue."</p>
        {move || error().map(|e| view! { <ErrorBox error=e/> })}
        {move || {
            let q = query.get();
            let filters = q.filters.clone();
            let value = move |name: &str| filters.get(name).cloned().unwrap_or_default();
            view! {
                <FilterBar query=q.clone()>
                    <label>"Recipient" <input name="recipient" placeholder="DIP ID" value=value("recipient")/></label>
                    <label>"Queue" <input name="queue" placeholder="DIP ID/name" value=value("queue")/></label>
                    <label>"Channel" <input name="channel" placeholder="IF-…" value=value("channel")/></label>
                    <label>"Sender" <input name="sender" placeholder="DIP ID" value=value("sender")/></label>
                    <label>"From (UTC)" <input type="datetime-local" name="from" value=value("from")/></label>
                    <label>"To (UTC)" <input type="datetime-local" name="to" value=value("to")/></label>
                </FilterBar>
            }
        }}
        <Loaded data view=results/>
    }
}

/// A dead letter's row; `base` is the page's filters as a query string prefix (`k=v&`).
#[component]
fn DeadLetterRow(l: DeadLetterLine, may: bool, base: String) -> impl IntoView {
    let trace = format!("/messages/{}", encode(&l.transaction_id));
    let one = format!(
        "/ops/dead-letters?{base}redrive={}",
        encode(&format!("{}:{}", l.queue, l.position))
    );
    let at = l.dead_lettered_at.clone().unwrap_or_default();
    view! {
        <tr>
            <td><time datetime=at.clone()>{short_time(&at)}</time></td>
            <td><a href=trace class="mono">{l.transaction_id.clone()}</a>
                {l.replay_copy.then(|| view! { <br/><span class="muted">"replay copy"</span> })}</td>
            <td>{l.interface_id.clone()}</td>
            <td>{l.sender_dip_id.clone().unwrap_or_else(|| "—".into())}<br/><span class="muted mono">{l.sender_reference.clone()}</span></td>
            <td class="mono">{format!("{} #{}", l.queue, l.position)}</td>
            <td>{l.attempts}</td>
            <td>{l.last_outcome.clone().unwrap_or_default()}</td>
            {may.then(|| view! { <td><a href=one>"Redrive…"</a></td> })}
        </tr>
    }
}

/// The replay form's fields as the URL has them.
fn replay_form_of(query: &leptos_router::params::ParamsMap) -> BTreeMap<String, String> {
    REPLAY_FIELDS
        .iter()
        .filter_map(|f| query.get(f).filter(|v| !v.is_empty()).map(|v| (f.to_string(), v)))
        .collect()
}

/// `/replays`: a new replay (form, preview, confirmation) and the replay history.
#[component]
pub fn ReplaysPage() -> impl IntoView {
    let query = use_query_map();
    let form = Memo::new(move |_| replay_form_of(&query.read()));
    let data = Resource::new(move || form.get(), load_replay_form);
    let list = use_list_query(&[]);
    let history = Resource::new(move || list.get(), load_replays);
    let start = ServerAction::<StartReplay>::new();
    let error = move || start.value().get().and_then(Result::err);
    let history_view = move |page: Page<ReplayLine>| {
        let head = view! {
            <th scope="col">"Asked (UTC)"</th>
            <th scope="col">"By"</th>
            <th scope="col">"Recipient"</th>
            <th scope="col">"Channel"</th>
            <th scope="col">"Range"</th>
            <th scope="col">"Messages"</th>
            <th scope="col">"Progress"</th>
        }
        .into_any();
        view! { <Table page empty="No replays yet." head row=|r: ReplayLine| view! { <ReplayRow r/> }.into_any()/> }
            .into_any()
    };
    let form_view = move |(choices, preview): (ReplayChoices, Option<ReplayPreview>)| {
        let f = form.get_untracked();
        view! { <ReplayForm choices preview form=f start/> }.into_any()
    };
    view! {
        <Title text="Replays"/>
        <h1>"Replays"</h1>
        <OpsNav current="/replays"/>
        <p>"A replay sends a recipient the messages of a channel again, as new messages marked as replays (R- ids, replayIndicator true) carrying the original D0. Copies join the queue a batch at a time, so live messages are not held up behind a large replay."</p>
        {move || error().map(|e| view! { <ErrorBox error=e/> })}
        <Loaded data view=form_view/>
        <h2>"History"</h2>
        <Loaded data=history view=history_view/>
    }
}

#[component]
fn ReplayForm(
    choices: ReplayChoices,
    preview: Option<ReplayPreview>,
    form: BTreeMap<String, String>,
    start: ServerAction<StartReplay>,
) -> impl IntoView {
    if !choices.may_replay {
        return view! { <p class="hint">"Replays are asked for by a participant's message users and by platform administrators; you can follow them here."</p> }.into_any();
    }
    let value = |name: &str| form.get(name).cloned().unwrap_or_default();
    let channel = value("channel");
    let recipient = value("recipient");
    let recipient_field = if choices.recipients.is_empty() {
        view! { <label>"Recipient (DIP ID)" <input name="recipient" required=true value=recipient.clone()/></label> }
            .into_any()
    } else {
        view! {
            <label>"Recipient"
                <select name="recipient">
                    {choices.recipients.iter().map(|(d, label)| {
                        let selected = *d == recipient;
                        view! { <option value=d.clone() selected=selected>{label.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
        .into_any()
    };
    let mut hidden: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| *k != "preview")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // An open range ends when previewed, so the confirmed replay is the one previewed,
    // not one grown by the messages received since.
    if let Some(p) = preview
        .as_ref()
        .filter(|_| !form.contains_key("to") && !form.contains_key("end"))
    {
        hidden.push(("to".into(), p.to.clone()));
    }
    let preview_view = preview.map(|p| {
        let plural = if p.messages == 1 { "" } else { "s" };
        view! {
            <section class="confirm-box" aria-labelledby="preview-title" id="replay-preview">
                <h2 id="preview-title">"Preview"</h2>
                <dl class="facts">
                    <dt>"Messages"</dt><dd id="preview-count">{p.messages}</dd>
                    <dt>"Recipient"</dt><dd>{p.recipient.clone()}</dd>
                    <dt>"Queue"</dt><dd class="mono">{p.queue.clone()}</dd>
                    <dt>"Range (UTC)"</dt><dd>{short_time(&p.from)}" → "{short_time(&p.to)}</dd>
                    <dt>"First"</dt><dd>{p.first.clone().map(|(id, at)| view! { <a class="mono" href=format!("/messages/{}", encode(&id))>{id.clone()}</a>" · "{short_time(&at)} })}</dd>
                    <dt>"Last"</dt><dd>{p.last.clone().map(|(id, at)| view! { <a class="mono" href=format!("/messages/{}", encode(&id))>{id.clone()}</a>" · "{short_time(&at)} })}</dd>
                    <dt>"Replay quota left"</dt><dd>{format!("{} of {} messages in 24 hours", p.quota.0, p.quota.1)}</dd>
                </dl>
                {if p.messages == 0 {
                    view! { <p>"Nothing to replay in this range."</p> }.into_any()
                } else {
                    view! {
                        <ActionForm action=start attr:class="form" attr:id="replay-confirm">
                            {hidden.into_iter().map(|(k, v)| view! { <input type="hidden" name=format!("form[{k}]") value=v/> }).collect_view()}
                            <Confirm label=format!("Replay {} message{plural} to {}", p.messages, p.queue)/>
                            <button type="submit" class="primary">"Start replay"</button>
                        </ActionForm>
                    }.into_any()
                }}
            </section>
        }
    });
    view! {
        <h2>"New replay"</h2>
        <form method="get" action="/replays" class="form" id="replay-form">
            <label>"Channel"
                <select name="channel" required=true>
                    <option value="">"Choose…"</option>
                    {choices.channels.iter().map(|(id, label)| {
                        let selected = *id == channel;
                        view! { <option value=id.clone() selected=selected>{label.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
            {recipient_field}
            <p class="hint">"Give a first message or a start time (or both: the earlier counts), and optionally a last message or an end time (the later counts; now by default)."</p>
            <label>"First transaction id" <input name="start" class="mono" value=value("start")/></label>
            <label>"From (UTC)" <input type="datetime-local" step="1" name="from" value=value("from")/></label>
            <label>"Last transaction id" <input name="end" class="mono" value=value("end")/></label>
            <label>"To (UTC)" <input type="datetime-local" step="1" name="to" value=value("to")/></label>
            <input type="hidden" name="preview" value="1"/>
            <button type="submit">"Preview"</button>
        </form>
        {preview_view}
    }
    .into_any()
}

/// A replay's progress as text and a bar.
#[component]
fn ProgressBar(p: Progress) -> impl IntoView {
    let text = format!(
        "{} of {} settled: {} delivered, {} returned, {} dead-lettered, {} queued, {} waiting to join the queue",
        p.settled(),
        p.total(),
        p.delivered,
        p.returned,
        p.dead_lettered,
        p.queued,
        p.held
    );
    view! {
        <progress max=p.total().max(1).to_string() value=p.settled().to_string() aria-label="Copies settled"></progress>
        <span class="progress-text">{text}</span>
    }
}

#[component]
fn ReplayRow(r: ReplayLine) -> impl IntoView {
    let href = format!("/replays/{}", encode(&r.id));
    view! {
        <tr>
            <td><a href=href><time datetime=r.requested_at.clone()>{short_time(&r.requested_at)}</time></a></td>
            <td>{r.requested_by.clone()}</td>
            <td>{r.recipient.clone()}</td>
            <td>{r.interface_id.clone()}</td>
            <td>{r.range.clone()}</td>
            <td>{r.messages}</td>
            <td>{match r.progress {
                None => view! { <span class="muted">"dry run (API)"</span> }.into_any(),
                Some(p) if p.done() => view! { <span class="badge ok">"done"</span>" "{format!("{} delivered", p.delivered)} }.into_any(),
                Some(p) => view! { <span class="badge warn">"in progress"</span>" "{format!("{} of {}", p.settled(), p.total())} }.into_any(),
            }}</td>
        </tr>
    }
}

/// `/replays/:id`: one replay, refreshed every two seconds until every copy is settled.
#[component]
pub fn ReplayPage() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(move || params.read().get("id").unwrap_or_default(), load_replay);
    let view_of = |r: ReplayLine| {
        let running = r.progress.is_some_and(|p| !p.done());
        let copies = format!(
            "/messages?recipient={}&state=replayed",
            encode(r.queue.split('/').next().unwrap_or_default())
        );
        view! {
            {running.then(|| view! { <Meta http_equiv="refresh" content="2"/> })}
            <h1>"Replay "<span class="mono">{r.id.clone()}</span></h1>
            <dl class="facts">
                <dt>"Asked by"</dt><dd>{r.requested_by.clone()}</dd>
                <dt>"At (UTC)"</dt><dd><time datetime=r.requested_at.clone()>{short_time(&r.requested_at)}</time></dd>
                <dt>"Recipient"</dt><dd>{r.recipient.clone()}</dd>
                <dt>"Queue"</dt><dd class="mono">{r.queue.clone()}</dd>
                <dt>"Channel"</dt><dd>{r.interface_id.clone()}</dd>
                <dt>"Range"</dt><dd>{r.range.clone()}</dd>
                <dt>"Messages"</dt><dd>{r.messages}</dd>
            </dl>
            {match r.progress {
                None => view! { <p>"A dry run: nothing was queued."</p> }.into_any(),
                Some(p) => view! {
                    <h2>"Progress"</h2>
                    <div id="replay-progress" data-done=p.done().to_string() aria-live="polite">
                        <ProgressBar p/>
                        <p>{if p.done() { "Every copy is settled." } else { "Copies are being delivered; this page refreshes by itself." }}</p>
                    </div>
                    <p><a href=copies>"The recipient's replayed messages"</a></p>
                }.into_any(),
            }}
        }
        .into_any()
    };
    view! {
        <Title text="Replay"/>
        <p><a href="/replays">"← Replays"</a></p>
        <Loaded data view=view_of/>
    }
}
