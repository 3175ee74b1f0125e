#!/usr/bin/env python3
"""Combine several `make bench` runs (their summary.json) into one table: for every goal, the
median of each run's figure and ratio, with the spread (lowest and highest) across the runs.

Usage: loadtest/scripts/medians.py OUT_DIR_1 OUT_DIR_2 ... > medians.md
A goal a run did not measure is left out of that goal's median; the count says how many runs
it is the median of."""
import json
import os
import re
import statistics
import sys

NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def first_number(text):
    m = NUMBER.search(text or "")
    return float(m.group(0).replace(",", "")) if m else None


def unit_of(text):
    m = re.search(r"-?\d[\d,]*\.?\d*\s*(statements/s|msg/s|messages/s|ms\b|MiB|/s|x\b)", text or "")
    return m.group(1) if m else ""


def spread(values, unit):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a", "-"
    med = statistics.median(values)
    digits = 0 if abs(med) >= 100 else 2
    sep = "" if unit in ("x", "/s") else " "
    unit = "msg/s" if unit == "messages/s" else unit
    show = lambda v: f"{v:,.{digits}f}{sep}{unit}"
    return show(med), f"{show(min(values))} - {show(max(values))}" if len(values) > 1 else "-"


runs = []
for d in sys.argv[1:]:
    with open(os.path.join(d, "summary.json")) as f:
        runs.append((d, json.load(f)["rows"]))
if not runs:
    sys.exit("usage: medians.py OUT_DIR...")

goals = []
for _, rows in runs:
    for r in rows:
        if r["goal"] not in goals:
            goals.append(r["goal"])

print(f"# make bench, {len(runs)} runs: median [lowest - highest]\n")
print("Runs: " + ", ".join(f"`{os.path.basename(os.path.normpath(d))}`" for d, _ in runs) + "\n")
print("| goal | runs | smsflow (median) | spread | ratio (median) | spread | target | verdicts |")
print("|---|---|---|---|---|---|---|---|")
for goal in goals:
    got = [r for _, rows in runs for r in rows if r["goal"] == goal]
    # "not measured at 10k in flight" (a run without PARTS=memory) names a figure that is not the goal's.
    measured = [r for r in got if not r["verdict"].startswith("not measured") and first_number(r["smsflow"]) is not None]
    s_unit = unit_of(measured[0]["smsflow"]) if measured else ""
    s_med, s_spread = spread([first_number(r["smsflow"]) for r in measured], s_unit)
    ratios = [first_number(r["ratio"]) for r in measured if r["ratio"] not in ("-", "n/a")]
    r_med, r_spread = spread(ratios, "x")
    verdicts = ", ".join(sorted({r["verdict"] for r in measured})) or "not measured"
    print(f"| {goal} | {len(measured)} | {s_med} | {s_spread} | {r_med} | {r_spread} | {got[0]['target']} | {verdicts} |")
