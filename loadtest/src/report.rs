//! The result of a run: latency percentiles from HdrHistogram, success rate, achieved rate, the
//! exported distribution and a per-second timeline, as printed and as written to JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram records: one minute, in microseconds.
const MAX_US: u64 = 60_000_000;
/// Longest timeline kept, in seconds; later seconds are folded into the last one.
const MAX_SECONDS: u64 = 24 * 3600;

/// A histogram of microseconds, 1 µs to 60 s, three significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, MAX_US, 3)?)
}

/// One point of a latency distribution: the value at `quantile`, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantilePoint {
    pub quantile: f64,
    pub ms: f64,
}

/// The quantiles exported for the distribution chart: up to 99.999 % and the maximum.
const EXPORTED: &[f64] = &[
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0,
];

/// Export a histogram of microseconds as a latency distribution in milliseconds.
pub fn distribution(h: &Histogram<u64>) -> Vec<QuantilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    EXPORTED
        .iter()
        .map(|&q| QuantilePoint {
            quantile: q,
            ms: h.value_at_quantile(q) as f64 / 1000.0,
        })
        .collect()
}

/// Percentiles of one histogram of microseconds, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// Summarise a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// One second of a run, by due time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub t: u64,
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Per-second counts and latency of the measured part of a run.
#[derive(Default)]
pub struct Timeline {
    seconds: Vec<(u64, u64, Option<Histogram<u64>>)>,
}

impl Timeline {
    /// Count one request due in `second` (from the end of warm-up).
    pub fn record(&mut self, second: u64, success: bool, latency: Duration) {
        let idx = second.min(MAX_SECONDS) as usize;
        if self.seconds.len() <= idx {
            self.seconds.resize_with(idx + 1, || (0, 0, None));
        }
        let slot = &mut self.seconds[idx];
        if !success {
            slot.1 += 1;
            return;
        }
        slot.0 += 1;
        // Two significant digits are plenty for a chart and keep a long run small.
        if slot.2.is_none() {
            slot.2 = Histogram::new_with_bounds(1, MAX_US, 2).ok();
        }
        if let Some(h) = slot.2.as_mut() {
            h.saturating_record(latency.as_micros().max(1) as u64);
        }
    }

    /// The seconds in order, empty ones included.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(t, (ok, failed, h))| {
                let q = |q: f64| {
                    h.as_ref()
                        .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1e3)
                };
                Second {
                    t: t as u64,
                    ok: *ok,
                    failed: *failed,
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    max_ms: h.as_ref().map_or(0.0, |h| h.max() as f64 / 1e3),
                }
            })
            .collect()
    }
}

/// One run, as printed and as written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub ok: u64,
    pub failed: u64,
    pub success_rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Wall clock of request 0's due time, µs since the epoch.
    #[serde(default)]
    pub start_unix_us: i64,
    #[serde(default)]
    pub warmup_requests: u64,
    #[serde(default)]
    pub total_requests: u64,
    #[serde(default)]
    pub distribution: Vec<QuantilePoint>,
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// Why measured requests failed, by kind (`status 503`, `timeout`, `connect`, ...), where
    /// the driver knows: a failure without a cause cannot be told from a lost message.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub failures: std::collections::BTreeMap<String, u64>,
}

impl RunResult {
    /// Summarise a histogram of microseconds.
    pub fn new(
        label: &str,
        target_rate: f64,
        h: &Histogram<u64>,
        ok: u64,
        failed: u64,
        seconds: f64,
    ) -> RunResult {
        let p = Percentiles::of(h);
        let total = ok + failed;
        RunResult {
            label: label.to_owned(),
            target_rate,
            achieved_rate: total as f64 / seconds,
            ok,
            failed,
            success_rate: if total == 0 {
                0.0
            } else {
                ok as f64 / total as f64
            },
            p50_ms: p.p50_ms,
            p90_ms: p.p90_ms,
            p99_ms: p.p99_ms,
            p999_ms: p.p999_ms,
            max_ms: p.max_ms,
            mean_ms: p.mean_ms,
            start_unix_us: 0,
            warmup_requests: 0,
            total_requests: total,
            distribution: distribution(h),
            timeline: Vec::new(),
            failures: Default::default(),
        }
    }
}

/// A one-run table for the terminal.
pub fn table(r: &RunResult) -> String {
    format!(
        "| run | target/s | achieved/s | ok | failed | success | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {:.0} | {:.0} | {} | {} | {:.4} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        r.label, r.target_rate, r.achieved_rate, r.ok, r.failed, r.success_rate, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms
    ) + &failure_line(r)
}

/// `\nfailed: status 503 x1, timeout x2` when the causes of failures are known, else nothing.
fn failure_line(r: &RunResult) -> String {
    if r.failures.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = r
        .failures
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    format!("\nfailed: {}", kinds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to_a_thousand_ms() -> Histogram<u64> {
        let mut h = histogram().unwrap();
        for ms in 1..=1000u64 {
            h.record(ms * 1000).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let h = one_to_a_thousand_ms();
        let r = RunResult::new("x", 100.0, &h, 1000, 0, 10.0);
        assert!((r.p50_ms - 500.0).abs() < 1.0, "{}", r.p50_ms);
        assert!((r.p99_ms - 990.0).abs() < 1.0, "{}", r.p99_ms);
        assert!((r.max_ms - 1000.0).abs() < 1.0);
        assert_eq!(r.achieved_rate, 100.0);
        assert_eq!(r.success_rate, 1.0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], 1000);
        assert!(table(&r).contains("| x |"));
    }

    #[test]
    fn histogram_export_is_monotonic_ends_at_the_max_and_survives_json() {
        let h = one_to_a_thousand_ms();
        let d = distribution(&h);
        assert_eq!(d.len(), EXPORTED.len());
        assert!((d[0].ms - 1.0).abs() < 0.01, "min {}", d[0].ms);
        let median = d.iter().find(|p| p.quantile == 0.5).unwrap();
        assert!((median.ms - 500.0).abs() < 1.0, "median {}", median.ms);
        assert!((d.last().unwrap().ms - 1000.0).abs() < 1.0);
        assert!(d
            .windows(2)
            .all(|w| w[0].ms <= w[1].ms && w[0].quantile < w[1].quantile));

        let r = RunResult::new("x", 100.0, &h, 1000, 0, 10.0);
        let back: RunResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.distribution, d);
        assert!(distribution(&histogram().unwrap()).is_empty());
    }

    #[test]
    fn timeline_keeps_every_second_and_counts_failures_apart() {
        let mut t = Timeline::default();
        t.record(0, true, Duration::from_millis(2));
        t.record(0, true, Duration::from_millis(4));
        t.record(2, false, Duration::from_millis(9));
        let s = t.seconds();
        assert_eq!(s.len(), 3, "the empty second 1 is kept");
        assert_eq!((s[0].ok, s[0].failed), (2, 0));
        assert!((s[0].max_ms - 4.0).abs() < 0.1, "{}", s[0].max_ms);
        assert_eq!((s[1].ok, s[1].failed), (0, 0));
        assert_eq!((s[2].ok, s[2].failed), (0, 1));
    }
}
