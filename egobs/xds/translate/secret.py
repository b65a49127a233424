"""TLS material: IR Certificate → Envoy SDS Secret."""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from egobs import ir

__all__ = ["build_secret"]


def build_secret(cert: ir.Certificate) -> secret_pb2.Secret:
    out = secret_pb2.Secret(name=cert.name)
    out.tls_certificate.certificate_chain.inline_string = cert.cert_pem
    out.tls_certificate.private_key.inline_string = cert.key_pem
    return out
