"""Certificate rotation on egobs's mTLS servers (xDS, sink): renewed files are served from
the next connection on, without a restart, and files that do not load are not.

A gRPC server with :meth:`egobs.certs.ServerTLS.credentials` on 127.0.0.1; TLS clients
(Python's ssl, ALPN h2, a client certificate) complete a handshake and report the server
certificate they got. The files are replaced the way certgen and cert-manager do it:
written elsewhere, then renamed into place.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from mtls_helpers import GW, make_certs

from egobs.certs import CertPair, Layout, ServerTLS


class Server:
    """A gRPC server without services, on the credentials of ``layout``'s xDS files."""

    def __init__(self, layout: Layout) -> None:
        tls = ServerTLS.load(
            str(layout.xds.cert), str(layout.xds.key), str(layout.ca.cert), what="xds.tls"
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.port = self.server.add_secure_port("127.0.0.1:0", tls.credentials())
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


def _handshake(port: int, layout: Layout) -> bytes | str:
    """The server certificate (DER) a client trusting ``layout``'s CA and presenting its
    Gateway certificate gets, or the name of the error when the handshake fails."""
    ctx = ssl.create_default_context(cafile=str(layout.ca.cert))
    ctx.check_hostname = False  # the xDS certificate names the control plane's hosts
    ctx.set_alpn_protocols(["h2"])
    pair = layout.gateway(GW)
    ctx.load_cert_chain(pair.cert, pair.key)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            # TLS 1.3: the server checks the client certificate after the client's
            # handshake ends; a refusal shows on the first read.
            tls.settimeout(0.5)
            try:
                if tls.recv(1) == b"":
                    return "closed"
            except TimeoutError:
                pass  # nothing to read, and still open: the server took the certificate
            assert der is not None
            return der
    except (ssl.SSLError, ConnectionError) as exc:
        return type(exc).__name__


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _replace(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.new")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


@pytest.fixture
def layouts(tmp_path: Path) -> tuple[Layout, Layout]:
    return make_certs(tmp_path / "old", GW), make_certs(tmp_path / "new", GW)


@pytest.fixture
def server(layouts: tuple[Layout, Layout]) -> Iterator[Server]:
    s = Server(layouts[0])
    try:
        yield s
    finally:
        s.stop()


def test_renewed_files_are_served_from_the_next_connection(
    server: Server, layouts: tuple[Layout, Layout]
) -> None:
    old, new = layouts
    assert _handshake(server.port, old) == _der(old.xds.cert)
    # A new CA, server certificate and key, as a renewal that rotates the CA would write.
    for source, target in (
        (new.xds.key, old.xds.key),
        (new.xds.cert, old.xds.cert),
        (new.ca.cert, old.ca.cert),
    ):
        _replace(source, target)
    assert _handshake(server.port, new) == _der(new.xds.cert)
    # Clients of the old CA are refused now: the server trusts the new CA only.
    refused = _handshake(server.port, _OldClient(old, new))  # type: ignore[arg-type]
    assert not isinstance(refused, bytes), "a client of the old CA got in"


class _OldClient:
    """Trusts the new CA (so the server's new certificate verifies) but presents the
    Gateway certificate the old CA signed."""

    def __init__(self, old: Layout, new: Layout) -> None:
        self.ca = new.ca
        self._old = old

    def gateway(self, gateway: str) -> CertPair:
        return self._old.gateway(gateway)


def test_files_that_do_not_load_leave_the_last_good_ones(
    server: Server, layouts: tuple[Layout, Layout]
) -> None:
    old, new = layouts
    good = _der(old.xds.cert)
    # Half a rotation: the new certificate with the old key does not go together.
    _replace(new.xds.cert, old.xds.cert)
    assert _handshake(server.port, old) == good
    old.xds.key.write_text("not a key\n")
    assert _handshake(server.port, old) == good
