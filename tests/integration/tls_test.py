#!/usr/bin/python3
"""TLS in and out with clients that are not ours: curl, Python's ssl,
`openssl s_client`, Python's websockets over wss://, and the gateway calling
HTTPS backends. Certificates come from scripts/make-certs.sh.

    tls_test.py BIN_DIR SOURCE_DIR TEST     (one ctest per TEST; `list` names them)
"""
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import harness
from harness import BIN_DIR, SOURCE_DIR, TIMEOUT, pki


_copies = itertools.count()


def App(name, *sets, tls=True, port=None, extra=(), ports=(), listening=1):
    """An app (harness.App, waited for with started()); `tls` serves a copy
    of the test certificate (app.cert, app.key) that a test may replace."""
    cert = key = None
    if tls:
        copy = next(_copies)
        cert, key = pki(f"live-{copy}.pem"), pki(f"live-{copy}.key")
        shutil.copy(pki("server.pem"), cert)
        shutil.copy(pki("server.key"), key)
        sets = (f"tls.cert_file={cert}", f"tls.key_file={key}") + sets
    app = harness.App(name, *sets, port=port, extra=extra, start=False, ports=ports,
                      listening=listening)
    app.cert, app.key = cert, key
    return app


def context(cafile="ca.pem", cert=None):
    ctx = ssl.create_default_context(cafile=pki(cafile))
    if cert:
        ctx.load_cert_chain(pki(cert + ".pem"), pki(cert + ".key"))
    return ctx


def tls_socket(port, ctx=None, name="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return (ctx or context()).wrap_socket(raw, server_hostname=name)


def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), *args], capture_output=True, text=True)


def s_client(port, *args):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                           "-CAfile", pki("ca.pem"), *args], input="", capture_output=True, text=True,
                          errors="replace", timeout=TIMEOUT)  # an h2 server's SETTINGS frame is binary


def serial_of(sock):
    der = sock.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def metric(port, name, labels):
    body = urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context(), timeout=TIMEOUT).read()
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.split()[-1])
    return 0.0


# --- tests -----------------------------------------------------------------

def test_curl_and_python_over_https():
    with App("coronet-hello").started() as app:
        base = f"https://localhost:{app.port}"
        r = curl("-v", "--http1.1", "--cacert", pki("ca.pem"), "--resolve", f"localhost:{app.port}:127.0.0.1",
                 f"{base}/plaintext", f"{base}/json")
        assert r.returncode == 0, r.stderr
        assert r.stdout == 'Hello, World!{"message":"Hello, World!"}', r.stdout
        assert "Re-using existing connection" in r.stderr, "keep-alive over TLS"
        assert "ALPN: server accepted http/1.1" in r.stderr, r.stderr
        # chunked upload, and Expect: 100-continue
        body = "x" * 100000
        r = curl("--cacert", pki("ca.pem"), "--resolve", f"localhost:{app.port}:127.0.0.1",
                 "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue", "--data-binary", "@-",
                 f"{base}/echo")
        r = subprocess.run(["curl", "-sS", "--cacert", pki("ca.pem"), "--resolve", f"localhost:{app.port}:127.0.0.1",
                            "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue", "--data-binary", "@-",
                            f"{base}/echo"], input=body, capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0 and r.stdout == body, (r.returncode, r.stderr, len(r.stdout))
        # pipelining over one TLS connection; the server ends it with close_notify
        s = tls_socket(app.port)
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" * 5 +
                  b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)  # an SSLEOFError here would mean no close_notify
            if not chunk:
                break
            got += chunk
        assert got.count(b"HTTP/1.1 200 OK") == 6, got
        assert got.endswith(b'{"message":"Hello, World!"}')
        # a pipelined batch of several TLS records (over 16 KiB): all answered, none left
        # in the TLS layer's buffer while the server waits on the socket
        s = tls_socket(app.port)
        batch = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" * 999 + \
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        assert len(batch) > 2 * 16384
        s.sendall(batch)
        got = read_all(s)
        assert got.count(b"HTTP/1.1 200 OK") == 1000, got.count(b"HTTP/1.1 200 OK")
        assert app.stop() == 0


def test_versions_and_alpn():
    with App("coronet-hello").started() as app:
        for version in ("-tls1_2", "-tls1_3"):
            r = s_client(app.port, version, "-alpn", "h2,http/1.1")
            assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
            assert "ALPN protocol: h2" in r.stdout, r.stdout
            r = s_client(app.port, version, "-alpn", "http/1.1")
            assert "ALPN protocol: http/1.1" in r.stdout, r.stdout
        for old in ("-tls1", "-tls1_1"):
            r = s_client(app.port, old, "-cipher", "DEFAULT@SECLEVEL=0")
            assert "Cipher is (NONE)" in r.stdout or r.returncode != 0, r.stdout
        # only weak ciphers offered: refused
        r = s_client(app.port, "-tls1_2", "-cipher", "DES-CBC3-SHA:RC4-SHA@SECLEVEL=0")
        assert "Cipher is (NONE)" in r.stdout or r.returncode != 0, r.stdout
    with App("coronet-hello", "http2.enabled=false").started() as app:
        r = s_client(app.port, "-alpn", "h2,http/1.1")
        assert "ALPN protocol: http/1.1" in r.stdout, r.stdout
    with App("coronet-hello", "tls.min_version=1.3").started() as app:
        assert s_client(app.port, "-tls1_2").returncode != 0
        assert "TLSv1.3" in s_client(app.port, "-tls1_3").stdout


def test_mtls_accepts_its_clients_and_refuses_others():
    with App("coronet-hello", f"tls.client_ca_file={pki('ca.pem')}").started() as app:
        s = tls_socket(app.port, context(cert="client"))
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert b"Hello, World!" in read_all(s)
        for cert in (None, "untrusted-client"):
            try:
                s = tls_socket(app.port, context(cert=cert))
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
                got = s.recv(100)  # TLS 1.3: the refusal arrives after the handshake
                assert not got, got
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                pass
        assert app.stop() == 0


def test_sighup_rotation():
    with App("coronet-hello").started() as app:
        old = tls_socket(app.port)
        old.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"Hello, World!" in old.recv(4096)
        first = serial_of(old)
        shutil.copy(pki("server2.pem"), app.cert)
        shutil.copy(pki("server2.key"), app.key)
        app.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + TIMEOUT
        while "reloaded the certificate" not in app.output():
            assert time.time() < deadline, app.output()
            time.sleep(0.02)
        fresh = tls_socket(app.port)
        assert serial_of(fresh) != first
        # the open connection keeps working on its old certificate
        old.sendall(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"Hello, World!" in old.recv(4096)
        # a reload that fails keeps the current certificate, and the process
        os.remove(app.key)
        app.proc.send_signal(signal.SIGHUP)
        while "reload failed" not in app.output():
            assert time.time() < deadline, app.output()
            time.sleep(0.02)
        assert app.proc.poll() is None
        assert serial_of(tls_socket(app.port)) == serial_of(fresh)
        rc = app.stop()
        assert rc == 0, (rc, app.output())


def test_bad_input_closes_one_connection_and_is_counted():
    with App("coronet-backend", "tls.handshake_timeout_ms=300", extra=["--role", "users"]).started() as app:
        # plain HTTP to the TLS port
        with socket.create_connection(("127.0.0.1", app.port), timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            got = read_all(s)  # ends: the server closes (a hang would time out the test)
            assert b"HTTP/" not in got, got  # nothing is answered in plain HTTP
        # a handshake that stalls
        start = time.time()
        with socket.create_connection(("127.0.0.1", app.port), timeout=TIMEOUT) as s:
            assert read_all(s) == b""
        assert time.time() - start < 5
        # an abrupt close in the middle of the handshake
        with socket.create_connection(("127.0.0.1", app.port), timeout=TIMEOUT) as s:
            s.sendall(bytes.fromhex("16030100c8010000c40303") + os.urandom(20))
        # a client that offers TLS 1.1 only
        s_client(app.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        # close_notify in the middle of a request: that connection ends, with no answer
        s = tls_socket(app.port)
        s.sendall(b"GET /users/1 HTTP/1.1\r\nHost: t\r\n")
        raw = s.unwrap()
        raw.settimeout(TIMEOUT)
        assert read_all(raw) == b""
        time.sleep(0.1)
        # the server still serves, and counted each failure by its reason
        assert metric(app.port, "coronet_tls_handshake_failures_total", 'reason="not_tls"') >= 1
        assert metric(app.port, "coronet_tls_handshake_failures_total", 'reason="timeout"') >= 1
        assert metric(app.port, "coronet_tls_handshake_failures_total", 'reason="version"') >= 1
        assert metric(app.port, "coronet_tls_handshake_failures_total", 'reason="closed"') >= 1
        assert app.stop() == 0


def test_handshake_flood_is_served():
    """2,000 handshakes at once: each is a coroutine on a worker, none waits on a lock."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(2000, hard - 100)
    if count < 2000:
        print(f"the open-file limit ({hard}) allows {count} connections, not 2,000")
    with App("coronet-hello").started() as app:
        async def one(ctx):
            reader, writer = await asyncio.open_connection("127.0.0.1", app.port, ssl=ctx,
                                                           server_hostname="localhost")
            writer.write(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            got = await reader.read()
            writer.close()
            return got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"Hello, World!")

        async def flood():
            ctx = context()
            results = await asyncio.wait_for(asyncio.gather(*(one(ctx) for _ in range(count)),
                                                            return_exceptions=True), 120)
            return [r for r in results if r is not True]

        failed = asyncio.run(flood())
        assert not failed, f"{len(failed)} of {count} failed: {failed[:3]}"
        assert app.stop() == 0


def test_startup_errors_exit_2_naming_key_and_file():
    with App("coronet-hello", tls=False, extra=["--set", "tls.cert_file=/nonexistent/cert.pem",
                                                "--set", f"tls.key_file={pki('server.key')}"]) as app:
        assert app.proc.wait(TIMEOUT) == 2
        assert "tls.cert_file" in app.output() and "/nonexistent/cert.pem" in app.output(), app.output()
    with App("coronet-hello", tls=False, extra=["--set", f"tls.cert_file={pki('server.pem')}",
                                                "--set", f"tls.key_file={pki('client.key')}"]) as app:
        assert app.proc.wait(TIMEOUT) == 2
        assert "tls.key_file" in app.output() and "does not match" in app.output(), app.output()


def test_second_process_on_a_held_port_fails():
    with App("coronet-hello", tls=False).started() as first:
        with App("coronet-hello", tls=False, port=first.port) as second:
            assert second.proc.wait(TIMEOUT) == 2, second.output()
            assert "address in use" in second.output(), second.output()
            assert f"127.0.0.1:{first.port}" in second.output()
        assert first.stop() == 0


def test_gateway_calls_https_backends():
    backends = {}
    try:
        for role, cert in (("users", "server"), ("orders", "wrong-name"), ("recommendations", "untrusted")):
            app = App("coronet-backend", "backend.latency_ms=0", "backend.jitter_ms=0", "backend.error_rate=0",
                      extra=["--role", role])
            shutil.copy(pki(cert + ".pem"), app.cert)
            shutil.copy(pki(cert + ".key"), app.key)
            backends[role] = app.started()
        sets = [f"backends.{role}=https://localhost:{app.port}" for role, app in backends.items()]
        with App("coronet-gateway", *sets, f"client.ca_file={pki('ca.pem')}", tls=False).started() as gw:
            body = urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/api/users/7/dashboard", timeout=TIMEOUT).read()
            doc = json.loads(body)
            assert doc["user"]["id"] == 7, doc
            assert doc["partial"] is True, doc
            reasons = {e["service"]: e["reason"] for e in doc["errors"]}
            assert reasons == {"orders": "tls", "recommendations": "tls"}, doc
        # all three trusted and named right: a full answer, over HTTPS both ways
        for role in ("orders", "recommendations"):
            shutil.copy(pki("server.pem"), backends[role].cert)
            shutil.copy(pki("server.key"), backends[role].key)
            backends[role].proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        with App("coronet-gateway", *sets, f"client.ca_file={pki('ca.pem')}").started() as gw:
            for _ in range(3):
                body = urllib.request.urlopen(f"https://127.0.0.1:{gw.port}/api/users/7/dashboard",
                                              context=context(), timeout=TIMEOUT).read()
                doc = json.loads(body)
                assert doc["partial"] is False and doc["errors"] == [], doc
    finally:
        for app in backends.values():
            app.__exit__()


def test_chat_over_wss():
    import websockets
    with App("coronet-chat", ports=("chat.tcp_listen",), listening=2).started() as app:
        page = urllib.request.urlopen(f"https://127.0.0.1:{app.port}/", context=context(), timeout=TIMEOUT).read()
        assert b"WebSocket" in page or b"<html" in page.lower()

        async def talk():
            async with websockets.connect(f"wss://localhost:{app.port}/ws", ssl=context()) as a, \
                    websockets.connect(f"wss://localhost:{app.port}/ws", ssl=context()) as b:
                for ws, nick in ((a, "ann"), (b, "bob")):
                    assert (await asyncio.wait_for(ws.recv(), TIMEOUT)).startswith("* welcome")
                    await ws.send(f"/nick {nick}")
                    await ws.send("/join lobby")
                    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"* you are {nick}"
                    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == f"* {nick} joined lobby"
                await a.send("hello over tls")
                while True:
                    line = await asyncio.wait_for(b.recv(), TIMEOUT)
                    if "hello over tls" in line:
                        pong = await b.ping(b"still there")
                        await asyncio.wait_for(pong, TIMEOUT)
                        return line
        line = asyncio.run(talk())
        assert "ann: hello over tls" in line, line
        assert app.stop() == 0


def test_only_aead_suites_by_default_and_the_keys_change_them():
    with App("coronet-hello").started() as app:
        # Mozilla's intermediate: TLS 1.2 with ECDHE and AEAD only; no CBC suite
        # (LUCKY13), no SHA-1 MAC. (The test certificate's key is ECDSA.)
        for cbc in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"):
            r = s_client(app.port, "-tls1_2", "-cipher", cbc)
            assert "Cipher is (NONE)" in r.stdout or r.returncode != 0, cbc + ": " + r.stdout
        r = s_client(app.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")
        assert "ECDHE-ECDSA-CHACHA20-POLY1305" in r.stdout, r.stdout
        r = s_client(app.port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
        assert "TLS_CHACHA20_POLY1305_SHA256" in r.stdout, r.stdout
    with App("coronet-hello", "tls.ciphers=ECDHE-ECDSA-AES256-GCM-SHA384",
             "tls.ciphersuites=TLS_AES_256_GCM_SHA384").started() as app:
        assert s_client(app.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").returncode != 0
        assert "ECDHE-ECDSA-AES256-GCM-SHA384" in s_client(app.port, "-tls1_2").stdout
        r = s_client(app.port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
        assert r.returncode != 0 or "Cipher is (NONE)" in r.stdout, r.stdout
    # A list OpenSSL takes nothing from: exit 2, naming the key.
    with App("coronet-hello", "tls.ciphers=NO-SUCH-CIPHER") as app:
        assert app.proc.wait(TIMEOUT) == 2
        assert "tls.ciphers" in app.output(), app.output()
    with App("coronet-gateway", "client.ciphersuites=TLS_NOPE", tls=False) as app:
        assert app.proc.wait(TIMEOUT) == 2
        assert "client.ciphersuites" in app.output(), app.output()


def test_testssl_finds_nothing_to_flag():
    """testssl.sh (Debian's) against the default TLS setup: protocols,
    cipher lists, forward secrecy, server preference and every known
    vulnerability; any finding rated LOW or worse fails (the certificate is
    the test CA's, so its checks are left out)."""
    if not shutil.which("testssl"):
        print("skipped: no testssl (the Debian package 'testssl.sh'; scripts/setup.sh installs it)")
        return
    with App("coronet-hello").started() as app:
        report = pki(f"testssl-{app.port}.json")
        subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-f", "-P", "-U",
                        "--jsonfile", report, f"127.0.0.1:{app.port}"],
                       capture_output=True, text=True, timeout=600)
        findings = json.load(open(report))
        assert any(f["id"] == "LUCKY13" for f in findings), "testssl ran no vulnerability check"
        flagged = [f"{f['severity']} {f['id']}: {f['finding']}" for f in findings
                   if f.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL")]
        assert not flagged, "\n".join(flagged)


if __name__ == "__main__":
    harness.main(globals())
