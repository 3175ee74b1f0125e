//! Per-key order with bounded concurrency: jobs run concurrently, except that jobs sharing a
//! key run one after another in the order they were pushed. At most `max_running` run at
//! once; the rest wait, and [`Ordered::len`] tells the caller how many it holds so that it
//! can stop reading (back pressure).
//!
//! The stage runner pushes one batch and drains it; the projection runner pushes and drains
//! continuously.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

type Start<'a, J, O> = Box<dyn FnMut(J) -> BoxFuture<'a, O> + Send + 'a>;

/// The ordered executor. `K` is the ordering key, `J` a job, `O` what a job returns.
pub struct Ordered<'a, K, J, O> {
    start: Start<'a, J, O>,
    running: FuturesUnordered<BoxFuture<'a, (Option<K>, O)>>,
    /// Keys with a job running or ready to run; later jobs of the key wait here, in order.
    busy: HashMap<K, VecDeque<J>>,
    /// Jobs free to run (their key is not running) that wait for a running slot.
    ready: VecDeque<(Option<K>, J)>,
    max_running: usize,
    held: usize,
}

impl<'a, K, J, O> Ordered<'a, K, J, O>
where
    K: Hash + Eq + Clone + Send + 'a,
    J: Send + 'a,
    O: Send + 'a,
{
    /// An executor that turns a job into its future with `start`.
    pub fn new(max_running: usize, start: impl FnMut(J) -> BoxFuture<'a, O> + Send + 'a) -> Self {
        Ordered {
            start: Box::new(start),
            running: FuturesUnordered::new(),
            busy: HashMap::new(),
            ready: VecDeque::new(),
            max_running: max_running.max(1),
            held: 0,
        }
    }

    /// Jobs pushed and not yet finished.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Add a job; `None` as key: no ordering with any other job.
    pub fn push(&mut self, key: Option<K>, job: J) {
        self.held += 1;
        if let Some(k) = &key {
            if let Some(waiting) = self.busy.get_mut(k) {
                waiting.push_back(job);
                return;
            }
            self.busy.insert(k.clone(), VecDeque::new());
        }
        if self.running.len() < self.max_running {
            self.launch(key, job);
        } else {
            self.ready.push_back((key, job));
        }
    }

    /// Drop every job that has not started (on shutdown); returns how many.
    pub fn drop_waiting(&mut self) -> usize {
        let dropped = self.ready.len() + self.busy.values().map(VecDeque::len).sum::<usize>();
        for waiting in self.busy.values_mut() {
            waiting.clear();
        }
        // A key whose first job never started is not running: free it.
        for (key, _) in self.ready.drain(..) {
            if let Some(k) = key {
                self.busy.remove(&k);
            }
        }
        self.held -= dropped;
        dropped
    }

    /// The next job to finish; `None` when nothing is held. Cancel-safe: a finished job's
    /// bookkeeping happens after the await, so dropping this future loses nothing.
    pub async fn next(&mut self) -> Option<O> {
        let (key, out) = self.running.next().await?;
        self.held -= 1;
        if let Some(k) = key {
            match self.busy.get_mut(&k).and_then(VecDeque::pop_front) {
                // The key's next job takes the slot at once, ahead of other keys' jobs.
                Some(next) => self.launch(Some(k), next),
                None => {
                    self.busy.remove(&k);
                }
            }
        }
        while self.running.len() < self.max_running {
            match self.ready.pop_front() {
                Some((key, job)) => self.launch(key, job),
                None => break,
            }
        }
        Some(out)
    }

    fn launch(&mut self, key: Option<K>, job: J) {
        let fut = (self.start)(job);
        self.running.push(Box::pin(async move { (key, fut.await) }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn jobs_of_one_key_run_in_order_and_others_run_alongside() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (l, r, p) = (log.clone(), running.clone(), peak.clone());
        let mut ordered = Ordered::new(3, move |(key, i, ms): (&'static str, u32, u64)| {
            let (l, r, p) = (l.clone(), r.clone(), p.clone());
            Box::pin(async move {
                use std::sync::atomic::Ordering::SeqCst;
                p.fetch_max(r.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                r.fetch_sub(1, SeqCst);
                l.lock().unwrap().push((key, i));
                i
            }) as BoxFuture<'static, u32>
        });
        // Key "a" has a slow first job; its later jobs must still come after it.
        let jobs = [
            ("a", 0, 50),
            ("b", 1, 10),
            ("a", 2, 1),
            ("c", 3, 5),
            ("b", 4, 1),
            ("d", 5, 1),
            ("a", 6, 1),
        ];
        for (k, i, ms) in jobs {
            ordered.push(Some(k), (k, i, ms));
        }
        assert_eq!(ordered.len(), 7);
        let mut done = Vec::new();
        while let Some(i) = ordered.next().await {
            done.push(i);
        }
        assert!(ordered.is_empty());
        assert_eq!(done.len(), 7);
        let log = log.lock().unwrap().clone();
        for key in ["a", "b"] {
            let order: Vec<u32> = log
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, i)| *i)
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 3);
        // "d" and "c" did not wait for "a"'s slow job.
        let pos = |i| log.iter().position(|(_, j)| *j == i).unwrap();
        assert!(pos(3) < pos(0) && pos(5) < pos(0), "{log:?}");
    }

    #[tokio::test]
    async fn waiting_jobs_can_be_dropped_and_keyless_jobs_never_wait_for_a_key() {
        let mut ordered = Ordered::new(1, |i: u32| {
            Box::pin(async move { i }) as BoxFuture<'static, u32>
        });
        ordered.push(Some("k"), 1);
        ordered.push(Some("k"), 2);
        ordered.push(None, 3);
        assert_eq!(ordered.drop_waiting(), 2);
        assert_eq!(ordered.len(), 1);
        assert_eq!(ordered.next().await, Some(1));
        assert_eq!(ordered.next().await, None);
    }
}
