//! Alarms (spec 5.11, 5.11.4): rules that users configure, evaluated continuously by one
//! node at a time, raised and cleared with history, and sent by email to the users who
//! subscribed. A change of state, its history entry and its notices are written in one
//! transaction (the mail outbox); the mailer sends from the outbox, retrying while the
//! mail server is unreachable, so a notice is never lost.

use std::time::Duration;

use askama::Template;
use broker_core::Broker;
use broker_core::store::{AlarmKind, AlarmRule, Mail, StoreError};
use broker_core::task::TaskHandle;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::analytics::Analytics;
use crate::error::AnalyticsError;
use crate::report::{GroupBy, Measure, ReportQuery};

/// How alarms run.
#[derive(Debug, Clone)]
pub struct AlarmConfig {
    /// This node's name in the evaluator's lease.
    pub owner: String,
    /// Time between evaluations.
    pub interval: Duration,
    /// Mail server, `smtp://[user:password@]host:port` (`smtps://` for TLS, or
    /// `?tls=required` for STARTTLS); without it notices wait in the outbox.
    pub smtp_url: Option<String>,
    /// Sender address.
    pub mail_from: String,
    /// Base of links in notices.
    pub portal_url: String,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        Self {
            owner: format!("node-{}", uuid::Uuid::new_v4().simple()),
            interval: Duration::from_secs(15),
            smtp_url: None,
            mail_from: "DIP alarms <alarms@dip.invalid>".into(),
            portal_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// An alarm failure.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reports failed.
    #[error(transparent)]
    Analytics(#[from] AnalyticsError),
    /// The mail settings are wrong.
    #[error("mail: {0}")]
    Mail(String),
}

/// The notice template (`templates/alarm.txt`).
#[derive(Template)]
#[template(path = "alarm.txt")]
struct Notice<'a> {
    name: &'a str,
    state: &'a str,
    at: String,
    watches: String,
    observed: &'a str,
    link: String,
    environment: &'a str,
}

/// What a rule watches, in words.
pub fn describe(rule: &AlarmRule) -> String {
    let on = match (rule.interface_id.as_str(), rule.recipient_dip_id.as_str()) {
        ("", "") => String::new(),
        (c, "") => format!(" on {c}"),
        ("", r) => format!(" for {r}"),
        (c, r) => format!(" on {c} for {r}"),
    };
    let window = minutes(rule.window_secs);
    match rule.kind {
        AlarmKind::Latency => format!(
            "90th percentile end-to-end latency{on} above {} ms over {window}",
            rule.threshold
        ),
        AlarmKind::DeadLetters => format!("{} or more messages dead-lettered{on} within {window}", rule.threshold),
        AlarmKind::EndpointFailing => format!("an endpoint{on} failing for more than {} s", rule.threshold),
        AlarmKind::CertificateExpiring => format!("a certificate{on} expiring within {} days", rule.threshold),
    }
}

fn minutes(secs: i64) -> String {
    if secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else {
        format!("{} min", secs / 60)
    }
}

fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Evaluates rules and sends notices.
pub struct Alarms {
    broker: Broker,
    analytics: Analytics,
    config: AlarmConfig,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Alarms {
    /// Alarms of `broker`, observed in `analytics`, as `config` says.
    pub fn new(broker: Broker, analytics: Analytics, config: AlarmConfig) -> Result<Self, AlarmError> {
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| AlarmError::Mail(format!("SMTP URL: {e}")))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => None,
        };
        config
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| AlarmError::Mail(format!("sender address: {e}")))?;
        Ok(Self {
            broker,
            analytics,
            config,
            smtp,
        })
    }

    /// Whether the rule holds now, and what was seen.
    pub async fn observe(&self, rule: &AlarmRule, now: i64) -> Result<(bool, String), AlarmError> {
        let matches_recipient = |dip: &str| {
            (rule.recipient_dip_id.is_empty() || rule.recipient_dip_id == dip)
                && rule.owner_dip_id.as_deref().is_none_or(|o| o == dip)
        };
        match rule.kind {
            AlarmKind::Latency | AlarmKind::DeadLetters => {
                let window = rule.window_secs.clamp(60, 86_400);
                let query = ReportQuery {
                    from: now - window * 1_000_000,
                    to: now + 1,
                    interval_secs: window,
                    channels: (!rule.interface_id.is_empty())
                        .then(|| rule.interface_id.clone())
                        .into_iter()
                        .collect(),
                    senders: vec![],
                    recipients: (!rule.recipient_dip_id.is_empty())
                        .then(|| rule.recipient_dip_id.clone())
                        .into_iter()
                        .collect(),
                    group_by: GroupBy::None,
                    participant: rule.owner_dip_id.clone(),
                };
                let report = self.analytics.totals(&query).await?;
                if rule.kind == AlarmKind::DeadLetters {
                    let n = report.total("").dead_lettered;
                    return Ok((
                        n >= rule.threshold.max(1),
                        format!("{n} dead-lettered in the last {}", minutes(window)),
                    ));
                }
                Ok(match report.latency_total("", Measure::EndToEnd) {
                    Some(l) if l.count > 0 => (
                        l.p90_us > rule.threshold * 1000,
                        format!(
                            "90th percentile {} ms (max {} ms) over {} messages in the last {}",
                            l.p90_us / 1000,
                            l.max_us / 1000,
                            l.count,
                            minutes(window)
                        ),
                    ),
                    _ => (false, format!("no deliveries in the last {}", minutes(window))),
                })
            }
            AlarmKind::EndpointFailing => {
                let registry = self.broker.registry();
                let queues: Vec<String> = self
                    .broker
                    .queues()
                    .queue_ids()
                    .await?
                    .into_iter()
                    .filter(|q| registry.endpoint(q).is_some_and(|e| matches_recipient(&e.dip_id)))
                    .collect();
                let failing: Vec<String> = self
                    .broker
                    .queues()
                    .queue_health(&queues)
                    .await?
                    .into_iter()
                    .filter_map(|h| {
                        let since = h.failing_since?;
                        (now - since >= rule.threshold * 1_000_000).then(|| {
                            format!(
                                "{} failing since {} UTC ({})",
                                h.queue_id,
                                utc(since),
                                h.last_outcome.unwrap_or_default()
                            )
                        })
                    })
                    .collect();
                Ok(if failing.is_empty() {
                    (false, "every endpoint answering".into())
                } else {
                    (true, failing.join("; "))
                })
            }
            AlarmKind::CertificateExpiring => {
                let horizon = now + rule.threshold * 86_400_000_000;
                let expiring: Vec<String> = self
                    .broker
                    .directory()
                    .certificates()
                    .await?
                    .into_iter()
                    .filter(|c| c.revoked_at.is_none() && c.not_after <= horizon && matches_recipient(&c.dip_id))
                    .map(|c| format!("{} of {} expires {} UTC", c.subject, c.dip_id, utc(c.not_after)))
                    .collect();
                Ok(if expiring.is_empty() {
                    (false, "no certificate expiring".into())
                } else {
                    (true, expiring.join("; "))
                })
            }
        }
    }

    /// The notices for a change of `rule` to `raised`: one per subscriber with an email
    /// address who may still see the rule.
    async fn notices(&self, rule: &AlarmRule, raised: bool, at: i64, observed: &str) -> Result<Vec<Mail>, AlarmError> {
        let state = if raised { "raised" } else { "cleared" };
        let notice = Notice {
            name: &rule.name,
            state,
            at: utc(at),
            watches: describe(rule),
            observed,
            link: format!("{}/alarms", self.config.portal_url.trim_end_matches('/')),
            environment: &self.broker.config().environment,
        };
        let body = notice.render().map_err(|e| AlarmError::Mail(e.to_string()))?;
        let subject = format!(
            "[DIP {}] {}: {}",
            self.broker.config().environment,
            if raised { "RAISED" } else { "cleared" },
            rule.name
        );
        let mut mails = Vec::new();
        for user_id in self.broker.alarms().alarm_subscribers(&rule.id).await? {
            let Some(user) = self.broker.accounts().user(&user_id).await? else {
                continue;
            };
            if user.disabled || user.email.is_empty() || !sees(user.dip_id.as_deref(), rule) {
                continue;
            }
            mails.push(Mail {
                id: 0,
                recipient: user.email,
                subject: subject.clone(),
                body: body.clone(),
                attempts: 0,
            });
        }
        Ok(mails)
    }

    /// Evaluates every enabled rule once; returns how many changed state.
    pub async fn evaluate(&self, now: i64) -> Result<usize, AlarmError> {
        let mut changed = 0;
        for rule in self
            .broker
            .alarms()
            .alarm_rules()
            .await?
            .into_iter()
            .filter(|r| r.enabled)
        {
            let (raise, observed) = match self.observe(&rule, now).await {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::warn!(rule = %rule.id, error = %e, "alarm not evaluated");
                    continue;
                }
            };
            let mails = if raise != rule.raised_at.is_some() {
                self.notices(&rule, raise, now, &observed).await?
            } else {
                vec![]
            };
            if self
                .broker
                .alarms()
                .alarm_evaluated(&rule.id, raise, now, &observed, &mails)
                .await?
            {
                changed += 1;
                tracing::info!(rule = %rule.name, raised = raise, %observed, "alarm changed");
            }
        }
        Ok(changed)
    }

    /// Sends the notices that are due; returns how many went.
    pub async fn send_due(&self, now: i64) -> Result<usize, AlarmError> {
        let Some(smtp) = &self.smtp else { return Ok(0) };
        let mut sent = 0;
        for mail in self.broker.alarms().mail_due(now, 50).await? {
            match self.send(smtp, &mail).await {
                Ok(()) => {
                    self.broker
                        .alarms()
                        .mail_sent(mail.id, broker_core::clock::now_micros())
                        .await?;
                    sent += 1;
                }
                Err(e) => {
                    // 5 s, 10 s, 20 s … up to an hour between attempts.
                    let wait = 5_000_000_i64 << mail.attempts.clamp(0, 10);
                    let retry_at = now + wait.min(3_600_000_000);
                    tracing::warn!(mail = mail.id, error = %e, "notice not sent; will retry");
                    self.broker.alarms().mail_failed(mail.id, &e, retry_at).await?;
                }
            }
        }
        Ok(sent)
    }

    async fn send(&self, smtp: &AsyncSmtpTransport<Tokio1Executor>, mail: &Mail) -> Result<(), String> {
        let message = Message::builder()
            .from(self.config.mail_from.parse().map_err(|e| format!("sender: {e}"))?)
            .to(mail.recipient.parse().map_err(|e| format!("recipient: {e}"))?)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| e.to_string())?;
        smtp.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Evaluates and sends every `interval` until `shutdown`, while holding the lease.
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut quiet = false;
        loop {
            let now = broker_core::clock::now_micros();
            let lease = i64::try_from((self.config.interval * 3).as_micros()).unwrap_or(i64::MAX / 2);
            match self
                .broker
                .store()
                .claim_worker("alarms", &self.config.owner, now, now + lease)
                .await
            {
                Ok(true) => {
                    let result = match self.evaluate(now).await {
                        Ok(_) => self.send_due(now).await,
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(_) => quiet = false,
                        Err(e) if !quiet => {
                            tracing::warn!(error = %e, "alarms: evaluation failed; will retry");
                            quiet = true;
                        }
                        Err(_) => {}
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "alarms: cannot take the lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Starts evaluating alarms and sending notices.
pub fn start(broker: Broker, analytics: Analytics, config: AlarmConfig) -> Result<TaskHandle, AlarmError> {
    if config.smtp_url.is_none() {
        tracing::info!("no SMTP server configured (--smtp-url): alarm notices wait in the mail outbox");
    }
    let alarms = Alarms::new(broker, analytics, config)?;
    Ok(TaskHandle::spawn(|shutdown| alarms.run(shutdown)))
}

/// Whether a user of `dip_id` (`None`: operator staff, who see every rule) sees `rule`.
pub fn sees(dip_id: Option<&str>, rule: &AlarmRule) -> bool {
    dip_id.is_none() || rule.owner_dip_id.as_deref() == dip_id
}

/// The portal's alarm actions, checked against the actor's rights.
pub mod service {
    use std::collections::BTreeMap;

    use broker_core::Broker;
    use broker_core::store::{AlarmKind, AlarmRule, AuditEntry};

    use dip_admin::types::{Actor, AppError, PortalRole};

    use super::{describe, sees, utc};
    use crate::alarm_views::{AlarmForm, AlarmHistoryRow, AlarmRow, AlarmsView};
    use crate::analytics::Analytics;
    use crate::dashboard::named_participants;

    /// How far back a participant's counterparties are looked for, to offer them as a
    /// rule's recipient.
    const COUNTERPARTY_WINDOW_US: i64 = 30 * 86_400_000_000;

    /// May create rules: staff who administer or analyse, any of a participant's users
    /// but a read-only auditor.
    pub fn manages_alarms(actor: &Actor) -> bool {
        if actor.is_operator() {
            actor.has(PortalRole::PlatformAdmin) || actor.has(PortalRole::Analyst)
        } else {
            actor.roles.iter().any(|r| *r != PortalRole::Auditor)
        }
    }

    fn may_delete(actor: &Actor, rule: &AlarmRule) -> bool {
        manages_alarms(actor)
            && sees(actor.dip_id.as_deref(), rule)
            && (actor.is_platform_admin() || rule.owner_dip_id == actor.dip_id)
    }

    async fn rule_for(broker: &Broker, actor: &Actor, id: &str) -> Result<AlarmRule, AppError> {
        broker
            .alarms()
            .alarm_rules()
            .await?
            .into_iter()
            .find(|r| r.id == id && sees(actor.dip_id.as_deref(), r))
            .ok_or_else(|| AppError::NotFound(format!("alarm {id}")))
    }

    async fn audit(broker: &Broker, actor: &Actor, action: &str, target: &str, detail: serde_json::Value) {
        let entry = AuditEntry::now(actor.name.clone(), actor.dip_id.clone(), action, target, &detail);
        if let Err(e) = broker.accounts().append_audit(&entry).await {
            tracing::error!(error = %e, action, "audit entry not written");
        }
    }

    /// The alarms page.
    pub async fn view(broker: &Broker, analytics: &Analytics, actor: &Actor) -> Result<AlarmsView, AppError> {
        let rules: Vec<AlarmRule> = broker
            .alarms()
            .alarm_rules()
            .await?
            .into_iter()
            .filter(|r| sees(actor.dip_id.as_deref(), r))
            .collect();
        let mine = match &actor.user_id {
            Some(id) => broker.alarms().subscriptions_of(id).await?,
            None => vec![],
        };
        let names: BTreeMap<String, String> = rules.iter().map(|r| (r.id.clone(), r.name.clone())).collect();
        let history = broker
            .alarms()
            .alarm_history(None, 500)
            .await?
            .into_iter()
            .filter_map(|e| {
                names.get(&e.rule_id).map(|name| AlarmHistoryRow {
                    at: utc(e.at),
                    rule: name.clone(),
                    state: e.state,
                    detail: e.detail,
                })
            })
            .take(50)
            .collect();
        let email = match &actor.user_id {
            Some(id) => broker.accounts().user(id).await?.map(|u| u.email).unwrap_or_default(),
            None => String::new(),
        };
        let registry = broker.registry();
        let mut channels: Vec<String> = registry.catalogue.channels.keys().cloned().collect();
        channels.sort();
        let now = broker_core::clock::now_micros();
        let participants = named_participants(broker, analytics, actor, now - COUNTERPARTY_WINDOW_US, now).await?;
        Ok(AlarmsView {
            rows: rules
                .iter()
                .map(|r| AlarmRow {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    watches: describe(r),
                    scope: r.owner_dip_id.clone().unwrap_or_else(|| "platform".into()),
                    raised_since: r.raised_at.map(utc),
                    observed: r.observed.clone(),
                    evaluated: r.evaluated_at.map(utc),
                    enabled: r.enabled,
                    subscribed: mine.contains(&r.id),
                    can_delete: may_delete(actor, r),
                })
                .collect(),
            history,
            can_create: manages_alarms(actor),
            email,
            channels,
            participants,
        })
    }

    /// Creates a rule in the actor's scope.
    pub async fn create(
        broker: &Broker,
        analytics: &Analytics,
        actor: &Actor,
        form: AlarmForm,
    ) -> Result<AlarmRule, AppError> {
        if !manages_alarms(actor) {
            return Err(AppError::Forbidden);
        }
        let mut errors = BTreeMap::new();
        let name = form.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            errors.insert("name".to_owned(), "Give a name of up to 100 characters.".to_owned());
        }
        let kind = AlarmKind::parse(&form.kind);
        if kind.is_none() {
            errors.insert("kind".to_owned(), "Choose what the alarm watches.".to_owned());
        }
        let registry = broker.registry();
        let channel = form.channel.trim().to_owned();
        if !channel.is_empty() && registry.channel(&channel).is_none() {
            errors.insert("channel".to_owned(), format!("There is no channel {channel}."));
        }
        let recipient = form.recipient.trim().to_owned();
        // A participant's user may name only participants its views may show; any other
        // is answered as unknown, so that the directory cannot be probed.
        let now = broker_core::clock::now_micros();
        let known = !recipient.is_empty()
            && registry.participant(&recipient).is_some()
            && (actor.dip_id.is_none()
                || named_participants(broker, analytics, actor, now - COUNTERPARTY_WINDOW_US, now)
                    .await?
                    .iter()
                    .any(|(id, _)| *id == recipient));
        if !recipient.is_empty() && !known {
            errors.insert("recipient".to_owned(), format!("There is no participant {recipient}."));
        }
        let threshold = form
            .threshold
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|t| (1..=1_000_000_000).contains(t));
        if threshold.is_none() {
            errors.insert("threshold".to_owned(), "Give a whole number above zero.".to_owned());
        }
        let window = form
            .window_minutes
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|w| (1..=1440).contains(w));
        if window.is_none() {
            errors.insert("window_minutes".to_owned(), "Give 1 to 1440 minutes.".to_owned());
        }
        let (Some(kind), Some(threshold), Some(window), true) = (kind, threshold, window, errors.is_empty()) else {
            let values = BTreeMap::from([
                ("name".to_owned(), form.name.clone()),
                ("kind".to_owned(), form.kind.clone()),
                ("channel".to_owned(), form.channel.clone()),
                ("recipient".to_owned(), form.recipient.clone()),
                ("threshold".to_owned(), form.threshold.clone()),
                ("window_minutes".to_owned(), form.window_minutes.clone()),
            ]);
            return Err(AppError::Invalid {
                message: "The alarm was not created: see the fields marked.".into(),
                fields: errors,
                values,
            });
        };
        let rule = AlarmRule {
            id: format!("alarm-{}", uuid::Uuid::new_v4().simple()),
            name,
            kind,
            interface_id: channel,
            recipient_dip_id: recipient,
            threshold,
            window_secs: window * 60,
            owner_dip_id: actor.dip_id.clone(),
            created_by: actor.name.clone(),
            enabled: true,
            raised_at: None,
            observed: String::new(),
            evaluated_at: None,
            created_at: broker_core::clock::now_micros(),
        };
        broker.alarms().put_alarm_rule(&rule).await?;
        // The creator receives it unless they say otherwise.
        if let Some(user) = &actor.user_id {
            broker.alarms().set_alarm_subscription(&rule.id, user, true).await?;
        }
        audit(
            broker,
            actor,
            "alarm.create",
            &rule.id,
            serde_json::to_value(&rule).unwrap_or_default(),
        )
        .await;
        Ok(rule)
    }

    /// Deletes a rule.
    pub async fn delete(broker: &Broker, actor: &Actor, id: &str) -> Result<String, AppError> {
        let rule = rule_for(broker, actor, id).await?;
        if !may_delete(actor, &rule) {
            return Err(AppError::Forbidden);
        }
        broker.alarms().delete_alarm_rule(id).await?;
        audit(
            broker,
            actor,
            "alarm.delete",
            id,
            serde_json::json!({ "name": rule.name }),
        )
        .await;
        Ok(rule.name)
    }

    /// Subscribes the actor to a rule's notices, or not.
    pub async fn subscribe(broker: &Broker, actor: &Actor, id: &str, on: bool) -> Result<String, AppError> {
        let rule = rule_for(broker, actor, id).await?;
        let user = actor.user_id.as_deref().ok_or(AppError::Forbidden)?;
        if on {
            let email = broker.accounts().user(user).await?.map(|u| u.email);
            if email.is_none_or(|e| e.is_empty()) {
                return Err(AppError::field("email", "Give your email address first."));
            }
        }
        broker.alarms().set_alarm_subscription(id, user, on).await?;
        Ok(rule.name)
    }

    /// Sets the actor's own email address (where notices go).
    pub async fn set_email(broker: &Broker, actor: &Actor, email: &str) -> Result<(), AppError> {
        let email = email.trim();
        let valid = email.is_empty() || email.parse::<lettre::Address>().is_ok();
        if !valid {
            return Err(AppError::Invalid {
                message: "Not an email address.".into(),
                fields: BTreeMap::from([("email".to_owned(), "Not an email address.".to_owned())]),
                values: BTreeMap::from([("email".to_owned(), email.to_owned())]),
            });
        }
        let id = actor.user_id.as_deref().ok_or(AppError::Forbidden)?;
        let mut user = broker.accounts().user(id).await?.ok_or(AppError::SignInRequired)?;
        user.email = email.to_owned();
        user.updated_at = broker_core::clock::now_micros();
        broker.accounts().update_user(&user).await?;
        audit(
            broker,
            actor,
            "user.email",
            &user.username,
            serde_json::json!({ "email": email }),
        )
        .await;
        Ok(())
    }
}
