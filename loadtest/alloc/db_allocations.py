#!/usr/bin/env python3
"""Heap allocations per request of coronet-techempower on a real PostgreSQL,
libpq's own included: the process runs with count_malloc.so preloaded, one
keep-alive connection sends each route's requests one at a time (after a
warm-up), and the count is read before and after.

    loadtest/alloc/db_allocations.py [BIN_DIR] [N]      (build-release/bin, 1000)

Prints a Markdown table (loadtest/RESULTS.md, "db")."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-release/bin")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
ROUTES = ["/plaintext", "/db", "/queries?queries=20", "/fortunes", "/updates?queries=20", "/cached-queries?count=20"]


def request(sock, path, buf):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            length = int(re.search(rb"Content-Length: (\d+)", data[:end], re.I).group(1))
            if len(data) >= end + 4 + length:
                assert data.startswith(b"HTTP/1.1 200"), data[:200]
                return
        n = sock.recv_into(buf)
        assert n > 0, "connection closed"
        data += bytes(buf[:n])


def main():
    work = tempfile.mkdtemp(prefix="coronet-alloc-")
    so = os.path.join(work, "count_malloc.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", so, os.path.join(ROOT, "loadtest/alloc/count_malloc.c")],
                   check=True)
    url = subprocess.run([os.path.join(ROOT, "scripts/pg-server.sh"), "start", os.path.join(work, "pg")],
                         check=True, capture_output=True, text=True).stdout.strip()
    app = None
    try:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-f",
                        os.path.join(ROOT, "apps/techempower/create.sql")], check=True, capture_output=True)
        app = subprocess.Popen([os.path.join(BIN, "coronet-techempower"), "--listen", "127.0.0.1:0", "--threads", "1",
                                "--set", f"pg.url={url}", "--set", "log.access=false"],
                               env={**os.environ, "LD_PRELOAD": so}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        lines, port = [], None
        for line in app.stdout:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "coronet-techempower did not start"
        counts = []
        cond = threading.Condition()

        def read():
            for line in app.stdout:
                m = re.match(r"allocations (\d+)", line)
                if m:
                    with cond:
                        counts.append(int(m.group(1)))
                        cond.notify_all()
        threading.Thread(target=read, daemon=True).start()

        def count():
            with cond:
                before = len(counts)
                app.send_signal(signal.SIGUSR2)
                assert cond.wait_for(lambda: len(counts) > before, timeout=10)
                return counts[-1]

        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(1 << 20)
        print("| request (keep-alive, one at a time, after 500 to warm up) | allocations | per request |")
        print("|---|---:|---:|")
        for path in ROUTES:
            for _ in range(500):
                request(sock, path, buf)
            a = count()
            for _ in range(N):
                request(sock, path, buf)
            b = count()
            print(f"| GET {path} | {b - a} in {N} | {(b - a) / N:.2f} |", flush=True)
    finally:
        if app:
            app.terminate()
            app.wait()
        subprocess.run([os.path.join(ROOT, "scripts/pg-server.sh"), "stop", os.path.join(work, "pg")])
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
