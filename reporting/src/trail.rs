//! The message audit trail (spec 5.11.3, 5.12.1): message search and a transaction's
//! trace, with row-level access (5.11) decided here, on the server, for the portal's
//! pages and the audit REST API alike.
//!
//! Who sees what: operator staff see everything. A participant's users and keys (and a
//! DCP, for the participants that nominated it) see the messages their participant sent
//! or received; a message it only received shows only its own copies, their attempts and
//! its own line of the routing decision. Anything else is "not found", so that whether a
//! transaction exists does not leak.

use std::collections::HashMap;

use serde_json::Value;

use broker_core::Broker;
use broker_core::clock::rfc3339;
use broker_core::events::{Event, EventKind};
use broker_core::store::{
    AHEAD_LIMIT, Attempt, CopyState, MessageOrder, MessageQuery, MessageRecord, QueueEntry, SEARCH_COUNT_CAP,
    StoreError,
};
use dip_admin::types::{Actor, AppError, ListQuery, PAGE_SIZE, Page};

use crate::analytics::Analytics;
use crate::charts::{self, Arrow};
use crate::error::AnalyticsError;
use crate::trail_views::{
    AppointmentRow, CopyRow, CopyTrace, MessageRow, MpanReport, QueuedBehind, ReportLink, RoutingLine, SignedWith,
    Step, Trace, Workflow,
};

/// Most rows one CSV export holds.
pub const EXPORT_LIMIT: i64 = 10_000;

/// Most messages one workflow shows.
pub const WORKFLOW_LIMIT: i64 = 500;

/// Whose messages a viewer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Operator staff: every message and copy.
    All,
    /// A participant's viewer: its own DIP ID and those it acts for (as a DCP).
    Of(Vec<String>),
}

impl Scope {
    /// The scope of `actor`: operator staff see all; a participant's message users,
    /// auditors and analysts (and its API keys) see their participant's; a participant's
    /// user administrator alone sees none (403).
    pub fn of(broker: &Broker, actor: &Actor) -> Result<Self, AppError> {
        match &actor.dip_id {
            None => Ok(Self::All),
            Some(_) if !actor.reads_messages() => Err(AppError::Forbidden),
            Some(own) => Ok(Self::Of(broker.registry().acts_for(own))),
        }
    }

    /// The DIP IDs whose messages and queues the viewer may see; `None`: all.
    pub fn visible(&self) -> Option<&[String]> {
        self.ids()
    }

    fn ids(&self) -> Option<&[String]> {
        match self {
            Self::All => None,
            Self::Of(ids) => Some(ids),
        }
    }

    pub(crate) fn includes(&self, dip_id: &str) -> bool {
        self.ids().is_none_or(|ids| ids.iter().any(|i| i == dip_id))
    }

    /// Whether the viewer sent `m` (itself or as its DCP), or is operator staff: then
    /// every copy of it is visible.
    pub fn sees_whole(&self, m: &MessageRecord) -> bool {
        self.includes(&m.sender_dip_id) || m.dcp_dip_id.as_deref().is_some_and(|d| self.includes(d))
    }

    /// Whether the viewer may see copy `e` of `m`.
    pub fn sees_copy(&self, m: &MessageRecord, e: &QueueEntry) -> bool {
        self.sees_whole(m) || self.includes(&e.recipient_dip_id)
    }
}

/// The store query a search's URL asks for (filters, sort and page), limited to `scope`.
pub fn query_of(list: &ListQuery, scope: &Scope, limit: i64) -> Result<MessageQuery, AppError> {
    let text = |name: &str| {
        list.filters
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let state = match text("state") {
        None => None,
        Some(s) => Some(CopyState::parse(&s).ok_or_else(|| AppError::field("state", "Choose a state from the list."))?),
    };
    let time = |name: &str| text(name).map(|v| parse_time(name, &v)).transpose();
    let (received_from, received_to) = (time("from")?, time("to")?);
    if let (Some(f), Some(t)) = (received_from, received_to)
        && f >= t
    {
        return Err(AppError::field("to", "The end must be after the start."));
    }
    let mpan = match text("mpan") {
        Some(m) if !mpan_shaped(&m) => {
            return Err(AppError::field("mpan", "An MPAN core is 13 digits."));
        }
        other => other,
    };
    let order = match list.sort.as_str() {
        "" | "received" => MessageOrder::Received,
        "sender" => MessageOrder::Sender,
        "channel" => MessageOrder::Channel,
        _ => return Err(AppError::field("sort", "Sort by received, sender or channel.")),
    };
    let page = list.page.max(1);
    let any = list.q.trim();
    Ok(MessageQuery {
        any_id: (!any.is_empty()).then(|| any.to_owned()),
        transaction_id: text("transaction"),
        sender_reference: text("reference"),
        correlation_id: text("correlation"),
        mpan,
        interface_id: text("channel"),
        sender_dip_id: text("sender"),
        recipient_dip_id: text("recipient"),
        state,
        received_from,
        received_to,
        received_within: None,
        visible_to: scope.ids().map(<[String]>::to_vec),
        order,
        // Newest first unless asked otherwise; sender and channel A to Z.
        ascending: match order {
            MessageOrder::Received => list.desc,
            _ => !list.desc,
        },
        offset: i64::try_from((page - 1) * PAGE_SIZE).unwrap_or(i64::MAX),
        limit,
    })
}

/// A UTC time from a search field: RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` or a day.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<i64, AppError> {
    crate::time::utc_micros(s, true)
        .ok_or_else(|| AppError::field(field, "Give a UTC time as YYYY-MM-DD or YYYY-MM-DDTHH:MM."))
}

/// Whether `s` has the shape of an MPAN core (13 digits; the check digit is not asked
/// for: a search for a mistyped MPAN finds nothing rather than failing).
fn mpan_shaped(s: &str) -> bool {
    s.len() == 13 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A participant as pages name it: "Name (DIP ID)", or the DIP ID alone if unknown.
pub(crate) fn named(registry: &broker_core::registry::Registry, dip_id: &str) -> String {
    match registry.participant(dip_id) {
        Some(p) => format!("{} ({dip_id})", p.name),
        None => dip_id.to_owned(),
    }
}

/// One page of results as tables show it: the count stops at the cap, so paging goes no
/// further than it reaches.
fn page_of(rows: Vec<MessageRow>, total: i64, list: &ListQuery) -> Page<MessageRow> {
    Page {
        rows,
        total: usize::try_from(total.min(SEARCH_COUNT_CAP)).unwrap_or(0),
        page: list.page.max(1),
    }
}

fn unavailable(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "audit trail");
    AppError::Unavailable
}

impl From<AnalyticsError> for TrailError {
    fn from(e: AnalyticsError) -> Self {
        Self(unavailable(e))
    }
}

impl From<StoreError> for TrailError {
    fn from(e: StoreError) -> Self {
        Self(unavailable(e))
    }
}

/// An error of the trail, as the portal and the API report it.
struct TrailError(AppError);

/// A page of messages matching the URL's search, as `actor` may see them.
pub async fn search(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<Page<MessageRow>, AppError> {
    let scope = Scope::of(broker, actor)?;
    let query = query_of(list, &scope, i64::try_from(PAGE_SIZE).unwrap_or(20))?;
    let (rows, total) = rows_of(broker, &scope, &query).await.map_err(|e| e.0)?;
    Ok(page_of(rows, total, list))
}

/// Up to [`EXPORT_LIMIT`] messages matching the search (from its first page), for CSV.
pub async fn export(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<Vec<MessageRow>, AppError> {
    let scope = Scope::of(broker, actor)?;
    let list = ListQuery {
        page: 1,
        ..list.clone()
    };
    let query = query_of(&list, &scope, EXPORT_LIMIT)?;
    Ok(rows_of(broker, &scope, &query).await.map_err(|e| e.0)?.0)
}

async fn rows_of(broker: &Broker, scope: &Scope, query: &MessageQuery) -> Result<(Vec<MessageRow>, i64), TrailError> {
    let (messages, total) = broker.messages().search_messages(query).await?;
    let ids: Vec<String> = messages.iter().map(|m| m.transaction_id.clone()).collect();
    let mut copies: HashMap<String, Vec<QueueEntry>> = HashMap::new();
    for e in broker.queues().copies_of(&ids).await? {
        let of = e.replay_of.clone().unwrap_or_else(|| e.transaction_id.clone());
        copies.entry(of).or_default().push(e);
    }
    let rows = messages
        .iter()
        .map(|m| {
            let visible = copies
                .get(&m.transaction_id)
                .into_iter()
                .flatten()
                .filter(|e| scope.sees_copy(m, e))
                .map(copy_row)
                .collect();
            message_row(m, visible)
        })
        .collect();
    Ok((rows, total))
}

fn message_row(m: &MessageRecord, copies: Vec<CopyRow>) -> MessageRow {
    MessageRow {
        transaction_id: m.transaction_id.clone(),
        received_at: rfc3339(m.received_at),
        sender_dip_id: m.sender_dip_id.clone(),
        sender_reference: m.sender_unique_reference.clone(),
        dcp_dip_id: m.dcp_dip_id.clone(),
        interface_id: m.interface_id.clone(),
        event_code: m.event_code.clone(),
        mpan: m.mpan.clone(),
        correlation_id: m.correlation_id.clone(),
        copies,
    }
}

/// A copy's state as the trail names it.
pub(crate) fn copy_state(e: &QueueEntry) -> &'static str {
    match e.state.as_str() {
        "pending" if e.attempts == 0 => "queued",
        "pending" => "retrying",
        "delivered" => "delivered",
        "returned" => "returned",
        "dead" => "dead_lettered",
        "redriven" => "redriven",
        _ => "unknown",
    }
}

fn copy_row(e: &QueueEntry) -> CopyRow {
    CopyRow {
        recipient_dip_id: e.recipient_dip_id.clone(),
        queue_id: e.queue_id.clone(),
        state: copy_state(e).to_owned(),
        attempts: e.attempts,
        replay_id: e.replay_id.clone(),
    }
}

/// The whole life of transaction `transaction_id` as `actor` may see it; `NotFound` when
/// it does not exist or is not the viewer's to see.
pub async fn trace(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    transaction_id: &str,
) -> Result<Trace, AppError> {
    let scope = Scope::of(broker, actor)?;
    trace_in(broker, analytics, &scope, transaction_id)
        .await
        .map_err(|e| e.0)
}

/// The return-to-sender reports about `m`'s copies, each with the copy's (transaction id,
/// recipient). A report is a message on `IF-990` from the platform whose reference is
/// `RTS-<reason>-<transaction id>-<recipient>[-<digest>]` and which keeps the message's
/// correlation id: one search by that id finds every report of a workflow message; a
/// message without one is looked up by the two references that have no digest.
async fn return_reports(
    broker: &Broker,
    m: &MessageRecord,
    copies: &[QueueEntry],
) -> Result<Vec<((String, String), ReportLink)>, StoreError> {
    use broker_core::delivery::report::{REPORT_CHANNEL, Reason};
    const REASONS: [Reason; 3] = [Reason::RecipientRejected, Reason::RecipientReported, Reason::DeadLetter];
    let query = |f: &dyn Fn(&mut MessageQuery)| {
        let mut q = MessageQuery {
            interface_id: Some(REPORT_CHANNEL.to_owned()),
            sender_dip_id: Some(broker.config().platform_dip_id.clone()),
            limit: 200,
            ..MessageQuery::default()
        };
        f(&mut q);
        q
    };
    let mut found = Vec::new();
    match &m.correlation_id {
        Some(c) => {
            found = broker
                .messages()
                .search_messages(&query(&|q| q.correlation_id = Some(c.clone())))
                .await?
                .0
        }
        None => {
            for e in copies {
                for reason in [Reason::RecipientRejected, Reason::DeadLetter] {
                    let reference = format!("RTS-{}-{}-{}", reason.as_str(), e.transaction_id, e.recipient_dip_id);
                    let q = query(&|q| q.sender_reference = Some(reference.clone()));
                    found.extend(broker.messages().search_messages(&q).await?.0);
                }
            }
        }
    }
    let mut out = Vec::new();
    for r in found {
        for reason in REASONS {
            let Some(rest) = r
                .sender_unique_reference
                .strip_prefix(&format!("RTS-{}-", reason.as_str()))
            else {
                continue;
            };
            for e in copies {
                let about = format!("{}-{}", e.transaction_id, e.recipient_dip_id);
                if rest == about || rest.starts_with(&format!("{about}-")) {
                    let link = ReportLink {
                        transaction_id: r.transaction_id.clone(),
                        reason: reason.as_str().to_owned(),
                    };
                    out.push(((e.transaction_id.clone(), e.recipient_dip_id.clone()), link));
                }
            }
        }
    }
    Ok(out)
}

/// A message as one viewer may see it.
pub(crate) struct Seen {
    /// The message.
    pub message: MessageRecord,
    /// Its copies (and replay copies) the viewer may see.
    pub copies: Vec<QueueEntry>,
    /// Whether the viewer sees all of it (sender, its DCP, operator staff).
    pub whole: bool,
}

/// Transaction `transaction_id` as `scope` may see it; `None` when it does not exist or
/// is not the viewer's to see.
pub(crate) async fn seen(broker: &Broker, scope: &Scope, transaction_id: &str) -> Result<Option<Seen>, StoreError> {
    let Some(message) = broker.messages().message(transaction_id).await? else {
        return Ok(None);
    };
    let ids = [message.transaction_id.clone()];
    let copies: Vec<QueueEntry> = broker
        .queues()
        .copies_of(&ids)
        .await?
        .into_iter()
        .filter(|e| scope.sees_copy(&message, e))
        .collect();
    let whole = scope.sees_whole(&message);
    Ok((whole || !copies.is_empty()).then_some(Seen { message, copies, whole }))
}

/// The routing decision of `m` as the viewer may see it: all of it when it sees the whole
/// message, otherwise only its own lines (the others are other participants').
pub(crate) fn routing_seen(scope: &Scope, m: &MessageRecord, whole: bool) -> Result<Value, serde_json::Error> {
    let mut routing: Value = serde_json::from_str(&m.routing)?;
    if !whole {
        if let Some(list) = routing.get_mut("recipients").and_then(Value::as_array_mut) {
            list.retain(|r| {
                r.get("dipID")
                    .and_then(Value::as_str)
                    .is_some_and(|d| scope.includes(d))
            });
        }
        if let Some(obj) = routing.as_object_mut() {
            obj.remove("unresolved");
        }
    }
    Ok(routing)
}

async fn trace_in(
    broker: &Broker,
    analytics: &Analytics,
    scope: &Scope,
    transaction_id: &str,
) -> Result<Trace, TrailError> {
    let Some(Seen {
        message: m,
        copies,
        whole,
    }) = seen(broker, scope, transaction_id).await?
    else {
        return Err(TrailError(AppError::NotFound(format!("transaction {transaction_id}"))));
    };
    // Events of the message and of its replay copies (whose own ids are `R-` ones).
    let mut wanted: Vec<String> = copies.iter().map(|e| e.transaction_id.clone()).collect();
    wanted.push(m.transaction_id.clone());
    wanted.sort();
    wanted.dedup();
    let events = analytics.events_of(&wanted, m.received_at).await?;

    let receipt = steps(
        m.received_at,
        events
            .iter()
            .filter(|e| e.transaction_id == m.transaction_id && e.kind == EventKind::Received),
        &[],
    );
    let attempts = attempts_of(broker, &copies).await?;
    let behind = queued_behind(broker, &copies).await?;
    let mut traced: Vec<CopyTrace> = copies
        .iter()
        .zip(behind)
        .map(|(e, queued_behind)| {
            // A copy's events name its queue; a redriven dead letter and its new entry
            // share it, so each entry takes the events from its own queueing on.
            let start = e.enqueued_at;
            let next = copies
                .iter()
                .filter(|o| o.queue_id == e.queue_id && o.transaction_id == e.transaction_id && o.seq > e.seq)
                .map(|o| o.enqueued_at)
                .min();
            let own = events.iter().filter(|ev| {
                ev.transaction_id == e.transaction_id
                    && ev.queue_id == e.queue_id
                    && ev.kind != EventKind::Received
                    // A redrive is the dead entry's last step, not its successor's first.
                    && (ev.kind != EventKind::Redriven || e.state == "redriven")
                    && ev.at >= start
                    && next.is_none_or(|n| ev.at < n || (ev.kind == EventKind::Redriven && ev.at <= n))
            });
            CopyTrace {
                copy: copy_row(e),
                transaction_id: e.transaction_id.clone(),
                recipient_role: e.recipient_role.clone(),
                seq: e.seq,
                hidden: e.hidden.clone(),
                steps: steps(m.received_at, own, &attempts),
                reports: Vec::new(),
                queued_behind,
            }
        })
        .collect();
    if whole {
        for (copy, report) in return_reports(broker, &m, &copies).await? {
            if let Some(t) = traced
                .iter_mut()
                .find(|t| t.transaction_id == copy.0 && t.copy.recipient_dip_id == copy.1)
                && !t.reports.iter().any(|r| r.transaction_id == report.transaction_id)
            {
                t.reports.push(report);
            }
        }
    }
    let routing = routing_seen(scope, &m, whole).map_err(|e| TrailError(unavailable(e)))?;
    let (payload, payload_note) = payload_for(broker, &m, whole, &copies).await?;
    let signed_with = broker
        .messages()
        .receipt_signature(&m.transaction_id)
        .await?
        .map(|sig| SignedWith {
            subject: broker
                .registry()
                .certificate(&sig.fingerprint)
                .map(|c| c.subject.clone()),
            signed_at: sig.signed_at,
            fingerprint: sig.fingerprint,
        });
    let (routed, unresolved) = routing_lines(&routing);
    Ok(Trace {
        routed,
        unresolved,
        payload,
        payload_note,
        message: message_row(&m, Vec::new()),
        schema_version: m.schema_version.clone(),
        sender_role: m.sender_role.clone(),
        routing: serde_json::to_string_pretty(&routing).unwrap_or_default(),
        receipt,
        signed_with,
        copies: traced,
        whole,
    })
}

/// Every message of the workflow `correlation_id` that `actor` may see, oldest first, as
/// a sequence diagram with a lane per participant; copies not yet delivered are drawn as
/// waiting. `NotFound` when the viewer sees none of it.
pub async fn workflow(broker: &Broker, actor: &Actor, correlation_id: &str) -> Result<Workflow, AppError> {
    let scope = Scope::of(broker, actor)?;
    let query = MessageQuery {
        correlation_id: Some(correlation_id.to_owned()),
        visible_to: scope.ids().map(<[String]>::to_vec),
        ascending: true,
        limit: WORKFLOW_LIMIT,
        ..Default::default()
    };
    let (messages, total) = rows_of(broker, &scope, &query).await.map_err(|e| e.0)?;
    if messages.is_empty() {
        return Err(AppError::NotFound(format!("workflow {correlation_id}")));
    }
    let registry = broker.registry();
    let mut lanes: Vec<String> = Vec::new();
    let mut lane = |dip: &str| match lanes.iter().position(|l| l == dip) {
        Some(i) => i,
        None => {
            lanes.push(dip.to_owned());
            lanes.len() - 1
        }
    };
    let mut arrows = Vec::new();
    let mut waiting = 0;
    for m in &messages {
        let from = lane(&m.sender_dip_id);
        // One arrow per recipient: its business copy as it stands now (a redriven dead
        // letter's new entry stands for it; replay copies are not part of the workflow).
        let mut copies: Vec<&CopyRow> = m
            .copies
            .iter()
            .filter(|c| c.replay_id.is_none() && c.state != "redriven")
            .collect();
        copies.dedup_by(|a, b| a.recipient_dip_id == b.recipient_dip_id);
        for c in copies {
            let pending = matches!(c.state.as_str(), "queued" | "retrying");
            waiting += usize::from(pending);
            arrows.push(Arrow {
                from,
                to: lane(&c.recipient_dip_id),
                label: format!("{} {}", m.interface_id, m.event_code),
                waiting: pending,
            });
        }
    }
    let names: Vec<String> = lanes.iter().map(|d| named(&registry, d)).collect();
    let svg = charts::sequence(&format!("Sequence of workflow {correlation_id}"), &lanes, &arrows);
    Ok(Workflow {
        correlation_id: correlation_id.to_owned(),
        lanes: names,
        truncated: total > i64::try_from(messages.len()).unwrap_or(0),
        messages,
        waiting,
        svg,
    })
}

/// The MPAN report: the appointment history of `mpan` beside a page of the messages about
/// it (the search's time range, sort and page apply). Operator staff see every message; a
/// participant's viewer sees the history only if it was ever appointed to the MPAN, and of
/// the messages only its own received while it was appointed (any role); otherwise 404.
pub async fn mpan_report(broker: &Broker, actor: &Actor, mpan: &str, list: &ListQuery) -> Result<MpanReport, AppError> {
    let scope = Scope::of(broker, actor)?;
    if !mpan_shaped(mpan) {
        return Err(AppError::NotFound(format!("MPAN {mpan}")));
    }
    let rows = broker
        .directory()
        .appointments(&[mpan.to_owned()])
        .await
        .map_err(unavailable)?;
    let registry = broker.registry();
    let appointments: Vec<AppointmentRow> = broker_core::routing::appointment_periods(&rows)
        .map(|(a, to)| AppointmentRow {
            role: a.role.clone(),
            participant: a.dip_id.as_deref().map(|d| named(&registry, d)),
            effective_from: a.effective_from.clone(),
            effective_to: to.map(str::to_owned),
            source_transaction_id: a.source_transaction_id.clone(),
        })
        .collect();
    // The spans in which the viewer held an appointment, as receipt times.
    let spans = match scope.ids() {
        None => None,
        Some(ids) => {
            let day = |d: &str| {
                chrono::NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().timestamp_micros())
            };
            let spans: Vec<(i64, i64)> = rows
                .iter()
                .zip(&appointments)
                .filter(|(a, _)| a.dip_id.as_ref().is_some_and(|d| ids.contains(d)))
                .filter_map(|(a, row)| {
                    let to = row.effective_to.as_deref().map_or(Some(i64::MAX), day)?;
                    Some((day(&a.effective_from)?, to))
                })
                .collect();
            if spans.is_empty() {
                return Err(AppError::NotFound(format!("MPAN {mpan}")));
            }
            Some(spans)
        }
    };
    let periods = spans.as_ref().map(|s| {
        let date = |t: i64| {
            chrono::DateTime::from_timestamp_micros(t).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
        };
        s.iter()
            .map(|(f, t)| {
                if *t == i64::MAX {
                    format!("from {}", date(*f))
                } else {
                    format!("{} to {}", date(*f), date(*t))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let mut query = query_of(list, &scope, i64::try_from(PAGE_SIZE).unwrap_or(20))?;
    query.mpan = Some(mpan.to_owned());
    query.received_within = spans;
    let (rows, total) = rows_of(broker, &scope, &query).await.map_err(|e| e.0)?;
    Ok(MpanReport {
        mpan: mpan.to_owned(),
        appointments,
        messages: page_of(rows, total, list),
        periods,
    })
}

/// The routing decision (as stored, already cut to what the viewer may see) line by line,
/// and the rules that reached nobody.
fn routing_lines(decision: &Value) -> (Vec<RoutingLine>, Vec<String>) {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let list = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let routed = list(decision, "recipients")
        .iter()
        .map(|r| RoutingLine {
            recipient: text(r, "dipID"),
            role: text(r, "role"),
            queue: text(r, "queue"),
            reasons: list(r, "matchedBy")
                .iter()
                .map(|m| {
                    let (rule, role) = (text(m, "rule"), text(m, "role"));
                    let rule = match rule.as_str() {
                        "targeted" => "named by the sender".to_owned(),
                        "mpan" => "MPAN".to_owned(),
                        "always-role" => "always, every holder of the role".to_owned(),
                        "always-participant" => "always, by name".to_owned(),
                        _ => rule,
                    };
                    match m.get("appointment") {
                        Some(a) => format!(
                            "{rule}: appointed {role} to {} from {} {}",
                            text(a, "mpan"),
                            text(a, "effectiveFrom"),
                            a.get("effectiveTo")
                                .and_then(Value::as_str)
                                .map_or_else(|| "(open)".to_owned(), |to| format!("until {to}"))
                        ),
                        None => format!("{rule} as {role}"),
                    }
                })
                .collect(),
            hidden: list(r, "hidden")
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect(),
        })
        .collect();
    let unresolved = list(decision, "unresolved")
        .iter()
        .map(|u| {
            let whom = [text(u, "role"), text(u, "dipID")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            format!("{} {whom}: {}", text(u, "rule"), text(u, "reason"))
        })
        .collect();
    (routed, unresolved)
}

/// What a viewer is shown as a message's payload: the sender and operator staff the
/// message as it was sent; a recipient its own copy as delivered, with what its role may
/// not see masked here, on the server. The archive is opened only after that check.
/// A transaction's archived envelope as this node can read it.
pub(crate) enum Archived {
    /// No longer archived: its retention has ended.
    Gone,
    /// Sealed with a data key this node does not hold.
    Unopened {
        /// Whether it is sealed at rest.
        sealed: bool,
    },
    /// The envelope as archived (opened when sealed at rest).
    Opened {
        /// The envelope.
        plain: String,
        /// Whether it is sealed at rest.
        sealed: bool,
    },
}

/// Reads and opens the archived envelope of `transaction_id`.
pub(crate) async fn archived(broker: &Broker, transaction_id: &str) -> Result<Archived, StoreError> {
    let Some(stored) = broker.messages().archived_envelope(transaction_id).await? else {
        return Ok(Archived::Gone);
    };
    let sealed = broker_core::security::vault::is_sealed(&stored);
    Ok(match broker.open_envelope(transaction_id, &stored) {
        Ok(plain) => Archived::Opened { plain, sealed },
        Err(e) => {
            tracing::warn!(transaction = %transaction_id, error = %e, "cannot open an archived payload");
            Archived::Unopened { sealed }
        }
    })
}

/// The recorded webhook calls of `copies`, oldest first per copy.
pub(crate) async fn attempts_of(broker: &Broker, copies: &[QueueEntry]) -> Result<Vec<Attempt>, StoreError> {
    let keys: Vec<(String, i64)> = copies.iter().map(|c| (c.queue_id.clone(), c.seq)).collect();
    broker.queues().attempts_of(&keys).await
}

/// For each copy, what it joined its queue behind (`None` when the queue was clear).
async fn queued_behind(broker: &Broker, copies: &[QueueEntry]) -> Result<Vec<Option<QueuedBehind>>, StoreError> {
    let queues = broker.queues();
    let ahead = futures::future::try_join_all(
        copies
            .iter()
            .map(|c| queues.ahead_of(&c.queue_id, c.seq, c.enqueued_at)),
    )
    .await?;
    Ok(copies
        .iter()
        .zip(ahead)
        .map(|(c, a)| {
            (a.entries > 0).then(|| QueuedBehind {
                messages: if a.entries >= AHEAD_LIMIT {
                    format!("{AHEAD_LIMIT}+")
                } else {
                    a.entries.to_string()
                },
                retried: a.retried,
                retry_outcome: a.retry_outcome,
                waited_ms: a.cleared_at.map(|t| (t - c.enqueued_at).max(0) as f64 / 1000.0),
            })
        })
        .collect())
}

async fn payload_for(
    broker: &Broker,
    m: &MessageRecord,
    whole: bool,
    copies: &[QueueEntry],
) -> Result<(Option<String>, String), TrailError> {
    let plain = match archived(broker, &m.transaction_id).await? {
        Archived::Gone => {
            return Ok((
                None,
                "The payload is no longer archived (its retention has ended).".into(),
            ));
        }
        Archived::Unopened { .. } => {
            return Ok((None, "The archived payload cannot be opened on this node.".into()));
        }
        Archived::Opened { plain, .. } => plain,
    };
    let mut payload: Value = serde_json::from_str(&plain).map_err(|e| TrailError(unavailable(e)))?;
    let note = if whole {
        "As the sender sent it, with the platform's D0 wrapper.".to_owned()
    } else {
        let hidden: Vec<&String> = copies.iter().flat_map(|c| &c.hidden).collect();
        for pointer in &hidden {
            broker_core::obfuscate::mask(&mut payload, pointer, MASKED);
        }
        if hidden.is_empty() {
            "Your copy as it was delivered to you.".to_owned()
        } else {
            format!("Your copy as it was delivered to you; fields your role may not see show {MASKED}.")
        }
    };
    Ok((Some(serde_json::to_string_pretty(&payload).unwrap_or_default()), note))
}

/// What stands in for a field the viewer may not see.
pub const MASKED: &str = "«hidden from your role»";

/// Events as steps, each with the time since the one before (the first: since `from`),
/// and for a webhook call that did not succeed the start of the answer (from `attempts`).
fn steps<'a>(from: i64, events: impl Iterator<Item = &'a Event>, attempts: &[Attempt]) -> Vec<Step> {
    let mut last = from;
    events
        .map(|e| {
            let answer = attempts
                .iter()
                .find(|a| a.at == e.at && a.queue_id == e.queue_id && a.outcome == e.outcome)
                .map(|a| a.call.answer.clone())
                .filter(|a| !a.is_empty());
            let step = Step {
                at: rfc3339(e.at),
                kind: e.kind.as_str().to_owned(),
                outcome: e.outcome.clone(),
                duration_ms: (e.duration_us > 0).then(|| e.duration_us as f64 / 1000.0),
                after_ms: (e.at - last).max(0) as f64 / 1000.0,
                answer,
            };
            last = e.at;
            step
        })
        .collect()
}

/// Search results as CSV: one line per message and visible copy.
pub fn csv(rows: &[MessageRow]) -> String {
    let mut out = String::from(
        "transaction_id,received_at,sender,sender_reference,dcp,channel,event_code,mpan,correlation_id,\
         recipient,queue,state,attempts,replay_id\n",
    );
    for m in rows {
        let message = [
            m.transaction_id.as_str(),
            &m.received_at,
            &m.sender_dip_id,
            &m.sender_reference,
            m.dcp_dip_id.as_deref().unwrap_or(""),
            &m.interface_id,
            &m.event_code,
            m.mpan.as_deref().unwrap_or(""),
            m.correlation_id.as_deref().unwrap_or(""),
        ];
        let empty = CopyRow {
            recipient_dip_id: String::new(),
            queue_id: String::new(),
            state: String::new(),
            attempts: 0,
            replay_id: None,
        };
        let copies: Vec<&CopyRow> = if m.copies.is_empty() {
            vec![&empty]
        } else {
            m.copies.iter().collect()
        };
        for c in copies {
            let attempts = c.attempts.to_string();
            let copy = [
                c.recipient_dip_id.as_str(),
                &c.queue_id,
                &c.state,
                &attempts,
                c.replay_id.as_deref().unwrap_or(""),
            ];
            let line: Vec<String> = message
                .iter()
                .chain(copy.iter())
                .map(|v| crate::csv::field(v))
                .collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}
