#!/usr/bin/env python3
"""The Grafana dashboard and the rule file query only metrics smsflow exports, and every
dashboard query parses as PromQL (promtool's parser, Grafana variables filled in)."""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml


def exported(root):
    names = set()
    for f in Path(root, "src").rglob("*.rs"):
        names |= set(re.findall(r'"(smsflow_[a-z0-9_]+)"', f.read_text()))
    return names


def used(expr):
    out = set()
    for m in re.findall(r"\bsmsflow_[a-z0-9_]+", expr):
        out.add(re.sub(r"_(bucket|count|sum)$", "", m) if m.endswith(("_bucket", "_count", "_sum")) and not m.endswith("_total") else m)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--rules", required=True)
    a = ap.parse_args()
    names = exported(a.root)
    failed = 0
    dash = json.loads(Path(a.dashboard).read_text())
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        print("FAIL panel ids repeat"); failed += 1
    exprs = []
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}" or not p.get("targets"):
            print(f"FAIL panel {p['title']!r}: no ${{datasource}} query"); failed += 1
        exprs += [(f"panel {p['title']!r}", t["expr"]) for t in p.get("targets", [])]
    for group in yaml.safe_load(Path(a.rules).read_text())["groups"]:
        for r in group["rules"]:
            exprs.append((f"rule {r.get('alert') or r.get('record')}", r["expr"]))
    unknown = {}
    for where, expr in exprs:
        for m in used(expr) - names:
            unknown.setdefault(m, []).append(where)
        if where.startswith("panel"):
            filled = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")
            r = subprocess.run([a.promtool, "promql", "format", "--experimental", filled],
                               capture_output=True, text=True)
            if r.returncode != 0:
                r = subprocess.run([a.promtool, "--experimental", "promql", "format", filled],
                                   capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {where}: {r.stderr.strip() or r.stdout.strip()}"); failed += 1
    for m, where in sorted(unknown.items()):
        print(f"FAIL {m} is not exported by smsflow (src/): {', '.join(where)}"); failed += 1
    panels = sum(1 for p in dash["panels"] if p["type"] != "row")
    print(f"ok   {panels} dashboard panels and {len(exprs) - sum(len(p.get('targets', [])) for p in dash['panels'])} rules: "
          f"{len(exprs)} queries parse, every smsflow_* metric they use is exported" if not failed else f"check_dashboard: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
