#!/usr/bin/python3
"""HTTP/2 in with clients that are not ours: curl (--http2, --http2-prior-knowledge), nghttp,
and raw frames written by hand (HPACK from Python's hpack, Debian python3-h2) for protocol errors
and for each known attack, named by its CVE class. Every attack ends in a GOAWAY or RST_STREAM with
the right code, and another connection is served meanwhile.

    http2_test.py BIN_DIR SOURCE_DIR TEST     (one ctest per TEST; `list` names them)
"""
import os
import signal
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request

import hpack

import harness
from harness import App, BIN_DIR, SOURCE_DIR, TIMEOUT, free_port, pki

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 0x5, 0x6, 0x7, 0x8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM, HTTP_1_1_REQUIRED = 0x9, 0xb, 0xd
INITIAL_WINDOW_SIZE = 0x4
CODES = {v: k for k, v in dict(NO_ERROR=0, PROTOCOL_ERROR=1, INTERNAL_ERROR=2, FLOW_CONTROL_ERROR=3,
                               STREAM_CLOSED=5, FRAME_SIZE_ERROR=6, REFUSED_STREAM=7, CANCEL=8,
                               COMPRESSION_ERROR=9, ENHANCE_YOUR_CALM=0xb, HTTP_1_1_REQUIRED=0xd).items()}


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def settings(**values):
    ids = dict(HEADER_TABLE_SIZE=1, ENABLE_PUSH=2, MAX_CONCURRENT_STREAMS=3, INITIAL_WINDOW_SIZE=4,
               MAX_FRAME_SIZE=5, MAX_HEADER_LIST_SIZE=6)
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


class H2:
    """One HTTP/2 connection spoken frame by frame."""

    def __init__(self, port, preface=PREFACE, initial=None, tls_context=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls_context:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.decoded = {}
        self.backlog = []  # frames of other streams that response() passed over
        self.next_id = 1
        if preface is not None:
            self.send(preface + (initial if initial is not None else settings()))

    def send(self, data):
        self.sock.sendall(data)

    def request(self, path="/plaintext", method="GET", extra=(), end_stream=True, stream=None):
        """A request's HEADERS (and CONTINUATION frames when the block needs them)."""
        if stream is None:
            stream = self.next_id
            self.next_id += 2
        block = self.encoder.encode([(":method", method), (":scheme", "http"), (":path", path),
                                     (":authority", "localhost"), *extra])
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        flags = END_STREAM if end_stream else 0
        out = frame(HEADERS, flags | (END_HEADERS if len(pieces) == 1 else 0), stream, pieces[0])
        for i, piece in enumerate(pieces[1:], 2):
            out += frame(CONTINUATION, END_HEADERS if i == len(pieces) else 0, stream, piece)
        self.send(out)
        return stream

    def read_frame(self, timeout=TIMEOUT):
        """(type, flags, stream, payload), or None once the server has closed."""
        if self.backlog:
            return self.backlog.pop(0)
        self.sock.settimeout(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        length = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
        payload, self.buf = self.buf[9:9 + length], self.buf[9 + length:]
        if ftype == SETTINGS and not flags & ACK:
            try:
                self.send(frame(SETTINGS, ACK, 0))
            except OSError:
                pass  # the server has closed already; what it sent is still read
        if ftype == HEADERS:  # decoded as it comes, whoever reads it, to keep HPACK's state
            self.decoded[stream] = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                                    for k, v in self.decoder.decode(payload)]
        return ftype, flags, stream, payload

    def until(self, predicate, what, timeout=TIMEOUT):
        """Reads frames until one satisfies `predicate`; fails on a close or the timeout."""
        end = time.time() + timeout
        seen = []
        while time.time() < end:
            f = self.read_frame(max(0.01, end - time.time()))
            if f is None:
                raise AssertionError(f"connection closed before {what}; frames: {seen[-20:]}")
            seen.append((f[0], f[1], f[2], f[3][:16]))
            if predicate(f):
                return f
        raise AssertionError(f"no {what} in {timeout}s; frames: {seen[-20:]}")

    def goaway(self, timeout=TIMEOUT):
        """The GOAWAY's (last stream id, error code), then the server closes."""
        f = self.until(lambda f: f[0] == GOAWAY, "GOAWAY", timeout)
        last, code = struct.unpack(">II", f[3][:8])
        return last & 0x7fffffff, code

    def closed(self, timeout=TIMEOUT):
        end = time.time() + timeout
        while time.time() < end:
            if self.read_frame(max(0.01, end - time.time())) is None:
                return True
        return False

    def response(self, stream, timeout=TIMEOUT):
        """(status, headers, body) of `stream`; an RST_STREAM fails with its code."""
        status, headers, body = None, {}, b""
        end = time.time() + timeout
        others = []
        try:
            return self._response(stream, end, others)
        finally:
            self.backlog[:0] = others

    def _response(self, stream, end, others):
        status, headers, body = None, {}, b""
        while time.time() < end:
            f = self.read_frame(max(0.01, end - time.time()))
            assert f is not None, f"closed before stream {stream} ended; body so far {body[:100]!r}"
            ftype, flags, sid, payload = f
            if sid != stream:
                if sid:
                    others.append(f)
                continue
            if ftype == RST_STREAM:
                raise AssertionError(f"stream {stream} reset: {CODES.get(int.from_bytes(payload, 'big'))}")
            if ftype == HEADERS:
                for k, v in self.decoded.pop(stream):
                    if k == ":status":
                        status = int(v)
                    else:
                        headers[k] = v
            if ftype == DATA:
                body += payload
                if payload:
                    self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))) +
                              frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", len(payload))))
            if ftype in (HEADERS, DATA) and flags & END_STREAM:
                return status, headers, body
        raise AssertionError(f"stream {stream} did not end in time")

    def reset_of(self, stream, timeout=TIMEOUT):
        f = self.until(lambda f: f[0] == RST_STREAM and f[2] == stream, f"RST_STREAM on {stream}", timeout)
        return int.from_bytes(f[3], "big")

    def close(self):
        self.sock.close()


def still_serves(port, path="/plaintext"):
    """Another connection is served meanwhile: the attack hurt only its own."""
    c = H2(port)
    status, _, body = c.response(c.request(path))
    c.close()
    assert status == 200 and body, (status, body)


def curl(*args, input=None):
    return subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), *args], input=input,
                          capture_output=True, timeout=TIMEOUT + 5)


# --- real clients ---------------------------------------------------------------------------------

def test_curl_nghttp_and_http1_on_one_port():
    with App("coronet-hello") as app:
        base = f"http://127.0.0.1:{app.port}"
        # (this curl cannot reuse an h2c connection, whatever the server: one URL per run)
        r = curl("-v", "--http2-prior-knowledge", f"{base}/json")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b'{"message":"Hello, World!"}', r.stdout
        assert b"< HTTP/2 200" in r.stderr, r.stderr
        body = os.urandom(300000)
        r = curl("--http2-prior-knowledge", "--data-binary", "@-", f"{base}/echo", input=body)
        assert r.returncode == 0 and r.stdout == body, (r.returncode, r.stderr, len(r.stdout))
        r = curl("--http2-prior-knowledge", f"{base}/stream")
        assert r.returncode == 0 and r.stdout.startswith(b"line 1\n"), r
        r = curl("--http2-prior-knowledge", "-I", f"{base}/plaintext")
        assert b"HTTP/2 200" in r.stdout and b"content-length: 13" in r.stdout, r.stdout
        r = curl("--http2-prior-knowledge", "-i", f"{base}/nothing-here")
        assert b"HTTP/2 404" in r.stdout, r.stdout
        # HTTP/1.1 on the same port, and the Upgrade: h2c dance is answered in HTTP/1.1
        r = curl("-i", "--http1.1", f"{base}/plaintext")
        assert r.stdout.startswith(b"HTTP/1.1 200 OK") and r.stdout.endswith(b"Hello, World!"), r.stdout
        r = curl("-i", "--http2", f"{base}/plaintext")
        assert r.stdout.startswith(b"HTTP/1.1 200 OK"), r.stdout
        # nghttp: several streams at once on one connection
        r = subprocess.run(["nghttp", "-nv", "-m", "10", f"{base}/json"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count(":status: 200") == 10, r.stdout
        assert app.stop() == 0
    # the request metrics tell the protocols apart
    with App("coronet-backend", "backend.latency_ms=0", extra=["--role", "users"]) as app:
        base = f"http://127.0.0.1:{app.port}"
        r = subprocess.run(["nghttp", "-n", "-m", "10", f"{base}/users/3"], capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r
        assert curl("--http1.1", f"{base}/users/4").returncode == 0
        assert app.metric("coronet_http_requests_total", route="/users/{id}", protocol="HTTP/2") == 10
        assert app.metric("coronet_http_requests_total", route="/users/{id}", protocol="HTTP/1.1") == 1
        assert app.metric("coronet_http2_streams_total", side="server", event="opened") == 10
        assert app.stop() == 0


def test_curl_over_tls_chooses_h2_by_alpn():
    with App("coronet-hello", tls=True) as app:
        base = f"https://localhost:{app.port}"
        common = ["--cacert", pki("ca.pem"), "--resolve", f"localhost:{app.port}:127.0.0.1"]
        r = curl("-v", "--http2", *common, f"{base}/plaintext", f"{base}/json")
        assert r.returncode == 0, r.stderr
        assert b"ALPN: server accepted h2" in r.stderr and b"< HTTP/2 200" in r.stderr, r.stderr
        assert r.stdout == b'Hello, World!{"message":"Hello, World!"}'
        r = curl("-v", "--http1.1", *common, f"{base}/plaintext")
        assert b"ALPN: server accepted http/1.1" in r.stderr and r.stdout == b"Hello, World!", r.stderr
        ctx = ssl.create_default_context(cafile=pki("ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        c = H2(app.port, tls_context=ctx)
        assert c.sock.selected_alpn_protocol() == "h2"
        assert c.response(c.request("/plaintext"))[2] == b"Hello, World!"
        assert app.stop() == 0


# --- protocol errors ------------------------------------------------------------------------------

def test_protocol_errors():
    with App("coronet-hello") as app:
        # a bad preface: after HTTP/2's first line, something else
        c = H2(app.port, preface=b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        assert c.goaway()[1] == PROTOCOL_ERROR
        # frames on stream 0 that must not be there: DATA, HEADERS, RST_STREAM
        for bad in (frame(DATA, 0, 0, b"x"), frame(HEADERS, END_HEADERS, 0, b"\x82"),
                    frame(RST_STREAM, 0, 0, struct.pack(">I", 0))):
            c = H2(app.port)
            c.send(bad)
            assert c.goaway()[1] == PROTOCOL_ERROR, bad[:9]
        # DATA on a closed stream
        c = H2(app.port)
        sid = c.request("/plaintext")
        assert c.response(sid)[0] == 200
        c.send(frame(DATA, END_STREAM, sid, b"late"))
        assert c.goaway()[1] == STREAM_CLOSED
        # a header block with an upper-case name, or a connection-specific field: that stream only
        c = H2(app.port)
        bad = c.request("/plaintext", extra=[("X-Upper", "1")])
        assert c.reset_of(bad) == PROTOCOL_ERROR
        bad = c.request("/plaintext", extra=[("connection", "keep-alive")])
        assert c.reset_of(bad) == PROTOCOL_ERROR
        bad = c.request("/plaintext", extra=[("te", "gzip")])
        assert c.reset_of(bad) == PROTOCOL_ERROR
        assert c.response(c.request("/plaintext"))[0] == 200  # the connection goes on
        # a frame bigger than SETTINGS_MAX_FRAME_SIZE
        c = H2(app.port)
        c.send(frame(PING, 0, 0, b"x" * 20000))
        assert c.goaway()[1] == FRAME_SIZE_ERROR
        # a malformed HPACK block
        c = H2(app.port)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff"))
        assert c.goaway()[1] == COMPRESSION_ERROR
        # a request without :path
        c = H2(app.port)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     hpack.Encoder().encode([(":method", "GET"), (":scheme", "http")])))
        assert c.reset_of(1) == PROTOCOL_ERROR
        still_serves(app.port)
        assert app.stop() == 0


def test_settings_and_stream_state_errors():
    """RFC 9113's connection and stream errors for bad SETTINGS, frame sizes, stream ids and states,
    and malformed requests; the server serves on to others."""
    block = lambda c, path="/plaintext": c.encoder.encode(
        [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "x")])

    with App("coronet-hello") as app:
        def goaway_after(data):
            c = H2(app.port)
            c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK, "the server's SETTINGS")
            c.send(data(c) if callable(data) else data)
            return c.goaway()[1]

        assert goaway_after(frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 2))) == PROTOCOL_ERROR  # ENABLE_PUSH=2
        assert goaway_after(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 31))) == FLOW_CONTROL_ERROR
        assert goaway_after(frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 100))) == PROTOCOL_ERROR  # MAX_FRAME_SIZE
        assert goaway_after(frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 1))) == FRAME_SIZE_ERROR  # ACK + payload
        assert goaway_after(frame(PING, 0, 0, b"1234567")) == FRAME_SIZE_ERROR
        assert goaway_after(lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 2, block(c))) == PROTOCOL_ERROR
        assert goaway_after(frame(RST_STREAM, 0, 7, struct.pack(">I", CANCEL))) == PROTOCOL_ERROR  # idle stream
        assert goaway_after(frame(WINDOW_UPDATE, 0, 9, struct.pack(">I", 1))) == PROTOCOL_ERROR  # idle stream
        assert goaway_after(lambda c: frame(HEADERS, 0, 1, block(c)[:3]) +
                            frame(CONTINUATION, END_HEADERS, 3, block(c)[3:])) == PROTOCOL_ERROR
        c = H2(app.port)
        # an empty :path; trailers without END_STREAM; a body shorter than its content-length
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(c, "")))
        assert c.reset_of(1) == PROTOCOL_ERROR
        sid = c.request("/echo", method="POST", end_stream=False, stream=3)
        c.send(frame(DATA, 0, sid, b"abc") + frame(HEADERS, END_HEADERS, sid, c.encoder.encode([("x-t", "1")])))
        assert c.reset_of(sid) == PROTOCOL_ERROR
        sid = c.request("/echo", method="POST", extra=[("content-length", "10")], end_stream=False, stream=5)
        c.send(frame(DATA, END_STREAM, sid, b"abc"))
        assert c.reset_of(sid) == PROTOCOL_ERROR
        # trailers that end the stream are fine
        sid = c.request("/echo", method="POST", end_stream=False, stream=7)
        c.send(frame(DATA, 0, sid, b"abc") +
               frame(HEADERS, END_HEADERS | END_STREAM, sid, c.encoder.encode([("x-checksum", "1")])))
        assert c.response(sid)[::2] == (200, b"abc")
        still_serves(app.port)
        assert app.stop() == 0


def test_limits_answer_on_the_stream():
    with App("coronet-hello", "http.max_body_bytes=1000", "http2.max_concurrent_streams=4") as app:
        c = H2(app.port)
        # http.max_body_bytes per stream: 413, announced or not
        sid = c.request("/echo", method="POST", extra=[("content-length", "5000")], end_stream=False)
        assert c.response(sid)[0] == 413
        sid = c.request("/echo", method="POST", end_stream=False)
        c.send(frame(DATA, 0, sid, b"x" * 800) + frame(DATA, 0, sid, b"x" * 800))
        assert c.response(sid)[0] == 413
        sid = c.request("/echo", method="POST", end_stream=False)
        c.send(frame(DATA, 0, sid, b"x" * 500) + frame(DATA, END_STREAM, sid, b"y" * 500))
        status, _, body = c.response(sid)
        assert status == 200 and body == b"x" * 500 + b"y" * 500
        # a header list over http2.max_header_list_bytes: 431
        sid = c.request("/plaintext", extra=[("x-big", "v" * 70000)])
        assert c.response(sid)[0] == 431
        assert c.response(c.request("/plaintext"))[0] == 200
        # more streams at once than the http2.max_concurrent_streams it acknowledged: a
        # connection error (nghttp2's choice; RFC 9113 5.1.2 allows PROTOCOL_ERROR)
        c = H2(app.port)
        c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK, "the server's SETTINGS")  # and ACKs them
        for _ in range(4):
            c.request("/echo", method="POST", end_stream=False)
        c.request("/plaintext")
        assert c.goaway()[1] == PROTOCOL_ERROR
        still_serves(app.port)
        assert app.stop() == 0


def test_rst_stream_cancels_one_stream_and_its_client_calls():
    """Gateway over h2c: a reset stream's handler ends at once, and with it its call to the
    backend (over h2c too, so the backend sees that stream reset); the sibling streams finish."""
    with App("coronet-backend", "backend.latency_ms=1500", "backend.jitter_ms=0", extra=["--role", "users"]) as users, \
         App("coronet-backend", "backend.latency_ms=0", extra=["--role", "orders"]) as orders, \
         App("coronet-backend", "backend.latency_ms=0", extra=["--role", "recommendations"]) as recs, \
         App("coronet-gateway", f"backends.users=http://127.0.0.1:{users.port}",
             f"backends.orders=http://127.0.0.1:{orders.port}",
             f"backends.recommendations=http://127.0.0.1:{recs.port}", "client.http2=prior_knowledge",
             "gateway.request_timeout_ms=5000", "gateway.backend_timeout_ms=4000") as gw:
        c = H2(gw.port)
        siblings = [c.request("/api/users/7/dashboard") for _ in range(3)]
        doomed = c.request("/api/users/8/dashboard")
        time.sleep(0.3)  # the calls are on their way to the slow backend
        start = time.time()
        c.send(frame(RST_STREAM, 0, doomed, struct.pack(">I", CANCEL)))
        end = time.time() + TIMEOUT
        while users.metric("coronet_http2_streams_total", side="server", event="reset_by_peer") < 1:
            assert time.time() < end, "the backend never saw its stream reset"
            time.sleep(0.02)
        assert time.time() - start < 1.0, "the call was cancelled at once, not when it ended"
        for sid in siblings:
            status, _, body = c.response(sid)
            assert status == 200 and b'"partial":false' in body, (status, body)
        served = users.metric("coronet_http_requests_total", route="/users/{id}", protocol="HTTP/2")
        assert served == 3, urllib.request.urlopen(f"http://127.0.0.1:{users.port}/metrics").read().decode()
        assert gw.metric("coronet_http2_streams_total", side="server", event="reset_by_peer") == 1
        assert gw.stop() == 0


def test_deadline_travels_gateway_to_backend():
    """X-Request-Timeout-Ms: the gateway's calls get no more than the caller's budget and pass the rest
    on; a budget already spent is answered 504 without calling anyone."""
    with App("coronet-backend", "backend.latency_ms=400", "backend.jitter_ms=0", extra=["--role", "users"]) as users, \
         App("coronet-backend", "backend.latency_ms=0", extra=["--role", "orders"]) as orders, \
         App("coronet-backend", "backend.latency_ms=0", extra=["--role", "recommendations"]) as recs, \
         App("coronet-gateway", f"backends.users=http://127.0.0.1:{users.port}",
             f"backends.orders=http://127.0.0.1:{orders.port}",
             f"backends.recommendations=http://127.0.0.1:{recs.port}",
             "gateway.request_timeout_ms=5000", "gateway.backend_timeout_ms=4000") as gw:
        url = f"http://127.0.0.1:{gw.port}/api/users/3/dashboard"
        spent = urllib.request.Request(url, headers={"X-Request-Timeout-Ms": "0"})
        try:
            urllib.request.urlopen(spent, timeout=TIMEOUT)
            raise AssertionError("a spent budget was served")
        except urllib.error.HTTPError as e:
            assert e.code == 504, e.code
        assert gw.metric("coronet_http_requests_expired_total") == 1
        assert orders.metric("coronet_http_requests_total", route="/orders") == 0  # nobody was called
        # 150 ms for a dashboard whose users service takes 400: the gateway gives up at 150, not 4000
        short = urllib.request.Request(url, headers={"X-Request-Timeout-Ms": "150"})
        start = time.time()
        try:
            urllib.request.urlopen(short, timeout=TIMEOUT)
            raise AssertionError("answered in full")
        except urllib.error.HTTPError as e:
            assert e.code == 502, e.code
        assert time.time() - start < 0.35, time.time() - start
        # and the backends were told the budget: theirs expired too (the users call never finished)
        assert gw.stop() == 0


# --- attacks --------------------------------------------------------------------------------------

def test_rapid_reset_cve_2023_44487():
    with App("coronet-backend", "backend.latency_ms=50", extra=["--role", "users"]) as app:
        c = H2(app.port)
        burst = b""
        for i in range(2000):
            sid = 1 + 2 * i
            block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/users/1"),
                                      (":authority", "localhost")])
            burst += frame(HEADERS, END_HEADERS | END_STREAM, sid, block) + \
                frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
        try:
            c.send(burst)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.goaway()[1] == ENHANCE_YOUR_CALM
        assert "Rapid Reset" in app.output()
        still_serves(app.port, "/users/2")
        assert app.metric("coronet_http2_goaways_total", side="server", direction="sent",
                          code="ENHANCE_YOUR_CALM") == 1
        assert app.stop() == 0


def test_continuation_flood_cve_2024_27316():
    with App("coronet-hello") as app:
        c = H2(app.port)
        block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/plaintext"),
                                  (":authority", "localhost")])
        c.send(frame(HEADERS, 0, 1, block))  # no END_HEADERS: CONTINUATION frames follow
        filler = hpack.Encoder().encode([("x-filler", "a" * 100)])
        try:
            for _ in range(2000):
                c.send(frame(CONTINUATION, 0, 1, filler))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.goaway()[1] == ENHANCE_YOUR_CALM
        still_serves(app.port)
        # an endless header block that never ends and never grows: the header timeout
    with App("coronet-hello", "http.header_timeout_ms=500") as app:
        c = H2(app.port)
        c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK, "the server's SETTINGS")  # ACKed before the block
        c.send(frame(HEADERS, 0, 1, block))
        assert c.goaway(timeout=5)[1] == ENHANCE_YOUR_CALM
        assert c.closed()
        assert app.stop() == 0


def flood(port, one, count):
    c = H2(port)
    try:
        c.send(one * count)
    except (BrokenPipeError, ConnectionResetError):
        pass
    code = c.goaway()[1]
    c.close()
    return code


def test_control_frame_floods_cve_2019_9512_9515_9518():
    with App("coronet-hello") as app:
        assert flood(app.port, frame(PING, 0, 0, b"12345678"), 5000) == ENHANCE_YOUR_CALM  # CVE-2019-9512
        assert flood(app.port, settings(), 5000) == ENHANCE_YOUR_CALM                    # CVE-2019-9515
        assert flood(app.port, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)), 5000) == ENHANCE_YOUR_CALM
        assert flood(app.port, frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 16)), 5000) == ENHANCE_YOUR_CALM
        # empty DATA frames on an open stream (CVE-2019-9518)
        c = H2(app.port)
        sid = c.request("/echo", method="POST", end_stream=False)
        try:
            c.send(frame(DATA, 0, sid) * 5000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.goaway()[1] == ENHANCE_YOUR_CALM
        # a client that sends PINGs and never reads their acknowledgements stalls nobody else
        c = H2(app.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            c.send(frame(PING, 0, 0, b"12345678") * 800)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        still_serves(app.port)
        # a well-behaved client's occasional PINGs are answered
        c = H2(app.port)
        for i in range(20):
            c.send(frame(PING, 0, 0, struct.pack(">Q", i)))
            f = c.until(lambda f: f[0] == PING and f[1] & ACK, "PING ACK")
            assert f[3] == struct.pack(">Q", i)
        assert app.stop() == 0


def test_hpack_bomb():
    """A small header block that decodes huge: one big field in the dynamic table, referred to
    thousands of times. Refused with 431 once past http2.max_header_list_bytes, never stored."""
    with App("coronet-hello") as app:
        c = H2(app.port)
        enc = hpack.Encoder()
        first = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/plaintext"),
                            (":authority", "localhost"), ("x-bomb", "b" * 3000)])
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, first))
        assert c.response(1)[0] == 200
        # now x-bomb is dynamic-table index 62: one byte each
        block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/plaintext"),
                            (":authority", "localhost")]) + b"\xbe" * 4000
        assert len(block) < 16384
        before = app.rss_kib()
        for sid in range(3, 3 + 2 * 20, 2):
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
            assert c.response(sid)[0] == 431  # 12 MB of headers each, decoded and dropped
        assert app.rss_kib() - before < 20000, "the decoded fields were not kept"
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 99, enc.encode([(":method", "GET"), (":scheme", "http"),
                                                                       (":path", "/plaintext"), (":authority", "x")])))
        assert c.response(99)[0] == 200
        assert app.stop() == 0


def test_window_update_past_2_31_minus_1():
    with App("coronet-hello") as app:
        c = H2(app.port)
        c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)))
        assert c.goaway()[1] == FLOW_CONTROL_ERROR  # the connection window
        c = H2(app.port)
        sid = c.request("/echo", method="POST", end_stream=False)
        c.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 0x7fffffff)))
        assert c.reset_of(sid) == FLOW_CONTROL_ERROR  # one stream's
        assert c.response(c.request("/plaintext"))[0] == 200
        c = H2(app.port)
        c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))  # an increment of 0
        assert c.goaway()[1] == PROTOCOL_ERROR
        still_serves(app.port)
        assert app.stop() == 0


def test_slowloris_per_stream():
    """A stream that never sends its body gets 408 after http.body_timeout_ms; the connection and
    its other streams go on."""
    with App("coronet-hello", "http.body_timeout_ms=700") as app:
        c = H2(app.port)
        slow = c.request("/echo", method="POST", end_stream=False)
        c.send(frame(DATA, 0, slow, b"partial"))
        for _ in range(3):
            assert c.response(c.request("/plaintext"))[0] == 200
        start = time.time()
        assert c.response(slow, timeout=5)[0] == 408
        assert 0.3 < time.time() - start < 3
        assert c.reset_of(slow) == NO_ERROR  # the rest of its body is not wanted
        assert c.response(c.request("/plaintext"))[0] == 200
        assert app.stop() == 0


def test_zero_window_stall_is_dropped():
    """A client that opens its window to nothing: the response waits http.write_timeout_ms, then the
    stream is reset and its memory freed; the connection serves on."""
    with App("coronet-hello", "http.write_timeout_ms=700") as app:
        c = H2(app.port, initial=settings(INITIAL_WINDOW_SIZE=0))
        stalled = c.request("/json")
        f = c.until(lambda f: f[0] == HEADERS and f[2] == stalled, "the response headers")
        start = time.time()
        assert c.reset_of(stalled, timeout=5) == CANCEL
        assert 0.3 < time.time() - start < 3
        c.send(settings(INITIAL_WINDOW_SIZE=65535))
        assert c.response(c.request("/plaintext"))[0] == 200
        assert app.stop() == 0


def test_idle_connection_and_graceful_drain():
    with App("coronet-hello", "http.idle_timeout_ms=500") as app:
        c = H2(app.port)
        assert c.response(c.request("/plaintext"))[0] == 200
        start = time.time()
        assert c.goaway(timeout=5) == (1, NO_ERROR)
        assert 0.3 < time.time() - start < 3 and c.closed()
        assert app.stop() == 0
    with App("coronet-backend", "backend.latency_ms=800", "backend.jitter_ms=0", extra=["--role", "users"]) as app:
        c = H2(app.port)
        c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK, "the server's SETTINGS")
        first = c.request("/users/1")
        second = c.request("/users/2")
        time.sleep(0.2)
        app.proc.send_signal(signal.SIGTERM)
        assert c.goaway() == (second, NO_ERROR)  # the last stream it took
        for sid in (first, second):  # open streams finish
            status, _, body = c.response(sid)
            assert status == 200 and b'"id":' in body, (status, body)
        assert c.closed()
        assert app.proc.wait(TIMEOUT) == 0


def test_goaway_at_a_stop_comes_once_the_port_is_closed():
    """At SIGTERM the GOAWAY goes out once the worker's acceptor is closed: a client that reconnects
    as soon as it reads it is refused at once, instead of landing in an accept queue that is about
    to be reset under its request."""
    with App("coronet-backend", "backend.latency_ms=800", "backend.jitter_ms=0", threads=1,
             extra=["--role", "users"]) as app:
        c = H2(app.port)
        c.until(lambda f: f[0] == SETTINGS and not f[1] & ACK, "the server's SETTINGS")
        held = c.request("/users/1")  # keeps the server in its drain while the client reconnects
        time.sleep(0.2)
        app.proc.send_signal(signal.SIGTERM)
        assert c.goaway() == (held, NO_ERROR)
        try:
            socket.create_connection(("127.0.0.1", app.port), timeout=2).close()
            raise AssertionError("a connection was accepted after the GOAWAY")
        except ConnectionRefusedError:
            pass
        status, _, body = c.response(held)
        assert status == 200 and b'"id":' in body, (status, body)
        assert app.proc.wait(TIMEOUT) == 0

if __name__ == "__main__":
    harness.main(globals())
