//! Replay (spec 5.5.11, `WIRE.md`): a recipient asks for the messages of a channel again,
//! by transaction id or time range. Each replayed message is a new queue entry carrying a
//! new `D0` (`replayIndicator` true, `R-` ids) with the original `D0` beside it, so that
//! downstream processes recognise it and are not triggered again. Only messages the
//! recipient was sent are replayed, obfuscated as they were; every request is recorded.
//!
//! Pacing: the copies do not all join the recipient's queue at once, where live messages
//! arriving during a large replay would wait behind every copy. They are held, and join
//! the tail of the queue `BrokerConfig::replay_batch` at a time, the next batch once the
//! last copy of the previous one is settled (`ReplayStore::release_held`). A live
//! message therefore waits behind one batch at most, and a replay drains as fast as its
//! recipient answers when nothing else is queued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::broker::Broker;
use crate::envelope::transaction_wrapper;
use crate::error::{ApiError, ErrorCode};
use crate::input::echo;
use crate::model::Principal;
use crate::store::{
    Delivery, ReplayAdmission, ReplayCandidate, ReplayCopy, ReplayProgress, ReplayQuota, ReplayRecord, ReplayUsage,
    StoreError,
};

/// Most messages one replay may select; larger ranges are refused, to be split.
pub const MAX_REPLAY: i64 = 100_000;

/// The rolling window of the replay quota, in hours.
pub const QUOTA_WINDOW_HOURS: i64 = 24;

/// How long replayed copies are archived.
const COPY_RETENTION_DAYS: i64 = 14;

/// A replay request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// Channel.
    #[serde(rename = "interfaceID")]
    pub interface_id: String,
    /// First message to replay.
    #[serde(rename = "startTransactionID", default)]
    pub start_transaction_id: Option<String>,
    /// Replay messages received from this time.
    #[serde(default)]
    pub from_time: Option<DateTime<Utc>>,
    /// Last message to replay.
    #[serde(rename = "endTransactionID", default)]
    pub end_transaction_id: Option<String>,
    /// Replay messages received until this time.
    #[serde(default)]
    pub to_time: Option<DateTime<Utc>>,
    /// The recipient to replay for (a DCP acting for several participants, or the
    /// operator, names one); the caller itself by default.
    #[serde(rename = "recipientDIPID", default)]
    pub recipient_dip_id: Option<String>,
    /// Only count what would be replayed.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcome {
    /// Replay id.
    #[serde(rename = "replayID")]
    pub replay_id: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Recipient.
    #[serde(rename = "recipientDIPID")]
    pub recipient_dip_id: String,
    /// The queue the copies go to.
    pub queue: String,
    /// Messages selected.
    pub messages: i64,
    /// Effective start of the range.
    pub from: String,
    /// Effective end of the range.
    pub to: String,
    /// The first message selected (oldest), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<SelectedMessage>,
    /// The last message selected (newest), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<SelectedMessage>,
    /// Transaction ids of the copies, in order (empty on a dry run).
    #[serde(rename = "replayTransactionIDs")]
    pub replay_transaction_ids: Vec<String>,
    /// The recipient's replay quota after this request.
    pub quota: QuotaStatus,
}

/// A message a replay selected, as its preview names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectedMessage {
    /// Original transaction id.
    #[serde(rename = "transactionID")]
    pub transaction_id: String,
    /// When the platform received it (RFC 3339).
    pub received_at: String,
}

impl SelectedMessage {
    fn of(c: &ReplayCandidate) -> Self {
        Self {
            transaction_id: c.transaction_id.clone(),
            received_at: crate::clock::rfc3339(c.received_at),
        }
    }
}

/// A recipient's replay quota, as every replay answer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// Most messages replayed for the recipient within the window.
    pub limit: i64,
    /// Messages replayed for it within the window (a replay just made included).
    pub used: i64,
    /// Messages that may still be replayed for it now.
    pub remaining: i64,
    /// The rolling window, hours.
    pub window_hours: i64,
    /// Only on a refusal: when enough of the quota frees for the refused replay to fit
    /// (RFC 3339); absent too when the replay is larger than the whole quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frees_at: Option<String>,
}

impl QuotaStatus {
    fn new(quota: ReplayQuota, usage: ReplayUsage) -> Self {
        Self {
            limit: quota.limit,
            used: usage.used,
            remaining: quota.limit.saturating_sub(usage.used).max(0),
            window_hours: QUOTA_WINDOW_HOURS,
            frees_at: usage.frees_at.map(crate::clock::rfc3339),
        }
    }
}

/// A recorded replay as its history shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayEntry {
    /// Replay id.
    #[serde(rename = "replayID")]
    pub replay_id: String,
    /// Who asked.
    pub requested_by: String,
    /// Recipient.
    #[serde(rename = "recipientDIPID")]
    pub recipient_dip_id: String,
    /// Channel.
    #[serde(rename = "interfaceID")]
    pub interface_id: String,
    /// Whether it only counted.
    pub dry_run: bool,
    /// Messages selected.
    pub messages: i64,
    /// When (RFC 3339).
    pub requested_at: String,
    /// The request as made.
    pub request: Value,
    /// Where its copies are (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ReplayProgress>,
}

/// Most replays the history looks back over.
pub const HISTORY_LIMIT: i64 = 1000;

/// The recorded replays for the recipients in `visible` (`None`: all), newest first, of
/// the last [`HISTORY_LIMIT`]: `take` of them after skipping `skip`, each with where its
/// copies are, and how many there are in all.
pub async fn history(
    broker: &Broker,
    visible: Option<&[String]>,
    skip: usize,
    take: usize,
) -> Result<(Vec<ReplayEntry>, usize), StoreError> {
    let rows: Vec<ReplayRecord> = broker
        .replays()
        .replays(HISTORY_LIMIT)
        .await?
        .into_iter()
        .filter(|r| visible.is_none_or(|m| m.contains(&r.recipient)))
        .collect();
    let total = rows.len();
    let mut out = Vec::new();
    for r in rows.into_iter().skip(skip).take(take) {
        out.push(entry(broker, r).await?);
    }
    Ok((out, total))
}

/// Replay `id` if it is for a recipient in `visible` (`None`: any), with its progress.
pub async fn find(broker: &Broker, visible: Option<&[String]>, id: &str) -> Result<Option<ReplayEntry>, StoreError> {
    let found = broker
        .replays()
        .replays(HISTORY_LIMIT)
        .await?
        .into_iter()
        .find(|r| r.id == id && visible.is_none_or(|m| m.contains(&r.recipient)));
    match found {
        Some(r) => Ok(Some(entry(broker, r).await?)),
        None => Ok(None),
    }
}

async fn entry(broker: &Broker, r: ReplayRecord) -> Result<ReplayEntry, StoreError> {
    let progress = match r.dry_run {
        true => None,
        false => Some(broker.replays().replay_progress(&r.id).await?),
    };
    Ok(ReplayEntry {
        replay_id: r.id,
        requested_by: r.requested_by,
        recipient_dip_id: r.recipient,
        interface_id: r.interface_id,
        dry_run: r.dry_run,
        messages: r.messages,
        requested_at: crate::clock::rfc3339(r.created_at),
        request: serde_json::from_str(&r.request).unwrap_or(Value::Null),
        progress,
    })
}

/// Why a replay was refused.
#[derive(Debug)]
pub enum ReplayError {
    /// The request is wrong (400).
    Invalid(ApiError),
    /// The caller may not replay for that recipient (403).
    Forbidden(ApiError),
    /// The replay would exceed the recipient's quota (429); nothing was queued.
    QuotaExceeded {
        /// The error, saying what remains and when the quota frees.
        error: ApiError,
        /// The quota, with `frees_at`.
        quota: QuotaStatus,
        /// Seconds until the replay would fit; `None` when it never will (larger than the
        /// whole quota).
        retry_after: Option<u64>,
    },
    /// The store failed (503).
    Store(StoreError),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn invalid(path: &str, message: impl Into<String>) -> ReplayError {
    ReplayError::Invalid(ApiError::new(ErrorCode::InvalidField, path, message))
}

/// The refusal of a replay of `requested` messages for `recipient` that does not fit.
fn over_quota(recipient: &str, requested: i64, quota: ReplayQuota, usage: ReplayUsage, now: i64) -> ReplayError {
    let status = QuotaStatus::new(quota, usage);
    let when = match &status.frees_at {
        Some(at) => format!("enough frees at {at}"),
        None => format!("the replay is larger than the whole quota of {}: split it", quota.limit),
    };
    let error = ApiError::new(
        ErrorCode::ReplayQuotaExceeded,
        "",
        format!(
            "replaying {requested} messages would exceed the replay quota of {recipient}: {} of {} messages \
             replayed in the last {QUOTA_WINDOW_HOURS} hours, {} remain; {when}",
            status.used, status.limit, status.remaining
        ),
    );
    // Whole seconds, rounded up: a retry on the dot finds the quota freed.
    let retry_after = usage.frees_at.map(|at| {
        u64::try_from(at.saturating_sub(now).max(0))
            .unwrap_or(0)
            .div_ceil(1_000_000)
            .max(1)
    });
    ReplayError::QuotaExceeded {
        error,
        quota: status,
        retry_after,
    }
}

/// How a caller is named in the replay history (`requestedBy`) when it is an API
/// credential; the portal names its users itself.
pub fn requested_by(caller: &Principal) -> String {
    match caller {
        Principal::Operator { name } => format!("operator:{name}"),
        p => format!("participant:{}", p.dip_id().unwrap_or_default()),
    }
}

/// A replay checked and its messages selected, not yet run.
struct Plan {
    recipient: String,
    queue: String,
    from: i64,
    to: i64,
    candidates: Vec<ReplayCandidate>,
    quota: ReplayQuota,
    now: DateTime<Utc>,
}

impl Plan {
    fn outcome(&self, replay_id: String, dry_run: bool, copies: Vec<String>, usage: ReplayUsage) -> ReplayOutcome {
        ReplayOutcome {
            replay_id,
            dry_run,
            recipient_dip_id: self.recipient.clone(),
            queue: self.queue.clone(),
            messages: i64::try_from(self.candidates.len()).unwrap_or(i64::MAX),
            from: crate::clock::rfc3339(self.from),
            to: crate::clock::rfc3339(self.to),
            first: self.candidates.first().map(SelectedMessage::of),
            last: self.candidates.last().map(SelectedMessage::of),
            replay_transaction_ids: copies,
            quota: QuotaStatus::new(self.quota, usage),
        }
    }
}

/// What a replay would do, without recording anything: the portal's preview (the API's
/// `dryRun` is recorded in the history, as every API request is).
pub async fn preview(
    broker: &Broker,
    caller: &Principal,
    request: &ReplayRequest,
) -> Result<ReplayOutcome, ReplayError> {
    let plan = plan(broker, caller, request).await?;
    let usage = broker
        .replays()
        .replay_usage(&plan.recipient, plan.quota, plan.now.timestamp_micros(), 0)
        .await?;
    Ok(plan.outcome(String::new(), true, vec![], usage))
}

/// Runs (or, with `dry_run`, counts) a replay for `caller`, recorded as asked by
/// `requested_by`.
pub async fn replay(
    broker: &Broker,
    caller: &Principal,
    requested_by: &str,
    request: &ReplayRequest,
) -> Result<ReplayOutcome, ReplayError> {
    let plan = plan(broker, caller, request).await?;
    run(broker, plan, requested_by, request).await
}

/// Checks a replay request and selects its messages.
async fn plan(broker: &Broker, caller: &Principal, request: &ReplayRequest) -> Result<Plan, ReplayError> {
    let registry = broker.registry();
    let replays = broker.replays();
    if registry.channel(&request.interface_id).is_none() {
        return Err(ReplayError::Invalid(ApiError::new(
            ErrorCode::UnknownInterface,
            "/interfaceID",
            format!("no channel {}", echo(&request.interface_id)),
        )));
    }
    let recipient = match (caller, &request.recipient_dip_id) {
        (Principal::Operator { .. }, Some(r)) => r.clone(),
        (Principal::Operator { .. }, None) => {
            return Err(invalid(
                "/recipientDIPID",
                "the operator must name the recipient to replay for",
            ));
        }
        (Principal::Dcp { .. }, None) => {
            return Err(invalid("/recipientDIPID", "a DCP names the participant to replay for"));
        }
        (p, named) => {
            let me = p.dip_id().unwrap_or_default();
            let r = named.clone().unwrap_or_else(|| me.to_owned());
            if !registry.acts_for(me).contains(&r) {
                return Err(ReplayError::Forbidden(ApiError::new(
                    ErrorCode::Forbidden,
                    "/recipientDIPID",
                    format!("you do not act for {}", echo(&r)),
                )));
            }
            r
        }
    };
    if registry.participant(&recipient).is_none() {
        return Err(invalid(
            "/recipientDIPID",
            format!("no participant {}", echo(&recipient)),
        ));
    }

    // The range: the earliest of the two starts, the latest of the two ends (spec 5.5.11).
    // An id is looked up only among the messages sent to the recipient on the channel:
    // anything else answers as an id that does not exist, so that naming another
    // participant's transaction reveals neither that it exists nor when it was received.
    let received = |id: &Option<String>, path: &'static str| {
        let id = id.clone();
        let recipient = recipient.clone();
        async move {
            match id {
                None => Ok(None),
                Some(id) => match replays.received_by(&id, &request.interface_id, &recipient).await? {
                    Some(at) => Ok(Some(at)),
                    None => Err(invalid(
                        path,
                        format!(
                            "no message {} sent to {recipient} on {}",
                            echo(&id),
                            request.interface_id
                        ),
                    )),
                },
            }
        }
    };
    let start_tx = received(&request.start_transaction_id, "/startTransactionID").await?;
    let end_tx = received(&request.end_transaction_id, "/endTransactionID").await?;
    let from_time = request.from_time.map(|t| t.timestamp_micros());
    let to_time = request.to_time.map(|t| t.timestamp_micros());
    let from = match (start_tx, from_time) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return Err(invalid("", "give startTransactionID or fromTime"));
        }
    };
    let now = Utc::now();
    let to = match (end_tx, to_time) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => now.timestamp_micros(),
    };
    if from > to {
        return Err(invalid("", "the range ends before it starts"));
    }

    let recipients = vec![recipient.clone()];
    let candidates = replays
        .replay_candidates(&request.interface_id, &recipients, from, to, MAX_REPLAY + 1)
        .await?;
    if i64::try_from(candidates.len()).unwrap_or(i64::MAX) > MAX_REPLAY {
        return Err(invalid("", format!("more than {MAX_REPLAY} messages; split the range")));
    }
    let queue = registry.queue_for(&recipient, &request.interface_id);
    let quota = ReplayQuota {
        limit: broker.config().replay_quota,
        window: QUOTA_WINDOW_HOURS * 3_600_000_000,
    };
    Ok(Plan {
        recipient,
        queue,
        from,
        to,
        candidates,
        quota,
        now,
    })
}

/// Copies and records a planned replay (only records it, on a dry run).
async fn run(
    broker: &Broker,
    plan: Plan,
    requested_by: &str,
    request: &ReplayRequest,
) -> Result<ReplayOutcome, ReplayError> {
    let replays = broker.replays();
    let Plan {
        ref recipient,
        ref queue,
        quota,
        now,
        ref candidates,
        ..
    } = plan;
    let registry = broker.registry();
    let Some(channel) = registry.channel(&request.interface_id) else {
        return Err(invalid("/interfaceID", "the channel was removed"));
    };
    let selected = i64::try_from(candidates.len()).unwrap_or(i64::MAX);
    if !request.dry_run {
        // Refuse before copying up to MAX_REPLAY messages for nothing; record_replay
        // decides, under the recipient's lock.
        let usage = replays
            .replay_usage(recipient, quota, now.timestamp_micros(), selected)
            .await?;
        if usage.used.saturating_add(selected) > quota.limit {
            return Err(over_quota(recipient, selected, quota, usage, now.timestamp_micros()));
        }
    }
    let environment = &broker.config().environment;
    let mut copies = Vec::new();
    if !request.dry_run {
        for c in candidates {
            let plain = broker
                .open_envelope(&c.transaction_id, &c.envelope)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut payload: Value = serde_json::from_str(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let Some(cb) = payload.get_mut("CommonBlock").and_then(Value::as_object_mut) else {
                return Err(StoreError::Corrupt(format!("archived {} has no CommonBlock", c.transaction_id)).into());
            };
            let original = cb.get("D0").cloned().unwrap_or(Value::Null);
            let correlation = original
                .get("initialCorrelationID")
                .and_then(Value::as_str)
                .map(|c| format!("R-{c}"));
            let id = format!("R-{}", uuid::Uuid::now_v7());
            cb.insert(
                "D0".into(),
                transaction_wrapper(&id, now, &channel.channel, correlation.as_deref(), true, environment),
            );
            cb.insert("originalD0".into(), original);
            let envelope = broker.seal_envelope(
                channel.channel.security_category,
                &id,
                serde_json::to_string(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
            copies.push(ReplayCopy {
                transaction_id: id,
                original_transaction_id: c.transaction_id.clone(),
                interface_id: request.interface_id.clone(),
                envelope,
                retain_until: now.timestamp_micros() + COPY_RETENTION_DAYS * 86_400_000_000,
                delivery: Delivery {
                    queue_id: queue.clone(),
                    recipient_dip_id: recipient.clone(),
                    recipient_role: c.recipient_role.clone(),
                    hidden: c.hidden.clone(),
                },
            });
        }
    }
    let record = ReplayRecord {
        id: uuid::Uuid::now_v7().to_string(),
        requested_by: requested_by.to_owned(),
        recipient: recipient.clone(),
        interface_id: request.interface_id.clone(),
        request: serde_json::to_string(request).unwrap_or_default(),
        dry_run: request.dry_run,
        messages: selected,
        created_at: now.timestamp_micros(),
    };
    let usage = match replays
        .record_replay(&record, &copies, quota, broker.config().replay_batch)
        .await?
    {
        ReplayAdmission::Recorded(usage) => usage,
        ReplayAdmission::OverQuota(usage) => {
            return Err(over_quota(recipient, selected, quota, usage, record.created_at));
        }
    };
    let ids = copies.into_iter().map(|c| c.transaction_id).collect();
    Ok(plan.outcome(record.id, request.dry_run, ids, usage))
}
