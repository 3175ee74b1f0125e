//! The token issuer's public keys (a JWKS document), fetched and cached.
//!
//! - No lock is held across a fetch: readers take the cached set from a short `std` mutex,
//!   and concurrent fetches share one request (single flight).
//! - A set older than `refresh_after` is still served while a background refresh runs; if
//!   refreshes keep failing, it is served until `max_age` after its last successful fetch
//!   (the hard expiry), and then tokens are refused with 503 until the issuer answers again.
//! - Fetches are throttled: at most one per `min_interval`, whether it succeeded or failed.
//!   A token whose `kid` is unknown triggers a fetch only when none ran within that interval,
//!   so a flood of made-up `kid`s costs the issuer one request per interval.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use jsonwebtoken::jwk::{Jwk, JwkSet};

/// How the cached set ages, and how often the issuer may be asked.
#[derive(Debug, Clone, Copy)]
pub struct JwksPolicy {
    /// A set older than this is refreshed in the background (still served meanwhile).
    pub refresh_after: Duration,
    /// A set not refreshed successfully for this long is dropped (the hard expiry).
    pub max_age: Duration,
    /// The least time between two fetches, successful or not.
    pub min_interval: Duration,
    /// Most time one fetch may take.
    pub fetch_timeout: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            refresh_after: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(60 * 60),
            min_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The issuer's set (fresh enough) does not hold the token's `kid`.
    #[error("the token's key id is not in the issuer's JWKS")]
    UnknownKid,
    /// No usable set: the issuer has not answered (within the hard expiry).
    #[error("the token issuer's JWKS is unavailable: {0}")]
    Unavailable(String),
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<JwkSet>, String>>>;

#[derive(Default)]
struct State {
    /// The last set fetched successfully, and when.
    set: Option<(Arc<JwkSet>, Instant)>,
    /// When the last fetch started, whatever its outcome.
    last_attempt: Option<Instant>,
    /// The last fetch's error, kept for the 503 message while throttled.
    last_error: Option<String>,
    /// The fetch in flight, shared by everyone who needs it.
    in_flight: Option<Fetch>,
    /// Added to the clock: zero, except where a test moves time on.
    skew: Duration,
}

impl State {
    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }
}

/// The cached JWKS of one issuer.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    policy: JwksPolicy,
    state: Arc<Mutex<State>>,
}

impl Jwks {
    /// A cache for the document at `url`; nothing is fetched until a token needs it.
    pub fn new(url: &str, policy: JwksPolicy) -> Jwks {
        Jwks {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(policy.fetch_timeout)
                .connect_timeout(policy.fetch_timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .unwrap_or_default(),
            policy,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key for `kid` (the first key when the token names none).
    pub async fn key(&self, kid: Option<&str>) -> Result<Jwk, JwksError> {
        let find = |set: &JwkSet| match kid {
            Some(k) => set.find(k).cloned(),
            None => set.keys.first().cloned(),
        };
        // Decide under the mutex, then let it go before any await.
        let (cached, fetch) = {
            let mut st = self.lock();
            let now = st.now();
            let usable = st
                .set
                .as_ref()
                .filter(|(_, at)| now.duration_since(*at) < self.policy.max_age)
                .map(|(set, at)| (set.clone(), *at));
            if usable.is_none() {
                st.set = None;
            }
            match usable {
                Some((set, fetched_at)) => match find(&set) {
                    Some(jwk) => {
                        // Known key: answer now; refresh in the background when due.
                        if now.duration_since(fetched_at) >= self.policy.refresh_after {
                            if let Some(f) = self.start_fetch(&mut st, now) {
                                tokio::spawn(f);
                            }
                        }
                        return Ok(jwk);
                    }
                    // Unknown kid: maybe the issuer rotated; ask once per interval.
                    None => (Some(set), self.start_fetch(&mut st, now)),
                },
                None => (None, self.start_fetch(&mut st, now)),
            }
        };
        let Some(fetch) = fetch else {
            // Throttled: answer from what is known.
            return match cached {
                Some(_) => Err(JwksError::UnknownKid),
                None => Err(JwksError::Unavailable(
                    self.lock()
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "no key set fetched yet".into()),
                )),
            };
        };
        match fetch.await {
            Ok(set) => find(&set).ok_or(JwksError::UnknownKid),
            Err(_) if cached.is_some() => Err(JwksError::UnknownKid),
            Err(e) => Err(JwksError::Unavailable(e)),
        }
    }

    /// The fetch to wait on: the one in flight, or a new one when the interval allows.
    fn start_fetch(&self, st: &mut State, now: Instant) -> Option<Fetch> {
        if let Some(f) = &st.in_flight {
            return Some(f.clone());
        }
        if st
            .last_attempt
            .is_some_and(|at| now.duration_since(at) < self.policy.min_interval)
        {
            return None;
        }
        st.last_attempt = Some(now);
        let (http, url, state) = (self.http.clone(), self.url.clone(), self.state.clone());
        let fetch = async move {
            let result = fetch(&http, &url).await;
            let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
            st.in_flight = None;
            match &result {
                Ok(set) => {
                    st.set = Some((set.clone(), st.now()));
                    st.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot refresh the token issuer's JWKS; serving the cached keys until they expire");
                    st.last_error = Some(e.clone());
                }
            }
            result
        }
        .boxed()
        .shared();
        st.in_flight = Some(fetch.clone());
        Some(fetch)
    }
}

#[cfg(test)]
impl Jwks {
    /// Move this cache's clock on.
    fn advance(&self, by: Duration) {
        self.lock().skew += by;
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Arc<JwkSet>, String> {
    let set: JwkSet = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.without_url().to_string())?
        .json()
        .await
        .map_err(|e| format!("not a JWKS document: {}", e.without_url()))?;
    Ok(Arc::new(set))
}

#[cfg(test)]
mod tests {
    //! Against a real JWKS server on loopback, whose answers the test controls.
    use super::*;
    use axum::extract::State as AxState;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the server answers: a set with these kids, an error, or nothing until released.
    #[derive(Clone)]
    struct Server {
        kids: Arc<Mutex<Vec<String>>>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        gate: Arc<tokio::sync::Semaphore>,
        hits: Arc<AtomicUsize>,
        url: String,
    }

    async fn serve(AxState(s): AxState<Server>) -> Response {
        s.hits.fetch_add(1, Ordering::SeqCst);
        let _permit = s.gate.acquire().await;
        if s.failing.load(Ordering::SeqCst) {
            return StatusCode::BAD_GATEWAY.into_response();
        }
        let kids = s.kids.lock().unwrap().clone();
        let keys: Vec<_> = kids
            .iter()
            .map(|k| serde_json::json!({"kty": "oct", "kid": k, "k": "c2VjcmV0", "alg": "HS256"}))
            .collect();
        axum::Json(serde_json::json!({ "keys": keys })).into_response()
    }

    async fn server(kids: &[&str]) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = Server {
            kids: Arc::new(Mutex::new(kids.iter().map(|k| k.to_string()).collect())),
            failing: Arc::default(),
            gate: Arc::new(Semaphore::new(GATE)),
            hits: Arc::default(),
            url: format!("http://{}/jwks.json", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/jwks.json", axum::routing::get(serve))
            .with_state(s.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        s
    }

    use tokio::sync::Semaphore;

    const GATE: usize = 1000;

    fn policy() -> JwksPolicy {
        JwksPolicy {
            refresh_after: Duration::from_secs(300),
            max_age: Duration::from_secs(3600),
            min_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    fn kid(jwk: &Jwk) -> &str {
        jwk.common.key_id.as_deref().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_cached_key_is_served_while_a_refresh_hangs() {
        let s = server(&["k1"]).await;
        let jwks = Jwks::new(
            &s.url,
            JwksPolicy {
                refresh_after: Duration::ZERO,
                min_interval: Duration::ZERO,
                fetch_timeout: Duration::from_secs(60),
                ..policy()
            },
        );
        assert_eq!(kid(&jwks.key(Some("k1")).await.unwrap()), "k1");
        assert_eq!(s.hits.load(Ordering::SeqCst), 1);
        // From now on the issuer does not answer until released.
        let held = s.gate.acquire_many(GATE as u32).await.unwrap();
        for _ in 0..20 {
            let got = tokio::time::timeout(Duration::from_secs(5), jwks.key(Some("k1")))
                .await
                .expect("a known key must not wait on the hanging refresh");
            assert_eq!(kid(&got.unwrap()), "k1");
        }
        // The background refresh reaches the issuer, and hangs there...
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.hits.load(Ordering::SeqCst) < 2 {
            assert!(std::time::Instant::now() < deadline, "no refresh was tried");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...while more requests are answered from the cache, sharing that one refresh.
        for _ in 0..20 {
            let got = tokio::time::timeout(Duration::from_secs(5), jwks.key(Some("k1")))
                .await
                .expect("a known key must not wait on the hanging refresh");
            assert_eq!(kid(&got.unwrap()), "k1");
        }
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            2,
            "one refresh in flight at a time"
        );
        drop(held);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_cached_keys_until_the_hard_expiry() {
        let s = server(&["k1"]).await;
        let jwks = Jwks::new(
            &s.url,
            JwksPolicy {
                refresh_after: Duration::from_secs(60),
                max_age: Duration::from_secs(600),
                min_interval: Duration::from_secs(10),
                ..policy()
            },
        );
        assert!(jwks.key(Some("k1")).await.is_ok());
        s.failing.store(true, Ordering::SeqCst);
        // Past the refresh age, the issuer failing: still served, refresh tried in the background.
        for step in 1..=9 {
            jwks.advance(Duration::from_secs(60));
            assert!(jwks.key(Some("k1")).await.is_ok(), "minute {step}");
            // Let the background refresh finish (it fails).
            wait_for_idle(&jwks).await;
        }
        assert!(s.hits.load(Ordering::SeqCst) >= 2, "refreshes were tried");
        jwks.advance(Duration::from_secs(61));
        match jwks.key(Some("k1")).await {
            Err(JwksError::Unavailable(e)) => assert!(e.contains("502"), "{e}"),
            other => panic!("past the hard expiry, expected Unavailable, got {other:?}"),
        }
        // The issuer is back: the next fetch (after the interval) restores service.
        s.failing.store(false, Ordering::SeqCst);
        jwks.advance(Duration::from_secs(10));
        assert!(jwks.key(Some("k1")).await.is_ok());
    }

    async fn wait_for_idle(jwks: &Jwks) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while jwks.lock().in_flight.is_some() {
            assert!(std::time::Instant::now() < deadline, "refresh never ended");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn unknown_kids_trigger_at_most_one_fetch_per_interval_whether_it_succeeds_or_not() {
        let s = server(&["k1"]).await;
        let jwks = Arc::new(Jwks::new(&s.url, policy()));
        assert!(jwks.key(Some("k1")).await.is_ok());
        assert_eq!(s.hits.load(Ordering::SeqCst), 1);
        jwks.advance(Duration::from_secs(10));
        // A flood of made-up kids, concurrently and one after another.
        let flood: Vec<_> = (0..50)
            .map(|i| {
                let jwks = jwks.clone();
                tokio::spawn(async move { jwks.key(Some(&format!("forged-{i}"))).await })
            })
            .collect();
        for f in flood {
            assert!(matches!(f.await.unwrap(), Err(JwksError::UnknownKid)));
        }
        for i in 0..50 {
            assert!(matches!(
                jwks.key(Some(&format!("again-{i}"))).await,
                Err(JwksError::UnknownKid)
            ));
        }
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            2,
            "one fetch for the whole flood"
        );
        // The same when the fetch fails: the failure counts against the interval too.
        s.failing.store(true, Ordering::SeqCst);
        jwks.advance(Duration::from_secs(10));
        for i in 0..50 {
            assert!(matches!(
                jwks.key(Some(&format!("more-{i}"))).await,
                Err(JwksError::UnknownKid)
            ));
        }
        assert_eq!(s.hits.load(Ordering::SeqCst), 3);
        // The known key kept working throughout.
        assert!(jwks.key(Some("k1")).await.is_ok());
        // A rotated key is found at the next interval.
        s.failing.store(false, Ordering::SeqCst);
        s.kids.lock().unwrap().push("k2".into());
        jwks.advance(Duration::from_secs(10));
        assert_eq!(kid(&jwks.key(Some("k2")).await.unwrap()), "k2");
        assert_eq!(s.hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn without_any_set_a_down_issuer_is_asked_once_per_interval() {
        let s = server(&["k1"]).await;
        s.failing.store(true, Ordering::SeqCst);
        let jwks = Jwks::new(&s.url, policy());
        for _ in 0..20 {
            assert!(matches!(
                jwks.key(Some("k1")).await,
                Err(JwksError::Unavailable(_))
            ));
        }
        assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    }
}
