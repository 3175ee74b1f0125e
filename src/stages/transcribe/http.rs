//! HTTP plumbing shared by the remote providers: one pooled client with connect, read and
//! total timeouts; status codes sorted into the provider error taxonomy; `Retry-After`.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use reqwest::{Response, StatusCode};

use super::config::TranscribeSettings;
use super::provider::ProviderError;
use crate::stages::shared::http::retry_after;

/// Most bytes of a provider's answer that are read (a transcript is far smaller).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The pooled client every call of one provider shares.
pub fn client(settings: &TranscribeSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .timeout(settings.request_timeout)
        .pool_max_idle_per_host(settings.effective_concurrency())
        .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body of a 2xx answer, or the error its status means.
pub async fn success_body(provider: &'static str, resp: Response) -> Result<Bytes, ProviderError> {
    let status = resp.status();
    let retry_after = retry_after(resp.headers(), SystemTime::now());
    let body = read_limited(provider, resp).await?;
    if status.is_success() {
        return Ok(body);
    }
    let detail = error_detail(&body);
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            provider,
            retry_after,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
            ProviderError::Misconfigured {
                provider,
                status: status.as_u16(),
                detail,
            }
        }
        s if s.is_client_error() && s != StatusCode::REQUEST_TIMEOUT => ProviderError::Rejected {
            provider,
            status: s.as_u16(),
            detail,
        },
        s => ProviderError::Unavailable {
            provider,
            status: s.as_u16(),
            retry_after,
            detail,
        },
    })
}

/// A transport failure, described by its whole cause chain and without the URL (which may
/// carry an API key).
pub fn transport(provider: &'static str, e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    ProviderError::Transport { provider, detail }
}

async fn read_limited(provider: &'static str, mut resp: Response) -> Result<Bytes, ProviderError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(provider, e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ProviderError::BadResponse {
                provider,
                detail: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `{"error": {"message": …}}` (OpenAI and Google both), else the start of the body.
fn error_detail(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error"))
            .or_else(|| v.get("detail"))
            .and_then(|m| m.as_str())
    });
    let text = match message {
        Some(m) => m.to_owned(),
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    if text.is_empty() {
        return "no detail given".into();
    }
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_prefers_the_json_message() {
        assert_eq!(
            error_detail(
                br#"{"error":{"message":"Invalid file format.","type":"invalid_request_error"}}"#
            ),
            "Invalid file format."
        );
        assert_eq!(error_detail(b"  upstream exploded "), "upstream exploded");
        assert_eq!(error_detail(b""), "no detail given");
    }
}
