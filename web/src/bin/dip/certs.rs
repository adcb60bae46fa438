//! `dip certs`: the certificate lifecycle from the command line (spec 8.4): a test
//! authority for non-production environments, issuing (with a key pair or from a CSR),
//! registering externally issued certificates, revoking, listing with expiry.

use std::path::{Path, PathBuf};

use anyhow::bail;
use broker_core::security::authority::{Authority, Issued};
use broker_core::security::certs;
use clap::Subcommand;

use crate::config::{Settings, StoreArgs};
use crate::files::{load_authority, read_file, write_private};
use crate::serve;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Creates a test certificate authority in a folder (non-production environments).
    CaInit {
        /// Folder for ca.pem and ca-key.pem.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issues a participant's client certificate from the test authority and registers it.
    Issue {
        /// The authority's folder.
        #[arg(long)]
        ca_dir: PathBuf,
        /// The participant or DCP.
        #[arg(long)]
        dip_id: String,
        /// A CSR (PEM) for the participant's own key; without it a key pair is generated.
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Folder for the certificate (and key).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issues a server certificate for the platform's TLS listener.
    Server {
        /// The authority's folder.
        #[arg(long)]
        ca_dir: PathBuf,
        /// DNS names and IP addresses the server answers to.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Folder for server.pem and server-key.pem.
        #[arg(long)]
        out: PathBuf,
    },
    /// Registers an externally issued certificate (PEM) to a participant or DCP.
    Register {
        /// The participant or DCP.
        #[arg(long)]
        dip_id: String,
        /// The certificate.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Revokes a certificate by fingerprint (hex SHA-256).
    Revoke {
        /// Fingerprint.
        fingerprint: String,
    },
    /// Lists registered certificates, flagging those expiring soon.
    List {
        /// Warn about certificates expiring within this many days.
        #[arg(long, default_value_t = 30)]
        warn_days: i64,
    },
}

fn save(issued: &Issued, out: &Path, stem: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(format!("{stem}.pem")), &issued.cert_pem)?;
    if let Some(key) = &issued.key_pem {
        write_private(&out.join(format!("{stem}-key.pem")), key)?;
    }
    println!(
        "wrote {}/{stem}.pem{}",
        out.display(),
        if issued.key_pem.is_some() { " and its key" } else { "" }
    );
    Ok(())
}

pub async fn run(store_args: &StoreArgs, command: CertsCommand) -> anyhow::Result<()> {
    let settings = Settings::resolve(store_args, None)?;
    let environment = settings.environment.clone();
    let now = broker_core::clock::now_micros();
    match command {
        CertsCommand::CaInit { dir } => {
            let ca = Authority::generate(&environment)?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
            write_private(&dir.join("ca-key.pem"), &ca.key_pem())?;
            println!("test authority for {environment} written to {}", dir.display());
        }
        CertsCommand::Server {
            ca_dir,
            names,
            days,
            out,
        } => {
            let ca = load_authority(&ca_dir, &environment)?;
            save(&ca.issue_server(&names, days)?, &out, "server")?;
        }
        CertsCommand::Issue {
            ca_dir,
            dip_id,
            csr,
            days,
            out,
        } => {
            let store = serve::open_store(&settings).await?;
            if !store.participants().await?.iter().any(|p| p.dip_id == dip_id) {
                bail!("no participant or DCP {dip_id}");
            }
            let ca = load_authority(&ca_dir, &environment)?;
            let issued = match csr {
                Some(path) => ca.issue_from_csr(&read_file(&path)?, &dip_id, days)?,
                None => ca.issue_client(&dip_id, days, None)?,
            };
            let record = certs::record(&issued.cert_pem, &dip_id, &environment, "issued", now)?;
            store.put_certificate(&record).await?;
            save(&issued, &out, &format!("{dip_id}-{}", &record.fingerprint[..12]))?;
            println!("registered to {dip_id}: {}", record.fingerprint);
        }
        CertsCommand::Register { dip_id, cert } => {
            let store = serve::open_store(&settings).await?;
            if !store.participants().await?.iter().any(|p| p.dip_id == dip_id) {
                bail!("no participant or DCP {dip_id}");
            }
            let pem = read_file(&cert)?;
            let record = certs::record(&pem, &dip_id, &environment, "registered", now)?;
            store.put_certificate(&record).await?;
            println!("registered to {dip_id}: {}", record.fingerprint);
        }
        CertsCommand::Revoke { fingerprint } => {
            let store = serve::open_store(&settings).await?;
            if !store.revoke_certificate(&fingerprint, now).await? {
                bail!("no unrevoked certificate {fingerprint}");
            }
            println!("revoked {fingerprint}");
        }
        CertsCommand::List { warn_days } => {
            let store = serve::open_store(&settings).await?;
            println!(
                "{:<12} {:<64} {:<6} {:<10} {:<22} status",
                "DIP ID", "fingerprint", "env", "source", "expires"
            );
            for c in store.certificates().await? {
                let expires = chrono::DateTime::from_timestamp_micros(c.not_after).unwrap_or_default();
                let status = certs::status(&c, now, warn_days);
                println!(
                    "{:<12} {:<64} {:<6} {:<10} {:<22} {status}",
                    c.dip_id,
                    c.fingerprint,
                    c.environment,
                    c.source,
                    expires.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
    }
    Ok(())
}
