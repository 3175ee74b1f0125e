#!/usr/bin/env python3
"""The whole box's CPU during a sustained run, and in the seconds its backlog spiked.

Usage: vmstat_spikes.py RESULT_JSON VMSTAT_TXT [SPIKE]

RESULT_JSON is the run's `--out` result.json (its `backlog` timeline and `ack.start_unix_us`);
VMSTAT_TXT is `vmstat -t -w 1` recorded over the run (bench.sh records it for PARTS=sustain).
Prints the mean run queue, user, system, idle, iowait and steal over every second of the run,
then over the seconds whose backlog exceeded SPIKE (default 400) and the 3 s before each, then
each such second. A spike with iowait or steal above the run's mean points at the disk or the
host; one at the run's own saturation points at the CPU.
"""
import datetime
import json
import statistics
import sys

FIELDS = ['r', 'b', 'us', 'sy', 'id', 'wa', 'st', 'bo']


def rows_by_second(path):
    rows = {}
    for line in open(path):
        f = line.split()
        # procs(2) memory(4) swap(2) io(2) system(2) cpu(us sy id wa st [gu]) date time
        if len(f) < 18 or not f[0].isdigit():
            continue
        rows[f[-2] + ' ' + f[-1]] = dict(r=int(f[0]), b=int(f[1]), bo=int(f[9]), us=int(f[12]),
                                         sy=int(f[13]), id=int(f[14]), wa=int(f[15]), st=int(f[16]))
    return rows


def mean_line(label, rows):
    if not rows:
        return f'{label}: no vmstat rows'
    means = ' '.join(f'{k}={statistics.mean(r[k] for r in rows):.1f}' for k in FIELDS)
    return f'{label}: {len(rows)} s, {means}'


def main():
    result, vmstat = sys.argv[1], sys.argv[2]
    spike = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    run = json.load(open(result))
    start = run['ack']['start_unix_us'] / 1e6
    rows = rows_by_second(vmstat)

    def at(t):
        stamp = datetime.datetime.fromtimestamp(start + t, datetime.timezone.utc)
        return rows.get(stamp.strftime('%Y-%m-%d %H:%M:%S'))

    backlog = run['backlog']
    print(mean_line('every second of the run', [r for x in backlog if (r := at(x['t']))]))
    spikes = [x for x in backlog if x['messages'] > spike]
    around = [r for x in spikes for dt in (0, -1, -2, -3) if (r := at(x['t'] + dt))]
    print(mean_line(f'seconds with a backlog over {spike} and the 3 s before', around))
    for x in spikes:
        stamp = datetime.datetime.fromtimestamp(start + x['t'], datetime.timezone.utc)
        r = at(x['t']) or {}
        print(f"t={x['t']} {stamp:%H:%M:%S} backlog {x['messages']}: "
              + ' '.join(f'{k}={r.get(k, "-")}' for k in FIELDS))


if __name__ == '__main__':
    main()
