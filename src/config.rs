//! Layered configuration: embedded defaults < `smsflow.toml` < `SMSFLOW_*` environment,
//! plus the ecosystem's own names (`TWILIO_*`, `OTEL_*`). Unknown keys are refused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Every setting smsflow reads. See `smsflow.example.toml` for the documented file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub kafka: KafkaSettings,
    pub cql: CqlSettings,
    pub redis: RedisSettings,
    pub admin: AdminSettings,
    pub twilio: TwilioSettings,
    pub ingress: IngressSettings,
    pub phones: crate::phones::PhoneSettings,
    pub api: crate::api::ApiSettings,
    pub projector: ProjectorSettings,
    pub stages: StageSettings,
    pub media: crate::stages::media::MediaSettings,
    pub transcribe: crate::stages::transcribe::TranscribeSettings,
    pub enrich: crate::stages::enrich::stage::EnrichSettings,
    pub notify: crate::stages::notify::NotifyConfig,
    pub confirm: crate::stages::confirm::ConfirmSettings,
    pub telemetry: TelemetrySettings,
}

/// The HTTP server that hosts the webhook and, later, the query API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Public base URL Twilio calls (scheme, host, optional port), used to check signatures.
    pub public_url: String,
    /// A client must send its full request head within this time.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request must be answered within this time, or it gets 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most requests handled at once; more wait in the accept backlog.
    pub max_concurrent_requests: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// Kafka connection and topic naming.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Prefix for every topic name; empty in production, random in tests.
    pub topic_prefix: String,
    /// How long ingress waits for Kafka's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub produce_deadline: Duration,
    /// Producer linger: a small batching window that trades latency for throughput.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Most records the producer keeps queued; beyond that ingress answers 503 at once.
    pub producer_queue_max_messages: u32,
    /// Replication factor used by `smsflow topics` when the topology file does not fix one.
    pub replication_factor: Option<i32>,
    /// How producers frame records: `single_object` (Avro single-object encoding, readable
    /// with `schemas/` alone) or `confluent` (schema-registry ids). Readers accept both.
    pub wire_format: crate::events::WireFormat,
    /// The Confluent-compatible schema registry (`smsflow schemas`, confluent wire format).
    pub schema_registry: crate::events::confluent::SchemaRegistrySettings,
}

/// CQL (Cassandra locally, ScyllaDB in production).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CqlSettings {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace holding the read models.
    pub keyspace: String,
    /// Replication clause used when `migrate` creates the keyspace.
    pub replication: String,
    /// Per-statement timeout.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Consistency of every statement (`local_quorum`; `quorum`, `local_one`, `one`, `all`).
    pub consistency: crate::store::CqlConsistency,
    /// The data center this process runs in: requests go to its replicas only (token- and
    /// shard-aware), never to another data center. Unset: every node is a candidate.
    pub local_datacenter: Option<String>,
}

/// Redis (rate limits and dedupe arrive with the edge issue; readiness checks it now).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Most pooled connections.
    pub pool_max_size: usize,
}

/// Operator endpoints. They take a JWT with the admin role (`api.auth.admin_role`) now; the
/// interim shared token is kept only to refuse it with a hint instead of "unknown field".
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Retired: setting it is a configuration error.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Twilio credentials, read from `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN`.
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    /// The webhook URLs `smsflow twilio configure` sets, with their connection overrides.
    #[serde(default)]
    pub webhooks: crate::twilio::WebhookSettings,
}

impl std::fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("account_sid", &self.account_sid)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

/// Webhook behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSettings {
    /// Check `X-Twilio-Signature`. Turning it off is refused unless `allow_unsigned` is set too.
    pub verify_signature: bool,
    /// Deliberate opt-in for local experiments without signatures.
    pub allow_unsigned: bool,
    /// Drop repeated deliveries of one MessageSid (or I-Twilio-Idempotency-Token) in Redis.
    pub dedupe: bool,
    /// How long an appended MessageSid is remembered.
    #[serde(with = "humantime_serde")]
    pub dedupe_ttl: Duration,
    /// When Redis does not answer: `fail_open` (accept, counted) or `fail_closed` (503).
    pub redis_failure: crate::ingress::dedupe::RedisFailurePolicy,
    /// Per-sender and per-user rate limits.
    pub rate_limit: crate::ingress::rate_limit::RateLimitSettings,
    /// `registered` (default): only verified numbers in the phone registry are enriched;
    /// others are recorded as `SenderRejected`. `any`: every signed sender is accepted and
    /// keyed by its own number (a single-tenant deployment without accounts).
    pub sender_policy: crate::ingress::SenderPolicy,
    /// TwiML replies; an empty text answers with no message.
    pub replies: crate::ingress::Replies,
}

/// Projector tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorSettings {
    /// Consumer group used for partition assignment (offsets live in CQL, not here).
    pub group_id: String,
    /// Most records applied in one batch.
    pub batch_max: usize,
    /// Most CQL statements in flight at once.
    pub max_in_flight: usize,
}

/// The transactional stage runner, shared by every stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    /// Stable name of this process among a stage's instances; part of the transactional id,
    /// so a restarted instance fences its predecessor's open transaction at once.
    /// Default: the host name.
    pub instance_id: Option<String>,
    /// Most inputs handled in one transaction.
    pub batch_max: usize,
    /// How long a batch waits to fill up after its first input.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Most inputs handled concurrently (inputs with the same key are always sequential).
    pub max_in_flight: usize,
    /// Attempts for a transient failure before the input is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Kafka transaction timeout; also bounds commit and abort on shutdown.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
}

/// Logging and tracing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `tracing` filter directive, e.g. `info,smsflow=debug`. `RUST_LOG` wins when set.
    pub log_filter: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Export spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default 127.0.0.1:4317).
    /// `OTEL_SDK_DISABLED=true` also turns export off.
    pub traces: bool,
    /// Most finished spans queued for export; beyond it spans are dropped, never waited for.
    pub trace_queue_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            http: HttpSettings {
                addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
                public_url: "http://127.0.0.1:8080".into(),
                header_read_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                body_limit_bytes: 64 * 1024,
                max_concurrent_requests: 4096,
                shutdown_grace: Duration::from_secs(10),
            },
            kafka: KafkaSettings {
                brokers: "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096".into(),
                topic_prefix: String::new(),
                produce_deadline: Duration::from_secs(3),
                linger: Duration::from_millis(2),
                producer_queue_max_messages: 100_000,
                replication_factor: None,
                wire_format: crate::events::WireFormat::SingleObject,
                schema_registry: crate::events::confluent::SchemaRegistrySettings::default(),
            },
            cql: CqlSettings {
                nodes: vec!["127.0.0.1:9042".into()],
                keyspace: "smsflow".into(),
                replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
                request_timeout: Duration::from_secs(5),
                consistency: crate::store::CqlConsistency::LocalQuorum,
                local_datacenter: None,
            },
            redis: RedisSettings {
                url: "redis://127.0.0.1:6379".into(),
                pool_max_size: 32,
            },
            admin: AdminSettings::default(),
            twilio: TwilioSettings::default(),
            ingress: IngressSettings {
                verify_signature: true,
                allow_unsigned: false,
                dedupe: true,
                dedupe_ttl: Duration::from_secs(24 * 3600),
                redis_failure: crate::ingress::dedupe::RedisFailurePolicy::FailOpen,
                rate_limit: crate::ingress::rate_limit::RateLimitSettings::default(),
                sender_policy: crate::ingress::SenderPolicy::Registered,
                replies: crate::ingress::Replies::default(),
            },
            phones: crate::phones::PhoneSettings::default(),
            api: crate::api::ApiSettings::default(),
            projector: ProjectorSettings {
                group_id: "smsflow-projector".into(),
                batch_max: 512,
                max_in_flight: 256,
            },
            media: crate::stages::media::MediaSettings::default(),
            transcribe: crate::stages::transcribe::TranscribeSettings::default(),
            enrich: crate::stages::enrich::stage::EnrichSettings::default(),
            notify: crate::stages::notify::NotifyConfig::default(),
            confirm: crate::stages::confirm::ConfirmSettings::default(),
            stages: StageSettings {
                instance_id: None,
                batch_max: 500,
                batch_linger: Duration::from_millis(20),
                max_in_flight: 64,
                max_attempts: 5,
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                transaction_timeout: Duration::from_secs(30),
            },
            telemetry: TelemetrySettings {
                log_filter: "info".into(),
                log_format: "text".into(),
                traces: true,
                trace_queue_size: 8192,
            },
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is invalid: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration key `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Settings {
    /// Load from the optional file, then the environment, and validate.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// The layered sources, exposed so tests can add their own overrides.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None => fig = fig.merge(Toml::file("smsflow.toml")),
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

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        match url::Url::parse(&self.http.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(invalid(
                    "http.public_url",
                    "must be an absolute http(s) URL such as https://sms.example.com",
                ))
            }
        }
        if let Err((key, reason)) = self.twilio.webhooks.validate() {
            return Err(ConfigError::Invalid { key, reason });
        }
        if self.admin.token.is_some() {
            return Err(invalid(
                "admin.token",
                "was retired: /v1/admin/* now takes a bearer JWT whose `roles` or `role` claim carries api.auth.admin_role (default `admin`), checked like the user API's (api.auth); remove admin.token / SMSFLOW_ADMIN__TOKEN",
            ));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(invalid("http.body_limit_bytes", "must be at least 1024"));
        }
        if self.http.max_concurrent_requests == 0 {
            return Err(invalid("http.max_concurrent_requests", "must be positive"));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        if self.kafka.produce_deadline.is_zero()
            || self.kafka.produce_deadline >= Duration::from_secs(15)
        {
            return Err(invalid(
                "kafka.produce_deadline",
                "must be above 0 and below Twilio's 15 s webhook timeout",
            ));
        }
        match url::Url::parse(&self.kafka.schema_registry.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            // No registry: Confluent-framed records are then poison for readers.
            _ if self.kafka.schema_registry.url.is_empty()
                && self.kafka.wire_format == crate::events::WireFormat::SingleObject => {}
            _ => {
                return Err(invalid(
                    "kafka.schema_registry.url",
                    "must be an absolute http(s) URL such as http://127.0.0.1:8081/apis/ccompat/v7 (empty only with kafka.wire_format = single_object)",
                ))
            }
        }
        if self.kafka.schema_registry.timeout.is_zero() {
            return Err(invalid("kafka.schema_registry.timeout", "must be above 0"));
        }
        if self.cql.nodes.is_empty() {
            return Err(invalid("cql.nodes", "must name at least one node"));
        }
        let ks_ok = !self.cql.keyspace.is_empty()
            && self.cql.keyspace.len() <= 48
            && self
                .cql
                .keyspace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ks_ok {
            return Err(invalid(
                "cql.keyspace",
                "must be 1-48 characters of a-z, 0-9 and _",
            ));
        }
        if !self.ingress.verify_signature && !self.ingress.allow_unsigned {
            return Err(invalid(
                "ingress.verify_signature",
                "may be false only together with ingress.allow_unsigned = true",
            ));
        }
        if self.projector.batch_max == 0 || self.projector.max_in_flight == 0 {
            return Err(invalid(
                "projector.batch_max",
                "batch_max and max_in_flight must be positive",
            ));
        }
        if self.stages.batch_max == 0
            || self.stages.max_in_flight == 0
            || self.stages.max_attempts == 0
        {
            return Err(invalid(
                "stages.batch_max",
                "batch_max, max_in_flight and max_attempts must be positive",
            ));
        }
        if self.stages.transaction_timeout < self.kafka.produce_deadline {
            return Err(invalid(
                "stages.transaction_timeout",
                "must be at least kafka.produce_deadline",
            ));
        }
        if let Err(reason) = self.media.validate() {
            return Err(ConfigError::Invalid {
                key: "media",
                reason,
            });
        }
        if let Err(e) = self.transcribe.validate() {
            return Err(ConfigError::Invalid {
                key: e.key,
                reason: e.reason,
            });
        }
        if let Err(e) = self.notify.validate() {
            return Err(ConfigError::Invalid {
                key: e.key,
                reason: e.reason,
            });
        }
        if let Err(e) = self.confirm.validate() {
            return Err(ConfigError::Invalid {
                key: e.key,
                reason: e.reason.to_owned(),
            });
        }
        if !matches!(self.telemetry.log_format.as_str(), "text" | "json") {
            return Err(invalid("telemetry.log_format", "must be text or json"));
        }
        Ok(())
    }

    /// The auth token, or an error that says how to set it.
    pub fn twilio_auth_token(&self) -> Result<&str, ConfigError> {
        self.twilio
            .auth_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Invalid {
                key: "twilio.auth_token",
                reason: "set TWILIO_AUTH_TOKEN to check webhook signatures".into(),
            })
    }

    /// A topic's full name with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{}", self.kafka.topic_prefix, base)
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
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
            assert_eq!(s.twilio.auth_token.as_deref(), Some("secret"));
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
    fn bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_KAFKA__PRODUCE_DEADLINE", "20s");
            let err = Settings::load(None).expect_err("deadline above 15 s must fail");
            assert!(err.to_string().contains("kafka.produce_deadline"), "{err}");
            Ok(())
        });
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
