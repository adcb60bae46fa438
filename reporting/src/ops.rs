//! The operations pages' server side: queue health, dead letters with their redrive, and
//! replays (preview, run, history, progress), for a portal user. The work is done by
//! `broker_core::delivery::operations` and `broker_core::replay`, which the participant
//! API uses too, so both apply the same rules; here a user's roles decide what they may
//! see (`trail::Scope`: operator staff all, a participant's readers their own queues and
//! those they act for) and do (`Actor::handles_messages`).

use std::collections::BTreeMap;

use broker_core::Broker;
use broker_core::delivery::operations::{self, DeadLetterQuery, EntryRef, QueueStatus, RedriveError, RedriveRequest};
use broker_core::model::Principal;
use broker_core::replay::{self, ReplayEntry, ReplayError, ReplayRequest};
use broker_core::store::{DeadLetter, ReplayProgress, StoreError};
use chrono::{DateTime, Utc};
use dip_admin::types::{Actor, AppError, ListQuery, PAGE_SIZE, Page};

use crate::ops_views::{
    DeadLetterLine, DeadLetters, Progress, QueueRow, RedrivePreview, ReplayChoices, ReplayLine, ReplayPreview,
};
use crate::trail::{Scope, named};

fn unavailable(e: StoreError) -> AppError {
    tracing::error!(error = %e, "operations");
    AppError::Unavailable
}

/// One page of `rows` as `list` asks.
fn page<T>(mut rows: Vec<T>, list: &ListQuery) -> Page<T> {
    let total = rows.len();
    let page = list.page.max(1);
    let rows = rows.drain(..).skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
    Page { rows, total, page }
}

fn invalid(field: &str, message: impl Into<String>, list: &BTreeMap<String, String>) -> AppError {
    let message = message.into();
    AppError::Invalid {
        message: message.clone(),
        fields: BTreeMap::from([(field.to_owned(), message)]),
        values: list.clone(),
    }
}

/// The queues `actor` may see, filtered (`participant`, `state`: healthy, retrying,
/// failing or backlog), sorted (`queue`, `pending`, `age`, `dead`; by default the
/// worst first) and paged.
pub async fn queues(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<Page<QueueRow>, AppError> {
    let scope = Scope::of(broker, actor)?;
    let all = operations::queues(broker, scope.visible()).await.map_err(unavailable)?;
    let registry = broker.registry();
    let mut rows: Vec<QueueRow> = all.into_iter().map(|q| queue_row(&registry, q)).collect();
    let needle = list.q.to_lowercase();
    rows.retain(|r| {
        (needle.is_empty()
            || r.queue.to_lowercase().contains(&needle)
            || r.participant.to_lowercase().contains(&needle))
            && list.filters.get("participant").is_none_or(|p| &r.dip_id == p)
            && list.filters.get("state").is_none_or(|s| match s.as_str() {
                "backlog" => r.backed_up(),
                s => r.state == s,
            })
    });
    let age = |r: &QueueRow| r.oldest_age_seconds.unwrap_or(0.0);
    match list.sort.as_str() {
        "queue" => rows.sort_by(|a, b| a.queue.cmp(&b.queue)),
        "pending" => rows.sort_by_key(|r| r.pending),
        "age" => rows.sort_by(|a, b| age(a).total_cmp(&age(b))),
        "dead" => rows.sort_by_key(|r| r.dead_letters),
        // Worst first: failing, then retrying, then by backlog and age.
        _ => rows.sort_by(|a, b| {
            let rank = |r: &QueueRow| match r.state.as_str() {
                "failing" => 0,
                "retrying" => 1,
                _ => 2,
            };
            rank(a)
                .cmp(&rank(b))
                .then(age(b).total_cmp(&age(a)))
                .then(b.pending.cmp(&a.pending))
                .then(a.queue.cmp(&b.queue))
        }),
    }
    if list.desc && !list.sort.is_empty() {
        rows.reverse();
    }
    Ok(page(rows, list))
}

fn queue_row(registry: &broker_core::registry::Registry, q: QueueStatus) -> QueueRow {
    QueueRow {
        participant: named(registry, &q.dip_id),
        channels: if q.channels.is_empty() {
            "all others".into()
        } else {
            q.channels.join(", ")
        },
        last_attempt: q.last_attempt_at.map(|at| (at, q.last_outcome.unwrap_or_default())),
        queue: q.queue,
        dip_id: q.dip_id,
        mode: q.mode,
        state: q.state,
        pending: q.pending,
        replay_held: q.replay_held,
        dead_letters: q.dead_letters,
        oldest_age_seconds: q.oldest_age_seconds,
        next_attempt_at: q.next_attempt_at,
        leased_by: q.leased_by,
    }
}

/// The time typed into field `name` of `values`, if any; a field error when it is not one.
fn form_time(values: &BTreeMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    match values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => crate::time::utc_micros(v, true)
            .and_then(DateTime::from_timestamp_micros)
            .map(Some)
            .ok_or_else(|| invalid(name, "give a date and time, e.g. 2026-12-01T09:00", values)),
    }
}

/// The dead-letter query of the page's filters (`recipient`, `queue`, `channel`,
/// `sender`, `from`, `to`); a bad time is a field error.
fn dead_letter_query(list: &ListQuery) -> Result<DeadLetterQuery, AppError> {
    let f = |name: &str| list.filters.get(name).cloned();
    let time = |name: &str| form_time(&list.filters, name);
    Ok(DeadLetterQuery {
        recipient_dip_id: f("recipient"),
        queue: f("queue"),
        interface_id: f("channel"),
        sender_dip_id: f("sender"),
        from: time("from")?,
        to: time("to")?,
        limit: Some(operations::MAX_REDRIVE),
    })
}

fn dead_letter_line(d: &DeadLetter) -> DeadLetterLine {
    DeadLetterLine {
        queue: d.entry.queue_id.clone(),
        position: d.entry.seq,
        transaction_id: d.entry.transaction_id.clone(),
        interface_id: d.interface_id.clone(),
        sender_dip_id: d.sender_dip_id.clone(),
        sender_reference: d.sender_unique_reference.clone(),
        recipient_dip_id: d.entry.recipient_dip_id.clone(),
        dead_lettered_at: d.entry.settled_at.map(broker_core::clock::rfc3339),
        attempts: d.entry.attempts,
        last_outcome: d.entry.last_outcome.clone(),
        replay_copy: d.entry.replay_id.is_some(),
    }
}

/// The redrive a page's `redrive` parameter names: `all` (the filters' matches) or one
/// dead letter as `queue:position`.
fn redrive_request(list: &ListQuery, query: DeadLetterQuery, dry_run: bool) -> Result<RedriveRequest, AppError> {
    let target = list.filters.get("redrive").map(String::as_str).unwrap_or_default();
    if target == "all" {
        return Ok(RedriveRequest {
            entries: vec![],
            filter: Some(query),
            dry_run,
        });
    }
    let entry = target
        .rsplit_once(':')
        .and_then(|(queue, position)| {
            Some(EntryRef {
                queue: queue.to_owned(),
                position: position.parse().ok()?,
            })
        })
        .ok_or_else(|| {
            invalid(
                "redrive",
                "name the dead letter as queue:position, or all",
                &list.filters,
            )
        })?;
    Ok(RedriveRequest {
        entries: vec![entry],
        filter: None,
        dry_run,
    })
}

fn redrive_failure(e: RedriveError) -> AppError {
    match e {
        RedriveError::Empty => AppError::field("redrive", "choose the dead letters to redrive"),
        RedriveError::NotFound => AppError::NotFound("dead letter".into()),
        RedriveError::Store(e) => unavailable(e),
    }
}

/// The dead letters `actor` may see, matching the page's filters, newest first, paged;
/// with a `redrive` parameter, also what that redrive would do (a dry run).
pub async fn dead_letters(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<DeadLetters, AppError> {
    let scope = Scope::of(broker, actor)?;
    let query = dead_letter_query(list)?;
    let rows = operations::dead_letters(broker, scope.visible(), &query, operations::MAX_REDRIVE)
        .await
        .map_err(unavailable)?;
    let needle = list.q.to_lowercase();
    let mut lines: Vec<DeadLetterLine> = rows
        .iter()
        .map(dead_letter_line)
        .filter(|l| {
            needle.is_empty()
                || l.transaction_id.to_lowercase().contains(&needle)
                || l.sender_reference
                    .as_deref()
                    .is_some_and(|r| r.to_lowercase().contains(&needle))
        })
        .collect();
    lines.sort_by(|a, b| b.dead_lettered_at.cmp(&a.dead_lettered_at).then(a.queue.cmp(&b.queue)));
    let may_redrive = actor.handles_messages();
    let confirm = match list.filters.get("redrive") {
        Some(target) if may_redrive && !list.filters.contains_key("done") => {
            let request = redrive_request(list, query, true)?;
            let outcome = operations::redrive(broker, scope.visible(), &request, &actor.name, actor.dip_id.as_deref())
                .await
                .map_err(redrive_failure)?;
            let description = match target.as_str() {
                "all" => "every dead letter these filters match".to_owned(),
                one => format!("dead letter {one}"),
            };
            Some(RedrivePreview {
                target: target.clone(),
                count: outcome.count,
                description,
            })
        }
        _ => None,
    };
    Ok(DeadLetters {
        page: page(lines, list),
        may_redrive,
        confirm,
    })
}

/// Queues the dead letters the page's `redrive` parameter names again, at the tail of
/// their queues; how many. Only for users who handle messages; audited.
pub async fn redrive(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<usize, AppError> {
    if !actor.handles_messages() {
        return Err(AppError::Forbidden);
    }
    let scope = Scope::of(broker, actor)?;
    let request = redrive_request(list, dead_letter_query(list)?, false)?;
    let outcome = operations::redrive(broker, scope.visible(), &request, &actor.name, actor.dip_id.as_deref())
        .await
        .map_err(redrive_failure)?;
    Ok(outcome.count)
}

/// Who `actor` is to the replay rules: the operator, or its participant.
fn principal(actor: &Actor) -> Principal {
    match &actor.dip_id {
        None => Principal::Operator {
            name: actor.name.clone(),
        },
        Some(dip_id) => Principal::Participant { dip_id: dip_id.clone() },
    }
}

/// The replay form's choices for `actor`.
pub fn replay_choices(broker: &Broker, actor: &Actor) -> Result<ReplayChoices, AppError> {
    let scope = Scope::of(broker, actor)?;
    let registry = broker.registry();
    let recipients = match scope.visible() {
        None => vec![],
        Some(ids) => ids.iter().map(|d| (d.clone(), named(&registry, d))).collect(),
    };
    let mut channels: Vec<(String, String)> = registry
        .catalogue
        .channels
        .values()
        .map(|c| (c.channel.id.clone(), format!("{} {}", c.channel.id, c.channel.name)))
        .collect();
    channels.sort();
    Ok(ReplayChoices {
        may_replay: actor.handles_messages(),
        recipients,
        channels,
    })
}

/// The replay request of the form's fields (`channel`, `recipient`, `start`, `end`,
/// `from`, `to`).
fn replay_request(actor: &Actor, form: &BTreeMap<String, String>, dry_run: bool) -> Result<ReplayRequest, AppError> {
    let f = |name: &str| form.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let time = |name: &str| form_time(form, name);
    let Some(interface_id) = f("channel") else {
        return Err(invalid("channel", "choose the channel to replay", form));
    };
    Ok(ReplayRequest {
        interface_id,
        start_transaction_id: f("start"),
        from_time: time("from")?,
        end_transaction_id: f("end"),
        to_time: time("to")?,
        recipient_dip_id: f("recipient").or_else(|| actor.dip_id.clone()),
        dry_run,
    })
}

/// A replay refusal as a form error on the field it concerns.
fn replay_failure(e: ReplayError, form: &BTreeMap<String, String>) -> AppError {
    let (path, message) = match e {
        ReplayError::Forbidden(_) => return AppError::Forbidden,
        ReplayError::Invalid(e) => (e.path.clone(), e.message.clone()),
        ReplayError::QuotaExceeded { error, .. } => (String::new(), error.message),
        ReplayError::Store(e) => return unavailable(e),
    };
    let field = match path.as_str() {
        "/interfaceID" => "channel",
        "/recipientDIPID" => "recipient",
        "/startTransactionID" => "start",
        "/endTransactionID" => "end",
        _ => "from",
    };
    invalid(field, message, form)
}

/// What the replay the form describes would do: nothing is recorded or queued.
pub async fn replay_preview(
    broker: &Broker,
    actor: &Actor,
    form: &BTreeMap<String, String>,
) -> Result<ReplayPreview, AppError> {
    if !actor.handles_messages() {
        return Err(AppError::Forbidden);
    }
    let request = replay_request(actor, form, true)?;
    let outcome = replay::preview(broker, &principal(actor), &request)
        .await
        .map_err(|e| replay_failure(e, form))?;
    let registry = broker.registry();
    Ok(ReplayPreview {
        messages: outcome.messages,
        recipient: named(&registry, &outcome.recipient_dip_id),
        queue: outcome.queue,
        from: outcome.from,
        to: outcome.to,
        first: outcome.first.map(|m| (m.transaction_id, m.received_at)),
        last: outcome.last.map(|m| (m.transaction_id, m.received_at)),
        quota: (outcome.quota.remaining, outcome.quota.limit),
    })
}

/// Runs the replay the form describes; its id.
pub async fn replay_run(broker: &Broker, actor: &Actor, form: &BTreeMap<String, String>) -> Result<String, AppError> {
    if !actor.handles_messages() {
        return Err(AppError::Forbidden);
    }
    let request = replay_request(actor, form, false)?;
    let by = match &actor.dip_id {
        None => format!("user:{} (operator)", actor.name),
        Some(d) => format!("user:{} ({d})", actor.name),
    };
    let outcome = replay::replay(broker, &principal(actor), &by, &request)
        .await
        .map_err(|e| replay_failure(e, form))?;
    Ok(outcome.replay_id)
}

fn progress(p: ReplayProgress) -> Progress {
    Progress {
        held: p.held,
        queued: p.queued,
        delivered: p.delivered,
        returned: p.returned,
        dead_lettered: p.dead_lettered,
    }
}

fn replay_line(broker: &Broker, r: ReplayEntry) -> ReplayLine {
    let registry = broker.registry();
    let req = &r.request;
    let part = |key: &str| req.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let range = [
        part("startTransactionID").map(|v| format!("from message {v}")),
        part("fromTime").map(|v| format!("from {v}")),
        part("endTransactionID").map(|v| format!("to message {v}")),
        part("toTime").map(|v| format!("to {v}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    ReplayLine {
        queue: registry.queue_for(&r.recipient_dip_id, &r.interface_id),
        recipient: named(&registry, &r.recipient_dip_id),
        id: r.replay_id,
        requested_by: r.requested_by,
        requested_at: r.requested_at,
        interface_id: r.interface_id,
        messages: r.messages,
        dry_run: r.dry_run,
        range: if range.is_empty() { "up to now".into() } else { range },
        progress: r.progress.map(progress),
    }
}

/// The replays of the recipients `actor` may see, newest first, paged.
pub async fn replay_history(broker: &Broker, actor: &Actor, list: &ListQuery) -> Result<Page<ReplayLine>, AppError> {
    let scope = Scope::of(broker, actor)?;
    let page_no = list.page.max(1);
    let (rows, total) = replay::history(broker, scope.visible(), (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
        .map_err(unavailable)?;
    Ok(Page {
        rows: rows.into_iter().map(|r| replay_line(broker, r)).collect(),
        total,
        page: page_no,
    })
}

/// One replay with its progress; "not found" outside what `actor` may see.
pub async fn replay_status(broker: &Broker, actor: &Actor, id: &str) -> Result<ReplayLine, AppError> {
    let scope = Scope::of(broker, actor)?;
    replay::find(broker, scope.visible(), id)
        .await
        .map_err(unavailable)?
        .map(|r| replay_line(broker, r))
        .ok_or_else(|| AppError::NotFound("replay".into()))
}
