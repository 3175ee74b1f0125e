//! `smsflow extract`: items from text on stdin, with the enrich stage's own [`Extractor`] and
//! no Kafka, so a person or a CI job can check extraction.
//!
//! Input, one record per line: plain text, or a JSON object
//! `{"id", "text", "source", "region", "received_at", "time_zone"}` where only `text` is
//! required (`source` is `body` or `transcript`, `region` an ISO 3166 code such as `US`,
//! `received_at` RFC 3339, `time_zone` IANA). What a line leaves out comes from [`Defaults`].
//! Blank lines are skipped; a line longer than [`MAX_LINE_BYTES`] is refused.
//!
//! Output, one JSON line per input line, in input order:
//! `{"id", "items": [{"kind", "value", "normalized", "span", "confidence"}]}` with `span` the
//! `[start, end)` character range of `value` in the text; `id` is the line's own id, or its
//! 1-based line number. A line that cannot be read gives `{"id", "error"}` instead, and the
//! run goes on with the next line.

use chrono::DateTime;
use chrono_tz::Tz;
use phonenumber::country::Id;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::{Context, Extractor, Item, Source};

/// The longest input line read (1 MiB): longer lines are refused, not buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What a line does not say itself.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// `body` unless told otherwise.
    pub source: Source,
    /// Region national phone numbers are read in.
    pub region: Option<Id>,
    /// Zone relative dates resolve in.
    pub tz: Tz,
    /// When the text was received, in microseconds since the epoch (UTC).
    pub received_at_micros: i64,
}

/// A value on the command line or in a line that is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not `body` or `transcript`.
    #[error("source {0:?} is not one of: body, transcript")]
    Source(String),
    /// Not an ISO 3166 alpha-2 code.
    #[error("region {0:?} is not an ISO 3166 alpha-2 code (e.g. US, GB, DE)")]
    Region(String),
    /// Not an IANA zone name.
    #[error("time_zone {0:?} is not an IANA time zone name (e.g. America/New_York)")]
    TimeZone(String),
    /// Not RFC 3339.
    #[error("received_at {0:?} is not an RFC 3339 time (e.g. 2026-06-03T14:00:00Z)")]
    ReceivedAt(String),
}

impl Defaults {
    /// Defaults from command-line values; `received_at` `None` means now.
    pub fn parse(
        source: &str,
        region: Option<&str>,
        time_zone: &str,
        received_at: Option<&str>,
    ) -> Result<Defaults, InputError> {
        Ok(Defaults {
            source: parse_source(source)?,
            region: region.map(parse_region).transpose()?,
            tz: parse_tz(time_zone)?,
            received_at_micros: match received_at {
                Some(r) => parse_received(r)?,
                None => chrono::Utc::now().timestamp_micros(),
            },
        })
    }
}

fn parse_source(s: &str) -> Result<Source, InputError> {
    match s {
        "body" => Ok(Source::Body),
        "transcript" => Ok(Source::Transcript),
        other => Err(InputError::Source(other.to_owned())),
    }
}

fn parse_region(s: &str) -> Result<Id, InputError> {
    s.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| InputError::Region(s.to_owned()))
}

fn parse_tz(s: &str) -> Result<Tz, InputError> {
    s.parse().map_err(|_| InputError::TimeZone(s.to_owned()))
}

fn parse_received(s: &str) -> Result<i64, InputError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|_| InputError::ReceivedAt(s.to_owned()))
}

/// One JSON input line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    id: Option<Value>,
    text: String,
    source: Option<String>,
    region: Option<String>,
    received_at: Option<String>,
    time_zone: Option<String>,
}

#[derive(Serialize)]
struct OutItem<'a> {
    kind: &'static str,
    value: &'a str,
    normalized: &'a str,
    span: [usize; 2],
    confidence: f32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Response<'a> {
    Items { id: Value, items: Vec<OutItem<'a>> },
    Error { id: Value, error: String },
}

/// How a run went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Lines answered (blank lines are not counted).
    pub lines: usize,
    /// Lines answered with an error.
    pub errors: usize,
}

/// Reads every line of `input`, writes one JSON line per line to `output`.
pub async fn run<R, W>(
    mut input: R,
    mut output: W,
    defaults: &Defaults,
    extractor: &Extractor,
) -> std::io::Result<Summary>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut summary = Summary::default();
    let mut buf = Vec::new();
    let mut number = 0u64;
    while let Some(too_long) = next_line(&mut input, &mut buf).await? {
        number += 1;
        let line_id = Value::from(number);
        let answer = if too_long {
            Err((
                line_id,
                format!("the line is longer than {MAX_LINE_BYTES} bytes; split the input"),
            ))
        } else {
            match std::str::from_utf8(&buf) {
                Err(e) => Err((line_id, format!("the line is not UTF-8: {e}"))),
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => answer(line, line_id, defaults, extractor).await,
            }
        };
        let json = match &answer {
            Ok((id, text, items)) => Response::Items {
                id: id.clone(),
                items: items.iter().map(|i| out_item(i, text)).collect(),
            },
            Err((id, error)) => {
                summary.errors += 1;
                Response::Error {
                    id: id.clone(),
                    error: error.clone(),
                }
            }
        };
        let mut bytes = serde_json::to_vec(&json).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        output.write_all(&bytes).await?;
        summary.lines += 1;
    }
    output.flush().await?;
    Ok(summary)
}

fn out_item<'a>(i: &'a Item, _text: &str) -> OutItem<'a> {
    OutItem {
        kind: i.kind.as_str(),
        value: &i.value,
        normalized: &i.normalized,
        span: [i.span.0, i.span.1],
        confidence: i.confidence,
    }
}

type Answer = Result<(Value, String, Vec<Item>), (Value, String)>;

async fn answer(line: &str, line_id: Value, defaults: &Defaults, x: &Extractor) -> Answer {
    let line = line.trim_end_matches(['\r', '\n']);
    let (id, text, ctx, source) = if line.trim_start().starts_with('{') {
        let req: Request = serde_json::from_str(line)
            .map_err(|e| (line_id.clone(), format!("not a valid request object: {e}")))?;
        let id = req.id.clone().unwrap_or(line_id);
        let fail = |e: InputError| (id.clone(), e.to_string());
        let source = match req.source.as_deref() {
            Some(s) => parse_source(s).map_err(fail)?,
            None => defaults.source,
        };
        let region = match req.region.as_deref() {
            Some(r) => Some(parse_region(r).map_err(fail)?),
            None => defaults.region,
        };
        let tz = match req.time_zone.as_deref() {
            Some(z) => parse_tz(z).map_err(fail)?,
            None => defaults.tz,
        };
        let received = match req.received_at.as_deref() {
            Some(r) => parse_received(r).map_err(fail)?,
            None => defaults.received_at_micros,
        };
        (id, req.text, Context::new(region, received, tz), source)
    } else {
        let ctx = Context::new(defaults.region, defaults.received_at_micros, defaults.tz);
        (line_id, line.to_owned(), ctx, defaults.source)
    };
    match x.text(&text, source, &ctx).await {
        Ok(items) => Ok((id, text, items)),
        Err(e) => Err((id, e.to_string())),
    }
}

/// The next line into `buf` (without its end), `Some(true)` when it was too long (and was
/// skipped), `None` at the end of the input.
async fn next_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(p) => (p + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            let body = &chunk[..if done { take - 1 } else { take }];
            if buf.len() + body.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(body);
            }
        }
        r.consume(take);
        if done {
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &str) -> (Vec<Value>, Summary) {
        let defaults = Defaults::parse(
            "body",
            Some("US"),
            "America/Los_Angeles",
            Some("2026-11-28T18:00:00Z"),
        )
        .expect("defaults");
        let mut out = Vec::new();
        let summary = run(
            input.as_bytes(),
            &mut out,
            &defaults,
            &Extractor::with_llm(None),
        )
        .await
        .expect("runs");
        let values = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        (values, summary)
    }

    #[tokio::test]
    async fn plain_and_json_lines_each_give_one_line_in_order() {
        let input = concat!(
            "call Dana Reyes at 510-555-0142 tomorrow at 5\n",
            "\n",
            r#"{"id":"t1","text":"my cell is plus four four seven nine one one one two three four five six","source":"transcript","region":"GB","time_zone":"Europe/London","received_at":"2026-06-11T08:00:00Z"}"#,
            "\n",
            r#"{"text":"no items here"}"#,
        );
        let (out, summary) = lines(input).await;
        assert_eq!(
            summary,
            Summary {
                lines: 3,
                errors: 0
            }
        );
        assert_eq!(out[0]["id"], 1);
        let kinds: Vec<&str> = out[0]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["kind"].as_str().expect("kind"))
            .collect();
        assert_eq!(kinds, vec!["contact", "phone", "datetime"]);
        assert_eq!(out[0]["items"][1]["normalized"], "+15105550142");
        assert_eq!(out[0]["items"][1]["span"], serde_json::json!([19, 31]));
        assert_eq!(out[1]["id"], "t1");
        assert_eq!(out[1]["items"][0]["normalized"], "+447911123456");
        assert_eq!(out[2]["id"], 4);
        assert_eq!(out[2]["items"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn bad_lines_get_an_error_and_the_run_goes_on() {
        let input = concat!(
            "{\"text\": \n",
            r#"{"text":"x","region":"Narnia"}"#,
            "\n",
            r#"{"text":"x","time_zone":"Mars/Olympus"}"#,
            "\n",
            r#"{"text":"x","source":"vcard"}"#,
            "\n",
            r#"{"text":"x","received_at":"yesterday"}"#,
            "\n",
            r#"{"text":"x","colour":"red"}"#,
            "\n",
            "call 510-555-0142\n",
        );
        let (out, summary) = lines(input).await;
        assert_eq!(
            summary,
            Summary {
                lines: 7,
                errors: 6
            }
        );
        for (i, want) in [
            "not a valid request",
            "ISO 3166",
            "IANA",
            "body, transcript",
            "RFC 3339",
            "unknown field",
        ]
        .iter()
        .enumerate()
        {
            let e = out[i]["error"].as_str().expect("an error");
            assert!(e.contains(want), "{e}");
        }
        assert_eq!(out[6]["items"][0]["normalized"], "+15105550142");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_without_buffering_it() {
        let mut input = "x".repeat(MAX_LINE_BYTES + 10);
        input.push('\n');
        input.push_str("call 510-555-0142\n");
        let (out, summary) = lines(&input).await;
        assert_eq!(summary.errors, 1);
        assert!(out[0]["error"]
            .as_str()
            .expect("error")
            .contains("longer than"));
        assert_eq!(out[1]["items"][0]["normalized"], "+15105550142");
    }

    #[test]
    fn defaults_refuse_bad_values() {
        assert!(Defaults::parse("email", None, "UTC", None).is_err());
        assert!(Defaults::parse("body", Some("XX1"), "UTC", None).is_err());
        assert!(Defaults::parse("body", None, "Nowhere/City", None).is_err());
        assert!(Defaults::parse("body", None, "UTC", Some("noon")).is_err());
        let d = Defaults::parse("transcript", Some("gb"), "Europe/London", None).expect("ok");
        assert_eq!(d.region, Some(Id::GB));
    }
}
