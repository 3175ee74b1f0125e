//! Test support: a real HTTP server on 127.0.0.1:0 that plays a provider, and a strict
//! multipart/form-data reader to check what the client sent.

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What the fake provider answers.
pub struct Reply {
    status: StatusCode,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON (or any text) body with `status`.
    pub fn json(status: StatusCode, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_owned(),
            headers: vec![("content-type", "application/json".into())],
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(HeaderName::from_static(k), v);
            }
        }
        resp
    }
}

/// Serve `POST path` with `handler(uri, headers, body)`; anything else gets 404. The server
/// lives until the test's runtime ends.
pub async fn serve<F, Fut>(path: &'static str, handler: F) -> SocketAddr
where
    F: Fn(Uri, HeaderMap, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            async move {
                if method != Method::POST || uri.path() != path {
                    return Reply::json(StatusCode::NOT_FOUND, "wrong route");
                }
                handler(uri, headers, body).await
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One part of a multipart/form-data body.
pub struct Field {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Parse a multipart/form-data body as RFC 7578 lays it out, or say what is wrong.
pub fn multipart_fields(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Field>, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .ok_or("no content-type")?;
    let boundary = ct
        .strip_prefix("multipart/form-data")
        .and_then(|rest| {
            rest.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
        .ok_or_else(|| format!("not multipart/form-data with a boundary: {ct}"))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut fields = Vec::new();
    let mut rest = body
        .strip_prefix(delimiter.as_slice())
        .ok_or("body does not start with the boundary")?;
    loop {
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("boundary not followed by CRLF")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("part without a blank line")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let mut end_marker = b"\r\n".to_vec();
        end_marker.extend_from_slice(&delimiter);
        let data_end = find(rest, &end_marker).ok_or("part not closed by the boundary")?;
        let mut field = Field {
            name: String::new(),
            filename: None,
            content_type: None,
            data: rest[..data_end].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').ok_or("bad part header")?;
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for p in v.split(';').map(str::trim) {
                        if let Some(n) = p.strip_prefix("name=") {
                            field.name = n.trim_matches('"').to_owned();
                        } else if let Some(f) = p.strip_prefix("filename=") {
                            field.filename = Some(f.trim_matches('"').to_owned());
                        }
                    }
                }
                "content-type" => field.content_type = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        fields.push(field);
        rest = &rest[data_end + end_marker.len()..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
