//! `smsflow-loadtest`: an open-loop load generator for the webhook, and a bare HTTP route to
//! measure the ceiling it is compared against.

mod payload;
mod report;
mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

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
    let warmup_n = schedule::count(args.warmup, args.rate);
    let total = warmup_n + schedule::count(args.duration, args.rate);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(args.max_in_flight));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + schedule::due(i, args.rate);
        tokio::time::sleep_until(due).await;
        let permit = permits.clone().acquire_owned().await?;
        let hook = payload::webhook(args.seed, i, args.senders, &signed_url, &args.token);
        let (client, url, hist, ok, failed) = (
            client.clone(),
            url.clone(),
            hist.clone(),
            ok.clone(),
            failed.clone(),
        );
        let measured = i >= warmup_n;
        tasks.spawn(async move {
            let resp = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", hook.signature)
                .body(hook.body)
                .send()
                .await;
            // From the intended send time: queueing behind a slow server counts.
            let latency = due.elapsed();
            drop(permit);
            if !measured {
                return;
            }
            match resp {
                Ok(r) if r.status().is_success() => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = hist.lock() {
                        h.saturating_record(latency.as_micros().max(1) as u64);
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Reap finished tasks as we go so the set stays bounded by max_in_flight.
        while tasks.try_join_next().is_some() {}
    }
    let sent_by = Instant::now();
    while tasks.join_next().await.is_some() {}
    let measured_wall = sent_by
        .duration_since(start.into_std() + args.warmup)
        .as_secs_f64()
        .max(1e-9);
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    Ok(report::RunResult::new(
        &args.label,
        args.rate,
        &hist,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        measured_wall,
    ))
}

async fn produce(args: ProduceArgs) -> anyhow::Result<report::RunResult> {
    // smsflow.toml / SMSFLOW_* apply, so the client settings are exactly the webhook's.
    let settings = smsflow::config::Settings::load(None)?;
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "loadtest-produce")?;
    let payload = vec![0x5Au8; args.record_size];
    let warmup_n = schedule::count(args.warmup, args.rate);
    let total = warmup_n + schedule::count(args.duration, args.rate);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + schedule::due(i, args.rate);
        tokio::time::sleep_until(due).await;
        let (producer, topic, payload, hist, ok, failed) = (
            producer.clone(),
            args.topic.clone(),
            payload.clone(),
            hist.clone(),
            ok.clone(),
            failed.clone(),
        );
        let key = format!("k{}", i % args.keys.max(1));
        let measured = i >= warmup_n;
        tasks.spawn(async move {
            let r = producer
                .send_bytes(&topic, &key, "LoadTest", &payload)
                .await;
            let latency = due.elapsed();
            if !measured {
                return;
            }
            if r.is_ok() {
                ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut h) = hist.lock() {
                    h.saturating_record(latency.as_micros().max(1) as u64);
                }
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    let sent_by = Instant::now();
    while tasks.join_next().await.is_some() {}
    let wall = sent_by
        .duration_since(start.into_std() + args.warmup)
        .as_secs_f64()
        .max(1e-9);
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    Ok(report::RunResult::new(
        "raw-produce",
        args.rate,
        &hist,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        wall,
    ))
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
