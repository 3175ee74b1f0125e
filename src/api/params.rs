//! The checked inputs of the API: an E.164 number, a time zone, a verification code and a page
//! token. Each type refuses what its schema in the OpenAPI document refuses, and its schema
//! says exactly what it accepts, so a client generated from the document and the server agree.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// `+`, a country code and the subscriber number: 15 digits at most, no leading zero.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{1,14}$";
/// The longest page token accepted (they are about 100 characters).
pub const PAGE_TOKEN_MAX: usize = 512;
/// Six ASCII digits.
pub const CODE_PATTERN: &str = r"^[0-9]{6}$";

/// A phone number in E.164 (`+15105550142`) that is a valid number of its country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why a phone number is refused (the number itself is not repeated: it is PII).
#[derive(Debug, thiserror::Error)]
pub enum InvalidE164 {
    #[error("phone must be in E.164 form: `+`, the country code and the number, digits only (e.g. +15105550142)")]
    Form,
    #[error("phone is in E.164 form but is not a valid number of its country")]
    NotANumber,
}

impl E164 {
    /// Check `input`: E.164 form exactly, and a valid number for its country.
    pub fn parse(input: &str) -> Result<E164, InvalidE164> {
        static FORM: LazyLock<regex::Regex> =
            LazyLock::new(|| regex::Regex::new(E164_PATTERN).expect("a valid regex"));
        if !FORM.is_match(input) {
            return Err(InvalidE164::Form);
        }
        match crate::phones::normalize(input) {
            // E.164 has one spelling: a number the parser rewrites (a trunk prefix kept after
            // the country code, say) was not in E.164.
            Ok(n) if n == input => Ok(E164(n)),
            _ => Err(InvalidE164::NotANumber),
        }
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for E164 {
    type Error = InvalidE164;
    fn try_from(s: String) -> Result<E164, InvalidE164> {
        E164::parse(&s)
    }
}

impl From<E164> for String {
    fn from(p: E164) -> String {
        p.0
    }
}

impl PartialSchema for E164 {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "A phone number in E.164: `+`, the country code and the number, digits only, and a \
             valid number of its country. In a path, URL-encode the `+` as `%2B`.",
        )
        .pattern(Some(E164_PATTERN))
        .format(Some(SchemaFormat::Custom("e164".into())))
        .examples(["+15105550142"])
        .into()
    }
}

impl ToSchema for E164 {
    fn name() -> Cow<'static, str> {
        "E164".into()
    }
}

/// An IANA time zone name as the tz database spells it (`America/New_York`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(String);

/// A time zone the server does not know.
#[derive(Debug, thiserror::Error)]
#[error("time_zone must be an IANA time zone name as the tz database spells it (e.g. America/New_York, Europe/Berlin, UTC)")]
pub struct InvalidTimeZone;

impl TimeZone {
    /// Check `input`: a name of the tz database, exactly.
    pub fn parse(input: &str) -> Result<TimeZone, InvalidTimeZone> {
        match input.parse::<chrono_tz::Tz>() {
            Ok(tz) if tz.name() == input => Ok(TimeZone(input.to_owned())),
            _ => Err(InvalidTimeZone),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TimeZone {
    type Error = InvalidTimeZone;
    fn try_from(s: String) -> Result<TimeZone, InvalidTimeZone> {
        TimeZone::parse(&s)
    }
}

impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.0
    }
}

impl PartialSchema for TimeZone {
    fn schema() -> RefOr<Schema> {
        let mut names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        names.sort_unstable();
        string_schema("An IANA time zone name, as the tz database spells it.")
            .enum_values(Some(names))
            .examples(["America/New_York"])
            .into()
    }
}

impl ToSchema for TimeZone {
    fn name() -> Cow<'static, str> {
        "TimeZone".into()
    }
}

/// The six-digit code texted to a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct VerificationCode(String);

/// A code that cannot be one the server sent.
#[derive(Debug, thiserror::Error)]
#[error("code must be the six digits of the text message")]
pub struct InvalidCode;

impl VerificationCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VerificationCode {
    type Error = InvalidCode;
    fn try_from(s: String) -> Result<VerificationCode, InvalidCode> {
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(VerificationCode(s))
        } else {
            Err(InvalidCode)
        }
    }
}

impl PartialSchema for VerificationCode {
    fn schema() -> RefOr<Schema> {
        string_schema("The six digits of the verification text message.")
            .pattern(Some(CODE_PATTERN))
            .examples(["123456"])
            .into()
    }
}

impl ToSchema for VerificationCode {
    fn name() -> Cow<'static, str> {
        "VerificationCode".into()
    }
}

/// The schema of a page token: opaque to clients, which pass back the `next_page_token` of
/// the previous page. The handler decodes it (`items::list`).
///
/// Its format is the whole check: only a token the server issued is one. A `pattern` would
/// promise that any string of the token alphabet is accepted, which is false, so there is none
/// (tools that generate requests, such as schemathesis, take a pattern as that promise).
pub struct PageToken;

impl PartialSchema for PageToken {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "Format `page-token`: the `next_page_token` of the previous page, passed back \
             unchanged. Opaque; a token this server did not issue is refused with 400.",
        )
        .max_length(Some(PAGE_TOKEN_MAX))
        .format(Some(SchemaFormat::Custom("page-token".into())))
        .into()
    }
}

impl ToSchema for PageToken {
    fn name() -> Cow<'static, str> {
        "PageToken".into()
    }
}

fn string_schema(description: &str) -> utoipa::openapi::schema::ObjectBuilder {
    Object::builder()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_e164_numbers_of_real_countries_pass() {
        assert_eq!(
            E164::parse("+15105550142").unwrap().as_str(),
            "+15105550142"
        );
        assert_eq!(
            E164::parse("+442079460123").unwrap().as_str(),
            "+442079460123"
        );
        for bad in [
            "",
            "+",
            "15105550142",
            "+1 510 555 0142",
            "+1 (510) 555-0142",
            " +15105550142",
            "+15105550142 ",
            "+015105550142",
            "+1510555014212345",
            "+１５１０５５５０１４２",
        ] {
            assert!(
                matches!(E164::parse(bad), Err(InvalidE164::Form)),
                "{bad:?}"
            );
        }
        // The right form, but no such number.
        for bad in ["+10", "+1000", "+999999999999"] {
            assert!(
                matches!(E164::parse(bad), Err(InvalidE164::NotANumber)),
                "{bad:?}"
            );
        }
        // Every accepted number matches the documented pattern.
        let pattern = regex::Regex::new(E164_PATTERN).unwrap();
        assert!(pattern.is_match(E164::parse("+15105550142").unwrap().as_str()));
    }

    #[test]
    fn time_zones_are_tz_database_names_exactly() {
        assert!(TimeZone::parse("America/New_York").is_ok());
        assert!(TimeZone::parse("UTC").is_ok());
        for bad in [
            "",
            " UTC",
            "UTC ",
            "america/new_york",
            "Mars/Olympus",
            "EST5EDT ",
        ] {
            assert!(TimeZone::parse(bad).is_err(), "{bad:?}");
        }
        // The documented enum is exactly what parse accepts.
        let RefOr::T(Schema::Object(schema)) = TimeZone::schema() else {
            panic!("an inline object schema")
        };
        let names = schema.enum_values.unwrap();
        assert!(names.len() > 400, "{}", names.len());
        for name in &names {
            let name = name.as_str().unwrap();
            assert!(TimeZone::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn codes_are_six_ascii_digits() {
        assert!(VerificationCode::try_from("012345".to_string()).is_ok());
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６", " 123456"] {
            assert!(
                VerificationCode::try_from(bad.to_string()).is_err(),
                "{bad:?}"
            );
        }
    }
}
