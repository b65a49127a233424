"""The echo backend, with real HTTP requests."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from egobs.echo import EchoServer, start_echo_in_thread


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    srv = start_echo_in_thread(name="alpha")
    try:
        yield srv
    finally:
        srv.stop()


def _conn(srv: EchoServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)


def test_reply_describes_the_request(echo: EchoServer) -> None:
    c = _conn(echo)
    c.request("GET", "/a/b?x=1&y=%20", headers={"Host": "example.com", "X-Test": "yes"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("content-type") == "application/json"
    body = json.loads(r.read())
    assert body["backend"] == "alpha"
    assert body["method"] == "GET"
    assert body["path"] == "/a/b?x=1&y=%20"
    assert body["host"] == "example.com"
    assert body["headers"]["x-test"] == "yes"
    assert body["headers"]["host"] == "example.com"
    assert body["body_bytes"] == 0
    c.close()


def test_bodies_are_counted(echo: EchoServer) -> None:
    c = _conn(echo)
    c.request("POST", "/upload", body=b"x" * 1000)
    assert json.loads(c.getresponse().read())["body_bytes"] == 1000
    c.request("PUT", "/chunked", body=iter([b"abc", b"defgh"]), encode_chunked=True)
    r = c.getresponse()
    body = json.loads(r.read())
    assert (r.status, body["method"], body["body_bytes"]) == (200, "PUT", 8)
    assert body["headers"]["transfer-encoding"] == "chunked"
    c.close()


def test_any_method_is_echoed(echo: EchoServer) -> None:
    c = _conn(echo)
    for method in ("DELETE", "PATCH", "OPTIONS", "PURGE"):
        c.request(method, "/m")
        assert json.loads(c.getresponse().read())["method"] == method
    c.request("HEAD", "/m")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    assert int(r.getheader("content-length") or 0) > 0
    c.close()


def test_status_endpoint(echo: EchoServer) -> None:
    c = _conn(echo)
    for code in (503, 404, 201, 302):
        c.request("GET", f"/status/{code}?q=1")
        r = c.getresponse()
        assert r.status == code
        assert json.loads(r.read())["path"] == f"/status/{code}?q=1"
    c.request("GET", "/status/204")
    r = c.getresponse()
    assert (r.status, r.read()) == (204, b"")
    c.request("GET", "/status/099")
    r = c.getresponse()
    assert r.status == 400
    r.read()
    # Only exactly /status/<3 digits>.
    c.request("GET", "/status/503/x")
    r = c.getresponse()
    assert r.status == 200
    r.read()
    c.close()


def test_keep_alive_reuses_the_connection(echo: EchoServer) -> None:
    c = _conn(echo)
    c.request("GET", "/one")
    c.getresponse().read()
    sock = c.sock
    c.request("POST", "/two", body=b"hi")
    r = c.getresponse()
    assert json.loads(r.read())["body_bytes"] == 2
    assert c.sock is sock and sock is not None
    c.close()


def test_stop_releases_port_and_cuts_connections() -> None:
    srv = start_echo_in_thread(name="beta")
    c = _conn(srv)
    c.request("GET", "/")
    assert json.loads(c.getresponse().read())["backend"] == "beta"
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        c.request("GET", "/")
        c.getresponse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2)


def test_run_echo_serves_until_terminated() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from egobs.echo import run_echo; run_echo(name='gamma', port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/x")
                break
            except ConnectionRefusedError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "echo did not come up"
                time.sleep(0.05)
        assert json.loads(c.getresponse().read())["backend"] == "gamma"
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # Quiet: no per-request access log on stderr.
    assert proc.stderr is not None and b"GET /x" not in proc.stderr.read()
