//! Connection starvation: sockets that never send a request (silent, or only the HTTP/2
//! preface) must not keep a signed webhook from being answered. `http.max_concurrent_requests`
//! caps requests, not sockets; sockets are capped by `http.max_connections`, and one that
//! starts no request within `http.header_read_timeout` (or idles longer than
//! `http.idle_timeout` between requests) is closed.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;
use smsflow::app::Role;

/// The client connection preface of HTTP/2 and an empty SETTINGS frame: the start of a
/// conversation that never goes on.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Sixty silent sockets and sixty bare HTTP/2 prefaces.
async fn idle_sockets(addr: &str) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(H2_PREFACE).await.unwrap();
        held.push(s);
    }
    held
}

/// One signed webhook, retried like Twilio on 503; how long the first answer took.
async fn webhook_answered(base_url: &str, within: Duration) -> u16 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    tokio::time::timeout(
        within,
        post_signed_retrying_503(&http, base_url, &sms_params(1)),
    )
    .await
    .expect("the signed webhook must be answered while idle sockets are open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_sockets_and_bare_http2_prefaces_do_not_hold_request_permits() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.http.max_concurrent_requests = 40;
    // So long that no timer frees a socket during the test: the webhook must get through
    // while all 120 sockets are still open.
    settings.http.header_read_timeout = Duration::from_secs(120);
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut held = idle_sockets(&addr).await;
    wait_for(
        "the server to hold the 120 sockets",
        Duration::from_secs(30),
        || async { (smsflow::http::open_connections() >= 120).then_some(()) },
    )
    .await;

    assert_eq!(
        webhook_answered(&app.base_url, Duration::from_secs(20)).await,
        200
    );

    // The idle sockets were not closed to make room: each is still open.
    for s in &mut held {
        let mut b = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            Err(_) => {}             // nothing to read: open and idle
            Ok(Ok(n)) if n > 0 => {} // the server's HTTP/2 SETTINGS: open
            Ok(r) => panic!("an idle socket was closed: {r:?}"),
        }
    }
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_connection_cap_sockets_that_start_no_request_are_closed_and_the_webhook_gets_in() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.http.max_concurrent_requests = 40;
    settings.http.max_connections = 40;
    settings.http.header_read_timeout = Duration::from_secs(1);
    settings.http.idle_timeout = Duration::from_secs(1);
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut held = idle_sockets(&addr).await;

    // Twilio waits 15 s: the webhook, queued behind 120 idle sockets, is answered in that.
    assert_eq!(
        webhook_answered(&app.base_url, Duration::from_secs(15)).await,
        200
    );

    // Every idle socket is closed by the server (EOF or reset), none is left holding a slot.
    for s in &mut held {
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut b = [0u8; 256];
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue, // the server's SETTINGS and GOAWAY frames
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an idle socket is still open");
    }

    // A keep-alive connection that went quiet after its request is closed too.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut all = Vec::new();
        let mut b = [0u8; 256];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break all,
                Ok(n) => all.extend_from_slice(&b[..n]),
            }
        }
    })
    .await
    .expect("a quiet keep-alive connection is closed after http.idle_timeout");
    assert!(
        String::from_utf8_lossy(&closed).starts_with("HTTP/1.1 200"),
        "it was answered first"
    );
    app.stop().await;
}

/// Read one HTTP/1.1 response to `/healthz` (its head, then its `Content-Length` body), or
/// what came before the server closed the connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut b = [0u8; 512];
    loop {
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        match s.read(&mut b).await {
            Ok(0) | Err(_) => return text,
            Ok(n) => all.extend_from_slice(&b[..n]),
        }
    }
}

/// A keep-alive connection idles between requests for `http.idle_timeout`, not
/// `http.header_read_timeout`: hyper's header timer, which runs while a connection waits for
/// its next request, closed every idle connection after 5 s, and a client reusing one then got
/// "connection reset". A new connection's trickled first head is still closed early.
#[tokio::test]
async fn keep_alive_connections_idle_for_the_idle_timeout_and_a_trickled_first_head_is_closed_early(
) {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.http.header_read_timeout = Duration::from_secs(1);
    settings.http.idle_timeout = Duration::from_secs(10);
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(request).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Idle past the header read timeout (the idle itself is the scenario, not a wait).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.write_all(request).await.unwrap();
    let second = read_response(&mut s).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the second request on a connection idle for 2.5 s (header_read_timeout 1 s, idle_timeout 10 s) got {second:?}"
    );
    // Then it is closed once idle for the idle timeout, not before.
    let idle_from = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(60), read_response(&mut s)).await;
    assert!(closed.is_ok(), "the idle connection was never closed");
    let idled = idle_from.elapsed();
    assert!(
        idled >= Duration::from_secs(8),
        "closed after {idled:?} idle, before the 10 s idle timeout"
    );

    // A first head that never completes is closed by the header read timeout, well before
    // the idle timeout.
    let mut t = TcpStream::connect(&addr).await.unwrap();
    t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(60), read_response(&mut t)).await;
    assert!(closed.is_ok(), "the trickled head was never closed");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "a trickled first head held its socket for {waited:?}"
    );
    app.stop().await;
}
