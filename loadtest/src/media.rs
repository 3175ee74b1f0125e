//! The run's own media host on loopback: MMS and voice-note webhooks point their `MediaUrlN`
//! here, as Twilio's point to its media API. Every URL has one fixed body, so the same seed
//! serves the same bytes, and the server counts what the media stage fetched.
//!
//! URLs are `{base}/media/{MessageSid}/{n}.{jpg|vcf|wav}`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::mix::MediaKind;
use crate::payload::splitmix;

/// A 16x16 baseline JPEG (made with ffmpeg); each URL gets its own comment segments after SOI.
const TINY_JPEG: &[u8] = include_bytes!("../assets/tiny.jpg");
/// Largest payload of one JPEG comment segment (its length field counts itself).
const MAX_COM: usize = 65_533;
/// Largest image served: the media stage's default `max_bytes` is 5 MiB.
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;

/// Debian's pocketsphinx-testdata recording of "go forward ten meters" (16 kHz, 16-bit mono).
pub const DEFAULT_VOICE_PCM: &str = "/usr/share/pocketsphinx/test/data/goforward.raw";

/// What the server hands out.
#[derive(Debug, Clone)]
pub struct Assets {
    /// Size of each JPEG, comment padding included.
    pub image_bytes: usize,
    /// The voice note, a RIFF/WAVE file; `None` when the mix has no voice notes.
    pub voice_wav: Option<Bytes>,
}

/// Why the media host could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("reading the voice-note recording {path}: {source} (install Debian's pocketsphinx-testdata, or pass --voice-pcm with 16 kHz 16-bit mono raw PCM)")]
    Voice {
        path: String,
        source: std::io::Error,
    },
    #[error("the voice-note recording {0} is empty or larger than 4 MiB; pass 16 kHz 16-bit mono raw PCM")]
    VoiceSize(String),
    #[error("the media host must listen on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    #[error("binding the media host on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Assets {
    /// Images of `image_bytes`, and the voice note read from raw PCM at `voice_pcm` if given.
    pub fn load(image_bytes: usize, voice_pcm: Option<&Path>) -> Result<Assets, MediaError> {
        let voice_wav = match voice_pcm {
            None => None,
            Some(path) => {
                let pcm = std::fs::read(path).map_err(|source| MediaError::Voice {
                    path: path.display().to_string(),
                    source,
                })?;
                if pcm.is_empty() || pcm.len() > MAX_IMAGE_BYTES {
                    return Err(MediaError::VoiceSize(path.display().to_string()));
                }
                Some(Bytes::from(wav(&pcm)))
            }
        };
        Ok(Assets {
            image_bytes: image_bytes.clamp(TINY_JPEG.len(), MAX_IMAGE_BYTES),
            voice_wav,
        })
    }

    /// The body of attachment `n` of message `sid`.
    pub fn body(&self, kind: MediaKind, sid: &str, n: u32) -> Option<Bytes> {
        match kind {
            MediaKind::Jpeg => Some(Bytes::from(jpeg(sid, n, self.image_bytes))),
            MediaKind::Vcard => Some(Bytes::from(vcard(sid, n))),
            MediaKind::Wav => self.voice_wav.clone(),
        }
    }
}

/// 16 kHz, 16-bit, mono PCM in a RIFF/WAVE container.
pub fn wav(pcm: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(44 + pcm.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    w.extend_from_slice(pcm);
    w
}

/// A valid JPEG of about `size` bytes, unique to its URL: the tiny image with comment
/// segments after SOI that name the URL and pad it (decoders skip comments).
fn jpeg(sid: &str, n: u32, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(TINY_JPEG.len()));
    out.extend_from_slice(&TINY_JPEG[..2]);
    let mut text = format!("smsflow-loadtest {sid}/{n} ").into_bytes();
    let mut fill = splitmix(sid.len() as u64 ^ u64::from(n));
    while out.len() + text.len() + 4 + TINY_JPEG.len() - 2 < size {
        fill = splitmix(fill);
        text.push(b'a' + (fill % 26) as u8);
    }
    for chunk in text.chunks(MAX_COM) {
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((chunk.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&TINY_JPEG[2..]);
    out
}

const CARDS: &[(&str, &str, &str)] = &[
    ("Dana", "Reyes", "dana.reyes@example.com"),
    ("Priya", "Natarajan", "priya@acme.example"),
    ("Jordan", "Lee", "jordan.lee@example.org"),
    ("Sam", "Okafor", "sam.okafor@example.net"),
];

/// A vCard 3.0 contact with a name, a (fictional 555-01xx) number and an email.
fn vcard(sid: &str, n: u32) -> Vec<u8> {
    let h = splitmix(
        sid.bytes()
            .fold(u64::from(n), |a, b| a.rotate_left(5) ^ u64::from(b)),
    );
    let (first, last, email) = CARDS[(h % CARDS.len() as u64) as usize];
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{first};;;\r\nFN:{first} {last}\r\n\
         TEL;TYPE=CELL:+1510555{:04}\r\nEMAIL:{email}\r\nEND:VCARD\r\n",
        100 + (h >> 32) % 100
    )
    .into_bytes()
}

/// What the server answered, by type; read after the run.
#[derive(Debug, Default)]
pub struct Served {
    images: AtomicU64,
    vcards: AtomicU64,
    voice: AtomicU64,
    bytes: AtomicU64,
    not_found: AtomicU64,
}

/// The server's counts, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaServed {
    /// Attachments named by webhooks that were answered 2xx.
    pub expected: u64,
    /// Fetches answered 200 (retries of the media stage count again).
    pub fetches: u64,
    pub images: u64,
    pub vcards: u64,
    pub voice: u64,
    pub bytes: u64,
    pub not_found: u64,
}

impl Served {
    /// A copy of the counts, with the number of attachments the acknowledged webhooks named.
    pub fn snapshot(&self, expected: u64) -> MediaServed {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (images, vcards, voice) = (get(&self.images), get(&self.vcards), get(&self.voice));
        MediaServed {
            expected,
            fetches: images + vcards + voice,
            images,
            vcards,
            voice,
            bytes: get(&self.bytes),
            not_found: get(&self.not_found),
        }
    }
}

/// The media host of one run; stops when dropped.
pub struct MediaServer {
    /// `http://127.0.0.1:PORT`, the base of every `MediaUrlN`.
    pub base_url: String,
    pub served: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MediaServer {
    /// Listen on `addr` (a loopback address; port 0 picks one) and serve `assets`.
    pub async fn start(addr: SocketAddr, assets: Assets) -> Result<MediaServer, MediaError> {
        if !addr.ip().is_loopback() {
            return Err(MediaError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MediaError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MediaError::Bind { addr, source })?;
        let served = Arc::new(Served::default());
        let app = Router::new()
            .route("/media/{sid}/{file}", get(serve))
            .with_state((Arc::new(assets), served.clone()));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "media host stopped");
            }
        });
        Ok(MediaServer {
            base_url: format!("http://{local}"),
            served,
            task,
        })
    }
}

/// The media URL of attachment `n` of `sid`.
pub fn url(base: &str, sid: &str, n: usize, kind: MediaKind) -> String {
    format!("{base}/media/{sid}/{n}.{}", kind.ext())
}

async fn serve(
    State((assets, served)): State<(Arc<Assets>, Arc<Served>)>,
    UrlPath((sid, file)): UrlPath<(String, String)>,
) -> Response {
    let found = file.split_once('.').and_then(|(n, ext)| {
        let kind = MediaKind::from_ext(ext)?;
        let n: u32 = n.parse().ok()?;
        Some((kind, assets.body(kind, &sid, n)?))
    });
    let Some((kind, body)) = found else {
        served.not_found.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NOT_FOUND.into_response();
    };
    let counter = match kind {
        MediaKind::Jpeg => &served.images,
        MediaKind::Vcard => &served.vcards,
        MediaKind::Wav => &served.voice,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    served.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, kind.content_type())], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> Assets {
        Assets {
            image_bytes: 20_000,
            voice_wav: Some(Bytes::from(wav(&[0u8; 3200]))),
        }
    }

    #[test]
    fn bodies_are_what_their_type_says_fixed_per_url_and_distinct_across_urls() {
        let a = assets();
        let jpg = a.body(MediaKind::Jpeg, "MMx", 0).unwrap();
        assert_eq!(&jpg[..3], &[0xFF, 0xD8, 0xFF], "starts like a JPEG");
        assert_eq!(&jpg[jpg.len() - 2..], &[0xFF, 0xD9], "ends like a JPEG");
        assert!(jpg.len().abs_diff(20_000) < 16, "{}", jpg.len());
        assert_eq!(infer::get(&jpg).map(|k| k.mime_type()), Some("image/jpeg"));
        assert_eq!(jpg, a.body(MediaKind::Jpeg, "MMx", 0).unwrap());
        assert_ne!(jpg, a.body(MediaKind::Jpeg, "MMx", 1).unwrap());
        let big = Assets {
            image_bytes: 200_000,
            ..assets()
        };
        let big = big.body(MediaKind::Jpeg, "MMx", 0).unwrap();
        assert!(big.len().abs_diff(200_000) < 16, "{}", big.len());
        assert_eq!(infer::get(&big).map(|k| k.mime_type()), Some("image/jpeg"));

        let card = a.body(MediaKind::Vcard, "MMx", 1).unwrap();
        let text = std::str::from_utf8(&card).unwrap();
        assert!(text.starts_with("BEGIN:VCARD\r\n") && text.ends_with("END:VCARD\r\n"));
        assert!(text.contains("TEL;TYPE=CELL:+1510555"), "{text}");
        assert_eq!(card, a.body(MediaKind::Vcard, "MMx", 1).unwrap());

        let voice = a.body(MediaKind::Wav, "MMy", 0).unwrap();
        assert_eq!(&voice[..4], b"RIFF");
        assert_eq!(&voice[8..12], b"WAVE");
        assert_eq!(voice.len(), 44 + 3200);
        assert_eq!(
            infer::get(&voice).map(|k| k.mime_type()),
            Some("audio/x-wav")
        );
        let no_voice = Assets {
            voice_wav: None,
            ..assets()
        };
        assert!(no_voice.body(MediaKind::Wav, "MMy", 0).is_none());
    }

    #[tokio::test]
    async fn the_server_serves_each_url_with_its_type_and_counts_fetches() {
        let server = MediaServer::start("127.0.0.1:0".parse().unwrap(), assets())
            .await
            .unwrap();
        assert!(server.base_url.starts_with("http://127.0.0.1:"));
        let client = reqwest::Client::new();
        let get = |kind, n| {
            let u = url(&server.base_url, "MM00ab", n, kind);
            let client = client.clone();
            async move { client.get(u).send().await.unwrap() }
        };
        for (kind, n) in [
            (MediaKind::Jpeg, 0),
            (MediaKind::Vcard, 1),
            (MediaKind::Jpeg, 2),
            (MediaKind::Wav, 0),
        ] {
            let r = get(kind, n).await;
            assert_eq!(r.status(), 200, "{kind:?}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], kind.content_type());
            let body = r.bytes().await.unwrap();
            assert_eq!(Some(body), assets().body(kind, "MM00ab", n as u32));
        }
        let missing = client
            .get(format!("{}/media/MM00ab/0.exe", server.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        let s = server.served.snapshot(4);
        assert_eq!((s.fetches, s.images, s.vcards, s.voice), (4, 2, 1, 1));
        assert_eq!(s.not_found, 1);
        assert_eq!(s.expected, 4);
        assert!(s.bytes > 40_000, "{}", s.bytes);

        assert!(matches!(
            MediaServer::start("0.0.0.0:0".parse().unwrap(), assets()).await,
            Err(MediaError::NotLoopback(_))
        ));
    }
}
