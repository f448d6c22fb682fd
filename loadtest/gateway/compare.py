#!/usr/bin/env python3
"""The gateway side by side: coronet-gateway against the Go gateway
(loadtest/peers/go/gateway), both in front of the same three coronet-backend
processes, with backends answering at once and after 2 ms.

The gateway under test runs alone on one core (one worker / GOMAXPROCS=1);
wrk and the backends share the other. Reports req/s, latency percentiles and
the gateway's CPU time per request, medians over the repetitions, runs
interleaved. Called by loadtest/gateway/compare.sh, which builds.
"""
import json
import os
import statistics
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "http"))
import compare as http  # noqa: E402  (the HTTP harness: Server, wrk, parse_wrk, cpu_ticks)

ROOT = http.ROOT
BINS = os.path.join(ROOT, "build-release/bin")
GATEWAY_CORE, OTHER_CORE = http.SERVER_CORE, http.WRK_CORE


def backends(latency_ms):
    out = []
    for i, role in enumerate(("users", "orders", "recommendations")):
        port = 8181 + i
        out.append(http.Server(f"{role}", ["taskset", "-c", OTHER_CORE, os.path.join(BINS, "coronet-backend"),
                                           "--role", role, "--listen", f"127.0.0.1:{port}", "--threads", "1",
                                           "--log-level", "warn", "--set", "log.access=false",
                                           "--set", f"backend.latency_ms={latency_ms}"], port, pin=False))
    return out


def gateways():
    urls = {r: f"http://127.0.0.1:{8181 + i}" for i, r in enumerate(("users", "orders", "recommendations"))}
    coronet = http.Server("coronet", [os.path.join(BINS, "coronet-gateway"), "--threads", "1", "--log-level", "warn",
                                      "--listen", "127.0.0.1:8180", "--set", "log.access=false"]
                          + sum((["--set", f"backends.{r}={u}"] for r, u in urls.items()), []), 8180)
    go = http.Server("go", [os.path.join(BINS, "go-gateway"), "-listen", "127.0.0.1:8190", "-users", urls["users"],
                            "-orders", urls["orders"], "-recommendations", urls["recommendations"]], 8190,
                     env={"GOMAXPROCS": "1"})
    return [coronet, go]


def check(gw):
    doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/api/users/42/dashboard", timeout=5))
    assert doc["partial"] is False and doc["user"]["id"] == 42, doc


def measure(gw, seconds, connections):
    before = http.cpu_ticks(gw.proc.pid)
    # Ids vary per request so the backends' answers vary too.
    out = http.wrk(f"http://127.0.0.1:{gw.port}/api/users/42/dashboard", seconds, connections)
    used = http.cpu_ticks(gw.proc.pid) - before
    r = http.parse_wrk(out)
    r["cpu_us_per_req"] = used / http.TICK * 1e6 / max(r["requests"], 1)
    return r


def main():
    seconds, reps, out_json, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    results = {}
    for latency in (0, 2):
        bs = backends(latency)
        gws = gateways()
        try:
            for gw in gws:
                check(gw)
                http.wrk(f"http://127.0.0.1:{gw.port}/api/users/42/dashboard", 1, 64)  # warm-up
            runs = {gw.name: [] for gw in gws}
            for rep in range(reps):
                for gw in gws:
                    r = measure(gw, seconds, 64)
                    runs[gw.name].append(r)
                    print(f"  backends {latency} ms rep {rep + 1} {gw.name:8} {r['rps']:8.0f} req/s "
                          f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms {r['cpu_us_per_req']:6.1f} us/req "
                          f"errors {r['non2xx'] + r['socket_errors']}", flush=True)
            for name, rs in runs.items():
                results[f"{latency}ms/{name}"] = {"median": http.median_of(rs), "runs": rs}
        finally:
            for s in gws + bs:
                s.stop()
    doc = {"command": command, "seconds": seconds, "repetitions": reps, "results": results}
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=2)
    lines = [f"Command: `{command}`  ",
             f"Gateway alone on core {GATEWAY_CORE} (one worker / GOMAXPROCS=1); wrk and the three backends on core "
             f"{OTHER_CORE}; 64 connections, {seconds} s per run, medians of {reps}.", "",
             "| backends | gateway | req/s | p50 ms | p99 ms | gateway CPU µs/req | non-2xx + socket errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key, v in results.items():
        m = v["median"]
        latency, name = key.split("/")
        lines.append(f"| {latency} | {name} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
                     f"{m['cpu_us_per_req']:.1f} | {m['non2xx'] + m['socket_errors']:.0f} |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for latency in ("0ms", "2ms"):
        c, g = results[f"{latency}/coronet"]["median"], results[f"{latency}/go"]["median"]
        lines.append(f"| backends {latency}: throughput ≥ 2 × Go | {c['rps'] / g['rps']:.2f} × | "
                     f"{'yes' if c['rps'] >= 2 * g['rps'] else 'no'} |")
        lines.append(f"| backends {latency}: p99 ≤ 0.5 × Go | {c['p99_ms'] / g['p99_ms']:.2f} × | "
                     f"{'yes' if c['p99_ms'] <= 0.5 * g['p99_ms'] else 'no'} |")
        lines.append(f"| backends {latency}: gateway CPU per request vs Go | "
                     f"{c['cpu_us_per_req'] / g['cpu_us_per_req']:.2f} × | — |")
    text = "\n".join(lines) + "\n"
    with open(out_json[:-5] + ".md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
