#!/usr/bin/env python3
"""Writes ci/soak's self-contained HTML report (inline SVG charts, no scripts, no external files) from
the sampler's JSON lines and the soak's verdicts, and prints the figures docs/reliability.md quotes.
usage: soak_report.py SAMPLES.jsonl VERDICTS.tsv OUT.html TITLE
VERDICTS.tsv: one "PASS|FAIL<TAB>check<TAB>detail" per line."""
import html, json, math, sys

samples_path, verdicts_path, out_path, title = sys.argv[1:5]
samples = [json.loads(l) for l in open(samples_path) if l.strip()]
verdicts = [l.rstrip("\n").split("\t") for l in open(verdicts_path) if l.strip()]
names = sorted({n for s in samples for n in s["lb"]})

def series(name, key):
    return [(s["t"], s["lb"].get(name, {}).get(key)) for s in samples]

def rate(name, key):
    pts, prev = [], None
    for s in samples:
        v = s["lb"].get(name, {}).get(key)
        if v is not None and prev is not None and s["t"] > prev[0]:
            pts.append((s["t"], max(0.0, (v - prev[1]) / (s["t"] - prev[0]))))
        if v is not None: prev = (s["t"], v)
    return pts

def p99(name):
    """p99 of pairs closed in each second, from the pair-duration histogram's difference (upper bound)."""
    pts, prev = [], None
    for s in samples:
        b = s["lb"].get(name, {}).get("dur_buckets")
        if b and prev:
            les = sorted((float("inf") if k == "+Inf" else float(k), k) for k in b)
            total = b.get("+Inf", 0) - prev.get("+Inf", 0)
            if total > 0:
                for le, k in les:
                    if b[k] - prev.get(k, 0) >= 0.99 * total:
                        pts.append((s["t"], le * 1000 if le != float("inf") else None)); break
        if b: prev = b
    return pts

SVGS = []
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
def chart(title, unit, lines, w=720, h=180):
    pts = [(t, v) for _, p in lines for t, v in p if v is not None]
    if not pts:
        return f"<h3>{html.escape(title)}</h3><p>no samples</p>"
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    vmax = max(v for _, v in pts) or 1
    vmin = 0
    L, R, T, B = 60, 10, 10, 25
    X = lambda t: L + (t - t0) / max(t1 - t0, 1e-9) * (w - L - R)
    Y = lambda v: T + (1 - (v - vmin) / (vmax - vmin)) * (h - T - B)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect x="{L}" y="{T}" width="{w-L-R}" height="{h-T-B}" fill="none" stroke="#ccc"/>']
    for i in range(5):
        v = vmin + (vmax - vmin) * i / 4
        svg.append(f'<line x1="{L}" x2="{w-R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{L-4}" y="{Y(v)+4:.1f}" text-anchor="end">{(f"{v:,.0f}" if vmax >= 100 else f"{v:.3g}")}</text>')
    for i in range(6):
        t = t0 + (t1 - t0) * i / 5
        svg.append(f'<text x="{X(t):.1f}" y="{h-8}" text-anchor="middle">{t:.0f}s</text>')
    for i, (label, p) in enumerate(lines):
        path = " ".join(f"{X(t):.1f},{Y(v):.1f}" for t, v in p if v is not None)
        svg.append(f'<polyline fill="none" stroke="{COLORS[i % 4]}" stroke-width="1.5" points="{path}"/>'
                   f'<text x="{L+8+i*150}" y="{T+14}" fill="{COLORS[i % 4]}">{html.escape(label)}</text>')
    svg.append("</svg>")
    SVGS.append("".join(svg))
    return f"<h3>{html.escape(title)} <small>({html.escape(unit)})</small></h3>" + "".join(svg)

def stats(p):
    v = [x for _, x in p if x is not None]
    return (min(v), max(v), v[0], v[-1]) if v else (0, 0, 0, 0)

charts = [
    chart("RSS", "KiB", [(n, series(n, "rss_kib")) for n in names]),
    chart("Open file descriptors", "count", [(n, series(n, "fds")) for n in names]),
    chart("Active pairs", "count", [(n, series(n, "active")) for n in names]),
    chart("Connections accepted per second (HTTP: one per request)", "1/s", [(n, rate(n, "accepted")) for n in names]),
    chart("Errors per second (502 + failed connects, every cause)", "1/s", [(n, rate(n, "errors")) for n in names]),
    chart("p99 pair duration per second (HTTP: request latency seen by lb; histogram bucket bound)", "ms", [(n, p99(n)) for n in names if n.startswith("http")] or [(n, p99(n)) for n in names]),
]
rows = "".join(f'<tr class="{html.escape(v[0].lower())}"><td>{html.escape(v[0])}</td><td>{html.escape(v[1])}</td><td>{html.escape(v[2] if len(v) > 2 else "")}</td></tr>' for v in verdicts)
figures = []
for n in names:
    r, f = stats(series(n, "rss_kib")), stats(series(n, "fds"))
    # "Flat": compare the second minute with the end, so start-up growth is not counted.
    settled = [v for t, v in series(n, "rss_kib") if v is not None and t >= 60] or [v for _, v in series(n, "rss_kib") if v is not None]
    figures.append(f"{n}: RSS {r[2]}-{r[3]} KiB (min {r[0]}, max {r[1]}; after the first minute {settled[0]} -> {settled[-1]} KiB), "
                   f"fds {f[2]}-{f[3]} (min {f[0]}, max {f[1]}), errors {sum(v for _, v in rate(n, 'errors')):.0f}")
ok = all(v[0] == "PASS" for v in verdicts)
page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}} td{{padding:2px 8px}} .pass td:first-child{{color:#2a2}} .fail td:first-child{{color:#c22;font-weight:bold}}</style></head>
<body><h1>{html.escape(title)}</h1><p><b>{"PASS" if ok else "FAIL"}</b>: {len(samples)} samples, one a second.</p>
<table>{rows}</table><ul>{"".join(f"<li>{html.escape(x)}</li>" for x in figures)}</ul>{"".join(charts)}</body></html>"""
open(out_path, "w").write(page)
for x in figures: print(x)

# Each chart also as a standalone SVG beside the report (docs/reliability.md shows one).
import os
for i, svg in enumerate(SVGS):
    open(os.path.join(os.path.dirname(out_path) or ".", f"chart-{i}.svg"), "w").write(svg)
