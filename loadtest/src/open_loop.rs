//! The open-loop driver shared by every generator: request `i` starts at its due time, at most
//! `max_in_flight` run at once, and latency is measured from the due time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::report::RunResult;
use crate::schedule;

/// The shape of a run.
pub struct Plan {
    pub label: String,
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_in_flight: usize,
}

/// Run `request(i)` for every scheduled `i`; each returns whether it succeeded.
pub async fn drive<F, Fut>(plan: &Plan, request: F) -> anyhow::Result<RunResult>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let warmup_n = schedule::count(plan.warmup, plan.rate);
    let total = warmup_n + schedule::count(plan.duration, plan.rate);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let permits = Arc::new(Semaphore::new(plan.max_in_flight));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + schedule::due(i, plan.rate);
        tokio::time::sleep_until(due).await;
        // Waiting for a permit delays the send, and that wait counts: latency runs from `due`.
        let permit = permits.clone().acquire_owned().await?;
        let work = request(i);
        let (hist, ok, failed) = (hist.clone(), ok.clone(), failed.clone());
        let measured = i >= warmup_n;
        tasks.spawn(async move {
            let success = work.await;
            let latency = due.elapsed();
            drop(permit);
            if !measured {
                return;
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
        .duration_since(start.into_std() + plan.warmup)
        .as_secs_f64()
        .max(1e-9);
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    Ok(RunResult::new(
        &plan.label,
        plan.rate,
        &hist,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        wall,
    ))
}
