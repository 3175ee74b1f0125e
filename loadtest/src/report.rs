//! The result of a run: ack latency percentiles from HdrHistogram, success rate, achieved rate.

use hdrhistogram::Histogram;
use serde::Serialize;

/// One run, as printed and as written to JSON.
#[derive(Debug, Serialize)]
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
        let ms = |us: u64| us as f64 / 1000.0;
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
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
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
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap(); // 1..1000 ms
        }
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
}
