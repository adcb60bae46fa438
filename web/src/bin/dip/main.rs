//! `dip`: the Data Integration Platform server and its tools.

mod bench;
mod certs;
mod config;
mod files;
mod serve;
mod simulate;

use anyhow::{Context, bail};
use broker_core::seed::{DirectoryData, seed_directory};
use clap::{Parser, Subcommand};

use config::{ServeArgs, Settings, StoreArgs};
use dip_admin::accounts;
use dip_admin::types::PortalRole;

#[derive(Parser)]
#[command(
    name = "dip",
    version,
    about = "DIP — Data Integration Platform for energy market messaging"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the platform (embedded SQLite store in ./data unless a PostgreSQL URL is given).
    Serve(ServeArgs),
    /// Apply database migrations and add missing catalogue channels, then exit.
    Migrate,
    /// Serve with the demo directory loaded: participants for every role, endpoints,
    /// MPAN appointments, and their API keys printed; simulated participants make traffic.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// No simulated traffic: the demo participants' endpoints stay in pull mode.
        #[arg(long)]
        no_traffic: bool,
        /// Dead-letter messages not delivered within this many seconds, on every channel
        /// (the catalogue's policy otherwise), so that dead letters and their redrive show
        /// within minutes of a failing endpoint.
        #[arg(long)]
        stale_after_secs: Option<u64>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the MPAN appointment table.
    Appointments {
        #[command(subcommand)]
        command: AppointmentsCommand,
    },
    /// Benchmarks that print throughput and latency.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Portal users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Certificates: a test authority, issuing, registering, revoking, listing.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key for a participant or DCP (`--dip-id`) or an operator key (`--operator`); the key is printed once.
    Create {
        #[arg(long, conflicts_with = "operator", required_unless_present = "operator")]
        dip_id: Option<String>,
        #[arg(long)]
        operator: Option<String>,
    },
    /// Adds a new data key that seals from now on; older keys keep opening older rows.
    RotateDataKey,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a portal user with a generated password (printed once): e.g. the first
    /// platform administrator of a new installation.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// The user's participant; operator staff when absent.
        #[arg(long)]
        dip_id: Option<String>,
        /// Roles: platform_admin, user_admin, message_user, analyst, auditor.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AppointmentsCommand {
    /// Load appointment rows from a CSV file with header `mpan,role,dip_id,effective_from`.
    Load { file: std::path::PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(serve) => {
            let settings = Settings::resolve(&cli.store, Some(&serve))?;
            let store = serve::open_store(&settings).await?;
            serve::serve(&settings, store).await
        }
        Command::Migrate => {
            let settings = Settings::resolve(&cli.store, None)?;
            serve::open_store(&settings).await?;
            println!("migrations applied to {}", settings.database_for_log());
            Ok(())
        }
        Command::Demo {
            serve,
            no_traffic,
            stale_after_secs,
        } => {
            let mut settings = Settings::resolve(&cli.store, Some(&serve))?;
            let demo = DirectoryData::demo()?;
            if settings.environment != demo.environment {
                bail!(
                    "the demo directory is for the {} environment, not {}",
                    demo.environment,
                    settings.environment
                );
            }
            let store = serve::open_store(&settings).await?;
            seed_directory(store.as_ref(), &demo).await?;
            if let Some(secs) = stale_after_secs {
                anyhow::ensure!(secs > 0, "--stale-after-secs must be at least 1");
                for mut channel in store.catalogue().await?.channels {
                    channel.delivery.stale_after_secs = secs;
                    store.put_channel(&channel).await?;
                }
            }
            let users = demo_users(store.as_ref(), &demo).await?;
            print_demo_keys(&demo, &settings.listen);
            print_demo_users(&users, &settings.listen);
            if no_traffic || settings.environment.eq_ignore_ascii_case("PROD") {
                return serve::serve(&settings, store).await;
            }
            // The simulated participants' webhooks listen on loopback, which delivery
            // refuses unless allow-listed.
            let mut ranges = settings.delivery.destinations.allowed().to_vec();
            ranges.push("127.0.0.0/8".parse()?);
            settings.delivery.destinations = broker_core::delivery::destinations::Destinations::allowing(ranges);
            println!("Traffic simulation on: simulated participants send and answer messages (off: --no-traffic).\n");
            serve::serve_with(&settings, store, async |broker| simulate::start(broker, &demo).await).await
        }
        Command::Keys {
            command: KeysCommand::RotateDataKey,
        } => {
            let settings = Settings::resolve(&cli.store, None)?;
            let Some(path) = settings.data_keys.clone() else {
                bail!("no data-keys file: give --data-keys");
            };
            config::load_data_keys(&path)?;
            let line = broker_core::security::vault::new_key_line();
            let mut text = files::read_file(&path)?;
            text.push_str(&line);
            // Checked before it replaces the file.
            let vault = broker_core::security::vault::Vault::from_text(&text)?;
            std::fs::write(&path, text)?;
            println!(
                "data key {} added to {}; restart every node to seal with it",
                vault.current(),
                path.display()
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Create { dip_id, operator },
        } => {
            let settings = Settings::resolve(&cli.store, None)?;
            let store = serve::open_store(&settings).await?;
            if let Some(d) = &dip_id
                && !store.participants().await?.iter().any(|p| &p.dip_id == d)
            {
                bail!("no participant or DCP {d}");
            }
            let key = broker_core::auth::generate_api_key();
            let name = operator
                .clone()
                .unwrap_or_else(|| format!("{} key", dip_id.as_deref().unwrap_or_default()));
            let record = broker_core::auth::record_for(&key, dip_id.as_deref(), &name).context("generated key")?;
            store.put_api_key(&record).await?;
            println!("{key}");
            Ok(())
        }
        Command::Appointments {
            command: AppointmentsCommand::Load { file },
        } => {
            let settings = Settings::resolve(&cli.store, None)?;
            let store = serve::open_store(&settings).await?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let registry = broker_core::registry::Registry::load(store.as_ref()).await?;
            let rows = broker_core::appointments::parse_csv(&text)
                .and_then(|rows| broker_core::appointments::validate(rows, &registry))
                .map_err(|errors| {
                    let lines: Vec<String> = errors
                        .iter()
                        .map(|e| format!("{} {}: {}", e.code, e.path, e.message))
                        .collect();
                    anyhow::anyhow!("{} rejected, nothing loaded:\n{}", file.display(), lines.join("\n"))
                })?;
            let n = store.put_appointments(&rows).await?;
            println!("{n} appointment rows loaded");
            Ok(())
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    username,
                    name,
                    dip_id,
                    roles,
                },
        } => {
            let settings = Settings::resolve(&cli.store, None)?;
            let store = serve::open_store(&settings).await?;
            let mut parsed = Vec::new();
            for code in &roles {
                let role = PortalRole::parse(code).with_context(|| format!("no portal role {code}"))?;
                if !role.allowed_for(dip_id.is_none()) {
                    bail!(
                        "{} is not a role for {}",
                        role.label(),
                        if dip_id.is_none() {
                            "operator staff"
                        } else {
                            "a participant's users"
                        }
                    );
                }
                parsed.push(role);
            }
            if let Some(d) = &dip_id
                && !store.participants().await?.iter().any(|p| &p.dip_id == d)
            {
                bail!("no participant {d}");
            }
            let password = accounts::generate_password();
            let created = accounts::ensure_user(
                store.as_ref(),
                &username.to_lowercase(),
                &name,
                dip_id.as_deref(),
                &parsed,
                &password,
                true,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !created {
                bail!("the username {username} is taken");
            }
            println!("user {username} created; password (shown once, to be changed at first sign-in): {password}");
            Ok(())
        }
        Command::Bench { command } => bench::run(command).await,
        Command::Certs { command } => certs::run(&cli.store, command).await,
    }
}

/// The password of every demo user (the demo environment only).
const DEMO_PASSWORD: &str = "demo-password";

/// Portal users for the demo: an operator administrator and auditor, and for each market
/// participant a user administrator and a message user.
async fn demo_users(
    store: &dyn broker_core::store::Store,
    demo: &DirectoryData,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut users = vec![
        (
            "admin".to_owned(),
            "Platform Administrator".to_owned(),
            None,
            vec![PortalRole::PlatformAdmin],
        ),
        (
            "auditor".to_owned(),
            "Platform Auditor".to_owned(),
            None,
            vec![PortalRole::Auditor],
        ),
    ];
    for p in demo.participants.iter().filter(|p| !p.roles.is_empty()) {
        let mpid = p.mpid.to_lowercase();
        users.push((
            format!("{mpid}-admin"),
            format!("{} administrator", p.name),
            Some(p.dip_id.clone()),
            vec![PortalRole::UserAdmin],
        ));
        users.push((
            format!("{mpid}-user"),
            format!("{} operations", p.name),
            Some(p.dip_id.clone()),
            vec![PortalRole::MessageUser, PortalRole::Analyst],
        ));
    }
    let mut shown = Vec::new();
    for (username, name, dip_id, roles) in users {
        accounts::ensure_user(store, &username, &name, dip_id.as_deref(), &roles, DEMO_PASSWORD, false)
            .await
            .map_err(|e| anyhow::anyhow!("demo user {username}: {e}"))?;
        let roles = roles.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ");
        shown.push((username, dip_id.unwrap_or_else(|| "operator".into()), roles));
    }
    Ok(shown)
}

fn print_demo_users(users: &[(String, String, String)], listen: &str) {
    println!("Portal on http://{listen}/ — demo users, password {DEMO_PASSWORD:?}:");
    for (username, whose, roles) in users {
        println!("  {username:<14} {whose:<12} {roles}");
    }
    println!();
}

fn print_demo_keys(demo: &DirectoryData, listen: &str) {
    println!(
        "\nDIP demo — participant API on http://{listen}/api/v1 (environment {})\n",
        demo.environment
    );
    println!("{:<12} {:<5} {:<44} {:<14} API key", "DIP ID", "MPID", "name", "roles");
    for p in &demo.participants {
        let roles = if p.roles.is_empty() {
            "DCP".to_owned()
        } else {
            p.roles.join(",")
        };
        println!(
            "{:<12} {:<5} {:<44} {:<14} {}",
            p.dip_id, p.mpid, p.name, roles, p.api_key
        );
    }
    for k in &demo.operator_keys {
        println!("{:<12} {:<5} {:<44} {:<14} {}", "operator", "", k.name, "", k.api_key);
    }
    println!("\nTry: curl -H 'Authorization: Bearer <key>' http://{listen}/api/v1/channels\n");
}
