//! The message audit trail (spec 5.11.3, 5.12.1): `/messages` searches the messages the
//! viewer may see, `/messages/:id` traces one transaction from receipt through routing
//! to every recipient copy's attempts, `/workflows/:id` draws every message of one
//! workflow as a sequence diagram, `/mpans/:mpan` sets an MPAN's appointment history
//! beside the messages about it. What each viewer may see is decided on the server
//! (`dip_reporting::trail`); the audit REST API answers the same URLs as JSON and CSV.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use dip_admin::types::{AppError, ListQuery, Page, encode};
pub use dip_reporting::trail_views::*;

use super::ui::*;

/// A page of the message search.
#[server(prefix = "/fn", endpoint = "search_messages")]
pub async fn search_messages(query: ListQuery) -> Result<Page<MessageRow>, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::trail::search(&state.broker, &actor, &query)
        .await
        .map_err(crate::ctx::fail)
}

/// One transaction's trace.
#[server(prefix = "/fn", endpoint = "trace_message")]
pub async fn trace_message(id: String) -> Result<Trace, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::trail::trace(&state.broker, &state.analytics, &actor, &id)
        .await
        .map_err(crate::ctx::fail)
}

/// One workflow's messages and sequence diagram.
#[server(prefix = "/fn", endpoint = "load_workflow")]
pub async fn load_workflow(id: String) -> Result<Workflow, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::trail::workflow(&state.broker, &actor, &id)
        .await
        .map_err(crate::ctx::fail)
}

/// An MPAN's appointment history and the messages about it.
#[server(prefix = "/fn", endpoint = "load_mpan_report")]
pub async fn load_mpan_report(mpan: String, query: ListQuery) -> Result<MpanReport, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::trail::mpan_report(&state.broker, &actor, &mpan, &query)
        .await
        .map_err(crate::ctx::fail)
}

/// The URL query of a search (for the CSV link), as the page has it.
fn query_string(q: &ListQuery) -> String {
    let mut pairs: Vec<String> = q
        .filters
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    for (k, v) in [("q", q.q.as_str()), ("sort", q.sort.as_str())] {
        if !v.is_empty() {
            pairs.push(format!("{k}={}", encode(v)));
        }
    }
    if q.desc {
        pairs.push("dir=desc".into());
    }
    pairs.join("&")
}

/// `/messages`: the message search.
#[component]
pub fn MessagesPage() -> impl IntoView {
    let query = use_list_query(&SEARCH_FILTERS);
    let data = Resource::new(move || query.get(), search_messages);
    let results = move |page: Page<MessageRow>| {
        let q = query.get_untracked();
        view! {
            <Table page empty="No messages match."
                head=message_head(&q)
                row=|m: MessageRow| view! { <MessageLine m/> }.into_any()/>
        }
        .into_any()
    };
    view! {
        <Title text="Messages"/>
        <h1>"Messages"</h1>
        <p>"Every message you may see, newest first: those your participant sent, and your own copies of those it received. Search by any id, or narrow with the filters."</p>
        <p><a href="/reports/senders">"Sender report"</a>": a sender's messages per channel and outcome, with latency and why items were refused."</p>
        {move || {
            let q = query.get();
            let csv = format!("/api/v1/audit/messages.csv?{}", query_string(&q));
            view! {
                <SearchFilters q/>
                <p class="actions"><a href=csv download="dip-messages.csv">"Download CSV"</a></p>
            }
        }}
        <Loaded data view=results/>
    }
}

/// The header of a table of messages, sortable by receipt, channel and sender.
fn message_head(q: &ListQuery) -> AnyView {
    view! {
        <SortHeader column="received" label="Received (UTC)" query=q.clone()/>
        <th scope="col">"Transaction"</th>
        <SortHeader column="channel" label="Channel" query=q.clone()/>
        <SortHeader column="sender" label="Sender" query=q.clone()/>
        <th scope="col">"Sender reference"</th>
        <th scope="col">"MPAN"</th>
        <th scope="col">"Recipients"</th>
    }
    .into_any()
}

#[component]
fn SearchFilters(q: ListQuery) -> impl IntoView {
    let filters = q.filters.clone();
    let value = move |name: &str| filters.get(name).cloned().unwrap_or_default();
    view! {
        <FilterBar query=q.clone()>
            <label>"Transaction id" <input name="transaction" value=value("transaction")/></label>
            <label>"Sender reference" <input name="reference" value=value("reference")/></label>
            <label>"Correlation id" <input name="correlation" value=value("correlation")/></label>
            <label>"MPAN" <input name="mpan" inputmode="numeric" value=value("mpan")/></label>
            <label>"Channel" <input name="channel" placeholder="IF-…" value=value("channel")/></label>
            <label>"Sender" <input name="sender" placeholder="DIP ID" value=value("sender")/></label>
            <label>"Recipient" <input name="recipient" placeholder="DIP ID" value=value("recipient")/></label>
            <StateAndTime q=q.clone()/>
        </FilterBar>
    }
}

/// The state and time filters every table of messages has.
#[component]
fn StateAndTime(q: ListQuery) -> impl IntoView {
    let value = |name: &str| q.filters.get(name).cloned().unwrap_or_default();
    let states: Vec<(String, String)> = STATES.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect();
    let (from, to) = (value("from"), value("to"));
    view! {
        <FilterSelect name="state" label="State" options=states query=q.clone()/>
        <label>"From (UTC)" <input type="datetime-local" name="from" value=from/></label>
        <label>"To (UTC)" <input type="datetime-local" name="to" value=to/></label>
    }
}

/// The badge class of a copy or step state.
fn tone(state: &str) -> &'static str {
    match state {
        "delivered" => "badge ok",
        "retrying" | "failed_attempt" | "redriven" | "replayed" => "badge warn",
        "returned" | "dead_lettered" => "badge bad",
        _ => "badge",
    }
}

#[component]
fn MessageLine(m: MessageRow) -> impl IntoView {
    let href = format!("/messages/{}", encode(&m.transaction_id));
    view! {
        <tr>
            <td><time datetime=m.received_at.clone()>{short_time(&m.received_at)}</time></td>
            <td><a href=href class="mono">{m.transaction_id.clone()}</a></td>
            <td>{m.interface_id.clone()}" "<span class="muted">{m.event_code.clone()}</span></td>
            <td>{m.sender_dip_id.clone()}</td>
            <td class="mono">{m.sender_reference.clone()}</td>
            <td class="mono">{m.mpan.clone().unwrap_or_default()}</td>
            <td>
                <ul class="copies">
                    {m.copies.into_iter().map(|c| view! {
                        <li>
                            {c.recipient_dip_id.clone()}" "
                            <span class=tone(&c.state)>{state_label(&c.state).to_owned()}</span>
                            {(c.attempts > 0).then(|| format!(" · {} attempt{}", c.attempts, if c.attempts == 1 { "" } else { "s" }))}
                            {c.replay_id.is_some().then_some(" · replay copy")}
                        </li>
                    }).collect_view()}
                </ul>
            </td>
        </tr>
    }
}

/// `/messages/:id`: one transaction's trace.
#[component]
pub fn MessagePage() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(move || params.read().get("id").unwrap_or_default(), trace_message);
    view! {
        <Title text="Transaction"/>
        <p><a href="/messages">"← Messages"</a></p>
        <Loaded data view=|t: Trace| view! { <TraceView t/> }.into_any()/>
    }
}

#[component]
fn TraceView(t: Trace) -> impl IntoView {
    let m = t.message.clone();
    let mpan = m.mpan.clone().map(|v| {
        let report = format!("/mpans/{}", encode(&v));
        view! { <a href=report class="mono">{v.clone()}</a>" (its appointments and messages)" }
    });
    let correlation = m.correlation_id.clone().map(|v| {
        let workflow = format!("/workflows/{}", encode(&v));
        view! { <a href=workflow class="mono">{v.clone()}</a>" (the whole workflow)" }
    });
    let evidence = format!("/api/v1/audit/messages/{}/evidence", encode(&m.transaction_id));
    let signed = match t.signed_with.clone() {
        Some(sig) => view! {
            <p id="signature">"Signed by the sender at "<time datetime=sig.signed_at.clone()>{short_time(&sig.signed_at)}</time>
                " with certificate "<span class="mono">{sig.fingerprint}</span>
                {sig.subject.map(|s| format!(" ({s})"))}"; the signature was verified at receipt."</p>
        }
        .into_any(),
        None => view! { <p id="signature">"The sender's request was not signed."</p> }.into_any(),
    };
    view! {
        <h1>"Transaction "<span class="mono">{m.transaction_id.clone()}</span></h1>
        <p><a href=evidence download rel="external">"Download the evidence bundle"</a>
            <span class="hint">" — receipt, routing and every webhook call, signed by the platform; "
            "check it offline with openssl (its verify.sh)."</span></p>
        {(!t.whole).then(|| view! {
            <p class="hint">"Your participant received this message: you see your own copy, as it was delivered to you."</p>
        })}
        <dl class="facts">
            <dt>"Channel"</dt><dd>{m.interface_id.clone()}" · event "{m.event_code.clone()}" · schema "{t.schema_version.clone()}</dd>
            <dt>"Sender"</dt><dd>{m.sender_dip_id.clone()}" as "{t.sender_role.clone()}</dd>
            {m.dcp_dip_id.clone().map(|d| view! { <dt>"Submitted by DCP"</dt><dd>{d}</dd> })}
            <dt>"Sender reference"</dt><dd class="mono">{m.sender_reference.clone()}</dd>
            <dt>"Received (UTC)"</dt><dd><time datetime=m.received_at.clone()>{short_time(&m.received_at)}</time></dd>
            <dt>"MPAN"</dt><dd>{mpan.map(IntoAny::into_any).unwrap_or_else(|| "—".into_any())}</dd>
            <dt>"Correlation id"</dt><dd>{correlation.map(IntoAny::into_any).unwrap_or_else(|| "—".into_any())}</dd>
        </dl>
        <h2>"Receipt"</h2>
        {signed}
        <Steps steps=t.receipt.clone() empty="The receipt event is not recorded yet."/>
        <h2>"Routing decision"</h2>
        <p class="hint">"Why each recipient was chosen: the channel's rules, and for MPAN routing the appointment and its dates."</p>
        <div class="table-wrap">
            <table id="routing">
                <thead><tr>
                    <th scope="col">"Recipient"</th><th scope="col">"Role"</th><th scope="col">"Queue"</th>
                    <th scope="col">"Chosen by"</th><th scope="col">"Hidden from it"</th>
                </tr></thead>
                <tbody>
                    {t.routed.clone().into_iter().map(|r| view! {
                        <tr>
                            <td>{r.recipient}</td><td>{r.role}</td><td class="mono">{r.queue}</td>
                            <td><ul class="copies">{r.reasons.into_iter().map(|why| view! { <li>{why}</li> }).collect_view()}</ul></td>
                            <td class="mono">{if r.hidden.is_empty() { "—".to_owned() } else { r.hidden.join(", ") }}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        {(!t.unresolved.is_empty()).then(|| view! {
            <p>"Rules that reached nobody:"</p>
            <ul>{t.unresolved.clone().into_iter().map(|u| view! { <li>{u}</li> }).collect_view()}</ul>
        })}
        <details>
            <summary>"The decision as stored (JSON)"</summary>
            <pre class="json">{t.routing.clone()}</pre>
        </details>
        <h2>"Payload"</h2>
        <p class="hint">{t.payload_note.clone()}</p>
        {t.payload.clone().map(|p| view! { <pre class="json" id="payload">{p}</pre> })}
        <h2>"Recipient copies"</h2>
        {if t.copies.is_empty() {
            view! { <Empty message="No recipient copies: nobody was routed this message."/> }.into_any()
        } else {
            t.copies.into_iter().map(|c| view! { <CopyView c/> }).collect_view().into_any()
        }}
    }
}

#[component]
fn CopyView(c: CopyTrace) -> impl IntoView {
    let title = format!("{} · {} · position {}", c.copy.recipient_dip_id, c.copy.queue_id, c.seq);
    let replay = c
        .copy
        .replay_id
        .clone()
        .map(|r| view! { <p class="hint">"Replay copy "<span class="mono">{c.transaction_id.clone()}</span>" of replay "<span class="mono">{r}</span></p> });
    let hidden = (!c.hidden.is_empty()).then(|| {
        view! { <p class="hint">"Fields hidden from this recipient (role "{c.recipient_role.clone()}"): "<span class="mono">{c.hidden.join(", ")}</span></p> }
    });
    let reports = (!c.reports.is_empty()).then(|| {
        view! {
            <p class="hint reports">"Return-to-sender report"{if c.reports.len() == 1 { ": " } else { "s: " }}
                {c.reports.iter().map(|r| {
                    let href = format!("/messages/{}", encode(&r.transaction_id));
                    view! { <a class="mono" href=href>{r.transaction_id.clone()}</a>" ("{r.reason.clone()}") " }
                }).collect_view()}
            </p>
        }
    });
    let behind = c
        .queued_behind
        .clone()
        .map(|b| view! { <p class="hint behind">{behind_text(&b)}</p> });
    view! {
        <section class="copy" aria-label=title.clone()>
            <h3>{title.clone()}" "<span class=tone(&c.copy.state)>{state_label(&c.copy.state).to_owned()}</span></h3>
            {replay}
            {hidden}
            {behind}
            {reports}
            <Steps steps=c.steps empty="No events recorded for this copy yet."/>
        </section>
    }
}

/// Why a copy waited: its queue is delivered in order, so it waits for those ahead.
fn behind_text(b: &QueuedBehind) -> String {
    let one = b.messages == "1";
    let mut text = format!(
        "Joined its queue behind {} earlier message{} to this recipient (each queue is delivered in order, one at a time)",
        b.messages,
        if one { "" } else { "s" }
    );
    if b.retried > 0 {
        let outcome = b.retry_outcome.as_deref();
        let failed = match (one, outcome) {
            (true, Some(o)) => format!("; the recipient first answered it {o} and it was retried"),
            (true, None) => "; the recipient failed it at first and it was retried".to_owned(),
            (false, Some(o)) => format!(
                "; the recipient failed {} of them at first (the first with {o}) and they were retried",
                b.retried
            ),
            (false, None) => format!(
                "; the recipient failed {} of them at first and they were retried",
                b.retried
            ),
        };
        text.push_str(&failed);
    }
    match b.waited_ms {
        Some(ms) if ms >= 1000.0 => text.push_str(&format!(
            ". The queue was clear for it {:.1} s after it joined.",
            ms / 1000.0
        )),
        Some(ms) => text.push_str(&format!(". The queue was clear for it {ms:.0} ms after it joined.")),
        None => text.push_str(". The queue is not clear for it yet."),
    }
    text
}

#[component]
fn Steps(steps: Vec<Step>, empty: &'static str) -> impl IntoView {
    if steps.is_empty() {
        return view! { <Empty message=empty/> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="steps">
                <thead><tr>
                    <th scope="col">"When (UTC)"</th><th scope="col">"Step"</th><th scope="col">"Outcome"</th>
                    <th scope="col">"Call took"</th><th scope="col">"Since previous step"</th>
                </tr></thead>
                <tbody>
                    {steps.into_iter().map(|s| view! {
                        <tr>
                            <td><time datetime=s.at.clone()>{short_time(&s.at)}</time></td>
                            <td><span class=tone(&s.kind)>{state_label(&s.kind).to_owned()}</span></td>
                            <td>{s.outcome.clone()}{s.answer.clone().map(|a| view! {
                                <details class="answer"><summary>"Answer"</summary><pre>{a}</pre></details>
                            })}</td>
                            <td class="num">{s.duration_ms.map(|d| format!("{d:.1} ms")).unwrap_or_default()}</td>
                            <td class="num">{format!("{:.1} ms", s.after_ms)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// `/workflows/:id`: every message of one workflow, as a sequence diagram and a table.
#[component]
pub fn WorkflowPage() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(move || params.read().get("id").unwrap_or_default(), load_workflow);
    view! {
        <Title text="Workflow"/>
        <p><a href="/messages">"← Messages"</a></p>
        <Loaded data view=|w: Workflow| view! { <WorkflowView w/> }.into_any()/>
    }
}

#[component]
fn WorkflowView(w: Workflow) -> impl IntoView {
    let count = w.messages.len();
    let summary = match w.waiting {
        0 => format!("{count} messages; every copy has left its queue."),
        n => format!(
            "{count} messages; {n} cop{} still waiting for delivery (dashed).",
            if n == 1 { "y" } else { "ies" }
        ),
    };
    view! {
        <h1>"Workflow "<span class="mono">{w.correlation_id.clone()}</span></h1>
        <p>{summary}</p>
        {w.truncated.then(|| view! { <p class="hint">"Only the first messages are shown."</p> })}
        <figure>
            <figcaption>{format!("Participants: {}", w.lanes.join(", "))}</figcaption>
            <div class="chart sequence" inner_html=w.svg.clone()></div>
        </figure>
        <h2>"Messages"</h2>
        <div class="table-wrap">
            <table>
                <thead><tr>
                    <th scope="col">"Received (UTC)"</th><th scope="col">"Transaction"</th><th scope="col">"Channel"</th>
                    <th scope="col">"Sender"</th><th scope="col">"Sender reference"</th><th scope="col">"MPAN"</th>
                    <th scope="col">"Recipients"</th>
                </tr></thead>
                <tbody>{w.messages.into_iter().map(|m| view! { <MessageLine m/> }).collect_view()}</tbody>
            </table>
        </div>
    }
}

/// `/mpans/:mpan`: the MPAN report.
#[component]
pub fn MpanPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_list_query(&["from", "to", "state"]);
    let data = Resource::new(
        move || (params.read().get("mpan").unwrap_or_default(), query.get()),
        |(mpan, query)| load_mpan_report(mpan, query),
    );
    let report = move |r: MpanReport| {
        let q = query.get_untracked();
        view! { <MpanView r q/> }.into_any()
    };
    view! {
        <Title text="MPAN report"/>
        <p><a href="/messages">"← Messages"</a></p>
        <Loaded data view=report/>
    }
}

#[component]
fn MpanView(r: MpanReport, q: ListQuery) -> impl IntoView {
    let head = message_head(&q);
    view! {
        <h1>"MPAN "<span class="mono">{r.mpan.clone()}</span></h1>
        <h2>"Appointment history"</h2>
        {if r.appointments.is_empty() {
            view! { <Empty message="No appointments are recorded for this MPAN."/> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table id="appointments">
                        <thead><tr>
                            <th scope="col">"Role"</th><th scope="col">"Appointed"</th><th scope="col">"From"</th>
                            <th scope="col">"Until"</th><th scope="col">"Recorded by"</th>
                        </tr></thead>
                        <tbody>
                            {r.appointments.into_iter().map(|a| {
                                let source = a.source_transaction_id.clone().map(|t| {
                                    let href = format!("/messages/{}", encode(&t));
                                    view! { <a href=href class="mono">{t}</a> }
                                });
                                view! {
                                    <tr>
                                        <td>{a.role}</td>
                                        <td>{a.participant.unwrap_or_else(|| "— (de-appointed)".into())}</td>
                                        <td>{a.effective_from}</td>
                                        <td>{a.effective_to.unwrap_or_else(|| "—".into())}</td>
                                        <td>{source.map(IntoAny::into_any).unwrap_or_else(|| "loaded by the operator".into_any())}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any()
        }}
        <h2>"Messages about this MPAN"</h2>
        {r.periods.clone().map(|p| view! { <p class="hint">{format!("Your participant's messages while it was appointed: {p}.")}</p> })}
        <FilterBar query=q.clone()>
            <StateAndTime q=q.clone()/>
        </FilterBar>
        <Table page=r.messages empty="No messages about this MPAN match."
            head=head
            row=|m: MessageRow| view! { <MessageLine m/> }.into_any()/>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(messages: &str, retried: i64, outcome: Option<&str>, waited_ms: Option<f64>) -> String {
        behind_text(&QueuedBehind {
            messages: messages.into(),
            retried,
            retry_outcome: outcome.map(str::to_owned),
            waited_ms,
        })
    }

    #[test]
    fn a_wait_behind_the_queue_is_told_in_words() {
        assert_eq!(
            behind("1", 1, Some("HTTP 503"), Some(1230.0)),
            "Joined its queue behind 1 earlier message to this recipient (each queue is delivered in order, one at \
             a time); the recipient first answered it HTTP 503 and it was retried. The queue was clear for it \
             1.2 s after it joined."
        );
        assert_eq!(
            behind("1000+", 2, None, None),
            "Joined its queue behind 1000+ earlier messages to this recipient (each queue is delivered in order, one \
             at a time); the recipient failed 2 of them at first and they were retried. The queue is not clear \
             for it yet."
        );
        assert!(
            behind("3", 0, None, Some(12.4))
                .ends_with("one at a time). The queue was clear for it 12 ms after it joined.")
        );
    }
}
