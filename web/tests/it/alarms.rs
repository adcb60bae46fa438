//! Alarms against a real store and a real SMTP server (aiosmtpd, started here): rules
//! raised and cleared from the analytics events, once each; notices to subscribers only,
//! within what they may see; notices kept through an SMTP outage and sent afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_core::events::{Event, EventKind};
use broker_core::store::{CertificateRecord, Store};
use broker_core::{Broker, BrokerConfig};
use dip_admin::accounts;
use dip_admin::types::{Actor, AppError, PortalRole};
use dip_reporting::alarms::{AlarmConfig, Alarms, service};
use dip_reporting::analytics::{Analytics, Sink};
use dip_reporting::pump::{Pump, PumpConfig};
use dip_testkit::{Db, REGS_N, SUP1, SUP2, TestStore, free_port};
use dip_web::app::alarms::AlarmForm;

/// A real SMTP server (Python's aiosmtpd) saving what it receives to a maildir.
struct SmtpServer {
    child: Option<Child>,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut s = Self {
            child: None,
            port,
            maildir: dir.path().join("mail"),
            _dir: dir,
        };
        s.resume();
        s
    }

    fn resume(&mut self) {
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("aiosmtpd exited ({status}): is it installed (pip install aiosmtpd)?");
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received, decoded from quoted-printable soft breaks.
    fn messages(&self) -> Vec<String> {
        let mut out: Vec<(std::time::SystemTime, String)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let when = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                out.push((when, text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")));
            }
        }
        out.sort();
        out.into_iter().map(|(_, t)| t).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Setup {
    broker: Broker,
    store: Arc<dyn Store>,
    _db: TestStore,
}

impl Setup {
    /// Reports over the embedded tables, where these tests' pump puts the events.
    fn analytics(&self) -> Analytics {
        Analytics::new(self.store.clone(), Sink::Embedded)
    }
}

async fn setup() -> Setup {
    let db = TestStore::seeded(Db::Sqlite).await;
    let broker = Broker::start(db.store.clone(), BrokerConfig::default()).await.unwrap();
    Setup {
        broker,
        store: db.store.clone(),
        _db: db,
    }
}

/// A portal user with an email address, as the actor the portal would see.
async fn user(store: &dyn Store, name: &str, dip: Option<&str>, role: PortalRole) -> Actor {
    assert!(
        accounts::ensure_user(store, name, name, dip, &[role], "correct horse battery", false)
            .await
            .unwrap()
    );
    let mut record = store.user_by_username(name).await.unwrap().unwrap();
    record.email = format!("{name}@example.test");
    store.update_user(&record).await.unwrap();
    Actor {
        user_id: Some(record.id),
        name: name.into(),
        display_name: name.into(),
        dip_id: dip.map(str::to_owned),
        roles: vec![role],
        must_change_password: false,
    }
}

fn form(name: &str, kind: &str, channel: &str, threshold: &str) -> AlarmForm {
    AlarmForm {
        name: name.into(),
        kind: kind.into(),
        channel: channel.into(),
        recipient: String::new(),
        threshold: threshold.into(),
        window_minutes: "5".into(),
    }
}

async fn record(store: &Arc<dyn Store>, events: Vec<Event>) {
    store.record_events(&events).await.unwrap();
    let mut pump = Pump::new(store.clone(), Sink::Embedded, PumpConfig::default());
    while pump.step().await.unwrap() > 0 {}
}

fn event(kind: EventKind, at: i64, sender: &str, recipient: &str, latency_ms: i64) -> Event {
    Event {
        interface_id: "IF-031".into(),
        sender_dip_id: sender.into(),
        recipient_dip_id: recipient.into(),
        latency_us: latency_ms * 1000,
        duration_us: 1000,
        ..Event::new(kind, at)
    }
}

/// Waits until `n` messages have arrived.
fn wait_for(smtp: &SmtpServer, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = smtp.messages();
        if m.len() >= n || Instant::now() > deadline {
            assert_eq!(m.len(), n, "{m:#?}");
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_raise_clear_and_email_subscribers() {
    let s = setup().await;
    let mut smtp = SmtpServer::start();
    let alarms = Alarms::new(
        s.broker.clone(),
        s.analytics(),
        AlarmConfig {
            smtp_url: Some(smtp.url()),
            portal_url: "https://dip.example".into(),
            ..AlarmConfig::default()
        },
    )
    .unwrap();
    let ops = user(s.store.as_ref(), "ops", None, PortalRole::Analyst).await;
    let auditor = user(s.store.as_ref(), "ops-auditor", None, PortalRole::Auditor).await;
    let sup1 = user(s.store.as_ref(), "sup1", Some(SUP1), PortalRole::MessageUser).await;
    let sup2 = user(s.store.as_ref(), "sup2", Some(SUP2), PortalRole::MessageUser).await;

    // Bad input is refused with the reasons and loses nothing.
    let err = service::create(&s.broker, &s.analytics(), &ops, form("", "latency", "IF-999", "x"))
        .await
        .unwrap_err();
    assert!(err.field_error("name").is_some() && err.field_error("channel").is_some());
    assert!(err.field_error("threshold").is_some());
    assert_eq!(err.value("channel").as_deref(), Some("IF-999"));
    assert!(matches!(
        service::create(&s.broker, &s.analytics(), &auditor, form("x", "latency", "", "1")).await,
        Err(AppError::Forbidden)
    ));

    let slow = service::create(
        &s.broker,
        &s.analytics(),
        &ops,
        form("IF-031 slow", "latency", "IF-031", "3000"),
    )
    .await
    .unwrap();
    // An operator rule is not a participant's to see or receive.
    assert!(matches!(
        service::subscribe(&s.broker, &sup2, &slow.id, true).await,
        Err(AppError::NotFound(_))
    ));
    assert!(
        service::view(&s.broker, &s.analytics(), &sup2)
            .await
            .unwrap()
            .rows
            .is_empty()
    );

    let now = broker_core::clock::now_micros();
    record(
        &s.store,
        (0..10)
            .map(|i| event(EventKind::Delivered, now - 60_000_000 + i, SUP1, REGS_N, 5000))
            .collect(),
    )
    .await;
    assert_eq!(alarms.evaluate(now).await.unwrap(), 1, "raised");
    assert_eq!(alarms.evaluate(now).await.unwrap(), 0, "raised once");
    assert_eq!(alarms.send_due(now).await.unwrap(), 1);
    let mail = wait_for(&smtp, 1);
    assert!(mail[0].contains("To: ops@example.test"), "{}", mail[0]);
    assert!(
        mail[0].contains("Subject: [DIP DEV] RAISED: IF-031 slow"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("90th percentile 5000 ms"), "{}", mail[0]);
    assert!(mail[0].contains("https://dip.example/alarms"), "{}", mail[0]);

    // The mail server goes away; the clear is recorded and its notice waits.
    smtp.kill();
    let later = now + 10 * 60_000_000;
    assert_eq!(alarms.evaluate(later).await.unwrap(), 1, "cleared");
    assert_eq!(alarms.send_due(later).await.unwrap(), 0);
    let waiting = s.store.mail_due(later + 3_600_000_000, 10).await.unwrap();
    assert_eq!((waiting.len(), waiting[0].attempts), (1, 1));
    smtp.resume();
    assert_eq!(alarms.send_due(later + 3_600_000_000).await.unwrap(), 1);
    let mail = wait_for(&smtp, 2);
    assert!(
        mail[1].contains("Subject: [DIP DEV] cleared: IF-031 slow"),
        "{}",
        mail[1]
    );
    let history = s.store.alarm_history(Some(&slow.id), 10).await.unwrap();
    let states: Vec<&str> = history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(states, ["cleared", "raised"]);

    // A participant's rule sees only its participant's traffic.
    let dead = service::create(
        &s.broker,
        &s.analytics(),
        &sup1,
        form("Our dead letters", "dead_letters", "", "1"),
    )
    .await
    .unwrap();
    assert_eq!(dead.owner_dip_id.as_deref(), Some(SUP1));
    let t = later + 1;
    record(&s.store, vec![event(EventKind::DeadLettered, t, SUP2, REGS_N, 0)]).await;
    assert_eq!(
        alarms.evaluate(t + 1).await.unwrap(),
        0,
        "another participant's dead letter"
    );
    record(&s.store, vec![event(EventKind::DeadLettered, t, SUP1, REGS_N, 0)]).await;
    assert_eq!(alarms.evaluate(t + 1).await.unwrap(), 1);
    assert_eq!(alarms.send_due(t + 1).await.unwrap(), 1);
    let mail = wait_for(&smtp, 3);
    assert!(
        mail[2].contains("To: sup1@example.test") && mail[2].contains("1 dead-lettered"),
        "{}",
        mail[2]
    );

    // Unsubscribed, nothing more arrives; the operator still sees the rule.
    service::subscribe(&s.broker, &sup1, &dead.id, false).await.unwrap();
    assert_eq!(alarms.evaluate(t + 3_600_000_000).await.unwrap(), 1, "cleared");
    assert_eq!(alarms.send_due(t + 3_600_000_000).await.unwrap(), 0);
    assert_eq!(
        service::view(&s.broker, &s.analytics(), &ops).await.unwrap().rows.len(),
        2
    );
    assert_eq!(
        service::view(&s.broker, &s.analytics(), &sup1)
            .await
            .unwrap()
            .rows
            .len(),
        1
    );

    // Certificates about to expire.
    let cert = service::create(
        &s.broker,
        &s.analytics(),
        &ops,
        form("Certificates", "certificate_expiring", "", "7"),
    )
    .await
    .unwrap();
    s.store
        .put_certificate(&CertificateRecord {
            fingerprint: "ab".repeat(32),
            dip_id: SUP1.into(),
            subject: "CN=Aurora test".into(),
            issuer: "CN=Test CA".into(),
            serial: "01".into(),
            not_before: now - 86_400_000_000,
            not_after: now + 3 * 86_400_000_000,
            environment: "DEV".into(),
            source: "registered".into(),
            pem: String::new(),
            created_at: now,
            revoked_at: None,
        })
        .await
        .unwrap();
    alarms.evaluate(now).await.unwrap();
    let rule = s
        .store
        .alarm_rules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == cert.id)
        .unwrap();
    assert!(
        rule.raised_at.is_some() && rule.observed.contains("CN=Aurora test"),
        "{rule:?}"
    );
    assert!(Path::new(&smtp.maildir).exists());
}
