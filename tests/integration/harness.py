"""What the integration tests share: the build's paths, a free port, the
test PKI, a real coronet app on loopback, and the entry point.

Every test script is run as

    SCRIPT.py BIN_DIR SOURCE_DIR TEST     (one ctest per TEST; `list` names them)

and ends with `harness.main(globals())`.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
SOURCE_DIR = sys.argv[2] if len(sys.argv) > 2 else "."
TIMEOUT = 10
_pki = None


def free_port():
    """A port free now. Another test may take it before the app binds it:
    App(retries=...) starts again on another one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_ports(pid):
    """The TCP ports on which process `pid` holds a listening socket (Linux:
    /proc/net/tcp's LISTEN rows whose inode is one of the process's fds)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def pki(name):
    """A file of the test PKI (scripts/make-certs.sh: ca.pem, server.pem/key,
    client.pem/key...), made once per process in a temporary directory."""
    global _pki
    if _pki is None:
        _pki = tempfile.mkdtemp(prefix="coronet-test-pki-")
        subprocess.run([os.path.join(SOURCE_DIR, "scripts/make-certs.sh"), _pki], check=True,
                       stdout=subprocess.DEVNULL)
    return os.path.join(_pki, name)


class App:
    """A coronet app on loopback:

        coronet-NAME --listen 127.0.0.1:PORT --threads THREADS [--set S]... [EXTRA]...

    Its output is kept. Launched at once; waited for unless start=False (then
    started() waits, or the test reads how it failed to start).
    Ready when `listening` lines saying "listening on" have been logged, or,
    with ready="listen", when the app's own process holds a listening socket
    on each of its ports (for --log-level warn: a bare connect could reach
    whoever else took the port). A port taken by someone else between
    free_port() and the bind (exit 2, "address in use") is tried again on new
    ports up to `retries` times;
    `ports` names the extra ports to pick afresh each time (set as --set
    KEY=127.0.0.1:PORT, readable as app.ports[KEY]).
    """

    def __init__(self, name, *sets, threads=2, port=None, tls=False, extra=(), start=True, listening=1,
                 ready="log", timeout=TIMEOUT, ports=(), retries=3):
        self.name, self.sets, self.threads, self.tls, self.extra = name, sets, threads, tls, extra
        self.listening, self.ready, self.timeout, self.port_keys = listening, ready, timeout, ports
        self.retries = retries if port is None else 0
        self.fixed_port = port
        self._launch()
        if start:
            self.started()

    def _launch(self):
        self.port = self.fixed_port or free_port()
        self.ports = {key: free_port() for key in self.port_keys}
        argv = [os.path.join(BIN_DIR, self.name), "--listen", f"127.0.0.1:{self.port}", "--threads",
                str(self.threads), *self.extra]
        if self.tls:
            argv += ["--set", f"tls.cert_file={pki('server.pem')}", "--set", f"tls.key_file={pki('server.key')}"]
        for key, port in self.ports.items():
            argv += ["--set", f"{key}=127.0.0.1:{port}"]
        for s in self.sets:
            argv += ["--set", s]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def _is_ready(self):
        if self.ready == "listen":
            owned = listening_ports(self.proc.pid)
            return all(port in owned for port in (self.port, *self.ports.values()))
        return self.output().count("listening on") >= self.listening

    def started(self):
        for attempt in range(self.retries + 1):
            if attempt > 0:
                self._launch()
            deadline = time.time() + self.timeout
            while self.proc.poll() is None and not self._is_ready():
                assert time.time() < deadline, f"{self.name} did not start:\n{self.output()}"
                time.sleep(0.02)
            if self.proc.poll() is None:
                return self
            if "address in use" not in self.output() or attempt == self.retries:
                raise AssertionError(f"{self.name} exited at start:\n{self.output()}")
            self.proc.wait()
        return self

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def signal(self, signo):
        if self.proc.poll() is None:
            self.proc.send_signal(signo)

    def wait(self, timeout=None):
        """The exit status; the app is killed (and the test fails) if it has
        not exited in time."""
        timeout = timeout or self.timeout
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout} s:\n{self.output()[-3000:]}")

    def stop(self):
        """SIGTERM, and the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def metric(self, name, **labels):
        """A sample of /metrics (0 when absent)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=TIMEOUT).read().decode()
        for line in text.splitlines():
            if (line.startswith(name + "{") or line.startswith(name + " ")) and \
                    all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def main(scope, done=lambda which: f"{which}: ok"):
    """Runs the test named by argv[3] among scope's test_* functions."""
    tests = {name[len("test_"):]: f for name, f in scope.items() if name.startswith("test_")}
    which = sys.argv[3] if len(sys.argv) > 3 else "list"
    if which == "list":
        print("\n".join(tests))
        sys.exit(0)
    try:
        tests[which]()
    finally:
        if _pki:
            shutil.rmtree(_pki, ignore_errors=True)
    print(done(which))
