"""Servers refuse a port someone else holds, and say so in one line (issue 13).

gRPC sets SO_REUSEPORT by default, so a second `egobs serve` on the same xDS port used to
start fine and the kernel split the proxies between the two control planes. Every server
egobs runs (xDS, admin, sink gRPC, sink metrics) must now fail to start instead, and the
commands must print one line naming the port, no traceback. Real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit import unused_port, wait_until

from egobs import admin
from egobs.listen import ListenError, check_listen
from egobs.sink import Sink, SinkConfig
from egobs.xds.server import serve
from egobs.xds.snapshot import SnapshotCache

# Generous: the command fails before it serves anything, within a second or two.
COMMAND_TIMEOUT_S = 60


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A 127.0.0.1 port held by a listening plain socket (no SO_REUSEPORT), as another
    program would hold it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def _port(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def _in_use(port: int, server: str) -> str:
    return f"{server}: cannot listen on 127.0.0.1:{port}: address already in use"


# --------------------------------------------------------------------------- xDS in process


def test_xds_refuses_a_port_bound_by_a_plain_socket() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))  # bound, not even listening
            port = _port(s)
            with pytest.raises(ListenError) as failed:
                await serve(SnapshotCache(), address="127.0.0.1", port=port)
        assert str(failed.value) == _in_use(port, "xds")
        assert failed.value.errno == errno.EADDRINUSE
        assert (failed.value.server, failed.value.port) == ("xds", port)
        # Nothing was left listening: the port is free again once the socket is closed.
        again = await serve(SnapshotCache(), address="127.0.0.1", port=port)
        try:
            assert again.port == port
        finally:
            await again.stop()

    asyncio.run(main())


def test_a_second_xds_server_on_the_same_port_fails() -> None:
    async def main() -> None:
        first = await serve(SnapshotCache(), address="127.0.0.1", port=0)
        try:
            with pytest.raises(ListenError) as failed:
                await serve(SnapshotCache(), address="127.0.0.1", port=first.port)
            assert str(failed.value) == _in_use(first.port, "xds")
        finally:
            await first.stop()

    asyncio.run(main())


def _child(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return what it printed.

    For gRPC's failed-bind path, and aiohttp's answer to malformed requests: run in this
    process next to each other, they left memory that a later garbage collection crashed on
    (SIGSEGV after the last test, grpcio 1.85, aiohttp 3.14 with its C parser, CPython
    3.11), which would take a whole test run down with it.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


_XDS_SHARED_PORT = """
import asyncio
from egobs.xds import server
from egobs.xds.snapshot import SnapshotCache

server.check_listen = lambda *args: None  # gRPC's own bind must refuse


async def main():
    first = await server.serve(SnapshotCache(), address="127.0.0.1", port=0)
    try:
        await server.serve(SnapshotCache(), address="127.0.0.1", port=first.port)
        print("shared", first.port)
    except server.ListenError as exc:
        print(first.port, exc, sep="\\n")
    finally:
        await first.stop()

asyncio.run(main())
"""


def test_grpc_itself_no_longer_shares_the_port() -> None:
    """Without the up-front check, gRPC's own bind must fail: SO_REUSEPORT is off (with it
    on, gRPC binds the second server to the same port and both run)."""
    port, error = _child(_XDS_SHARED_PORT).splitlines()
    assert error == _in_use(int(port), "xds")


def test_check_listen_names_other_reasons() -> None:
    # TEST-NET-3 (RFC 5737): never an address of this host.
    with pytest.raises(ListenError) as failed:
        check_listen("xds", "203.0.113.1", 18000)
    assert str(failed.value) == "xds: cannot listen on 203.0.113.1:18000: " + (
        "cannot assign requested address"
    )
    check_listen("xds", "127.0.0.1", 0)  # port 0 always binds


# --------------------------------------------------------------------------- sink in process


def test_sink_refuses_a_held_grpc_port(held: socket.socket) -> None:
    port = _port(held)
    sink = Sink(SinkConfig.model_validate({"port": port, "metrics": {"port": 0}}))
    with pytest.raises(ListenError) as failed:
        asyncio.run(sink.start())
    assert str(failed.value) == _in_use(port, "sink")


def test_sink_refusing_its_metrics_port_leaves_nothing_bound(held: socket.socket) -> None:
    grpc_port = unused_port()
    metrics_port = _port(held)
    sink = Sink(SinkConfig.model_validate({"port": grpc_port, "metrics": {"port": metrics_port}}))
    with pytest.raises(ListenError) as failed:
        asyncio.run(sink.start())
    assert str(failed.value) == _in_use(metrics_port, "sink metrics")
    # The gRPC port it had bound first is released.
    check_listen("test", "127.0.0.1", grpc_port)


_SINK_SHARED_PORT = """
import asyncio
from egobs.sink import Sink, SinkConfig, server
from egobs.listen import ListenError, check_listen
from testkit import unused_port, wait_until

server.check_listen = lambda *args: None  # gRPC's own bind must refuse


async def main():
    first = Sink(SinkConfig.model_validate({"port": 0, "metrics": {"port": 0}}))
    await first.start()
    try:
        metrics = unused_port()
        second = Sink(
            SinkConfig.model_validate({"port": first.grpc_port, "metrics": {"port": metrics}})
        )
        try:
            await second.start()
            print("shared", first.grpc_port)
        except ListenError as exc:
            print(first.grpc_port, exc, sep="\\n")
        check_listen("metrics", "127.0.0.1", metrics)  # released again
    finally:
        await first.stop()

asyncio.run(main())
"""


def test_a_second_sink_on_the_same_grpc_port_fails() -> None:
    """gRPC's own bind refuses the port (SO_REUSEPORT off), and the metrics port the
    second sink bound first is released."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
    port, error = _child(code + _SINK_SHARED_PORT).splitlines()
    assert error == _in_use(int(port), "sink")


# --------------------------------------------------------------------------- commands


def _run(args: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "egobs.cli", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        cwd=cwd,
    )
    return proc.returncode, proc.stderr


def _assert_one_line(stderr: str, expected: str, port: int) -> None:
    assert "Traceback" not in stderr, stderr
    naming = [line for line in stderr.splitlines() if str(port) in line]
    assert naming == [f"egobs: {expected}"], stderr


def _serve_config(tmp: Path, *, xds_port: int, admin_port: int) -> Path:
    resources = tmp / "resources"
    resources.mkdir(exist_ok=True)
    config = tmp / "egobs.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "egobs.dev/v1alpha1",
                "kind": "EgobsConfig",
                "provider": {"type": "File", "file": {"paths": [str(resources)]}},
                "xds": {"address": "127.0.0.1", "port": xds_port},
                "admin": {"address": "127.0.0.1", "port": admin_port},
                # No Envoy: the command must fail before anything would be run.
                "infra": {"type": "External"},
            }
        )
    )
    return config


@pytest.mark.parametrize("taken", ["xds", "admin"])
def test_serve_exits_with_one_line_when_its_port_is_taken(
    taken: str, held: socket.socket, tmp_path: Path
) -> None:
    port = _port(held)
    config = _serve_config(
        tmp_path,
        xds_port=port if taken == "xds" else 0,
        admin_port=port if taken == "admin" else 0,
    )
    code, stderr = _run(["serve", "-c", str(config)], tmp_path)
    assert code == 1, stderr
    _assert_one_line(stderr, _in_use(port, taken), port)


@pytest.mark.parametrize("taken", ["sink", "sink metrics"])
def test_sink_command_exits_with_one_line_when_its_port_is_taken(
    taken: str, held: socket.socket, tmp_path: Path
) -> None:
    port = _port(held)
    ports = ["--port", str(port), "--metrics-port", "0"]
    if taken == "sink metrics":
        ports = ["--port", "0", "--metrics-port", str(port)]
    code, stderr = _run(["sink", *ports], tmp_path)
    assert code == 1, stderr
    _assert_one_line(stderr, _in_use(port, taken), port)


# --------------------------------------------------------------------------- admin requests


class _View:
    """Just enough of :class:`egobs.admin.AdminView` for /healthz and /readyz."""

    def __init__(self, *, fail: bool = False) -> None:
        self._fail = fail

    @property
    def ready(self) -> bool:
        if self._fail:
            raise RuntimeError("a bug in a handler")
        return True


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


GARBAGE = [
    b"\x16\x03\x01garbage\r\n\r\n",  # TLS to a plain-HTTP port
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n",  # request line too long
    b"\x00\xff\x1b[31m\r\n\r\n",
]


def _garbage_log(args: list[str], port: int, tmp_path: Path, what: str) -> str:
    """Run ``egobs ARGS`` (a server answering /healthz on ``port``) at debug level, send it
    every GARBAGE request, check each is answered 400 (or the connection closed) and the
    server stays healthy; return what it logged."""
    log_path = tmp_path / f"{what.split()[-1]}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "egobs.cli", *args, "--log-level", "debug"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:

            def healthy() -> bool:
                assert proc.poll() is None, log_path.read_text()
                return _get(port, "/healthz") == 200

            wait_until(healthy, timeout=30, what=f"{what} /healthz")
            for data in GARBAGE:
                answer = _raw(port, data)
                assert answer == b"" or answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
            assert _get(port, "/healthz") == 200
        finally:
            proc.terminate()
            proc.wait(15)
    return log_path.read_text(errors="replace")


def test_admin_answers_garbage_with_400_and_one_log_line(tmp_path: Path) -> None:
    """`egobs serve` at debug level: each malformed request is answered 400 and logged as
    one debug line, never with a traceback (aiohttp logs one at ERROR by itself). In a
    child process: see :func:`_child`."""
    admin_port = unused_port()
    config = _serve_config(tmp_path, xds_port=0, admin_port=admin_port)
    text = _garbage_log(["serve", "-c", str(config)], admin_port, tmp_path, "egobs serve")
    assert "Traceback" not in text, text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert not [e for e in lines if e["level"] in ("error", "critical")], text
    bad = [e for e in lines if "Error handling request" in e["msg"]]
    assert len(bad) == len(GARBAGE), text
    assert all(e["level"] == "debug" and "exc" not in e for e in bad), bad


def test_admin_handler_failures_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only malformed requests are shortened: a bug in egobs still logs its traceback."""

    async def main() -> None:
        server = await admin.start(_View(fail=True), address="127.0.0.1", port=0)  # type: ignore[arg-type]
        try:
            assert await asyncio.to_thread(_get, server.port, "/readyz") == 500
        finally:
            await server.stop()

    asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None, caplog.records
    assert "a bug in a handler" in caplog.text


def test_admin_refuses_a_held_port(held: socket.socket) -> None:
    port = _port(held)

    async def main() -> Any:
        return await admin.start(_View(), address="127.0.0.1", port=port)  # type: ignore[arg-type]

    with pytest.raises(ListenError) as failed:
        asyncio.run(main())
    assert str(failed.value) == _in_use(port, "admin")


@pytest.mark.parametrize("command", ["echo", "demo"])
def test_an_echo_port_in_use_is_one_line(command: str) -> None:
    """`egobs echo` and the demo's echo backends report a taken port like every server."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        if command == "echo":
            args = ["echo", "--name", "a", "--port", str(port)]
        else:
            args = ["demo", "--once", "--echo-ports", f"{port},0", "--xds-port", "0"]
            args += ["--admin-port", "0", "--sink-port", "0", "--sink-metrics-port", "0"]
            args += ["--stats-port", "0"]
        proc = subprocess.run(
            [sys.executable, "-m", "egobs.cli", *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    name = "a" if command == "echo" else "echo-a"
    assert f"echo {name}: cannot listen on 127.0.0.1:{port}: address already in use" in proc.stderr


def test_sink_metrics_answers_garbage_with_400_and_one_log_line(tmp_path: Path) -> None:
    """The same of `egobs sink`'s /metrics port: 400s, one debug line each, no traceback."""
    metrics_port = unused_port()
    args = ["sink", "--port", "0", "--metrics-port", str(metrics_port)]
    text = _garbage_log(args, metrics_port, tmp_path, "egobs sink")
    assert "Traceback" not in text, text
    assert "Error handling request" in text, text
