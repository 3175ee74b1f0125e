#!/usr/bin/env python3
"""Summarise tracing_overhead.sh's rounds (its result lines on stdin) as ratios to tracing off.

Each line: `<mode> rps=<n> p50=<wrk time> p99=<wrk time> non2xx=<n> [cpu_us_per_req=<us>]`,
the modes in rounds (every mode once per round, in the order they ran).
"""
import statistics
import sys


def ms(v: str) -> float:
    """wrk's latency (`850.00us`, `7.35ms`, `1.02s`) in milliseconds."""
    for suffix, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(suffix):
            return float(v[: -len(suffix)]) * scale
    return float(v)


def parse(lines):
    runs = []
    for line in lines:
        parts = line.split()
        if not parts or "=" not in line:
            continue
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        runs.append(
            {
                "mode": parts[0],
                "rps": float(fields["rps"]),
                "p99": ms(fields["p99"]),
                "cpu": float(fields["cpu_us_per_req"]) if "cpu_us_per_req" in fields else None,
            }
        )
    return runs


def rounds(runs):
    """Split into rounds: a round ends when a mode comes again."""
    out, cur = [], {}
    for r in runs:
        if r["mode"] in cur:
            out.append(cur)
            cur = {}
        cur[r["mode"]] = r
    if cur:
        out.append(cur)
    return out


def mean(runs, mode, key):
    vals = [r[key] for r in runs if r["mode"] == mode and r[key] is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def span(vals):
    return f"{min(vals):.3f}-{max(vals):.3f}"


def main():
    runs = parse(sys.stdin)
    n = sum(1 for r in runs if r["mode"] == "off")
    m = lambda mode, key: mean(runs, mode, key)  # noqa: E731
    # The first three lines keep the form earlier results used: ratios of the rounds' means.
    print(
        "tracing at its default sampler/off: throughput ratio %.3f, ack p99 ratio %.3f (goal >= 0.9 and <= 1.15)"
        % (m("default", "rps") / m("off", "rps"), m("default", "p99") / m("off", "p99"))
    )
    ran = {r["mode"] for r in runs}
    if "on" in ran:
        print(
            "tracing on/off: throughput ratio %.3f, ack p99 ratio %.3f (on: %.0f req/s p99 %.2f ms; off: %.0f req/s p99 %.2f ms; %d rounds)"
            % (
                m("on", "rps") / m("off", "rps"),
                m("on", "p99") / m("off", "p99"),
                m("on", "rps"),
                m("on", "p99"),
                m("off", "rps"),
                m("off", "p99"),
                n,
            )
        )
    if "on_noexport" in ran:
        print(
            "spans built but not delivered (no Jaeger ingest on this box): throughput ratio %.3f, ack p99 ratio %.3f"
            % (m("on_noexport", "rps") / m("off", "rps"), m("on_noexport", "p99") / m("off", "p99"))
        )
    # Each round's default against the same round's off: the two ran next to each other.
    paired = [(r["default"], r["off"]) for r in rounds(runs) if "default" in r and "off" in r]
    if paired:
        tp = [d["rps"] / o["rps"] for d, o in paired]
        lat = [d["p99"] / o["p99"] for d, o in paired]
        print(
            "default/off, round by round: throughput median %.3f (%s), ack p99 median %.3f (%s), %d rounds"
            % (statistics.median(tp), span(tp), statistics.median(lat), span(lat), len(paired))
        )
    offs = [r for r in runs if r["mode"] == "off"]
    if len(offs) >= 2:
        rps = [r["rps"] for r in offs]
        p99 = [r["p99"] for r in offs]
        print(
            "tracing off against itself (its worst round over its best): throughput %.3f, ack p99 %.3f"
            % (min(rps) / max(rps), max(p99) / min(p99))
        )
    if all(r["cpu"] is not None for r in runs) and runs:
        off = m("off", "cpu")
        parts = [f"off {off:.1f} us"]
        for mode in [x for x in ("default", "on", "on_noexport") if x in ran]:
            parts.append(f"{mode} {m(mode, 'cpu'):.1f} us ({m(mode, 'cpu') / off:.3f}x)")
        print("ingress CPU per webhook (mean of rounds): " + ", ".join(parts))


if __name__ == "__main__":
    main()
