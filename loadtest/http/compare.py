#!/usr/bin/env python3
"""HTTP side by side: coronet-hello, Go net/http, nginx and the epoll floor.

Each server runs pinned to one core, wrk to the other; all four in the same
run, scenarios interleaved so that noise hits them alike. Reports req/s,
latency percentiles and server CPU microseconds per request (utime+stime of
the server's processes from /proc, over the wrk run), medians over the
repetitions. Then: RSS per idle keep-alive connection, and coronet with two
workers against one. Called by loadtest/http/compare.sh, which builds.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TICK = os.sysconf("SC_CLK_TCK")


def cores():
    n = os.cpu_count() or 1
    return ("0", "1") if n > 1 else ("0", "0")


SERVER_CORE, WRK_CORE = cores()


def tree(pid):
    """pid and all its descendants."""
    out = [pid]
    for p in out:
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def proc_sum(pid, path, field):
    """Sums field(text of /proc/P/<path>) over pid and its descendants."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/{path}") as f:
                total += field(f.read())
        except OSError:
            pass
    return total


def cpu_ticks(pid):
    def utime_stime(stat):
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return proc_sum(pid, "stat", utime_stime)


def rss_kib(pid):
    def vm_rss(status):
        return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return proc_sum(pid, "status", vm_rss)


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Server:
    def __init__(self, name, argv, port, env=None, pin=True):
        self.name, self.port = name, port
        cmd = (["taskset", "-c", SERVER_CORE] if pin else []) + argv
        self.proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(port)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wrk(url, seconds, connections, script=None, depth=None, pin=True):
    cmd = (["taskset", "-c", WRK_CORE] if pin else []) + [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if depth:
        cmd += ["--", str(depth)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def to_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out):
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
         "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        r[f"p{p}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def measure(server, path, seconds, connections, depth=None):
    url = f"http://127.0.0.1:{server.port}{path}"
    before = cpu_ticks(server.proc.pid)
    out = wrk(url, seconds, connections, os.path.join(ROOT, "loadtest/http/pipeline.lua") if depth else None, depth)
    used = cpu_ticks(server.proc.pid) - before
    r = parse_wrk(out)
    r["cpu_us_per_req"] = used / TICK * 1e6 / max(r["requests"], 1)
    return r


def median_of(runs):
    keys = runs[0].keys()
    return {k: statistics.median([r[k] for r in runs if r[k] is not None]) if any(r[k] is not None for r in runs)
            else None for k in keys}


def idle_rss(server, count):
    """RSS growth per keep-alive connection that made one request and went idle."""
    socks = []
    base = rss_kib(server.proc.pid)
    request = f"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(request)
            socks.append(s)
        for s in socks:
            got = b""
            while b"Hello, World!" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError(f"{server.name} closed an idle connection")
                got += chunk
        time.sleep(1)  # let the server settle (not a correctness wait)
        grown = rss_kib(server.proc.pid) - base
    finally:
        for s in socks:
            s.close()
    return grown * 1024 / count


def main():
    seconds, reps, idle_count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out_json, command = sys.argv[4], sys.argv[5]
    bins = os.path.join(ROOT, "build-release/bin")
    scratch = tempfile.mkdtemp(prefix="coronet-http-")
    os.makedirs(os.path.join(scratch, "logs"), exist_ok=True)

    def hello(threads, port):
        return [os.path.join(bins, "coronet-hello"), "--threads", str(threads), "--log-level", "warn",
                "--set", "http.max_connections=30000", "--listen", f"127.0.0.1:{port}"]

    servers = [
        Server("floor", [os.path.join(bins, "coronet-http-floor"), "8090"], 8090),
        Server("coronet", hello(1, 8093), 8093),
        Server("go", [os.path.join(bins, "go-hello"), "-listen", "127.0.0.1:8091"], 8091,
               env={"GOMAXPROCS": "1"}),
        Server("nginx", ["nginx", "-p", scratch, "-c", os.path.join(ROOT, "loadtest/http/nginx.conf"),
                         "-e", "stderr"], 8092),
    ]
    scenarios = [
        ("plaintext", "/plaintext", 64, None, ["floor", "coronet", "go", "nginx"]),
        ("pipelined16", "/plaintext", 64, 16, ["floor", "coronet", "go", "nginx"]),
        ("json", "/json", 64, None, ["coronet", "go", "nginx"]),
    ]
    runs = {(s[0], srv.name): [] for s in scenarios for srv in servers if srv.name in s[4]}
    try:
        for srv in servers:  # warm-up
            wrk(f"http://127.0.0.1:{srv.port}/plaintext", 1, 64)
        for rep in range(reps):
            for name, path, conns, depth, who in scenarios:
                for srv in servers:
                    if srv.name in who:
                        r = measure(srv, path, seconds, conns, depth)
                        runs[(name, srv.name)].append(r)
                        print(f"  rep {rep + 1} {name:12} {srv.name:8} {r['rps']:>10.0f} req/s "
                              f"{r['cpu_us_per_req']:6.2f} us/req p99 {r['p99_ms']} ms", flush=True)
        idle = {}
        for srv in servers:
            if srv.name != "floor":
                idle[srv.name] = idle_rss(srv, idle_count)
                print(f"  idle {srv.name:8} {idle[srv.name]:.0f} B/connection", flush=True)
    finally:
        for srv in servers:
            srv.stop()

    # Two workers against one on the whole machine (nothing pinned), and two
    # workers that never spin for cross-worker wake-ups (HTTP connections
    # stay on their worker, so the spin only takes CPU from wrk).
    threads = {}
    for label, n, extra, port in (("1", 1, [], 8094), ("2", 2, [], 8095), ("2-nospin", 2, ["--set", "runtime.spin_us=0"], 8096)):
        srv = Server(f"coronet-t{label}", hello(n, port) + extra, port, pin=False)
        try:
            wrk(f"http://127.0.0.1:{port}/plaintext", 1, 64, pin=False)
            rs = [parse_wrk(wrk(f"http://127.0.0.1:{port}/plaintext", seconds, 64, pin=False))["rps"]
                  for _ in range(reps)]
        finally:
            srv.stop()
        threads[label] = statistics.median(rs)
        print(f"  threads {label}: {threads[label]:.0f} req/s (median of {reps})", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)

    result = {"command": command, "seconds": seconds, "repetitions": reps, "idle_connections": idle_count,
              "server_core": SERVER_CORE, "wrk_core": WRK_CORE,
              "medians": {f"{k[0]}/{k[1]}": median_of(v) for k, v in runs.items()},
              "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()},
              "idle_bytes_per_connection": idle, "threads_rps": threads}
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
    with open(out_json[:-5] + ".md", "w") as f:
        f.write(report(result))
    print(report(result))


def report(r):
    m = r["medians"]

    def get(scenario, who, key):
        v = m.get(f"{scenario}/{who}")
        return v[key] if v else None

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    lines = [f"Command: `{r['command']}`  ",
             f"Server on core {r['server_core']}, wrk on core {r['wrk_core']}, 64 connections, "
             f"{r['seconds']} s per run, medians of {r['repetitions']}.", "",
             "| scenario | server | req/s | p50 ms | p99 ms | server CPU µs/req | non-2xx + socket errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key, v in m.items():
        scenario, who = key.split("/")
        lines.append(f"| {scenario} | {who} | {v['rps']:.0f} | {fmt(v['p50_ms'], '.2f')} | "
                     f"{fmt(v['p99_ms'], '.2f')} | {v['cpu_us_per_req']:.2f} | {v['non2xx'] + v['socket_errors']:.0f} |")
    c_cpu, f_cpu, n_cpu = (get("plaintext", w, "cpu_us_per_req") for w in ("coronet", "floor", "nginx"))
    c_rps, g_rps = get("plaintext", "coronet", "rps"), get("plaintext", "go", "rps")
    p_c, p_f = get("pipelined16", "coronet", "rps"), get("pipelined16", "floor", "rps")
    j_c = get("json", "coronet", "rps")
    t1, t2, t2n = r["threads_rps"]["1"], r["threads_rps"]["2"], r["threads_rps"]["2-nospin"]
    idle = r["idle_bytes_per_connection"]
    lines += ["", "| target | measured | met |", "|---|---:|---|",
              f"| plaintext CPU/req ≤ 1.15 × floor | {c_cpu / f_cpu:.2f} × | {'yes' if c_cpu <= 1.15 * f_cpu else 'no'} |",
              f"| plaintext CPU/req below nginx | {c_cpu:.2f} vs {n_cpu:.2f} µs | {'yes' if c_cpu < n_cpu else 'no'} |",
              f"| plaintext throughput ≥ 1.5 × Go | {c_rps / g_rps:.2f} × | {'yes' if c_rps >= 1.5 * g_rps else 'no'} |",
              f"| pipelined 16 ≥ 0.8 × floor | {p_c / p_f:.2f} × | {'yes' if p_c >= 0.8 * p_f else 'no'} |",
              f"| /json ≥ 0.9 × /plaintext | {j_c / c_rps:.2f} × | {'yes' if j_c >= 0.9 * c_rps else 'no'} |",
              f"| idle keep-alive RSS ≤ 4 KiB/conn ({r['idle_connections']} conns) | {idle['coronet']:.0f} B "
              f"(Go {idle['go']:.0f} B, nginx {idle['nginx']:.0f} B) | {'yes' if idle['coronet'] <= 4096 else 'no'} |",
              f"| --threads 2 not slower than --threads 1 (unpinned) | {t2:.0f} vs {t1:.0f} req/s ({t2 / t1:.2f} ×) | "
              f"{'yes' if t2 >= t1 else 'no'} |",
              f"| the same with runtime.spin_us=0 | {t2n:.0f} vs {t1:.0f} req/s ({t2n / t1:.2f} ×) | "
              f"{'yes' if t2n >= t1 else 'no'} |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
