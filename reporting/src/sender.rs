//! The sender report (spec 5.11.3, Figure 16): for one sender and a period, per channel,
//! how many messages the platform accepted, how many items it refused and why (the most
//! frequent error codes), where the accepted messages' recipient copies stand now
//! (queued, retrying, delivered, returned, dead-lettered) and how long delivery took. One
//! function for the portal's page and the audit REST API, so they cannot disagree.
//!
//! Where each figure comes from:
//! - accepted messages and the state of their copies: the store
//!   ([`MessageStore::sender_outcomes`](broker_core::store::MessageStore::sender_outcomes)),
//!   for the messages received in the period, counted exactly as the message search
//!   filters them, so each figure's drill-down lists the messages behind it;
//! - refusals and their error codes: the `rejected` lifecycle events ingest records
//!   (they are not stored as messages), from the analytics sink;
//! - latency: the throughput report's end-to-end figures (receipt to the recipient's
//!   acknowledgement, replays left out) for the copies delivered in the period.
//!
//! Who sees what (spec 5.11): operator staff, any sender; a participant's message users,
//! auditors and analysts (and its API keys; a DCP for the participants that nominated it)
//! their participant (or those it acts for) as sender, which is also the default; any
//! other sender is "not found", whether it exists or not.

use std::collections::BTreeMap;

use broker_core::Broker;
use broker_core::clock::now_micros;
use broker_core::registry::Registry;
use broker_core::store::{CopyState, SenderQuery};
use dip_admin::types::{Actor, AppError, ListQuery};

use crate::analytics::Analytics;
use crate::dashboard::{app_error, cells};
use crate::report::{GroupBy, MAX_INTERVAL_SECS, Measure, Report, ReportQuery};
use crate::sender_views::{ChannelOutcomes, ErrorCount, Outcome, SENDER_SORTS, SenderChoices, SenderReport};
use crate::trail::{Scope, named, parse_time};

/// Longest period one report covers, days.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// The period when none is given: the last 24 hours, to the end of the current minute.
const DEFAULT_PERIOD_US: i64 = 24 * 3_600 * 1_000_000;

const MINUTE_US: i64 = 60_000_000;

/// What the line of refusals that named no channel of the platform is called.
pub const NO_CHANNEL: &str = "No channel (the item or request named none of the platform's)";

/// What the report's form offers `actor`: the senders it may report on, the business
/// processes and the channels.
pub fn choices(broker: &Broker, actor: &Actor) -> Result<SenderChoices, AppError> {
    let scope = Scope::of(broker, actor)?;
    let registry = broker.registry();
    let ids: Vec<String> = match &scope {
        Scope::All => {
            let mut ids: Vec<String> = registry.participants().into_iter().map(|p| p.dip_id.clone()).collect();
            ids.sort();
            ids
        }
        Scope::Of(ids) => ids.clone(),
    };
    let mut channels: Vec<(String, String)> = registry
        .catalogue
        .channels
        .values()
        .map(|c| (c.channel.id.clone(), c.channel.name.clone()))
        .collect();
    channels.sort();
    let mut processes: Vec<String> = registry
        .catalogue
        .channels
        .values()
        .map(|c| c.channel.business_process.clone())
        .filter(|p| !p.is_empty())
        .collect();
    processes.sort();
    processes.dedup();
    Ok(SenderChoices {
        senders: ids.iter().map(|d| (d.clone(), named(&registry, d))).collect(),
        default_sender: actor.dip_id.clone(),
        processes,
        channels,
    })
}

/// The sender report the URL's parameters ask for ([`SENDER_FILTERS`](crate::sender_views::SENDER_FILTERS),
/// `sort`, `dir`), as `actor` may see it: `400` naming the field for bad input (an unknown
/// sender for operator staff), `404` for a sender that is not the viewer's to see.
pub async fn report(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    list: &ListQuery,
) -> Result<SenderReport, AppError> {
    report_at(broker, analytics, actor, list, now_micros()).await
}

async fn report_at(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    list: &ListQuery,
    now: i64,
) -> Result<SenderReport, AppError> {
    let scope = Scope::of(broker, actor)?;
    let text = |name: &str| {
        list.filters
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    // The period.
    let time = |name: &str| text(name).map(|v| parse_time(name, &v)).transpose();
    let (from, to) = (time("from")?, time("to")?);
    let to = to.unwrap_or((now / MINUTE_US + 1) * MINUTE_US);
    let from = from.unwrap_or(to - DEFAULT_PERIOD_US);
    if from < 0 {
        return Err(AppError::field("from", "Give a time after 1970."));
    }
    if to <= from {
        return Err(AppError::field("to", "The end must be after the start."));
    }
    if to - from > MAX_PERIOD_DAYS * 24 * 3_600 * 1_000_000 {
        return Err(AppError::field(
            "from",
            format!("A report covers at most {MAX_PERIOD_DAYS} days."),
        ));
    }
    let sort = list.sort.as_str();
    if !sort.is_empty() && !SENDER_SORTS.iter().any(|(s, _)| *s == sort) {
        return Err(AppError::field(
            "sort",
            "Sort by channel, accepted, rejected, delivered, returned, dead_lettered or latency.",
        ));
    }
    // The channels: one, those of a business process, or all.
    let registry = broker.registry();
    let (process, channel) = (text("process"), text("channel"));
    let mut channels: Vec<String> = match &process {
        None => vec![],
        Some(p) => registry
            .catalogue
            .channels
            .values()
            .filter(|c| &c.channel.business_process == p)
            .map(|c| c.channel.id.clone())
            .collect(),
    };
    if process.is_some() && channels.is_empty() {
        return Err(AppError::field("process", "Choose a business process from the list."));
    }
    if let Some(c) = &channel {
        if registry.channel(c).is_none() {
            return Err(AppError::field("channel", format!("There is no channel {c}.")));
        }
        if process.is_some() && !channels.contains(c) {
            return Err(AppError::field(
                "channel",
                format!("{c} is not a channel of that business process."),
            ));
        }
        channels = vec![c.clone()];
    }
    channels.sort();
    // The sender: the viewer's to see first (so that whether another exists does not
    // leak), then one the platform knows.
    let Some(sender) = text("sender").or_else(|| actor.dip_id.clone()) else {
        return Err(AppError::field("sender", "Choose a sender: its DIP ID."));
    };
    if !scope.includes(&sender) {
        return Err(AppError::NotFound(format!("sender {sender}")));
    }
    if registry.participant(&sender).is_none() {
        return Err(AppError::field(
            "sender",
            format!("No participant has the DIP ID {sender}."),
        ));
    }

    let stored_query = SenderQuery {
        sender_dip_id: sender.clone(),
        interface_ids: channels.clone(),
        received_from: from,
        received_to: to,
    };
    let by_channel = ReportQuery {
        from,
        to,
        interval_secs: MAX_INTERVAL_SECS,
        channels,
        senders: vec![sender.clone()],
        recipients: vec![],
        group_by: GroupBy::Channel,
        participant: None,
    };
    let whole = ReportQuery {
        group_by: GroupBy::None,
        ..by_channel.clone()
    };
    let (stored, rejections, per_channel, all) = futures::try_join!(
        async {
            broker
                .messages()
                .sender_outcomes(&stored_query)
                .await
                .map_err(|e| app_error(e.into()))
        },
        async { analytics.rejections(&by_channel).await.map_err(app_error) },
        async { analytics.totals(&by_channel).await.map_err(app_error) },
        async { analytics.totals(&whole).await.map_err(app_error) },
    )?;

    let mut lines: BTreeMap<String, ChannelOutcomes> = BTreeMap::new();
    for o in &stored {
        let l = line_of(&mut lines, &registry, &o.interface_id);
        let counted = Outcome {
            copies: o.copies,
            messages: o.messages,
        };
        match o.state {
            CopyState::Accepted => l.accepted = o.messages,
            CopyState::Queued => l.queued = counted,
            CopyState::Retrying => l.retrying = counted,
            CopyState::Delivered => l.delivered = counted,
            CopyState::Returned => l.returned = counted,
            CopyState::DeadLettered => l.dead_lettered = counted,
            CopyState::Replayed => {}
        }
    }
    for (channel, code, count) in rejections {
        let l = line_of(&mut lines, &registry, &channel);
        l.rejected += count;
        l.errors.push(ErrorCount { code, count });
    }
    for group in &per_channel.groups {
        if let Some(latency) = end_to_end(&per_channel, group) {
            line_of(&mut lines, &registry, group).latency = Some(latency);
        }
    }
    let mut channels: Vec<ChannelOutcomes> = lines.into_values().collect();
    let mut total = empty_line("", "All channels".to_owned());
    let mut errors: BTreeMap<String, i64> = BTreeMap::new();
    for l in &mut channels {
        l.errors
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        total.accepted += l.accepted;
        total.rejected += l.rejected;
        for (sum, part) in [
            (&mut total.queued, l.queued),
            (&mut total.retrying, l.retrying),
            (&mut total.delivered, l.delivered),
            (&mut total.returned, l.returned),
            (&mut total.dead_lettered, l.dead_lettered),
        ] {
            sum.copies += part.copies;
            sum.messages += part.messages;
        }
        for e in &l.errors {
            *errors.entry(e.code.clone()).or_default() += e.count;
        }
    }
    total.errors = errors
        .into_iter()
        .map(|(code, count)| ErrorCount { code, count })
        .collect();
    total
        .errors
        .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    total.latency = end_to_end(&all, "");
    sort_lines(&mut channels, sort, list.desc);

    Ok(SenderReport {
        sender_name: named(&registry, &sender),
        sender,
        from: form_time(from),
        to: form_time(to),
        period: format!("{} – {} UTC", minute(from), minute(to)),
        process,
        channel,
        channels,
        total,
    })
}

/// The line of channel `id` (empty: refusals that named none), added when new.
fn line_of<'a>(
    lines: &'a mut BTreeMap<String, ChannelOutcomes>,
    registry: &Registry,
    id: &str,
) -> &'a mut ChannelOutcomes {
    lines.entry(id.to_owned()).or_insert_with(|| {
        let name = match registry.channel(id) {
            Some(c) => c.channel.name.clone(),
            None if id.is_empty() => NO_CHANNEL.to_owned(),
            None => id.to_owned(),
        };
        empty_line(id, name)
    })
}

fn empty_line(id: &str, name: String) -> ChannelOutcomes {
    ChannelOutcomes {
        interface_id: id.to_owned(),
        name,
        ..ChannelOutcomes::default()
    }
}

fn end_to_end(r: &Report, group: &str) -> Option<crate::report_views::LatencyCells> {
    r.latency_total(group, Measure::EndToEnd).map(cells)
}

/// Sorts the lines as asked (channel A to Z by default); refusals that named no channel
/// stay last.
fn sort_lines(lines: &mut [ChannelOutcomes], sort: &str, desc: bool) {
    let key = |l: &ChannelOutcomes| -> i64 {
        match sort {
            "accepted" => l.accepted,
            "rejected" => l.rejected,
            "delivered" => l.delivered.copies,
            "returned" => l.returned.copies,
            "dead_lettered" => l.dead_lettered.copies,
            // Microseconds, so that the order is exact; no latency sorts first.
            "latency" => l.latency.as_ref().map_or(-1, |c| (c.p90_ms * 1000.0).round() as i64),
            _ => 0,
        }
    };
    lines.sort_by(|a, b| {
        let order = key(a).cmp(&key(b)).then_with(|| a.interface_id.cmp(&b.interface_id));
        let order = if desc { order.reverse() } else { order };
        a.interface_id.is_empty().cmp(&b.interface_id.is_empty()).then(order)
    });
}

/// A time as the search and the form take it: `YYYY-MM-DDTHH:MM` on a minute, RFC 3339
/// otherwise.
fn form_time(t: i64) -> String {
    if t % MINUTE_US == 0 {
        chrono::DateTime::from_timestamp_micros(t)
            .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    } else {
        broker_core::clock::rfc3339(t)
    }
}

fn minute(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// The report as CSV: one line per channel, then the line of all channels (`all`); every
/// error code with its count; latency in milliseconds.
pub fn csv(r: &SenderReport) -> String {
    let mut out = String::from(
        "sender,from,to,channel,name,accepted,rejected,rejection_codes,queued_copies,queued_messages,\
         retrying_copies,retrying_messages,delivered_copies,delivered_messages,returned_copies,returned_messages,\
         dead_lettered_copies,dead_lettered_messages,latency_count,latency_avg_ms,latency_p50_ms,latency_p90_ms,\
         latency_p99_ms,latency_max_ms,latency_within_3s_pct\n",
    );
    let all = ChannelOutcomes {
        interface_id: "all".into(),
        ..r.total.clone()
    };
    for l in r.channels.iter().chain([&all]) {
        let codes = l
            .errors
            .iter()
            .map(|e| format!("{}={}", e.code, e.count))
            .collect::<Vec<_>>()
            .join(";");
        let mut fields = vec![
            r.sender.clone(),
            r.from.clone(),
            r.to.clone(),
            l.interface_id.clone(),
            l.name.clone(),
            l.accepted.to_string(),
            l.rejected.to_string(),
            codes,
        ];
        for o in [l.queued, l.retrying, l.delivered, l.returned, l.dead_lettered] {
            fields.push(o.copies.to_string());
            fields.push(o.messages.to_string());
        }
        match &l.latency {
            Some(c) => {
                fields.push(c.count.to_string());
                for ms in [c.avg_ms, c.p50_ms, c.p90_ms, c.p99_ms, c.max_ms, c.within_3s_pct] {
                    fields.push(format!("{ms:.3}"));
                }
            }
            None => fields.extend(["0", "", "", "", "", "", ""].map(str::to_owned)),
        }
        let line: Vec<String> = fields.iter().map(|f| crate::csv::field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_on_a_minute_suit_the_form() {
        let t = crate::time::utc_micros("2026-01-02T03:04", false).unwrap();
        assert_eq!(form_time(t), "2026-01-02T03:04");
        assert_eq!(form_time(t + 1), "2026-01-02T03:04:00.000001Z");
        assert_eq!(crate::time::utc_micros(&form_time(t + 1), true), Some(t + 1));
    }

    #[test]
    fn lines_sort_with_refusals_of_no_channel_last() {
        let mut lines = vec![
            empty_line("", NO_CHANNEL.into()),
            ChannelOutcomes {
                accepted: 5,
                ..empty_line("IF-031", String::new())
            },
            ChannelOutcomes {
                accepted: 9,
                ..empty_line("IF-032", String::new())
            },
        ];
        sort_lines(&mut lines, "", false);
        let ids = |l: &[ChannelOutcomes]| l.iter().map(|l| l.interface_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&lines), ["IF-031", "IF-032", ""]);
        sort_lines(&mut lines, "accepted", true);
        assert_eq!(ids(&lines), ["IF-032", "IF-031", ""]);
    }
}
