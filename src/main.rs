//! The `smsflow` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use smsflow::app::{Application, Role};
use smsflow::config::Settings;
use smsflow::events::{confluent, PhoneState};
use smsflow::kafka::dlq;
use smsflow::kafka::topology::{self, Topology};
use smsflow::phones;
use smsflow::store::migrate;
use smsflow::twilio;

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
    /// Run roles (all available ones when no --role is given).
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
    /// Register the event schemas in the schema registry, or check them against it.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Configure or check Twilio's webhook URLs for this deployment.
    Twilio {
        #[command(subcommand)]
        action: TwilioAction,
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
        Command::Serve { roles } if !roles.is_empty() => roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join("+"),
        Command::Serve { .. } => "all".to_string(),
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
        Command::Serve { roles } => {
            let roles = if roles.is_empty() {
                Role::AVAILABLE.to_vec()
            } else {
                roles
            };
            let shutdown = CancellationToken::new();
            smsflow::shutdown::install(shutdown.clone());
            let app = Application::start(settings, &roles, shutdown).await?;
            app.wait().await?;
            tracing::info!("stopped cleanly");
        }
        Command::Migrate { dir } => {
            let report = migrate::run(&settings.cql, &dir).await?;
            for m in &report.applied {
                println!("applied  {m}");
            }
            for m in &report.already_applied {
                println!("present  {m}");
            }
            println!(
                "keyspace {}: {} applied, {} already present",
                settings.cql.keyspace,
                report.applied.len(),
                report.already_applied.len()
            );
        }
        Command::Dlq { action } => match action {
            DlqAction::List { stage, limit } => {
                let letters = dlq::list(&settings, &dlq::Filter { stage }, limit).await?;
                for l in &letters {
                    println!(
                        "{}  stage={} kind={} attempts={} source={}/{}@{}  {}",
                        l.event_id,
                        l.stage,
                        l.error_kind,
                        l.attempts,
                        l.source_topic,
                        l.source_partition,
                        l.source_offset,
                        l.error
                    );
                }
                println!("{} dead letter(s)", letters.len());
            }
            DlqAction::Replay { stage, dry_run } => {
                let n = dlq::replay(&settings, &dlq::Filter { stage }, dry_run).await?;
                let verb = if dry_run { "would replay" } else { "replayed" };
                println!("{verb} {n} dead letter(s)");
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
                let (phone, state) = phones::ops::link_in_zone(
                    &settings,
                    &phone,
                    &user,
                    verified,
                    send_code,
                    time_zone.as_deref(),
                )
                .await?;
                println!("{phone}  {}", describe(Some(&state)));
            }
            PhonesAction::Unlink { phone } => {
                let phone = phones::ops::unlink(&settings, &phone).await?;
                println!("{phone}  unlinked");
            }
            PhonesAction::Show { phone } => {
                let (phone, state) = phones::ops::show(&settings, &phone).await?;
                println!("{phone}  {}", describe(state.as_ref()));
            }
        },
        Command::Replay { projection } => {
            let n = smsflow::projector::replay(&settings, &projection).await?;
            println!("projection {projection}: re-applied {n} event(s) from offset 0");
        }
        Command::Schemas { action } => {
            let client = confluent::RegistryClient::new(&settings.kafka.schema_registry)?;
            let prefix = &settings.kafka.topic_prefix;
            match action {
                SchemasAction::Register { dir } => {
                    for r in confluent::register(&client, &dir, prefix).await? {
                        println!(
                            "registered  {}  id {}  version {}  compatibility {}  ({})",
                            r.subject,
                            r.id,
                            r.version.map_or("?".into(), |v| v.to_string()),
                            confluent::COMPATIBILITY,
                            r.events.join(", ")
                        );
                    }
                    println!("registry {}", client.url());
                }
                SchemasAction::Check { dir } => {
                    let report = confluent::check(&client, &dir, prefix).await?;
                    for s in &report.subjects {
                        match &s.verdict {
                            confluent::Verdict::Unchanged => {
                                println!("unchanged     {}", s.subject)
                            }
                            confluent::Verdict::New => {
                                println!("new           {} (register creates it)", s.subject)
                            }
                            confluent::Verdict::Compatible => {
                                println!("compatible    {}", s.subject)
                            }
                            confluent::Verdict::Incompatible { reason } => {
                                println!("INCOMPATIBLE  {}: {reason}", s.subject)
                            }
                        }
                    }
                    println!("registry {}", client.url());
                    if report.has_incompatible() {
                        std::process::exit(3);
                    }
                }
            }
        }
        Command::Twilio {
            action:
                TwilioAction::Configure {
                    number,
                    service,
                    check,
                },
        } => twilio_configure(&settings, number, service, check).await?,
        Command::Extract {
            source,
            region,
            time_zone,
            received_at,
        } => {
            use smsflow::stages::enrich::{batch, Extractor};
            let tz = time_zone.unwrap_or_else(|| settings.enrich.default_time_zone.clone());
            let defaults =
                batch::Defaults::parse(&source, region.as_deref(), &tz, received_at.as_deref())?;
            let extractor = Extractor::new(&settings.enrich.llm)?;
            let input = tokio::io::BufReader::new(tokio::io::stdin());
            let summary = batch::run(input, tokio::io::stdout(), &defaults, &extractor).await?;
            if summary.errors > 0 {
                anyhow::bail!(
                    "{} of {} lines could not be read (see their \"error\" fields)",
                    summary.errors,
                    summary.lines
                );
            }
        }
        Command::Topics {
            file,
            check,
            allow_lower_replication,
            emit,
            strimzi_cluster,
        } => {
            let topo = Topology::load(&file)?;
            if let Some(TopicsFormat::Strimzi) = emit {
                print!(
                    "{}",
                    topo.strimzi_topics(&settings.kafka.topic_prefix, &strimzi_cluster)
                );
                return Ok(());
            }
            let lowering = if allow_lower_replication {
                topology::Lowering::Allow
            } else {
                topology::Lowering::Refuse
            };
            let report = topology::apply(&settings.kafka, &topo, lowering).await?;
            for t in &report.created {
                println!("created  {t}");
            }
            for t in &report.unchanged {
                println!("ok       {t}");
            }
            for n in &report.notes {
                println!("note     {n}");
            }
            for d in &report.drift {
                println!("DRIFT    {d}");
            }
            if check && !report.drift.is_empty() {
                std::process::exit(3);
            }
        }
    }
    Ok(())
}

async fn twilio_configure(
    settings: &Settings,
    number: Option<String>,
    service: Option<String>,
    check: bool,
) -> anyhow::Result<()> {
    let webhooks = &settings.twilio.webhooks;
    for p in twilio::public_url::problems(
        &settings.http.public_url,
        &webhooks.overrides,
        settings.kafka.produce_deadline,
    ) {
        eprintln!("warning  {p}");
    }
    let target = twilio::Target::choose(number.as_deref(), service.as_deref(), webhooks)
        .context("name the resource: --number, --service, twilio.webhooks.phone_number or twilio.webhooks.messaging_service_sid")?;
    let plan = twilio::WebhookPlan::new(
        &settings.http.public_url,
        webhooks,
        settings.notify.status_callback_url.as_deref(),
    )?;
    let client = twilio::TwilioRest::new(
        settings.twilio.account_sid.as_deref(),
        settings.twilio.auth_token.clone().map(Into::into),
        webhooks,
    )?;
    let report = twilio::configure(&client, &target, &plan, check).await?;
    println!("{}", report.resource);
    for f in &report.before {
        let tag = match (&f.desired, f.matches()) {
            (None, _) => "note ",
            (Some(_), true) => "ok   ",
            (Some(_), false) if report.updated => "SET  ",
            (Some(_), false) => "DRIFT",
        };
        println!("{tag}    {f}");
    }
    let drift = report.drift().count();
    match (check, drift) {
        (_, 0) => println!("in sync: Twilio calls the URLs this deployment expects"),
        (true, n) => {
            println!("{n} field(s) differ; `smsflow twilio configure` sets them");
            std::process::exit(3);
        }
        (false, n) => println!("updated {n} field(s) and read them back"),
    }
    Ok(())
}

fn describe(state: Option<&PhoneState>) -> String {
    match state {
        None => "not registered".into(),
        Some(s) => format!(
            "user={} verified={} opted_out={} time_zone={}",
            s.user_id.as_deref().unwrap_or("-"),
            s.verified,
            s.opted_out,
            s.time_zone.as_deref().unwrap_or("-")
        ),
    }
}
