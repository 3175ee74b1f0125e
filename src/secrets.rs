//! Secrets in settings (tokens, keys, URLs that may carry a password) are held as
//! [`SecretString`], so that no `Debug`, log line or error can print them; code that needs the
//! value asks for it with [`ExposeSecret::expose_secret`], at the one place it is used.

use serde::Serializer;

pub use secrecy::{ExposeSecret, SecretString};

/// `serialize_with` for a secret. Only figment's defaults layer serializes settings
/// (`Serialized::defaults(Settings::default())`), and it must see the value to pass it on.
pub fn serialize<S: Serializer>(secret: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(secret.expose_secret())
}

/// `serialize_with` for an optional secret (see [`serialize`]).
pub fn serialize_option<S: Serializer>(
    secret: &Option<SecretString>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

/// The value of an optional secret when it is set and not empty.
pub fn non_empty(secret: &Option<SecretString>) -> Option<&str> {
    secret
        .as_ref()
        .map(ExposeSecret::expose_secret)
        .filter(|s| !s.is_empty())
}

/// A URL safe for logs and errors: its user name and password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("redis://:hunter2@cache.internal:6379/0"),
            "redis://***@cache.internal:6379/0"
        );
        assert_eq!(
            redact_url("https://key:s3cret@registry.example.com/x"),
            "https://***@registry.example.com/x"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert!(!redact_url("not a url with s3cret").contains("s3cret"));
    }

    #[test]
    fn secrets_serialize_for_the_defaults_layer_but_never_debug() {
        #[derive(serde::Serialize, Debug)]
        struct S {
            #[serde(serialize_with = "serialize")]
            a: SecretString,
            #[serde(serialize_with = "serialize_option")]
            b: Option<SecretString>,
        }
        let s = S {
            a: "alpha-secret".into(),
            b: Some("beta-secret".into()),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"a":"alpha-secret","b":"beta-secret"}"#);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("alpha") && !debug.contains("beta"),
            "{debug}"
        );
    }
}
