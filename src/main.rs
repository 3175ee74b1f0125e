//! The `smsflow` command line: arguments and dispatch only; each subcommand's work is in
//! `smsflow::cli`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use smsflow::app::Role;
use smsflow::cli;
use smsflow::config::Settings;
use smsflow::kafka::topology::Lowering;

#[derive(Parser)]
#[command(
    name = "smsflow",
    version,
    about = "Event-sourced stream processor for inbound SMS and MMS enrichment"
)]
struct Cli {
    /// Configuration file (default: ./smsflow.toml when present).
    #[arg(long, global = true, env = "SMSFLOW_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run roles (every role when no --role is given).
    Serve {
        /// Role to run; repeat to run several.
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
    },
    /// Apply migrations/NNN_name.cql to the CQL keyspace.
    Migrate {
        /// Folder holding the migration files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// Inspect or re-inject dead letters.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Link, verify, unlink or show phone numbers in the registry.
    Phones {
        #[command(subcommand)]
        action: PhonesAction,
    },
    /// Rebuild a read model by re-applying its topics from offset 0.
    Replay {
        /// The projection: messages or phones.
        #[arg(long)]
        projection: String,
    },
    /// Configure or check Twilio's webhook URLs for this deployment.
    Twilio {
        #[command(subcommand)]
        action: TwilioAction,
    },
    /// Register the event schemas in the schema registry, or check them against it.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Extract items from text on stdin, one JSON line out per line in (plain text, or JSON
    /// lines {"id","text","source","region","received_at","time_zone"}); no Kafka.
    Extract {
        /// Source of lines that do not say: body or transcript.
        #[arg(long, default_value = "body")]
        source: String,
        /// ISO 3166 region national numbers are read in (e.g. US), for lines that do not say.
        #[arg(long)]
        region: Option<String>,
        /// IANA time zone relative dates resolve in (default: enrich.default_time_zone).
        #[arg(long)]
        time_zone: Option<String>,
        /// RFC 3339 time the text was received (default: now).
        #[arg(long)]
        received_at: Option<String>,
    },
    /// Create the topics of topology/topics.toml and report drift.
    Topics {
        /// Topology file.
        #[arg(long, default_value = "topology/topics.toml")]
        file: PathBuf,
        /// Exit with status 3 when the cluster differs from the file.
        #[arg(long)]
        check: bool,
        /// Create topics with fewer replicas than the file declares when the cluster has fewer
        /// brokers (or kafka.replication_factor is lower): development clusters only.
        #[arg(long)]
        allow_lower_replication: bool,
        /// Print the topology as resources instead of applying it (no Kafka needed).
        #[arg(long, value_enum)]
        emit: Option<TopicsFormat>,
        /// The Strimzi `Kafka` resource the emitted KafkaTopics belong to.
        #[arg(long, default_value = "smsflow", requires = "emit")]
        strimzi_cluster: String,
    },
}

/// What `topics --emit` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TopicsFormat {
    /// Strimzi `KafkaTopic` resources (kafka.strimzi.io/v1).
    Strimzi,
}

#[derive(Subcommand)]
enum TwilioAction {
    /// Set the inbound, fallback and status URLs (with the connection overrides that make
    /// Twilio retry a 503) on a number or Messaging Service, and read them back.
    Configure {
        /// The number, E.164 or `PN…` SID (default: twilio.webhooks.phone_number).
        #[arg(long, conflicts_with = "service")]
        number: Option<String>,
        /// The Messaging Service `MG…` SID (default: twilio.webhooks.messaging_service_sid).
        #[arg(long)]
        service: Option<String>,
        /// Report drift without changing anything; exit with status 3 on drift.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Register every topic's schema under `<topic>-value`, compatibility BACKWARD.
    Register {
        /// Folder holding the .avsc files.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
    /// Ask the registry whether the folder's schemas are compatible with what it holds;
    /// exit with status 3 (naming the subject and the reason) when one is not.
    Check {
        /// Folder holding the .avsc files.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PhonesAction {
    /// Link a number (E.164) to a user.
    Link {
        phone: String,
        #[arg(long)]
        user: String,
        /// Mark it verified on the operator's word (no code).
        #[arg(long)]
        verified: bool,
        /// Text the number a verification code through notify.
        #[arg(long, conflicts_with = "verified")]
        send_code: bool,
        /// The number's IANA time zone (e.g. America/New_York): dates in its messages are
        /// read in it instead of enrich.default_time_zone. Linking again changes it.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Remove a number from its account (its opt-out state stays).
    Unlink { phone: String },
    /// Print a number's registry state.
    Show { phone: String },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Print dead letters (oldest first).
    List {
        /// Only this stage's dead letters.
        #[arg(long)]
        stage: Option<String>,
        /// Print at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-inject dead letters to their source topics, each once.
    Replay {
        /// Only this stage's dead letters.
        #[arg(long)]
        stage: Option<String>,
        /// Count what would be replayed without producing or committing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    let role = match &cli.command {
        Command::Serve { roles } => cli::serve::service_role(roles),
        // One-shot admin commands are not worth a trace pipeline.
        _ => {
            settings.telemetry.traces = false;
            "cli".to_string()
        }
    };
    let _telemetry = smsflow::telemetry::init(&settings.telemetry, &role);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command, settings))
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { roles } => cli::serve::run(settings, roles).await?,
        Command::Migrate { dir } => cli::migrate::run(&settings, &dir).await?,
        Command::Dlq { action } => match action {
            DlqAction::List { stage, limit } => cli::dlq::list(&settings, stage, limit).await?,
            DlqAction::Replay { stage, dry_run } => {
                cli::dlq::replay(&settings, stage, dry_run).await?
            }
        },
        Command::Phones { action } => match action {
            PhonesAction::Link {
                phone,
                user,
                verified,
                send_code,
                time_zone,
            } => {
                cli::phones::run_link(
                    &settings,
                    &phone,
                    &user,
                    verified,
                    send_code,
                    time_zone.as_deref(),
                )
                .await?
            }
            PhonesAction::Unlink { phone } => cli::phones::run_unlink(&settings, &phone).await?,
            PhonesAction::Show { phone } => cli::phones::run_show(&settings, &phone).await?,
        },
        Command::Replay { projection } => cli::replay::run(&settings, &projection).await?,
        Command::Schemas { action } => match action {
            SchemasAction::Register { dir } => cli::schemas::register(&settings, &dir).await?,
            SchemasAction::Check { dir } => {
                if cli::schemas::check(&settings, &dir).await? {
                    std::process::exit(3);
                }
            }
        },
        Command::Twilio {
            action:
                TwilioAction::Configure {
                    number,
                    service,
                    check,
                },
        } => {
            let drift = cli::twilio::configure(&settings, number, service, check).await?;
            if drift > 0 {
                std::process::exit(3);
            }
        }
        Command::Extract {
            source,
            region,
            time_zone,
            received_at,
        } => {
            let options = cli::extract::Options {
                source,
                region,
                time_zone,
                received_at,
            };
            cli::extract::run(&settings, options).await?
        }
        Command::Topics {
            file,
            check,
            allow_lower_replication,
            emit,
            strimzi_cluster,
        } => {
            if let Some(TopicsFormat::Strimzi) = emit {
                cli::topics::emit_strimzi(&settings, &file, &strimzi_cluster)?;
                return Ok(());
            }
            let lowering = if allow_lower_replication {
                Lowering::Allow
            } else {
                Lowering::Refuse
            };
            let drift = cli::topics::apply(&settings, &file, lowering).await?;
            if check && drift {
                std::process::exit(3);
            }
        }
    }
    Ok(())
}
