//! Resettable operator statistics behind `/v1/admin/stats`. Prometheus counters stay
//! monotonic (their contract); these are the "since last reset" view the old monitoring API had.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters and latency distributions since start or the last reset.
pub struct Stats {
    since: Mutex<Instant>,
    pub webhooks_accepted: AtomicU64,
    pub webhooks_refused: AtomicU64,
    pub events_projected: AtomicU64,
    pub projector_poison: AtomicU64,
    pub projector_retries: AtomicU64,
    pub spans_dropped: AtomicU64,
    pub phone_cache_hits: AtomicU64,
    pub phone_cache_misses: AtomicU64,
    webhook_latency_us: Mutex<Histogram<u64>>,
    end_to_end_us: Mutex<Histogram<u64>>,
}

/// A latency summary in milliseconds.
#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The JSON shape of the resettable counters.
#[derive(Debug, Serialize)]
pub struct StatsSnapshot {
    pub since_seconds: f64,
    pub webhooks_accepted: u64,
    pub webhooks_refused: u64,
    pub events_projected: u64,
    pub projector_poison: u64,
    pub projector_retries: u64,
    pub trace_spans_dropped: u64,
    pub phone_cache_hits: u64,
    pub phone_cache_misses: u64,
    /// Hits over lookups since the last reset; null before the first lookup.
    pub phone_cache_hit_ratio: Option<f64>,
    pub webhook_latency: LatencySummary,
    pub end_to_end_latency: LatencySummary,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits: bounded memory (tens of KiB).
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is a valid precision"))
}

/// The process-wide statistics.
pub fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(|| Stats {
        since: Mutex::new(Instant::now()),
        webhooks_accepted: AtomicU64::new(0),
        webhooks_refused: AtomicU64::new(0),
        events_projected: AtomicU64::new(0),
        projector_poison: AtomicU64::new(0),
        projector_retries: AtomicU64::new(0),
        spans_dropped: AtomicU64::new(0),
        phone_cache_hits: AtomicU64::new(0),
        phone_cache_misses: AtomicU64::new(0),
        webhook_latency_us: Mutex::new(histogram()),
        end_to_end_us: Mutex::new(histogram()),
    })
}

impl Stats {
    /// Record a webhook answer time.
    pub fn webhook_latency(&self, d: Duration) {
        record(&self.webhook_latency_us, d);
    }

    /// Record a webhook-to-read-model time.
    pub fn end_to_end(&self, d: Duration) {
        record(&self.end_to_end_us, d);
    }

    /// Add one to a counter.
    pub fn incr(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let since = self.since.lock().map(|s| s.elapsed()).unwrap_or_default();
        let hits = self.phone_cache_hits.load(Ordering::Relaxed);
        let misses = self.phone_cache_misses.load(Ordering::Relaxed);
        StatsSnapshot {
            since_seconds: since.as_secs_f64(),
            webhooks_accepted: self.webhooks_accepted.load(Ordering::Relaxed),
            webhooks_refused: self.webhooks_refused.load(Ordering::Relaxed),
            events_projected: self.events_projected.load(Ordering::Relaxed),
            projector_poison: self.projector_poison.load(Ordering::Relaxed),
            projector_retries: self.projector_retries.load(Ordering::Relaxed),
            trace_spans_dropped: self.spans_dropped.load(Ordering::Relaxed),
            phone_cache_hits: hits,
            phone_cache_misses: misses,
            phone_cache_hit_ratio: (hits + misses > 0)
                .then(|| hits as f64 / (hits + misses) as f64),
            webhook_latency: summary(&self.webhook_latency_us),
            end_to_end_latency: summary(&self.end_to_end_us),
        }
    }

    /// Zero every resettable counter and distribution.
    pub fn reset(&self) {
        for c in [
            &self.webhooks_accepted,
            &self.webhooks_refused,
            &self.events_projected,
            &self.projector_poison,
            &self.projector_retries,
            &self.spans_dropped,
            &self.phone_cache_hits,
            &self.phone_cache_misses,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for h in [&self.webhook_latency_us, &self.end_to_end_us] {
            if let Ok(mut h) = h.lock() {
                h.reset();
            }
        }
        if let Ok(mut s) = self.since.lock() {
            *s = Instant::now();
        }
    }
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    if let Ok(mut h) = h.lock() {
        h.saturating_record(d.as_micros().clamp(1, u64::MAX as u128) as u64);
    }
}

fn summary(h: &Mutex<Histogram<u64>>) -> LatencySummary {
    let Ok(h) = h.lock() else {
        return LatencySummary {
            count: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        };
    };
    let ms = |us: u64| us as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}
