//! The open-loop driver shared by every generator: request `i` starts at its due time, at most
//! `max_in_flight` run at once, and latency is measured from the due time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::report::{self, RunResult, Timeline};
use crate::schedule;

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub label: String,
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_in_flight: usize,
}

impl Plan {
    /// Requests sent before measuring starts.
    pub fn warmup_requests(&self) -> u64 {
        schedule::count(self.warmup, self.rate)
    }

    /// Every request of the run, warm-up included.
    pub fn total_requests(&self) -> u64 {
        self.warmup_requests() + schedule::count(self.duration, self.rate)
    }
}

/// Run `request(i)` for every scheduled `i`; each returns whether it succeeded.
pub async fn drive<F, Fut>(plan: &Plan, request: F) -> anyhow::Result<RunResult>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let warmup_n = plan.warmup_requests();
    let total = plan.total_requests();
    let hist = Arc::new(Mutex::new(report::histogram()?));
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let permits = Arc::new(Semaphore::new(plan.max_in_flight));
    let lead = Duration::from_millis(50);
    let start = tokio::time::Instant::now() + lead;
    // The wall clock of request 0's due time: the read model's timestamps are wall clock.
    let start_unix_us = smsflow::clock::now_micros() + lead.as_micros() as i64;
    let measured_from = start + plan.warmup;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + schedule::due(i, plan.rate);
        tokio::time::sleep_until(due).await;
        // Waiting for a permit delays the send, and that wait counts: latency runs from `due`.
        let permit = permits.clone().acquire_owned().await?;
        let work = request(i);
        let (hist, timeline, ok, failed) =
            (hist.clone(), timeline.clone(), ok.clone(), failed.clone());
        let measured = i >= warmup_n;
        tasks.spawn(async move {
            let success = work.await;
            let latency = due.elapsed();
            drop(permit);
            if !measured {
                return;
            }
            let second = due.duration_since(measured_from).as_secs();
            if let Ok(mut t) = timeline.lock() {
                t.record(second, success, latency);
            }
            if success {
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
        .duration_since(measured_from.into_std())
        .as_secs_f64()
        .max(1e-9);
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    let timeline = std::mem::take(
        &mut *timeline
            .lock()
            .map_err(|_| anyhow::anyhow!("timeline lock poisoned"))?,
    );
    let mut result = RunResult::new(
        &plan.label,
        plan.rate,
        &hist,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        wall,
    );
    result.start_unix_us = start_unix_us;
    result.warmup_requests = warmup_n;
    result.total_requests = total;
    result.timeline = timeline.seconds();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64, secs: u64, max_in_flight: usize) -> Plan {
        Plan {
            label: "t".into(),
            rate,
            duration: Duration::from_secs(secs),
            warmup: Duration::ZERO,
            max_in_flight,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_request_delays_the_ones_behind_it_and_their_wait_is_measured() {
        // One connection, 10/s; request 0 stalls for a second. A closed-loop generator would
        // report one slow request; open loop charges the wait to the nine queued behind it.
        let r = drive(&plan(10.0, 2, 1), |i| async move {
            if i == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            true
        })
        .await
        .unwrap();
        assert_eq!(r.ok, 20);
        assert!((r.max_ms - 1000.0).abs() < 5.0, "max {}", r.max_ms);
        let slow: u64 = r.timeline.iter().map(|s| s.ok).sum::<u64>();
        assert_eq!(slow, 20);
        assert!(
            r.timeline[0].p50_ms > 400.0,
            "requests due in second 0 waited behind the stall: {:?}",
            r.timeline[0]
        );
        assert!(r.timeline[1].max_ms < 5.0, "{:?}", r.timeline[1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_does_not_shift_the_schedule_of_later_requests() {
        // With room in flight, request 5 stalling must not delay when 6.. are sent.
        let sent = Arc::new(Mutex::new(Vec::new()));
        let t0 = tokio::time::Instant::now();
        let log = sent.clone();
        let r = drive(&plan(10.0, 1, 64), move |i| {
            log.lock().unwrap().push((i, t0.elapsed()));
            async move {
                if i == 5 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                true
            }
        })
        .await
        .unwrap();
        assert_eq!(r.ok, 10);
        for (i, at) in sent.lock().unwrap().iter() {
            let due = Duration::from_millis(50) + schedule::due(*i, 10.0);
            assert!(
                at.abs_diff(due) < Duration::from_millis(2),
                "request {i} sent at {at:?}, due {due:?}"
            );
        }
        assert!((r.max_ms - 3000.0).abs() < 5.0, "max {}", r.max_ms);
    }
}
