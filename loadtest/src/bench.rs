//! One measured run against a pipeline: webhook acks, then end-to-end latency from the read
//! model, then what the watched processes spent; written as JSON, Markdown and PNG charts.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::charts::{self, Series, XAxis};
use crate::cost::{self, Cost, Watched};
use crate::e2e::{self, EndToEnd, Expected, Source, Until};
use crate::media::{self, MediaServed, MediaServer};
use crate::memory::{self, Memory};
use crate::mix::Mix;
use crate::open_loop::Plan;
use crate::report::{self, RunResult};
use crate::webhook::{self, Progress, Target};

/// How to read the run back from the read model.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub cql: smsflow::config::CqlSettings,
    pub source: Source,
    /// How long to wait after the last send for every message to be projected.
    pub deadline: Duration,
    /// Wait for the projection of each message, or for every part to be enriched.
    pub until: Until,
}

/// The run's media host, started when the mix has MMS or voice notes.
#[derive(Debug, Clone)]
pub struct MediaHost {
    /// A loopback address; port 0 picks a free one.
    pub addr: std::net::SocketAddr,
    pub assets: media::Assets,
}

/// One run.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub plan: Plan,
    pub read_back: Option<ReadBack>,
    pub watch: Vec<Watched>,
    /// Needed when `target.traffic.mix` has media.
    pub media: Option<MediaHost>,
    /// Sample the watched processes' RSS against requests in flight at this interval.
    pub memory_every: Option<Duration>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub seed: u64,
    #[serde(default)]
    pub mix: Mix,
    pub ack: RunResult,
    pub end_to_end: Option<EndToEnd>,
    /// Over the generator's window (warm-up included), per message sent.
    pub cost: Vec<Cost>,
    /// Messages acknowledged but not yet projected, per second: flat means the pipeline
    /// keeps up (the consumer lag as the sender sees it).
    #[serde(default)]
    pub backlog: Vec<Backlog>,
    /// What the media host served, counted after the read-back.
    #[serde(default)]
    pub media: Option<MediaServed>,
    #[serde(default)]
    pub memory: Option<Memory>,
}

/// The backlog at the end of one second from the end of warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    pub t: i64,
    pub messages: i64,
}

/// Acknowledged minus projected, cumulated second by second.
pub fn backlog(acked: &[report::Second], projected: &[e2e::ProjectedSecond]) -> Vec<Backlog> {
    let last = acked
        .iter()
        .map(|s| s.t as i64)
        .chain(projected.iter().map(|s| s.t))
        .max()
        .unwrap_or(-1);
    let mut sent: std::collections::BTreeMap<i64, i64> = Default::default();
    for s in acked {
        *sent.entry(s.t as i64).or_default() += s.ok as i64;
    }
    let mut done: std::collections::BTreeMap<i64, i64> = Default::default();
    for s in projected {
        // Projected before the measured window: counts as the first second's progress.
        *done.entry(s.t.max(0)).or_default() += s.projected as i64;
    }
    let mut open = 0i64;
    (0..=last)
        .map(|t| {
            open += sent.get(&t).copied().unwrap_or(0) - done.get(&t).copied().unwrap_or(0);
            Backlog { t, messages: open }
        })
        .collect()
}

/// Send, read back, account.
pub async fn run(opts: &Options) -> anyhow::Result<Outcome> {
    // Connect before sending, so a CQL problem fails the run before it loads anything.
    let session = match &opts.read_back {
        Some(rb) => Some(smsflow::store::connect_to_keyspace(&rb.cql).await?),
        None => None,
    };
    let mix = opts.target.traffic.mix;
    let mut target = opts.target.clone();
    let media_server = match (&opts.media, mix.has_media()) {
        (_, false) => None,
        (None, true) => anyhow::bail!(
            "the mix {mix} sends media but no media host was configured (bench::Options::media)"
        ),
        (Some(host), true) => {
            let server = MediaServer::start(host.addr, host.assets.clone()).await?;
            target.traffic.media_base = Some(server.base_url.clone());
            Some(server)
        }
    };
    let progress = Arc::new(Progress::default());
    let sampler = opts
        .memory_every
        .map(|every| memory::start(&opts.watch, progress.clone(), every));
    let before = cost::snapshot(&opts.watch)?;
    let began = Instant::now();
    let ack = webhook::send(&target, &opts.plan, &progress).await;
    let memory = match sampler {
        Some(s) => Some(s.finish().await?),
        None => None,
    };
    let ack = ack?;
    let after = cost::snapshot(&opts.watch)?;
    let cost = cost::between(
        &before,
        &after,
        ack.total_requests,
        began.elapsed().as_secs_f64(),
    )?;
    let end_to_end = match (&opts.read_back, session) {
        (Some(rb), Some(session)) => {
            let expected = Expected {
                seed: opts.target.traffic.seed,
                start_unix_us: ack.start_unix_us,
                rate: opts.plan.rate,
                first: ack.warmup_requests,
                end: ack.total_requests,
                mix,
                until: rb.until,
            };
            Some(e2e::collect(&session, rb.source, &expected, rb.deadline).await?)
        }
        _ => None,
    };
    let backlog = end_to_end
        .as_ref()
        .map(|e| backlog(&ack.timeline, &e.timeline))
        .unwrap_or_default();
    // Read after the read-back, so that fetches of the last messages are in.
    let media = media_server.map(|m| {
        m.served
            .snapshot(progress.media_acked.load(Ordering::Relaxed))
    });
    Ok(Outcome {
        seed: opts.target.traffic.seed,
        mix,
        ack,
        end_to_end,
        cost,
        backlog,
        media,
        memory,
    })
}

/// The tables for the terminal.
pub fn tables(o: &Outcome) -> String {
    let mut out = format!("webhook ack\n{}\n", report::table(&o.ack));
    if let Some(e) = &o.end_to_end {
        out.push_str(&e2e::table(e));
    }
    if let Some(m) = &o.media {
        out.push_str(&format!(
            "media host: {} fetches served for {} attachments of acknowledged webhooks ({} images, {} vCards, {} voice notes, {:.1} MiB, {} not found)\n",
            m.fetches,
            m.expected,
            m.images,
            m.vcards,
            m.voice,
            m.bytes as f64 / (1024.0 * 1024.0),
            m.not_found
        ));
    }
    if !o.cost.is_empty() {
        out.push_str(&cost::table(&o.cost));
    }
    if let Some(m) = &o.memory {
        out.push_str(&memory::table(m));
    }
    out
}

/// Write `result.json`, `report.md` and the charts into `dir`; returns the files written.
/// A chart that cannot be drawn is named in the report, and the rest is still written.
pub fn write(o: &Outcome, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("creating report directory {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let json = dir.join("result.json");
    std::fs::write(&json, serde_json::to_vec_pretty(o)?)?;
    written.push(json);

    let mut md = format!(
        "# {}: {:.0} req/s for {} measured requests, mix {}\n\n{}\n",
        o.ack.label,
        o.ack.target_rate,
        o.ack.ok + o.ack.failed,
        o.mix,
        tables(o)
    );
    for (file, title, draw) in charts_of(o) {
        let path = dir.join(file);
        match draw(&path) {
            Ok(()) => {
                md.push_str(&format!("\n![{title}]({file})\n"));
                written.push(path);
            }
            Err(e) => md.push_str(&format!("\n{title}: chart not drawn: {e}\n")),
        }
    }
    let report = dir.join("report.md");
    std::fs::write(&report, md)?;
    written.push(report);
    Ok(written)
}

type Draw<'a> = Box<dyn Fn(&Path) -> anyhow::Result<()> + 'a>;

fn charts_of(o: &Outcome) -> Vec<(&'static str, &'static str, Draw<'_>)> {
    let quantiles = |d: &[report::QuantilePoint]| -> Vec<(f64, f64)> {
        d.iter()
            .map(|p| (charts::nines(p.quantile), p.ms))
            .collect()
    };
    vec![
        (
            "latency-distribution.png",
            "Latency distribution",
            Box::new(move |path: &Path| {
                let mut series = vec![Series {
                    name: "webhook ack".into(),
                    points: quantiles(&o.ack.distribution),
                }];
                if let Some(e) = &o.end_to_end {
                    series.push(Series {
                        name: "send -> projected".into(),
                        points: quantiles(&e.distribution),
                    });
                }
                charts::line_chart(path, "Latency distribution", XAxis::Nines, "ms", &series)
            }),
        ),
        (
            "latency-over-time.png",
            "Ack latency over time",
            Box::new(move |path: &Path| {
                let line = |name: &str, f: fn(&report::Second) -> f64| Series {
                    name: name.into(),
                    points: o.ack.timeline.iter().map(|s| (s.t as f64, f(s))).collect(),
                };
                charts::line_chart(
                    path,
                    "Webhook ack latency per second",
                    XAxis::Seconds,
                    "ms",
                    &[
                        line("p50", |s| s.p50_ms),
                        line("p99", |s| s.p99_ms),
                        line("max", |s| s.max_ms),
                    ],
                )
            }),
        ),
        (
            "throughput-over-time.png",
            "Throughput over time",
            Box::new(move |path: &Path| {
                let mut series = vec![Series {
                    name: "acked/s".into(),
                    points: o
                        .ack
                        .timeline
                        .iter()
                        .map(|s| (s.t as f64, s.ok as f64))
                        .collect(),
                }];
                if !o.backlog.is_empty() {
                    series.push(Series {
                        name: "backlog (acked, not projected)".into(),
                        points: o
                            .backlog
                            .iter()
                            .map(|b| (b.t as f64, b.messages as f64))
                            .collect(),
                    });
                }
                if let Some(e) = &o.end_to_end {
                    series.push(Series {
                        name: "projected/s".into(),
                        points: e
                            .timeline
                            .iter()
                            .map(|s| (s.t as f64, s.projected as f64))
                            .collect(),
                    });
                }
                charts::line_chart(path, "Throughput", XAxis::Seconds, "messages/s", &series)
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, ok: u64) -> report::Second {
        report::Second {
            t,
            ok,
            failed: 0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        }
    }

    #[test]
    fn backlog_is_acked_minus_projected_and_drains_after_the_last_send() {
        let acked = [second(0, 10), second(1, 10)];
        let projected = [
            e2e::ProjectedSecond { t: 0, projected: 8 },
            e2e::ProjectedSecond { t: 1, projected: 9 },
            e2e::ProjectedSecond { t: 2, projected: 3 },
        ];
        let b: Vec<i64> = backlog(&acked, &projected)
            .iter()
            .map(|b| b.messages)
            .collect();
        assert_eq!(b, vec![2, 3, 0]);
    }
}
