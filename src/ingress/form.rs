//! Turns Twilio's form parameters into a `MessageReceived`, checking what Twilio promises.

use std::collections::BTreeMap;

use crate::events::{Geo, MediaRef, MessageReceived, OutboundStatusChanged};

/// Largest NumMedia Twilio sends (MMS allows 10 attachments).
const MAX_MEDIA: usize = 10;

/// Why a signed webhook could still not be accepted: answered with 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("required parameter {0} is missing")]
    Missing(&'static str),
    #[error("parameter {0} appears more than once")]
    Repeated(&'static str),
    #[error("parameter {name} is not a valid number: {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("NumMedia is {declared} but {problem}")]
    MediaMismatch { declared: usize, problem: String },
}

/// Parameters Twilio documents for inbound messages and which the event names explicitly.
const KNOWN: &[&str] = &[
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "Body",
    "NumSegments",
    "NumMedia",
    "FromCity",
    "FromState",
    "FromZip",
    "FromCountry",
    "ToCity",
    "ToState",
    "ToZip",
    "ToCountry",
    "SmsStatus",
    "ApiVersion",
];

struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    fn one(&self, name: &'static str) -> Result<Option<&'a str>, FormError> {
        let mut it = self.pairs.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(FormError::Repeated(name));
        }
        Ok(first)
    }

    fn required(&self, name: &'static str) -> Result<&'a str, FormError> {
        match self.one(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(FormError::Missing(name)),
        }
    }

    fn optional(&self, name: &'static str) -> Result<Option<String>, FormError> {
        Ok(self.one(name)?.filter(|v| !v.is_empty()).map(str::to_owned))
    }

    fn number(&self, name: &'static str, default: usize) -> Result<usize, FormError> {
        match self.one(name)? {
            None | Some("") => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| FormError::NotANumber {
                name,
                value: v.chars().take(32).collect(),
            }),
        }
    }
}

/// Build the event from the parameters of a webhook whose signature already checked out.
pub fn message_received(
    pairs: &[(String, String)],
    event_id: String,
    received_at_us: i64,
    idempotency_token: Option<String>,
) -> Result<MessageReceived, FormError> {
    let p = Params { pairs };
    let num_media = p.number("NumMedia", 0)?;
    if num_media > MAX_MEDIA {
        return Err(FormError::MediaMismatch {
            declared: num_media,
            problem: format!("at most {MAX_MEDIA} attachments exist"),
        });
    }
    let media = media(&p, pairs, num_media)?;
    let num_segments = p.number("NumSegments", 1)?;
    let geo = Geo {
        from_city: p.optional("FromCity")?,
        from_state: p.optional("FromState")?,
        from_zip: p.optional("FromZip")?,
        from_country: p.optional("FromCountry")?,
        to_city: p.optional("ToCity")?,
        to_state: p.optional("ToState")?,
        to_zip: p.optional("ToZip")?,
        to_country: p.optional("ToCountry")?,
    };
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        if !KNOWN.contains(&k.as_str()) && !is_media_param(k) {
            extra.entry(k.clone()).or_default().push(v.clone());
        }
    }
    Ok(MessageReceived {
        event_id,
        received_at: received_at_us,
        message_sid: p.required("MessageSid")?.to_owned(),
        account_sid: p.required("AccountSid")?.to_owned(),
        messaging_service_sid: p.optional("MessagingServiceSid")?,
        from: p.required("From")?.to_owned(),
        to: p.required("To")?.to_owned(),
        body: p.one("Body")?.unwrap_or_default().to_owned(),
        num_segments: i32::try_from(num_segments).unwrap_or(i32::MAX),
        media,
        geo: (geo != Geo::default()).then_some(geo),
        sms_status: p.optional("SmsStatus")?,
        api_version: p.optional("ApiVersion")?,
        idempotency_token,
        user_id: None,
        extra,
    })
}

/// Build the event from a signed StatusCallback: `MessageSid` and `MessageStatus` (or the
/// older `SmsStatus`) are required, `ErrorCode` must be a number when present. `query` is the
/// callback URL's own query, where the notify stage put the request's `event_id` and owner.
pub fn status_changed(
    pairs: &[(String, String)],
    query: &[(String, String)],
    event_id: String,
    changed_at_us: i64,
) -> Result<OutboundStatusChanged, FormError> {
    let p = Params { pairs };
    let q = Params { pairs: query };
    let status = match p.optional("MessageStatus")? {
        Some(s) => s,
        None => p
            .optional("SmsStatus")?
            .ok_or(FormError::Missing("MessageStatus"))?,
    };
    let error_code = match p.one("ErrorCode")?.map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<i32>().map_err(|_| FormError::NotANumber {
            name: "ErrorCode",
            value: v.chars().take(32).collect(),
        })?),
    };
    Ok(OutboundStatusChanged {
        event_id,
        changed_at: changed_at_us,
        request_event_id: q.optional("event_id")?,
        source: "callback".into(),
        status: status.to_ascii_lowercase(),
        twilio_sid: Some(p.required("MessageSid")?.to_owned()),
        error_code,
        error_message: None,
        reason: None,
        user_id: q.optional("user_id")?,
        to: p.optional("To")?,
        from: p.optional("From")?,
        purpose: None,
    })
}

fn is_media_param(k: &str) -> bool {
    let index = k
        .strip_prefix("MediaUrl")
        .or_else(|| k.strip_prefix("MediaContentType"));
    index.is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

fn media(
    p: &Params<'_>,
    pairs: &[(String, String)],
    declared: usize,
) -> Result<Vec<MediaRef>, FormError> {
    let mismatch = |problem: String| FormError::MediaMismatch { declared, problem };
    let present = pairs
        .iter()
        .filter(|(k, _)| k.starts_with("MediaUrl") && is_media_param(k))
        .count();
    if present != declared {
        return Err(mismatch(format!(
            "{present} MediaUrlN parameters were sent"
        )));
    }
    let mut out = Vec::with_capacity(declared);
    for i in 0..declared {
        let url = p
            .pairs
            .iter()
            .find(|(k, _)| k.strip_prefix("MediaUrl") == Some(&i.to_string()))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| mismatch(format!("MediaUrl{i} is missing")))?;
        if url::Url::parse(&url)
            .map(|u| u.scheme() != "https" && u.scheme() != "http")
            .unwrap_or(true)
        {
            return Err(mismatch(format!("MediaUrl{i} is not an http(s) URL")));
        }
        let content_type = p
            .pairs
            .iter()
            .find(|(k, _)| k.strip_prefix("MediaContentType") == Some(&i.to_string()))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| mismatch(format!("MediaContentType{i} is missing")))?;
        out.push(MediaRef { url, content_type });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(String, String)> {
        [
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", "+15105550142"),
            ("To", "+14155550100"),
            ("Body", "met Dana at the expo"),
            ("NumSegments", "1"),
            ("NumMedia", "0"),
            ("FromCity", "OAKLAND"),
            ("SmsStatus", "received"),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn build(pairs: &[(String, String)]) -> Result<MessageReceived, FormError> {
        message_received(pairs, "e1".into(), 1, None)
    }

    #[test]
    fn documented_fields_are_mapped() {
        let ev = build(&base()).unwrap();
        assert_eq!(ev.from, "+15105550142");
        assert_eq!(ev.body, "met Dana at the expo");
        assert_eq!(ev.geo.unwrap().from_city.as_deref(), Some("OAKLAND"));
        assert_eq!(ev.sms_status.as_deref(), Some("received"));
        assert!(ev.extra.is_empty());
    }

    #[test]
    fn unknown_parameters_are_kept_with_every_value() {
        let mut p = base();
        p.push(("NewThing".into(), "a".into()));
        p.push(("NewThing".into(), "b".into()));
        let ev = build(&p).unwrap();
        assert_eq!(ev.extra["NewThing"], vec!["a", "b"]);
    }

    #[test]
    fn media_must_agree_with_num_media() {
        let mut p = base();
        p.retain(|(k, _)| k != "NumMedia");
        p.push(("NumMedia".into(), "2".into()));
        p.push(("MediaUrl0".into(), "https://api.twilio.com/m/0".into()));
        p.push(("MediaContentType0".into(), "image/jpeg".into()));
        assert!(matches!(
            build(&p),
            Err(FormError::MediaMismatch { declared: 2, .. })
        ));
        p.push(("MediaUrl1".into(), "https://api.twilio.com/m/1".into()));
        assert!(
            matches!(build(&p), Err(FormError::MediaMismatch { .. })),
            "content type 1 missing"
        );
        p.push(("MediaContentType1".into(), "audio/ogg".into()));
        let ev = build(&p).unwrap();
        assert_eq!(ev.media.len(), 2);
        assert_eq!(ev.media[1].content_type, "audio/ogg");
        assert_eq!(ev.parts_expected(), 3);
    }

    #[test]
    fn missing_or_malformed_required_fields_are_refused() {
        let mut p = base();
        p.retain(|(k, _)| k != "From");
        assert_eq!(build(&p), Err(FormError::Missing("From")));
        let mut p = base();
        p.push(("NumMedia".into(), "1".into()));
        assert_eq!(build(&p), Err(FormError::Repeated("NumMedia")));
        let mut p = base();
        p.retain(|(k, _)| k != "NumSegments");
        p.push(("NumSegments".into(), "x".into()));
        assert!(matches!(
            build(&p),
            Err(FormError::NotANumber {
                name: "NumSegments",
                ..
            })
        ));
        let mut p = base();
        p.retain(|(k, _)| k != "NumMedia");
        p.push(("NumMedia".into(), "99".into()));
        assert!(matches!(build(&p), Err(FormError::MediaMismatch { .. })));
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_status_callback_becomes_a_status_event_tied_to_its_request() {
        let form = pairs(&[
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
            ("MessageStatus", "undelivered"),
            ("SmsStatus", "undelivered"),
            ("ErrorCode", "30003"),
            ("To", "+15105550142"),
            ("From", "+14155550100"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("ApiVersion", "2010-04-01"),
        ]);
        let query = pairs(&[("event_id", "req-1"), ("user_id", "u-1")]);
        let ev = status_changed(&form, &query, "ev".into(), 7).unwrap();
        assert_eq!(ev.status, "undelivered");
        assert_eq!(ev.error_code, Some(30003));
        assert_eq!(ev.request_event_id.as_deref(), Some("req-1"));
        assert_eq!(ev.partition_key(), "u-1");
        assert_eq!(ev.source, "callback");
    }

    #[test]
    fn a_status_callback_without_sid_or_status_or_with_a_bad_code_is_refused() {
        let query = Vec::new();
        let no_sid = pairs(&[("MessageStatus", "sent")]);
        assert_eq!(
            status_changed(&no_sid, &query, "e".into(), 0).unwrap_err(),
            FormError::Missing("MessageSid")
        );
        let no_status = pairs(&[("MessageSid", "SM1")]);
        assert_eq!(
            status_changed(&no_status, &query, "e".into(), 0).unwrap_err(),
            FormError::Missing("MessageStatus")
        );
        let bad_code = pairs(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "abc"),
        ]);
        assert!(matches!(
            status_changed(&bad_code, &query, "e".into(), 0).unwrap_err(),
            FormError::NotANumber {
                name: "ErrorCode",
                ..
            }
        ));
    }
}
