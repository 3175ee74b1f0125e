//! Layered configuration: embedded defaults < `smsflow.toml` < `SMSFLOW_*` environment,
//! plus the ecosystem's own names (`TWILIO_*`, `OTEL_*`). Unknown keys are refused, and every
//! value is validated at load.
//!
//! Configuration flows one way: each component owns its settings type and its checks, this
//! module assembles them, and only `app` and the CLI read `Settings` as a whole; components
//! are handed their own section.

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

// Each section's type, where its component defines it (re-exported for the CLI and tools).
pub use crate::api::ApiSettings;
pub use crate::http::HttpSettings;
pub use crate::ingress::IngressSettings;
pub use crate::kafka::projection_runner::ProjectorSettings;
pub use crate::kafka::stage_runner::StageSettings;
pub use crate::kafka::KafkaSettings;
pub use crate::phones::PhoneSettings;
use crate::secrets::SecretString;
pub use crate::stages::confirm::ConfirmSettings;
pub use crate::stages::enrich::stage::EnrichSettings;
pub use crate::stages::media::MediaSettings;
pub use crate::stages::notify::NotifyConfig;
pub use crate::stages::transcribe::TranscribeSettings;
pub use crate::store::CqlSettings;
pub use crate::telemetry::TelemetrySettings;
use crate::validation::{ensure, InvalidSetting};

/// Every setting smsflow reads. See `smsflow.example.toml` for the documented file. Each
/// section is the owning component's own type; this file only assembles and validates them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub kafka: KafkaSettings,
    pub cql: CqlSettings,
    pub redis: RedisSettings,
    pub admin: AdminSettings,
    pub twilio: TwilioSettings,
    pub ingress: IngressSettings,
    pub phones: PhoneSettings,
    pub api: ApiSettings,
    pub projector: ProjectorSettings,
    pub stages: StageSettings,
    pub media: MediaSettings,
    pub transcribe: TranscribeSettings,
    pub enrich: EnrichSettings,
    pub notify: NotifyConfig,
    pub confirm: ConfirmSettings,
    pub telemetry: TelemetrySettings,
}

/// Redis: dedupe, rate limits, verification codes, the send ledger and confirm's tallies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`; a secret, since it may carry the password.
    #[serde(serialize_with = "crate::secrets::serialize")]
    pub url: SecretString,
    /// Most pooled connections, so most of the pooled Redis commands in flight at once: the
    /// registry's writes, verification codes, the send ledger, rate-limit replies. A webhook's
    /// admission and `done` mark do not take one: they share one multiplexed connection
    /// (`redis_link`), since queueing for a pooled one was most of the ack at 900/s
    /// (`loadtest/results/2026-12-01/admission-split.md`).
    pub pool_max_size: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: SecretString::from("redis://127.0.0.1:6379"),
            pool_max_size: 128,
        }
    }
}

/// Operator endpoints. They take a JWT with the admin role (`api.auth.admin_role`); the
/// retired shared token is kept only to refuse it with a hint instead of "unknown field".
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Retired: setting it is a configuration error.
    #[serde(serialize_with = "crate::secrets::serialize_option")]
    pub token: Option<SecretString>,
}

/// Twilio credentials, read from `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    #[serde(serialize_with = "crate::secrets::serialize_option")]
    pub auth_token: Option<SecretString>,
    /// The webhook URLs `smsflow twilio configure` sets, with their connection overrides.
    #[serde(default)]
    pub webhooks: crate::twilio::WebhookSettings,
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is invalid: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
}

impl Settings {
    /// Load from the optional file, then the environment, and validate.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// The layered sources, exposed so tests can add their own overrides.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        // `./smsflow.toml` exactly: a file in a parent folder (a stray /tmp/smsflow.toml for a
        // process started below /tmp) must not configure this one.
        match file {
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None if Path::new("smsflow.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("smsflow.toml"))
            }
            None => {}
        }
        // SMSFLOW_CONFIG names the file itself (read by the CLI), not a setting.
        fig.merge(Env::prefixed("SMSFLOW_").split("__").ignore(&["config"]))
            .merge(
                Env::raw()
                    .only(&["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
                    .map(|k| {
                        let k = k.as_str().to_ascii_lowercase();
                        format!("twilio.{}", k.trim_start_matches("twilio_")).into()
                    }),
            )
    }

    /// Extract and validate.
    pub fn from_figment(fig: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every section's own checks, then the few that span sections.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.twilio
            .webhooks
            .validate()
            .map_err(|(key, reason)| InvalidSetting::new(key, reason))?;
        if self.admin.token.is_some() {
            return Err(InvalidSetting::new(
                "admin.token",
                "was retired: /v1/admin/* now takes a bearer JWT whose `roles` or `role` claim carries api.auth.admin_role (default `admin`), checked like the user API's (api.auth); remove admin.token / SMSFLOW_ADMIN__TOKEN",
            ));
        }
        self.http.validate()?;
        self.kafka.validate()?;
        self.cql.validate()?;
        self.ingress.validate()?;
        self.phones.validate()?;
        self.api.validate()?;
        self.projector.validate()?;
        self.stages.validate()?;
        self.media.validate()?;
        self.transcribe.validate()?;
        self.enrich.validate()?;
        self.notify.validate()?;
        self.confirm.validate()?;
        self.telemetry.validate()?;
        ensure(
            self.stages.transaction_timeout >= self.kafka.produce_deadline,
            "stages.transaction_timeout",
            "must be at least kafka.produce_deadline",
        )?;
        // An append that outlives the request would be stored but answered 408.
        ensure(
            self.http.request_timeout >= self.kafka.produce_deadline + Duration::from_secs(1),
            "http.request_timeout",
            "must exceed kafka.produce_deadline by at least 1 s, so that a stored event is answered in time",
        )
    }

    /// A topic's full name with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        self.kafka.topic(base)
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::secrets::ExposeSecret;
    use figment::Jail;

    #[test]
    fn env_overrides_nested_keys_with_double_underscore() {
        Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_HTTP__ADDR", "127.0.0.1:9999");
            jail.set_env("SMSFLOW_KAFKA__TOPIC_PREFIX", "t1.");
            jail.set_env("TWILIO_AUTH_TOKEN", "secret");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.http.addr.port(), 9999);
            assert_eq!(s.topic("sms.messages.v1"), "t1.sms.messages.v1");
            assert_eq!(
                crate::secrets::non_empty(&s.twilio.auth_token),
                Some("secret")
            );
            Ok(())
        });
    }

    #[test]
    fn no_secret_reaches_debug_output() {
        Jail::expect_with(|jail| {
            jail.set_env("TWILIO_AUTH_TOKEN", "twilio-token-SECRET1");
            jail.set_env(
                "SMSFLOW_REDIS__URL",
                "redis://:redis-pass-SECRET2@127.0.0.1:6379",
            );
            jail.set_env("SMSFLOW_API__AUTH__HS256_SECRET", "jwt-key-SECRET3");
            jail.set_env(
                "SMSFLOW_KAFKA__SCHEMA_REGISTRY__URL",
                "https://key:registry-pass-SECRET4@registry.example.com/apis/ccompat/v7",
            );
            jail.set_env("SMSFLOW_TRANSCRIBE__OPENAI__API_KEY", "sk-SECRET5");
            jail.set_env("SMSFLOW_TRANSCRIBE__GOOGLE__API_KEY", "AIza-SECRET6");
            jail.set_env("SMSFLOW_ENRICH__LLM__API_KEY", "llm-key-SECRET7");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            // Each was read...
            assert_eq!(
                crate::secrets::non_empty(&s.api.auth.hs256_secret),
                Some("jwt-key-SECRET3")
            );
            assert!(s.redis.url.expose_secret().contains("SECRET2"));
            // ...and none prints.
            for shown in [format!("{s:?}"), format!("{s:#?}")] {
                assert!(
                    !shown.contains("SECRET"),
                    "a secret in Debug output: {shown}"
                );
            }
            // The admin token is refused at load, but its value never prints either.
            let mut s = s;
            s.admin.token = Some("admin-SECRET8".into());
            assert!(!format!("{s:?}").contains("SECRET8"));
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        Jail::expect_with(|jail| {
            jail.create_file("smsflow.toml", "[http]\nadress = \"127.0.0.1:1\"\n")?;
            let err = Settings::load(None).expect_err("unknown key must fail");
            assert!(err.to_string().contains("adress"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_operator_listener_on_the_public_address_is_refused_at_load() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "smsflow.toml",
                "[http]\naddr = \"0.0.0.0:8080\"\nops_addr = \"127.0.0.1:8090\"\n",
            )?;
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.http.ops_addr.port(), 8090);
            jail.set_env("SMSFLOW_HTTP__OPS_ADDR", "127.0.0.1:8080");
            let err = Settings::load(None).expect_err("ops_addr on http.addr's port must fail");
            assert!(err.to_string().contains("http.ops_addr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_KAFKA__PRODUCE_DEADLINE", "20s");
            let err = Settings::load(None).expect_err("deadline above 15 s must fail");
            assert!(err.to_string().contains("kafka.produce_deadline"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_enrich_time_zone_is_refused_at_load_not_when_the_role_starts() {
        Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_ENRICH__DEFAULT_TIME_ZONE", "Mars/Olympus");
            let err = Settings::load(None).expect_err("an unknown zone must fail");
            let msg = err.to_string();
            assert!(
                msg.contains("enrich.default_time_zone") && msg.contains("Mars/Olympus"),
                "{msg}"
            );
            Ok(())
        });
    }

    #[test]
    fn every_section_reports_in_one_shape() {
        let mut s = Settings::default();
        s.media.max_bytes = 0;
        let e = s.validate().expect_err("media.max_bytes = 0 must fail");
        assert_eq!(e.key, "media.max_bytes");
        let mut s = Settings::default();
        s.confirm.max_age = std::time::Duration::from_secs(1);
        assert_eq!(s.validate().unwrap_err().key, "confirm.max_age");
        let mut s = Settings::default();
        s.telemetry.log_format = "xml".into();
        assert_eq!(s.validate().unwrap_err().key, "telemetry.log_format");
    }

    #[test]
    fn the_retired_admin_token_is_refused_with_a_hint() {
        Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_ADMIN__TOKEN", "old-shared-secret");
            let err = Settings::load(None).expect_err("admin.token must fail");
            let msg = err.to_string();
            assert!(
                msg.contains("admin.token") && msg.contains("admin_role"),
                "{msg}"
            );
            Ok(())
        });
    }

    #[test]
    fn example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("smsflow.example.toml");
        let fig =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file_exact(path));
        Settings::from_figment(fig).expect("example config must be valid");
    }
}
