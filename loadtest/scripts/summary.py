#!/usr/bin/env python3
"""Summarise one `make bench` output directory: every pipeline figure next to its ceiling from
the same run, as ratios, against the benchmark goals (goals, not test assertions)."""
import json
import os
import re
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read() if name.endswith(".txt") else json.load(f)


def num(pattern, text, default=None):
    m = re.search(pattern, text or "")
    return float(m.group(1)) if m else default


def fmt(v, unit="", digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


bare = load("bare.json")
bare_max = num(r"Requests/sec:\s+([\d.]+)", load("bare-wrk.txt"))
perf_max_txt, perf_rate_txt, kafka_e2e_txt = load("kafka-perf-max.txt"), load("kafka-perf-rate.txt"), load("kafka-e2e.txt")
kafka_max = num(r"([\d.]+) records/sec", perf_max_txt)
kafka_rate_p99 = num(r"([\d.]+) ms 99th", perf_rate_txt)
kafka_e2e_p99 = num(r"99th = ([\d.]+)", kafka_e2e_txt)
kafka_e2e_p50 = num(r"50th = ([\d.]+)", kafka_e2e_txt)
produce, echo, cql = load("produce.json"), load("echo.json"), load("cql.json")
cql_projection = load("cql-projection.json")  # MessagesProjection::apply through the raw driver
sms = load("smsflow/result.json")
half = load("smsflow-half/result.json")
drain = load("smsflow-drain/e2e.json")
sustained_run = load("smsflow-sustained/result.json")
sms_sustained = num(r"sustained (\d+)", load("smsflow-sustained.txt"))
# The two Benthos peers (loadtest/README.md): minimal (files peer*) and equal-work (peer-equal*).
PEERS = []
for prefix, name, rate_goal, drain_goal in (("peer", "the minimal Benthos peer", 1.0, None),
                                            ("peer-equal", "the equal-work Benthos peer", 1.5, 1.5)):
    p = {"name": name, "run": load(f"{prefix}/result.json"), "drain": load(f"{prefix}-drain/e2e.json"),
         "half": load(f"{prefix}-half/result.json"),
         "sustained": num(r"sustained (\d+)", load(f"{prefix}-sustained.txt")),
         "rate_goal": rate_goal, "drain_goal": drain_goal}
    if p["run"] or p["sustained"] is not None or p["drain"]:
        PEERS.append(p)
mixed = load("mix/result.json")
memory_run = load("memory/result.json")
memory_ceiling_run = load("memory-ceiling/result.json")  # the bare relay under the same load
steps_max = max((int(s) for s in os.environ.get("STEPS", "0").split() if s.isdigit()), default=None)

rows = []  # (goal, measured, ceiling or peer, ratio, target, verdict)


def verdict(value, target, higher_is_better):
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "meets" if ok else "falls short"


# 1. ack p99 at RATE vs bare route p99 + raw produce p99
if sms and bare and produce:
    ceiling = bare["p99_ms"] + produce["p99_ms"]
    r = ratio(sms["ack"]["p99_ms"], ceiling)
    rows.append((f"webhook ack p99 at {sms['ack']['target_rate']:.0f}/s",
                 f"{sms['ack']['p99_ms']:.2f} ms",
                 f"bare route p99 {bare['p99_ms']:.2f} + raw produce p99 {produce['p99_ms']:.2f} = {ceiling:.2f} ms",
                 fmt(r, "x"), "<= 2x", verdict(r, 2.0, False)))
# 2. sustainable ack rate vs min(bare route max, Kafka producer max)
if sms_sustained is not None and bare_max and kafka_max:
    ceiling = min(bare_max, kafka_max)
    r = ratio(sms_sustained, ceiling)
    capped = " (the highest step tried)" if steps_max and sms_sustained >= steps_max else ""
    rows.append(("sustainable ack rate (open loop steps: all answered 2xx, on schedule, p99 <= 500 ms)",
                 f"{sms_sustained:.0f}/s{capped}",
                 f"min(bare route max {bare_max:.0f}/s (wrk), Kafka ProducerPerformance max {kafka_max:.0f}/s)",
                 fmt(r, "x"), ">= 0.40x", verdict(r, 0.40, True)))
# 3. end-to-end p99 at half the sustainable rate
if half and half.get("end_to_end"):
    e = half["end_to_end"]
    ceiling = (echo or {}).get("p99_ms")
    rows.append((f"end-to-end p99 (send -> visible) at {half['ack']['target_rate']:.0f}/s",
                 f"{e['total']['p99_ms']:.1f} ms ({e['projected']}/{e['expected']} projected)",
                 f"raw rdkafka echo p99 {fmt(ceiling, ' ms')}; Kafka EndToEndLatency p99 {fmt(kafka_e2e_p99, ' ms', 0)}",
                 fmt(ratio(e['total']['p99_ms'], ceiling), "x of echo"), "<= 150 ms",
                 verdict(e["total"]["p99_ms"], 150.0, False)))
# 4. sustained pipeline rate with flat backlog
if sustained_run and sustained_run.get("end_to_end"):
    e, a = sustained_run["end_to_end"], sustained_run["ack"]
    b = [x["messages"] for x in sustained_run.get("backlog", [])]
    n = len(a["timeline"])
    first, last = (max(b[: max(1, n // 10)]) if b else None), (max(b[n - max(1, n // 10): n]) if b and n else None)
    flat = e["missing"] == 0 and a["achieved_rate"] >= 1000 and first is not None and last <= max(2 * first, a["target_rate"])
    rows.append((f"{a['target_rate']:.0f} text messages/s for {n} s, backlog flat",
                 f"acked {a['achieved_rate']:.0f}/s, projected {e['projected']}/{e['expected']}, backlog max {max(b) if b else 'n/a'} "
                 f"(first tenth {first}, last tenth {last}), e2e p99 {e['total']['p99_ms']:.1f} ms",
                 "-", "-", ">= 1000/s, flat", "meets" if flat else "falls short"))
else:
    rows.append(("1,000 text messages/s for 10 minutes, backlog flat", "not run (SUSTAIN=0)", "-", "-",
                 ">= 1000/s, flat", "not measured"))
# 5. projector write rate vs the raw driver
if drain and cql:
    r = ratio(drain["projection_rate"], cql["rate"])
    rows.append(("projector write rate (draining a backlog)",
                 f"{drain['projection_rate']:.0f} messages/s ({drain['projected']}/{drain['expected']})",
                 f"raw driver INSERT x{cql['concurrency']}: {cql['rate']:.0f} writes/s",
                 fmt(r, "x"), ">= 0.70x", verdict(r, 0.70, True)))
# 5b. the drain against the projector's own statements through the raw driver (no Kafka): what
# Cassandra charges for the projection's SELECT and UPDATE, which the INSERT ceiling leaves out.
if drain and cql and cql_projection:
    stmts = cql_projection["statements_rate"] / cql_projection["rate"]
    r = ratio(drain["projection_rate"] * stmts, cql["rate"])
    rows.append(("projector statements/s while draining, against the raw driver's INSERT",
                 f"{drain['projection_rate'] * stmts:.0f} statements/s ({drain['projection_rate']:.0f} msg/s x {stmts:.0f})",
                 f"raw driver INSERT x{cql['concurrency']}: {cql['rate']:.0f} statements/s",
                 fmt(r, "x"), ">= 0.70x", verdict(r, 0.70, True)))
    r = ratio(drain["projection_rate"], cql_projection["rate"])
    rows.append(("projection drain against its own statements through the raw driver (no Kafka)",
                 f"{drain['projection_rate']:.0f} msg/s",
                 f"MessagesProjection::apply x{cql_projection['concurrency']}: {cql_projection['rate']:.0f} msg/s "
                 f"({cql_projection['statements_rate']:.0f} statements/s, {fmt(ratio(cql_projection['statements_rate'], cql['rate']), 'x')} the INSERT's)",
                 fmt(r, "x"), "(ceiling)", "-"))
# 6. against the Benthos peers: each figure as a ratio to both peers, measured in this run.
steps_min = min((int(s) for s in os.environ.get("STEPS", "0").split() if s.isdigit()), default=None)


def sustained_text(v):
    # 0 means not even the lowest step was sustained: no ratio can be taken.
    return f"below the lowest step ({steps_min}/s)" if v == 0 else f"{v:.0f}/s"


for p in PEERS:
    if p["sustained"] is not None and sms_sustained is not None:
        r = ratio(sms_sustained, p["sustained"]) if sms_sustained and p["sustained"] else None
        rows.append((f"sustainable ack rate vs {p['name']}", sustained_text(sms_sustained), sustained_text(p["sustained"]),
                     fmt(r, "x"), f">= {p['rate_goal']:.1f}x", verdict(r, p["rate_goal"], True)))
for p in PEERS:
    if p["drain"] and drain:
        r = ratio(drain["projection_rate"], p["drain"]["projection_rate"])
        goal = p["drain_goal"]
        rows.append((f"projection drain vs {p['name']}", f"{drain['projection_rate']:.0f} msg/s",
                     f"{p['drain']['projection_rate']:.0f} msg/s ({p['drain']['projected']}/{p['drain']['expected']})",
                     fmt(r, "x"), f">= {goal:.1f}x" if goal else "(no goal)", verdict(r, goal, True) if goal else "-"))
for p in PEERS:
    if p["run"] and sms:
        r = ratio(sms["ack"]["p99_ms"], p["run"]["ack"]["p99_ms"])
        rows.append((f"ack p99 at {sms['ack']['target_rate']:.0f}/s vs {p['name']} (lower is better)", f"{sms['ack']['p99_ms']:.2f} ms",
                     f"{p['run']['ack']['p99_ms']:.2f} ms (success {p['run']['ack']['success_rate']:.4f})",
                     fmt(r, "x"), "(no goal)", "-"))
for p in PEERS:
    if p["half"] and p["half"].get("end_to_end") and half and half.get("end_to_end"):
        a, b = half["end_to_end"]["total"]["p99_ms"], p["half"]["end_to_end"]["total"]["p99_ms"]
        rows.append((f"end-to-end p99 at {half['ack']['target_rate']:.0f}/s vs {p['name']}", f"{a:.1f} ms",
                     f"{b:.1f} ms ({p['half']['end_to_end']['projected']}/{p['half']['end_to_end']['expected']} projected)",
                     fmt(ratio(a, b), "x"), "(no goal)", "-"))
# 6b. wire format: ack latency in confluent mode against single_object (PARTS=wire)
wire = {f: [load(n) for n in sorted(os.listdir(out)) if n.startswith(f"wire-{f}-") and n.endswith(".json")]
        for f in ("single_object", "confluent")} if os.path.isdir(out) else {}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return None if not xs else (xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2)


def wire_cpu(fmt_name, rnd):
    # ingress CPU per webhook of one round's run (its --out result.json, --watch ingress)
    res = load(f"wire-{fmt_name}-{rnd}/result.json") or {}
    return next((c["cpu_ms_per_message"] for c in res.get("cost") or [] if c["name"] == "ingress"), None)


if wire.get("single_object") and wire.get("confluent"):
    so, cf = wire["single_object"], wire["confluent"]
    for q in ("p50_ms", "p99_ms"):
        a, b = median(r[q] for r in cf), median(r[q] for r in so)
        # Each round measures both formats back to back (in ABBA order), so the ratio within a
        # round cancels the stack's drift between rounds; the figure is the median of those.
        r = median(ratio(c[q], s[q]) for c, s in zip(cf, so))
        rows.append((f"ack {q[:-3]} in confluent wire format at {so[0]['target_rate']:.0f}/s (median of {len(cf)} paired rounds, ABBA order)",
                     f"{a:.2f} ms", f"single_object {b:.2f} ms (same run)", fmt(r, "x"), "<= 1.05x",
                     verdict(r, 1.05, False)))

    rounds = [r["label"].rsplit("-", 1)[-1] for r in cf]
    cpu = [(wire_cpu("confluent", n), wire_cpu("single_object", n)) for n in rounds]
    cpu = [(c, s) for c, s in cpu if c is not None and s is not None]
    if cpu:
        # CPU per webhook is what the format changes; latency on a shared box mostly measures
        # the neighbours.
        r = median(ratio(c, s) for c, s in cpu)
        rows.append((f"ingress CPU per webhook in confluent wire format (median of {len(cpu)} paired rounds)",
                     f"{median(c for c, _ in cpu):.3f} ms", f"single_object {median(s for _, s in cpu):.3f} ms (same run)",
                     fmt(r, "x"), "(no goal)", "-"))
# 7. memory (PARTS=memory: requests held in flight at ingress by a long producer linger)
mem_use = next((u for u in ((memory_run or {}).get("memory") or {}).get("per_process", []) if u["name"] == "ingress"), None)
if mem_use:
    per_10k = mem_use["extra_mib_per_10k"]
    rows.append(("<= 64 MiB extra RSS per 10k in-flight messages",
                 f"ingress: {per_10k:.1f} MiB per 10k (RSS {mem_use['baseline_mib']:.0f} -> peak {mem_use['peak_mib']:.0f} MiB "
                 f"with up to {mem_use['peak_in_flight']} webhooks in flight; slope {mem_use['slope_mib_per_10k']:.1f} MiB per 10k)",
                 "-", "-", "<= 64 MiB / 10k", verdict(per_10k, 64.0, False)))
    relay_use = next((u for u in ((memory_ceiling_run or {}).get("memory") or {}).get("per_process", []) if u["name"] == "relay"), None)
    if relay_use:
        r = ratio(per_10k, relay_use["extra_mib_per_10k"])
        rows.append(("extra RSS per 10k in flight, against a bare relay (smsflow's HTTP server + append) under the same load",
                     f"ingress: {per_10k:.1f} MiB per 10k",
                     f"relay: {relay_use['extra_mib_per_10k']:.1f} MiB per 10k (RSS {relay_use['baseline_mib']:.0f} -> peak "
                     f"{relay_use['peak_mib']:.0f} MiB, up to {relay_use['peak_in_flight']} in flight)",
                     fmt(r, "x"), "(ceiling)", "-"))
elif sms:
    mem = ", ".join(f"{c['name']} peak {c['peak_rss_mib']:.0f} MiB (RSS {c['rss_before_mib']:.0f} -> {c['rss_after_mib']:.0f})"
                    for c in sms["cost"] if c["name"] in ("ingress", "projector"))
    rows.append(("<= 64 MiB extra RSS per 10k in-flight messages", mem or "n/a",
                 "in flight was bounded by the generator (--max-in-flight) and projector.max_in_flight; run PARTS=memory", "-",
                 "<= 64 MiB / 10k", "not measured at 10k in flight"))

print(f"# make bench summary ({out})\n")
print("Goals are benchmark targets, not test assertions. Every ceiling was measured in this run, on the same shared 2-core machine (noisy).\n")
stack = load("stack-before.json")
if stack:
    # Old runs' partitions slow the brokers down for every figure below (each is 3 replicas).
    print(f"The stack held {stack['topics']} topics ({stack['partitions']} partitions) and {stack['keyspaces']} keyspaces "
          "of other runs when this one started.\n")
print("| goal | smsflow | ceiling / peer (same run) | ratio | target | verdict |")
print("|---|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")

print("\n## Ceilings measured\n")
print(f"- bare route at the main rate: {fmt(bare and bare['p99_ms'], ' ms')} p99; maximum (wrk): {fmt(bare_max, '/s', 0)}")
print(f"- Kafka ProducerPerformance unthrottled: {(perf_max_txt or 'n/a').strip()}")
print(f"- Kafka ProducerPerformance at the main rate: {(perf_rate_txt or 'n/a').strip()}")
print(f"- Kafka EndToEndLatency: {' '.join((kafka_e2e_txt or 'n/a').split())}")
for name, r in (("raw rdkafka produce", produce), ("raw rdkafka echo", echo)):
    if r:
        print(f"- {name} at {r['target_rate']:.0f}/s: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, p99.9 {r['p999_ms']:.3f} ms, max {r['max_ms']:.2f} ms, {r['ok']} ok, {r['failed']} failed")
if cql_projection:
    c = cql_projection
    print(f"- raw driver MessagesProjection::apply x{c['concurrency']}: {c['rate']:.0f} msg/s, {c['statements_rate']:.0f} statements/s, p50 {c['latency']['p50_ms']:.2f} ms, p99 {c['latency']['p99_ms']:.2f} ms")
if cql:
    print(f"- raw driver INSERT messages_by_user x{cql['concurrency']}: {cql['rate']:.0f} writes/s, p50 {cql['latency']['p50_ms']:.2f} ms, p99 {cql['latency']['p99_ms']:.2f} ms")

peer_sections = []
for p in PEERS:
    peer_sections += [(p["name"], p["run"]), (f"{p['name']} at half smsflow's sustainable rate", p["half"])]
for title, run in [("smsflow", sms), ("smsflow at half the sustainable rate", half)] + peer_sections + [("smsflow sustained", sustained_run)]:
    if not run:
        continue
    a = run["ack"]
    print(f"\n## {title}: {a['target_rate']:.0f}/s\n")
    print(f"ack: achieved {a['achieved_rate']:.0f}/s, success {a['success_rate']:.4f}, p50 {a['p50_ms']:.2f}, p90 {a['p90_ms']:.2f}, p99 {a['p99_ms']:.2f}, p99.9 {a['p999_ms']:.2f}, max {a['max_ms']:.2f} ms")
    e = run.get("end_to_end")
    if e:
        print(f"\nend to end: {e['projected']}/{e['expected']} projected, missing {e['missing']}\n")
        print("| stage | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|")
        for k, label in (("send_to_received", "send -> received"), ("received_to_appended", "received -> appended"),
                         ("appended_to_projected", "appended -> projected"), ("total", "send -> projected")):
            p = e[k]
            if p["count"]:
                print(f"| {label} | {p['p50_ms']:.1f} | {p['p90_ms']:.1f} | {p['p99_ms']:.1f} | {p['p999_ms']:.1f} | {p['max_ms']:.1f} |")
    if run.get("cost"):
        print("\n| process | CPU ms/message | cores | peak RSS MiB |\n|---|---|---|---|")
        for c in run["cost"]:
            print(f"| {c['name']} | {c['cpu_ms_per_message']:.3f} | {c['cores']:.2f} | {c['peak_rss_mib']:.0f} |")
if mixed and mixed.get("end_to_end"):
    a, e, m = mixed["ack"], mixed["end_to_end"], mixed.get("media") or {}
    print(f"\n## mixed traffic ({mixed.get('mix')}): {a['target_rate']:.0f}/s, whole pipeline\n")
    print(f"ack: {a['ok']} ok, {a['failed']} failed, p50 {a['p50_ms']:.2f}, p99 {a['p99_ms']:.2f} ms; "
          f"done {e.get('done', 0)}/{e['expected']}; media host served {m.get('fetches', 0)} fetches for {m.get('expected', 0)} attachments")
    print("\n| kind | sent | projected | done | projected p50 ms | projected p99 ms | done p50 ms | done p99 ms | done max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in e.get("by_kind", []):
        p, d = k["to_projected"], k["to_done"]
        print(f"| {k['kind']} | {k['expected']} | {k['projected']} | {k['done']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {d['p50_ms']:.1f} | {d['p99_ms']:.1f} | {d['max_ms']:.1f} |")
if memory_run and memory_run.get("memory"):
    print("\n## memory against webhooks in flight (PARTS=memory)\n")
    print("| process | baseline MiB | peak MiB | peak in flight | in flight at peak RSS | extra MiB per 10k | slope MiB per 10k |")
    print("|---|---|---|---|---|---|---|")
    for u in memory_run["memory"]["per_process"] + ((memory_ceiling_run or {}).get("memory") or {}).get("per_process", []):
        print(f"| {u['name']} | {u['baseline_mib']:.1f} | {u['peak_mib']:.1f} | {u['peak_in_flight']} | {u['in_flight_at_peak_mib']} | {u['extra_mib_per_10k']:.1f} | {u['slope_mib_per_10k']:.1f} |")
if wire.get("single_object") and wire.get("confluent"):
    print("\n## ack latency by wire format (PARTS=wire)\n")
    print("| round | format | achieved/s | success | p50 ms | p90 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|")
    for so, cf in zip(wire["single_object"], wire["confluent"]):
        for fmt_name, r in (("single_object", so), ("confluent", cf)):
            print(f"| {r['label'].rsplit('-', 1)[-1]} | {fmt_name} | {r['achieved_rate']:.0f} | {r['success_rate']:.4f} | "
                  f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} |")
# Each watched step of the sustainable-rate search (PARTS=rate): CPU per message of every process
# at every step, so the step that no longer keeps up shows where the box's two cores went.
step_runs = []
for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
    m = re.fullmatch(r"(.+)-step-(\d+)", name)
    res = load(f"{name}/result.json") if m else None
    if res and res.get("cost"):
        step_runs.append((m.group(1), int(m.group(2)), res))
if step_runs:
    print("\n## CPU at each sustainable-rate step (PARTS=rate)\n")
    print("ms of CPU per message sent, from /proc, over each step's window; `total` is the sum, and "
          "`cores` what that sum used of the box's two.\n")
    names = []
    for _, _, res in step_runs:
        names += [c["name"] for c in res["cost"] if c["name"] not in names]
    print("| pipeline | step/s | achieved/s | p99 ms | " + " | ".join(names) + " | total | cores |")
    print("|---|---|---|---|" + "---|" * (len(names) + 2))
    for pipeline, rate, res in sorted(step_runs, key=lambda x: (x[0], x[1])):
        a, cost = res["ack"], {c["name"]: c for c in res["cost"]}
        total = sum(c["cpu_ms_per_message"] for c in res["cost"])
        cores = sum(c["cores"] for c in res["cost"])
        cells = [fmt(cost[n]["cpu_ms_per_message"], digits=3) if n in cost else "-" for n in names]
        print(f"| {pipeline} | {rate} | {a['achieved_rate']:.0f} | {a['p99_ms']:.1f} | " + " | ".join(cells)
              + f" | {total:.3f} | {cores:.2f} |")
for p in PEERS:
    if p["sustained"] is not None or p["drain"]:
        d = p["drain"]
        print(f"\n{p['name']}: sustained {fmt(p['sustained'], '/s', 0)}; projection drain "
              f"{fmt(d and d['projection_rate'], ' msg/s', 0)}" + (f" ({d['projected']}/{d['expected']} projected)" if d else ""))
check = load("peer-equal-check.txt")
if check:
    print(f"\nequal-work peer check (loadtest/peers/check-equal-work.sh): {check.strip().splitlines()[-1]}")
for name in ("peer-missing.txt", "peer-equal-missing.txt"):
    t = load(name)
    if t:
        print(f"\n{t.strip()}")

summary = {"rows": [dict(zip(("goal", "smsflow", "ceiling", "ratio", "target", "verdict"), r)) for r in rows]}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
