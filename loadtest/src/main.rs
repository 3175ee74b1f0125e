//! `smsflow-loadtest`: an open-loop load generator for the webhook, and a bare HTTP route to
//! measure the ceiling it is compared against.

mod open_loop;
mod payload;
mod report;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "smsflow-loadtest",
    about = "Open-loop load generator for the smsflow webhook"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send signed webhooks at a fixed rate and report ack latency from the intended send time.
    Run(RunArgs),
    /// Produce to Kafka at a fixed rate with smsflow's own producer settings (acks=all,
    /// idempotent) and report the acknowledgement latency: the produce ceiling for the webhook.
    Produce(ProduceArgs),
    /// Serve `POST /*` with 200 and empty TwiML: the ceiling for the webhook.
    BareRoute {
        #[arg(long, default_value = "127.0.0.1:18090")]
        addr: std::net::SocketAddr,
    },
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
    /// Most requests in flight; beyond it requests wait, and the wait counts as latency.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Distinct senders (keys); keep it high to stay under per-sender rate limits.
    #[arg(long, default_value_t = 100_000)]
    senders: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the JSON result.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// A name for this run in the report.
    #[arg(long, default_value = "smsflow")]
    label: String,
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
    json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let result = run(args.clone()).await?;
            println!("{}", report::table(&result));
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_vec_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::BareRoute { addr } => bare_route(addr).await,
        Command::Produce(args) => {
            let result = produce(args.clone()).await?;
            println!("{}", report::table(&result));
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_vec_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<report::RunResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight)
        .timeout(Duration::from_secs(15))
        .build()?;
    let url = format!("{}{}", args.target.trim_end_matches('/'), args.path);
    let signed_url = format!("{}{}", args.public_url.trim_end_matches('/'), args.path);
    let plan = open_loop::Plan {
        label: args.label.clone(),
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        max_in_flight: args.max_in_flight,
    };
    open_loop::drive(&plan, |i| {
        let hook = payload::webhook(args.seed, i, args.senders, &signed_url, &args.token);
        let request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", hook.signature)
            .body(hook.body);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}

async fn produce(args: ProduceArgs) -> anyhow::Result<report::RunResult> {
    // smsflow.toml / SMSFLOW_* apply, so the client settings are exactly the webhook's.
    let settings = smsflow::config::Settings::load(None)?;
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "loadtest-produce")?;
    let payload = Arc::new(vec![0x5Au8; args.record_size]);
    let plan = open_loop::Plan {
        label: "raw-produce".into(),
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        max_in_flight: 100_000,
    };
    open_loop::drive(&plan, |i| {
        let (producer, topic, payload) = (producer.clone(), args.topic.clone(), payload.clone());
        let key = format!("k{}", i % args.keys.max(1));
        async move {
            producer
                .send_bytes(&topic, &key, "LoadTest", &payload)
                .await
                .is_ok()
        }
    })
    .await
}

async fn bare_route(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
        )
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("bare route on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
