//! An accept loop over hyper with the limits axum's `serve` does not expose.
//!
//! Two budgets, each with its own cap:
//! - **connections** (`http.max_connections`): a socket holds a slot from accept to close. At
//!   the cap, new connections wait in the kernel backlog. A socket that has not started a
//!   request within `http.header_read_timeout` of being accepted (silence, a bare HTTP/2
//!   preface, a trickled request head) is closed, and so is a connection with no request in
//!   flight for `http.idle_timeout`, whatever its protocol: hyper has no such timer for
//!   protocol detection or for HTTP/2, so idle sockets could otherwise hold every slot. After
//!   the first request, a head that has not arrived whole is bounded by `http.idle_timeout`
//!   too: hyper's own header timer cannot tell a trickled head from a keep-alive wait.
//! - **requests** (`http.max_concurrent_requests`): a request holds a permit while its
//!   handler runs. A request that waits longer than `http.request_timeout` for one is
//!   answered 503 with `Retry-After`.
//!
//! Shutdown drains: connections are asked to close once their requests are answered, and
//! whatever is left after `http.shutdown_grace` is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::{Builder, UpgradeableConnection};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::settings::HttpSettings;

static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// HTTP connections open right now.
pub fn open_connections() -> usize {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot accept connections: {0}")]
    Accept(std::io::Error),
}

/// Serve `app` on `listener` until `shutdown` is cancelled, then drain for `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's header timer also runs while a keep-alive connection waits for its next
        // request, so it closed every idle connection after `header_read_timeout` (5 s), not
        // `idle_timeout`, and a client or load balancer reusing one raced the close (reset).
        // `Activity` below bounds both: the first request head, and the idle time after.
        .header_read_timeout(None)
        // A request in flight does not watch its socket. Otherwise hyper reads it to notice
        // the peer leaving, and then drops the handler wherever it is: its dedupe claim stays
        // `pending`, and the sender's retry is refused until the claim expires. The handler
        // finishes what it started; a peer that left is seen when the answer is written, and
        // its connection slot is freed then.
        .half_close(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let requests = Arc::new(Semaphore::new(settings.max_concurrent_requests));
    let limits = Limits {
        first_request: settings.header_read_timeout,
        idle: settings.idle_timeout,
        // A peer asked to close but not letting go (an HTTP/2 client that never acknowledges
        // the GOAWAY's ping) is dropped after this.
        closing: settings.header_read_timeout,
    };
    let tracker = TaskTracker::new();

    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(ServeError::Accept(e)),
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = RequestGate {
            inner: TowerToHyperService::new(app.clone()),
            permits: requests.clone(),
            wait: settings.request_timeout,
            activity: activity.clone(),
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        crate::metrics::open_connections(open_connections());
        tracker.spawn(drive_connection(
            conn,
            activity,
            limits,
            shutdown.clone(),
            slot,
            peer,
        ));
    }

    drop(listener);
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => tracing::info!("HTTP connections drained"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace = ?settings.shutdown_grace, "HTTP drain timed out; closing remaining connections");
        }
    }
    Ok(())
}

/// One accepted connection, as served.
type Connection = UpgradeableConnection<'static, TokioIo<TcpStream>, RequestGate, TokioExecutor>;

/// Serve one connection until it ends, idles out or the server shuts down; then free its slot.
async fn drive_connection(
    conn: Connection,
    activity: Arc<Activity>,
    limits: Limits,
    stop: CancellationToken,
    slot: OwnedSemaphorePermit,
    peer: SocketAddr,
) {
    let mut conn = std::pin::pin!(conn);
    let why = tokio::select! {
        r = conn.as_mut() => Ended::Done(r.err()),
        first = activity.idle(limits) => Ended::Idle { first },
        _ = stop.cancelled() => Ended::Shutdown,
    };
    match why {
        Ended::Done(Some(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error")
        }
        Ended::Done(None) => {}
        Ended::Idle { .. } | Ended::Shutdown => {
            conn.as_mut().graceful_shutdown();
            // On shutdown the server-wide grace bounds this; idle peers get less.
            let grace = match why {
                Ended::Idle { first } => {
                    crate::metrics::http_idle_closed(first);
                    limits.closing
                }
                _ => Duration::MAX,
            };
            if tokio::time::timeout(grace, conn.as_mut()).await.is_err() {
                tracing::debug!(%peer, "idle connection did not close; dropped");
            }
        }
    }
    drop(slot);
    OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    crate::metrics::open_connections(open_connections());
}

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200).
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

enum Ended {
    Done(Option<Box<dyn std::error::Error + Send + Sync>>),
    /// No request in flight for too long; `first`: none ever started.
    Idle {
        first: bool,
    },
    Shutdown,
}

#[derive(Clone, Copy)]
struct Limits {
    first_request: Duration,
    idle: Duration,
    closing: Duration,
}

/// Requests in flight on one connection, and since when it has been idle.
struct Activity {
    state: Mutex<ActivityState>,
    changed: tokio::sync::Notify,
}

struct ActivityState {
    in_flight: usize,
    served: u64,
    idle_since: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                served: 0,
                idle_since: Instant::now(),
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut ActivityState)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
    }

    /// A request started; it counts until the guard is dropped.
    fn begin(self: &Arc<Self>) -> Busy {
        self.update(|s| {
            s.in_flight += 1;
            s.served += 1;
        });
        Busy(self.clone())
    }

    /// Resolves once the connection has had no request in flight for its limit: the first
    /// request's limit until one started, the idle limit after. True when none ever started.
    async fn idle(&self, limits: Limits) -> bool {
        loop {
            let notified = self.changed.notified();
            let (due, first) = {
                let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let first = s.served == 0;
                let limit = if first {
                    limits.first_request
                } else {
                    limits.idle
                };
                ((s.in_flight == 0).then(|| s.idle_since + limit), first)
            };
            match due {
                Some(due) if Instant::now() >= due => return first,
                Some(due) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// A request in flight on its connection.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|s| {
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
    }
}

/// When the request is answered 408 at the latest (`http.request_timeout` after its handling
/// began), in the request's extensions: a handler that waits for something plans with it.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Instant);

/// Marks the connection busy and takes a request permit around the app.
#[derive(Clone)]
struct RequestGate {
    inner: TowerToHyperService<Router>,
    permits: Arc<Semaphore>,
    wait: Duration,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestGate {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        Box::pin(gated(self.clone(), req))
    }
}

/// One request through the gate: busy mark, permit, deadline, then the app.
async fn gated(
    gate: RequestGate,
    mut req: hyper::Request<Incoming>,
) -> Result<axum::response::Response, std::convert::Infallible> {
    let _busy = gate.activity.begin();
    let Ok(Ok(_permit)) =
        tokio::time::timeout(gate.wait, gate.permits.clone().acquire_owned()).await
    else {
        crate::metrics::http_busy();
        return Ok(busy());
    };
    // The app's timeout layer starts now too: handlers may plan with this.
    req.extensions_mut()
        .insert(RequestDeadline(Instant::now() + gate.wait));
    hyper::service::Service::call(&gate.inner, req).await
}

/// 503 for a request that found no permit in time.
fn busy() -> axum::response::Response {
    axum::http::Response::builder()
        .status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
        .header(axum::http::header::RETRY_AFTER, "1")
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"error":{"code":"busy","message":"too many requests in flight (http.max_concurrent_requests); retry"}}"#,
        ))
        .unwrap_or_default()
}

fn is_transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE: too many open files; back off and retry
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn returned_size<F, A, B, R>(_: &F) -> usize
    where
        F: Fn(A, B) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// `returned_size` for `drive_connection`'s six arguments.
    fn returned_size_6<F, A, B, C, D, E, G, R>(_: &F) -> usize
    where
        F: Fn(A, B, C, D, E, G) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// What one connection holds besides its buffers (issue 15: ~8.5 KiB connection futures
    /// and a boxed per-request future). `cargo test --lib http::server -- --nocapture` prints.
    #[test]
    fn per_connection_and_per_request_state_sizes() {
        let connection = std::mem::size_of::<Connection>();
        let request = returned_size(&gated);
        let task = returned_size_6(&drive_connection);
        eprintln!(
            "connection future {connection} B, connection task future {task} B, \
             gated request future {request} B"
        );
    }
}
