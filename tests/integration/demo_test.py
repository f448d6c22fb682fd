#!/usr/bin/env python3
"""scripts/run.sh as a user meets it: the demo starts, a backend is killed,
the dashboard answers partially and the script says so and what to try,
SIGUSR1 brings the backend back, Ctrl-C stops everything with status 0.
The demo listens on its fixed ports 8080-8083."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import harness
from harness import BIN_DIR, SOURCE_DIR

DASHBOARD = "http://127.0.0.1:8080/api/users/1/dashboard"


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Demo:
    def __init__(self):
        env = {**os.environ, "CORONET_DEMO_BIN": os.path.abspath(BIN_DIR)}
        self.proc = subprocess.Popen([os.path.join(SOURCE_DIR, "scripts/run.sh")], cwd=SOURCE_DIR, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"run.sh never said {text!r}:\n{''.join(self.seen)}")


def pid_of_backend(role, parent):
    """The demo's backend for `role`: a child of run.sh (`parent`), never another test's backend with
    the same role running beside it."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the fields after "(comm)": state ppid ...
        if ppid == parent and argv[0].endswith(b"coronet-backend") and b"--role" in argv and role.encode() in argv:
            return int(pid)
    return None


def listening(port):
    try:
        import socket
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_killed_backend_leaves_a_partial_dashboard_and_comes_back():
    demo = Demo()
    try:
        demo.wait_for("demo is up")
        status, body = get(DASHBOARD)
        assert status == 200 and json.loads(body)["partial"] is False, body

        orders = pid_of_backend("orders", demo.proc.pid)
        assert orders, "no orders backend running"
        os.kill(orders, signal.SIGKILL)
        line = demo.wait_for(f"orders (pid {orders}) exited")
        assert "killed by SIGKILL" in line, line
        demo.wait_for("kill -USR1")  # how to bring it back

        status, body = get(DASHBOARD)
        doc = json.loads(body)
        assert status == 200 and doc["partial"] is True and doc["orders"] is None, body
        assert any("orders" in e for e in map(json.dumps, doc["errors"])), body
        status, metrics = get("http://127.0.0.1:8080/metrics")
        assert status == 200 and "coronet_http_client_requests_total" in metrics

        os.kill(demo.proc.pid, signal.SIGUSR1)
        demo.wait_for("orders is back")
        deadline, doc = time.time() + 30, None
        while time.time() < deadline:  # the gateway may keep the replica ejected for a while
            doc = json.loads(get(DASHBOARD)[1])
            if doc["partial"] is False:
                break
            time.sleep(0.2)
        assert doc and doc["partial"] is False, doc

        os.kill(demo.proc.pid, signal.SIGINT)  # Ctrl-C
        assert demo.proc.wait(timeout=30) == 0
        demo.wait_for("demo stopped")
        for port in (8080, 8081, 8082, 8083):
            assert not listening(port), f"something still listens on {port}"
    finally:
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    harness.main(globals())
