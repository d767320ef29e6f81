#!/usr/bin/env python3
"""Samples lb processes once a second for ci/soak --report, appending one JSON line per second:
{"t": seconds since start, "lb": {NAME: {"rss_kib", "fds", "active", "accepted", "errors", "bytes",
"dur_buckets": {le: cumulative count}}}}. Counters are totals; the report takes differences.
Errors are lb_bad_gateway_total + lb_connect_failures_total (every cause). Bounded: stops after
SECONDS, or when the stop file exists.
usage: soak_sampler.py OUT.jsonl SECONDS STOPFILE NAME:PID:ADMINPORT..."""
import json, os, re, sys, time, urllib.request

out, seconds, stopfile = sys.argv[1], float(sys.argv[2]), sys.argv[3]
targets = [t.split(":") for t in sys.argv[4:]]
line_re = re.compile(r'^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$')

def proc(pid):
    rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None, None
    return rss, fds

def metrics(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return None
    m = {"active": 0, "accepted": 0, "errors": 0, "bytes": 0, "dur_buckets": {}}
    for line in text.splitlines():
        g = line_re.match(line)
        if not g:
            continue
        name, labels, value = g.group(1), g.group(2) or "", float(g.group(3))
        if name == "lb_active_pairs": m["active"] += value
        elif name == "lb_connections_accepted_total": m["accepted"] += value
        elif name in ("lb_bad_gateway_total", "lb_connect_failures_total"): m["errors"] += value
        elif name == "lb_bytes_total": m["bytes"] += value
        elif name == "lb_pair_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            m["dur_buckets"][le] = m["dur_buckets"].get(le, 0) + value
    return m

start = time.monotonic()
with open(out, "a") as f:
    n = 0
    while time.monotonic() - start < seconds and not os.path.exists(stopfile):
        sample = {"t": round(time.monotonic() - start, 3), "lb": {}}
        for name, pid, port in targets:
            rss, fds = proc(pid)
            sample["lb"][name] = {"rss_kib": rss, "fds": fds, **(metrics(port) or {})}
        f.write(json.dumps(sample) + "\n"); f.flush()
        n += 1
        time.sleep(max(0.0, start + n - time.monotonic()))
