//! `smsflow topics`: create the topics of `topology/topics.toml`, report drift, and print
//! the same topology as Strimzi `KafkaTopic` resources.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

use super::KafkaSettings;
use crate::kafka::client;
use crate::kafka::context::KafkaContext;

mod strimzi;

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

/// The key that bounds how many replicas may be lost without losing an acknowledged write.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// Whether `apply` may create topics with fewer replicas than the file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lowering {
    /// Refuse: creating a topic below the declared replication factor is an error.
    #[default]
    Refuse,
    /// Cap at the live broker count (or `kafka.replication_factor`), and say so: for a
    /// development cluster with fewer brokers than production (`--allow-lower-replication`).
    Allow,
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
    #[error("{path}: topic {topic}: {reason}")]
    Invalid {
        path: String,
        topic: String,
        reason: String,
    },
    #[error("the topology declares replication factor {declared}, but {why}; nothing was created. Pass --allow-lower-replication to create the topics with replication factor {effective} (development clusters only)")]
    ReplicationTooLow {
        declared: i32,
        effective: i32,
        why: String,
    },
}

impl Topology {
    /// Read and parse the file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let topology: Topology = toml::from_str(&text).map_err(|source| TopologyError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        topology
            .validate()
            .map_err(|(topic, reason)| TopologyError::Invalid {
                path: path.display().to_string(),
                topic,
                reason,
            })?;
        Ok(topology)
    }

    /// Every topic replicated three times or more must say how many replicas acknowledge a
    /// write (`acks=all` waits on exactly those), and no topic may ask for more in-sync
    /// replicas than it has.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for t in self.resolve("", None) {
            let min_isr = match t.config.get(MIN_INSYNC_REPLICAS) {
                None if t.replication_factor >= 3 => {
                    return Err((
                        t.name,
                        format!(
                            "replication factor {} needs {MIN_INSYNC_REPLICAS} (2 for 3 replicas)",
                            t.replication_factor
                        ),
                    ))
                }
                None => continue,
                Some(v) => v.parse::<i32>().map_err(|_| {
                    (
                        t.name.clone(),
                        format!("{MIN_INSYNC_REPLICAS} = {v:?} is not a number"),
                    )
                })?,
            };
            if min_isr < 1 || min_isr > t.replication_factor {
                return Err((
                    t.name,
                    format!(
                        "{MIN_INSYNC_REPLICAS} = {min_isr} must be between 1 and the replication factor {}",
                        t.replication_factor
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The largest replication factor the file declares.
    pub fn declared_replication(&self) -> i32 {
        self.topics
            .values()
            .filter_map(|t| t.replication_factor)
            .chain([self.defaults.replication_factor])
            .max()
            .unwrap_or(self.defaults.replication_factor)
    }

    /// Every topic with defaults applied, the prefix added and replication capped; a capped
    /// topic's `min.insync.replicas` is capped with it, so `acks=all` can still succeed.
    pub fn resolve(&self, prefix: &str, replication_cap: Option<i32>) -> Vec<ResolvedTopic> {
        self.topics
            .iter()
            .map(|(name, spec)| {
                let mut config = self.defaults.config.clone();
                config.extend(spec.config.clone());
                let declared = spec
                    .replication_factor
                    .unwrap_or(self.defaults.replication_factor);
                let rf = replication_cap.map_or(declared, |cap| declared.min(cap.max(1)));
                if rf < declared {
                    if let Some(isr) = config.get_mut(MIN_INSYNC_REPLICAS) {
                        if isr.parse::<i32>().is_ok_and(|n| n > rf) {
                            *isr = rf.to_string();
                        }
                    }
                }
                ResolvedTopic {
                    name: format!("{prefix}{name}"),
                    partitions: spec.partitions.unwrap_or(self.defaults.partitions),
                    replication_factor: rf,
                    config,
                }
            })
            .collect()
    }
}

/// How far the replication factor goes below the file's, and why; `None` when it does not.
fn lowered_replication(declared: i32, setting: Option<i32>, brokers: i32) -> Option<(i32, String)> {
    let brokers = brokers.max(1);
    match setting {
        Some(rf) if rf < declared && rf <= brokers => {
            Some((rf, format!("kafka.replication_factor is {rf}")))
        }
        _ if brokers < declared => Some((
            setting.map_or(brokers, |rf| rf.min(brokers)),
            format!("only {brokers} broker(s) answer"),
        )),
        _ => None,
    }
}

/// The replication cap `apply` uses, refusing a lowering that was not allowed.
fn replication_cap(
    topology: &Topology,
    setting: Option<i32>,
    brokers: i32,
    lowering: Lowering,
    notes: &mut Vec<String>,
) -> Result<Option<i32>, TopologyError> {
    let declared = topology.declared_replication();
    match (lowered_replication(declared, setting, brokers), lowering) {
        (None, _) => Ok(None),
        (Some((effective, why)), Lowering::Refuse) => Err(TopologyError::ReplicationTooLow {
            declared,
            effective,
            why,
        }),
        (Some((effective, why)), Lowering::Allow) => {
            let note = format!(
                "replication factor lowered from {declared} to {effective} because {why} (--allow-lower-replication); {MIN_INSYNC_REPLICAS} capped at {effective}"
            );
            tracing::warn!(declared, effective, "{note}");
            notes.push(note);
            Ok(Some(effective))
        }
    }
}

/// Create what is missing and compare the rest. Never alters an existing topic.
pub async fn apply(
    settings: &KafkaSettings,
    topology: &Topology,
    lowering: Lowering,
) -> Result<Report, TopologyError> {
    let admin: AdminClient<KafkaContext> = client::base(settings, "smsflow-topics")
        .create_with_context(KafkaContext::new("smsflow-topics"))
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

    let cap = replication_cap(
        topology,
        settings.replication_factor,
        brokers,
        lowering,
        &mut report.notes,
    )?;
    let wanted = topology.resolve(&settings.topic_prefix, cap);

    let mut existing: BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    // The fewest replicas of any partition: one under-replicated assignment is drift.
    let replicas: BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .filter_map(|t| {
            let n = t
                .partitions()
                .iter()
                .map(|p| p.replicas().len() as i32)
                .min()?;
            Some((t.name().to_string(), n))
        })
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
            if let Some(&actual_rf) = replicas.get(&t.name) {
                if actual_rf != t.replication_factor {
                    report.drift.push(Drift {
                        topic: t.name.clone(),
                        what: "replication factor".into(),
                        expected: t.replication_factor.to_string(),
                        actual: actual_rf.to_string(),
                    });
                }
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
    admin: &AdminClient<KafkaContext>,
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

    fn checked_in() -> Topology {
        Topology::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/topics.toml")).unwrap()
    }

    fn parse(text: &str) -> Topology {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn every_topic_with_three_replicas_needs_two_in_sync() {
        for t in checked_in().resolve("", None) {
            if t.replication_factor == 3 {
                assert_eq!(t.config[MIN_INSYNC_REPLICAS], "2", "{}", t.name);
            }
        }
        let missing = parse("[defaults]\npartitions = 1\nreplication_factor = 3\n[topics.a]\n");
        let (topic, reason) = missing.validate().unwrap_err();
        assert_eq!(topic, "a");
        assert!(reason.contains(MIN_INSYNC_REPLICAS), "{reason}");
        let too_many = parse(
            "[defaults]\npartitions = 1\nreplication_factor = 3\n[defaults.config]\n\"min.insync.replicas\" = \"2\"\n[topics.a]\nreplication_factor = 1\n",
        );
        assert!(too_many.validate().unwrap_err().1.contains("between 1 and"));
    }

    #[test]
    fn capped_replication_caps_min_insync_replicas_with_it() {
        let topo = checked_in();
        for t in topo.resolve("", Some(1)) {
            assert_eq!(t.replication_factor, 1);
            assert_eq!(t.config[MIN_INSYNC_REPLICAS], "1", "{}", t.name);
        }
        for t in topo.resolve("", Some(3)) {
            assert_eq!(t.config[MIN_INSYNC_REPLICAS], "2", "{}", t.name);
        }
    }

    #[test]
    fn lowering_replication_below_the_file_needs_the_flag() {
        let topo = checked_in();
        let mut notes = Vec::new();
        // Three brokers and no override: the file's value, nothing to allow.
        assert_eq!(
            replication_cap(&topo, None, 3, Lowering::Refuse, &mut notes).unwrap(),
            None
        );
        assert_eq!(
            replication_cap(&topo, Some(5), 3, Lowering::Refuse, &mut notes).unwrap(),
            None
        );
        // One broker, or an override below the file: refused unless allowed.
        for (setting, brokers) in [(None, 1), (Some(1), 3), (Some(2), 1)] {
            let err =
                replication_cap(&topo, setting, brokers, Lowering::Refuse, &mut notes).unwrap_err();
            assert!(
                err.to_string().contains("--allow-lower-replication"),
                "{err}"
            );
        }
        assert!(notes.is_empty());
        let cap = replication_cap(&topo, None, 1, Lowering::Allow, &mut notes).unwrap();
        assert_eq!(cap, Some(1));
        assert!(notes[0].contains("lowered from 3 to 1"), "{notes:?}");
        assert_eq!(
            replication_cap(&topo, Some(2), 3, Lowering::Allow, &mut notes).unwrap(),
            Some(2)
        );
    }
}
