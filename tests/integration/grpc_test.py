#!/usr/bin/python3
"""gRPC with the official implementation (Debian's python3-grpcio): its client against coronet's
server on gRPC's interop test cases, coronet's client against its server, and bad input written
frame by frame. Messages by protoc's Python output (protobuf-compiler), compiled here from
apps/grpc-interop/proto; the stubs are grpcio's generic ones, so no other generator is needed.

    grpc_test.py BIN_DIR SOURCE_DIR TEST     (one ctest per TEST; `list` names them)
"""
import os
import json
import queue
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc

import harness
from harness import App, BIN_DIR, SOURCE_DIR, TIMEOUT, free_port
from http2_test import H2, frame, DATA, END_STREAM

PROTO = os.path.join(SOURCE_DIR, "apps", "grpc-interop", "proto")
_out = tempfile.mkdtemp(prefix="coronet-grpc-py-")
subprocess.run(["protoc", f"--python_out={_out}", "-I", PROTO, "empty.proto", "messages.proto"], check=True)
sys.path.insert(0, _out)
import empty_pb2  # noqa: E402
import messages_pb2 as m  # noqa: E402

SERVICE = "/grpc.testing.TestService/"
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class Stub:
    """grpc.testing.TestService through grpcio's generic calls."""

    def __init__(self, channel):
        def call(kind, name, req, resp, service=SERVICE):
            return getattr(channel, kind)(service + name, request_serializer=req.SerializeToString,
                                          response_deserializer=resp.FromString)
        self.EmptyCall = call("unary_unary", "EmptyCall", empty_pb2.Empty, empty_pb2.Empty)
        self.UnaryCall = call("unary_unary", "UnaryCall", m.SimpleRequest, m.SimpleResponse)
        self.StreamingOutputCall = call("unary_stream", "StreamingOutputCall", m.StreamingOutputCallRequest,
                                        m.StreamingOutputCallResponse)
        self.StreamingInputCall = call("stream_unary", "StreamingInputCall", m.StreamingInputCallRequest,
                                       m.StreamingInputCallResponse)
        self.FullDuplexCall = call("stream_stream", "FullDuplexCall", m.StreamingOutputCallRequest,
                                   m.StreamingOutputCallResponse)
        self.UnimplementedCall = call("unary_unary", "UnimplementedCall", empty_pb2.Empty, empty_pb2.Empty)
        self.UnimplementedService = call("unary_unary", "UnimplementedCall", empty_pb2.Empty, empty_pb2.Empty,
                                         service="/grpc.testing.UnimplementedService/")


def payload(n):
    return m.Payload(body=b"\0" * n)


def output_request(*sizes, status=None, payload_size=0):
    r = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=s) for s in sizes],
                                     payload=payload(payload_size))
    if status:
        r.response_status.code, r.response_status.message = status
    return r


def expect_status(code, call, *args, **kwargs):
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, m.SimpleResponse)):
            list(result)
    except grpc.RpcError as e:
        assert e.code() == code, (e.code(), e.details())
        return e
    raise AssertionError(f"no {code}")


# --- the interop cases, as gRPC's interop test descriptions give them -----------------------------

def empty_unary(stub):
    assert stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT) == empty_pb2.Empty()


def large_unary(stub):
    r = stub.UnaryCall(m.SimpleRequest(response_size=314159, payload=payload(271828)), timeout=TIMEOUT)
    assert len(r.payload.body) == 314159 and r.payload.body == b"\0" * 314159


def client_streaming(stub):
    sizes = [27182, 8, 1828, 45904]
    r = stub.StreamingInputCall(iter([m.StreamingInputCallRequest(payload=payload(n)) for n in sizes]),
                                timeout=TIMEOUT)
    assert r.aggregated_payload_size == 74922, r


def server_streaming(stub):
    sizes = [31415, 9, 2653, 58979]
    got = [len(r.payload.body) for r in stub.StreamingOutputCall(output_request(*sizes), timeout=TIMEOUT)]
    assert got == sizes, got


def ping_pong(stub):
    requests = queue.Queue()
    call = stub.FullDuplexCall(iter(requests.get, None), timeout=TIMEOUT)
    for size, sent in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
        requests.put(output_request(size, payload_size=sent))
        assert len(next(call).payload.body) == size  # answered before the next request goes
    requests.put(None)
    assert list(call) == []


def empty_stream(stub):
    assert list(stub.FullDuplexCall(iter([]), timeout=TIMEOUT)) == []


def timeout_on_sleeping_server(stub):
    requests = queue.Queue()
    call = stub.FullDuplexCall(iter(requests.get, None), timeout=0.001)
    requests.put(output_request(payload_size=27182))
    expect_status(grpc.StatusCode.DEADLINE_EXCEEDED, list, call)
    requests.put(None)


def cancel_after_begin(stub):
    requests = queue.Queue()
    future = stub.StreamingInputCall.future(iter(requests.get, None), timeout=TIMEOUT)
    future.cancel()
    assert future.cancelled()
    requests.put(None)


def cancel_after_first_response(stub):
    requests = queue.Queue()
    call = stub.FullDuplexCall(iter(requests.get, None), timeout=TIMEOUT)
    requests.put(output_request(31415, payload_size=27182))
    assert len(next(call).payload.body) == 31415
    call.cancel()
    expect_status(grpc.StatusCode.CANCELLED, next, call)
    requests.put(None)


def status_code_and_message(stub):
    message = "test status message"
    request = m.SimpleRequest()
    request.response_status.code, request.response_status.message = 2, message
    e = expect_status(grpc.StatusCode.UNKNOWN, stub.UnaryCall, request, timeout=TIMEOUT)
    assert e.details() == message, e.details()
    e = expect_status(grpc.StatusCode.UNKNOWN, stub.FullDuplexCall,
                      iter([output_request(status=(2, message))]), timeout=TIMEOUT)
    assert e.details() == message, e.details()


def special_status_message(stub):
    request = m.SimpleRequest()
    request.response_status.code, request.response_status.message = 2, SPECIAL
    e = expect_status(grpc.StatusCode.UNKNOWN, stub.UnaryCall, request, timeout=TIMEOUT)
    assert e.details() == SPECIAL, repr(e.details())


def custom_metadata(stub):
    metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
                ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b"))
    _, call = stub.UnaryCall.with_call(m.SimpleRequest(response_size=314159, payload=payload(271828)),
                                       metadata=metadata, timeout=TIMEOUT)
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata()
    assert ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b") in call.trailing_metadata()
    call = stub.FullDuplexCall(iter([output_request(314159, payload_size=271828)]), metadata=metadata,
                               timeout=TIMEOUT)
    assert len(next(call).payload.body) == 314159
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata()
    assert list(call) == []
    assert ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b") in call.trailing_metadata()


def unimplemented_method(stub):
    expect_status(grpc.StatusCode.UNIMPLEMENTED, stub.UnimplementedCall, empty_pb2.Empty(), timeout=TIMEOUT)


def unimplemented_service(stub):
    expect_status(grpc.StatusCode.UNIMPLEMENTED, stub.UnimplementedService, empty_pb2.Empty(), timeout=TIMEOUT)


CASES = [empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream,
         timeout_on_sleeping_server, cancel_after_begin, cancel_after_first_response, status_code_and_message,
         special_status_message, custom_metadata, unimplemented_method, unimplemented_service]


def test_server_passes_the_interop_cases():
    with App("coronet-grpc-interop") as app:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = Stub(channel)
            for case in CASES:
                case(stub)
            # and the server is still whole: the cancelled calls left nothing behind
            for case in CASES:
                case(stub)
        assert app.stop() == 0


# --- coronet's client against grpcio's server ----------------------------------------------------

class PythonTestService:
    """grpc.testing.TestService in grpcio, as the interop descriptions ask of a server."""

    def __init__(self):
        def echo(context):
            md = dict(context.invocation_metadata())
            if "x-grpc-test-echo-initial" in md:
                context.send_initial_metadata((("x-grpc-test-echo-initial", md["x-grpc-test-echo-initial"]),))
            if "x-grpc-test-echo-trailing-bin" in md:
                context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin",
                                                md["x-grpc-test-echo-trailing-bin"]),))

        def fail(status, context):
            if status.code:
                context.abort({c.value[0]: c for c in grpc.StatusCode}[status.code], status.message)

        failures = {}  # x-fail-first "N:key": the first N calls with the key fail UNAVAILABLE

        def unary(request, context):
            echo(context)
            if first := dict(context.invocation_metadata()).get("x-fail-first"):
                n, key = first.split(":", 1)
                failures[key] = failures.get(key, 0) + 1
                if failures[key] <= int(n):
                    context.abort(grpc.StatusCode.UNAVAILABLE, f"attempt {failures[key]} refused")
            fail(request.response_status, context)
            return m.SimpleResponse(payload=payload(request.response_size))

        def output(request, context):
            echo(context)
            for p in request.response_parameters:
                yield m.StreamingOutputCallResponse(payload=payload(p.size))
            fail(request.response_status, context)

        def inputs(requests, context):
            echo(context)
            return m.StreamingInputCallResponse(aggregated_payload_size=sum(len(r.payload.body) for r in requests))

        def duplex(requests, context):
            echo(context)
            for r in requests:
                for p in r.response_parameters:
                    if p.interval_us:
                        time.sleep(p.interval_us / 1e6)
                    yield m.StreamingOutputCallResponse(payload=payload(p.size))
                fail(r.response_status, context)

        def h(kind, f, req, resp):
            return getattr(grpc, kind)(f, request_deserializer=req.FromString,
                                       response_serializer=resp.SerializeToString)
        self.handler = grpc.method_handlers_generic_handler("grpc.testing.TestService", {
            "EmptyCall": h("unary_unary_rpc_method_handler", lambda r, c: (echo(c), empty_pb2.Empty())[1],
                           empty_pb2.Empty, empty_pb2.Empty),
            "UnaryCall": h("unary_unary_rpc_method_handler", unary, m.SimpleRequest, m.SimpleResponse),
            "StreamingOutputCall": h("unary_stream_rpc_method_handler", output, m.StreamingOutputCallRequest,
                                     m.StreamingOutputCallResponse),
            "StreamingInputCall": h("stream_unary_rpc_method_handler", inputs, m.StreamingInputCallRequest,
                                    m.StreamingInputCallResponse),
            "FullDuplexCall": h("stream_stream_rpc_method_handler", duplex, m.StreamingOutputCallRequest,
                                m.StreamingOutputCallResponse),
        })


CLIENT_CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
                "timeout_on_sleeping_server", "cancel_after_begin", "cancel_after_first_response",
                "status_code_and_message", "special_status_message",
                "custom_metadata", "unimplemented_method", "unimplemented_service"]
PYTHON_SERVER_CASES = CLIENT_CASES + ["retry_on_unavailable"]  # coronet's own: the retry policy


def test_client_passes_the_interop_cases():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((PythonTestService().handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        r = subprocess.run([os.path.join(BIN_DIR, "coronet-grpc-interop-client"), f"http://127.0.0.1:{port}",
                            *PYTHON_SERVER_CASES], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        for case in PYTHON_SERVER_CASES:
            assert f"{case}: ok" in r.stdout, r.stdout + r.stderr
    finally:
        server.stop(None)


def test_client_passes_the_interop_cases_against_coronets_server():
    """Both ends coronet's: the streams interleave on both sides, and the server
    takes its cancelled calls in its stride (the cases run twice)."""
    with App("coronet-grpc-interop") as app:
        for _ in range(2):
            r = subprocess.run([os.path.join(BIN_DIR, "coronet-grpc-interop-client"), f"http://127.0.0.1:{app.port}",
                                *CLIENT_CASES], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            for case in CLIENT_CASES:
                assert f"{case}: ok" in r.stdout, r.stdout + r.stderr
        assert app.stop() == 0


# --- bad input, frame by frame --------------------------------------------------------------------

def grpc_call(c, path, body_frames, end=True, extra=()):
    """A gRPC request on a new stream of `c`: its HEADERS (and CONTINUATIONs), then each of
    `body_frames` as DATA."""
    sid = c.request(path, method="POST", end_stream=False,
                    extra=[("content-type", "application/grpc"), ("te", "trailers"), *extra])
    for i, data in enumerate(body_frames):
        c.send(frame(DATA, END_STREAM if end and i == len(body_frames) - 1 else 0, sid, data))
    if end and not body_frames:
        c.send(frame(DATA, END_STREAM, sid, b""))
    return sid


def grpc_status(c, sid):
    status, headers, _ = c.response(sid)
    assert status == 200, (status, headers)
    return int(headers["grpc-status"]), headers.get("grpc-message", "")


def framed(data, flag=0):
    return bytes([flag]) + struct.pack(">I", len(data)) + data


def test_bad_input_gets_a_status():
    with App("coronet-grpc-interop", "grpc.max_receive_bytes=1000000") as app:
        c = H2(app.port)
        unary = SERVICE + "UnaryCall"
        # a prefix announcing 4 GiB - 1: RESOURCE_EXHAUSTED before a byte of it is read
        sid = grpc_call(c, unary, [b"\0\xff\xff\xff\xff"], end=False)
        code, message = grpc_status(c, sid)
        assert code == 8 and "grpc.max_receive_bytes" in message, (code, message)
        # a message cut short by the end of the request: INTERNAL
        sid = grpc_call(c, unary, [framed(b"\x10\x05")[:-1]])
        assert grpc_status(c, sid)[0] == 13
        # the compressed flag without grpc-encoding: INTERNAL
        sid = grpc_call(c, unary, [framed(b"\x10\x05", flag=1)])
        code, message = grpc_status(c, sid)
        assert code == 13 and "grpc-encoding" in message, (code, message)
        # an encoding the server does not know: UNIMPLEMENTED
        sid = grpc_call(c, unary, [framed(b"\x10\x05", flag=1)], extra=[("grpc-encoding", "snappy")])
        code, message = grpc_status(c, sid)
        assert code == 12 and "snappy" in message, (code, message)
        # a flag that is neither 0 nor 1: INTERNAL
        sid = grpc_call(c, unary, [framed(b"", flag=7)])
        assert grpc_status(c, sid)[0] == 13
        # a message that is no SimpleRequest: INTERNAL
        sid = grpc_call(c, unary, [framed(b"\xff\xff\xff")])
        assert grpc_status(c, sid)[0] == 13
        # gzip, as grpc-encoding says: answered
        import gzip
        request = m.SimpleRequest(response_size=10).SerializeToString()
        sid = grpc_call(c, unary, [framed(gzip.compress(request), flag=1)], extra=[("grpc-encoding", "gzip")])
        assert grpc_status(c, sid)[0] == 0
        # metadata over the header limit: RESOURCE_EXHAUSTED on that stream
        sid = grpc_call(c, unary, [framed(b"")], extra=[("x-big", "a" * 70000)])
        assert grpc_status(c, sid)[0] == 8
        # a stream reset mid-message: the server lives on, the connection too
        sid = grpc_call(c, SERVICE + "StreamingInputCall", [framed(b"\x0a\x05" + b"x" * 100)[:50]], end=False)
        c.send(frame(3, 0, sid, struct.pack(">I", 8)))  # RST_STREAM CANCEL
        sid = grpc_call(c, SERVICE + "EmptyCall", [framed(b"")])
        assert grpc_status(c, sid)[0] == 0
        # a client stream never half-closed, past its deadline: DEADLINE_EXCEEDED
        sid = grpc_call(c, SERVICE + "StreamingInputCall", [framed(b"")], end=False,
                        extra=[("grpc-timeout", "200m")])
        code, _ = grpc_status(c, sid)
        assert code == 4, code
        c.close()
        assert app.stop() == 0


def test_http_answers_become_grpc_statuses():
    """The server's own answers to a gRPC call (no route, shedding, the deadline) are gRPC statuses."""
    with App("coronet-grpc-interop", "http.max_concurrent_requests=1") as app:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = Stub(channel)
            other = channel.unary_unary("/nowhere", request_serializer=lambda x: x,
                                        response_deserializer=lambda x: x)
            e = expect_status(grpc.StatusCode.UNIMPLEMENTED, other, b"", timeout=TIMEOUT)
            assert "404" in e.details(), e.details()
            # one call holds the only handler slot: the next is shed, UNAVAILABLE
            requests = queue.Queue()
            held = stub.FullDuplexCall(iter(requests.get, None), timeout=TIMEOUT)
            requests.put(output_request(1))
            assert len(next(held).payload.body) == 1
            expect_status(grpc.StatusCode.UNAVAILABLE, stub.EmptyCall, empty_pb2.Empty(), timeout=TIMEOUT)
            requests.put(None)
            assert list(held) == []
            empty_unary(stub)
        # a method still sleeping when its deadline passes: DEADLINE_EXCEEDED, from the server (a raw
        # client: nothing on its side gives up first)
        sleepy = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=1, interval_us=5000000)])
        c = H2(app.port)
        started = time.time()
        sid = grpc_call(c, SERVICE + "FullDuplexCall", [framed(sleepy.SerializeToString())],
                        extra=[("grpc-timeout", "200m")])
        assert grpc_status(c, sid)[0] == 4
        assert time.time() - started < 3, time.time() - started
        c.close()
        assert app.stop() == 0


def test_health_follows_readiness():
    """grpc.health.v1.Health: SERVING while serving, NOT_FOUND for a service it does not know, and a
    Watch told NOT_SERVING at the stop, which then ends the call and lets the app exit 0."""
    with App("coronet-grpc-interop") as app:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            raw = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
            check = channel.unary_unary("/grpc.health.v1.Health/Check", **raw)
            watch = channel.unary_stream("/grpc.health.v1.Health/Watch", **raw)
            name = lambda s: b"\x0a" + bytes([len(s)]) + s.encode()
            assert check(b"", timeout=TIMEOUT) == b"\x08\x01"  # the server: SERVING
            assert check(name("grpc.testing.TestService"), timeout=TIMEOUT) == b"\x08\x01"
            expect_status(grpc.StatusCode.NOT_FOUND, check, name("nope.Nope"), timeout=TIMEOUT)
            assert list(watch(name("nope.Nope"), timeout=TIMEOUT)) == [b"\x08\x03"]  # SERVICE_UNKNOWN
            stream = watch(b"", timeout=TIMEOUT)
            assert next(stream) == b"\x08\x01"
            app.signal(signal.SIGTERM)
            assert next(stream) == b"\x08\x02"  # NOT_SERVING, once the stop began
            assert list(stream) == []
            assert app.wait() == 0


def test_gateway_calls_users_over_grpc():
    """backends.users = grpc://: the dashboard's user comes from demo.Users over h2c (the backend's
    metrics count the gRPC route), NOT_FOUND is the dashboard's 404, a users service gone is 502."""
    backends = {}
    try:
        for role in ("users", "orders", "recommendations"):
            backends[role] = App("coronet-backend", "backend.latency_ms=0", "backend.jitter_ms=0",
                                 "backend.error_rate=0", extra=["--role", role])
        sets = [f"backends.users=grpc://127.0.0.1:{backends['users'].port}"]
        sets += [f"backends.{r}=http://127.0.0.1:{backends[r].port}" for r in ("orders", "recommendations")]
        with App("coronet-gateway", *sets) as gw:
            base = f"http://127.0.0.1:{gw.port}/api/users"
            doc = json.loads(urllib.request.urlopen(f"{base}/7/dashboard", timeout=TIMEOUT).read())
            assert doc["user"] == {"id": 7, "name": "User 7", "email": doc["user"]["email"]}, doc
            assert doc["partial"] is False and doc["orders"], doc
            assert backends["users"].metric("coronet_http_requests_total", route="/demo.Users/GetUser",
                                            protocol="HTTP/2") == 1
            try:
                urllib.request.urlopen(f"{base}/5000000/dashboard", timeout=TIMEOUT)
                raise AssertionError("no 404")
            except urllib.error.HTTPError as e:
                assert e.code == 404, e.code
            assert backends["users"].stop() == 0
            try:
                urllib.request.urlopen(f"{base}/7/dashboard", timeout=TIMEOUT)
                raise AssertionError("no 502")
            except urllib.error.HTTPError as e:
                assert e.code == 502 and b"UNAVAILABLE" in e.read(), e.code
            assert gw.stop() == 0
    finally:
        for app in backends.values():
            app.kill()


if __name__ == "__main__":
    harness.main(globals())
