//! Demo traffic for `dip demo`: simulated systems of the demo participants, so that a new
//! user sees live dashboards within a minute.
//!
//! Each system answers its webhooks on a loopback port (most promptly; some slowly or with
//! errors, so that retries, returns to sender and latency show) and reacts to what it
//! receives as a real participant's system would: the change-of-service flow of the
//! spec's Figure 15 (IF-031 → IF-032 and IF-033 → IF-034 → IF-036 → IF-041), plus a
//! trickle of IF-021 consumption data. Messages go in through `Broker::ingest`, exactly as
//! on the wire but in-process, so the simulation works whether or not the API uses TLS.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use broker_core::Broker;
use broker_core::ingest::{IngestReply, ItemResult, ItemStatus};
use broker_core::model::{Endpoint, Principal};
use broker_core::seed::DirectoryData;
use chrono::{Datelike, NaiveDate, SecondsFormat, Utc};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How much traffic to make.
#[derive(Debug, Clone)]
pub struct Config {
    /// A supplier starts a change-of-service flow this often.
    pub flow_every: Duration,
    /// A data service sends a day of consumption for one MPAN this often.
    pub consumption_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            flow_every: Duration::from_secs(2),
            consumption_every: Duration::from_secs(1),
        }
    }
}

/// Reactions to deliveries running at once; beyond it a reaction is skipped, so that a
/// stalled store cannot pile up tasks.
const MAX_REACTIONS: u32 = 64;
/// Open appointment requests a registration service remembers.
const MAX_OPEN_REQUESTS: usize = 1024;
/// Failed sends in a row after which the simulation warns (once per streak).
const WARN_AFTER_FAILURES: u32 = 3;

/// The running simulation.
pub struct Simulation {
    sim: Arc<Sim>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The endpoints as they were before they were pointed at the systems.
    restore: Vec<Endpoint>,
}

/// Starts the simulated systems with the default amount of traffic.
pub async fn start(broker: Broker, demo: &DirectoryData) -> anyhow::Result<Simulation> {
    start_with(broker, demo, Config::default()).await
}

/// Starts a webhook receiver for every demo participant, points its endpoints without a
/// URL (pull) at it, and starts the flows.
pub async fn start_with(broker: Broker, demo: &DirectoryData, config: Config) -> anyhow::Result<Simulation> {
    let (shutdown, stopped) = watch::channel(false);
    let sim = Arc::new(Sim::new(broker.clone(), demo, stopped.clone()));
    let mut tasks = JoinSet::new();
    let mut bases: HashMap<String, String> = HashMap::new();
    for member in sim.dir.members.values() {
        let system = Arc::new(System {
            sim: sim.clone(),
            behaviour: behaviour(&member.dip_id),
            me: member.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a simulated participant's webhook")?;
        bases.insert(member.dip_id.clone(), format!("http://{}", listener.local_addr()?));
        let app = Router::new().route("/dip/{endpoint}", post(receive)).with_state(system);
        let mut stop = stopped.clone();
        let dip_id = member.dip_id.clone();
        tasks.spawn(async move {
            let stop = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                tracing::warn!(%dip_id, error = %e, "simulated webhook receiver failed");
            }
        });
    }
    let mut restore = Vec::new();
    for endpoint in broker.directory().endpoints().await? {
        // An endpoint someone gave a URL is theirs: only pull endpoints are taken over.
        let Some(base) = bases.get(&endpoint.dip_id).filter(|_| endpoint.url.is_none()) else {
            continue;
        };
        let hooked = Endpoint {
            url: Some(format!("{base}/dip/{}", endpoint.name)),
            ..endpoint.clone()
        };
        broker.directory().put_endpoint(&hooked).await?;
        restore.push(endpoint);
    }
    broker.reload().await?;

    let flows = sim.clone();
    tasks.spawn(every(config.flow_every, stopped.clone(), move || {
        let sim = flows.clone();
        async move { sim.start_flow().await }
    }));
    let consumption = sim.clone();
    tasks.spawn(every(config.consumption_every, stopped, move || {
        let sim = consumption.clone();
        async move { sim.send_consumption().await }
    }));
    tracing::info!(
        systems = bases.len(),
        webhooks = restore.len(),
        flow_every = ?config.flow_every,
        consumption_every = ?config.consumption_every,
        "traffic simulation started"
    );
    Ok(Simulation {
        sim,
        shutdown,
        tasks,
        restore,
    })
}

impl Simulation {
    /// Stops the flows and the receivers (answering requests in flight), waits for the
    /// reactions, and puts the endpoints back as they were, so that they do not point at
    /// ports nobody listens on.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Reactions end at the signal; the last one gives its permit back.
        let _ = self.sim.reactions.acquire_many(MAX_REACTIONS).await;
        for endpoint in &self.restore {
            if let Err(e) = self.sim.broker.directory().put_endpoint(endpoint).await {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot restore a demo endpoint");
            }
        }
        if let Err(e) = self.sim.broker.reload().await {
            tracing::warn!(error = %e, "cannot reload the registry after the traffic simulation");
        }
        tracing::info!("traffic simulation stopped");
    }
}

impl crate::serve::Companion for Simulation {
    fn stop(self) -> impl Future<Output = ()> {
        Simulation::stop(self)
    }
}

/// Runs `tick` every `period` until the shutdown signal.
async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, tick: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => tick().await,
            _ = shutdown.changed() => return,
        }
    }
}

/// How a system answers its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// 200 within a few milliseconds.
    Prompt,
    /// 200 after 0.5–4 s: a system under load, so that the objective "90% within 3 s"
    /// suffers a little.
    Slow,
    /// 503 one time in ten: the platform retries.
    Flaky,
    /// 400 with an error one time in a hundred: the message goes back to its sender.
    Picky,
}

/// Which demo system behaves how (DIP IDs of broker-core/demo/demo.toml).
fn behaviour(dip_id: &str) -> Behaviour {
    match dip_id {
        // Ridgeway Advanced Metering and Tidewater Advanced Data: they get few messages
        // (IF-033 and IF-036 of flows that appoint them), so their queues keep up.
        "1000000033" | "1000000043" => Behaviour::Slow,
        // Central Settlement Services: the MDS gets every IF-021, so retries show soon.
        "1000000051" => Behaviour::Flaky,
        // Aurora Energy Supply: the supplier of most demo MPANs.
        "1000000001" => Behaviour::Picky,
        _ => Behaviour::Prompt,
    }
}

/// What a system answers to one webhook call.
enum Answer {
    Accept,
    Unavailable,
    Reject,
}

impl Behaviour {
    /// How long the system takes, and what it answers.
    fn answer(self) -> (Duration, Answer) {
        let mut rng = rand::rng();
        let ms = Duration::from_millis;
        match self {
            Self::Slow => (ms(rng.random_range(500..=4_000)), Answer::Accept),
            Self::Flaky if rng.random_bool(0.1) => (ms(rng.random_range(1..=5)), Answer::Unavailable),
            Self::Picky if rng.random_bool(0.01) => (ms(rng.random_range(1..=5)), Answer::Reject),
            _ => (ms(rng.random_range(1..=15)), Answer::Accept),
        }
    }
}

/// One demo participant's system.
struct System {
    sim: Arc<Sim>,
    me: Member,
    behaviour: Behaviour,
}

/// The webhook (`WIRE.md`, outbound): a JSON array of items; 2xx accepts.
async fn receive(State(system): State<Arc<System>>, body: Bytes) -> Response {
    let (delay, answer) = system.behaviour.answer();
    tokio::time::sleep(delay).await;
    let refuse = |code: &str, message: &str| {
        let errors = json!({ "errors": [{ "code": code, "path": "/payload/CustomBlock", "message": message }] });
        (StatusCode::BAD_REQUEST, axum::Json(errors)).into_response()
    };
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(item @ Value::Object(_)) => vec![item],
        _ => return refuse("INVALID_JSON", "the body is not a JSON array of items"),
    };
    match answer {
        Answer::Unavailable => return (StatusCode::SERVICE_UNAVAILABLE, "busy, try again").into_response(),
        Answer::Reject => {
            return refuse(
                "BUSINESS_VALIDATION",
                "the data failed the recipient's business validation (simulated)",
            );
        }
        Answer::Accept => {}
    }
    for item in &items {
        if let Some(delivery) = Delivery::read(item) {
            system.clone().on_delivery(delivery);
        }
    }
    StatusCode::OK.into_response()
}

impl System {
    /// Reacts, as the participant's system would, after some thinking time.
    fn on_delivery(self: Arc<Self>, d: Delivery) {
        let me = &self.me;
        let reacts = match d.interface.as_str() {
            "IF-031" | "IF-034" => me.holds("REGS"),
            "IF-033" => true,
            "IF-036" => d.field("serviceProviderDIPID") == Some(me.dip_id.as_str()),
            _ => false,
        };
        if !reacts {
            return;
        }
        let sim = self.sim.clone();
        sim.react(async move {
            tokio::time::sleep(think()).await;
            let sim = &self.sim;
            let me = &self.me;
            match d.interface.as_str() {
                "IF-031" => {
                    let accept = !rand::rng().random_bool(0.03);
                    let Some((response, request)) = regs_answers(me, &d, accept) else {
                        return;
                    };
                    sim.send(&response).await;
                    if let Some(request) = request {
                        // Recorded first: the service may answer before the send returns.
                        if let Some(workflow) = &d.correlation {
                            sim.remember(workflow, d.custom.clone());
                        }
                        sim.send(&request).await;
                    }
                }
                "IF-033" => {
                    let accept = !rand::rng().random_bool(0.03);
                    if let Some(response) = service_answer(me, &d, accept) {
                        sim.send(&response).await;
                    }
                }
                "IF-034" => {
                    let request = d.correlation.as_deref().and_then(|w| sim.recall(w));
                    if let Some(notice) = request.and_then(|r| notification(me, &d, &r)) {
                        sim.send(&notice).await;
                    }
                }
                "IF-036" => {
                    if let Some(reading) = reading(me, &d) {
                        sim.send(&reading).await;
                    }
                }
                _ => {}
            }
        });
    }
}

/// A participant's processing time before it answers a business message.
fn think() -> Duration {
    Duration::from_millis(rand::rng().random_range(100..=800))
}

/// What the simulation knows of a demo participant.
#[derive(Debug, Clone)]
struct Member {
    dip_id: String,
    mpid: String,
    roles: Vec<String>,
    /// The DCP it connects through, if it nominated one.
    dcp: Option<String>,
}

impl Member {
    fn holds(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The demo directory as the simulated systems use it.
struct Directory {
    members: HashMap<String, Member>,
    /// (MPAN, role, effective from, DIP ID).
    appointments: Vec<(String, String, String, Option<String>)>,
    /// MPANs of the appointment table, sorted.
    mpans: Vec<String>,
}

impl Directory {
    fn new(demo: &DirectoryData) -> Self {
        let members = demo
            .participants
            .iter()
            .map(|p| {
                let member = Member {
                    dip_id: p.dip_id.clone(),
                    mpid: p.mpid.clone(),
                    roles: p.roles.clone(),
                    dcp: p.nominated_dcps.first().cloned(),
                };
                (p.dip_id.clone(), member)
            })
            .collect();
        let appointments = demo
            .appointments
            .iter()
            .map(|a| {
                (
                    a.mpan.clone(),
                    a.role.clone(),
                    a.effective_from.clone(),
                    a.dip_id.clone(),
                )
            })
            .collect::<Vec<_>>();
        let mut mpans: Vec<String> = appointments.iter().map(|a| a.0.clone()).collect();
        mpans.sort();
        mpans.dedup();
        Self {
            members,
            appointments,
            mpans,
        }
    }

    /// Who holds `role` for `mpan` on `date` (ISO dates compare as text).
    fn appointed(&self, mpan: &str, role: &str, date: NaiveDate) -> Option<&Member> {
        let date = date.to_string();
        self.appointments
            .iter()
            .filter(|a| a.0 == mpan && a.1 == role && a.2 <= date)
            .max_by(|a, b| a.2.cmp(&b.2))
            .and_then(|a| a.3.as_deref())
            .and_then(|d| self.members.get(d))
    }

    /// Participants holding `role`, in DIP ID order.
    fn holders(&self, role: &str) -> Vec<&Member> {
        let mut all: Vec<&Member> = self.members.values().filter(|m| m.holds(role)).collect();
        all.sort_by(|a, b| a.dip_id.cmp(&b.dip_id));
        all
    }
}

/// One message a simulated system sends.
#[derive(Debug, Clone)]
struct Msg {
    interface: &'static str,
    event: &'static str,
    sender: Member,
    role: String,
    mpan: String,
    correlation: Option<String>,
    targets: Vec<String>,
    custom: Value,
}

impl Msg {
    fn new(
        interface: &'static str,
        event: &'static str,
        sender: &Member,
        role: &str,
        mpan: &str,
        custom: Value,
    ) -> Self {
        Self {
            interface,
            event,
            sender: sender.clone(),
            role: role.to_owned(),
            mpan: mpan.to_owned(),
            correlation: None,
            targets: vec![],
            custom,
        }
    }

    /// Part of the workflow `correlation`.
    fn replying(mut self, correlation: Option<&str>) -> Self {
        self.correlation = correlation.map(str::to_owned);
        self
    }

    /// Targeted at `targets`.
    fn to(mut self, targets: &[&str]) -> Self {
        self.targets = targets.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The wire item (`WIRE.md`). A sender that nominated a DCP connects through it.
    fn item(&self, environment: &str) -> Value {
        json!({ "payload": {
            "CommonBlock": {
                "S0": { "interfaceID": self.interface, "schemaVersion": "001", "eventCode": self.event },
                "S1": {
                    "environmentTag": environment,
                    "senderUniqueReference": format!("SIM-{}-{}", self.sender.mpid, uuid::Uuid::now_v7().simple()),
                    "senderTimestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
                    "senderDIPID": self.sender.dip_id,
                    "senderRoleID": self.role,
                    "senderCorrelationID": self.correlation,
                    "DIPConnectionProviderID": self.sender.dcp,
                },
                "M0": { "MPANCore": self.mpan },
                "A0": { "primaryRecipients": self.targets },
            },
            "CustomBlock": self.custom,
        }})
    }

    fn principal(&self) -> Principal {
        match &self.sender.dcp {
            Some(dcp) => Principal::Dcp { dip_id: dcp.clone() },
            None => Principal::Participant {
                dip_id: self.sender.dip_id.clone(),
            },
        }
    }
}

/// What a system reads from a delivered item.
#[derive(Debug, Clone)]
struct Delivery {
    interface: String,
    from: String,
    correlation: Option<String>,
    mpan: String,
    custom: Value,
}

impl Delivery {
    /// `None` for items the systems do not react to: platform reports, CustomBlocks
    /// encrypted to the recipient.
    fn read(item: &Value) -> Option<Self> {
        let common = item.pointer("/payload/CommonBlock")?;
        let custom = item.pointer("/payload/CustomBlock").filter(|c| c.is_object())?;
        let mpan = custom
            .get("mpanCore")
            .or_else(|| common.pointer("/M0/MPANCore"))
            .and_then(Value::as_str)?;
        Some(Self {
            interface: common.pointer("/S0/interfaceID")?.as_str()?.to_owned(),
            from: common.pointer("/S1/senderDIPID")?.as_str()?.to_owned(),
            correlation: common
                .pointer("/D0/initialCorrelationID")
                .and_then(Value::as_str)
                .map(str::to_owned),
            mpan: mpan.to_owned(),
            custom: custom.clone(),
        })
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.custom.get(key).and_then(Value::as_str)
    }
}

fn is_metering(role: &str) -> bool {
    matches!(role, "MSS" | "MSA")
}

/// DI-050 market segment of the meter a service role looks after.
fn segment(role: &str) -> &'static str {
    match role {
        "MSA" | "ADS" => "A",
        "UMDS" => "U",
        _ => "S",
    }
}

/// The first day of the month after `day`: when a requested appointment starts.
fn next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = match day.month() {
        12 => (day.year() + 1, 1),
        m => (day.year(), m + 1),
    };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(day)
}

/// IF-031: the supplier of a demo MPAN asks its registration service to appoint a
/// metering or data service (the incumbent again, or a competitor).
fn appointment_request(dir: &Directory, today: NaiveDate, rng: &mut impl Rng) -> Option<Msg> {
    let mpan = dir.mpans.choose(rng)?;
    let supplier = dir.appointed(mpan, "SUP", today)?;
    let regs = dir.appointed(mpan, "REGS", today)?;
    // The services the MPAN's meter has: MSS and SDS for smart, MSA and ADS for advanced.
    let roles: Vec<&str> = ["MSS", "MSA", "SDS", "ADS"]
        .into_iter()
        .filter(|r| dir.appointed(mpan, r, today).is_some())
        .collect();
    let role = *roles.choose(rng)?;
    let provider = *dir.holders(role).choose(rng)?;
    let custom = json!({
        "mpanCore": mpan,
        "supplierId": supplier.mpid,
        "serviceRole": role,
        "serviceProviderId": provider.mpid,
        "serviceProviderDIPID": provider.dip_id,
        "effectiveFromDate": next_month(today).to_string(),
        "contractReference": format!("C{:09}", rng.random_range(0..1_000_000_000)),
        "marketSegment": segment(role),
    });
    Some(
        Msg::new(
            "IF-031",
            "SupplierServiceAppointmentRequest",
            supplier,
            "SUP",
            mpan,
            custom,
        )
        .to(&[&regs.dip_id]),
    )
}

/// The registration service's answers to an IF-031: IF-032 to the supplier and, when it
/// accepts, IF-033 asking the proposed service.
fn regs_answers(me: &Member, d: &Delivery, accept: bool) -> Option<(Msg, Option<Msg>)> {
    let role = d.field("serviceRole")?;
    let provider_id = d.field("serviceProviderId")?;
    let provider = d.field("serviceProviderDIPID")?;
    let from = d.field("effectiveFromDate")?;
    let mut answer = json!({
        "mpanCore": d.mpan,
        "serviceRole": role,
        "serviceProviderId": provider_id,
        "effectiveFromDate": from,
        "appointmentRequestOutcome": if accept { "A" } else { "R" },
    });
    if !accept {
        answer["rejectionReasonCode"] = json!("NOAPP");
    }
    let correlation = d.correlation.as_deref();
    let response = Msg::new(
        "IF-032",
        "SupplierServiceAppointmentResponse",
        me,
        "REGS",
        &d.mpan,
        answer,
    )
    .replying(correlation)
    .to(&[&d.from]);
    if !accept {
        return Some((response, None));
    }
    let request = json!({
        "mpanCore": d.mpan,
        "supplierId": d.field("supplierId")?,
        "serviceRole": role,
        "serviceProviderId": provider_id,
        "effectiveFromDate": from,
        "contractReference": d.field("contractReference")?,
        "marketSegment": d.field("marketSegment").unwrap_or(segment(role)),
    });
    let event = if is_metering(role) {
        "MSAppSPRequest"
    } else {
        "DSAppSPRequest"
    };
    let request = Msg::new("IF-033", event, me, "REGS", &d.mpan, request)
        .replying(correlation)
        .to(&[provider]);
    Some((response, Some(request)))
}

/// IF-034: the proposed service answers the registration service's IF-033.
fn service_answer(me: &Member, d: &Delivery, accept: bool) -> Option<Msg> {
    let role = d.field("serviceRole").filter(|r| me.holds(r))?;
    let mut answer = json!({
        "mpanCore": d.mpan,
        "serviceRole": role,
        "serviceProviderId": me.mpid,
        "effectiveFromDate": d.field("effectiveFromDate")?,
        "appointmentRequestOutcome": if accept { "A" } else { "R" },
    });
    if !accept {
        answer["rejectionReasonCode"] = json!("NOCAP");
    }
    let event = if is_metering(role) {
        "MSAppSPResponse"
    } else {
        "DSAppSPResponse"
    };
    Some(
        Msg::new("IF-034", event, me, role, &d.mpan, answer)
            .replying(d.correlation.as_deref())
            .to(&[&d.from]),
    )
}

/// IF-036: once the service accepted (IF-034), the registration service notifies the
/// appointment of `request` (the supplier's IF-031): to the service, and by MPAN lookup
/// to the supplier and the distributor.
fn notification(me: &Member, d: &Delivery, request: &Value) -> Option<Msg> {
    let text = |key: &str| request.get(key).and_then(Value::as_str);
    let provider = text("serviceProviderDIPID").filter(|p| *p == d.from)?;
    if d.field("appointmentRequestOutcome") != Some("A") {
        return None;
    }
    let role = text("serviceRole")?;
    let custom = json!({
        "mpanCore": d.mpan,
        "supplierId": text("supplierId")?,
        "serviceRole": role,
        "serviceProviderId": text("serviceProviderId")?,
        "serviceProviderDIPID": provider,
        "effectiveFromDate": d.field("effectiveFromDate")?,
        "contractReference": text("contractReference")?,
        "marketSegment": text("marketSegment").unwrap_or(segment(role)),
        "energisationStatus": "E",
    });
    Some(
        Msg::new("IF-036", "ServiceAppointmentNotification", me, "REGS", &d.mpan, custom)
            .replying(d.correlation.as_deref())
            .to(&[provider]),
    )
}

/// IF-041: the newly appointed metering or data service reads the meter; the reading
/// reaches the supplier by MPAN lookup.
fn reading(me: &Member, d: &Delivery) -> Option<Msg> {
    let role = d
        .field("serviceRole")
        .filter(|r| matches!(*r, "MSS" | "MSA" | "SDS" | "ADS") && me.holds(r))?;
    let serial = format!("{}{}", segment(role), d.mpan.get(4..).unwrap_or(&d.mpan));
    // A register that advances about 9 kWh a day, from a start that differs per MPAN.
    let start = d.mpan.parse::<u64>().unwrap_or(0) % 9_000;
    let days = (Utc::now().timestamp() - 1_704_067_200) as f64 / 86_400.0;
    let value = ((start as f64 + days * 9.3) * 10.0).round() / 10.0;
    let custom = json!({
        "mpanCore": d.mpan,
        "meterSerialNumber": serial,
        "readingDateTime": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "readingReason": "ROU",
        "readingMethod": "R",
        "registerReadings": [{ "registerId": "1", "readingValue": value }],
    });
    Some(Msg::new("IF-041", "CumulativeMeterReading", me, role, &d.mpan, custom).replying(d.correlation.as_deref()))
}

/// IF-021: the data service of a demo MPAN sends the consumption of `day` (always to the
/// MDS, by MPAN lookup to supplier and distributor); a resend is a revision.
fn consumption(
    dir: &Directory,
    day: NaiveDate,
    revision: impl FnOnce(&str) -> bool,
    rng: &mut impl Rng,
) -> Option<Msg> {
    let mpan = dir.mpans.choose(rng)?;
    let (role, service) = ["SDS", "ADS"]
        .into_iter()
        .find_map(|r| dir.appointed(mpan, r, day).map(|m| (r, m)))?;
    let scale = rng.random_range(0.6..1.4);
    let gauss = |x: f64, mu: f64, sigma: f64| (-((x - mu) / sigma).powi(2) / 2.0).exp();
    let periods: Vec<Value> = (1..=48)
        .map(|p: i32| {
            // A household's day: a morning bump and an evening peak.
            let hour = f64::from(p - 1) / 2.0;
            let shape = 0.2 + 0.3 * gauss(hour, 8.0, 1.5) + 0.7 * gauss(hour, 18.5, 2.0);
            let kwh = (shape * scale * rng.random_range(0.85..1.15) * 1000.0).round() / 1000.0;
            let quality = if rng.random_bool(0.02) { "E" } else { "A" };
            json!({ "period": p, "kWh": kwh, "qualityFlag": quality })
        })
        .collect();
    let custom = json!({
        "mpanCore": mpan,
        "settlementDate": day.to_string(),
        "measurementQuantityId": "AI",
        "dataServiceId": service.mpid,
        "dataSubmissionType": if revision(mpan) { "R" } else { "O" },
        "periods": periods,
    });
    Some(Msg::new(
        "IF-021",
        "UTCSettlementPeriodConsumption",
        service,
        role,
        mpan,
        custom,
    ))
}

/// What the simulated systems share.
struct Sim {
    broker: Broker,
    environment: String,
    dir: Directory,
    reactions: Arc<Semaphore>,
    /// The registration services' open appointment requests (IF-031 CustomBlocks) by
    /// workflow, until the service answers (IF-034); the oldest are forgotten first.
    requests: Mutex<(HashMap<String, Value>, VecDeque<String>)>,
    /// (MPAN, day) whose consumption was sent.
    sent_days: Mutex<HashSet<(String, NaiveDate)>>,
    /// Sends that failed in a row.
    failures: AtomicU32,
    shutdown: watch::Receiver<bool>,
}

impl Sim {
    fn new(broker: Broker, demo: &DirectoryData, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            environment: broker.config().environment.clone(),
            broker,
            dir: Directory::new(demo),
            reactions: Arc::new(Semaphore::new(MAX_REACTIONS as usize)),
            requests: Mutex::default(),
            sent_days: Mutex::default(),
            failures: AtomicU32::new(0),
            shutdown,
        }
    }

    async fn start_flow(&self) {
        let msg = appointment_request(&self.dir, Utc::now().date_naive(), &mut rand::rng());
        if let Some(msg) = msg
            && let Some(result) = self.send(&msg).await
        {
            tracing::debug!(workflow = ?result.initial_correlation_id, mpan = %msg.mpan, "change of service started");
        }
    }

    async fn send_consumption(&self) {
        let Some(day) = Utc::now().date_naive().pred_opt() else {
            return;
        };
        let revision = |mpan: &str| {
            let mut sent = self.sent_days.lock().unwrap_or_else(|e| e.into_inner());
            sent.retain(|(_, d)| *d >= day);
            !sent.insert((mpan.to_owned(), day))
        };
        let msg = consumption(&self.dir, day, revision, &mut rand::rng());
        if let Some(msg) = msg {
            self.send(&msg).await;
        }
    }

    /// Runs a reaction in the background unless too many run already (then it is
    /// skipped: the demo sheds load rather than queueing it). It ends at shutdown.
    fn react(&self, reaction: impl Future<Output = ()> + Send + 'static) {
        let Ok(permit) = self.reactions.clone().try_acquire_owned() else {
            tracing::debug!("simulated systems busy: a reaction is skipped");
            return;
        };
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = reaction => {}
                _ = shutdown.changed() => {}
            }
        });
    }

    fn remember(&self, workflow: &str, request: Value) {
        let mut guard = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let (open, order) = &mut *guard;
        open.insert(workflow.to_owned(), request);
        order.push_back(workflow.to_owned());
        while order.len() > MAX_OPEN_REQUESTS {
            if let Some(old) = order.pop_front() {
                open.remove(&old);
            }
        }
    }

    fn recall(&self, workflow: &str) -> Option<Value> {
        let mut guard = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(workflow)
    }

    /// Sends one message as its sender (or its DCP); the result when it is accepted.
    async fn send(&self, msg: &Msg) -> Option<ItemResult> {
        let body = json!([msg.item(&self.environment)]).to_string();
        let outcome = match self.broker.ingest(&msg.principal(), body.as_bytes()).await {
            IngestReply::Items { results, .. } => match results.into_iter().next() {
                Some(r) if r.status != ItemStatus::Rejected => Ok(r),
                Some(r) => Err(r
                    .errors
                    .iter()
                    .map(|e| format!("{} {}: {}", e.code.as_str(), e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")),
                None => Err("no result".to_owned()),
            },
            IngestReply::Failed { status, error } => Err(format!("HTTP {status}: {}", error.message)),
        };
        match outcome {
            Ok(result) => {
                if self.failures.swap(0, Ordering::Relaxed) >= WARN_AFTER_FAILURES {
                    tracing::info!("simulated traffic flows again");
                }
                tracing::debug!(
                    interface = msg.interface,
                    sender = %msg.sender.dip_id,
                    transaction = ?result.transaction_id,
                    "simulated message accepted"
                );
                Some(result)
            }
            Err(why) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(interface = msg.interface, sender = %msg.sender.dip_id, %why, "simulated message refused");
                if failures == WARN_AFTER_FAILURES {
                    tracing::warn!(interface = msg.interface, %why, "simulated messages keep failing");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use broker_core::BrokerConfig;
    use broker_core::catalogue::CatalogueData;
    use broker_core::seed::{seed_catalogue, seed_directory};
    use rand::SeedableRng;

    use super::*;

    /// The item as its recipient gets it: with the workflow in `D0`.
    fn delivered(sim: &Sim, msg: &Msg, workflow: &str) -> Delivery {
        let mut item = msg.item(&sim.environment);
        item["payload"]["CommonBlock"]["D0"] = json!({ "initialCorrelationID": workflow });
        Delivery::read(&item).expect("readable delivery")
    }

    async fn accepted(sim: &Sim, msg: &Msg) -> ItemResult {
        let result = sim.send(msg).await;
        let result = result.unwrap_or_else(|| panic!("{} refused: {msg:?}", msg.interface));
        assert_eq!(result.status, ItemStatus::Accepted, "{}", msg.interface);
        result
    }

    /// Every message the simulation makes, along whole flows, is accepted by a broker
    /// with the shipped catalogue and the demo directory: valid, authorised and routed.
    #[tokio::test]
    async fn every_simulated_message_is_accepted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("dip.db").display());
        let store = broker_core::store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        seed_catalogue(store.as_ref(), &CatalogueData::seed().expect("catalogue"))
            .await
            .expect("seed catalogue");
        let demo = DirectoryData::demo().expect("demo directory");
        seed_directory(store.as_ref(), &demo).await.expect("seed directory");
        let config = BrokerConfig {
            environment: demo.environment.clone(),
            ..BrokerConfig::default()
        };
        let broker = Broker::start(store, config).await.expect("broker");
        let (_stop, stopped) = watch::channel(false);
        let sim = Sim::new(broker, &demo, stopped);
        let today = Utc::now().date_naive();
        let member = |dip_id: &str| sim.dir.members[dip_id].clone();

        let mut channels = HashSet::new();
        for seed in 0..12 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let request = appointment_request(&sim.dir, today, &mut rng).expect("IF-031");
            let started = accepted(&sim, &request).await;
            let workflow = started.initial_correlation_id.expect("IF-031 starts a workflow");
            let regs = member(&request.targets[0]);
            let d031 = delivered(&sim, &request, &workflow);
            let (response, ask) = regs_answers(&regs, &d031, true).expect("IF-032");
            let ask = ask.expect("IF-033");
            let provider = member(&ask.targets[0]);
            let d033 = delivered(&sim, &ask, &workflow);
            let answer = service_answer(&provider, &d033, true).expect("IF-034");
            let d034 = delivered(&sim, &answer, &workflow);
            let notice = notification(&regs, &d034, &d031.custom).expect("IF-036");
            let d036 = delivered(&sim, &notice, &workflow);
            let read = reading(&provider, &d036).expect("IF-041");
            for msg in [&response, &ask, &answer, &notice, &read] {
                let result = accepted(&sim, msg).await;
                assert_eq!(result.initial_correlation_id.as_deref(), Some(workflow.as_str()));
            }
            let day = today.pred_opt().expect("yesterday");
            let data = consumption(&sim.dir, day, |_| seed % 2 == 1, &mut rng).expect("IF-021");
            accepted(&sim, &data).await;
            // Refusals are valid too.
            let (refusal, none) = regs_answers(&regs, &d031, false).expect("IF-032 refusal");
            assert!(none.is_none());
            accepted(&sim, &refusal).await;
            accepted(&sim, &service_answer(&provider, &d033, false).expect("IF-034 refusal")).await;
            channels.extend([request.interface, response.interface, ask.interface]);
            channels.extend([answer.interface, notice.interface, read.interface, data.interface]);
        }
        assert_eq!(channels.len(), 7, "{channels:?}");
    }
}
