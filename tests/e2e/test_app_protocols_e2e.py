"""Service port appProtocols ``kubernetes.io/h2c`` and ``kubernetes.io/ws`` through a real Envoy.

One `egobs serve` with a host-mode Envoy; the backends run in this test on 127.0.0.1:

- an HTTP/2-only server (the ``h2`` library, cleartext, prior knowledge: anything but the
  HTTP/2 connection preface is refused), answering each request with the protocol, method,
  path and authority it saw. Behind a Service port with ``appProtocol: kubernetes.io/h2c``
  an HTTP/1.1 client request through the Gateway succeeds, and the backend saw it as an
  HTTP/2 stream; behind a Service port without an appProtocol, the same backend gets
  HTTP/1.1, refuses it, and the client gets a 502/503: the appProtocol is what makes it work.
- an aiohttp WebSocket server behind a Service port with ``appProtocol: kubernetes.io/ws``:
  an aiohttp client's upgrade goes through the Gateway (the backend sees an HTTP/1.1
  ``Upgrade: websocket`` request), messages go both ways (text, binary, one larger than a
  socket read, one the server sends unasked), and a client close reaches the backend as a
  clean close (code 1000) and the client gets the close back.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from aiohttp import web
from e2e_helpers import GATEWAY_CLASS, Serve, request
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

pytestmark = [pytest.mark.envoy, pytest.mark.usefixtures("envoy_bin")]

LOCALHOST = "127.0.0.1"
GATEWAY = "default/eg"
HOST = "apps.example.test"
_T = TypeVar("_T")


# --------------------------------------------------------------------------- backends


@dataclass
class H2Request:
    """One HTTP/2 stream the h2-only backend answered."""

    method: str
    path: str
    authority: str


@dataclass
class WsSession:
    """One WebSocket the backend accepted: the upgrade request and what went over it."""

    path: str
    http_version: str
    upgrade: str
    received: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None  # set once the socket is closed


class AppBackends:
    """An HTTP/2-only server and a WebSocket server on one asyncio loop in a thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="app-backends")
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._runners: list[web.AppRunner] = []
        self.h2_requests: list[H2Request] = []
        self.h2_refused: list[bytes] = []  # first bytes of connections that were not HTTP/2
        self.ws_sessions: list[WsSession] = []

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- HTTP/2 with prior knowledge only

    def h2_only(self, name: str) -> int:
        """A cleartext HTTP/2 server (prior knowledge) answering each request with JSON
        naming ``name``, the protocol and what it saw; a connection that does not open
        with the HTTP/2 preface gets a GOAWAY and is closed, without any answer."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
            )
            conn.initiate_connection()
            writer.write(conn.data_to_send())
            streams: dict[int, dict[str, str]] = {}
            first = True
            try:
                while data := await reader.read(65536):
                    try:
                        events = conn.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        if first:
                            self.h2_refused.append(data[:64])
                        writer.write(conn.data_to_send())  # the GOAWAY
                        break
                    first = False
                    for event in events:
                        if isinstance(event, h2.events.RequestReceived):
                            streams[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
                        elif isinstance(event, h2.events.DataReceived):
                            conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, h2.events.StreamEnded):
                            self._h2_answer(
                                conn, name, event.stream_id, streams.pop(event.stream_id)
                            )
                    writer.write(conn.data_to_send())
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                self._writers.discard(writer)
                writer.close()

        async def start() -> int:
            server = await asyncio.start_server(handle, LOCALHOST, 0)
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return self._run(start())

    def _h2_answer(
        self, conn: h2.connection.H2Connection, name: str, stream_id: int, headers: dict[str, str]
    ) -> None:
        seen = H2Request(headers[":method"], headers[":path"], headers.get(":authority", ""))
        self.h2_requests.append(seen)
        body = json.dumps(
            {
                "backend": name,
                "protocol": "HTTP/2",
                "method": seen.method,
                "path": seen.path,
                "authority": seen.authority,
            }
        ).encode()
        conn.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ],
        )
        conn.send_data(stream_id, body, end_stream=True)

    # -- WebSocket (HTTP/1.1 upgrade)

    def websocket(self, name: str) -> int:
        """An aiohttp server upgrading ``/ws...`` to a WebSocket that greets the client,
        echoes text as ``name:text`` and binary reversed, and records what it got."""

        async def handle(req: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(req)
            session = WsSession(
                path=req.path,
                http_version=f"HTTP/{req.version.major}.{req.version.minor}",
                upgrade=req.headers.get("Upgrade", ""),
            )
            self.ws_sessions.append(session)
            await ws.send_str(f"hello from {name}")
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    session.received.append(msg.data)
                    await ws.send_str(f"{name}:{msg.data}")
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    session.received.append(msg.data)
                    await ws.send_bytes(msg.data[::-1])
            session.close_code = ws.close_code
            return ws

        async def start() -> int:
            app = web.Application()
            app.router.add_get("/ws/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, LOCALHOST, 0)
            await site.start()
            return int(runner.addresses[0][1])

        return self._run(start())

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.close()
            for server in self._servers:
                await asyncio.wait_for(server.wait_closed(), 5)
            for runner in self._runners:
                await asyncio.wait_for(runner.cleanup(), 10)

        try:
            self._run(close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


# --------------------------------------------------------------------------- resources


def service(name: str, port: int, *, app_protocol: str | None = None) -> str:
    """A Service (port 80, with ``app_protocol`` if given) and its EndpointSlice naming
    127.0.0.1:``port``."""
    app = f", appProtocol: {app_protocol}" if app_protocol else ""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80{app}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


ROUTES = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: apps, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [{HOST}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /h2c}}}}]
      backendRefs: [{{name: h2c, port: 80}}]
    # The same HTTP/2-only backend, through a Service port that does not say so.
    - matches: [{{path: {{type: PathPrefix, value: /h2-unmarked}}}}]
      backendRefs: [{{name: h2-unmarked, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /ws}}}}]
      backendRefs: [{{name: ws, port: 80}}]
"""


@dataclass
class Stack:
    serve: Serve
    port: int  # host port of the Gateway's HTTP listener
    backends: AppBackends


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("app-protocols")
    backends = AppBackends()
    serve: Serve | None = None
    envoy_pid: int | None = None
    try:
        h2_port = backends.h2_only("h2-backend")
        ws_port = backends.websocket("ws-backend")
        proxy_port = free_port()
        serve = running = Serve(tmp, port_map={80: proxy_port})
        running.write("00-class.yaml", GATEWAY_CLASS)
        running.write(
            "10-backends.yaml",
            "---\n".join(
                [
                    service("h2c", h2_port, app_protocol="kubernetes.io/h2c"),
                    service("h2-unmarked", h2_port),
                    service("ws", ws_port, app_protocol="kubernetes.io/ws"),
                ]
            ),
        )
        running.write("20-routes.yaml", ROUTES)
        running.start()
        envoy_pid = wait_until(lambda: running.envoy_pid(GATEWAY), timeout=30, what="Envoy running")
        st = Stack(running, proxy_port, backends)
        wait_until(lambda: get(st, "/h2c/ready")[0] == 200, timeout=30, what="routes served")
        yield st
    finally:
        if serve is not None:
            serve.stop()
        if envoy_pid is not None:
            wait_until(lambda: not pid_alive(envoy_pid), timeout=15, what="Envoy stopped")
        backends.stop()


def get(stack: Stack, path: str) -> tuple[int, dict[str, str], Any]:
    """A plain HTTP/1.1 GET through the Gateway (urllib speaks nothing else)."""
    return request(f"http://{LOCALHOST}:{stack.port}{path}", host=HOST, timeout=5)


# --------------------------------------------------------------------------- h2c


def test_h2c_app_protocol_reaches_an_http2_only_backend(stack: Stack) -> None:
    before = len(stack.backends.h2_requests)
    for i in range(3):
        status, headers, body = get(stack, f"/h2c/item/{i}?q={i}")
        assert status == 200, body
        assert headers.get("content-type") == "application/json"
        assert body == {
            "backend": "h2-backend",
            "protocol": "HTTP/2",
            "method": "GET",
            "path": f"/h2c/item/{i}?q={i}",
            "authority": HOST,
        }
    # Each client request was one HTTP/2 stream at the backend, none refused on the way.
    assert [r.path for r in stack.backends.h2_requests[before:]] == [
        f"/h2c/item/{i}?q={i}" for i in range(3)
    ]


def test_without_the_app_protocol_the_http2_only_backend_gets_http1(stack: Stack) -> None:
    # The route works (the h2c one to the same backend does), so any failure is the protocol.
    assert get(stack, "/h2c/first")[0] == 200
    answered, refused = len(stack.backends.h2_requests), len(stack.backends.h2_refused)
    status, _, body = get(stack, "/h2-unmarked/x")
    assert status in (502, 503), body
    # Envoy spoke HTTP/1.1 to it: the backend refused a connection opening with the request
    # line, and answered nothing.
    assert len(stack.backends.h2_requests) == answered
    assert any(
        first.startswith(b"GET /h2-unmarked/x HTTP/1.1")
        for first in stack.backends.h2_refused[refused:]
    ), stack.backends.h2_refused[refused:]


# --------------------------------------------------------------------------- WebSocket


async def websocket_exchange(port: int) -> tuple[list[str | bytes], int | None]:
    """Upgrade through the Gateway, exchange messages, close; (what came back, the close
    code the client got). Every step is bounded."""
    timeout = aiohttp.ClientTimeout(total=30, connect=5)
    ws_timeout = aiohttp.ClientWSTimeout(ws_receive=5, ws_close=5)
    got: list[str | bytes] = []
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.ws_connect(
            f"ws://{LOCALHOST}:{port}/ws/chat", headers={"Host": HOST}, timeout=ws_timeout
        ) as ws,
    ):
        got.append((await ws.receive(timeout=5)).data)  # the server speaks first
        for i in range(5):
            await ws.send_str(f"msg-{i}")
            got.append((await ws.receive(timeout=5)).data)
        await ws.send_bytes(b"\x00\x01binary\xff")
        got.append((await ws.receive(timeout=5)).data)
        big = bytes(range(256)) * 1024  # 256 KiB: more than one socket read each way
        await ws.send_bytes(big)
        got.append((await ws.receive(timeout=5)).data)
        assert await ws.close()
        return got, ws.close_code


def test_ws_app_protocol_upgrades_and_carries_messages_both_ways(stack: Stack) -> None:
    before = len(stack.backends.ws_sessions)
    got, close_code = asyncio.run(asyncio.wait_for(websocket_exchange(stack.port), 60))
    big = bytes(range(256)) * 1024
    assert got == [
        "hello from ws-backend",
        *(f"ws-backend:msg-{i}" for i in range(5)),
        b"\xffyranib\x01\x00",
        big[::-1],
    ]
    assert close_code == 1000
    # The backend saw one HTTP/1.1 upgrade (Envoy upgraded its request, and a backend that
    # speaks only HTTP/1.1 understood it), every message in order, then the client's close.
    (session,) = stack.backends.ws_sessions[before:]
    assert (session.path, session.http_version, session.upgrade.lower()) == (
        "/ws/chat",
        "HTTP/1.1",
        "websocket",
    )
    wait_until(lambda: session.close_code is not None, timeout=10, what="backend saw the close")
    assert session.close_code == 1000
    assert session.received == [*(f"msg-{i}" for i in range(5)), b"\x00\x01binary\xff", big]
