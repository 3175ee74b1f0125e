//! `smsflow topics`: create the topics of the topology file and report drift, or print the
//! topology as Strimzi `KafkaTopic` resources.

use std::path::Path;

use crate::config::Settings;
use crate::kafka::topology::{self, Lowering, Topology, TopologyError};

/// Print the topology as Strimzi `KafkaTopic` resources of `cluster` (no Kafka needed).
pub fn emit_strimzi(settings: &Settings, file: &Path, cluster: &str) -> Result<(), TopologyError> {
    let topo = Topology::load(file)?;
    print!(
        "{}",
        topo.strimzi_topics(&settings.kafka.topic_prefix, cluster)
    );
    Ok(())
}

/// Create missing topics, print each topic's state, and return whether the cluster differs
/// from the file in a way `topics` does not fix by itself.
pub async fn apply(
    settings: &Settings,
    file: &Path,
    lowering: Lowering,
) -> Result<bool, TopologyError> {
    let topo = Topology::load(file)?;
    let report = topology::apply(&settings.kafka, &topo, lowering).await?;
    for t in &report.created {
        println!("created  {t}");
    }
    for t in &report.unchanged {
        println!("ok       {t}");
    }
    for n in &report.notes {
        println!("note     {n}");
    }
    for d in &report.drift {
        println!("DRIFT    {d}");
    }
    Ok(!report.drift.is_empty())
}
