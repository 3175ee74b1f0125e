//! `smsflow topics`: create the topics of `topology/topics.toml` and report drift.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

use super::KafkaSettings;
use crate::kafka::client;

/// The topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub defaults: TopicDefaults,
    pub topics: BTreeMap<String, TopicSpec>,
}

/// Values every topic inherits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefaults {
    pub partitions: i32,
    pub replication_factor: i32,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// One topic; unset values come from the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    #[serde(default)]
    pub doc: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A topic as it should exist on the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub config: BTreeMap<String, String>,
}

/// What `apply` found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub unchanged: Vec<String>,
    pub drift: Vec<Drift>,
    pub notes: Vec<String>,
}

/// A difference between the file and the cluster that `topics` does not fix by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub topic: String,
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} is {} on the cluster, the file says {}",
            self.topic, self.what, self.actual, self.expected
        )
    }
}

/// Why the topology could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid topology: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("Kafka admin request failed ({context}): {source}; is Kafka up at the configured kafka.brokers?")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error("creating topic {topic} failed: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl Topology {
    /// Read and parse the file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| TopologyError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Every topic with defaults applied, the prefix added and replication capped.
    pub fn resolve(&self, prefix: &str, replication_cap: Option<i32>) -> Vec<ResolvedTopic> {
        self.topics
            .iter()
            .map(|(name, spec)| {
                let mut config = self.defaults.config.clone();
                config.extend(spec.config.clone());
                let rf = spec
                    .replication_factor
                    .unwrap_or(self.defaults.replication_factor);
                ResolvedTopic {
                    name: format!("{prefix}{name}"),
                    partitions: spec.partitions.unwrap_or(self.defaults.partitions),
                    replication_factor: replication_cap.map_or(rf, |cap| rf.min(cap)),
                    config,
                }
            })
            .collect()
    }
}

/// Create what is missing and compare the rest. Never alters an existing topic.
pub async fn apply(settings: &KafkaSettings, topology: &Topology) -> Result<Report, TopologyError> {
    let admin: AdminClient<DefaultClientContext> = client::base(settings, "smsflow-topics")
        .create()
        .map_err(|source| TopologyError::Kafka {
            context: "create admin client",
            source,
        })?;
    let timeout = Duration::from_secs(30);
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|source| TopologyError::Kafka {
            context: "fetch metadata",
            source,
        })?;
    let brokers = metadata.brokers().len() as i32;
    let mut report = Report::default();

    let cap = match settings.replication_factor {
        Some(rf) => Some(rf),
        None => Some(brokers.max(1)),
    };
    let wanted = topology.resolve(&settings.topic_prefix, cap);
    if let Some(max_rf) = topology
        .topics
        .values()
        .filter_map(|t| t.replication_factor)
        .chain([topology.defaults.replication_factor])
        .max()
    {
        if let Some(c) = cap.filter(|c| *c < max_rf) {
            report.notes.push(format!(
                "replication factor lowered from {max_rf} to {c} ({brokers} broker(s) in the cluster)"
            ));
        }
    }

    let mut existing: BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();

    let missing: Vec<&ResolvedTopic> = wanted
        .iter()
        .filter(|t| !existing.contains_key(&t.name))
        .collect();
    if !missing.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                let mut nt = NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication_factor),
                );
                for (k, v) in &t.config {
                    nt = nt.set(k, v);
                }
                nt
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(timeout));
        let results = admin
            .create_topics(new_topics.iter(), &opts)
            .await
            .map_err(|source| TopologyError::Kafka {
                context: "create topics",
                source,
            })?;
        for r in results {
            match r {
                Ok(name) => report.created.push(name),
                // Created since our metadata snapshot (another run, or metadata lag): compare it
                // like any existing topic below.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    let partitions = partition_count(&admin, &name, timeout).await?;
                    existing.insert(name, partitions);
                }
                Err((topic, code)) => return Err(TopologyError::Create { topic, code }),
            }
        }
    }

    let present: Vec<&ResolvedTopic> = wanted
        .iter()
        .filter(|t| existing.contains_key(&t.name))
        .collect();
    if !present.is_empty() {
        let specs: Vec<ResourceSpecifier<'_>> = present
            .iter()
            .map(|t| ResourceSpecifier::Topic(&t.name))
            .collect();
        let configs = admin
            .describe_configs(
                specs.iter(),
                &AdminOptions::new().request_timeout(Some(timeout)),
            )
            .await
            .map_err(|source| TopologyError::Kafka {
                context: "describe configs",
                source,
            })?;
        for (t, res) in present.iter().zip(configs) {
            let before = report.drift.len();
            let actual_parts = existing[&t.name];
            if actual_parts != t.partitions {
                report.drift.push(Drift {
                    topic: t.name.clone(),
                    what: "partitions".into(),
                    expected: t.partitions.to_string(),
                    actual: actual_parts.to_string(),
                });
            }
            match res {
                Ok(resource) => {
                    for (key, expected) in &t.config {
                        let actual = resource
                            .get(key)
                            .and_then(|e| e.value.clone())
                            .unwrap_or_else(|| "<unset>".into());
                        if &actual != expected {
                            report.drift.push(Drift {
                                topic: t.name.clone(),
                                what: format!("config {key}"),
                                expected: expected.clone(),
                                actual,
                            });
                        }
                    }
                }
                Err(code) => report
                    .notes
                    .push(format!("{}: could not read configs: {code}", t.name)),
            }
            if report.drift.len() == before {
                report.unchanged.push(t.name.clone());
            }
        }
    }
    Ok(report)
}

/// A topic's partition count, waiting briefly for metadata to catch up with a fresh topic.
async fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, TopologyError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|source| TopologyError::Kafka {
                context: "fetch topic metadata",
                source,
            })?;
        let n = md
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if n > 0 || tokio::time::Instant::now() >= deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_topology_declares_every_architecture_topic() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/topics.toml");
        let topo = Topology::load(&path).unwrap();
        for name in [
            "sms.messages.v1",
            "sms.media.v1",
            "sms.transcripts.v1",
            "sms.enrichments.v1",
            "sms.reviews.v1",
            "sms.phones.v1",
            "sms.outbound.v1",
            "sms.deadletter.v1",
        ] {
            assert!(topo.topics.contains_key(name), "{name} missing");
        }
        let resolved = topo.resolve("t.", Some(1));
        let phones = resolved
            .iter()
            .find(|t| t.name == "t.sms.phones.v1")
            .unwrap();
        assert_eq!(phones.config["cleanup.policy"], "compact");
        assert_eq!(phones.replication_factor, 1);
        assert!(resolved
            .iter()
            .all(|t| t.config["message.timestamp.type"] == "LogAppendTime"));
    }
}
