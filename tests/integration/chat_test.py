#!/usr/bin/python3
"""coronet-chat with clients that are not ours: raw TCP sockets, Python's
`websockets` package, raw WebSocket frames for the protocol's edge cases, and
the chat page in headless Chromium.

    chat_test.py BIN_DIR SOURCE_DIR TEST     (one ctest per TEST; `list` names them)
"""
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import websockets

import harness
from harness import BIN_DIR, TIMEOUT, free_port, pki


def Chat(*sets):
    """The real coronet-chat on loopback: HTTP and WebSocket on app.http_port,
    the line protocol on app.tcp_port (both picked afresh if one is taken)."""
    app = harness.App("coronet-chat", *sets, listening=2, ports=("chat.tcp_listen",), retries=2)
    app.http_port, app.tcp_port = app.port, app.ports["chat.tcp_listen"]
    return app


class Line:
    """A line-protocol client over a raw TCP socket."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""

    def send(self, *lines):
        self.sock.sendall(b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines))

    def line(self):
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; unread: %r" % self.buffer)
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def until(self, predicate, what):
        seen = []
        while True:
            try:
                line = self.line()
            except (EOFError, socket.timeout) as e:
                raise AssertionError(f"never got {what}; got {seen}") from e
            seen.append(line)
            if predicate(line):
                return line

    def expect(self, text):
        return self.until(lambda l: l == text, repr(text))

    def close(self):
        self.sock.close()


def check(condition, message):
    if not condition:
        raise AssertionError(message)


# --- the line protocol over TCP ---------------------------------------------

def test_tcp_protocol():
    with Chat() as chat:
        a, b = Line(chat.tcp_port), Line(chat.tcp_port)
        a.expect("* welcome to coronet-chat. Commands: /nick NAME, /join ROOM, /rooms, /who, /quit")
        a.send("hello")
        a.expect("error: pick a nick with /nick NAME, then /join ROOM")
        a.send("/join lobby")
        a.expect("error: pick a nick first: /nick NAME")
        a.send("/nick bad nick!")
        a.until(lambda l: l.startswith("error: a nick is"), "bad nick refused")
        a.send("/nick alice", "/join lobby")
        a.expect("* you are alice")
        a.expect("* alice joined lobby")
        b.send("/nick alice")
        b.expect("error: nick alice is taken")
        b.send("/nick bob", "/join lobby")
        a.expect("* bob joined lobby")
        b.expect("* bob joined lobby")
        a.send("hi bob")
        b.expect("[lobby] alice: hi bob")
        a.expect("[lobby] alice: hi bob")
        b.send("/who", "/rooms")
        b.expect("* 2 in lobby: alice, bob")
        b.expect("* rooms: lobby (2)")
        a.send(b"caf\xc3\xa9 ok", b"\xff\xfe bad")
        b.expect("[lobby] alice: café ok")
        # The error comes straight back; the message goes round the room.
        got = {a.line(), a.line()}
        check(got == {"[lobby] alice: café ok", "error: not valid UTF-8"}, got)
        a.send("x" * 5000, "after the long one")
        a.expect("error: line too long (at most 4096 bytes)")
        b.expect("[lobby] alice: after the long one")
        a.send("/dance")
        a.until(lambda l: l.startswith("error: unknown command /dance"), "unknown command refused")
        b.send("/nick robert")
        a.expect("* bob is now robert")
        a.send("/quit")
        a.until(lambda l: l == "* bye", "bye")
        check(a.sock.recv(10) == b"", "the server closes after /quit")
        b.expect("* alice left lobby")
        # Lines sent together with /quit still come back before the goodbye.
        q = Line(chat.tcp_port)
        q.send("/nick quick", "/join quiet", "said just before quitting", "/quit")
        check([q.line() for _ in range(5)] == [
            "* welcome to coronet-chat. Commands: /nick NAME, /join ROOM, /rooms, /who, /quit",
            "* you are quick", "* quick joined quiet", "[quiet] quick: said just before quitting", "* bye"],
            "in order, nothing lost")
        b.send("/join dev")
        b.expect("* robert joined dev")
        b.send("/rooms")
        b.expect("* rooms: dev (1)")  # lobby closed with its last member
        check(chat.stop() == 0, "exit 0 on SIGTERM")


def test_tcp_rate_limit():
    with Chat("chat.max_messages_per_second=5") as chat:
        a = Line(chat.tcp_port)
        a.send("/nick fast", "/join r")  # two of the five tokens
        a.send(*[f"m{i}" for i in range(10)])
        lines = [a.line() for _ in range(1 + 2 + 10)]
        said = [l for l in lines if l.startswith("[r] fast: ")]
        refused = [l for l in lines if l.startswith("error: too many messages")]
        check(len(said) == 3 and len(refused) == 7, f"3 said, 7 refused: {lines}")
        check(said == ["[r] fast: m0", "[r] fast: m1", "[r] fast: m2"], said)


def test_tcp_idle_timeout():
    with Chat("chat.idle_timeout_ms=300") as chat:
        a = Line(chat.tcp_port)
        a.expect("error: idle too long, disconnected")
        check(a.sock.recv(10) == b"", "then the connection closes")
        check(chat.stop() == 0, "exit 0")


def test_slow_reader_is_disconnected_others_unaffected():
    with Chat("chat.outbox_messages=16", "chat.max_messages_per_second=100000") as chat:
        slow = Line(chat.tcp_port, rcvbuf=4096)
        slow.send("/nick slow", "/join busy")
        slow.expect("* slow joined busy")
        reader = Line(chat.tcp_port)
        reader.send("/nick reader", "/join busy")
        reader.expect("* reader joined busy")
        talker = Line(chat.tcp_port)
        talker.send("/nick talker", "/join busy")
        reader.expect("* talker joined busy")
        # The talker hears itself too: it reads everything, on a thread.
        threading.Thread(target=lambda: all(iter(lambda: talker.sock.recv(65536), b"")), daemon=True).start()
        payload = "y" * 1000
        count = 3000  # 3 MB: far more than the slow client's socket buffers and outbox hold
        # In steps of 8 that the reader takes before the next: a client that
        # keeps up never has more than 8 waiting; the slow one piles up.
        dropped = False
        for i in range(0, count, 8):
            talker.send(*[f"{n} {payload}" for n in range(i, i + 8)])
            got = reader.until(lambda l: l.startswith(f"[busy] talker: {i + 7} ") or l.startswith("error:"),
                               f"message {i + 7}")
            check(got.endswith(payload), f"messages intact and the reader not dropped: {got[:80]}")
            if not dropped:
                dropped = "* slow left busy (too slow)" in chat.output() or "(slow) too slow" in chat.output()
        check(dropped, "the slow client was dropped:\n" + chat.output())
        check("client" in chat.output() and "too slow, disconnected" in chat.output(), chat.output())
        # The slow client now reads: what it had, then the reason, then EOF.
        last = slow.until(lambda l: l.startswith("error: too slow"), "the reason line")
        check(last == "error: too slow: 16 messages waiting, disconnected", last)
        check(slow.sock.recv(10) == b"", "then the connection closes")
        check(chat.stop() == 0, "exit 0")


def test_drain_says_goodbye():
    with Chat() as chat:
        a = Line(chat.tcp_port)
        a.send("/nick a", "/join r")
        a.expect("* a joined r")

        async def ws_client():
            async with websockets.connect(f"ws://127.0.0.1:{chat.http_port}/ws") as ws:
                await ws.recv()
                os.kill(chat.proc.pid, signal.SIGTERM)
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                except websockets.ConnectionClosed as e:
                    return e.code, e.reason

        code, reason = asyncio.run(ws_client())
        check((code, reason) == (1001, "server shutting down"), (code, reason))
        a.expect("* server shutting down")
        check(a.sock.recv(10) == b"", "closed")
        check(chat.proc.wait(TIMEOUT) == 0, "exit 0")
        check("still open" not in chat.output(), chat.output())


# --- WebSocket with a client that is not ours --------------------------------

def test_websocket_shares_rooms_with_tcp():
    with Chat() as chat:
        async def run():
            url = f"ws://127.0.0.1:{chat.http_port}/ws"
            async with websockets.connect(url) as ws:
                assert (await ws.recv()).startswith("* welcome")
                await ws.send("/nick web")
                await ws.send("/join lobby")
                assert await ws.recv() == "* you are web"
                assert await ws.recv() == "* web joined lobby"
                tcp = Line(chat.tcp_port)
                tcp.send("/nick term", "/join lobby", "hello from tcp")
                assert await ws.recv() == "* term joined lobby"
                assert await ws.recv() == "[lobby] term: hello from tcp"
                await ws.send("hello from the web\nand a second line")
                tcp.expect("[lobby] web: hello from the web")
                tcp.expect("[lobby] web: and a second line")
                await ws.send(b"\x00binary")
                assert await ws.recv() == "[lobby] web: hello from the web"
                assert await ws.recv() == "[lobby] web: and a second line"
                assert await ws.recv() == "error: send text messages, one line each"
                await ws.send("z" * 5000)
                assert await ws.recv() == "error: line too long (at most 4096 bytes)"
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, TIMEOUT)
                await ws.send("/quit")
                assert await ws.recv() == "* bye"
                try:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                    raise AssertionError("the server should close after /quit")
                except websockets.ConnectionClosedOK as e:
                    assert e.rcvd.code == 1000, e
                tcp.expect("* web left lobby")
        asyncio.run(run())
        check(chat.stop() == 0, "exit 0")


# --- WebSocket edge cases, frame by frame --------------------------------------

def handshake(port, headers=None, path="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    fields = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    fields.update(headers or {})
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(TIMEOUT)
    s.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(1)
        if not data:
            break
        head += data
    return s, head.decode(), key


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        header = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    check(not (b1 & 0x80), "server frames are not masked")
    return b0 & 0x0F, exactly(n)


def close_code_after(s, *frames):
    """Sends frames; returns the code of the server's close frame, skipping data."""
    for f in frames:
        s.sendall(f)
    while True:
        op, payload = read_frame(s)
        if op == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def test_websocket_handshake_refusals():
    with Chat() as chat:
        port = chat.http_port
        s, head, key = handshake(port)
        check(head.startswith("HTTP/1.1 101 "), head)
        import hashlib
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        check(f"Sec-WebSocket-Accept: {accept}" in head, head)
        check("Connection: Upgrade" in head and "Upgrade: websocket" in head, head)
        s.close()
        _, head, _ = handshake(port, {"Sec-WebSocket-Version": "8"})
        check(head.startswith("HTTP/1.1 426 ") and "Sec-WebSocket-Version: 13" in head, head)
        _, head, _ = handshake(port, {"Sec-WebSocket-Key": "too-short"})
        check(head.startswith("HTTP/1.1 400 "), head)
        _, head, _ = handshake(port, {"Upgrade": None})
        check(head.startswith("HTTP/1.1 426 ") and "Upgrade: websocket" in head, head)
        _, head, _ = handshake(port, {"Connection": "keep-alive"})
        check(head.startswith("HTTP/1.1 400 "), head)
        check(chat.stop() == 0, "exit 0")


def test_websocket_protocol_violations():
    with Chat("ws.max_message_bytes=8192") as chat:
        port = chat.http_port

        def fresh():
            s, head, _ = handshake(port)
            check(head.startswith("HTTP/1.1 101 "), head)
            op, welcome = read_frame(s)
            check(op == 1 and welcome.startswith(b"* welcome"), welcome)
            return s

        check(close_code_after(fresh(), frame(1, b"/nick x", mask=False)) == 1002, "unmasked frame -> 1002")
        check(close_code_after(fresh(), frame(1, b"q" * 9000)) == 1009, "oversized message -> 1009")
        check(close_code_after(fresh(), frame(1, b"q" * 5000, fin=False), frame(0, b"q" * 5000)) == 1009,
              "oversized fragmented message -> 1009")
        check(close_code_after(fresh(), frame(8, struct.pack("!H", 1005))) == 1002, "close code 1005 -> 1002")
        check(close_code_after(fresh(), frame(8, struct.pack("!H", 999))) == 1002, "close code 999 -> 1002")
        check(close_code_after(fresh(), frame(8, b"\x03")) == 1002, "one-byte close -> 1002")
        check(close_code_after(fresh(), frame(1, b"\xff\xfe")) == 1007, "bad UTF-8 -> 1007")
        check(close_code_after(fresh(), frame(1, b"x", rsv=0x40)) == 1002, "reserved bit -> 1002")
        check(close_code_after(fresh(), frame(0, b"x")) == 1002, "stray continuation -> 1002")
        check(close_code_after(fresh(), frame(9, b"x" * 126)) == 1002, "long ping -> 1002")
        check(close_code_after(fresh(), frame(9, b"p", fin=False)) == 1002, "fragmented ping -> 1002")
        check(close_code_after(fresh(), frame(3, b"x")) == 1002, "reserved opcode -> 1002")
        check(close_code_after(fresh(), frame(1, b"a", fin=False), frame(1, b"b")) == 1002,
              "new message inside a fragmented one -> 1002")
        # A clean close is echoed with its code.
        check(close_code_after(fresh(), frame(8, struct.pack("!H", 4000) + b"bye")) == 4000, "close echoed")

        # Fragments with a ping between them: one message, and a pong.
        s = fresh()
        s.sendall(frame(1, b"/nick fr", fin=True) + frame(1, b"/join ", fin=False) + frame(9, b"hi") +
                  frame(0, b"ro", fin=False) + frame(0, b"om"))
        got = []
        while len(got) < 3:
            got.append(read_frame(s))
        check((10, b"hi") in got, f"pong with the ping's payload: {got}")
        check((1, b"* fr joined room") in got, f"fragments joined into one line: {got}")
        # The server answers a close and then closes the connection.
        check(close_code_after(s, frame(8, struct.pack("!H", 1000))) == 1000, "normal close echoed")
        check(s.recv(10) == b"", "TCP closed after the close handshake")
        check(chat.stop() == 0, "exit 0 after all that:\n" + chat.output())


# --- the page, from a directory ------------------------------------------------

def test_page_served_from_its_directory():
    """The page is a file served by http::files from chat.page_dir: ETag and 304, HEAD,
    a missing directory is a config error naming the key."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write("<!doctype html><title>a page of our own</title>")
        with Chat(f"chat.page_dir={d}") as chat:
            url = f"http://127.0.0.1:{chat.http_port}/"
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                check(r.read() == b"<!doctype html><title>a page of our own</title>", "the directory's index.html")
                check(r.headers["Content-Type"] == "text/html; charset=utf-8", r.headers["Content-Type"])
                etag = r.headers["ETag"]
                check(etag, "an ETag")
            try:
                urllib.request.urlopen(urllib.request.Request(url, headers={"If-None-Match": etag}), timeout=TIMEOUT)
                raise AssertionError("an unchanged page was sent again")
            except urllib.error.HTTPError as e:
                check(e.code == 304, f"304 for the same ETag, got {e.code}")
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT) as r:
                check(r.read() == b"" and r.headers["Content-Length"] == str(len(
                    "<!doctype html><title>a page of our own</title>")), "HEAD: the length, no body")
            check(chat.stop() == 0, "a clean stop")
    missing = subprocess.run([os.path.join(BIN_DIR, "coronet-chat"), "--set", "chat.page_dir=/nonexistent/chat"],
                             capture_output=True, text=True, timeout=TIMEOUT)
    check(missing.returncode == 2 and "chat.page_dir" in missing.stderr + missing.stdout,
          f"a config error naming chat.page_dir: {missing.returncode} {missing.stderr}")


def test_port_in_use_exits_2():
    """Either listener's address in use: a message naming it and exit status 2, the other
    listener not left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags in (["--listen", f"127.0.0.1:{port}", "--set", f"chat.tcp_listen=127.0.0.1:{free_port()}"],
                      ["--listen", f"127.0.0.1:{free_port()}", "--set", f"chat.tcp_listen=127.0.0.1:{port}"]):
            run = subprocess.run([os.path.join(BIN_DIR, "coronet-chat"), "--threads", "2"] + flags,
                                 capture_output=True, text=True, timeout=TIMEOUT)
            out = run.stdout + run.stderr
            check(run.returncode == 2 and f"127.0.0.1:{port}: address in use" in out,
                  f"exit 2 naming the address in use: {run.returncode} {out}")


# --- the page, in a real browser -----------------------------------------------

def test_browser_page():
    with Chat() as chat:
        browse(chat, "http")


def test_browser_page_over_https():
    """The page over HTTPS (HTTP/2, chosen by ALPN) and its WebSocket over wss:// (HTTP/1.1: a
    WebSocket does not ride HTTP/2 here), on the same server."""
    with Chat(f"tls.cert_file={pki('server.pem')}", f"tls.key_file={pki('server.key')}") as chat:
        # The throwaway CA is not in Chromium's store: certificate errors are waved through, the
        # connection is TLS all the same (the server speaks nothing else on that port).
        browse(chat, "https", ["--ignore-certificate-errors"], cafile=pki("ca.pem"), over_h2=True)


def browse(chat, scheme, flags=(), cafile=None, over_h2=False):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    check(chromium, "chromium is not installed (scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory() as profile:
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        page = urllib.request.urlopen(f"{scheme}://127.0.0.1:{chat.http_port}/", timeout=TIMEOUT,
                                      context=context).read().decode()
        check("<title>coronet chat</title>" in page and "http://" not in page and "https://" not in page,
              "the page is self-contained")
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0", *flags,
             f"{scheme}://127.0.0.1:{chat.http_port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            asyncio.run(drive_browser(browser, chat))
        finally:
            browser.kill()
            browser.wait()
        if over_h2:
            metrics = urllib.request.urlopen(f"{scheme}://127.0.0.1:{chat.http_port}/metrics", timeout=TIMEOUT,
                                             context=context).read().decode()
            check('coronet_http_requests_total{route="/",method="GET",status="200",protocol="HTTP/2"} 1' in metrics,
                  "chromium loaded the page over HTTP/2:\n" + metrics)
        check(chat.stop() == 0, "exit 0:\n" + chat.output())


async def drive_browser(browser, chat):
    devtools_port = None
    deadline = time.time() + 30
    while devtools_port is None:
        line = await asyncio.get_running_loop().run_in_executor(None, browser.stderr.readline)
        check(line or browser.poll() is None, "chromium exited")
        check(time.time() < deadline, "chromium did not start")
        if b"DevTools listening on ws://" in line:
            devtools_port = int(line.split(b"ws://127.0.0.1:")[1].split(b"/")[0])
    targets = []
    while not any(t.get("type") == "page" and "127.0.0.1" in t.get("url", "") for t in targets):
        check(time.time() < deadline, f"the page did not open: {targets}")
        with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=TIMEOUT) as r:
            targets = json.load(r)
        await asyncio.sleep(0.1)
    target = next(t for t in targets if t.get("type") == "page" and "127.0.0.1" in t.get("url", ""))

    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as cdp:
        ids = iter(range(1, 1 << 30))

        async def evaluate(expression):
            call = next(ids)
            await cdp.send(json.dumps({"id": call, "method": "Runtime.evaluate",
                                       "params": {"expression": expression, "returnByValue": True}}))
            while True:
                reply = json.loads(await cdp.recv())
                if reply.get("id") == call:
                    return reply["result"]["result"].get("value")

        async def wait_for(expression, what):
            end = time.time() + TIMEOUT
            while time.time() < end:
                if await evaluate(expression):
                    return
                await asyncio.sleep(0.05)
            log = await evaluate("document.getElementById('log').innerText")
            raise AssertionError(f"the page never showed {what}; it shows:\n{log}")

        shows = lambda text: f"document.getElementById('log').innerText.includes({json.dumps(text)})"
        await wait_for("document.getElementById('status').textContent === 'connected'", "connected")
        # A person: types a nick and a room, presses Join, types a line, presses Send.
        tcp = Line(chat.tcp_port)
        tcp.send("/nick terminal", "/join garden")
        tcp.expect("* terminal joined garden")
        await evaluate("""
            document.getElementById('nick').value = 'browser';
            document.getElementById('room').value = 'garden';
            document.getElementById('join').click();""")
        await wait_for(shows("* browser joined garden"), "its join")
        tcp.expect("* browser joined garden")
        await evaluate("""
            document.getElementById('text').value = 'hello from chromium';
            document.getElementById('say').click();""")
        tcp.expect("[garden] browser: hello from chromium")
        tcp.send("hello back from the terminal")
        await wait_for(shows("[garden] terminal: hello back from the terminal"), "the TCP client's line")


if __name__ == "__main__":
    harness.main(globals())
