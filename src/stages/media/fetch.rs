//! The guarded fetch: allowed hosts only, every resolved address checked, credentials only to
//! Twilio's own hosts, redirects followed by hand so each hop is checked, and the body
//! streamed with a size cap, a per-chunk read timeout and a running SHA-256.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::address::forbidden_reason;
use super::config::MediaSettings;
use super::sniff::{self, SNIFF_LEN};
use crate::secrets::{ExposeSecret, SecretString};

/// A refusal that becomes a `MediaRejected` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub detail: String,
}

/// Why an attachment was not stored.
#[derive(Debug)]
pub enum FetchError {
    /// Final: reported as `MediaRejected`.
    Rejected(Rejection),
    /// Worth retrying (Twilio 5xx or 429, connection reset, store unavailable).
    Transient(String),
}

fn reject(reason: &'static str, detail: impl Into<String>) -> FetchError {
    FetchError::Rejected(Rejection {
        reason,
        detail: detail.into(),
    })
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

/// Raised by the resolver when every address of a host is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to forbidden addresses ({reason})")]
struct ForbiddenAddress {
    host: String,
    reason: &'static str,
}

/// Resolves names and drops forbidden addresses, so a DNS answer cannot steer a connection
/// to an internal address (the check happens on the addresses actually connected to).
struct GuardedResolver {
    allow: Arc<Vec<IpAddr>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut reason = "no addresses";
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match forbidden_reason(a.ip()) {
                    Some(_) if allow.contains(&a.ip()) => true,
                    Some(r) => {
                        reason = r;
                        false
                    }
                    None => true,
                })
                .collect();
            if ok.is_empty() {
                return Err(Box::new(ForbiddenAddress { host, reason })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Fetches attachments under the media policy.
pub struct Fetcher {
    client: reqwest::Client,
    settings: Arc<MediaSettings>,
    credentials: Option<(String, SecretString)>,
}

impl Fetcher {
    /// One pooled client for the stage.
    pub fn new(
        settings: Arc<MediaSettings>,
        account_sid: Option<String>,
        auth_token: Option<SecretString>,
    ) -> Result<Fetcher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .pool_max_idle_per_host(16)
            .dns_resolver(Arc::new(GuardedResolver {
                allow: Arc::new(settings.allow_addresses.clone()),
            }))
            .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let credentials = account_sid.zip(auth_token);
        Ok(Fetcher {
            client,
            settings,
            credentials,
        })
    }

    /// Fetch `url` and stream it into `store` at `path`, all within the total timeout.
    #[instrument(name = "media.fetch", skip_all, fields(otel.kind = "client", http.request.method = "GET", server.address = tracing::field::Empty, http.response.status_code = tracing::field::Empty))]
    pub async fn fetch_into(
        &self,
        url: &str,
        declared: &str,
        store: &dyn ObjectStore,
        path: &Path,
    ) -> Result<Stored, FetchError> {
        let total = self.settings.total_timeout;
        match tokio::time::timeout(total, self.fetch_inner(url, declared, store, path)).await {
            Ok(r) => r,
            Err(_) => Err(reject(
                "timeout",
                format!("not fetched within {total:?} (media.total_timeout)"),
            )),
        }
    }

    async fn fetch_inner(
        &self,
        raw: &str,
        declared: &str,
        store: &dyn ObjectStore,
        path: &Path,
    ) -> Result<Stored, FetchError> {
        if !self.settings.content_type_allowed(declared) {
            return Err(reject(
                "content_type_not_allowed",
                format!("{declared} is not in media.allowed_content_types"),
            ));
        }
        let resp = self.follow(raw).await?;
        if let Some(len) = resp.content_length() {
            if len > self.settings.max_bytes {
                return Err(reject(
                    "too_large",
                    format!(
                        "Content-Length {len} exceeds media.max_bytes {}",
                        self.settings.max_bytes
                    ),
                ));
            }
        }
        self.stream_to_store(resp, declared, store, path).await
    }

    /// Request, following redirects by hand with every hop checked.
    async fn follow(&self, raw: &str) -> Result<reqwest::Response, FetchError> {
        let mut url = url::Url::parse(raw).map_err(|e| reject("invalid_url", format!("{e}")))?;
        for hop in 0..=self.settings.max_redirects {
            let host = self.check_hop(&url, hop)?;
            tracing::Span::current().record("server.address", host.as_str());
            let mut req = self.client.get(url.clone());
            if let Some((sid, token)) = self
                .credentials
                .as_ref()
                .filter(|_| self.settings.gets_credentials(&host))
            {
                req = req.basic_auth(sid, Some(token.expose_secret()));
            }
            let resp = req.send().await.map_err(classify_send_error)?;
            let status = resp.status();
            tracing::Span::current().record("http.response.status_code", status.as_u16());
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        reject("http_status", format!("{status} without a Location header"))
                    })?;
                // The Location itself is never quoted: it can be a signed URL.
                url = url
                    .join(location)
                    .map_err(|e| reject("invalid_url", format!("redirect Location: {e}")))?;
                continue;
            }
            return match status {
                s if s.is_success() => Ok(resp),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Err(
                    FetchError::Transient(format!("media host answered {status}")),
                ),
                s if s.is_server_error() => Err(FetchError::Transient(format!(
                    "media host answered {status}"
                ))),
                s => Err(reject("http_status", format!("media host answered {s}"))),
            };
        }
        Err(reject(
            "too_many_redirects",
            format!(
                "more than {} redirects (media.max_redirects)",
                self.settings.max_redirects
            ),
        ))
    }

    /// Scheme, host allowlist and literal addresses for one hop; returns the host.
    fn check_hop(&self, url: &url::Url, hop: u8) -> Result<String, FetchError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(reject(
                "invalid_url",
                format!("scheme {} is not fetched", url.scheme()),
            ));
        }
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(ip) = literal {
            if let Some(reason) =
                forbidden_reason(ip).filter(|_| !self.settings.allow_addresses.contains(&ip))
            {
                let what = if hop == 0 { "media URL" } else { "redirect" };
                return Err(reject(
                    "forbidden_address",
                    format!("{what} points at a {reason}"),
                ));
            }
        }
        if !self.settings.host_allowed(&host) {
            let reason = if hop == 0 {
                "host_not_allowed"
            } else {
                "redirect_not_allowed"
            };
            return Err(reject(
                reason,
                format!("{host} is not in media.allowed_hosts"),
            ));
        }
        Ok(host)
    }

    async fn stream_to_store(
        &self,
        resp: reqwest::Response,
        declared: &str,
        store: &dyn ObjectStore,
        path: &Path,
    ) -> Result<Stored, FetchError> {
        let max = self.settings.max_bytes;
        let upload = store
            .put_multipart(path)
            .await
            .map_err(|e| FetchError::Transient(format!("media store unavailable: {e}")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 1024 * 1024);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
        let mut sniffed = false;
        let mut body = resp.bytes_stream();
        let outcome: Result<(), FetchError> = loop {
            let next = match tokio::time::timeout(self.settings.read_timeout, body.next()).await {
                Err(_) => {
                    break Err(reject(
                        "timeout",
                        format!(
                            "no data for {:?} (media.read_timeout)",
                            self.settings.read_timeout
                        ),
                    ))
                }
                Ok(n) => n,
            };
            let chunk = match next {
                None => break Ok(()),
                Some(Err(e)) if e.is_timeout() => {
                    let e = e.without_url();
                    break Err(reject("timeout", format!("body read timed out: {e}")));
                }
                Some(Err(e)) => {
                    let e = e.without_url();
                    break Err(FetchError::Transient(format!("body read failed: {e}")));
                }
                Some(Ok(c)) => c,
            };
            size += chunk.len() as u64;
            if size > max {
                break Err(reject(
                    "too_large",
                    format!("body exceeds media.max_bytes {max}; stopped reading"),
                ));
            }
            if !sniffed {
                let take = (SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() >= SNIFF_LEN {
                    sniffed = true;
                    if let Err(looks) = sniff::check(declared, &head) {
                        break Err(reject(
                            "content_mismatch",
                            format!("declared {declared} but the bytes are {looks}"),
                        ));
                    }
                }
            }
            hasher.update(&chunk);
            writer.write(&chunk);
            // Bound buffered parts: wait while two uploads are in flight.
            if let Err(e) = writer.wait_for_capacity(2).await {
                break Err(FetchError::Transient(format!(
                    "media store write failed: {e}"
                )));
            }
        };
        let outcome = outcome.and_then(|()| {
            if sniffed {
                return Ok(());
            }
            sniff::check(declared, &head).map_err(|looks| {
                reject(
                    "content_mismatch",
                    format!("declared {declared} but the bytes are {looks}"),
                )
            })
        });
        match outcome {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| FetchError::Transient(format!("media store write failed: {e}")))?;
                Ok(Stored {
                    size,
                    sha256: hex::encode(hasher.finalize()),
                })
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

/// Sort a request failure, dropping its URL: after a redirect it is a signed URL (an
/// S3 pre-signed query), which must reach neither the dead-letter topic nor a log.
fn classify_send_error(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<ForbiddenAddress>() {
            return reject("forbidden_address", f.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return reject("timeout", format!("media host did not answer in time: {e}"));
    }
    FetchError::Transient(format!("cannot reach the media host: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SIGNATURE: &str = "X-Amz-Signature=f00dfeedTOPSECRET";

    /// A media host that redirects `/media` to a signed URL at `signed_base`, and serves
    /// `/cut?...` as a body cut short after its headers promised more.
    async fn media_host(signed_base: Option<String>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let signed = signed_base.unwrap_or_else(|| base.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let signed = signed.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let answer = if head.starts_with("GET /media ") {
                        format!("HTTP/1.1 302 Found\r\nLocation: {signed}/cut?{SIGNATURE}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    } else {
                        // Promise 100 kB, send 20 bytes of JPEG, hang up.
                        "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n\u{FF}\u{D8}\u{FF}\u{E0}0123456789abcdef".to_owned()
                    };
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        base
    }

    fn fetcher() -> Fetcher {
        let settings = MediaSettings {
            allowed_hosts: vec!["127.0.0.1".into()],
            credential_hosts: vec![],
            allow_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            ..MediaSettings::default()
        };
        Fetcher::new(Arc::new(settings), None, None).unwrap()
    }

    fn text(e: FetchError) -> String {
        match e {
            FetchError::Rejected(r) => format!("{}: {}", r.reason, r.detail),
            FetchError::Transient(t) => t,
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_after_a_redirect_does_not_report_the_signed_url() {
        let host = media_host(None).await;
        let e = fetcher()
            .fetch_into(
                &format!("{host}/media"),
                "image/jpeg",
                &InMemory::new(),
                &Path::from("a/b"),
            )
            .await
            .expect_err("a cut body is an error");
        let shown = text(e);
        assert!(shown.contains("body read failed"), "{shown}");
        assert!(
            !shown.contains("TOPSECRET") && !shown.contains('?'),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_redirect_target_does_not_report_the_signed_url() {
        // A port nobody listens on: bind, learn it, close.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let host = media_host(Some(format!("http://{closed}"))).await;
        let e = fetcher()
            .fetch_into(
                &format!("{host}/media"),
                "image/jpeg",
                &InMemory::new(),
                &Path::from("a/b"),
            )
            .await
            .expect_err("a closed port is an error");
        let shown = text(e);
        assert!(shown.contains("cannot reach the media host"), "{shown}");
        assert!(
            !shown.contains("TOPSECRET") && !shown.contains('?'),
            "{shown}"
        );
    }
}
