//! Resident memory against requests in flight: while the generator sends, a sampler reads
//! `VmRSS` of every watched process and the generator's count of unanswered requests at a
//! fixed interval. The first sample, taken before the first send, is the baseline; the extra
//! memory at the peak, divided by the most requests in flight, gives MiB per 10k in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cost::{self, Watched};
use crate::webhook::Progress;

/// Most samples kept (about three hours at the default 100 ms); later ones are dropped.
const MAX_SAMPLES: usize = 100_000;

/// One reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Since the sampler started, in ms.
    pub t_ms: u64,
    /// The most requests in flight since the previous sample (not only at this instant).
    pub in_flight: u64,
    /// VmRSS in MiB of each watched process, in `Memory::names` order; `None` if unreadable.
    pub rss_mib: Vec<Option<f64>>,
}

/// What one process's memory did against the requests in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryUse {
    pub name: String,
    /// Before the first request was sent.
    pub baseline_mib: f64,
    pub peak_mib: f64,
    /// Most requests in flight in any sample.
    pub peak_in_flight: u64,
    /// Requests in flight in the sample with the most memory.
    pub in_flight_at_peak_mib: u64,
    /// (peak - baseline) scaled to 10,000 requests in flight at the most seen.
    pub extra_mib_per_10k: f64,
    /// Least-squares slope of RSS over requests in flight, per 10,000: the same figure,
    /// less sensitive to one high sample (but blind to memory that is not given back).
    pub slope_mib_per_10k: f64,
}

/// The sampled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub interval_ms: u64,
    pub names: Vec<String>,
    pub per_process: Vec<MemoryUse>,
    /// Samples left out once `MAX_SAMPLES` were kept.
    pub dropped: u64,
    pub samples: Vec<Sample>,
}

/// A running sampler.
pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(Vec<Sample>, u64)>,
    names: Vec<String>,
    interval: Duration,
}

/// Take the first sample now, then one every `interval` until `finish`.
pub fn start(watched: &[Watched], progress: Arc<Progress>, interval: Duration) -> Sampler {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
    let interval = interval.max(Duration::from_millis(10));
    let task = tokio::spawn(async move {
        let began = Instant::now();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut samples, mut dropped) = (Vec::new(), 0u64);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = &mut stopped => break,
            }
            let sample = Sample {
                t_ms: began.elapsed().as_millis() as u64,
                in_flight: progress.take_peak(),
                rss_mib: pids
                    .iter()
                    .map(|pid| cost::status_bytes(*pid, "VmRSS").ok().map(mib))
                    .collect(),
            };
            if samples.len() < MAX_SAMPLES {
                samples.push(sample);
            } else {
                dropped += 1;
            }
        }
        (samples, dropped)
    });
    Sampler {
        stop,
        task,
        names: watched.iter().map(|w| w.name.clone()).collect(),
        interval,
    }
}

impl Sampler {
    /// Stop sampling and summarise.
    pub async fn finish(self) -> anyhow::Result<Memory> {
        // The task may already have ended; then its result is all there is.
        let _ = self.stop.send(());
        let (samples, dropped) = self.task.await?;
        Ok(Memory {
            interval_ms: self.interval.as_millis() as u64,
            per_process: summarise(&self.names, &samples),
            names: self.names,
            dropped,
            samples,
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Baseline, peak and MiB per 10k in flight of each process.
pub fn summarise(names: &[String], samples: &[Sample]) -> Vec<MemoryUse> {
    let peak_in_flight = samples.iter().map(|s| s.in_flight).max().unwrap_or(0);
    names
        .iter()
        .enumerate()
        .filter_map(|(k, name)| {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|s| Some((s.in_flight as f64, s.rss_mib.get(k).copied()??)))
                .collect();
            let baseline = samples.first()?.rss_mib.get(k).copied()??;
            let (at_peak, peak) = samples
                .iter()
                .filter_map(|s| Some((s.in_flight, s.rss_mib.get(k).copied()??)))
                .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
            let per_10k = |mib: f64| {
                if peak_in_flight == 0 {
                    0.0
                } else {
                    mib * 10_000.0 / peak_in_flight as f64
                }
            };
            Some(MemoryUse {
                name: name.clone(),
                baseline_mib: baseline,
                peak_mib: peak,
                peak_in_flight,
                in_flight_at_peak_mib: at_peak,
                extra_mib_per_10k: per_10k(peak - baseline),
                slope_mib_per_10k: slope(&points) * 10_000.0,
            })
        })
        .collect()
}

/// Least-squares slope of y over x; 0 when x does not vary.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (cov, var) = points.iter().fold((0.0, 0.0), |(c, v), (x, y)| {
        (c + (x - mx) * (y - my), v + (x - mx) * (x - mx))
    });
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// The memory table for the terminal.
pub fn table(m: &Memory) -> String {
    let mut out = format!(
        "memory against requests in flight ({} samples every {} ms)\n\
         | process | baseline MiB | peak MiB | peak in flight | in flight at peak RSS | extra MiB per 10k in flight | slope MiB per 10k |\n\
         |---|---|---|---|---|---|---|\n",
        m.samples.len(),
        m.interval_ms
    );
    for u in &m.per_process {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} |\n",
            u.name,
            u.baseline_mib,
            u.peak_mib,
            u.peak_in_flight,
            u.in_flight_at_peak_mib,
            u.extra_mib_per_10k,
            u.slope_mib_per_10k
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, in_flight: u64, rss: f64) -> Sample {
        Sample {
            t_ms,
            in_flight,
            rss_mib: vec![Some(rss), None],
        }
    }

    #[test]
    fn extra_memory_is_scaled_to_ten_thousand_in_flight() {
        // 30 MiB at rest, +2 MiB per 1,000 in flight, up to 5,000 in flight.
        let samples: Vec<Sample> = (0..=5)
            .map(|k| sample(k * 100, k * 1000, 30.0 + 2.0 * k as f64))
            .collect();
        let names = vec!["ingress".to_string(), "gone".to_string()];
        let u = summarise(&names, &samples);
        assert_eq!(u.len(), 1, "a process never read is left out");
        let u = &u[0];
        assert_eq!((u.baseline_mib, u.peak_mib), (30.0, 40.0));
        assert_eq!((u.peak_in_flight, u.in_flight_at_peak_mib), (5000, 5000));
        assert!((u.extra_mib_per_10k - 20.0).abs() < 1e-9, "{u:?}");
        assert!((u.slope_mib_per_10k - 20.0).abs() < 1e-9, "{u:?}");
        assert!(summarise(&names, &[]).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_reads_this_process_and_the_in_flight_count() {
        // Paused time: the sleeps below advance the clock at once, so the sampler sees the
        // count before and after the change in a fixed number of ticks.
        let progress = Arc::new(Progress::default());
        let me = Watched {
            name: "me".into(),
            pid: std::process::id(),
        };
        let sampler = start(&[me], progress.clone(), Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(5)).await;
        for _ in 0..7 {
            progress.started();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        // Nine sent and answered between two ticks: the sample still sees nine in flight.
        for _ in 0..2 {
            progress.started();
        }
        for _ in 0..9 {
            progress.finished();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        let m = sampler.finish().await.unwrap();
        assert_eq!(
            m.samples[0].in_flight, 0,
            "the baseline comes before the sends"
        );
        assert!(
            m.samples.iter().filter(|s| s.in_flight == 7).count() >= 2,
            "{:?}",
            m.samples
        );
        assert_eq!(m.per_process.len(), 1);
        assert!(m.per_process[0].baseline_mib > 0.0);
        assert_eq!(m.per_process[0].peak_in_flight, 9);
        assert_eq!(
            m.samples.last().map(|s| s.in_flight),
            Some(0),
            "the interval after all were answered starts from the count then"
        );
    }
}
