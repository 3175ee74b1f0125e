//! `smsflow-loadtest`: the open-loop webhook generator with end-to-end read-back and cost, the
//! ceilings smsflow is compared against, and the sender list a run uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use smsflow_loadtest::bench::{self, MediaHost, ReadBack};
use smsflow_loadtest::cost::Watched;
use smsflow_loadtest::e2e::{self, Expected, Source, Until};
use smsflow_loadtest::mix::{Kind, Mix};
use smsflow_loadtest::open_loop::Plan;
use smsflow_loadtest::payload::Traffic;
use smsflow_loadtest::report::{self, RunResult};
use smsflow_loadtest::webhook::Target;
use smsflow_loadtest::{ceilings, limits, media, senders, stack};

#[derive(Parser)]
#[command(
    name = "smsflow-loadtest",
    about = "Open-loop load generator and benchmark for smsflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send signed webhooks at a fixed rate and report ack latency from the intended send time;
    /// with --read-back, also end-to-end latency per stage from the read model.
    Run(Box<RunArgs>),
    /// Read a finished run back from the read model (e.g. after starting the projector late).
    ReadBack(ReadBackArgs),
    /// Print the run's sender numbers, one E.164 number per line (to register them first).
    Senders {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Produce to Kafka at a fixed rate with smsflow's own producer settings (acks=all,
    /// idempotent) and report the acknowledgement latency: the produce ceiling for the webhook.
    Produce(ProduceArgs),
    /// Produce and consume the same records with smsflow's client settings: the Kafka part of
    /// the end-to-end ceiling, in microseconds.
    Echo(ProduceArgs),
    /// The projector's own INSERT (or, with `--work projection`, its whole Cassandra work per
    /// message) through the raw driver at its concurrency, as fast as it goes.
    CqlWrites {
        #[arg(long, value_enum, default_value = "insert")]
        work: ceilings::CqlWork,
        /// Statements in flight (the projector's `projector.max_in_flight`).
        #[arg(long)]
        concurrency: Option<usize>,
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Serve `POST /*` with 200 and empty TwiML: the ceiling for the webhook. With
    /// `--relay-topic`, answer only once the body is appended there with smsflow's producer
    /// settings (the memory ceiling: what any such webhook holds while it waits).
    BareRoute {
        #[arg(long, default_value = "127.0.0.1:18090")]
        addr: std::net::SocketAddr,
        #[arg(long)]
        relay_topic: Option<String>,
    },
    /// Count the topics, partitions and keyspaces on the stack (internal ones left out): a
    /// stack full of old runs' partitions slows Kafka down, so a bench run records it.
    StackSize {
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Delete the topics starting with each --topic-prefix and drop each --keyspace: what a
    /// bench run created on the shared stack.
    DropSpaces {
        #[arg(long = "topic-prefix")]
        topic_prefixes: Vec<String>,
        #[arg(long = "keyspace")]
        keyspaces: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReadFrom {
    /// smsflow's `message_status.stage_at`.
    StageAt,
    /// A peer's `WRITETIME(body)` in `messages_by_user`.
    WriteTime,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReadUntil {
    /// The message is in the read model (ingress and projector suffice).
    Projected,
    /// Every part (body and attachments) is enriched: needs the media, transcribe and enrich
    /// stages too.
    Done,
}

impl From<ReadUntil> for Until {
    fn from(r: ReadUntil) -> Until {
        match r {
            ReadUntil::Projected => Until::Projected,
            ReadUntil::Done => Until::Done,
        }
    }
}

impl From<ReadFrom> for Source {
    fn from(r: ReadFrom) -> Source {
        match r {
            ReadFrom::StageAt => Source::StageAt,
            ReadFrom::WriteTime => Source::WriteTime,
        }
    }
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// Base URL the generator connects to.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Public URL the signature covers (smsflow's http.public_url).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    public_url: String,
    #[arg(long, default_value = "/webhooks/twilio/messages")]
    path: String,
    /// Twilio auth token to sign with.
    #[arg(long, env = "TWILIO_AUTH_TOKEN")]
    token: String,
    /// Requests per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Measured duration.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before measuring (sent, not recorded).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Most requests in flight (1 to 65536), one connection each; beyond it requests wait,
    /// and the wait counts as latency. The open-files limit is raised to fit, up to the hard
    /// limit.
    #[arg(long, default_value_t = 1024, value_parser = limits::parse_max_in_flight)]
    max_in_flight: usize,
    /// Shares of text SMS, MMS (1-3 JPEG or vCard attachments) and voice notes (one WAV),
    /// as weights, e.g. sms=80,mms=15,voice=5. Media is served by the generator on loopback.
    #[arg(long, default_value_t = Mix::default())]
    mix: Mix,
    /// Where the media host listens (loopback only; port 0 picks one). The pipeline must
    /// allow fetching from it (media.allowed_hosts, media.allow_addresses).
    #[arg(long, default_value = "127.0.0.1:0")]
    media_addr: std::net::SocketAddr,
    /// Size of each JPEG attachment.
    #[arg(long, default_value_t = 16 * 1024)]
    image_bytes: usize,
    /// Voice notes: 16 kHz 16-bit mono raw PCM, served wrapped in WAV (read only when the
    /// mix has voice notes). Transcribing it takes about 1.5 CPU-seconds with pocketsphinx.
    #[arg(long, default_value = media::DEFAULT_VOICE_PCM)]
    voice_pcm: PathBuf,
    /// What the read-back waits for: the projection, or every part enriched.
    #[arg(long, value_enum, default_value = "projected")]
    until: ReadUntil,
    /// Sample the watched processes' RSS against requests in flight this often, e.g. 100ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    memory_sample: Option<Duration>,
    /// Distinct senders: the list `senders --count N --seed SENDER_SEED` prints (register them
    /// once ingress refuses unknown senders).
    #[arg(long, default_value_t = 1000)]
    senders: u64,
    /// Seed of the sender list; kept apart from --seed so one registration serves every run.
    #[arg(long, default_value_t = 1)]
    sender_seed: u64,
    /// Seed of the traffic: MessageSids and bodies. Use a fresh one per run (ingress dedupes
    /// MessageSids for a day).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Read end-to-end latency back from the read model (SMSFLOW_CQL__* settings apply).
    #[arg(long, value_enum)]
    read_back: Option<ReadFrom>,
    /// How long to wait for the last messages to be projected.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    read_back_deadline: Duration,
    /// A process whose CPU and memory the run costs, as name=pid (repeat).
    #[arg(long = "watch")]
    watch: Vec<Watched>,
    /// Directory for result.json, report.md and the charts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the ack result alone (the older, flat JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// A name for this run in the report.
    #[arg(long, default_value = "smsflow")]
    label: String,
}

#[derive(Parser, Clone)]
struct ReadBackArgs {
    /// The `result.json` of the run (its ack part gives the start, rate and seed).
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum)]
    from: ReadFrom,
    #[arg(long, value_enum, default_value = "projected")]
    until: ReadUntil,
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Parser, Clone)]
struct ProduceArgs {
    /// Topic (created by `smsflow topics`, with the prefix).
    #[arg(long)]
    topic: String,
    /// Payload bytes per record (an encoded MessageReceived is about 400 bytes).
    #[arg(long, default_value_t = 400)]
    record_size: usize,
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[arg(long)]
    json: Option<PathBuf>,
}

impl ProduceArgs {
    fn plan(&self, label: &str) -> Plan {
        Plan {
            label: label.into(),
            rate: self.rate,
            duration: self.duration,
            warmup: self.warmup,
            max_in_flight: 100_000,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(*args).await,
        Command::ReadBack(args) => read_back(args).await,
        Command::Senders { count, seed } => {
            for s in senders::senders(count, seed) {
                println!("{s}");
            }
            Ok(())
        }
        Command::BareRoute {
            addr,
            relay_topic: None,
        } => ceilings::bare_route(addr).await,
        Command::BareRoute {
            addr,
            relay_topic: Some(topic),
        } => {
            let settings = smsflow::config::Settings::load(None)?;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            ceilings::bare_relay(listener, &settings, topic).await
        }
        Command::Produce(args) => {
            // smsflow.toml / SMSFLOW_* apply, so the client settings are exactly the webhook's.
            let settings = smsflow::config::Settings::load(None)?;
            let plan = args.plan("raw-produce");
            let r = ceilings::produce(&settings, &args.topic, args.record_size, args.keys, &plan)
                .await?;
            print_and_save(&r, args.json.as_deref())
        }
        Command::Echo(args) => {
            let settings = smsflow::config::Settings::load(None)?;
            let plan = args.plan("raw-echo");
            let r = ceilings::echo(&settings, &args.topic, args.record_size, &plan).await?;
            print_and_save(&r, args.json.as_deref())
        }
        Command::CqlWrites {
            work,
            concurrency,
            duration,
            warmup,
            json,
        } => {
            let settings = smsflow::config::Settings::load(None)?;
            let concurrency = concurrency.unwrap_or(settings.projector.max_in_flight);
            let r = ceilings::cql_writes(&settings, work, concurrency, warmup, duration).await?;
            let what = match work {
                ceilings::CqlWork::Insert => "INSERT messages_by_user",
                ceilings::CqlWork::Projection => "MessagesProjection::apply (3 statements)",
            };
            println!(
                "raw driver {what} x{}: {:.0}/s, {:.0} statements/s ({} ok, {} failed in {:.1} s), p50 {:.2} ms, p99 {:.2} ms",
                r.concurrency, r.rate, r.statements_rate, r.writes, r.failed, r.seconds, r.latency.p50_ms, r.latency.p99_ms
            );
            if let Some(path) = json {
                write_json(&path, &r)?;
            }
            Ok(())
        }
        Command::StackSize { json } => {
            let settings = smsflow::config::Settings::load(None)?;
            let size = stack::size(&settings).await?;
            println!(
                "stack: {} topics, {} partitions, {} keyspaces (internal ones left out)",
                size.topics, size.partitions, size.keyspaces
            );
            if let Some(path) = json {
                write_json(&path, &size)?;
            }
            Ok(())
        }
        Command::DropSpaces {
            topic_prefixes,
            keyspaces,
        } => {
            let settings = smsflow::config::Settings::load(None)?;
            let dropped = stack::drop_spaces(&settings, &topic_prefixes, &keyspaces).await?;
            println!(
                "dropped {} topics and {} keyspaces",
                dropped.topics.len(),
                dropped.keyspaces.len()
            );
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = smsflow::config::Settings::load(None)?;
    let fds = limits::ensure_fds(args.max_in_flight)?;
    if fds.now != fds.before {
        eprintln!(
            "raised the open-files limit from {} to {} (hard {}) for {} requests in flight",
            fds.before, fds.now, fds.hard, args.max_in_flight
        );
    }
    let media = match args.mix.has_media() {
        false => None,
        true => {
            let voice = (args.mix.weight(Kind::Voice) > 0).then_some(args.voice_pcm.as_path());
            Some(MediaHost {
                addr: args.media_addr,
                assets: media::Assets::load(args.image_bytes, voice)?,
            })
        }
    };
    let opts = bench::Options {
        target: Target {
            base_url: args.target.clone(),
            public_url: args.public_url.clone(),
            path: args.path.clone(),
            token: args.token.clone(),
            traffic: Traffic {
                seed: args.seed,
                senders: Arc::new(senders::senders(args.senders, args.sender_seed)),
                mix: args.mix,
                media_base: None,
            },
        },
        plan: Plan {
            label: args.label.clone(),
            rate: args.rate,
            duration: args.duration,
            warmup: args.warmup,
            max_in_flight: args.max_in_flight,
        },
        read_back: args.read_back.map(|from| ReadBack {
            cql: settings.cql.clone(),
            source: from.into(),
            deadline: args.read_back_deadline,
            until: args.until.into(),
        }),
        watch: args.watch.clone(),
        media,
        memory_every: args.memory_sample,
    };
    let outcome = bench::run(&opts).await?;
    println!("{}", bench::tables(&outcome));
    if let Some(path) = &args.json {
        write_json(path, &outcome.ack)?;
    }
    if let Some(dir) = &args.out {
        for f in bench::write(&outcome, dir)? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

async fn read_back(args: ReadBackArgs) -> anyhow::Result<()> {
    let settings = smsflow::config::Settings::load(None)?;
    let text = std::fs::read(&args.run)
        .with_context(|| format!("reading the run's result {}", args.run.display()))?;
    let outcome: bench::Outcome = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a `run --out` result.json", args.run.display()))?;
    let expected = Expected {
        seed: outcome.seed,
        start_unix_us: outcome.ack.start_unix_us,
        rate: outcome.ack.target_rate,
        first: outcome.ack.warmup_requests,
        end: outcome.ack.total_requests,
        mix: outcome.mix,
        until: args.until.into(),
    };
    let session = smsflow::store::connect_to_keyspace(&settings.cql).await?;
    let e = e2e::collect(&session, args.from.into(), &expected, args.deadline).await?;
    println!("{}", e2e::table(&e));
    if let Some(path) = &args.json {
        write_json(path, &e)?;
    }
    Ok(())
}

fn print_and_save(r: &RunResult, json: Option<&std::path::Path>) -> anyhow::Result<()> {
    println!("{}", report::table(r));
    if let Some(path) = json {
        write_json(path, r)?;
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}
