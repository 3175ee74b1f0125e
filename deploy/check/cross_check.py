#!/usr/bin/env python3
"""What no schema can say: the deploy files agree with each other and with the project's own
sources (topology/topics.toml, deploy/otel/*.yaml, the chart's production values)."""
import argparse
import re
import sys
import tomllib
from pathlib import Path

import yaml

failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    failed += not ok


def docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    root = Path(ap.parse_args().root)
    k8s = root / "deploy/k8s"
    prod = yaml.safe_load((root / "deploy/helm/smsflow/ci/production-values.yaml").read_text())
    chart = yaml.safe_load((root / "deploy/helm/smsflow/values.yaml").read_text())
    topo = tomllib.loads((root / "topology/topics.toml").read_text())

    otel = docs(k8s / "otel-collector.yaml")[0]
    check(otel["spec"]["config"] == yaml.safe_load((root / "deploy/otel/collector.yaml").read_text()),
          "k8s/otel-collector.yaml spec.config is deploy/otel/collector.yaml")
    check(prod["otel"]["endpoint"].startswith(f"http://{otel['metadata']['name']}-collector."),
          "production values send OTLP to the operator's <name>-collector Service")
    jaeger_cm = [d for d in docs(k8s / "jaeger.yaml") if d["kind"] == "ConfigMap"][0]
    check(yaml.safe_load(jaeger_cm["data"]["jaeger.yaml"]) == yaml.safe_load((root / "deploy/otel/jaeger.yaml").read_text()),
          "k8s/jaeger.yaml ConfigMap is deploy/otel/jaeger.yaml")
    env = {e["name"]: e.get("value") for e in otel["spec"].get("env", [])}
    jaeger_svc = [d for d in docs(k8s / "jaeger.yaml") if d["kind"] == "Service" and any(p["port"] == 4317 for p in d["spec"]["ports"])][0]
    check(env.get("JAEGER_OTLP_ENDPOINT", "").startswith(jaeger_svc["metadata"]["name"] + "."),
          "the Collector exports to Jaeger's OTLP Service")

    scylla = docs(k8s / "scylla-cluster.yaml")[0]
    dc = scylla["spec"]["datacenter"]["name"]
    racks = scylla["spec"]["datacenter"]["racks"]
    cql = prod["config"]["cql"]
    repl = dict(re.findall(r"'([^']+)'\s*:\s*'?([^',}]+)'?", cql["replication"]))
    check(repl.get("class") == "NetworkTopologyStrategy", "production keyspace uses NetworkTopologyStrategy")
    check(repl.get(dc) == str(len(racks)),
          f"production replication gives data center {dc} one replica per rack ({len(racks)})")
    check(cql.get("local_datacenter") == dc and cql.get("consistency") == "local_quorum",
          f"production CQL is LOCAL_QUORUM in data center {dc}")
    check(cql["nodes"][0].startswith(f"{scylla['metadata']['name']}-client."),
          "production CQL contact point is the operator's <name>-client Service")

    strimzi = docs(k8s / "strimzi/kafka.yaml")
    kafka = [d for d in strimzi if d["kind"] == "Kafka"][0]
    pools = [d for d in strimzi if d["kind"] == "KafkaNodePool"]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    cfg = kafka["spec"]["kafka"]["config"]
    check(all(p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools),
          "node pools belong to the Kafka resource")
    check(controllers % 2 == 1 and controllers >= 3, f"KRaft quorum of {controllers} controllers")
    topics = docs(k8s / "strimzi/kafkatopics.yaml")
    check(all(t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for t in topics),
          f"{len(topics)} KafkaTopics belong to the Kafka resource")
    rf = max(t["spec"]["replicas"] for t in topics)
    check(brokers >= rf, f"{brokers} brokers hold replication factor {rf}")
    check(all(int(t["spec"]["config"]["min.insync.replicas"]) == 2 for t in topics if t["spec"]["replicas"] == 3),
          "every 3-replica topic has min.insync.replicas 2")
    check(cfg["min.insync.replicas"] == 2 and cfg["transaction.state.log.min.isr"] == 2
          and cfg["offsets.topic.replication.factor"] == 3 and cfg["transaction.state.log.replication.factor"] == 3,
          "internal topics (offsets, transactions) are 3 replicas, 2 in sync")
    check(prod["config"]["kafka"]["brokers"].startswith(f"{kafka['metadata']['name']}-kafka-bootstrap."),
          "production brokers are Strimzi's <name>-kafka-bootstrap Service")

    parts = [spec.get("partitions", topo["defaults"]["partitions"]) for spec in topo["topics"].values()]
    for name, values in (("values.yaml", chart), ("production values", prod)):
        check(values["kafka"]["partitions"] <= min(parts),
              f"{name}: KEDA stops at {values['kafka']['partitions']} pods, no more than the fewest partitions ({min(parts)})")
    txn = prod["config"]["stages"]["transaction_timeout"]
    check(int(txn.rstrip("s")) * 1000 <= cfg["transaction.max.timeout.ms"],
          "stages.transaction_timeout fits the brokers' transaction.max.timeout.ms")
    print(f"cross_check: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
