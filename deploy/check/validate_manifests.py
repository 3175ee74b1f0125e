#!/usr/bin/env python3
"""Validate Kubernetes manifests offline, each kind by the best schema obtainable here.

  core kinds (apps/v1, v1, batch/v1, ...)  kubernetes-validate's Kubernetes JSON schemas, strict
                                           (unknown fields refused), for every --k8s-version
  kafka.strimzi.io/v1 (Kafka, KafkaNodePool, KafkaTopic)
                                           the CRDs Strimzi's own generator writes from its model
                                           classes (deploy/check/tools.sh), strict like
                                           `kubectl apply` with field validation
  keda.sh, monitoring.coreos.com           @kubernetes-models validators from those projects'
                                           CRDs (types, required fields, enums; crd_models.mjs)
  scylla.scylladb.com, opentelemetry.io    Rust types generated from those operators' CRDs
                                           (kube-custom-resources-rs, crates.io), strict:
                                           unknown fields, wrong types, missing required fields
                                           and values outside enums fail (crdtypes/)

A resource of any other kind fails: nothing is skipped silently.
Usage: validate_manifests.py --strimzi-crds DIR --node-modules DIR --crdtypes BIN
                             [--k8s-version V]... FILE...
"""
import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from importlib.metadata import version as _version

KV_VERSION = _version("kubernetes-validate")

CRD_MODELS = ("keda.sh/", "monitoring.coreos.com/")
CRD_TYPES = ("scylla.scylladb.com/", "opentelemetry.io/")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def strict(schema):
    """An openAPIV3Schema as JSON Schema that refuses unknown fields, as the API server's
    strict field validation does (pruning would drop them silently otherwise)."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    return s


def load_crds(folder):
    schemas = {}
    for f in sorted(Path(folder).glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            schema = strict(v["schema"]["openAPIV3Schema"])
            # metadata is `type: object` in a CRD; the API server checks it like any object's.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(f"{group}/{v['name']}", kind)] = schema
    return schemas


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strimzi-crds", required=True)
    ap.add_argument("--node-modules", required=True)
    ap.add_argument("--crdtypes", required=True)
    ap.add_argument("--k8s-version", action="append", default=[])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    versions = args.k8s_version or ["1.37.0"]
    crds = load_crds(args.strimzi_crds)
    failed, counts, for_node, for_types = 0, {}, [], []

    def report(ok, source, res, how):
        nonlocal failed
        name = f"{source}: {res.get('kind')}/{res.get('metadata', {}).get('name')}"
        print(f"ok   {name} ({how})" if ok is True else f"FAIL {name} ({how}): {ok}")
        if ok is not True:
            failed += 1

    for file in args.files:
        for res in yaml.safe_load_all(Path(file).read_text()):
            if not res:
                continue
            api, kind = res.get("apiVersion", ""), res.get("kind", "")
            name = res.get("metadata", {}).get("name", "")
            counts[f"{api} {kind}"] = counts.get(f"{api} {kind}", 0) + 1
            if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
                report(f"metadata.name {name!r} is not a DNS subdomain", file, res, "name")
                continue
            if (api, kind) in crds:
                errors = sorted(
                    jsonschema.Draft7Validator(crds[(api, kind)]).iter_errors(res),
                    key=lambda e: list(e.path),
                )
                if errors:
                    e = errors[0]
                    report(f"{'/'.join(map(str, e.path))}: {e.message}", file, res, "Strimzi CRD")
                else:
                    report(True, file, res, f"Strimzi CRD {api}, strict")
            elif api.startswith(CRD_MODELS):
                for_node.append({"source": file, "resource": res})
            elif api.startswith(CRD_TYPES):
                for_types.append({"source": file, "resource": res})
            elif "." in api.split("/")[0] and api.split("/")[0] not in (
                "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io",
            ):
                report(f"no schema for {api} {kind}", file, res, "unknown kind")
            else:
                problems = []
                for v in versions:
                    try:
                        kubernetes_validate.validate(res, v, True)
                    except Exception as e:  # ValidationError, SchemaNotFoundError, ...
                        problems.append(f"Kubernetes {v}: {getattr(e, 'message', e)}")
                report(True if not problems else "; ".join(problems), file, res,
                       f"kubernetes-validate {KV_VERSION} strict, Kubernetes {', '.join(versions)}")
    def delegate(cmd, items, env=None):
        nonlocal failed
        r = subprocess.run(cmd, input=json.dumps(items), text=True, capture_output=True, env=env)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        fails = sum(1 for line in r.stdout.splitlines() if line.startswith("FAIL"))
        failed += fails or (r.returncode != 0)

    if for_node:
        delegate(["node", str(Path(__file__).with_name("crd_models.mjs"))], for_node,
                 {"SMSDEPLOY_NODE_MODULES": args.node_modules, "PATH": "/usr/local/bin:/usr/bin:/bin"})
    if for_types:
        delegate([args.crdtypes], for_types)
    print(f"validate_manifests: {sum(counts.values())} resources, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
