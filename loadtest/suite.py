#!/usr/bin/env python3
"""The load-testing suite: every scenario side by side with its peers.

Called by loadtest/run.sh (which sets up and builds); see `run.sh --help`.
For each scenario it starts the servers it needs, pins each server to one
core and the load generator to the other (when there are two), warms up,
runs wrk (or coronet's own load clients for echo and chat) for a set time,
repeats, takes medians, stops everything it started (on failure and Ctrl-C
too) and writes loadtest/results/<scenario>.json.

With --quick, every scenario runs briefly with coronet only and the run
asserts correctness (valid responses, no socket errors, no non-2xx), never
speed.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WRK_DIR = os.path.join(ROOT, "loadtest", "wrk")
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
SERVER_CORE, LOAD_CORE = ("0", "1") if CORES > 1 else (None, None)

SCENARIOS = {
    "plaintext": "GET /plaintext, 64 keep-alive connections",
    "json": "GET /json, 64 keep-alive connections",
    "pipelined": "GET /plaintext, 16 requests pipelined per connection, 64 connections",
    "post-echo": "POST /echo with a 1 KiB body, 64 connections",
    "gateway": "the gateway's dashboard (fan-out to three backends), backends answering at once and after 2 ms",
    "connections": "10,000 concurrent keep-alive connections: RSS per connection and errors",
    "echo": "TCP echo, 64 connections, 64-byte messages, one in flight each",
    "chat": "10,000 chat clients in one room; then with 10% never reading",
    "tls-plaintext": "GET /plaintext over HTTPS, 64 keep-alive connections; then RSS per idle TLS connection",
    "tls-handshakes": "a new TLS connection per exchange (ECDSA P-256): full handshakes, then resumed ones",
    "gateway-tls": "the gateway's dashboard over HTTPS in and out (backends answering at once)",
    "h2c-plaintext": "GET /plaintext over h2c, h2load -c 64 -m 16; then RSS per idle HTTP/2 connection",
    "h2-tls": "GET /plaintext over h2 (TLS, ALPN), h2load -c 64 -m 16",
    "gateway-h2c": "the gateway calling its backends over h2c vs over HTTP/1.1 pooled: req/s, p99, connections held",
    "two-workers": "GET /plaintext, 64 keep-alive connections, every server with 2 workers and wrk with 2 threads, "
                   "none pinned",
    "chaos": "the gateway with two replicas per backend under injected faults (a replica killed, slow, shedding, "
             "black-holed; a whole service down), 16 connections, beside the Go gateway (plain net/http calls, "
             "the same 200 ms per call, no retries, hedges or ejection)",
    "grpc": "gRPC (grpc.testing.TestService) over h2c, h2load -c 64 -m 16: unary UnaryCall with a 10-byte "
            "payload each way, and StreamingOutputCall answering 100 messages of 1,000 bytes (-c 16 -m 4), "
            "beside grpc-go's server",
    "db": "TechEmpower's database tests (/db, /queries?queries=20, /fortunes, /updates?queries=20) on one "
          "PostgreSQL pinned with the load generator: coronet pipelined and one query at a time, beside Go's "
          "database/sql with pgx, 16 sessions each",
}


class Failure(Exception):
    """A clear, expected failure: printed without a traceback, exit 1."""


# --- processes ------------------------------------------------------------------

def tree(pid):
    out = [pid]
    for p in out:
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def proc_sum(pid, path, field):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/{path}") as f:
                total += field(f.read())
        except OSError:
            pass
    return total


def cpu_ticks(pid, fields=slice(11, 13)):
    """utime+stime (or the fields asked for) of pid and its descendants, in clock ticks."""
    return proc_sum(pid, "stat", lambda s: sum(int(x) for x in s.rsplit(")", 1)[1].split()[fields]))


def user_ticks(pid):
    return cpu_ticks(pid, slice(11, 12))


def status_kib(pid, key):
    return proc_sum(pid, "status", lambda s: next(
        (int(l.split()[1]) for l in s.splitlines() if l.startswith(key + ":")), 0))


def pinned(core, argv):
    return (["taskset", "-c", core] if core is not None else []) + argv


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, proc, name, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise Failure(f"{name} exited with status {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"{name} is not listening on {port} after {timeout} s")


class Server:
    """A server process in its own session; Processes.stop_all ends it."""

    def __init__(self, procs, name, argv, port, env=None, core=None, logdir=None):
        self.name, self.port, self.argv = name, port, argv
        self.env = {**os.environ, **(env or {})}
        if not port_free(port):
            raise Failure(f"port {port} is in use: stop what listens there, or pass --port-base N "
                          f"(the suite uses ports {procs.base}..{procs.base + 99})")
        log = open(os.path.join(logdir, f"{name}.log"), "wb") if logdir else subprocess.DEVNULL
        self.proc = subprocess.Popen(pinned(core, argv), env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        procs.started.append(self)
        wait_port(port, self.proc, name)
        self.cpu_before = 0

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()


class Processes:
    def __init__(self, base):
        self.base = base
        self.started = []

    def stop_all(self):
        while self.started:
            self.started.pop().stop()


# --- load generators --------------------------------------------------------------

def wrk(url, seconds, connections, script="plain.lua", args=(), timeout_s=None, threads=1, core="load"):
    core = LOAD_CORE if core == "load" else core
    cmd = pinned(core, ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script])
    if timeout_s:
        cmd.append(f"--timeout={timeout_s}s")
    cmd.append(url)
    if args:
        cmd += ["--"] + [str(a) for a in args]
    out = subprocess.run(cmd, cwd=WRK_DIR, capture_output=True, text=True)
    m = re.search(r"^JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise Failure(f"wrk failed ({' '.join(cmd)}):\n{out.stdout}{out.stderr}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    return {"rps": r["requests"] / secs, "requests": r["requests"],
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "p999_ms": r["p999_us"] / 1000,
            "socket_errors": r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
            "non2xx": r["non2xx"], "command": " ".join(cmd)}


def h2load(url, seconds, connections=64, streams=16, extra=()):
    """h2load (nghttp2-client) for `seconds`: one thread, `connections` connections, `streams`
    concurrent streams on each. It reports no percentiles; the mean and the maximum are kept."""
    cmd = pinned(LOAD_CORE, ["h2load", "-t", "1", "-c", str(connections), "-m", str(streams), "-D", str(seconds),
                             *extra, url])
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
    took = re.search(r"finished in ([\d.]+)s", out.stdout)
    times = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out.stdout)
    if out.returncode != 0 or not (m and codes and took):
        raise Failure(f"h2load failed ({' '.join(cmd)}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    ms = lambda v, unit: float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]
    done = int(m.group(4))
    return {"rps": done / seconds, "requests": done,
            "mean_ms": ms(times.group(5), times.group(6)) if times else 0,
            "max_ms": ms(times.group(3), times.group(4)) if times else 0,
            "socket_errors": int(m.group(5)) + int(m.group(6)) + int(m.group(7)),
            "non2xx": int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4)), "command": " ".join(cmd)}


def load_client(bins, tool, args, server=None):
    """Runs one of our load clients. They print "window: start" and "window:
    end" as the measured window opens and closes: the server's CPU time is
    sampled there, so connecting, warming up and the tail are not counted
    against the requests of the window."""
    cmd = pinned(LOAD_CORE, [os.path.join(bins, tool)] + [str(a) for a in args])
    window = {}
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = []
        for line in proc.stdout:
            mark = line.strip()
            if server and mark in ("window: start", "window: end"):
                window[mark] = (cpu_ticks(server.proc.pid), user_ticks(server.proc.pid))
            stdout.append(line)
        proc.wait()
        err.seek(0)
        stderr = err.read()
    lines = [l for l in stdout if l.startswith("{")]
    if not lines:
        raise Failure(f"{tool} failed ({' '.join(cmd)}):\n{''.join(stdout)}{stderr}")
    r = json.loads(lines[-1])
    r["command"] = " ".join(cmd)
    r["stderr_tail"] = stderr[-2000:]
    if len(window) == 2:
        (used0, user0), (used1, user1) = window["window: start"], window["window: end"]
        r["window_ticks"] = (used1 - used0, user1 - user0)
    return r


# --- scenarios ----------------------------------------------------------------------

class Context:
    def __init__(self, args, procs, bins, peer_bins, skipped_peers, logdir):
        self.args, self.procs, self.bins, self.peer_bins, self.logdir = args, procs, bins, peer_bins, logdir
        self.skipped_peers = skipped_peers
        self.quick = args.quick
        self.seconds = args.seconds
        self.reps = 1 if args.quick else args.repetitions
        self.skipped = {}

    def port(self, n):
        return self.procs.base + n

    def pki(self, name):
        """A file of a throwaway CA and certificates (scripts/make-certs.sh), made once per scenario."""
        folder = os.path.join(self.logdir, "pki")
        if not os.path.isdir(folder):
            subprocess.run([os.path.join(ROOT, "scripts/make-certs.sh"), folder], check=True,
                           stdout=subprocess.DEVNULL)
        return os.path.join(folder, name)

    def tls_flags(self):
        return ["--set", f"tls.cert_file={self.pki('server.pem')}", "--set", f"tls.key_file={self.pki('server.key')}"]

    def server(self, name, argv, port, env=None, core=SERVER_CORE):
        return Server(self.procs, name, argv, port, env, core, self.logdir)

    def coronet(self, app, port, *extra, core=SERVER_CORE, threads=1):
        return self.server("coronet" if app != "backend" else f"backend-{port}",
                           [os.path.join(self.bins, f"coronet-{app}"), "--threads", str(threads), "--log-level",
                            "warn", "--listen", f"127.0.0.1:{port}"] + list(extra), port, core=core)

    def nginx(self, port, tls=False, http2=False, workers=1, core=SERVER_CORE):
        """nginx with loadtest/http/nginx.conf, listening on `port` (with `tls`, HTTPS with the
        same certificate as coronet; with `http2`, HTTP/2: h2c with prior knowledge, or h2 by ALPN
        over TLS), in the run's log directory."""
        conf = os.path.join(self.logdir, "nginx.conf")
        with open(os.path.join(ROOT, "loadtest/http/nginx.conf")) as f:
            text = f.read().replace("127.0.0.1:8092", f"127.0.0.1:{port}")
        if http2:
            text = text.replace(" reuseport backlog=4096;", " http2 reuseport backlog=4096;")
        if tls:
            # TLS 1.2 and 1.3 as coronet and Go (nginx 1.22 leaves 1.3 out by default)
            text = text.replace(" reuseport backlog=4096;", " ssl reuseport backlog=4096;\n"
                                f"    ssl_certificate {self.pki('server.pem')};\n"
                                f"    ssl_certificate_key {self.pki('server.key')};\n"
                                "    ssl_protocols TLSv1.2 TLSv1.3;")
        text = text.replace("worker_processes 1;", f"worker_processes {workers};")
        with open(conf, "w") as f:
            f.write(text)
        return self.server("nginx", ["nginx", "-p", self.logdir, "-c", conf, "-e", "stderr"], port, core=core)

    def peer(self, name, binary, argv, port, env=None, core=SERVER_CORE):
        path = self.peer_bins.get(binary)
        if not path:
            self.skipped[name] = self.skipped_peers.get(binary, f"{binary} was not built")
            return None
        return self.server(name, [path] + argv, port, env, core=core)


def measured(server, run):
    """Runs `run()` and adds the server's CPU time per request to its result:
    all of it, and the user-space part (the rest is the kernel's: system
    calls and, on loopback, much of the TCP work of both ends)."""
    before, user_before = cpu_ticks(server.proc.pid), user_ticks(server.proc.pid)
    r = run()
    used, user = cpu_ticks(server.proc.pid) - before, user_ticks(server.proc.pid) - user_before
    used, user = r.pop("window_ticks", None) or (used, user)  # our load clients say when they measure
    r["cpu_us_per_req"] = used / TICK * 1e6 / max(r["requests"], 1)
    r["user_cpu_us_per_req"] = user / TICK * 1e6 / max(r["requests"], 1)
    return r


def fetch(url, data=None, cafile=None):
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10, context=context) as r:
        return r.status, r.read()


def http_scenario(ctx, name, path, script="plain.lua", args=(), connections=64, probe=None, peers=("go", "nginx", "floor")):
    servers = [ctx.coronet("hello", ctx.port(0), "--set", "http.max_connections=30000")]
    if ctx.args.baseline and not ctx.quick:
        # coronet as built before a change, in the same run (--baseline DIR)
        servers.append(ctx.server("before", [os.path.join(ctx.args.baseline, "coronet-hello"), "--threads", "1",
                                             "--log-level", "warn", "--listen", f"127.0.0.1:{ctx.port(4)}",
                                             "--set", "http.max_connections=30000"], ctx.port(4)))
    if not ctx.quick:
        if "go" in peers:
            s = ctx.peer("go", "go-hello", ["-listen", f"127.0.0.1:{ctx.port(1)}"], ctx.port(1), {"GOMAXPROCS": "1"})
            servers += [s] if s else []
        if "nginx" in peers:
            servers.append(ctx.nginx(ctx.port(2)))
        if "floor" in peers:
            servers.append(ctx.server("floor", [os.path.join(ctx.bins, "coronet-http-floor"), str(ctx.port(3))],
                                      ctx.port(3)))
    checks = []
    if probe:
        for s in servers:
            status, body = fetch(f"http://127.0.0.1:{s.port}{path}", probe.get("data"))
            ok = status == 200 and body == probe["body"]
            checks.append({"check": f"{s.name} answers {path} correctly", "ok": ok,
                           "detail": f"{status} {body[:60]!r}"})
            if not ok:
                raise Failure(f"{s.name}: {path} answered {status} {body[:80]!r}, expected {probe['body']!r}")
    return run_cases(ctx, [(name, s, lambda secs, s=s: wrk(f"http://127.0.0.1:{s.port}{path}", secs, connections,
                                                           script, args)) for s in servers], checks)


def run_cases(ctx, cases, checks=None, warm=True):
    """cases: (case, server, run), where run(seconds) loads the server once.
    Warms each up for a second, then runs every case once per repetition,
    interleaved, so that noise hits them alike."""
    if warm:
        for case, server, run in cases:
            run(1)
    runs = {(c, s.name): [] for c, s, _ in cases}
    for rep in range(ctx.reps):
        for case, server, run in cases:
            r = measured(server, lambda: run(ctx.seconds))
            r["peak_rss_kib"] = status_kib(server.proc.pid, "VmHWM")
            runs[(case, server.name)].append(r)
            latency = f"p99 {r['p99_ms']:.2f} ms" if "p99_ms" in r else f"mean {r.get('mean_ms', 0):.2f} ms"
            print(f"  {case:24} {server.name:8} rep {rep + 1}: {r['rps']:>10.0f}/s  {latency}  "
                  f"cpu {r['cpu_us_per_req']:.2f} us  errors {r['socket_errors'] + r['non2xx']}", flush=True)
    out = []
    for (case, server), rs in runs.items():
        out.append({"case": case, "server": server, "median": median_of(rs), "runs": rs})
    return out, list(checks or [])


def median_of(runs):
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: statistics.median([r[k] for r in runs]) for k in keys}


def scenario_plaintext(ctx):
    return http_scenario(ctx, "plaintext", "/plaintext", probe={"body": b"Hello, World!"})


def scenario_json(ctx):
    return http_scenario(ctx, "json", "/json", probe={"body": b'{"message":"Hello, World!"}'},
                         peers=("go", "nginx"))


def scenario_pipelined(ctx):
    return http_scenario(ctx, "pipelined 16", "/plaintext", "pipeline.lua", (16,),
                         probe={"body": b"Hello, World!"})


def scenario_post_echo(ctx):
    body = (b"coronet!" * 128)[:1024]
    if not ctx.quick:  # nginx cannot echo a body without modules Debian's nginx-light lacks
        ctx.skipped["nginx"] = "cannot echo a request body (no echo module in nginx-light)"
    return http_scenario(ctx, "POST /echo 1 KiB", "/echo", "post.lua", (1024,),
                         probe={"body": body, "data": body}, peers=("go",))


def scenario_two_workers(ctx):
    """As plaintext, but as a server is deployed on a small machine: 2 workers (GOMAXPROCS=2, 2 nginx
    workers), nothing pinned, and wrk with 2 threads sharing the two cores with the server."""
    servers = [ctx.coronet("hello", ctx.port(0), "--set", "http.max_connections=30000", core=None, threads=2)]
    if not ctx.quick:
        s = ctx.peer("go", "go-hello", ["-listen", f"127.0.0.1:{ctx.port(1)}"], ctx.port(1), {"GOMAXPROCS": "2"},
                     core=None)
        servers += [s] if s else []
        servers.append(ctx.nginx(ctx.port(2), workers=2, core=None))
    for s in servers:
        status, body = fetch(f"http://127.0.0.1:{s.port}/plaintext")
        if status != 200 or body != b"Hello, World!":
            raise Failure(f"{s.name}: /plaintext answered {status} {body[:80]!r}")
    return run_cases(ctx, [("2 workers, plaintext", s, lambda secs, s=s: wrk(
        f"http://127.0.0.1:{s.port}/plaintext", secs, 64, threads=2, core=None)) for s in servers])


class PostgresServer:
    """A PostgreSQL of the scenario's own (scripts/pg-server.sh), pinned to `core`, with
    TechEmpower's tables; Processes.stop_all stops it."""

    def __init__(self, procs, logdir, core):
        self.name, self.dir = "postgresql", os.path.join(logdir, "pg")
        script = os.path.join(ROOT, "scripts/pg-server.sh")
        out = subprocess.run(pinned(core, [script, "start", self.dir]), capture_output=True, text=True)
        if out.returncode != 0:
            raise Failure(f"PostgreSQL did not start (scripts/setup.sh installs it): {out.stderr.strip()[-500:]}")
        self.url = out.stdout.strip()
        procs.started.append(self)
        load = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-f",
                               os.path.join(ROOT, "apps/techempower/create.sql")], capture_output=True, text=True)
        if load.returncode != 0:
            raise Failure(f"loading apps/techempower/create.sql failed: {load.stderr.strip()[-500:]}")

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts/pg-server.sh"), "stop", self.dir], capture_output=True)


DB_ROUTES = ["/db", "/queries?queries=20", "/fortunes", "/updates?queries=20"]


def scenario_db(ctx):
    if not os.path.exists(os.path.join(ctx.bins, "coronet-techempower")):
        raise Failure("coronet-techempower was not built: coronet::pg needs libpq-dev (scripts/setup.sh)")
    db = PostgresServer(ctx.procs, ctx.logdir, LOAD_CORE)
    servers = [ctx.coronet("techempower", ctx.port(0), "--set", f"pg.url={db.url}", "--set", "pg.pool_size=16")]
    if not ctx.quick:
        serial = ctx.server("coronet-1by1", [os.path.join(ctx.bins, "coronet-techempower"), "--threads", "1",
                                             "--log-level", "warn", "--listen", f"127.0.0.1:{ctx.port(2)}",
                                             "--set", f"pg.url={db.url}", "--set", "pg.pool_size=16",
                                             "--set", "techempower.pipeline=false"], ctx.port(2))
        servers.append(serial)
        s = ctx.peer("go", "go-techempower", ["-listen", f"127.0.0.1:{ctx.port(1)}", "-url", db.url, "-pool", "16"],
                     ctx.port(1), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
    checks = []
    for s in servers:
        for route in DB_ROUTES:
            status, body = fetch(f"http://127.0.0.1:{s.port}{route}")
            ok = status == 200 and (body.startswith(b"<!DOCTYPE html>") if route == "/fortunes"
                                    else len(json.loads(body)) == (20 if "queries=20" in route else 2))
            checks.append({"check": f"{s.name} answers {route}", "ok": ok, "detail": f"{status} {body[:60]!r}"})
            if not ok:
                raise Failure(f"{s.name}: {route} answered {status} {body[:80]!r}")
    cases = [(route, s, lambda secs, s=s, route=route: wrk(f"http://127.0.0.1:{s.port}{route}", secs, 64))
             for route in DB_ROUTES for s in servers if not (s.name == "coronet-1by1" and route in ("/db", "/fortunes"))]
    return run_cases(ctx, cases, checks)


def connection_count(ctx, full, quick, what="connections"):
    """How many connections (or clients) a scenario opens at once: `full` in a benchmark run, which
    fails when the open-file limit cannot hold them; `quick` in --quick, which checks correctness,
    not scale, and so scales itself down to what the limit allows (1024 under podman and buildah
    builds, and as the soft limit under Docker), saying so."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if not ctx.quick:
        if limit < full + 200:
            raise Failure(f"the open-file limit ({limit}) is below the {full} {what} this scenario opens: "
                          f"raise it (ulimit -Hn)")
        return full
    count = min(quick, max(limit - 200, 50))
    if count < quick:
        print(f"  (quick: {count} {what} instead of {quick}, as the open-file limit is {limit})", flush=True)
    return count


def scenario_connections(ctx):
    count = connection_count(ctx, 10000, 2000)
    servers = [ctx.coronet("hello", ctx.port(0), "--set", "http.max_connections=30000")]
    if not ctx.quick:
        s = ctx.peer("go", "go-hello", ["-listen", f"127.0.0.1:{ctx.port(1)}"], ctx.port(1), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
        servers.append(ctx.nginx(ctx.port(2)))
    # First, memory per idle keep-alive connection on the fresh servers: each
    # connection made one request and waits.
    idle = {}
    for s in servers:
        idle[s.name] = idle_rss(s, count)
        print(f"  idle keep-alive          {s.name:8} {idle[s.name]:.0f} B/connection", flush=True)
    base = {s.name: status_kib(s.proc.pid, "VmRSS") for s in servers}

    def run(s, secs):
        r = wrk(f"http://127.0.0.1:{s.port}/plaintext", secs, count, timeout_s=10)
        r["connections"] = count
        r["rss_bytes_per_connection"] = (status_kib(s.proc.pid, "VmHWM") - base[s.name]) * 1024 / count
        return r

    cases = [(f"{count} connections", s, lambda secs, s=s: run(s, secs)) for s in servers]
    results, checks = run_cases(ctx, cases, warm=False)
    for r in results:
        r["median"]["idle_bytes_per_connection"] = idle[r["server"]]
    return results, checks


HTTP1_GET = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"


def idle_rss(server, count, cafile=None, request=HTTP1_GET, what="keep-alive"):
    """RSS growth per connection that made one request (HTTP/1.1, or the bytes of `request`) and
    went idle (over TLS, trusting `cafile`, when given)."""
    socks = []
    base = status_kib(server.proc.pid, "VmRSS")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", server.port))
            if context:
                s = context.wrap_socket(s, server_hostname="localhost")
            s.sendall(request)
            socks.append(s)
        for s in socks:
            got = b""
            while b"Hello, World!" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise Failure(f"{server.name} closed an idle {what} connection")
                got += chunk
        time.sleep(1)  # lets the server's allocator settle before reading RSS (not a correctness wait)
        grown = status_kib(server.proc.pid, "VmRSS") - base
    finally:
        for s in socks:
            s.close()
    return grown * 1024 / count


def full_dashboard(gw, base, how="", cafile=None):
    """The check that a gateway answers a whole dashboard; a Failure when it does not."""
    status, body = fetch(f"{base}/api/users/42/dashboard", cafile=cafile)
    doc = json.loads(body)
    ok = status == 200 and doc.get("partial") is False and doc["user"]["id"] == 42
    if not ok:
        raise Failure(f"{gw.name} gateway answered {status} {body[:200]!r}")
    return {"check": f"{gw.name} gateway answers a full dashboard {how}".rstrip(), "ok": ok,
            "detail": body[:80].decode(errors="replace")}


def scenario_gateway(ctx):
    results, checks = [], []
    for latency in (0, 2):
        ctx.procs.stop_all()
        urls = {}
        for i, role in enumerate(("users", "orders", "recommendations")):
            port = ctx.port(10 + i)
            ctx.coronet("backend", port, "--role", role, "--set", "log.access=false",
                        "--set", f"backend.latency_ms={latency}", core=LOAD_CORE)
            urls[role] = f"http://127.0.0.1:{port}"
        gws = [ctx.coronet("gateway", ctx.port(20), "--set", "log.access=false",
                           *sum((["--set", f"backends.{r}={u}"] for r, u in urls.items()), []))]
        if not ctx.quick:
            g = ctx.peer("go", "go-gateway", ["-listen", f"127.0.0.1:{ctx.port(21)}", "-users", urls["users"],
                                              "-orders", urls["orders"], "-recommendations", urls["recommendations"]],
                         ctx.port(21), {"GOMAXPROCS": "1"})
            gws += [g] if g else []
        for gw in gws:
            checks.append(full_dashboard(gw, f"http://127.0.0.1:{gw.port}", f"(backends {latency} ms)"))
        out, _ = run_cases(ctx, [(f"backends {latency} ms", gw,
                                  lambda secs, gw=gw: wrk(f"http://127.0.0.1:{gw.port}", secs, 64, "gateway.lua"))
                                 for gw in gws])
        results += out
    return results, checks


def scenario_echo(ctx):
    servers = [ctx.coronet("echo", ctx.port(30))]
    if not ctx.quick:
        s = ctx.peer("go", "go-echo", ["-listen", f"127.0.0.1:{ctx.port(31)}"], ctx.port(31), {"GOMAXPROCS": "1"})
        servers += [s] if s else []

    def run(s, seconds):
        r = load_client(ctx.bins, "coronet-load-echo",
                        ["--target", f"127.0.0.1:{s.port}", "--connections", 64, "--size", 64,
                         "--seconds", seconds, "--warmup", 0.5], server=s)
        return {"rps": r["messages_per_second"], "requests": r["messages"], "p50_ms": r["p50_us"] / 1000,
                "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "p999_ms": r["p999_us"] / 1000,
                "socket_errors": r["errors"], "non2xx": r["mismatches"], "command": r["command"],
                "window_ticks": r.get("window_ticks")}

    # Echoed bytes that differ are counted as non-2xx, which --quick fails on.
    return run_cases(ctx, [("64 conns x 64 B", s, lambda secs, s=s: run(s, secs)) for s in servers])


def scenario_chat(ctx):
    clients = connection_count(ctx, 10000, 1000, "clients")
    rate = 20
    servers = [ctx.coronet("chat", ctx.port(40), "--set", f"chat.tcp_listen=127.0.0.1:{ctx.port(41)}",
                           "--set", "chat.max_connections=20000", "--set", "http.max_connections=20000")]
    servers[0].port = ctx.port(41)  # measured on the line protocol
    wait_port(ctx.port(41), servers[0].proc, "coronet chat")
    if not ctx.quick:
        s = ctx.peer("go", "go-chat", ["-listen", f"127.0.0.1:{ctx.port(42)}"], ctx.port(42), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
    counter = iter(range(1 << 30))

    def run(s, silent, secs):
        r = load_client(ctx.bins, "coronet-load-chat",
                        ["--target", f"127.0.0.1:{s.port}", "--clients", clients, "--rate", rate,
                         "--seconds", secs, "--warmup", 1, "--silent", silent, "--size", 200,
                         "--room", f"r{next(counter)}"], server=s)
        return {"rps": r["deliveries_per_second"], "requests": r["delivered"], "p50_ms": r["p50_us"] / 1000,
                "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "p999_ms": r["p999_us"] / 1000,
                "socket_errors": r["connect_errors"] + r["dropped_readers"], "non2xx": r["error_lines"],
                "delivery_ratio": r["delivery_ratio"], "sent": r["sent"], "clients": clients,
                "silent": r["silent"], "rss_kib_after": status_kib(s.proc.pid, "VmRSS"), "command": r["command"],
                "window_ticks": r.get("window_ticks")}

    cases = []
    for s in servers:
        cases.append((f"{clients} clients", s, lambda secs, s=s: run(s, 0, secs)))
        cases.append((f"{clients} clients, 10% silent", s, lambda secs, s=s: run(s, 0.1, secs)))
    return run_cases(ctx, cases, warm=False)


def tls_servers(ctx):
    """coronet-hello, Go's ListenAndServeTLS (GOMAXPROCS=1) and nginx, all on HTTPS with one certificate."""
    servers = [ctx.coronet("hello", ctx.port(50), "--set", "http.max_connections=30000", *ctx.tls_flags())]
    if not ctx.quick:
        s = ctx.peer("go", "go-hello", ["-listen", f"127.0.0.1:{ctx.port(51)}", "-cert", ctx.pki("server.pem"),
                                        "-key", ctx.pki("server.key")], ctx.port(51), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
        servers.append(ctx.nginx(ctx.port(52), tls=True))
    for s in servers:
        status, body = fetch(f"https://localhost:{s.port}/plaintext", cafile=ctx.pki("ca.pem"))
        if status != 200 or body != b"Hello, World!":
            raise Failure(f"{s.name}: https /plaintext answered {status} {body[:80]!r}")
    return servers


def scenario_tls_plaintext(ctx):
    servers = tls_servers(ctx)
    results, checks = run_cases(ctx, [("tls plaintext", s, lambda secs, s=s: wrk(f"https://127.0.0.1:{s.port}/plaintext",
                                                                                secs, 64)) for s in servers])
    count = connection_count(ctx, 10000, 500, "idle connections")
    for s in servers:
        per = idle_rss(s, count, cafile=ctx.pki("ca.pem"))
        print(f"  idle TLS keep-alive      {s.name:8} {per:.0f} B/connection ({count} connections)", flush=True)
        for r in results:
            if r["server"] == s.name:
                r["median"]["idle_tls_bytes_per_connection"] = per
                r["median"]["idle_tls_connections"] = count
    return results, checks


def s_time(port, seconds, reuse):
    """openssl s_time: handshakes for `seconds`, each a new connection: full ones (TLS 1.3), or resumed
    with the first connection's session (TLS 1.2: s_time cannot resume TLS 1.3, as it never reads the
    tickets that arrive after the handshake)."""
    cmd = pinned(LOAD_CORE, ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(seconds)] +
                 (["-reuse", "-tls1_2"] if reuse else ["-new"]))
    out = subprocess.run(cmd, capture_output=True, text=True)
    # "N connections in S real seconds" (the line before it counts user seconds, not time)
    found = re.findall(r"(\d+) connections in (\d+) real seconds", out.stdout)
    if out.returncode != 0 or not found:
        raise Failure(f"openssl s_time failed ({' '.join(cmd)}):\n{out.stdout}{out.stderr}")
    n, secs = int(found[-1][0]), float(found[-1][1])
    # s_time reports no latencies, and counts failed connections as none made.
    return {"rps": n / max(secs, 1e-9), "requests": n, "p50_ms": 0, "p90_ms": 0, "p99_ms": 0, "p999_ms": 0,
            "socket_errors": 0, "non2xx": 0, "command": " ".join(cmd)}


def scenario_tls_handshakes(ctx):
    servers = tls_servers(ctx)
    cases = []
    for s in servers:
        cases.append(("full handshakes, 1.3", s, lambda secs, s=s: s_time(s.port, secs, False)))
        cases.append(("resumed handshakes, 1.2", s, lambda secs, s=s: s_time(s.port, secs, True)))
    return run_cases(ctx, cases)


def scenario_gateway_tls(ctx):
    urls = {}
    for i, role in enumerate(("users", "orders", "recommendations")):
        port = ctx.port(60 + i)
        ctx.coronet("backend", port, "--role", role, "--set", "log.access=false", *ctx.tls_flags(), core=LOAD_CORE)
        urls[role] = f"https://127.0.0.1:{port}"
    gws = [ctx.coronet("gateway", ctx.port(70), "--set", "log.access=false", *ctx.tls_flags(),
                       "--set", f"client.ca_file={ctx.pki('ca.pem')}",
                       *sum((["--set", f"backends.{r}={u}"] for r, u in urls.items()), []))]
    if not ctx.quick:
        g = ctx.peer("go", "go-gateway", ["-listen", f"127.0.0.1:{ctx.port(71)}", "-users", urls["users"],
                                          "-orders", urls["orders"], "-recommendations", urls["recommendations"],
                                          "-ca", ctx.pki("ca.pem"), "-cert", ctx.pki("server.pem"),
                                          "-key", ctx.pki("server.key")], ctx.port(71), {"GOMAXPROCS": "1"})
        gws += [g] if g else []
    checks = []
    for gw in gws:
        checks.append(full_dashboard(gw, f"https://localhost:{gw.port}", "over HTTPS", ctx.pki("ca.pem")))
    results, _ = run_cases(ctx, [("https backends 0 ms", gw,
                                  lambda secs, gw=gw: wrk(f"https://127.0.0.1:{gw.port}", secs, 64, "gateway.lua"))
                                 for gw in gws])
    return results, checks


def h2_check(url, cafile=None, body=b"Hello, World!"):
    """curl over HTTP/2 (h2c with prior knowledge, or h2 by ALPN): the answer and the protocol."""
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_version}"]
    cmd += ["--http2", "--cacert", cafile] if cafile else ["--http2-prior-knowledge"]
    out = subprocess.run(cmd + [url], capture_output=True)
    got, _, version = out.stdout.rpartition(b"\n")
    if out.returncode != 0 or got != body or version != b"2":
        raise Failure(f"{url} over HTTP/2: curl said {out.returncode} {out.stderr[:200]!r}, "
                      f"HTTP/{version.decode(errors='replace')} {got[:80]!r}")


# A request for /plaintext on stream 1, encoded by hand (HPACK, static table):
# :method GET, :scheme http, :path /plaintext, :authority x.
H2_GET = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
          bytes([0, 0, 17, 1, 5, 0, 0, 0, 1]) + b"\x82\x86\x04\x0a/plaintext\x01\x01x")


def scenario_h2c_plaintext(ctx):
    servers = [ctx.coronet("hello", ctx.port(80), "--set", "http.max_connections=30000")]
    if not ctx.quick:
        s = ctx.peer("go", "go-h2-hello", ["-listen", f"127.0.0.1:{ctx.port(81)}"], ctx.port(81), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
        servers.append(ctx.nginx(ctx.port(82), http2=True))
    for s in servers:
        h2_check(f"http://127.0.0.1:{s.port}/plaintext")
    results, checks = run_cases(ctx, [("h2c plaintext", s, lambda secs, s=s: h2load(
        f"http://127.0.0.1:{s.port}/plaintext", secs)) for s in servers])
    checks.append({"check": "every server answers /plaintext over h2c (curl --http2-prior-knowledge)", "ok": True,
                   "detail": ", ".join(s.name for s in servers)})
    count = connection_count(ctx, 10000, 500, "idle connections")
    # beside them, coronet's idle HTTP/1.1 connection, measured the same way in the same run on a
    # fresh instance (one that served a load reuses freed memory and would seem smaller)
    fresh = ctx.coronet("hello", ctx.port(83), "--set", "http.max_connections=30000")
    fresh.name = "coronet-http1"
    http1 = idle_rss(fresh, count)
    print(f"  idle HTTP/1.1 keep-alive coronet  {http1:.0f} B/connection ({count} connections)", flush=True)
    fresh.stop()
    for s in servers:
        # the same: a fresh instance of each, for its idle HTTP/2 connections
        s.stop()
        s.proc = subprocess.Popen(pinned(SERVER_CORE, s.argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  start_new_session=True, env=s.env)
        wait_port(s.port, s.proc, s.name)
        per = idle_rss(s, count, request=H2_GET, what="HTTP/2")
        print(f"  idle HTTP/2              {s.name:8} {per:.0f} B/connection ({count} connections)", flush=True)
        for r in results:
            if r["server"] == s.name:
                r["median"]["idle_h2_bytes_per_connection"] = per
                r["median"]["idle_connections"] = count
                if s is servers[0]:
                    r["median"]["idle_http1_bytes_per_connection"] = http1
    return results, checks


def scenario_h2_tls(ctx):
    servers = [ctx.coronet("hello", ctx.port(85), "--set", "http.max_connections=30000", *ctx.tls_flags())]
    if not ctx.quick:
        s = ctx.peer("go", "go-h2-hello", ["-listen", f"127.0.0.1:{ctx.port(86)}", "-cert", ctx.pki("server.pem"),
                                           "-key", ctx.pki("server.key")], ctx.port(86), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
        servers.append(ctx.nginx(ctx.port(87), tls=True, http2=True))
    for s in servers:
        h2_check(f"https://localhost:{s.port}/plaintext", cafile=ctx.pki("ca.pem"))
    return run_cases(ctx, [("h2 tls plaintext", s, lambda secs, s=s: h2load(
        f"https://127.0.0.1:{s.port}/plaintext", secs)) for s in servers],
        [{"check": "every server answers /plaintext over h2 chosen by ALPN (curl --http2)", "ok": True,
          "detail": ", ".join(s.name for s in servers)}])


def grpc_bodies(directory):
    """Request bodies for the gRPC cases: a SimpleRequest (response_size 10, a 10-byte payload) and a
    StreamingOutputCallRequest (100 responses of 1,000 bytes), length-prefixed, written with protoc's
    Python messages; and a check that a server answers both with grpc-status 0 (python3-grpcio)."""
    proto = os.path.join(ROOT, "apps", "grpc-interop", "proto")
    subprocess.run(["protoc", f"--python_out={directory}", "-I", proto, "empty.proto", "messages.proto"], check=True)
    sys.path.insert(0, directory)
    import messages_pb2 as m
    unary = m.SimpleRequest(response_size=10, payload=m.Payload(body=b"x" * 10))
    stream = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=1000)] * 100)
    files = {}
    for name, message in (("unary", unary), ("stream", stream)):
        data = message.SerializeToString()
        files[name] = os.path.join(directory, f"{name}.bin")
        with open(files[name], "wb") as f:
            f.write(b"\0" + len(data).to_bytes(4, "big") + data)

    def check(port):
        import grpc
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/grpc.testing.TestService/UnaryCall",
                                       request_serializer=m.SimpleRequest.SerializeToString,
                                       response_deserializer=m.SimpleResponse.FromString)
            if len(call(unary, timeout=10).payload.body) != 10:
                raise Failure(f"127.0.0.1:{port}: UnaryCall answered a payload that is not 10 bytes")
            streamed = channel.unary_stream("/grpc.testing.TestService/StreamingOutputCall",
                                            request_serializer=m.StreamingOutputCallRequest.SerializeToString,
                                            response_deserializer=m.StreamingOutputCallResponse.FromString)
            if [len(r.payload.body) for r in streamed(stream, timeout=10)] != [1000] * 100:
                raise Failure(f"127.0.0.1:{port}: StreamingOutputCall did not answer 100 messages of 1,000 bytes")
    return files, check


def scenario_grpc(ctx):
    servers = [ctx.coronet("grpc-interop", ctx.port(90))]
    if not ctx.quick:
        s = ctx.peer("go", "go-grpc", ["-listen", f"127.0.0.1:{ctx.port(91)}"], ctx.port(91), {"GOMAXPROCS": "1"})
        servers += [s] if s else []
    directory = tempfile.mkdtemp(prefix="coronet-grpc-load-")
    files, check = grpc_bodies(directory)
    for s in servers:
        check(s.port)
    headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    cases = [("grpc unary", s, lambda secs, s=s: h2load(
        f"http://127.0.0.1:{s.port}/grpc.testing.TestService/UnaryCall", secs, extra=["-d", files["unary"], *headers]))
        for s in servers]
    cases += [("grpc stream 100x1000", s, lambda secs, s=s: h2load(
        f"http://127.0.0.1:{s.port}/grpc.testing.TestService/StreamingOutputCall", secs, 16, 4,
        extra=["-d", files["stream"], *headers])) for s in servers]
    return run_cases(ctx, cases, [{"check": "every server answers UnaryCall and StreamingOutputCall with status OK "
                                            "(python3-grpcio)", "ok": True,
                                   "detail": ", ".join(s.name for s in servers)}])


def connections_to(pid, port):
    """Established TCP connections from process `pid` to 127.0.0.1:`port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
                count += 1
    return count


def scenario_gateway_h2c(ctx):
    urls, ports = {}, []
    for i, role in enumerate(("users", "orders", "recommendations")):
        port = ctx.port(90 + i)
        ctx.coronet("backend", port, "--role", role, "--set", "log.access=false", core=LOAD_CORE)
        urls[role], ports = f"http://127.0.0.1:{port}", ports + [port]
    backends = sum((["--set", f"backends.{r}={u}"] for r, u in urls.items()), [])
    gws = []
    for mode, offset in (("off", 95), ("prior_knowledge", 96)):
        gw = ctx.coronet("gateway", ctx.port(offset), "--set", "log.access=false", "--set", f"client.http2={mode}",
                         *backends)
        gw.name = "gw-http1" if mode == "off" else "gw-h2c"
        gws.append(gw)
    checks = []
    for gw in gws:
        checks.append(full_dashboard(gw, f"http://127.0.0.1:{gw.port}"))

    def run(gw, secs):
        r = wrk(f"http://127.0.0.1:{gw.port}", secs, 64, "gateway.lua")
        held = [connections_to(gw.proc.pid, p) for p in ports]
        r["backend_connections"] = sum(held) / len(held)  # per backend, as the pool holds them after the run
        return r

    results, _ = run_cases(ctx, [("backends 0 ms", gw, lambda secs, gw=gw: run(gw, secs)) for gw in gws])
    for r in results:
        print(f"  {r['server']:8} holds {r['median']['backend_connections']:.0f} connections to each backend",
              flush=True)
    return results, checks


# --- the run ----------------------------------------------------------------------


# --- chaos: calls between services under injected faults ------------------------------

CHAOS_ROLES = ("users", "orders", "recommendations")
# (case, what breaks): "flags" start a replica with extra flags, "kill" kills one a third of the way in
# and starts it again at two thirds, "blackhole" drops the packets to one from a third of the way in,
# "down" stops every replica of a service before the run.
CHAOS_CASES = [
    ("no fault", {}),
    ("orders replica killed mid-run", {"kill": ("orders", 1)}),
    ("orders replica slow: 10% +300 ms", {"flags": {("orders", 1): ["--set", "backend.slow_rate=0.1",
                                                                     "--set", "backend.slow_ms=300"]}}),
    ("users replica: 503 to half", {"flags": {("users", 1): ["--set", "backend.error_rate=0.5",
                                                              "--set", "backend.error_status=503"]}}),
    ("orders replica black-holed", {"blackhole": ("orders", 1)}),
    ("recommendations all down", {"down": "recommendations"}),
]


def wrk_chaos(url, seconds, connections):
    """wrk with chaos.lua: the usual figures plus full, partial and failed dashboards."""
    cmd = pinned(LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=5s", "-s", "chaos.lua", url])
    out = subprocess.run(cmd, cwd=WRK_DIR, capture_output=True, text=True)
    m = re.search(r"^JSON (\{.*\})$", out.stdout, re.M)
    c = re.search(r"^CHAOS (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m or not c:
        raise Failure(f"wrk failed ({' '.join(cmd)}):\n{out.stdout}{out.stderr}")
    r, counts = json.loads(m.group(1)), json.loads(c.group(1))
    total = max(counts["full"] + counts["partial"] + counts["failed"], 1)
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "requests": r["requests"],
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "p999_ms": r["p999_us"] / 1000,
            "full_pct": 100 * counts["full"] / total, "partial_pct": 100 * counts["partial"] / total,
            "failed_pct": 100 * counts["failed"] / total, "dashboards": total,
            "socket_errors": r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
            "non2xx_answers": r["non2xx"], "command": " ".join(cmd)}  # 502s are an outcome here, not an error


class Blackhole:
    """Drops every packet to a port (iptables on loopback). Where iptables cannot, the replica is
    stopped and a listener that never accepts takes its port, its backlog filled, so that further
    SYNs are dropped too: the fault-proxy fallback."""

    def __init__(self, port, replica):
        self.port, self.rule, self.holder = port, None, []
        rule = ["-p", "tcp", "-i", "lo", "--dport", str(port), "-j", "DROP"]
        if shutil.which("iptables") and subprocess.run(["iptables", "-w", "-I", "INPUT"] + rule,
                                                       capture_output=True).returncode == 0:
            self.rule, self.how = rule, "iptables DROP"
            return
        replica.stop()
        hole = socket.socket()
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", port))
        hole.listen(0)
        self.holder.append(hole)
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.holder.append(s)
        self.how = "a listener that never accepts"

    def close(self):
        if self.rule:
            subprocess.run(["iptables", "-w", "-D", "INPUT"] + self.rule, capture_output=True)
        for s in self.holder:
            s.close()


def counter_sum(port, name):
    """The sum of a counter family's series on a coronet server's /metrics (0 when unreachable)."""
    try:
        _, body = fetch(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def scenario_chaos(ctx):
    seconds = 3 if ctx.quick else max(ctx.seconds, 9)
    connections = 16
    results, checks = [], []
    gateways = [("coronet", None)] + ([] if ctx.quick else [("go", "go-gateway")])
    for case, fault in CHAOS_CASES:
        for gw_name, peer_binary in gateways:
            ctx.procs.stop_all()
            replicas = {}
            for i, role in enumerate(CHAOS_ROLES):
                for k in range(2):
                    port = ctx.port(40 + 2 * i + k)
                    flags = fault.get("flags", {}).get((role, k), [])
                    replicas[(role, k)] = (port, ctx.coronet("backend", port, "--role", role, "--set",
                                                             "log.access=false", "--set", "backend.latency_ms=1",
                                                             *flags, core=LOAD_CORE))
            urls = {role: ",".join(f"http://127.0.0.1:{replicas[(role, k)][0]}" for k in range(2))
                    for role in CHAOS_ROLES}
            port = ctx.port(50)
            if gw_name == "coronet":
                gw = ctx.coronet("gateway", port, "--set", "log.access=false", "--set", "log.level=error",
                                 *sum((["--set", f"backends.{r}={u}"] for r, u in urls.items()), []))
            else:
                gw = ctx.peer("go", peer_binary, ["-listen", f"127.0.0.1:{port}", "-users", urls["users"],
                                                  "-orders", urls["orders"], "-recommendations",
                                                  urls["recommendations"]], port, {"GOMAXPROCS": "1"})
                if not gw:
                    continue
            base = f"http://127.0.0.1:{port}"
            wrk_chaos(base, 1, connections)  # warm: connections pooled on both sides
            if "down" in fault:
                for k in range(2):
                    replicas[(fault["down"], k)][1].stop()
            calls = lambda: (counter_sum(port, "coronet_http_client_attempts_total") if gw_name == "coronet"
                             else float(fetch(f"{base}/calls")[1]))
            calls_before, rss_before = calls(), status_kib(gw.proc.pid, "VmRSS")
            timers, hole = [], []
            if "kill" in fault:
                role, k = fault["kill"]
                p, victim = replicas[(role, k)]

                def kill(victim=victim):
                    os.killpg(victim.proc.pid, signal.SIGKILL)

                def restart(role=role, p=p):
                    victim.proc.wait()
                    ctx.coronet("backend", p, "--role", role, "--set", "log.access=false",
                                "--set", "backend.latency_ms=1", core=LOAD_CORE)

                timers = [threading.Timer(seconds / 3, kill), threading.Timer(2 * seconds / 3, restart)]
            if "blackhole" in fault:
                p, victim = replicas[fault["blackhole"]]
                timers = [threading.Timer(seconds / 3, lambda p=p, victim=victim: hole.append(Blackhole(p, victim)))]
            for t in timers:
                t.start()
            try:
                r = measured(gw, lambda: wrk_chaos(base, seconds, connections))
            finally:
                for t in timers:
                    t.join()
                for h in hole:
                    h.close()
            r["upstream_calls_per_dashboard"] = (calls() - calls_before) / max(r["requests"], 1)
            r["amplification"] = r["upstream_calls_per_dashboard"] / 3
            r["rss_growth_kib"] = status_kib(gw.proc.pid, "VmRSS") - rss_before
            if hole:
                r["blackhole"] = hole[0].how
            print(f"  {case:34} {gw_name:8}: {r['rps']:>7.0f}/s full {r['full_pct']:6.2f}% partial "
                  f"{r['partial_pct']:6.2f}% failed {r['failed_pct']:5.2f}%  p99 {r['p99_ms']:.1f} ms  "
                  f"calls/dashboard {r['upstream_calls_per_dashboard']:.3f}  errors {r['socket_errors']}", flush=True)
            results.append({"case": case, "server": gw_name, "median": {k: v for k, v in r.items()
                                                                         if isinstance(v, (int, float))},
                            "runs": [r]})
    if ctx.quick:
        # Correctness under faults, not speed: the answers a caller gets.
        by = {r["case"]: r["median"] for r in results}
        for case, want in (("no fault", 99.0), ("orders replica killed mid-run", 99.0),
                           ("users replica: 503 to half", 95.0)):
            ok = by[case]["full_pct"] >= want
            checks.append({"check": f"chaos {case}: at least {want}% full dashboards", "ok": ok,
                           "detail": f"{by[case]['full_pct']:.2f}%"})
            if not ok:
                raise Failure(f"chaos {case}: only {by[case]['full_pct']:.2f}% full dashboards (want {want}%)")
        down = by["recommendations all down"]
        ok = down["partial_pct"] >= 99.0 and down["amplification"] <= 1.3
        checks.append({"check": "chaos: with a service down, answers stay partial and amplification ≤ 1.3",
                       "ok": ok, "detail": f"{down['partial_pct']:.2f}% partial, {down['amplification']:.2f} ×"})
        if not ok:
            raise Failure(f"chaos recommendations all down: {down['partial_pct']:.2f}% partial, amplification "
                          f"{down['amplification']:.2f}")
    return results, checks

def versions(peer_bins):
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    return {"coronet": first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
            "compiler": first_line(["c++", "--version"]),
            "go": first_line(["go", "version"]) if peer_bins else None,
            "nginx": first_line(["nginx", "-v"]) if shutil.which("nginx") else None,
            "wrk": first_line(["wrk", "-v"])}


def machine():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(l for l in f if l.startswith("MemTotal:")).split()[1]) // 1024
    except (OSError, StopIteration):
        pass
    return {"cores": CORES, "cpu": model or platform.processor(), "memory_mib": mem, "kernel": platform.release(),
            "server_core": SERVER_CORE, "load_core": LOAD_CORE}


def quick_checks(results):
    """--quick: correctness only."""
    failures = []
    for r in results:
        m = r["median"]
        if m.get("socket_errors", 0) or m.get("non2xx", 0):
            failures.append(f"{r['case']} / {r['server']}: {m.get('socket_errors', 0):.0f} socket errors, "
                            f"{m.get('non2xx', 0):.0f} non-2xx (or invalid replies)")
        if m.get("requests", 0) <= 0:
            failures.append(f"{r['case']} / {r['server']}: nothing was served")
        if "delivery_ratio" in m and m["delivery_ratio"] < 0.999:
            failures.append(f"{r['case']} / {r['server']}: only {m['delivery_ratio']:.4f} of the messages delivered")
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenarios", nargs="*")
    p.add_argument("--list", action="store_true", help="print the scenario names and exit")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--port-base", type=int, default=18000)
    p.add_argument("--bin")
    p.add_argument("--baseline", help="a folder with coronet-hello as built before a change: plaintext, json and "
                                      "pipelined run it beside the current build, as 'before'")
    p.add_argument("--peer", action="append", default=[], help="NAME=PATH of a built peer")
    p.add_argument("--skipped-peer", action="append", default=[], help="NAME=REASON of a peer that did not build")
    p.add_argument("--out", default=os.path.join(ROOT, "loadtest", "results"))
    p.add_argument("--command", default="loadtest/run.sh")
    args = p.parse_args()
    if args.list:
        print(" ".join(SCENARIOS))
        return 0
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"run.sh: unknown scenario {', '.join(unknown)}; the scenarios are: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    if args.quick:
        args.seconds = min(args.seconds, 2)
    # Every connection a scenario opens takes a descriptor here or in a child: the soft limit up to
    # the hard one, as run.sh does.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    peer_bins = dict(kv.split("=", 1) for kv in args.peer)
    skipped_peers = dict(kv.split("=", 1) for kv in args.skipped_peer)
    procs = Processes(args.port_base)

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    os.makedirs(args.out, exist_ok=True)
    failures = []
    try:
        for name in names:
            logdir = tempfile.mkdtemp(prefix=f"coronet-load-{name}-")
            ctx = Context(args, procs, args.bin, peer_bins, skipped_peers, logdir)
            print(f"== {name}: {SCENARIOS[name]}" + (" (quick: coronet only)" if args.quick else ""), flush=True)
            try:
                results, checks = globals()["scenario_" + name.replace("-", "_")](ctx)
            except Failure as e:
                procs.stop_all()
                raise Failure(f"{name}: {e}\n(server logs in {logdir})")
            finally:
                procs.stop_all()
            shutil.rmtree(logdir, ignore_errors=True)
            doc = {"scenario": name, "description": SCENARIOS[name], "quick": args.quick,
                   "command": args.command, "seconds": args.seconds, "repetitions": ctx.reps,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                   "versions": versions(peer_bins), "skipped": ctx.skipped, "checks": checks, "results": results}
            if args.quick:
                bad = quick_checks(results)
                doc["quick_failures"] = bad
                failures += [f"{name}: {b}" for b in bad]
                print(f"   {'ok' if not bad else 'FAILED: ' + '; '.join(bad)}", flush=True)
            for peer, why in ctx.skipped.items():
                print(f"   skipped {peer}: {why}", flush=True)
            path = os.path.join(args.out, f"{name}{'-quick' if args.quick else ''}.json")
            with open(path, "w") as f:
                json.dump(doc, f, indent=2)
    except Failure as e:
        print(f"run.sh: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run.sh: interrupted; every server it started is stopped", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    if failures:
        print("run.sh --quick: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
