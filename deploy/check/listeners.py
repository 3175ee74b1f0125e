#!/usr/bin/env python3
"""A rendered chart uses smsflow's two listeners as smsflow binds them: the container ports are
the ports of http.addr and http.ops_addr in the rendered smsflow.toml; every probe, the
ServiceMonitor and the scrape annotations ask the operator listener (port `ops`); and no
Service with a cluster IP (the public ones, behind an Ingress) exposes it."""
import sys
import tomllib

import yaml

failed = 0


def check(ok, what):
    global failed
    if not ok:
        print("FAIL " + what)
    failed += not ok


def main(rendered):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    toml = next(d for d in docs if d["kind"] == "ConfigMap" and "smsflow.toml" in d.get("data", {}))
    http = tomllib.loads(toml["data"]["smsflow.toml"])["http"]
    want = {"http": int(http["addr"].rsplit(":", 1)[1]), "ops": int(http["ops_addr"].rsplit(":", 1)[1])}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for w in workloads:
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]
        c = next(c for c in pod["spec"]["containers"] if c["name"] == "smsflow")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(ports == want, f"{name}: container ports {ports} are http.addr and http.ops_addr {want}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            check(c[probe]["httpGet"]["port"] == "ops", f"{name}: {probe} asks the operator listener")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness is /readyz")
        notes = pod["metadata"].get("annotations", {})
        if "prometheus.io/port" in notes:
            check(notes["prometheus.io/port"] == str(want["ops"]), f"{name}: scrape annotation names the ops port")
    for s in (d for d in docs if d["kind"] == "Service"):
        names = [p.get("targetPort") for p in s["spec"]["ports"]]
        if s["spec"].get("clusterIP") != "None":
            check("ops" not in names, f"Service {s['metadata']['name']} (public) does not expose the operator listener")
    for m in (d for d in docs if d["kind"] == "ServiceMonitor"):
        check(all(e["port"] == "ops" and e["path"] == "/metrics" for e in m["spec"]["endpoints"]),
              f"ServiceMonitor {m['metadata']['name']} scrapes /metrics on port ops")
    if failed:
        return 1
    print(f"ok   {rendered.rsplit('/', 1)[-1]}: {len(workloads)} workloads probe and expose the operator listener (port {want['ops']}), public Services do not")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
