#!/usr/bin/env python3
"""The soak: coronet's apps under steady mixed load for N minutes, watched.

Called by loadtest/soak.sh (which sets up and builds). Starts hello (plain
and TLS), the gateway with its three backends, and the chat; then, for the
whole run, wrk on hello's /plaintext and /json, on hello over HTTPS and on
the gateway's dashboard; the chat load client (TCP) and WebSocket clients
coming and going; clients that disconnect before their answer every second;
SIGHUP (certificate reload) to the TLS hello every minute. Every 10 s it
samples each server's RSS, open file descriptors, tasks alive and open
connections, and fails when, after the warm-up, RSS grows past 5 % (1 MiB at
least) of what it was at the warm-up's end; when, once the load has stopped,
descriptors, tasks or connections are not back to what they were idle
before it; or on any socket error or non-2xx answer. Writes
loadtest/results/soak.json and the curves as loadtest/charts/soak-*.svg.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402  (the suite's process and wrk helpers)

ROOT = suite.ROOT


def metric(port, name):
    if port is None:
        return None
    try:
        _, body = suite.fetch(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sample(servers):
    row = {"t": time.time()}
    for name, (server, metrics_port) in servers.items():
        row[name] = {"rss_kib": suite.status_kib(server.proc.pid, "VmRSS"), "fds": fds(server.proc.pid),
                     "tasks": metric(metrics_port, "coronet_tasks_alive"),
                     "connections": metric(metrics_port, "coronet_tcp_connections_open")}
    return row


def disconnecting_clients(port, stop, counts):
    """Every second, a client that asks for a dashboard and leaves before the answer."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /api/users/3/dashboard HTTP/1.1\r\nHost: x\r\n\r\n")
            counts["disconnects"] += 1
        except OSError:
            counts["errors"] += 1
        stop.wait(1)


def websocket_clients(port, stop, counts):
    """WebSocket chat clients coming and going (RFC 6455 by hand: no library needed): each
    upgrades, says something in the room, reads what comes back, and leaves with a close frame."""
    import base64

    def frame(opcode, payload):
        mask = os.urandom(4)
        head = bytes([0x80 | opcode, 0x80 | len(payload)]) + mask  # payloads here are < 126 bytes
        return head + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    i = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
                got = b""
                while b"\r\n\r\n" not in got:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("closed during the upgrade")
                    got += chunk
                if not got.startswith(b"HTTP/1.1 101"):
                    raise OSError(f"no upgrade: {got[:60]!r}")
                s.sendall(frame(0x1, f"hello from soak {i}".encode()))
                s.recv(4096)  # what the room says back
                s.sendall(frame(0x8, b"\x03\xe8"))  # close, 1000
            counts["websockets"] += 1
        except OSError as e:
            counts["errors"] += 1
            counts["last_error"] = repr(e)
        i += 1
        stop.wait(0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--bin", required=True)
    p.add_argument("--port-base", type=int, default=18200)
    p.add_argument("--out", default=os.path.join(ROOT, "loadtest", "results"))
    p.add_argument("--command", default="loadtest/soak.sh")
    args = p.parse_args()
    seconds = int(args.minutes * 60)
    warmup = min(120, max(20, seconds // 10))
    procs = suite.Processes(args.port_base)
    logdir = suite.tempfile.mkdtemp(prefix="coronet-soak-")
    ctx_args = argparse.Namespace(quick=False, seconds=10, repetitions=1, baseline=None)
    ctx = suite.Context(ctx_args, procs, args.bin, {}, {}, logdir)
    port = ctx.port
    failures = []
    try:
        hello = ctx.coronet("hello", port(0), "--set", "log.access=false")
        hello_tls = ctx.server("hello-tls", [os.path.join(args.bin, "coronet-hello"), "--threads", "1", "--log-level",
                                             "warn", "--listen", f"127.0.0.1:{port(1)}", "--set", "log.access=false",
                                             *ctx.tls_flags()], port(1))
        for i, role in enumerate(("users", "orders", "recommendations")):
            ctx.coronet("backend", port(10 + i), "--role", role, "--set", "log.access=false",
                        "--set", "backend.latency_ms=1", core=suite.LOAD_CORE)
        # Pooled backend connections close after 5 s idle, so "back to idle" can be seen soon after the load.
        gateway = ctx.coronet("gateway", port(20), "--set", "log.access=false", "--set", "client.idle_timeout_ms=5000",
                              *sum((["--set", f"backends.{r}=http://127.0.0.1:{port(10 + i)}"]
                                    for i, r in enumerate(("users", "orders", "recommendations"))), []))
        chat = ctx.coronet("chat", port(30), "--set", f"chat.tcp_listen=127.0.0.1:{port(31)}",
                           "--set", "log.access=false")
        suite.wait_port(port(31), chat.proc, "coronet chat")
        # hello-tls serves /metrics over HTTPS only; its RSS and descriptors are watched all the same.
        servers = {"hello": (hello, port(0)), "gateway": (gateway, port(20)), "chat": (chat, port(30)),
                   "hello-tls": (hello_tls, None)}
        idle = sample(servers)
        print(f"soak: {args.minutes:g} min, warm-up {warmup} s; idle: " +
              ", ".join(f"{n} {v['rss_kib'] / 1024:.1f} MiB {v['fds']} fds" for n, v in idle.items() if n != "t"),
              flush=True)

        loads = []

        def wrk(name, url, connections, script):
            cmd = suite.pinned(suite.LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, url])
            loads.append((name, subprocess.Popen(cmd, cwd=suite.WRK_DIR, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True)))

        wrk("hello /plaintext", f"http://127.0.0.1:{port(0)}/plaintext", 8, "plain.lua")
        wrk("hello /json", f"http://127.0.0.1:{port(0)}/json", 4, "plain.lua")
        wrk("hello over TLS", f"https://127.0.0.1:{port(1)}/plaintext", 4, "plain.lua")
        wrk("gateway dashboard", f"http://127.0.0.1:{port(20)}", 8, "gateway.lua")
        chat_load = subprocess.Popen(suite.pinned(suite.LOAD_CORE, [
            os.path.join(args.bin, "coronet-load-chat"), "--target", f"127.0.0.1:{port(31)}", "--clients", "200",
            "--rate", "50", "--seconds", str(seconds), "--warmup", "0", "--size", "100"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stop = threading.Event()
        counts = {"disconnects": 0, "websockets": 0, "errors": 0, "reloads": 0}
        helpers = [threading.Thread(target=disconnecting_clients, args=(port(20), stop, counts), daemon=True),
                   threading.Thread(target=websocket_clients, args=(port(30), stop, counts), daemon=True)]
        for h in helpers:
            h.start()

        rows = []
        start = time.time()
        next_reload = start + 60
        while time.time() - start < seconds:
            time.sleep(min(10, max(0.0, seconds - (time.time() - start))))
            if time.time() >= next_reload:
                os.kill(hello_tls.proc.pid, signal.SIGHUP)
                counts["reloads"] += 1
                next_reload += 60
            row = sample(servers)
            row["elapsed_s"] = round(row["t"] - start)
            rows.append(row)
            print(f"  {row['elapsed_s']:>5} s  " + "  ".join(
                f"{n} {v['rss_kib'] / 1024:.1f} MiB/{v['fds']} fds/{v['tasks'] if v['tasks'] is not None else '-'} "
                f"tasks" for n, v in row.items() if isinstance(v, dict)), flush=True)
        stop.set()
        results = {}
        for name, proc in loads:
            out, _ = proc.communicate(timeout=60)
            m = suite.re.search(r"^JSON (\{.*\})$", out, suite.re.M)
            r = json.loads(m.group(1)) if m else {}
            errors = sum(r.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
            results[name] = {"requests": r.get("requests"), "socket_errors": errors, "non2xx": r.get("non2xx"),
                             "p99_ms": r.get("p99_us", 0) / 1000}
            if not m or errors or r.get("non2xx"):
                failures.append(f"{name}: {errors} socket errors, {r.get('non2xx')} non-2xx"
                                + ("" if m else f" (wrk said: {out[-300:]})"))
        chat_out, _ = chat_load.communicate(timeout=120)
        lines = [l for l in chat_out.splitlines() if l.startswith("{")]
        chat_result = json.loads(lines[-1]) if lines else {}
        results["chat"] = {k: chat_result.get(k) for k in ("sent", "delivered", "delivery_ratio", "connect_errors",
                                                             "error_lines")}
        if not lines or chat_result.get("connect_errors") or chat_result.get("error_lines"):
            failures.append(f"chat load: {chat_out[-300:]}")
        for h in helpers:
            h.join(timeout=10)
        if counts["errors"]:
            failures.append(f"{counts['errors']} errors in the disconnecting and WebSocket clients "
                            f"({counts.get('last_error', '')})")

        # Growth after the warm-up.
        settled = [r for r in rows if r["elapsed_s"] >= warmup]
        base = next((r for r in rows if r["elapsed_s"] >= warmup), rows[-1] if rows else None)
        bounds = {}
        for name in servers:
            if not base or not settled:
                break
            b = base[name]["rss_kib"]
            peak = max(r[name]["rss_kib"] for r in settled)
            limit = b + max(b * 0.05, 1024)
            bounds[name] = {"rss_kib_at_warmup_end": b, "rss_kib_peak_after": peak, "rss_kib_limit": limit}
            if peak > limit:
                failures.append(f"{name}: RSS grew from {b / 1024:.1f} to {peak / 1024:.1f} MiB after the warm-up "
                                f"(limit {limit / 1024:.1f} MiB)")
        # Back to idle once the load has stopped.
        back = None
        for _ in range(40):
            time.sleep(1)
            back = sample(servers)
            if all(back[n]["fds"] <= idle[n]["fds"] and (back[n]["tasks"] or 0) <= (idle[n]["tasks"] or 0)
                   for n in servers):
                break
        for n in servers:
            for key in ("fds", "tasks", "connections"):
                if back[n][key] is not None and idle[n][key] is not None and back[n][key] > idle[n][key]:
                    failures.append(f"{n}: {key} {back[n][key]:.0f} once idle again, {idle[n][key]:.0f} before the load")

        doc = {"scenario": "soak", "minutes": args.minutes, "warmup_s": warmup, "command": args.command,
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": suite.machine(), "idle_before": idle,
               "idle_after": back, "samples": rows, "load": results, "events": counts, "bounds": bounds,
               "failures": failures}
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "soak.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"soak: wrote {os.path.relpath(path, ROOT)}; {counts['disconnects']} early disconnects, "
              f"{counts['websockets']} WebSocket sessions, {counts['reloads']} reloads", flush=True)
    finally:
        procs.stop_all()
    if failures:
        print("soak: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("soak: ok (flat after the warm-up, back to idle after the load, no errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
