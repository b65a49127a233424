"""Checking a TLS Secret's certificate and key before they reach Envoy.

Envoy rejects a listener whose key does not match its certificate (a NACK that holds back
the whole listener update), and serves an expired certificate without complaint. Both are
the user's to fix, so both become ``ResolvedRefs=False/InvalidCertificateRef`` on the
listener, naming the Secret and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["ca_bundle_problem", "certificate_problem"]

_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_DER = serialization.Encoding.DER


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What the time-independent checks found: a problem, or when the leaf expires."""

    problem: str | None
    not_after: datetime | None = None


def certificate_problem(cert_pem: str, key_pem: str, *, now: datetime) -> str | None:
    """What is wrong with a ``tls.crt``/``tls.key`` pair at ``now`` (timezone-aware), or
    None: not PEM, an encrypted or unreadable key, a key that is not the certificate's, an
    expired certificate. A certificate not valid *yet* is served: a freshly issued one
    would otherwise be refused whenever this host's clock is a little behind the issuer's.
    """
    parsed = _parse(cert_pem, key_pem)
    if parsed.problem is not None:
        return parsed.problem
    assert parsed.not_after is not None
    if now > parsed.not_after:
        return f"tls.crt expired at {parsed.not_after:%Y-%m-%dT%H:%M:%SZ}"
    return None


# Parsing is the costly part and Secrets rarely change: keep the last few hundred results.
@lru_cache(maxsize=512)
def _parse(cert_pem: str, key_pem: str) -> _Parsed:
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        # The parser's own message names ASN.1 internals and changes between versions.
        return _Parsed("tls.crt is not a valid PEM certificate")
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        return _Parsed("tls.key is encrypted; Envoy needs an unencrypted private key")
    except (ValueError, x509.UnsupportedGeneralNameType):
        return _Parsed("tls.key is not a valid PEM private key")
    leaf = chain[0]
    if key.public_key().public_bytes(_DER, _SPKI) != leaf.public_key().public_bytes(_DER, _SPKI):
        return _Parsed("tls.key is not the private key of the first certificate in tls.crt")
    return _Parsed(None, leaf.not_valid_after_utc)


@lru_cache(maxsize=256)
def ca_bundle_problem(pem: str) -> str | None:
    """What is wrong with a ``ca.crt`` bundle (CA certificates to verify peers against),
    or None."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return "ca.crt is not a PEM certificate bundle"
    if not certs:
        return "ca.crt holds no certificate"
    return None
