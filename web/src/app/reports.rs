//! The reports dashboard (spec 5.11.1, 5.11.2): incoming, outgoing and error volumes,
//! end-to-end and internal latency against the objective, and the split between the
//! platform's time and the recipient's, as charts with the numbers in tables beside
//! them. Every filter lives in the URL; the last hour can be followed live.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use dip_admin::types::AppError;
pub use dip_reporting::report_views::*;

use super::ui::*;

/// Builds the report the URL asks for.
#[server(prefix = "/fn", endpoint = "load_report")]
pub async fn load_report(params: ReportParams) -> Result<ReportView, AppError> {
    let (state, actor) = crate::ctx::actor().await?;
    dip_reporting::dashboard::view(&state.broker, &state.analytics, &actor, params)
        .await
        .map_err(crate::ctx::fail)
}

fn params_from_url() -> Memo<ReportParams> {
    let query = use_query_map();
    Memo::new(move |_| {
        let q = query.read();
        let get = |k: &str| q.get(k).unwrap_or_default();
        ReportParams {
            range: get("range"),
            from: get("from"),
            to: get("to"),
            interval: get("interval"),
            channels: q
                .get_all("channel")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect(),
            sender: get("sender"),
            recipient: get("recipient"),
            group: get("group"),
            scope: get("scope"),
            live: get("live") == "1",
        }
    })
}

/// `/reports`: the dashboard.
#[component]
pub fn ReportsPage() -> impl IntoView {
    let params = params_from_url();
    let data = Resource::new(move || params.get(), load_report);
    // Live: fetch the report again every 15 s while the page is open.
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                if params.get_untracked().live {
                    data.refetch();
                }
            },
            std::time::Duration::from_secs(15),
        );
        if let Ok(h) = handle {
            on_cleanup(move || h.clear());
        }
    }
    view! {
        <Title text="Reports"/>
        <h1>"Reports"</h1>
        <Loaded data view=move |r: ReportView| view! { <Report r/> }.into_any()/>
    }
}

#[component]
fn Report(r: ReportView) -> impl IntoView {
    let p = r.params.clone();
    let csv = format!("/api/v1/reports/throughput.csv?{}", p.to_query());
    let live_href = {
        let mut l = p.clone();
        l.live = !p.live;
        if l.live {
            l.range = "1h".into();
            l.interval = String::new();
        }
        format!("/reports?{}", l.to_query())
    };
    let group_label = r.group_label.clone();
    view! {
        <ReportFilters r=r.clone()/>
        <p class="report-span">
            <strong>{r.span.clone()}</strong>" · "{r.scope.clone()}
            {p.live.then(|| view! { " · " <span class="live" role="status">"Live: refreshed every 15 s"</span> })}
        </p>
        <p class="actions">
            <a href=csv download="dip-throughput.csv">"Download CSV"</a>
            <a href=live_href>{if p.live { "Stop following" } else { "Follow the last hour live" }}</a>
        </p>
        <section class="charts" aria-label="Charts">
            <figure>
                <figcaption>"Messages per interval: incoming, outgoing, errors"</figcaption>
                <div class="chart" inner_html=r.volume_svg.clone()></div>
            </figure>
            <figure>
                <figcaption>"End-to-end latency (receipt to acknowledgement), with the 3 s objective"</figcaption>
                <div class="chart" inner_html=r.latency_svg.clone()></div>
            </figure>
            <figure>
                <figcaption>"Where the time goes: platform versus recipient webhook (mean)"</figcaption>
                <div class="chart" inner_html=r.hops_svg.clone()></div>
            </figure>
        </section>
        <h2>"Totals and the objective"</h2>
        <p class="hint">"Objective (spec 5.10.3): 90 % of messages delivered within 3 s of receipt, all within 30 s."</p>
        <div class="table-wrap">
            <table class="numbers" id="totals">
                <thead><tr>
                    <th scope="col">{if group_label.is_empty() { "Traffic".to_owned() } else { group_label.clone() }}</th>
                    <th scope="col">"Incoming"</th><th scope="col">"Queued"</th><th scope="col">"Outgoing"</th>
                    <th scope="col">"Errors"</th><th scope="col">"Failed attempts"</th>
                    <th scope="col">"E2E p50"</th><th scope="col">"p90"</th><th scope="col">"p99"</th>
                    <th scope="col">"max"</th><th scope="col">"avg"</th><th scope="col">"≤ 3 s"</th><th scope="col">"Objective"</th>
                    <th scope="col">"Internal avg"</th><th scope="col">"Internal p99"</th>
                    <th scope="col">"Platform avg"</th><th scope="col">"Webhook avg"</th>
                </tr></thead>
                <tbody>{r.totals.into_iter().map(totals_row).collect_view()}</tbody>
            </table>
        </div>
        <h2>"By interval"</h2>
        {if r.series.is_empty() {
            view! { <Empty message="No traffic in this range."/> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table class="numbers" id="series">
                        <thead><tr>
                            <th scope="col">"From (UTC)"</th><th scope="col">"Incoming"</th><th scope="col">"Outgoing"</th>
                            <th scope="col">"Errors"</th><th scope="col">"E2E p50"</th><th scope="col">"p90"</th>
                            <th scope="col">"p99"</th><th scope="col">"max"</th><th scope="col">"≤ 3 s"</th>
                        </tr></thead>
                        <tbody>{r.series.into_iter().map(|b| {
                            let l = b.end_to_end.clone();
                            view! {
                                <tr>
                                    <td>{b.start}</td><td>{b.received}</td><td>{b.delivered}</td><td>{b.errors}</td>
                                    <td>{ms(l.as_ref().map(|l| l.p50_ms))}</td><td>{ms(l.as_ref().map(|l| l.p90_ms))}</td>
                                    <td>{ms(l.as_ref().map(|l| l.p99_ms))}</td><td>{ms(l.as_ref().map(|l| l.max_ms))}</td>
                                    <td>{pct(l.as_ref().map(|l| l.within_3s_pct))}</td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                </div>
            }.into_any()
        }}
    }
}

fn totals_row(t: TotalsRow) -> impl IntoView {
    let l = t.end_to_end.clone();
    let i = t.internal.clone();
    let objective = match &l {
        Some(l) if l.slo_met => view! { <span class="ok">"met"</span> }.into_any(),
        Some(_) => view! { <span class="bad">"missed"</span> }.into_any(),
        None => view! { "—" }.into_any(),
    };
    let name = if t.group.is_empty() {
        "All".to_owned()
    } else {
        t.group.clone()
    };
    view! {
        <tr>
            <th scope="row">{name}</th>
            <td>{t.received}</td><td>{t.routed}</td><td>{t.delivered}</td><td>{t.errors}</td><td>{t.failed_attempts}</td>
            <td>{ms(l.as_ref().map(|l| l.p50_ms))}</td><td>{ms(l.as_ref().map(|l| l.p90_ms))}</td>
            <td>{ms(l.as_ref().map(|l| l.p99_ms))}</td><td>{ms(l.as_ref().map(|l| l.max_ms))}</td>
            <td>{ms(l.as_ref().map(|l| l.avg_ms))}</td><td>{pct(l.as_ref().map(|l| l.within_3s_pct))}</td>
            <td>{objective}</td>
            <td>{ms(i.as_ref().map(|l| l.avg_ms))}</td><td>{ms(i.as_ref().map(|l| l.p99_ms))}</td>
            <td>{ms(t.platform_avg_ms)}</td><td>{ms(t.webhook_avg_ms)}</td>
        </tr>
    }
}

/// Milliseconds for a table cell.
pub(super) fn ms(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// A percentage for a table cell.
pub(super) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1} %"))
}

/// The filter form: a GET form, so every choice lands in the URL.
#[component]
fn ReportFilters(r: ReportView) -> impl IntoView {
    let p = r.params;
    let option = |value: &str, text: &str, current: &str| {
        let selected = value == current;
        view! { <option value=value.to_owned() selected=selected>{text.to_owned()}</option> }
    };
    let participants = r.participant_options;
    let who = |name: &'static str, label: &'static str, current: String| {
        let options = participants.clone();
        view! {
            <label>
                {label}
                <select name=name>
                    <option value="">"Any"</option>
                    {options.into_iter().map(|(id, n)| {
                        let selected = id == current;
                        view! { <option value=id.clone() selected=selected>{format!("{id} {n}")}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
    };
    view! {
        <form method="get" class="filters report-filters" role="search" aria-label="Report filters">
            <label>
                "Range"
                <select name="range">
                    {RANGES.iter().map(|(v, t, _)| option(v, t, &p.range)).collect_view()}
                    {option("custom", "Custom (below)", &p.range)}
                </select>
            </label>
            <label>"From (UTC)" <input type="datetime-local" name="from" value=p.from.clone()/></label>
            <label>"To (UTC)" <input type="datetime-local" name="to" value=p.to.clone()/></label>
            <label>
                "Interval"
                <select name="interval">
                    <option value="">"Automatic"</option>
                    {INTERVALS.iter().map(|(v, t)| option(v, t, &p.interval)).collect_view()}
                </select>
            </label>
            <label>
                "Channels"
                <select name="channel" multiple size="4">
                    {r.channel_options.into_iter().map(|c| {
                        let selected = p.channels.contains(&c);
                        view! { <option value=c.clone() selected=selected>{c.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
            {who("sender", "Sender", p.sender.clone())}
            {who("recipient", "Recipient", p.recipient.clone())}
            <label>
                "Split by"
                <select name="group">
                    {option("", "Nothing", &p.group)}
                    {option("channel", "Channel", &p.group)}
                    {option("sender", "Sender", &p.group)}
                    {option("recipient", "Recipient", &p.group)}
                </select>
            </label>
            {r.participant_user.then(|| view! {
                <label>
                    "Traffic"
                    <select name="scope">
                        {option("", "Sent or received by us", &p.scope)}
                        {option("market", "Market totals", &p.scope)}
                    </select>
                </label>
            })}
            {p.live.then(|| view! { <input type="hidden" name="live" value="1"/> })}
            <button type="submit">"Show"</button>
        </form>
    }
}
