"""Backends and clients for the TCP, UDP, TLS-passthrough and gRPC end-to-end tests.

Everything listens on 127.0.0.1 on ports the kernel picks. The TCP, UDP and TLS servers run
on one asyncio loop in a thread of the test process; the gRPC servers are grpcio servers,
each answering with its own name. Certificates come from a throwaway CA made here with the
``cryptography`` package.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCALHOST = "127.0.0.1"
_T = TypeVar("_T")


def unused_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True, slots=True)
class ServerCert:
    hostname: str
    cert_file: Path
    key_file: Path
    der: bytes  # the leaf certificate, to recognise it on the client side


class TestCA:
    """A throwaway CA signing one leaf certificate per hostname."""

    __test__ = False  # not a pytest test class

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egobs e2e test CA")])
        now = datetime.datetime.now(datetime.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self._cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, hostname: str, *, client: bool = False) -> ServerCert:
        """A leaf for ``hostname``, for a server (or with ``client``, a TLS client: Envoy
        checks the extended key usage of the certificates clients present)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        now = datetime.datetime.now(datetime.UTC)
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file = self.tmp / f"{hostname}.crt"
        key_file = self.tmp / f"{hostname}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return ServerCert(
            hostname, cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)
        )

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this CA and checks the hostname against the SNI sent."""
        return ssl.create_default_context(cadata=self.pem)


# --------------------------------------------------------------------------- L4 servers


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A DatagramTransport, though Python 3.11's selector transport does not subclass it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b":" + data, addr)


class L4Servers:
    """TCP echo, UDP echo and TLS servers on one asyncio loop in a background thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="l4-backends")
        self._thread.start()
        self._closers: list[Any] = []
        self.connections: dict[str, int] = {}  # connections (or datagrams) each server saw

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _count(self, name: str) -> None:
        self.connections[name] = self.connections.get(name, 0) + 1

    def tcp_echo(self, name: str) -> int:
        """A server answering every byte it receives, prefixed once with ``name:``."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._count(name)
            try:
                writer.write(name.encode() + b":")
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        return self._serve(handle, None)

    def tls_named(self, name: str, cert: ServerCert) -> int:
        """A TLS server answering each line it receives with ``name:line``."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert.cert_file, cert.key_file)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._count(name)
            try:
                while line := await reader.readline():
                    writer.write(name.encode() + b":" + line)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        return self._serve(handle, ctx)

    def _serve(self, handle: Any, ctx: ssl.SSLContext | None) -> int:
        async def start() -> int:
            server = await asyncio.start_server(handle, LOCALHOST, 0, ssl=ctx)
            self._closers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return self._run(start())

    def udp_echo(self, name: str) -> int:
        """A UDP server answering each datagram with ``name:datagram``."""

        async def start() -> int:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _UDPEcho(name), local_addr=(LOCALHOST, 0)
            )
            self._closers.append(transport)
            return int(transport.get_extra_info("sockname")[1])

        return self._run(start())

    def stop(self) -> None:
        async def close() -> None:
            for c in self._closers:
                c.close()
            for c in self._closers:
                if isinstance(c, asyncio.Server):
                    await asyncio.wait_for(c.wait_closed(), 5)

        try:
            self._run(close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


# --------------------------------------------------------------------------- clients


def tcp_roundtrip(port: int, payload: bytes, timeout: float = 3.0) -> bytes:
    """Send ``payload``, half-close, and read the whole answer."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def udp_roundtrip(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    """One datagram out, the first one back; None when nothing came back in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((LOCALHOST, port))
        s.send(payload)
        try:
            return s.recv(65536)
        except TimeoutError:
            return None


@dataclass(frozen=True, slots=True)
class TLSAnswer:
    peer_der: bytes
    answer: bytes


def tls_roundtrip(
    port: int, sni: str, ctx: ssl.SSLContext, line: bytes = b"hello\n", timeout: float = 3.0
) -> TLSAnswer:
    """A TLS connection with ``sni``: the server's certificate and its answer to ``line``."""
    with (
        socket.create_connection((LOCALHOST, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as s,
    ):
        der = s.getpeercert(binary_form=True)
        assert der is not None
        s.sendall(line)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return TLSAnswer(der, answer)


# --------------------------------------------------------------------------- gRPC


class NamedGrpcServer:
    """A grpcio server answering every method of ``services`` with ``name /svc/method body``.

    No generated code: generic handlers with raw bytes in and out. Each call's metadata is
    kept, so a test can see what the Gateway forwarded.
    """

    def __init__(self, name: str, services: dict[str, list[str]]) -> None:
        self.name = name
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        handlers = [
            grpc.method_handlers_generic_handler(
                service,
                {
                    m: grpc.unary_unary_rpc_method_handler(self._handler(service, m))
                    for m in methods
                },
            )
            for service, methods in services.items()
        ]
        self._server.add_generic_rpc_handlers(handlers)
        self.port = self._server.add_insecure_port(f"{LOCALHOST}:0")
        self._server.start()

    def _handler(self, service: str, method: str) -> Any:
        path = f"/{service}/{method}"

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls.append((path, {k: str(v) for k, v in context.invocation_metadata()}))
            return f"{self.name} {path} ".encode() + request

        return handle

    def stop(self) -> None:
        self._server.stop(grace=None).wait(10)


def grpc_call(
    channel: grpc.Channel,
    path: str,
    body: bytes = b"ping",
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = 3.0,
) -> bytes:
    call = channel.unary_unary(path)  # no serializers: bytes in, bytes out
    return call(body, metadata=metadata, timeout=timeout)
