"""Binding a server's port: one check and one error for every server egobs runs.

The xDS server, the admin server, the access-log sink and the echo backends all report a
port they cannot listen on the same way: a :class:`ListenError` whose ``str()`` is one line
naming the server, the address and the port, which the command line prints as is.
"""

from __future__ import annotations

import errno
import os
import socket

__all__ = ["ListenError", "check_listen", "host_literal"]


def host_literal(address: str) -> str:
    """``address`` as it goes before ``:port`` (IPv6 literals in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


class ListenError(OSError):
    """A server cannot listen on its address and port: the port is taken (by another egobs,
    say), the address is not this host's, or the port is privileged.

    ``str()`` is one line naming the server, the address and the port, which is what the
    command line prints: ``xds: cannot listen on 127.0.0.1:18000: address already in use``.
    """

    def __init__(
        self, server: str, address: str, port: int, *, code: int, reason: str | None = None
    ) -> None:
        reason = (reason or os.strerror(code)).lower()
        super().__init__(
            code, f"{server}: cannot listen on {host_literal(address)}:{port}: {reason}"
        )
        self.server = server
        self.address = address
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)

    @classmethod
    def from_os_error(cls, server: str, address: str, port: int, exc: OSError) -> ListenError:
        if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
            # A name that does not resolve: errno is an EAI_* code, strerror says it.
            return cls(server, address, port, code=errno.EADDRNOTAVAIL, reason=exc.strerror)
        return cls(server, address, port, code=exc.errno)


def check_listen(server: str, address: str, port: int) -> None:
    """Raise :class:`ListenError` unless ``address:port`` can be bound right now.

    For gRPC servers, before ``add_insecure_port``: gRPC reports a failed bind as a bare
    RuntimeError without the reason, after logging its own error line on stderr, so the
    common cases are caught here with their reason. A port in use on any address the name
    resolves to fails (a second control plane must never share the port); other errors
    only when no address can be bound, as gRPC does. Port 0 always succeeds.
    """
    if port == 0:
        return
    try:
        found = socket.getaddrinfo(
            address.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError.from_os_error(server, address, port, exc) from None
    first: OSError | None = None
    for family, kind, proto, _, sockaddr in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                # As gRPC and aiohttp do: a port whose old connections linger in TIME_WAIT
                # is free, one with a listener (or another bound socket) is not.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
            return
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenError.from_os_error(server, address, port, exc) from None
            first = first or exc
    if first is not None:
        raise ListenError.from_os_error(server, address, port, first) from None
