//! The sender report (spec 5.11.3, Figure 16): `/reports/senders` shows, for one sender
//! and a period, per channel, the messages accepted, the items refused with their most
//! frequent error codes, where the accepted messages' copies stand (queued, retrying,
//! delivered, returned, dead-lettered) and the end-to-end latency; every count links to
//! the message search listing the messages behind it. Who may see which sender is decided
//! on the server (`dip_reporting::sender`); `/api/v1/audit/sender-report` answers the same
//! URL parameters as JSON and CSV.

use leptos::prelude::*;
use leptos_meta::Title;

use dip_admin::types::{AppError, ListQuery};
use dip_reporting::report_views::LatencyCells;
pub use dip_reporting::sender_views::*;

use super::reports::{ms, pct};
use super::ui::*;

/// The report the URL asks for; `None` while operator staff have not chosen a sender (the
/// page asks for one rather than failing).
#[server(prefix = "/fn", endpoint = "load_sender_report")]
pub async fn load_sender_report(query: ListQuery) -> Result<Option<SenderReport>, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    let chosen = query.filters.get("sender").is_some_and(|s| !s.trim().is_empty());
    if actor.is_operator() && !chosen {
        return Ok(None);
    }
    dip_reporting::sender::report(&state.broker, &state.analytics, &actor, &query)
        .await
        .map(Some)
        .map_err(crate::ctx::fail)
}

/// What the report's form offers the signed-in user.
#[server(prefix = "/fn", endpoint = "load_sender_choices")]
pub async fn load_sender_choices() -> Result<SenderChoices, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::sender::choices(&state.broker, &actor).map_err(crate::ctx::fail)
}

/// `/reports/senders`: the sender report.
#[component]
pub fn SenderReportPage() -> impl IntoView {
    let query = use_list_query(&SENDER_FILTERS);
    let choices = Resource::new(|| (), |_| load_sender_choices());
    let data = Resource::new(move || query.get(), load_sender_report);
    let report = move |r: Option<SenderReport>| {
        let q = query.get_untracked();
        match r {
            Some(r) => view! { <SenderView r q/> }.into_any(),
            None => view! { <Empty message="Choose a sender (its DIP ID) to see its report."/> }.into_any(),
        }
    };
    view! {
        <Title text="Sender report"/>
        <p><a href="/messages">"← Messages"</a></p>
        <h1>"Sender report"</h1>
        <p>"A sender's messages over a period, channel by channel: how many the platform accepted and refused (and why), where their recipient copies stand now, and how long delivery took. Each count opens the messages behind it."</p>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let q = query.get();
                match choices.await {
                    Ok(c) => view! { <SenderForm c q/> }.into_any(),
                    // The report below says why.
                    Err(_) => ().into_any(),
                }
            })}
        </Suspense>
        <Loaded data view=report/>
    }
}

/// The report's form: a GET form, so every choice lands in the URL.
#[component]
fn SenderForm(c: SenderChoices, q: ListQuery) -> impl IntoView {
    let value = |name: &str| q.filters.get(name).cloned().unwrap_or_default();
    let current = q
        .filters
        .get("sender")
        .cloned()
        .or(c.default_sender.clone())
        .unwrap_or_default();
    let sender = if c.default_sender.is_some() {
        // A participant's user: its own participant, or one it acts for as a DCP.
        view! {
            <label>
                "Sender"
                <select name="sender">
                    {c.senders.into_iter().map(|(id, name)| {
                        let selected = id == current;
                        view! { <option value=id selected=selected>{name}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
        .into_any()
    } else {
        view! {
            <label>
                "Sender"
                <input name="sender" list="senders" placeholder="DIP ID" required=true value=current/>
                <datalist id="senders">
                    {c.senders.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                </datalist>
            </label>
        }
        .into_any()
    };
    let processes: Vec<(String, String)> = c.processes.into_iter().map(|p| (p.clone(), p)).collect();
    let channels: Vec<(String, String)> = c
        .channels
        .into_iter()
        .map(|(id, name)| (id.clone(), format!("{id} {name}")))
        .collect();
    view! {
        <form method="get" action="/reports/senders" class="filters report-filters" aria-label="Sender report">
            {sender}
            <FilterSelect name="process" label="Business process" options=processes query=q.clone()/>
            <FilterSelect name="channel" label="Channel" options=channels query=q.clone()/>
            <label>"From (UTC)" <input type="datetime-local" name="from" value=value("from")/></label>
            <label>"To (UTC)" <input type="datetime-local" name="to" value=value("to")/></label>
            {(!q.sort.is_empty()).then(|| view! {
                <input type="hidden" name="sort" value=q.sort.clone()/>
                <input type="hidden" name="dir" value=if q.desc { "desc" } else { "" }/>
            })}
            <button type="submit">"Show"</button>
        </form>
        <p class="hint">"Without dates: the last 24 hours."</p>
    }
}

#[component]
fn SenderView(r: SenderReport, q: ListQuery) -> impl IntoView {
    let mut csv = format!("/api/v1/audit/sender-report.csv?{}", r.query());
    if !q.sort.is_empty() {
        csv.push_str(&format!("&sort={}", q.sort));
        if q.desc {
            csv.push_str("&dir=desc");
        }
    }
    let narrowed = match (&r.process, &r.channel) {
        (_, Some(c)) => format!(" · channel {c}"),
        (Some(p), None) => format!(" · business process {p}"),
        (None, None) => String::new(),
    };
    let total_line = r.total.clone();
    let top: Vec<ErrorCount> = r.total.errors.iter().take(TOP_ERRORS).cloned().collect();
    let refused = r.total.rejected;
    let lines = r.channels.clone();
    let body = if lines.is_empty() {
        view! { <Empty message="Nothing from this sender in this period."/> }.into_any()
    } else {
        let report = r.clone();
        view! {
            <div class="table-wrap">
                <table class="numbers" id="sender-report">
                    <caption class="visually-hidden">"Messages per channel and outcome"</caption>
                    <thead><tr>
                        <SortHeader column="channel" label="Channel" query=q.clone()/>
                        <SortHeader column="accepted" label="Accepted" query=q.clone()/>
                        <SortHeader column="rejected" label="Rejected" query=q.clone()/>
                        <th scope="col">"Queued"</th>
                        <th scope="col">"Retrying"</th>
                        <SortHeader column="delivered" label="Delivered" query=q.clone()/>
                        <SortHeader column="returned" label="Returned" query=q.clone()/>
                        <SortHeader column="dead_lettered" label="Dead-lettered" query=q.clone()/>
                        <th scope="col">"Latency p50"</th>
                        <SortHeader column="latency" label="p90" query=q.clone()/>
                        <th scope="col">"max"</th>
                        <th scope="col">"≤ 3 s"</th>
                    </tr></thead>
                    <tbody>
                        {lines.into_iter().map(|l| view! { <Line r=report.clone() l total=false/> }).collect_view()}
                    </tbody>
                    <tfoot>
                        <Line r=report.clone() l=total_line total=true/>
                    </tfoot>
                </table>
            </div>
        }
        .into_any()
    };
    view! {
        <h2>{r.sender_name.clone()}</h2>
        <p class="report-span"><strong>{r.period.clone()}</strong>{narrowed}</p>
        <p class="actions"><a href=csv download="dip-sender-report.csv">"Download CSV"</a></p>
        {body}
        <p class="hint">"Accepted counts the messages received in the period; the next columns count their recipient copies in each state now, with the number of messages after them where it differs. Latency runs from receipt to the recipient's acknowledgement, for the copies delivered in the period. Rejected items were refused at the API and never stored: they have no messages to open."</p>
        <h2>"Why items were refused"</h2>
        {if refused == 0 {
            view! { <Empty message="No item was refused in this period."/> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table class="numbers" id="rejections">
                        <thead><tr><th scope="col">"Error code"</th><th scope="col">"Items"</th><th scope="col">"Share"</th></tr></thead>
                        <tbody>
                            {top.into_iter().map(|e| {
                                let share = pct(Some(e.count as f64 * 100.0 / refused as f64));
                                view! { <tr><th scope="row" class="mono">{e.code}</th><td>{e.count}</td><td>{share}</td></tr> }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
            .into_any()
        }}
    }
}

/// One line of the table: a channel, or all of them (`total`).
#[component]
fn Line(r: SenderReport, l: ChannelOutcomes, total: bool) -> impl IntoView {
    let channel = (!total).then_some(l.interface_id.as_str());
    let link = |n: i64, state: &str, note: Option<i64>| {
        let href = r.messages_href(channel, state).filter(|_| n > 0);
        let note = note
            .filter(|m| *m != n)
            .map(|m| view! { <span class="muted">{format!(" in {m} msg{}", if m == 1 { "" } else { "s" })}</span> });
        let count = match href {
            Some(href) => view! { <a href=href>{n}</a> }.into_any(),
            None => n.to_string().into_any(),
        };
        view! { <td>{count}{note}</td> }
    };
    let outcome = |o: Outcome, state: &str| link(o.copies, state, Some(o.messages));
    let head = if total {
        view! { <th scope="row">{l.name.clone()}</th> }.into_any()
    } else if l.interface_id.is_empty() {
        view! { <th scope="row">{l.name.clone()}</th> }.into_any()
    } else {
        view! { <th scope="row">{l.interface_id.clone()}" "<span class="muted">{l.name.clone()}</span></th> }.into_any()
    };
    let codes = (!total && !l.errors.is_empty()).then(|| {
        view! {
            <ul class="copies">
                {l.errors.iter().take(LINE_ERRORS).map(|e| view! { <li class="mono">{format!("{} × {}", e.code, e.count)}</li> }).collect_view()}
            </ul>
        }
    });
    let latency: Option<LatencyCells> = l.latency.clone();
    let cell = |pick: fn(&LatencyCells) -> f64| ms(latency.as_ref().map(pick));
    view! {
        <tr>
            {head}
            {link(l.accepted, "accepted", None)}
            <td>{l.rejected}{codes}</td>
            {outcome(l.queued, "queued")}
            {outcome(l.retrying, "retrying")}
            {outcome(l.delivered, "delivered")}
            {outcome(l.returned, "returned")}
            {outcome(l.dead_lettered, "dead_lettered")}
            <td>{cell(|c| c.p50_ms)}</td>
            <td>{cell(|c| c.p90_ms)}</td>
            <td>{cell(|c| c.max_ms)}</td>
            <td>{pct(latency.as_ref().map(|c| c.within_3s_pct))}</td>
        </tr>
    }
}
