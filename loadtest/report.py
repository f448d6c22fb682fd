#!/usr/bin/env python3
"""Turns loadtest/results/<scenario>.json into loadtest/RESULTS.md and SVG
charts in loadtest/charts/ (throughput per server, latency percentiles per
server), one pair per scenario. Called by loadtest/report.sh.

The primitives section (loadtest/micro/compare.sh) is kept as it is, from
results/primitives.md when it exists.
"""
import html
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RESULTS = os.path.join(ROOT, "loadtest", "results")
CHARTS = os.path.join(ROOT, "loadtest", "charts")
ORDER = ["plaintext", "json", "pipelined", "post-echo", "gateway", "connections", "echo", "chat",
         "tls-plaintext", "tls-handshakes", "gateway-tls", "h2c-plaintext", "h2-tls", "gateway-h2c", "two-workers",
         "chaos"]
COLORS = {"coronet": "#2b7bb9", "go": "#7fb800", "nginx": "#e0a100", "floor": "#8c8c8c", "before": "#9ecae1"}
UNITS = {"echo": "messages/s", "chat": "deliveries/s", "tls-handshakes": "handshakes/s"}
NOT_PEERS = ("coronet", "floor", "before")  # "before": coronet as built before a change (--baseline)

# What each issue asked of the numbers: (scenario, case, description, test(results by server) -> (text, met)).
def ratio(a, b):
    return a / b if a and b else None


def targets(doc):
    name = doc["scenario"]
    by = {}
    for r in doc["results"]:
        by.setdefault(r["case"], {})[r["server"]] = r["median"]
    out = []

    def add(what, value, met):
        out.append((what, value, "yes" if met else "**no**" if met is not None else "(reported)"))

    runs = {}
    for r in doc["results"]:
        runs.setdefault(r["case"], {})[r["server"]] = r.get("runs", [])
    if name in ("plaintext", "json"):
        # the floor's targets: CPU per request near the epoll floor and below nginx, twice Go's req/s
        case = "plaintext" if name == "plaintext" else "json"
        c, g, n, f = (by.get(case, {}).get(s) for s in ("coronet", "go", "nginx", "floor"))
        if c and g:
            add("req/s ≥ 2 × Go", f"{c['rps'] / g['rps']:.2f} ×", c["rps"] >= 2 * g["rps"])
        if c and f:
            add("CPU per request ≤ 1.10 × the epoll floor",
                f"{c['cpu_us_per_req']:.2f} vs {f['cpu_us_per_req']:.2f} µs = {c['cpu_us_per_req'] / f['cpu_us_per_req']:.2f} ×",
                c["cpu_us_per_req"] <= 1.10 * f["cpu_us_per_req"])
        if c and n:
            add("CPU per request ≤ 0.9 × nginx's", f"{c['cpu_us_per_req']:.2f} vs {n['cpu_us_per_req']:.2f} µs = "
                f"{c['cpu_us_per_req'] / n['cpu_us_per_req']:.2f} ×", c["cpu_us_per_req"] <= 0.9 * n["cpu_us_per_req"])
    if name == "pipelined":
        c, f = (by.get("pipelined 16", {}).get(s) for s in ("coronet", "floor"))
        if c and f:
            add("pipelined 16 ≥ 0.85 × the floor (median)", f"{c['rps'] / f['rps']:.2f} ×", c["rps"] >= 0.85 * f["rps"])
        cr, fr = (runs.get("pipelined 16", {}).get(s, []) for s in ("coronet", "floor"))
        if cr and fr and len(cr) == len(fr):
            each = [a["rps"] / b["rps"] for a, b in zip(cr, fr)]
            add("pipelined 16 ≥ 0.85 × the floor in every repetition (same repetition)",
                ", ".join(f"{x:.2f}" for x in each), min(each) >= 0.85)
    if name in ("plaintext", "json", "pipelined", "post-echo"):
        # a change's cost: the build before it (--baseline), side by side
        for case, row in by.items():
            c, b = row.get("coronet"), row.get("before")
            if c and b:
                add(f"{case}: CPU per request vs the build before (--baseline)",
                    f"{c['cpu_us_per_req']:.2f} vs {b['cpu_us_per_req']:.2f} µs = "
                    f"{c['cpu_us_per_req'] / b['cpu_us_per_req']:.3f} ×", None)
    if name == "tls-plaintext":
        c, g, n = (by.get("tls plaintext", {}).get(s) for s in ("coronet", "go", "nginx"))
        if c and n:
            add("CPU per request ≤ nginx's", f"{c['cpu_us_per_req']:.2f} vs {n['cpu_us_per_req']:.2f} µs = "
                f"{c['cpu_us_per_req'] / n['cpu_us_per_req']:.2f} ×", c["cpu_us_per_req"] <= n["cpu_us_per_req"])
        if c and g:
            add("throughput ≥ 1.3 × Go's ListenAndServeTLS", f"{c['rps'] / g['rps']:.2f} ×", c["rps"] >= 1.3 * g["rps"])
        if c and n and c.get("idle_tls_bytes_per_connection") and n.get("idle_tls_bytes_per_connection"):
            ci, ni = c["idle_tls_bytes_per_connection"], n["idle_tls_bytes_per_connection"]
            gi = g.get("idle_tls_bytes_per_connection") if g else None
            add(f"idle TLS connection ≤ 2 × nginx's RSS ({c.get('idle_tls_connections', 0):.0f} connections)",
                f"{ci:.0f} vs {ni:.0f} B = {ci / ni:.2f} ×" + (f" (Go {gi:.0f} B)" if gi else ""), ci <= 2 * ni)
    if name == "tls-handshakes":
        for case, row in by.items():
            c, g, n = row.get("coronet"), row.get("go"), row.get("nginx")
            if c and n:
                add(f"{case}: CPU per handshake ≤ nginx's",
                    f"{c['cpu_us_per_req']:.0f} vs {n['cpu_us_per_req']:.0f} µs = "
                    f"{c['cpu_us_per_req'] / n['cpu_us_per_req']:.2f} ×"
                    + (f" (Go {g['cpu_us_per_req']:.0f} µs)" if g else ""),
                    c["cpu_us_per_req"] <= n["cpu_us_per_req"])
    if name == "gateway-tls":
        for case, row in by.items():
            c, g = row.get("coronet"), row.get("go")
            if c and g:
                add(f"{case}: throughput ≥ 2 × the Go gateway over HTTPS",
                    f"{c['rps'] / g['rps']:.2f} × ({c['rps']:,.0f} vs {g['rps']:,.0f} req/s; CPU "
                    f"{c['cpu_us_per_req']:.0f} vs {g['cpu_us_per_req']:.0f} µs/req)", c["rps"] >= 2 * g["rps"])
    if name in ("h2c-plaintext", "h2-tls"):
        for case, row in by.items():
            c, g, n = row.get("coronet"), row.get("go"), row.get("nginx")
            if c and n:
                add("CPU per request ≤ nginx's", f"{c['cpu_us_per_req']:.2f} vs {n['cpu_us_per_req']:.2f} µs = "
                    f"{c['cpu_us_per_req'] / n['cpu_us_per_req']:.2f} ×", c["cpu_us_per_req"] <= n["cpu_us_per_req"])
            if c and g:
                add("throughput ≥ 2 × Go's", f"{c['rps'] / g['rps']:.2f} × ({c['rps']:,.0f} vs {g['rps']:,.0f} req/s)",
                    c["rps"] >= 2 * g["rps"])
            if c and c.get("idle_h2_bytes_per_connection"):
                peers = ", ".join(f"{s} {row[s]['idle_h2_bytes_per_connection']:.0f} B" for s in ("nginx", "go")
                                  if row.get(s, {}).get("idle_h2_bytes_per_connection"))
                add(f"RSS per idle HTTP/2 connection ({c.get('idle_connections', 0):.0f} connections)",
                    f"coronet {c['idle_h2_bytes_per_connection']:.0f} B (its HTTP/1.1: "
                    f"{c.get('idle_http1_bytes_per_connection', 0):.0f} B); {peers}", None)
    if name == "gateway-h2c":
        for case, row in by.items():
            h1, h2 = row.get("gw-http1"), row.get("gw-h2c")
            if h1 and h2:
                add(f"{case}: calls over h2c vs HTTP/1.1 pooled",
                    f"{h2['rps']:,.0f} vs {h1['rps']:,.0f} req/s ({h2['rps'] / h1['rps']:.2f} ×), p99 "
                    f"{h2['p99_ms']:.1f} vs {h1['p99_ms']:.1f} ms", None)
                add(f"{case}: h2c holds one connection per backend and worker (HTTP/1.1 pooled: dozens)",
                    f"{h2['backend_connections']:.0f} vs {h1['backend_connections']:.0f} per backend",
                    h2["backend_connections"] <= 1)
    if name == "gateway":
        for case, row in by.items():
            c, g = row.get("coronet"), row.get("go")
            if c and g:
                add(f"{case}: throughput > Go, p99 < Go",
                    f"{c['rps'] / g['rps']:.2f} ×, p99 {c['p99_ms']:.1f} vs {g['p99_ms']:.1f} ms",
                    c["rps"] > g["rps"] and c["p99_ms"] < g["p99_ms"])
                if case == "backends 0 ms":
                    add(f"{case}: CPU per dashboard ≤ 0.33 × Go's",
                        f"{c['cpu_us_per_req']:.1f} vs {g['cpu_us_per_req']:.1f} µs = "
                        f"{c['cpu_us_per_req'] / g['cpu_us_per_req']:.2f} ×",
                        c["cpu_us_per_req"] <= 0.33 * g["cpu_us_per_req"])
    if name == "two-workers":
        c, g, n = (by.get("2 workers, plaintext", {}).get(s) for s in ("coronet", "go", "nginx"))
        if c and n:
            add("req/s ≥ nginx with 2 workers", f"{c['rps'] / n['rps']:.2f} × ({c['rps']:,.0f} vs {n['rps']:,.0f})",
                c["rps"] >= n["rps"])
        if c and g:
            add("req/s ≥ 1.8 × Go with GOMAXPROCS=2", f"{c['rps'] / g['rps']:.2f} × ({c['rps']:,.0f} vs {g['rps']:,.0f})",
                c["rps"] >= 1.8 * g["rps"])
    if name == "chaos":
        base = by.get("no fault", {}).get("coronet")
        for case, row in by.items():
            c, g = row.get("coronet"), row.get("go")
            if not c:
                continue
            peer = f" (Go {g['full_pct']:.2f}%)" if g else ""
            if case in ("orders replica killed mid-run", "orders replica black-holed"):
                add(f"{case}: ≥ 99.9% full answers", f"{c['full_pct']:.3f}%{peer}", c["full_pct"] >= 99.9)
            if case.startswith("orders replica slow") and base:
                add(f"{case}: p99 ≤ 1.5 × the no-fault p99 (hedging)",
                    f"{c['p99_ms']:.1f} vs {base['p99_ms']:.1f} ms = {c['p99_ms'] / base['p99_ms']:.2f} ×"
                    + (f" (Go {g['p99_ms']:.1f} ms)" if g else ""), c["p99_ms"] <= 1.5 * base["p99_ms"])
            limit = 1.3 if case == "recommendations all down" else 1.2
            add(f"{case}: upstream amplification ≤ {limit}", f"{c['amplification']:.3f} ×"
                + (f" (Go {g['amplification']:.3f} ×)" if g else ""), c["amplification"] <= limit)
            add(f"{case}: no socket errors", f"{c['socket_errors']:.0f}", c["socket_errors"] == 0)
            add(f"{case}: gateway RSS flat", f"{c['rss_growth_kib'] / 1024:+.1f} MiB over the run"
                + (f" (Go {g['rss_growth_kib'] / 1024:+.1f} MiB)" if g else ""), c["rss_growth_kib"] <= 8 * 1024)
    if name == "connections":
        for case, row in by.items():
            c = row.get("coronet")
            if c:
                add(f"{case}: no errors", f"{c['socket_errors'] + c['non2xx']:.0f}", c["socket_errors"] + c["non2xx"] == 0)
            if c and c.get("idle_bytes_per_connection") is not None:
                n = row.get("nginx", {}).get("idle_bytes_per_connection")
                add("idle keep-alive RSS ≤ 1 KiB per connection", f"{c['idle_bytes_per_connection']:.0f} B"
                    + (f" (nginx {n:.0f} B)" if n else ""), c["idle_bytes_per_connection"] <= 1024)
    if name == "echo":
        for case, row in by.items():
            c, g = row.get("coronet"), row.get("go")
            if c and g:
                add("echo ≥ 1.5 × Go's throughput", f"{c['rps'] / g['rps']:.2f} × "
                    f"({c['rps']:.0f} vs {g['rps']:.0f} messages/s; server CPU {c['cpu_us_per_req']:.2f} vs "
                    f"{g['cpu_us_per_req']:.2f} µs per message, of which user space {c['user_cpu_us_per_req']:.2f} vs "
                    f"{g['user_cpu_us_per_req']:.2f} µs; with no user-space time at all, coronet's kernel time "
                    f"of {c['cpu_us_per_req'] - c['user_cpu_us_per_req']:.2f} µs per message would allow at most "
                    f"{g['cpu_us_per_req'] / (c['cpu_us_per_req'] - c['user_cpu_us_per_req']):.2f} × Go's "
                    f"messages per CPU second)",
                    c["rps"] >= 1.5 * g["rps"])
    if name == "chat":
        all_reading = next((row for case, row in by.items() if "silent" not in case), {})
        silent = next((row for case, row in by.items() if "silent" in case), {})
        c, cs = all_reading.get("coronet"), silent.get("coronet")
        if c:
            add(f"{c.get('clients', 0):.0f} clients in one room without errors",
                f"{c['socket_errors'] + c['non2xx']:.0f} errors, {c.get('delivery_ratio', 0):.4f} delivered",
                c["socket_errors"] + c["non2xx"] == 0 and c.get("delivery_ratio", 0) >= 0.999)
        if c and cs:
            add("10% never reading: p99 delivery ≤ 1.5 × the all-reading p99",
                f"{cs['p99_ms']:.1f} vs {c['p99_ms']:.1f} ms = {cs['p99_ms'] / c['p99_ms']:.2f} ×",
                cs["p99_ms"] <= 1.5 * c["p99_ms"])
            add("server RSS bounded with 10% never reading", f"{cs['rss_kib_after'] / 1024:.0f} MiB after the run "
                f"(all reading: {c['rss_kib_after'] / 1024:.0f} MiB; peak {cs['peak_rss_kib'] / 1024:.0f} MiB)",
                cs["rss_kib_after"] <= 1.5 * c["rss_kib_after"])
    return out


# --- SVG -----------------------------------------------------------------------------

def svg_open(width, height, font_size, title, subtitle):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="{font_size}">',
            f'<rect width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
            f'{html.escape(title)}</text>',
            f'<text x="{width / 2}" y="40" text-anchor="middle" fill="#555">{html.escape(subtitle)}</text>']


def svg_close(out, left, bottom, path):
    """The axis line, then writes the file."""
    out.append(f'<line x1="{left}" y1="50" x2="{left}" y2="{bottom}" stroke="#333"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def svg_bars(title, subtitle, groups, series, path, color, label, bar_h=18, font_size=12):
    """Grouped horizontal bars. groups: [label]; series: [(name, [value per group])];
    color(name) fills a bar, label(name, value) is written after it."""
    gap = bar_h - 4
    left = max(190, 7 * max((len(g) for g in groups), default=0) + 16)  # room for the longest group label
    width = left + 570
    height = 60 + len(groups) * (len(series) * bar_h + gap) + 30
    top = max((v for _, vals in series for v in vals if v is not None), default=1) or 1
    plot_w = width - left - 120
    out = svg_open(width, height, font_size, title, subtitle)
    y = 56
    for gi, group in enumerate(groups):
        out.append(f'<text x="{left - 8}" y="{y + len(series) * bar_h / 2 + 4}" text-anchor="end" '
                   f'font-weight="bold">{html.escape(group)}</text>')
        for name, values in series:
            v = values[gi]
            text = html.escape(label(name, v))
            if v is not None:
                w = max(1.0, plot_w * v / top)
                out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" fill="{color(name)}">'
                           f'<title>{text}</title></rect>')
                out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h - 5}">{text}</text>')
            else:
                out.append(f'<text x="{left + 5}" y="{y + bar_h - 5}" fill="#999">{text}</text>')
            y += bar_h
        y += gap
    svg_close(out, left, y, path)


def charts(doc):
    name = doc["scenario"]
    cases = list(dict.fromkeys(r["case"] for r in doc["results"]))
    servers = list(dict.fromkeys(r["server"] for r in doc["results"]))
    get = {(r["case"], r["server"]): r["median"] for r in doc["results"]}
    unit = UNITS.get(name, "requests/s")
    os.makedirs(CHARTS, exist_ok=True)
    thr = os.path.join(CHARTS, f"{name}-throughput.svg")
    svg_bars(f"{name}: throughput (higher is better)", f"{unit}, median of {doc['repetitions']}", cases,
             [(s, [get.get((c, s), {}).get("rps") for c in cases]) for s in servers], thr,
             color=lambda server: COLORS.get(server, "#555"),
             label=lambda server, v: f"{server}: —" if v is None else f"{server} {v:,.0f}" if v >= 100
             else f"{server} {v:,.2f}")
    lat = os.path.join(CHARTS, f"{name}-latency.svg")
    groups = [f"{c} / {s}" if len(cases) > 1 else s for c in cases for s in servers if (c, s) in get]
    pairs = [(c, s) for c in cases for s in servers if (c, s) in get]
    series = [(f"{label}", [get[p].get(key) for p in pairs])
              for label, key in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"))]
    shades = {"p50": "#9ecae1", "p90": "#6baed6", "p99": "#3182bd", "p99.9": "#08519c"}
    svg_bars(f"{name}: latency percentiles (lower is better)", "milliseconds", groups, series, lat,
             color=shades.get, label=lambda p, v: f"{p} —" if v is None else f"{p} {v:.2f}", bar_h=14, font_size=11)
    return os.path.relpath(thr, os.path.join(ROOT, "loadtest")), os.path.relpath(lat, os.path.join(ROOT, "loadtest"))


# --- Markdown --------------------------------------------------------------------------

def fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def chaos_section(doc, head):
    """The chaos scenario: what callers got under each fault, per gateway."""
    lines = head + ["", "| case | gateway | dashboards/s | full % | partial % | failed % | p50 ms | p99 ms | "
                        "p99.9 ms | upstream calls / dashboard | amplification | socket errors | RSS growth MiB |",
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["results"]:
        md = r["median"]
        lines.append(f"| {r['case']} | {r['server']} | {md['rps']:,.0f} | {md['full_pct']:.3f} | "
                     f"{md['partial_pct']:.3f} | {md['failed_pct']:.3f} | {fmt(md.get('p50_ms'))} | "
                     f"{fmt(md.get('p99_ms'))} | {fmt(md.get('p999_ms'))} | "
                     f"{md['upstream_calls_per_dashboard']:.3f} | {md['amplification']:.3f} | "
                     f"{md['socket_errors']:.0f} | {md['rss_growth_kib'] / 1024:+.1f} |")
    t = targets(doc)
    if t:
        lines += ["", "| target | measured | met |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in t]
    cases = list(dict.fromkeys(r["case"] for r in doc["results"]))
    servers = list(dict.fromkeys(r["server"] for r in doc["results"]))
    get = {(r["case"], r["server"]): r["median"] for r in doc["results"]}
    os.makedirs(CHARTS, exist_ok=True)
    full = os.path.join(CHARTS, "chaos-full.svg")
    svg_bars("chaos: full dashboards per case (higher is better)", "% of answers with every part", cases,
             [(sv, [get.get((c, sv), {}).get("full_pct") for c in cases]) for sv in servers], full,
             color=lambda server: COLORS.get(server, "#555"),
             label=lambda server, v: f"{server}: —" if v is None else f"{server} {v:.2f}%")
    p99 = os.path.join(CHARTS, "chaos-p99.svg")
    svg_bars("chaos: p99 latency per case (lower is better)", "milliseconds", cases,
             [(sv, [get.get((c, sv), {}).get("p99_ms") for c in cases]) for sv in servers], p99,
             color=lambda server: COLORS.get(server, "#555"),
             label=lambda server, v: f"{server}: —" if v is None else f"{server} {v:.1f} ms")
    rel = lambda path: os.path.relpath(path, os.path.join(ROOT, "loadtest"))
    lines += ["", f"![chaos full answers]({rel(full)})", f"![chaos p99]({rel(p99)})", ""]
    return lines


def section(doc):
    name = doc["scenario"]
    unit = UNITS.get(name, "req/s")
    if name == "chaos":
        m, v = doc["machine"], doc["versions"]
        return chaos_section(doc, [f"## {name}", "", doc["description"] + ".", "",
            f"Command: `{doc['command']}` ({doc['date']}); {doc['seconds']} s per case, one run each (a fault "
            f"is a sequence of events, not a steady state). Gateway on core {m['server_core']}; wrk and the six "
            f"backends (1 ms each) on core {m['load_core']}. Machine: {m['cores']} cores, {m['cpu']}, Linux "
            f"{m['kernel']}. Versions: coronet {v.get('coronet')}; {v.get('go') or 'no Go'}; {v.get('wrk')}. "
            "Upstream calls are the gateway's attempts (coronet: coronet_http_client_attempts_total, refused "
            "connects included; Go: its own count of calls); amplification is calls / 3 per dashboard."])
    thr, lat = charts(doc)
    m = doc["machine"]
    v = doc["versions"]
    where = ("Nothing pinned: each server's two workers and wrk's two threads share the cores." if name == "two-workers"
             else f"Server on core {m['server_core']}, load generator on core {m['load_core']}.")
    lines = [f"## {name}", "", doc["description"] + ".", "",
             f"Command: `{doc['command']}` ({doc['date']}); {doc['seconds']} s per run, medians of "
             f"{doc['repetitions']}, runs interleaved. {where} Machine: {m['cores']} cores, {m['cpu']}, {m['memory_mib']} MiB, Linux {m['kernel']}. "
             f"Versions: coronet {v.get('coronet')}, {v.get('compiler')}; {v.get('go') or 'no Go'}; "
             f"{v.get('nginx') or 'no nginx'}; {v.get('wrk')}.", ""]
    for peer, why in doc.get("skipped", {}).items():
        lines.append(f"Skipped: **{peer}**: {why}.  ")
    base = {}
    for r in doc["results"]:
        if r["server"] == "coronet":
            base[r["case"]] = r["median"]["rps"]
    extra_rss = name == "connections"
    extra_tls = name == "tls-plaintext"
    lines += ["", f"| case | server | {unit} | × coronet | p50 ms | p90 ms | p99 ms | p99.9 ms | CPU µs/req (user) | "
                  f"peak RSS MiB | {'RSS B/conn under load | idle B/conn | ' if extra_rss else ''}"
                  f"{'idle TLS B/conn | ' if extra_tls else ''}errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if extra_rss else "")
              + ("---:|" if extra_tls else "") + "---:|"]
    for r in doc["results"]:
        md = r["median"]
        rel = md["rps"] / base[r["case"]] if base.get(r["case"]) else None
        lines.append(f"| {r['case']} | {r['server']} | {md['rps']:,.0f} | {fmt(rel)} | {fmt(md.get('p50_ms'))} | "
                     f"{fmt(md.get('p90_ms'))} | {fmt(md.get('p99_ms'))} | {fmt(md.get('p999_ms'))} | "
                     f"{fmt(md.get('cpu_us_per_req'))} ({fmt(md.get('user_cpu_us_per_req'))}) | "
                     f"{fmt(md.get('peak_rss_kib', 0) / 1024, '.1f')} | "
                     + (f"{fmt(md.get('rss_bytes_per_connection'), '.0f')} | "
                        f"{fmt(md.get('idle_bytes_per_connection'), '.0f')} | " if extra_rss else "")
                     + (f"{fmt(md.get('idle_tls_bytes_per_connection'), '.0f')} | " if extra_tls else "")
                     + f"{md.get('socket_errors', 0) + md.get('non2xx', 0):.0f} |")
    t = targets(doc)
    if t:
        lines += ["", "| target | measured | met |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in t]
    lines += ["", f"![{name} throughput]({thr})", f"![{name} latency]({lat})", ""]
    return lines


def soak_section(doc):
    """The soak: the curves of RSS, descriptors and tasks over the run, and the verdict."""
    rows = doc["samples"]
    servers = [n for n in rows[0] if isinstance(rows[0][n], dict)] if rows else []
    os.makedirs(CHARTS, exist_ok=True)
    paths = []
    for key, unit, title in (("rss_kib", "MiB", "RSS"), ("fds", "descriptors", "open file descriptors"),
                             ("tasks", "tasks", "tasks alive")):
        path = os.path.join(CHARTS, f"soak-{key}.svg")
        width, height, left, top = 720, 260, 60, 40
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
               f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
               f'<text x="{left}" y="18" font-size="13">soak: {title} every 10 s ({unit}; the warm-up ends at the '
               f'dashed line)</text>']
        series = {n: [(r["elapsed_s"], r[n][key]) for r in rows if r[n].get(key) is not None] for n in servers}
        values = [v for pts in series.values() for _, v in pts]
        if values:
            vmax = max(values) * 1.1 or 1
            tmax = max(r["elapsed_s"] for r in rows) or 1
            x = lambda t: left + (width - left - 120) * t / tmax
            y = lambda v: height - 30 - (height - top - 30) * v / vmax
            scale = (lambda v: v / 1024) if key == "rss_kib" else (lambda v: v)
            out.append(f'<line x1="{left}" y1="{height - 30}" x2="{width - 120}" y2="{height - 30}" stroke="#999"/>')
            out.append(f'<text x="{left - 4}" y="{y(vmax / 1.1):.0f}" text-anchor="end">{scale(vmax / 1.1):.0f}</text>')
            out.append(f'<text x="{left - 4}" y="{height - 30}" text-anchor="end">0</text>')
            out.append(f'<text x="{width - 120}" y="{height - 14}" text-anchor="end">{tmax / 60:.0f} min</text>')
            wx = x(doc["warmup_s"])
            out.append(f'<line x1="{wx:.1f}" y1="{top}" x2="{wx:.1f}" y2="{height - 30}" stroke="#bbb" '
                       'stroke-dasharray="4 3"/>')
            palette = ["#2b7bb9", "#7fb800", "#e0a100", "#8c8c8c"]
            for i, (n, pts) in enumerate(series.items()):
                if not pts:
                    continue
                d = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
                out.append(f'<polyline fill="none" stroke="{palette[i % 4]}" stroke-width="1.5" points="{d}"/>')
                out.append(f'<text x="{width - 112}" y="{top + 14 * i + 10}" fill="{palette[i % 4]}">{n} '
                           f'{scale(pts[-1][1]):.1f}</text>')
        out.append("</svg>")
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        paths.append(os.path.relpath(path, os.path.join(ROOT, "loadtest")))
    lines = ["## soak", "", f"Command: `{doc['command']}` ({doc['date']}); {doc['minutes']:g} minutes, warm-up "
             f"{doc['warmup_s']} s, samples every 10 s. Events: {doc['events'].get('disconnects', 0)} clients that "
             f"left before their answer, {doc['events'].get('websockets', 0)} WebSocket sessions, "
             f"{doc['events'].get('reloads', 0)} certificate reloads (SIGHUP).", "",
             "| server | RSS at the warm-up's end MiB | peak after MiB | limit MiB | fds idle before / after | "
             "tasks idle before / after |", "|---|---:|---:|---:|---:|---:|"]
    for n in servers:
        b = doc["bounds"].get(n, {})
        before, after = doc["idle_before"][n], (doc.get("idle_after") or {}).get(n, {})
        lines.append(f"| {n} | {b.get('rss_kib_at_warmup_end', 0) / 1024:.1f} | {b.get('rss_kib_peak_after', 0) / 1024:.1f} | "
                     f"{b.get('rss_kib_limit', 0) / 1024:.1f} | {before.get('fds')} / {after.get('fds')} | "
                     f"{before.get('tasks')} / {after.get('tasks')} |")
    lines += ["", "| load | requests | socket errors | non-2xx | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name, r in doc["load"].items():
        if "requests" in r:
            lines.append(f"| {name} | {r['requests'] or 0:,} | {r['socket_errors']} | {r['non2xx']} | "
                         f"{r['p99_ms']:.2f} |")
    lines += ["", "Verdict: " + ("**ok**" if not doc["failures"] else "**failed**: " + "; ".join(doc["failures"])), ""]
    lines += [f"![soak {p}]({p})" for p in paths] + [""]
    return lines


def main():
    docs = {}
    for name in ORDER:
        path = os.path.join(RESULTS, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                docs[name] = json.load(f)
    if not docs:
        print("report.sh: no results in loadtest/results: run loadtest/run.sh first", file=sys.stderr)
        return 1
    lines = ["# Results", "",
             "Written by `loadtest/report.sh` from `loadtest/results/*.json` (made by `loadtest/run.sh`). "
             "Each scenario runs coronet and its peers in the same run, each server pinned to one core "
             "(one worker / GOMAXPROCS=1 / one nginx worker) and the load generator to the other; "
             "ratios are what to read, as this machine is shared and noisy. "
             "Errors are socket errors plus non-2xx responses (for echo: corrupted replies; for chat: error lines "
             "and dropped readers). What the numbers mean, and why a target was missed: "
             "[NOTES.md](NOTES.md).", "",
             "| scenario | what | coronet | best peer | ratio |", "|---|---|---:|---|---:|"]
    for name, doc in docs.items():
        first = doc["results"][0]["case"]
        row = {r["server"]: r["median"]["rps"] for r in doc["results"] if r["case"] == first}
        peers = {k: v for k, v in row.items() if k not in NOT_PEERS}
        best = max(peers.items(), key=lambda kv: kv[1]) if peers else None
        c = row.get("coronet")
        lines.append(f"| [{name}](#{name}) | {first}, {UNITS.get(name, 'req/s')} | {fmt(c, ',.0f')} | "
                     f"{f'{best[0]} {best[1]:,.0f}' if best else '—'} | "
                     f"{fmt(c / best[1]) + ' ×' if best and c else '—'} |")
    lines.append("")
    for name, doc in docs.items():
        lines += section(doc)
    soak = os.path.join(RESULTS, "soak.json")
    if os.path.exists(soak):
        with open(soak) as f:
            lines += soak_section(json.load(f))
    allocs = os.path.join(RESULTS, "allocations.md")
    if os.path.exists(allocs):
        with open(allocs) as f:
            lines += ["## Allocations per request (tests/alloc)", "",
                      "Heap allocations (malloc and its family, counted in the test binary) that the server makes "
                      "for keep-alive requests over loopback, one worker. Deterministic, so it is also a test "
                      "(`alloc: no heap allocation per keep-alive request`, which fails on any). Command: "
                      "`build/bin/coronet_alloc_test 1000 loadtest/results/allocations.md`.", "",
                      f.read().strip(), ""]
    prim = os.path.join(RESULTS, "primitives.md")
    if os.path.exists(prim):
        with open(prim) as f:
            lines += ["## Primitives (loadtest/micro/compare.sh)", "", f.read().strip(), ""]
    out = os.path.join(ROOT, "loadtest", "RESULTS.md")
    with open(out, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print(f"report: wrote {os.path.relpath(out, ROOT)} and {len(docs) * 2} charts in loadtest/charts/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
