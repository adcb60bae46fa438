//! The home page's health summary: "is everything all right?" answered from the real
//! stores, on the server, for the portal's home page and `GET /api/v1/home` alike.
//!
//! Operator staff see the platform: today's volumes and the delivery objective (the
//! reports' own query, [`crate::dashboard::run`]), queues failing, retrying or backed up,
//! dead letters waiting, certificates about to expire and raised alarms. A participant's
//! viewer (and a DCP's, for the participants that nominated it: the trail's [`Scope`])
//! sees the same for its own: its queues' backlog and health, the messages it sent and
//! received today and those of recent days that were returned or dead-lettered (counted
//! by the message search, so each figure is exactly what its link lists), the dead
//! letters in its queues and its certificates. A participant's user administrator, who
//! may not read messages, gets no summary (403 from the API).
//!
//! Each figure links to where it is handled: queues to `/ops/queues` (filtered by
//! `participant` and `state`), dead letters to `/ops/dead-letters` (by `recipient` or
//! `queue`), messages to the message search, certificates to `/admin/certificates` for
//! staff who may open it, alarms to `/alarms`, volumes to `/reports` for the same range.

use broker_core::Broker;
use broker_core::delivery::operations::{self, QueueStatus};
use broker_core::security::certs;
use broker_core::store::{CertificateRecord, QueueHealth, SEARCH_COUNT_CAP};
use dip_admin::types::{Actor, AppError, ListQuery, encode};

use crate::analytics::Analytics;
use crate::dashboard;
use crate::home_views::{AlarmLine, CertificateLine, HomeSummary, Objective, ParticipantDay, QueueLine, Tile, Tone};
use crate::ops_views::BACKLOG_AGE_SECS;
use crate::report::Measure;
use crate::report_views::ReportParams;
use crate::trail::{self, Scope};

/// Days before expiry from which a certificate is `expiring` (as the certificate pages
/// and the API say).
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

/// How many days (today included) returned and dead-lettered messages stay on a
/// participant's home as something to act on.
pub const RECENT_DAYS: i64 = 7;

/// Most queues the operator's summary lists; the rest are counted.
pub const QUEUE_LINES: usize = 20;

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// The health summary `actor` may see, now.
pub async fn summary(broker: &Broker, analytics: &Analytics, actor: &Actor) -> Result<HomeSummary, AppError> {
    let scope = Scope::of(broker, actor)?;
    summary_at(broker, analytics, actor, &scope, broker_core::clock::now_micros()).await
}

/// A link with query parameters (empty values left out).
fn link(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

fn minute(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// A wait in words: `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`.
fn wait(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A count from the message search, which stops counting past its cap.
fn count_text(n: i64) -> String {
    if n > SEARCH_COUNT_CAP {
        format!("{SEARCH_COUNT_CAP}+")
    } else {
        n.to_string()
    }
}

fn ops_queues(participant: &str, state: &str) -> String {
    link("/ops/queues", &[("participant", participant), ("state", state)])
}

/// The dead letters of a recipient (empty: all the viewer may see), or of one queue.
fn ops_dead_letters(recipient: &str, queue: &str) -> String {
    link("/ops/dead-letters", &[("recipient", recipient), ("queue", queue)])
}

/// A queue as the summary lists it: judged by its head (failing, retrying), its backlog
/// (the operations page's `backlog` rule) and its dead letters.
fn queue_line(q: &QueueStatus) -> QueueLine {
    let backed_up = q.oldest_age_seconds.is_some_and(|a| a > BACKLOG_AGE_SECS);
    let tone = match q.state.as_str() {
        "failing" => Tone::Bad,
        "retrying" => Tone::Warn,
        _ if backed_up || q.dead_letters > 0 => Tone::Warn,
        _ => Tone::Ok,
    };
    QueueLine {
        queue_id: q.queue.clone(),
        dip_id: q.dip_id.clone(),
        mode: q.mode.clone(),
        state: q.state.clone(),
        backed_up,
        pending: q.pending,
        oldest_wait: q.oldest_age_seconds.map(|a| wait((a * 1e6) as i64)),
        dead: q.dead_letters,
        last_outcome: q.last_outcome.clone(),
        failing_since: q
            .failing_since
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| minute(t.timestamp_micros())),
        tone,
        href: ops_queues(&q.dip_id, ""),
        dead_href: ops_dead_letters("", &q.queue),
    }
}

fn certificate_line(c: &CertificateRecord, now: i64) -> CertificateLine {
    let status = certs::status(c, now, CERTIFICATE_WARN_DAYS);
    CertificateLine {
        fingerprint: c.fingerprint.clone(),
        dip_id: c.dip_id.clone(),
        subject: c.subject.clone(),
        not_after: minute(c.not_after),
        days_left: (c.not_after - now).div_euclid(DAY_US),
        status: status.to_owned(),
        tone: match status {
            "expired" => Tone::Bad,
            "expiring" => Tone::Warn,
            "active" => Tone::Ok,
            _ => Tone::Info,
        },
    }
}

/// One participant's message figures, each with the search that lists it.
struct Messages {
    sent: (i64, String),
    received: (i64, String),
    returned: (i64, String),
    dead_lettered: (i64, String),
}

/// How many messages the search with `filters` finds for the viewer, and its link.
async fn searched(broker: &Broker, scope: &Scope, filters: &[(&str, &str)]) -> Result<(i64, String), AppError> {
    let list = ListQuery {
        page: 1,
        filters: filters
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    };
    let query = trail::query_of(&list, scope, 0)?;
    let (_, total) = broker.messages().search_messages(&query).await?;
    Ok((total, link("/messages", filters)))
}

async fn messages_of(
    broker: &Broker,
    scope: &Scope,
    dip: &str,
    today: &str,
    recent: &str,
) -> Result<Messages, AppError> {
    let sent = [("sender", dip), ("from", today)];
    let received = [("recipient", dip), ("from", today)];
    let returned = [("sender", dip), ("state", "returned"), ("from", recent)];
    let dead_lettered = [("sender", dip), ("state", "dead_lettered"), ("from", recent)];
    let (sent, received, returned, dead_lettered) = futures::try_join!(
        searched(broker, scope, &sent),
        searched(broker, scope, &received),
        searched(broker, scope, &returned),
        searched(broker, scope, &dead_lettered),
    )?;
    Ok(Messages {
        sent,
        received,
        returned,
        dead_lettered,
    })
}

fn tile(key: &str, label: &str, value: String, count: Option<i64>, tone: Tone, note: String, href: String) -> Tile {
    Tile {
        key: key.to_owned(),
        label: label.to_owned(),
        value,
        count,
        tone,
        note,
        href,
    }
}

fn count_tile(key: &str, label: &str, n: i64, tone: Tone, note: String, href: String) -> Tile {
    tile(key, label, count_text(n), Some(n), tone, note, href)
}

/// `Warn` (or `bad`) when `n` is above zero, else `Ok`.
fn nonzero(n: i64, bad: Tone) -> Tone {
    if n > 0 { bad } else { Tone::Ok }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The summary at `now` for a viewer of `scope`.
pub async fn summary_at(
    broker: &Broker,
    analytics: &Analytics,
    actor: &Actor,
    scope: &Scope,
    now: i64,
) -> Result<HomeSummary, AppError> {
    let registry = broker.registry();
    let dips: Option<&[String]> = match scope {
        Scope::All => None,
        Scope::Of(ids) => Some(ids),
    };
    let day_start = now - now.rem_euclid(DAY_US);
    let today = date(day_start);
    let recent = date(day_start - (RECENT_DAYS - 1) * DAY_US);
    // A single participant's figures link straight to its lists; a DCP's go to the table
    // of the participants it acts for, where each has its own links.
    let single = dips.and_then(|d| (d.len() == 1).then(|| d[0].as_str()));
    let participant_param = single.unwrap_or("");

    // Queues, as the operations page lists them.
    let all_lines: Vec<QueueLine> = operations::queues(broker, dips).await?.iter().map(queue_line).collect();
    let mut lines = all_lines.clone();
    let failing = lines.iter().filter(|q| q.state == "failing").count() as i64;
    let retrying = lines.iter().filter(|q| q.state == "retrying").count() as i64;
    let backed_up = lines.iter().filter(|q| q.backed_up).count() as i64;
    let pending: i64 = lines.iter().map(|q| q.pending).sum();
    let dead: i64 = lines.iter().map(|q| q.dead).sum();
    let mut queues_more = 0;
    if dips.is_none() {
        // Staff: the queues that need a look, worst and fullest first.
        lines.retain(|q| q.tone > Tone::Ok);
        lines.sort_by(|a, b| {
            b.tone
                .cmp(&a.tone)
                .then(b.pending.cmp(&a.pending))
                .then(a.queue_id.cmp(&b.queue_id))
        });
        queues_more = lines.len().saturating_sub(QUEUE_LINES);
        lines.truncate(QUEUE_LINES);
    }

    // Certificates: staff see those about to expire or just expired; a participant all of
    // its own that are current or just expired.
    let since = now - CERTIFICATE_WARN_DAYS * DAY_US;
    let horizon = now + CERTIFICATE_WARN_DAYS * DAY_US;
    let mut certificates: Vec<CertificateLine> = broker
        .directory()
        .certificates()
        .await?
        .iter()
        .filter(|c| c.revoked_at.is_none() && c.not_after > since)
        .filter(|c| match dips {
            None => c.not_after <= horizon,
            Some(d) => d.contains(&c.dip_id),
        })
        .map(|c| certificate_line(c, now))
        .collect();
    certificates.sort_by(|a, b| a.days_left.cmp(&b.days_left).then(a.dip_id.cmp(&b.dip_id)));
    let expired = certificates.iter().filter(|c| c.status == "expired").count() as i64;
    let expiring = certificates.iter().filter(|c| c.status == "expiring").count() as i64;
    let certificates_href = if actor.reads_platform() {
        link("/admin/certificates", &[("status", "expiring")])
    } else {
        "#certificates".to_owned()
    };

    // Raised alarms the viewer sees.
    let alarms: Vec<AlarmLine> = broker
        .alarms()
        .alarm_rules()
        .await?
        .into_iter()
        .filter(|r| r.enabled && crate::alarms::sees(actor.dip_id.as_deref(), r))
        .filter_map(|r| {
            Some(AlarmLine {
                raised_since: minute(r.raised_at?),
                watches: crate::alarms::describe(&r),
                scope: r.owner_dip_id.clone().unwrap_or_else(|| "platform".into()),
                name: r.name,
                observed: r.observed,
            })
        })
        .collect();

    // Today's volumes and objective: the reports' own query for today so far (to the end
    // of this hour), as the viewer may see it.
    let mut params = ReportParams {
        range: "custom".into(),
        from: format!("{today}T00:00"),
        to: chrono::DateTime::from_timestamp_micros(now - now.rem_euclid(HOUR_US) + HOUR_US)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        interval: "1h".into(),
        ..Default::default()
    };
    let reports_href = format!("/reports?{}", params.to_query());
    let report = dashboard::run(analytics, actor, &mut params)
        .await
        .map(|(series, _)| series);
    let (volume_svg, reports_note, volumes, objective) = match &report {
        Ok(series) => {
            let objective = series
                .latency_total("", Measure::EndToEnd)
                .filter(|l| l.count > 0)
                .map(|l| {
                    let c = dashboard::cells(l);
                    Objective {
                        measured: c.count,
                        within_3s_pct: c.within_3s_pct,
                        p90_ms: c.p90_ms,
                        p99_ms: c.p99_ms,
                        max_ms: c.max_ms,
                        met: c.slo_met,
                    }
                });
            (dashboard::volume_chart(series), None, Some(series.total("")), objective)
        }
        // The rest of the page stands without the reports (ClickHouse down, say).
        Err(_) => (
            String::new(),
            Some("Today's volumes cannot be read just now; the figures below are current.".to_owned()),
            None,
            None,
        ),
    };

    let mut tiles = Vec::new();
    let mut participants = Vec::new();
    match dips {
        None => {
            if let Some(v) = &volumes {
                tiles.push(count_tile(
                    "received_today",
                    "Messages received today",
                    v.received,
                    Tone::Info,
                    format!("{} copies queued for recipients", v.routed),
                    reports_href.clone(),
                ));
                tiles.push(count_tile(
                    "delivered_today",
                    "Copies delivered today",
                    v.delivered,
                    Tone::Info,
                    plural(
                        v.failed_attempts,
                        "failed attempt (retried)",
                        "failed attempts (retried)",
                    ),
                    reports_href.clone(),
                ));
                tiles.push(count_tile(
                    "errors_today",
                    "Errors today",
                    v.errors(),
                    Tone::Info,
                    format!(
                        "{} refused at the API, {} returned, {} dead-lettered",
                        v.rejected, v.returned, v.dead_lettered
                    ),
                    reports_href.clone(),
                ));
            }
        }
        Some(d) => {
            let figures =
                futures::future::try_join_all(d.iter().map(|dip| messages_of(broker, scope, dip, &today, &recent)))
                    .await?;
            let sum = |pick: fn(&Messages) -> i64| figures.iter().map(pick).sum::<i64>();
            let href = |pick: fn(&Messages) -> &String| match (single, figures.first()) {
                (Some(_), Some(m)) => pick(m).clone(),
                _ => "#participants".to_owned(),
            };
            tiles.push(count_tile(
                "sent_today",
                "Messages sent today",
                sum(|m| m.sent.0),
                Tone::Info,
                "accepted by the platform since midnight UTC".into(),
                href(|m| &m.sent.1),
            ));
            tiles.push(count_tile(
                "received_today",
                "Messages received today",
                sum(|m| m.received.0),
                Tone::Info,
                "addressed to you since midnight UTC".into(),
                href(|m| &m.received.1),
            ));
            let returned = sum(|m| m.returned.0);
            tiles.push(count_tile(
                "returned_recent",
                "Returned to you",
                returned,
                nonzero(returned, Tone::Warn),
                format!("messages you sent that a recipient refused, last {RECENT_DAYS} days"),
                href(|m| &m.returned.1),
            ));
            let dead_lettered = sum(|m| m.dead_lettered.0);
            tiles.push(count_tile(
                "dead_lettered_recent",
                "Your messages dead-lettered",
                dead_lettered,
                nonzero(dead_lettered, Tone::Warn),
                format!("not delivered in time, last {RECENT_DAYS} days"),
                href(|m| &m.dead_lettered.1),
            ));
            if d.len() > 1 {
                for (dip, m) in d.iter().zip(&figures) {
                    let own = all_lines.iter().filter(|q| &q.dip_id == dip);
                    participants.push(ParticipantDay {
                        dip_id: dip.clone(),
                        name: registry.participant(dip).map(|p| p.name.clone()).unwrap_or_default(),
                        sent: m.sent.0,
                        received: m.received.0,
                        returned: m.returned.0,
                        dead_lettered: m.dead_lettered.0,
                        pending: own.clone().map(|q| q.pending).sum(),
                        dead_letters: own.clone().map(|q| q.dead).sum(),
                        queues_failing: own.filter(|q| q.state != "healthy").count() as i64,
                        sent_href: m.sent.1.clone(),
                        received_href: m.received.1.clone(),
                        returned_href: m.returned.1.clone(),
                        dead_lettered_href: m.dead_lettered.1.clone(),
                        queues_href: ops_queues(dip, ""),
                        dead_letters_href: ops_dead_letters(dip, ""),
                    });
                }
            }
        }
    }

    tiles.push(match &objective {
        Some(o) => tile(
            "objective",
            "Delivery objective today",
            format!("{:.1} %", o.within_3s_pct),
            None,
            if o.met { Tone::Ok } else { Tone::Bad },
            format!(
                "{} within 3 s (90 % needed, all within 30 s): {}; p90 {:.0} ms",
                plural(o.measured, "delivery", "deliveries"),
                if o.met { "met" } else { "missed" },
                o.p90_ms
            ),
            reports_href.clone(),
        ),
        None if report.is_ok() => tile(
            "objective",
            "Delivery objective today",
            "none yet".into(),
            None,
            Tone::Info,
            "nothing delivered today to measure".into(),
            reports_href.clone(),
        ),
        None => tile(
            "objective",
            "Delivery objective today",
            "unknown".into(),
            None,
            Tone::Warn,
            "reports cannot be read just now".into(),
            reports_href.clone(),
        ),
    });
    let troubled = failing + retrying;
    tiles.push(count_tile(
        "queues_failing",
        "Queues failing",
        troubled,
        if failing > 0 {
            Tone::Bad
        } else {
            nonzero(retrying, Tone::Warn)
        },
        format!(
            "{failing} failing over {} min, {retrying} retrying",
            QueueHealth::FAILING_AFTER_MICROS / 60_000_000
        ),
        ops_queues(
            participant_param,
            match (failing, retrying) {
                (0, 0) => "",
                (0, _) => "retrying",
                _ => "failing",
            },
        ),
    ));
    tiles.push(count_tile(
        "queues_backlog",
        if dips.is_some() {
            "Waiting in your queues"
        } else {
            "Messages waiting"
        },
        pending,
        nonzero(backed_up, Tone::Warn),
        format!(
            "{} backed up (oldest waiting over {} min)",
            plural(backed_up, "queue", "queues"),
            BACKLOG_AGE_SECS / 60.0
        ),
        ops_queues(participant_param, if backed_up > 0 { "backlog" } else { "" }),
    ));
    tiles.push(count_tile(
        "dead_letters",
        if dips.is_some() {
            "Dead letters in your queues"
        } else {
            "Dead letters"
        },
        dead,
        nonzero(dead, Tone::Warn),
        "waiting to be inspected and redriven".into(),
        ops_dead_letters(participant_param, ""),
    ));
    tiles.push(count_tile(
        "certificates",
        "Certificates expiring",
        expiring + expired,
        if expired > 0 {
            Tone::Bad
        } else {
            nonzero(expiring, Tone::Warn)
        },
        format!("{expired} expired, {expiring} expiring within {CERTIFICATE_WARN_DAYS} days"),
        certificates_href.clone(),
    ));
    let raised = alarms.len() as i64;
    tiles.push(count_tile(
        "alarms",
        "Alarms raised",
        raised,
        nonzero(raised, Tone::Bad),
        if dips.is_some() {
            "your participant's alarm rules".into()
        } else {
            "every alarm rule".into()
        },
        "/alarms".into(),
    ));

    let verdict = tiles.iter().map(|t| t.tone).max().unwrap_or(Tone::Ok).max(Tone::Ok);
    let attention = tiles.iter().filter(|t| t.tone >= Tone::Warn).count() as i64;
    let headline = match verdict {
        Tone::Bad => format!("{} to act on", plural(attention, "thing", "things")),
        Tone::Warn => format!("{} worth a look", plural(attention, "thing", "things")),
        _ => "Everything is all right".to_owned(),
    };
    Ok(HomeSummary {
        operator: dips.is_none(),
        participants_covered: dips.map(<[String]>::to_vec).unwrap_or_default(),
        day: today,
        as_of: chrono::DateTime::from_timestamp_micros(now)
            .unwrap_or_default()
            .format("%H:%M:%S UTC")
            .to_string(),
        verdict,
        headline,
        tiles,
        volume_svg,
        reports_note,
        reports_href,
        objective,
        queues: lines,
        queues_more,
        queues_href: ops_queues(participant_param, ""),
        participants,
        certificates,
        certificates_href,
        certificate_warn_days: CERTIFICATE_WARN_DAYS,
        alarms,
        recent_days: RECENT_DAYS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_in_the_largest_units() {
        assert_eq!(wait(42_000_000), "42 s");
        assert_eq!(wait(7 * 60_000_000 + 5_000_000), "7 min");
        assert_eq!(wait(3 * HOUR_US + 5 * 60_000_000), "3 h 5 min");
        assert_eq!(wait(2 * DAY_US + 4 * HOUR_US), "2 d 4 h");
        assert_eq!(wait(-5), "0 s");
    }

    #[test]
    fn links_leave_out_empty_parameters() {
        assert_eq!(ops_queues("", ""), "/ops/queues");
        assert_eq!(
            ops_queues("1000000001", "failing"),
            "/ops/queues?participant=1000000001&state=failing"
        );
        assert_eq!(
            link("/messages", &[("sender", "1"), ("from", "2026-11-27")]),
            "/messages?sender=1&from=2026-11-27"
        );
        assert_eq!(count_text(SEARCH_COUNT_CAP + 1), format!("{SEARCH_COUNT_CAP}+"));
        assert_eq!(count_text(12), "12");
    }

    #[test]
    fn a_queue_is_judged_by_its_head_backlog_and_dead_letters() {
        let healthy = QueueStatus {
            queue: "1000000001/default".into(),
            dip_id: "1000000001".into(),
            name: "default".into(),
            mode: "pull".into(),
            channels: vec![],
            state: "healthy".into(),
            pending: 0,
            replay_held: 0,
            dead_letters: 0,
            oldest_enqueued_at: None,
            oldest_age_seconds: None,
            last_attempt_at: None,
            last_outcome: None,
            last_success_at: None,
            failing_since: None,
            next_attempt_at: None,
            leased_by: None,
        };
        let line = queue_line(&healthy);
        assert_eq!(
            (line.state.as_str(), line.tone, line.backed_up),
            ("healthy", Tone::Ok, false)
        );
        assert_eq!(line.href, "/ops/queues?participant=1000000001");
        assert_eq!(line.dead_href, "/ops/dead-letters?queue=1000000001%2Fdefault");
        let waiting = QueueStatus {
            pending: 3,
            oldest_age_seconds: Some(BACKLOG_AGE_SECS + 1.0),
            ..healthy.clone()
        };
        let line = queue_line(&waiting);
        assert_eq!(
            (line.tone, line.backed_up, line.oldest_wait.as_deref()),
            (Tone::Warn, true, Some("5 min"))
        );
        let fresh = QueueStatus {
            oldest_age_seconds: Some(2.0),
            ..waiting
        };
        assert_eq!(queue_line(&fresh).tone, Tone::Ok);
        let retrying = QueueStatus {
            state: "retrying".into(),
            ..healthy.clone()
        };
        assert_eq!(queue_line(&retrying).tone, Tone::Warn);
        let failing = QueueStatus {
            state: "failing".into(),
            failing_since: Some("2026-11-27T09:00:00.000000Z".into()),
            ..healthy.clone()
        };
        let line = queue_line(&failing);
        assert_eq!(
            (line.tone, line.failing_since.as_deref()),
            (Tone::Bad, Some("2026-11-27 09:00 UTC"))
        );
        let dead = QueueStatus {
            dead_letters: 1,
            ..healthy
        };
        assert_eq!(queue_line(&dead).tone, Tone::Warn);
    }
}
