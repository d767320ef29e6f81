#!/usr/bin/env python3
"""Parsers and the report for ci/bench. Raw results are TSV lines: proxy, metric, run, value.

  bench_report.py parse-wrk FILE PROXY METRIC RUN CPU_TICKS CLK_TCK [BACKEND_TICKS WRK_CPU_SECONDS]
  bench_report.py parse-iperf FILE PROXY METRIC RUN CPU_TICKS CLK_TCK
  bench_report.py parse-syscalls perf|strace FILE WRK_FILE PROXY METRIC
  bench_report.py parse-callgrind DUMP_N DUMP_2N N PROXY
  bench_report.py report RAW_TSV OUT_DIR MACHINE COMMAND SYSTOOL
"""
import json, re, statistics, subprocess, sys
from collections import defaultdict


def emit(proxy, metric, run, value):
    print(f"{proxy}\t{metric}\t{run}\t{value}")


def to_us(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def parse_wrk(path, proxy, metric, run, ticks, clk, backend_ticks="", wrk_seconds=""):
    text = open(path).read()
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        emit(proxy, metric + "_failed", run, 1)
        return
    reqs = int(m.group(1))
    secs = float(m.group(2)) * {"ms": 1e-3, "s": 1, "m": 60}[m.group(3)]
    emit(proxy, metric + "_requests", run, reqs)
    emit(proxy, metric + "_rps", run, f"{reqs / secs:.1f}")
    for pct in ("50", "99"):
        mm = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if mm and to_us(mm.group(1)) is not None:
            emit(proxy, f"{metric}_p{pct}_us", run, f"{to_us(mm.group(1)):.1f}")
    errs = 0
    mm = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if mm:
        errs += sum(int(x) for x in mm.groups())
    mm = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if mm:
        errs += int(mm.group(1))
    emit(proxy, metric + "_errors", run, errs)
    if ticks and reqs:
        emit(proxy, metric + "_cpu_us", run, f"{int(ticks) / int(clk) * 1e6 / reqs:.3f}")
    if backend_ticks and reqs:
        emit(proxy, metric + "_backend_cpu_us", run, f"{int(backend_ticks) / int(clk) * 1e6 / reqs:.3f}")
    if wrk_seconds and reqs:
        emit(proxy, metric + "_wrk_cpu_us", run, f"{float(wrk_seconds) * 1e6 / reqs:.3f}")


def parse_iperf(path, proxy, metric, run, ticks, clk):
    try:
        j = json.load(open(path))
        s = j["end"]["sum_received"]
    except Exception:
        emit(proxy, metric + "_failed", run, 1)
        return
    emit(proxy, metric + "_gbps", run, f"{s['bits_per_second'] / 1e9:.3f}")
    emit(proxy, metric + "_bytes", run, s["bytes"])
    if s["bytes"]:
        emit(proxy, metric + "_cpu_s_per_gb", run, f"{int(ticks) / int(clk) / (s['bytes'] / 1e9):.4f}")


def parse_syscalls(tool, path, wrk_path, proxy, metric):
    m = re.search(r"(\d+) requests in", open(wrk_path).read())
    if not m:
        emit(proxy, metric + "_failed", 1, 1)
        return
    reqs = int(m.group(1))
    counts, total = {}, None
    for line in open(path):
        if tool == "perf":
            f = line.strip().split(",")
            if len(f) > 2 and f[0].isdigit() and f[2] == "raw_syscalls:sys_enter":
                total = int(f[0])
            elif len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
                if int(f[0]):
                    counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
        else:  # strace -c: % time, seconds, usecs/call, calls, [errors], syscall
            f = line.split()
            if len(f) >= 5 and re.match(r"[\d.]+$", f[0]) and f[-1] != "total":
                counts[f[-1]] = int(f[3])
    named = sum(counts.values())
    if total is None:
        total = named
    elif total > named:
        counts["(other)"] = total - named
    emit(proxy, metric + "_requests", 1, reqs)
    emit(proxy, metric + "_total", 1, f"{total / reqs:.3f}")
    for name, c in counts.items():
        emit(proxy, f"{metric}:{name}", 1, f"{c / reqs:.4f}")


def callgrind_total(path):
    for line in open(path):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def parse_callgrind(p1, p2, n, proxy):
    a, b, n = callgrind_total(p1), callgrind_total(p2), int(n)
    emit(proxy, "instr_ka_n", 1, a)
    emit(proxy, "instr_ka_2n", 1, b)
    emit(proxy, "instr_per_ka_request", 1, f"{(b - a) / n:.1f}")


def top_functions(path, count=15):
    """Self cost per function from callgrind_annotate output, inlined pieces merged, Swift demangled."""
    try:
        text = open(path).read()
    except OSError:
        return []
    total = None
    m = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
    if m:
        total = int(m.group(1).replace(",", ""))
    agg, objs = defaultdict(int), {}
    # Only the first table (self cost per file:function); the per-file sections below repeat costs.
    lines, started = [], False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        if started and line.startswith("-----") and lines:
            break
        if started and not line.strip() and lines:
            break
        if started:
            lines.append(line)
    for line in lines:
        mm = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*?)(?: \[(.*)\])?$", line)
        if not mm or "PROGRAM TOTALS" in line:
            continue
        cost, pct, where, obj = int(mm.group(1).replace(",", "")), float(mm.group(2)), mm.group(3), mm.group(4) or ""
        if pct >= 99.0:  # frames still on the stack at the dump (thread entry): not self cost
            continue
        fn = where.rsplit(":", 1)[-1]
        agg[fn] += cost  # one function's inlined pieces are listed per source file: merge them
        if obj:
            objs.setdefault(fn, obj.rsplit("/", 1)[-1])
    items = [((fn, objs.get(fn, "")), c) for fn, c in sorted(agg.items(), key=lambda kv: -kv[1])[:count]]
    names = [fn for (fn, _), _ in items]
    try:
        dem = subprocess.run(["swift-demangle", "--simplified"], input="\n".join(names), capture_output=True,
                             text=True, timeout=30).stdout.splitlines()
        if len(dem) != len(names):
            dem = names
    except Exception:
        dem = names
    return [{"function": d, "object": obj, "ir": c, "share": (c / total if total else None)}
            for d, ((_, obj), c) in zip(dem, items)]


# ---------------------------------------------------------------------------------------------------
def report(raw_path, out_dir, machine, command, systool):
    runs = defaultdict(list)
    for line in open(raw_path):
        f = line.rstrip("\n").split("\t")
        if len(f) == 4:
            try:
                runs[(f[0], f[1])].append(float(f[3]))
            except ValueError:
                pass

    def med(p, m):
        v = runs.get((p, m))
        return statistics.median(v) if v else None

    P = ["lb", "haproxy", "haproxy-splice"]
    # (label, metric, format, target kind, target value, against)
    # target kinds: ge/le = ratio to `against`, abs_le = absolute bound on lb
    rows = [
        ("keep-alive requests/s", "ka_rps", "{:.0f}", "ge", 1.05, "haproxy"),
        ("keep-alive p50 µs", "ka_p50_us", "{:.0f}", None, None, None),
        ("keep-alive p99 µs", "ka_p99_us", "{:.0f}", None, None, None),
        ("keep-alive CPU µs/request", "ka_cpu_us", "{:.2f}", "le", 0.9, "haproxy"),
        ("new conn: connections/s", "close_rps", "{:.0f}", "ge", 1.05, "haproxy"),
        ("new conn p99 µs", "close_p99_us", "{:.0f}", None, None, None),
        ("new conn CPU µs/connection", "close_cpu_us", "{:.2f}", "le", 0.9, "haproxy"),
        ("1 conn p50 µs", "c1_p50_us", "{:.1f}", None, None, None),
        ("1 conn p99 µs", "c1_p99_us", "{:.1f}", None, None, None),
        ("1 conn p50 added over direct µs", "c1_add_p50", "{:.1f}", None, None, None),
        ("1 conn p99 added over direct µs", "c1_add_p99", "{:.1f}", None, None, None),
        ("bulk client→server Gbit/s", "bulk_up_gbps", "{:.2f}", "ge", 1.1, "haproxy-splice"),
        ("bulk server→client (-R) Gbit/s", "bulk_down_gbps", "{:.2f}", "ge", 1.1, "haproxy-splice"),
        ("bulk client→server CPU s/GB", "bulk_up_cpu_s_per_gb", "{:.3f}", "le", 0.9, "haproxy-splice"),
        ("bulk server→client CPU s/GB", "bulk_down_cpu_s_per_gb", "{:.3f}", "le", 0.9, "haproxy-splice"),
        ("syscalls/keep-alive request", "sys_ka_total", "{:.2f}", "abs_le", 4.4, None),
        ("syscalls/new connection", "sys_close_total", "{:.2f}", "abs_le", 16, None),
        ("  of which epoll waits, keep-alive", "sys_ka_waits", "{:.2f}", None, None, None),
        ("  of which epoll waits, new connection", "sys_close_waits", "{:.2f}", None, None, None),
        ("user instr/keep-alive request", "instr_per_ka_request", "{:.0f}", "abs_le", 500, None),
        ("RSS KiB/idle connection", "rss_per_idle_conn_kib", "{:.2f}", "le", 0.5, "haproxy"),
        ("RSS KiB before (idle, warmed)", "rss_before_kib", "{:.0f}", None, None, None),
    ]
    # Epoll waits count how often the loop ran dry, which follows the load: shown apart from the rest.
    for p in P:
        for metric in ("sys_ka", "sys_close"):
            waits = [med(p, f"{metric}:{n}") for n in ("epoll_wait", "epoll_pwait", "epoll_pwait2")]
            if any(w is not None for w in waits):
                runs[(p, metric + "_waits")] = [sum(w or 0.0 for w in waits)]
    d50, d99 = med("direct", "c1_p50_us"), med("direct", "c1_p99_us")
    for p in P:
        if med(p, "c1_p50_us") is not None and d50 is not None:
            runs[(p, "c1_add_p50")] = [med(p, "c1_p50_us") - d50]
        if med(p, "c1_p99_us") is not None and d99 is not None:
            runs[(p, "c1_add_p99")] = [med(p, "c1_p99_us") - d99]

    def fmt(fmtstr, v):
        return "–" if v is None else fmtstr.format(v)

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

    table = []
    results = {"machine": machine, "command": command, "syscall_tool": systool, "metrics": {}, "targets": []}
    hdr = "| metric | lb | haproxy | haproxy splice-auto | lb/haproxy | lb/splice | target | met |"
    table += [hdr, "|---|---:|---:|---:|---:|---:|---|---|"]
    for label, m, f, kind, tv, against in rows:
        vals = {p: med(p, m) for p in P}
        r1, r2 = ratio(vals["lb"], vals["haproxy"]), ratio(vals["lb"], vals["haproxy-splice"])
        target, met, margin = "", "", None
        if kind in ("ge", "le"):
            r = r1 if against == "haproxy" else r2
            target = f"{'≥' if kind == 'ge' else '≤'} {tv}× {'haproxy' if against == 'haproxy' else 'splice'}"
            if r is not None:
                ok = r >= tv if kind == "ge" else r <= tv
                met = "yes" if ok else "no"
                margin = r / tv
        elif kind == "abs_le":
            target = f"≤ {tv}"
            if vals["lb"] is not None:
                met = "yes" if vals["lb"] <= tv else "no"
                margin = vals["lb"] / tv
        table.append(f"| {label} | {fmt(f, vals['lb'])} | {fmt(f, vals['haproxy'])} | {fmt(f, vals['haproxy-splice'])} "
                     f"| {fmt('{:.2f}', r1)} | {fmt('{:.2f}', r2)} | {target} | {met} |")
        results["metrics"][m] = {"label": label, **{p: vals[p] for p in P},
                                 "runs": {p: runs.get((p, m), []) for p in P},
                                 "lb/haproxy": r1, "lb/haproxy-splice": r2}
        if kind:
            results["targets"].append({"metric": m, "label": label, "target": target, "met": met == "yes",
                                       "value_over_bound": margin})
    # workers
    w1c, w2c = med("lb-w1", "ka_cpu_us"), med("lb-w2", "ka_cpu_us")
    w1r, w2r = med("lb-w1", "ka_rps"), med("lb-w2", "ka_rps")
    wtab = ["| lb keep-alive | --workers 1 | --workers 2 | w2/w1 |", "|---|---:|---:|---:|",
            f"| requests/s | {fmt('{:.0f}', w1r)} | {fmt('{:.0f}', w2r)} | {fmt('{:.2f}', ratio(w2r, w1r))} |",
            f"| CPU µs/request | {fmt('{:.2f}', w1c)} | {fmt('{:.2f}', w2c)} | {fmt('{:.2f}', ratio(w2c, w1c))} |"]
    results["workers"] = {"w1_rps": w1r, "w2_rps": w2r, "w1_cpu_us": w1c, "w2_cpu_us": w2c,
                          "cpu_ratio_w2_w1": ratio(w2c, w1c)}
    # The machine's CPU per request: proxy, backends and wrk share the 2 cores, so requests/s can only
    # rise by what the proxy's saving is worth in the whole: that ratio is the ceiling the CPU allows.
    mtab = []
    for metric, title in (("ka", "keep-alive request"), ("close", "request with a new connection")):
        parts = [("proxy", f"{metric}_cpu_us"), ("backends (fakebackends)", f"{metric}_backend_cpu_us"),
                 ("wrk", f"{metric}_wrk_cpu_us")]
        vals = {(p, m): med(p, m) for p in ("lb", "haproxy") for _, m in parts}
        if any(v is None for v in vals.values()):
            continue
        totals = {p: sum(vals[(p, m)] for _, m in parts) for p in ("lb", "haproxy")}
        mtab += [f"\nWhole-machine CPU per {title} (µs; medians):\n",
                 "| part | lb run | haproxy run | lb/haproxy |", "|---|---:|---:|---:|"]
        for label, m in parts:
            mtab.append(f"| {label} | {vals[('lb', m)]:.2f} | {vals[('haproxy', m)]:.2f} | {vals[('lb', m)] / vals[('haproxy', m)]:.2f} |")
        mtab.append(f"| all three | {totals['lb']:.2f} | {totals['haproxy']:.2f} | {totals['lb'] / totals['haproxy']:.2f} |")
        share = vals[("haproxy", f"{metric}_cpu_us")] / totals["haproxy"]
        ceiling = totals["haproxy"] / totals["lb"]
        mtab.append(f"\nThe proxy is {100 * share:.0f}% of the machine's CPU per request in the haproxy run; at equal "
                    f"utilisation the CPU allows lb/haproxy requests/s of {ceiling:.3f}.")
        results[f"{metric}_machine_cpu"] = {"parts": {m: {p: vals[(p, m)] for p in ('lb', 'haproxy')} for _, m in parts},
                                             "totals": totals, "proxy_share_haproxy": share,
                                             "rps_ratio_allowed_by_cpu": ceiling}
    # syscall breakdown
    sysrows = []
    for metric, title in (("sys_close", "per new connection"), ("sys_ka", "per keep-alive request")):
        names = sorted({m.split(":", 1)[1] for (p, m) in runs if m.startswith(metric + ":")})
        vals = {(p, n): med(p, f"{metric}:{n}") or 0.0 for p in P for n in names}
        names.sort(key=lambda n: -max(vals[(p, n)] for p in P))
        sysrows += [f"\nSyscalls {title} ({systool}):\n", "| syscall | lb | haproxy | haproxy splice-auto | lb − haproxy |",
                    "|---|---:|---:|---:|---:|"]
        for n in names:
            sysrows.append(f"| {n} | {vals[('lb', n)]:.2f} | {vals[('haproxy', n)]:.2f} | {vals[('haproxy-splice', n)]:.2f} "
                           f"| {vals[('lb', n)] - vals[('haproxy', n)]:+.2f} |")
        results[metric + "_breakdown"] = {p: {n: vals[(p, n)] for n in names} for p in P}
    # errors / sanity
    notes = []
    for (p, m), v in sorted(runs.items()):
        if (m.endswith("_errors") and sum(v)) or m.endswith("_failed") or (m == "idle_conns_failed" and sum(v)):
            notes.append(f"- {p} {m}: {v}")
    notes.append(f"- direct to one backend, 1 connection: p50 {fmt('{:.1f}', d50)} µs, p99 {fmt('{:.1f}', d99)} µs")
    for p in P:
        ok = med(p, "idle_conns_ok")
        if ok is not None:
            notes.append(f"- {p}: {ok:.0f} idle connections held; RSS {med(p, 'rss_before_kib'):.0f} → {med(p, 'rss_held_kib'):.0f} KiB")
    tops = {}
    for p in ("lb", "haproxy"):
        tops[p] = top_functions(f"{out_dir}/cg-{p}-annotate.txt")
    results["callgrind_top"] = tops
    toptxt = []
    for p in ("lb", "haproxy"):
        if tops[p]:
            n = results["metrics"]["instr_per_ka_request"].get(p)
            toptxt += [f"\nTop user-space functions, {p} (self Ir in the 2N keep-alive request window; {'' if n is None else f'{n:.0f} instr/request'}):\n",
                       "| Ir | share | function | object |", "|---:|---:|---|---|"]
            for t in tops[p]:
                share = "" if t["share"] is None else f"{100 * t['share']:.1f}%"
                fn = t["function"].replace("|", "\\|")
                if len(fn) > 110:
                    fn = fn[:107] + "..."
                toptxt.append(f"| {t['ir']:,} | {share} | `{fn}` | {t['object']} |")
    # BENCH_BASE: the same lb figures for another build, from the same interleaved rounds.
    basetab = []
    if any(p == "lb-base" for p, _ in runs):
        basetab = ["\nlb against lb-base (BENCH_BASE, the same rounds):\n", "| metric | lb | lb-base | lb/lb-base |",
                   "|---|---:|---:|---:|"]
        for label, metric, f, *_ in rows:
            a, b = med("lb", metric), med("lb-base", metric)
            if a is None and b is None:
                continue
            r = ratio(a, b)
            basetab.append(f"| {label} | {fmt(f, a)} | {fmt(f, b)} | {fmt('{:.3f}', r)} |")
            results["metrics"].setdefault(metric, {})["lb/lb-base"] = r
    md = "\n".join([f"Machine: {machine}", "", f"Command: `{command}`", "", *table, *basetab, "", *wtab, *mtab, *sysrows, "",
                    "Notes:", *notes, *toptxt]) + "\n"
    open(f"{out_dir}/bench.md", "w").write(md)
    json.dump(results, open(f"{out_dir}/bench.json", "w"), indent=1, ensure_ascii=False)
    print(md)


if __name__ == "__main__":
    a = sys.argv[1:]
    {"parse-wrk": lambda: parse_wrk(*a[1:]), "parse-iperf": lambda: parse_iperf(*a[1:]),
     "parse-syscalls": lambda: parse_syscalls(*a[1:]), "parse-callgrind": lambda: parse_callgrind(*a[1:]),
     "report": lambda: report(*a[1:])}[a[0]]()
