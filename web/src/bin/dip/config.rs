//! Server settings: defaults that work with no configuration, an optional TOML file, then
//! environment variables and flags (highest precedence).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use crate::files::read_file;

/// Options shared by every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// PostgreSQL URL (`postgres://…`); without it the embedded SQLite store in the data folder is used.
    #[arg(long, env = "DIP_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder of the embedded store.
    #[arg(long, env = "DIP_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Data keys sealing archived messages of security categories 2–4 (one `<id>
    /// <base64 key>` per line, newest last). The embedded store keeps its own in the data
    /// folder; several nodes share one file; PROD requires it.
    #[arg(long, env = "DIP_DATA_KEYS", global = true)]
    pub data_keys: Option<PathBuf>,
    /// Settings file (TOML).
    #[arg(long, env = "DIP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// ClickHouse for analytics (`http://[user:password@]host:8123/?database=dip`);
    /// without it events and reports stay in the store's own tables.
    #[arg(long, env = "DIP_CLICKHOUSE_URL", global = true)]
    pub clickhouse_url: Option<String>,
}

/// Options of commands that serve HTTP.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DIP_LISTEN")]
    pub listen: Option<String>,
    /// The environment tag messages must carry (DEV, SIT, PREPROD, PROD…).
    #[arg(long, env = "DIP_ENVIRONMENT")]
    pub environment: Option<String>,
    /// This node's name in queue leases: `node-<host name>` by default. Restarted under
    /// the same name, a node takes its queues back at once; two live processes cannot
    /// share one (the second refuses to start), so give each node on a host its own.
    #[arg(long, env = "DIP_NODE_ID")]
    pub node_id: Option<String>,
    /// How long a queue lease lasts without renewal, in milliseconds (a dead node's
    /// queues wait this long before another node takes them).
    #[arg(long, env = "DIP_LEASE_TTL_MS")]
    pub lease_ttl_ms: Option<u64>,
    /// Longest wait for a webhook's answer, in milliseconds.
    #[arg(long, env = "DIP_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Address ranges webhooks may reach besides public addresses, comma-separated CIDRs
    /// (e.g. 127.0.0.0/8 for local simulators). Test environments only: refused in PROD.
    #[arg(long, env = "DIP_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,
    /// Serve the participant API over TLS with this certificate chain (PEM).
    #[arg(long, env = "DIP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS listener's private key (PEM).
    #[arg(long, env = "DIP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Authorities whose client certificates are accepted (PEM); with TLS.
    #[arg(long, env = "DIP_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// The platform's client certificate and key (one PEM file) presented to webhooks.
    #[arg(long, env = "DIP_WEBHOOK_IDENTITY")]
    pub webhook_identity: Option<PathBuf>,
    /// Authorities trusted for recipients' server certificates besides the public roots
    /// (PEM bundle; a test environment's authority).
    #[arg(long, env = "DIP_WEBHOOK_ROOTS")]
    pub webhook_roots: Option<PathBuf>,
    /// The platform's certificate (PEM) for X-DIP signatures on webhooks and evidence
    /// bundles. Without it, a non-production platform on the embedded store creates its
    /// own (`signing-cert.pem`, `signing-key.pem` in the data folder).
    #[arg(long, env = "DIP_SIGNING_CERT", requires = "signing_key")]
    pub signing_cert: Option<PathBuf>,
    /// The RSA key (PEM) that signs webhooks and evidence bundles.
    #[arg(long, env = "DIP_SIGNING_KEY", requires = "signing_cert")]
    pub signing_key: Option<PathBuf>,
    /// Folder of the test authority (`dip certs ca-init`) the admin API issues from
    /// (non-production environments).
    #[arg(long, env = "DIP_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// The platform's P-256 private key (PKCS#8 PEM) that opens CustomBlocks senders
    /// encrypt to it on channels of security pattern 2.
    #[arg(long, env = "DIP_DECRYPTION_KEY")]
    pub decryption_key: Option<PathBuf>,
    /// The platform's address as participants call it (`https://dip.example`): the base
    /// of the URL in inbound X-DIP signatures (the request's Host by default).
    #[arg(long, env = "DIP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Whether API keys authenticate callers (on by default, except in PROD where only
    /// client certificates do).
    #[arg(long, env = "DIP_API_KEYS")]
    pub api_keys: Option<bool>,
    /// Folder of the portal's browser bundle (`scripts/build-site` writes `target/site`);
    /// without it pages are served unhydrated, still complete.
    #[arg(long, env = "DIP_SITE_DIR")]
    pub site_dir: Option<PathBuf>,
    /// Messages one recipient may have replayed within a rolling 24 hours (default
    /// 200000).
    #[arg(long, env = "DIP_REPLAY_QUOTA")]
    pub replay_quota: Option<i64>,
    /// Replay copies join their queue this many at a time, so that live messages wait
    /// behind one batch at most (default 100).
    #[arg(long, env = "DIP_REPLAY_BATCH")]
    pub replay_batch: Option<i64>,
    /// A portal session unused this many seconds ends (default 1800).
    #[arg(long, env = "DIP_SESSION_IDLE_SECS")]
    pub session_idle_secs: Option<u64>,
    /// A portal session ends this many seconds after sign-in (default 43200).
    #[arg(long, env = "DIP_SESSION_MAX_SECS")]
    pub session_max_secs: Option<u64>,
    /// Mail server for alarm notices: `smtp://[user:password@]host:port` (add
    /// `?tls=required` for STARTTLS) or `smtps://…`; without it notices wait in the outbox.
    #[arg(long, env = "DIP_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of alarm notices.
    #[arg(long, env = "DIP_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Seconds between alarm evaluations (default 15).
    #[arg(long, env = "DIP_ALARM_INTERVAL_SECS")]
    pub alarm_interval_secs: Option<u64>,
}

/// The settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    environment: Option<String>,
    max_items: Option<usize>,
    max_body_bytes: Option<usize>,
    committers: Option<usize>,
    clickhouse_url: Option<String>,
    #[serde(default)]
    delivery: DeliverySettings,
}

/// The `[delivery]` table of the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverySettings {
    node_id: Option<String>,
    lease_ttl_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    sweep_interval_ms: Option<u64>,
    #[serde(default)]
    webhook_allow: Vec<String>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub listen: String,
    pub environment: String,
    pub broker: broker_core::BrokerConfig,
    pub delivery: broker_core::delivery::DeliveryConfig,
    /// TLS for the participant API; plain HTTP when `None` (not in PROD).
    pub tls: Option<broker_core::security::tls::TlsSettings>,
    /// The data-keys file, if any.
    pub data_keys: Option<PathBuf>,
    /// Where the portal's browser bundle is.
    pub site_dir: PathBuf,
    /// Portal session lifetimes.
    pub sessions: dip_admin::accounts::SessionPolicy,
    /// Alarm evaluation and notices.
    pub alarms: dip_reporting::alarms::AlarmConfig,
    /// Where lifecycle events go and reports are read from.
    pub analytics: dip_reporting::analytics::Sink,
}

impl Settings {
    pub fn resolve(store: &StoreArgs, serve: Option<&ServeArgs>) -> anyhow::Result<Self> {
        let file: FileSettings = match &store.config {
            Some(path) => {
                let text = read_file(path)?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let data_dir = store
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = store
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir));
        let listen = serve
            .and_then(|s| s.listen.clone())
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let environment = serve
            .and_then(|s| s.environment.clone())
            .or(file.environment)
            .unwrap_or_else(|| "DEV".into());
        let mut broker = broker_core::BrokerConfig {
            environment: environment.clone(),
            ..Default::default()
        };
        if let Some(n) = file.max_items {
            broker.max_items = n;
        }
        if let Some(n) = file.max_body_bytes {
            broker.max_body_bytes = n;
        }
        if let Some(n) = file.committers {
            broker.committers = n;
        }
        let analytics = match store.clickhouse_url.clone().or(file.clickhouse_url) {
            Some(url) => {
                let clickhouse = dip_reporting::clickhouse::ClickHouse::new(&url).context("--clickhouse-url")?;
                dip_reporting::analytics::Sink::ClickHouse(std::sync::Arc::new(clickhouse))
            }
            None => dip_reporting::analytics::Sink::Embedded,
        };
        let ms = std::time::Duration::from_millis;
        let mut delivery = broker_core::delivery::DeliveryConfig::default();
        let d = file.delivery;
        if let Some(id) = serve
            .and_then(|s| s.node_id.clone())
            .or(d.node_id)
            .or_else(host_node_id)
        {
            delivery.node_id = id;
        }
        if let Some(n) = serve.and_then(|s| s.lease_ttl_ms).or(d.lease_ttl_ms) {
            delivery.lease_ttl = ms(n.max(100));
        }
        if let Some(n) = serve.and_then(|s| s.request_timeout_ms).or(d.request_timeout_ms) {
            delivery.request_timeout = ms(n.max(1));
        }
        if let Some(n) = d.connect_timeout_ms {
            delivery.connect_timeout = ms(n.max(1));
        }
        if let Some(n) = d.sweep_interval_ms {
            delivery.sweep_interval = ms(n.max(100));
        }
        let allow: Vec<String> = match serve.map(|s| s.webhook_allow.clone()).filter(|a| !a.is_empty()) {
            Some(flags) => flags,
            None => d.webhook_allow,
        };
        if !allow.is_empty() {
            if environment.eq_ignore_ascii_case("PROD") {
                anyhow::bail!(
                    "webhook allow-lists are for test environments; PROD webhooks reach public addresses only"
                );
            }
            let ranges = allow
                .iter()
                .map(|r| {
                    r.trim()
                        .parse()
                        .with_context(|| format!("webhook allow-list: {r:?} is not a CIDR range"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            delivery.destinations = broker_core::delivery::destinations::Destinations::allowing(ranges);
        }
        let read_opt = |p: Option<PathBuf>| p.as_deref().map(read_file).transpose();
        delivery.client_identity_pem = read_opt(serve.and_then(|s| s.webhook_identity.clone()))?;
        delivery.extra_roots_pem = read_opt(serve.and_then(|s| s.webhook_roots.clone()))?;
        let signing = match (
            read_opt(serve.and_then(|s| s.signing_cert.clone()))?,
            read_opt(serve.and_then(|s| s.signing_key.clone()))?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            // The embedded store keeps a test platform's signing identity beside the database,
            // as it keeps its data keys.
            _ if serve.is_some()
                && database_url.starts_with("sqlite://")
                && !environment.eq_ignore_ascii_case("PROD") =>
            {
                Some(load_signing_identity(&data_dir, &environment)?)
            }
            _ => None,
        };
        if let Some((cert, key)) = signing {
            let signer = broker_core::security::signature::Signer::new(&cert, &key).context("signing key")?;
            broker.signer = Some(std::sync::Arc::new(signer));
        }
        broker.public_url = serve.and_then(|s| s.public_url.clone());
        if let Some(quota) = serve.and_then(|s| s.replay_quota) {
            anyhow::ensure!(quota >= 0, "--replay-quota must not be negative");
            broker.replay_quota = quota;
        }
        if let Some(batch) = serve.and_then(|s| s.replay_batch) {
            anyhow::ensure!(batch >= 1, "--replay-batch must be at least 1");
            broker.replay_batch = batch;
        }
        if let Some(dir) = serve.and_then(|s| s.ca_dir.clone()) {
            if environment.eq_ignore_ascii_case("PROD") {
                anyhow::bail!("PROD has no test authority: register externally issued certificates");
            }
            broker.authority = Some(std::sync::Arc::new(crate::files::load_authority(&dir, &environment)?));
        }
        if let Some(pem) = read_opt(serve.and_then(|s| s.decryption_key.clone()))? {
            let decrypter = broker_core::security::jwe::Decrypter::from_pem(&pem).context("decryption key")?;
            broker.decrypter = Some(std::sync::Arc::new(decrypter));
        }
        if delivery.lease_ttl <= delivery.request_timeout {
            anyhow::bail!("the lease TTL must be longer than the request timeout, or no webhook could ever be sent");
        }
        let production = environment.eq_ignore_ascii_case("PROD");
        let keys_file = store.data_keys.clone().or_else(|| {
            // The embedded store keeps its keys beside the database.
            database_url
                .starts_with("sqlite://")
                .then(|| data_dir.join("data-keys"))
        });
        broker.vault = match &keys_file {
            Some(path) => Some(std::sync::Arc::new(load_data_keys(path)?)),
            None if production && serve.is_some() => {
                anyhow::bail!("PROD seals archived messages at rest: give --data-keys")
            }
            None => None,
        };
        broker.api_keys = serve.and_then(|s| s.api_keys).unwrap_or(!production);
        let tls = match serve.and_then(|s| s.tls_cert.clone().zip(s.tls_key.clone())) {
            None if production && serve.is_some() => {
                anyhow::bail!(
                    "PROD serves the participant API over TLS with client certificates: give --tls-cert and --tls-key"
                )
            }
            None => None,
            Some((cert, key)) => {
                let Some(ca) = serve.and_then(|s| s.client_ca.clone()) else {
                    anyhow::bail!("with TLS, give --client-ca: the authorities whose client certificates are accepted");
                };
                let client_ca_pem = read_file(&ca)?;
                broker.trusted = Some(broker_core::security::tls::trust(&client_ca_pem).context("client CA")?);
                Some(broker_core::security::tls::TlsSettings {
                    cert_pem: read_file(&cert)?,
                    key_pem: read_file(&key)?,
                    client_ca_pem,
                    // Without API keys a caller can only be a certificate holder.
                    require_client_cert: !broker.api_keys,
                })
            }
        };
        if production && serve.is_some() && (broker.signer.is_none() || delivery.client_identity_pem.is_none()) {
            anyhow::bail!(
                "PROD signs every webhook and presents the platform's certificate: give --signing-cert, \
                 --signing-key and --webhook-identity"
            );
        }
        let alarms = {
            let default = dip_reporting::alarms::AlarmConfig::default();
            let scheme = if tls.is_some() { "https" } else { "http" };
            dip_reporting::alarms::AlarmConfig {
                owner: delivery.node_id.clone(),
                interval: serve
                    .and_then(|s| s.alarm_interval_secs)
                    .map_or(default.interval, |n| std::time::Duration::from_secs(n.max(1))),
                smtp_url: serve.and_then(|s| s.smtp_url.clone()),
                mail_from: serve.and_then(|s| s.mail_from.clone()).unwrap_or(default.mail_from),
                portal_url: broker
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("{scheme}://{listen}")),
            }
        };
        Ok(Self {
            alarms,
            analytics,
            database_url,
            listen,
            environment,
            broker,
            delivery,
            tls,
            data_keys: keys_file,
            site_dir: serve
                .and_then(|s| s.site_dir.clone())
                .unwrap_or_else(|| PathBuf::from("target/site")),
            sessions: {
                let default = dip_admin::accounts::SessionPolicy::default();
                let secs = |v: Option<u64>, d: std::time::Duration| v.map(std::time::Duration::from_secs).unwrap_or(d);
                dip_admin::accounts::SessionPolicy {
                    idle: secs(serve.and_then(|s| s.session_idle_secs), default.idle),
                    absolute: secs(serve.and_then(|s| s.session_max_secs), default.absolute),
                }
            },
        })
    }

    /// The URL with any password masked, for logs.
    pub fn database_for_log(&self) -> String {
        match (self.database_url.find("://"), self.database_url.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &self.database_url[s + 3..at];
                match creds.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &self.database_url[..s + 3], &self.database_url[at..]),
                    None => self.database_url.clone(),
                }
            }
            _ => self.database_url.clone(),
        }
    }
}

/// Reads the data-keys file, creating it with a first key (readable by the owner only)
/// when it does not exist.
pub fn load_data_keys(path: &Path) -> anyhow::Result<broker_core::security::vault::Vault> {
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        crate::files::write_private(path, &broker_core::security::vault::new_key_line())?;
        tracing::info!(path = %path.display(), "created data keys");
    }
    Ok(broker_core::security::vault::Vault::from_text(&read_file(path)?)?)
}

/// `node-<host name>`: a node's name that survives its restarts; `None` when the host has
/// no readable name (the node then takes a random one).
fn host_node_id() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .map(|h| format!("node-{h}"))
}

/// The signing identity (certificate, key; PEM) kept in `dir`, created the first time:
/// a non-production platform's own when it is given none.
fn load_signing_identity(dir: &Path, environment: &str) -> anyhow::Result<(String, String)> {
    let (cert, key) = (dir.join("signing-cert.pem"), dir.join("signing-key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(dir)?;
        let issued = broker_core::security::authority::signing_identity(
            &format!("DIP {environment} platform"),
            environment,
            3650,
        )?;
        let _ = std::fs::remove_file(&key);
        crate::files::write_private(&key, issued.key_pem.as_deref().unwrap_or_default())?;
        std::fs::write(&cert, &issued.cert_pem).with_context(|| format!("writing {}", cert.display()))?;
        tracing::info!(path = %cert.display(), "created the platform's signing identity");
    }
    Ok((read_file(&cert)?, read_file(&key)?))
}

/// A text file's contents, with its path in the error.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("dip.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(environment: &str, allow: &[&str]) -> ServeArgs {
        ServeArgs {
            listen: None,
            environment: Some(environment.into()),
            node_id: None,
            lease_ttl_ms: None,
            request_timeout_ms: None,
            webhook_allow: allow.iter().map(|a| (*a).to_owned()).collect(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            webhook_identity: None,
            webhook_roots: None,
            signing_cert: None,
            signing_key: None,
            decryption_key: None,
            ca_dir: None,
            public_url: None,
            api_keys: None,
            site_dir: None,
            replay_quota: None,
            replay_batch: None,
            session_idle_secs: None,
            session_max_secs: None,
            smtp_url: None,
            mail_from: None,
            alarm_interval_secs: None,
        }
    }

    fn store_args() -> StoreArgs {
        StoreArgs {
            database_url: Some("postgres://x@h/db".into()),
            data_dir: None,
            data_keys: None,
            config: None,
            clickhouse_url: None,
        }
    }

    #[test]
    fn webhook_allow_list_is_parsed_and_refused_in_production() {
        let s = Settings::resolve(&store_args(), Some(&serve_args("SIT", &["127.0.0.0/8", "::1/128"]))).unwrap();
        assert_eq!(s.delivery.destinations.allowed().len(), 2);
        assert!(Settings::resolve(&store_args(), Some(&serve_args("PROD", &["127.0.0.0/8"]))).is_err());
        assert!(Settings::resolve(&store_args(), Some(&serve_args("DEV", &["localhost"]))).is_err());
        let s = Settings::resolve(&store_args(), None).unwrap();
        assert!(s.delivery.destinations.allowed().is_empty());
    }

    #[test]
    fn production_needs_data_keys_tls_and_turns_api_keys_off() {
        let err = Settings::resolve(&store_args(), Some(&serve_args("PROD", &[]))).unwrap_err();
        assert!(err.to_string().contains("--data-keys"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let with_keys = StoreArgs {
            data_keys: Some(dir.path().join("keys")),
            ..store_args()
        };
        let err = Settings::resolve(&with_keys, Some(&serve_args("PROD", &[]))).unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        assert!(dir.path().join("keys").exists(), "a first key is created");
        let dev = Settings::resolve(&store_args(), Some(&serve_args("DEV", &[]))).unwrap();
        assert!(dev.broker.api_keys && dev.tls.is_none() && dev.broker.vault.is_none());
        let mut prod = serve_args("PROD", &[]);
        prod.api_keys = Some(true);
        prod.tls_cert = Some("/nonexistent/cert.pem".into());
        prod.tls_key = Some("/nonexistent/key.pem".into());
        let err = Settings::resolve(&with_keys, Some(&prod)).unwrap_err();
        assert!(err.to_string().contains("--client-ca"), "{err}");
    }

    #[test]
    fn an_embedded_test_platform_keeps_its_own_signing_identity() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = StoreArgs {
            database_url: None,
            data_dir: Some(dir.path().to_owned()),
            ..store_args()
        };
        let first = Settings::resolve(&embedded, Some(&serve_args("DEV", &[]))).unwrap();
        let fingerprint = first.broker.signer.as_ref().expect("a signer").fingerprint().to_owned();
        assert!(dir.path().join("signing-cert.pem").exists() && dir.path().join("signing-key.pem").exists());
        let again = Settings::resolve(&embedded, Some(&serve_args("DEV", &[]))).unwrap();
        assert_eq!(
            again.broker.signer.unwrap().fingerprint(),
            fingerprint,
            "kept, not made anew"
        );
        // Not for PostgreSQL (nodes share no folder) nor for commands other than serving.
        assert!(
            Settings::resolve(&store_args(), Some(&serve_args("DEV", &[])))
                .unwrap()
                .broker
                .signer
                .is_none()
        );
        assert!(Settings::resolve(&embedded, None).unwrap().broker.signer.is_none());
    }

    #[test]
    fn passwords_are_masked() {
        let s = Settings {
            database_url: "postgres://dip:secret@db:5432/dip".into(),
            listen: String::new(),
            environment: String::new(),
            broker: Default::default(),
            delivery: Default::default(),
            tls: None,
            data_keys: None,
            site_dir: PathBuf::new(),
            sessions: Default::default(),
            alarms: Default::default(),
            analytics: dip_reporting::analytics::Sink::Embedded,
        };
        assert_eq!(s.database_for_log(), "postgres://dip:***@db:5432/dip");
    }
}
