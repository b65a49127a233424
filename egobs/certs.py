"""A local certificate authority for mTLS between the proxies and egobs's gRPC servers.

``egobs certgen --out DIR`` (like Envoy Gateway's ``certgen --local``) writes::

    DIR/ca.pem        DIR/ca-key.pem          the CA (keys are 0600)
    DIR/xds.pem       DIR/xds-key.pem         the xDS server
    DIR/sink.pem      DIR/sink-key.pem        the access-log sink
    DIR/gateways/<namespace>/<name>/cert.pem  key.pem     one client per Gateway

Identity: a proxy's client certificate names its Gateway with the URI SAN
``spiffe://egobs.local/gateway/<namespace>/<name>`` (and the subject CN
``<namespace>/<name>``, for people reading it). With mTLS on, the xDS server serves a
stream only the snapshot of the Gateway the client certificate names, and the sink takes
access logs only for that Gateway. Only the URI SAN counts: a CN is free text any CA puts
anything in. The server certificates carry ``127.0.0.1``, ``::1`` and ``localhost`` (plus
any ``--host``), which the proxies check against the host they connect to, as HTTPS does.

Running it again keeps every file that exists and adds what is missing (a new Gateway's
certificate, or a new ``--host`` in the server certificates, signed by the CA already
there); ``force`` issues a new CA and re-issues every certificate in DIR from it. Keys
are ECDSA P-256.

    written = certgen(Path("certs"), gateways=["default/eg"])
    paths = Layout(Path("certs")).gateway("default/eg")   # .cert, .key
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:  # grpc is only needed by the servers, not by certgen
    import grpc

log = logging.getLogger("egobs.certs")

__all__ = [
    "CA_DAYS",
    "DEFAULT_DAYS",
    "GATEWAY_URI_PREFIX",
    "SERVER_HOSTS",
    "CertPair",
    "CertgenError",
    "Layout",
    "ServerTLS",
    "TLSFileError",
    "certgen",
    "gateway_uri",
    "gateways_named",
    "is_ip",
    "parse_gateway",
    "peer_gateways",
]

GATEWAY_URI_PREFIX = "spiffe://egobs.local/gateway/"
SERVER_URIS = {"xds": "spiffe://egobs.local/xds", "sink": "spiffe://egobs.local/sink"}
SERVER_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
DEFAULT_DAYS = 365
CA_DAYS = 3650
# Issued a little in the past, so a peer whose clock is slightly behind accepts them.
_BACKDATE = datetime.timedelta(minutes=5)
# A namespace is a DNS label; a Gateway name a DNS subdomain (Kubernetes' rules).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class CertgenError(Exception):
    """Certificates cannot be written; ``str()`` is one line saying why and what to do."""


class TLSFileError(ValueError):
    """A configured certificate, key or CA file is missing or unusable; one line."""


# --------------------------------------------------------------------------- identities


def parse_gateway(text: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` as a pair; ValueError naming what is wrong otherwise."""
    namespace, sep, name = text.partition("/")
    if not sep or not _NAMESPACE.fullmatch(namespace) or not _NAME.fullmatch(name):
        raise ValueError(f"{text!r}: expected NAMESPACE/NAME, as Kubernetes names them")
    return namespace, name


def gateway_uri(gateway: str) -> str:
    """The URI SAN that names Gateway ``<namespace>/<name>`` in a client certificate."""
    namespace, name = parse_gateway(gateway)
    return f"{GATEWAY_URI_PREFIX}{namespace}/{name}"


def gateways_named(cert: x509.Certificate) -> frozenset[str]:
    """The Gateways (``<namespace>/<name>``) that ``cert``'s URI SANs name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    out = set()
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(GATEWAY_URI_PREFIX):
            gateway = uri[len(GATEWAY_URI_PREFIX) :]
            try:
                parse_gateway(gateway)
            except ValueError:
                continue
            out.add(gateway)
    return frozenset(out)


def peer_gateways(auth_context: Mapping[str, Sequence[bytes]]) -> frozenset[str]:
    """The Gateways a gRPC peer's verified client certificate names (empty without one).

    ``auth_context`` is ``ServicerContext.auth_context()``. The certificate itself
    (``x509_pem_cert``) is read rather than gRPC's flattened ``x509_subject_alternative_name``,
    which mixes DNS names, URIs and addresses in one list.
    """
    pems = auth_context.get("x509_pem_cert") or ()
    if not pems:
        return frozenset()
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return frozenset()
    return gateways_named(cert)


# --------------------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """What a gRPC server needs for mTLS, read and checked: its certificate chain and key
    (PEM), and the CA that client certificates must chain to (they are required), with the
    files they came from (re-read when they change: see :meth:`credentials`)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes
    files: tuple[str, str, str] = ("", "", "")  # cert, key, CA
    what: str = ""

    @classmethod
    def load(cls, cert_file: str, key_file: str, ca_file: str, *, what: str) -> ServerTLS:
        """Read the three files; :class:`TLSFileError` (one line starting with ``what``,
        such as ``xds.tls``) when one is missing, not PEM, or the key is not the
        certificate's."""
        chain = _read(f"{what}.certFile", cert_file)
        key_pem = _read(f"{what}.keyFile", key_file)
        ca = _read(f"{what}.caFile", ca_file)
        try:
            cert = x509.load_pem_x509_certificate(chain)
        except ValueError:
            raise TLSFileError(f"{what}.certFile {cert_file}: not a PEM certificate") from None
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TLSFileError(f"{what}.caFile {ca_file}: not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise TLSFileError(
                f"{what}.keyFile {key_file}: not an unencrypted PEM private key"
            ) from None
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise TLSFileError(f"{what}.keyFile {key_file}: not the key of {cert_file}")
        return cls(chain, key_pem, ca, (cert_file, key_file, ca_file), what)

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials that require and verify a client certificate.

        The files are looked at again before each new connection's handshake (gRPC asks):
        a renewed certificate, key or CA is served from the next connection on, without a
        restart; open connections keep theirs. Files that do not load (half written, a key
        that is not the certificate's) leave the last good ones in use, with a warning.
        """
        import grpc

        return grpc.dynamic_ssl_server_credentials(
            _configuration(self), _Rotation(self), require_client_authentication=True
        )


def _configuration(tls: ServerTLS) -> grpc.ServerCertificateConfiguration:
    import grpc

    return grpc.ssl_server_certificate_configuration(
        [(tls.private_key, tls.cert_chain)], root_certificates=tls.client_ca
    )


class _Rotation:
    """Called by gRPC before each handshake: a new configuration when the files changed
    (by modification time, size or inode, so an atomic rename counts), else None."""

    def __init__(self, tls: ServerTLS) -> None:
        self._tls = tls
        self._seen = _stamps(tls.files)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        stamps = _stamps(self._tls.files)
        if stamps == self._seen:
            return None
        self._seen = stamps
        cert_file, key_file, ca_file = self._tls.files
        try:
            fresh = ServerTLS.load(cert_file, key_file, ca_file, what=self._tls.what)
        except TLSFileError as exc:
            log.warning("%s: keeping the certificate in use: %s", self._tls.what, exc)
            return None
        self._tls = fresh
        log.info("%s: serving the certificate of %s from now on", fresh.what, cert_file)
        return _configuration(fresh)


def _stamps(files: Iterable[str]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def _read(field: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSFileError(f"{field} {path}: cannot read: {exc.strerror or exc}") from None


def _public_der(key: object) -> bytes:
    assert hasattr(key, "public_bytes")
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Layout:
    """Where ``egobs certgen --out root`` puts each file."""

    root: Path

    @property
    def ca(self) -> CertPair:
        return CertPair(self.root / "ca.pem", self.root / "ca-key.pem")

    @property
    def xds(self) -> CertPair:
        return CertPair(self.root / "xds.pem", self.root / "xds-key.pem")

    @property
    def sink(self) -> CertPair:
        return CertPair(self.root / "sink.pem", self.root / "sink-key.pem")

    @property
    def gateways_dir(self) -> Path:
        return self.root / "gateways"

    def gateway(self, gateway: str) -> CertPair:
        return gateway_pair(self.gateways_dir, gateway)

    def existing_gateways(self) -> list[str]:
        """The Gateways that have a certificate in the directory already."""
        out = []
        for cert in sorted(self.gateways_dir.glob("*/*/cert.pem")):
            gateway = f"{cert.parent.parent.name}/{cert.parent.name}"
            try:
                parse_gateway(gateway)
            except ValueError:
                continue
            out.append(gateway)
        return out


def gateway_pair(cert_dir: Path | str, gateway: str) -> CertPair:
    """Gateway ``<namespace>/<name>``'s client certificate and key under ``cert_dir`` (a
    certgen output's ``gateways/``): ``<namespace>/<name>/cert.pem`` and ``key.pem``.
    Kubernetes names hold no ``/``, so the path is unambiguous."""
    namespace, name = parse_gateway(gateway)
    base = Path(cert_dir) / namespace / name
    return CertPair(base / "cert.pem", base / "key.pem")


# --------------------------------------------------------------------------- certgen


_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class _Issuer:
    cert: x509.Certificate
    key: _SigningKey


def certgen(
    out: Path,
    *,
    gateways: Iterable[str] = (),
    days: int = DEFAULT_DAYS,
    hosts: Iterable[str] = (),
    force: bool = False,
    now: datetime.datetime | None = None,
) -> list[Path]:
    """Write the CA, the xDS and sink server certificates and a client certificate per
    Gateway in ``gateways`` under ``out``; return the files written (kept ones are not).

    Certificates last ``days`` (never past the CA's own end); ``hosts`` are names or
    addresses the servers are also reached at (a compose service name, say). Raises
    :class:`CertgenError` with one line when the input is wrong or ``out`` holds files
    that do not fit together (a certificate without its key, one not signed by the CA).
    """
    if not 1 <= days <= CA_DAYS:
        raise CertgenError(f"--days {days}: must be between 1 and {CA_DAYS}")
    wanted: list[str] = []
    for gateway in gateways:
        try:
            parse_gateway(gateway)
        except ValueError as exc:
            raise CertgenError(f"--gateway {exc}") from None
        if gateway not in wanted:
            wanted.append(gateway)
    server_hosts = list(dict.fromkeys([*SERVER_HOSTS, *hosts]))
    for host in server_hosts:
        if not _valid_host(host):
            raise CertgenError(f"--host {host!r}: not a DNS name or IP address")
    layout = Layout(out)
    if out.exists() and not out.is_dir():
        raise CertgenError(f"{out}: exists and is not a directory")
    now = now or datetime.datetime.now(datetime.UTC)
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        if force:
            # Re-issue everything, the Gateways that were there included: a new CA would
            # otherwise leave them signed by one nobody trusts any more.
            wanted = list(dict.fromkeys([*layout.existing_gateways(), *wanted]))
        issuer = _ca(layout.ca, now=now, force=force, written=written)
        for role in ("xds", "sink"):
            pair = layout.xds if role == "xds" else layout.sink
            # A server certificate that lacks a --host is re-issued from the same CA,
            # which the proxies already trust.
            if force or not _kept(pair, issuer) or not _names_all(pair.cert, server_hosts):
                _issue_server(pair, role, server_hosts, issuer, now=now, days=days)
                written += [pair.cert, pair.key]
        for gateway in wanted:
            pair = layout.gateway(gateway)
            if force or not _kept(pair, issuer):
                pair.cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _issue_client(pair, gateway, issuer, now=now, days=days)
                written += [pair.cert, pair.key]
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise CertgenError(f"cannot write{where}: {exc.strerror or exc}") from None
    return written


def _ca(pair: CertPair, *, now: datetime.datetime, force: bool, written: list[Path]) -> _Issuer:
    has_cert, has_key = pair.cert.exists(), pair.key.exists()
    if has_cert and has_key and not force:
        cert = _load_cert(pair.cert)
        key = _load_key(pair.key)
        if not isinstance(key, _SigningKey):
            raise CertgenError(f"{pair.key}: certgen signs with ECDSA or RSA keys only")
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise CertgenError(
                f"{pair.key}: not the key of {pair.cert}; give --force to start over"
            )
        return _Issuer(cert, key)
    if (has_cert or has_key) and not force:
        present, missing = (pair.cert, pair.key) if has_cert else (pair.key, pair.cert)
        raise CertgenError(
            f"{present} exists without {missing}: cannot sign with that CA; "
            "give --force to issue a new CA and every certificate"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egobs local CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )
    _write_pair(pair, cert, key)
    written += [pair.cert, pair.key]
    return _Issuer(cert, key)


def _kept(pair: CertPair, issuer: _Issuer) -> bool:
    """True when ``pair`` exists and fits (its key, signed by ``issuer``): keep it. False
    when neither file exists; CertgenError when only one does, or they do not fit."""
    has_cert, has_key = pair.cert.exists(), pair.key.exists()
    if not has_cert and not has_key:
        return False
    if not (has_cert and has_key):
        present, missing = (pair.cert, pair.key) if has_cert else (pair.key, pair.cert)
        raise CertgenError(f"{present} exists without {missing}; delete it or give --force")
    cert = _load_cert(pair.cert)
    key = _load_key(pair.key)
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CertgenError(f"{pair.key}: not the key of {pair.cert}; give --force to re-issue")
    try:
        cert.verify_directly_issued_by(issuer.cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertgenError(
            f"{pair.cert}: not signed by the CA in {pair.cert.parent}; give --force to re-issue"
        ) from None
    return True


def _names_all(path: Path, hosts: Sequence[str]) -> bool:
    """Whether the certificate at ``path`` carries every host as a DNS or IP SAN."""
    try:
        ext = _load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    names = {n.lower() for n in ext.value.get_values_for_type(x509.DNSName)}
    addresses = set(ext.value.get_values_for_type(x509.IPAddress))
    for host in hosts:
        try:
            if ipaddress.ip_address(host) not in addresses:
                return False
        except ValueError:
            if host.lower() not in names:
                return False
    return True


def _leaf(
    subject: str,
    issuer: _Issuer,
    *,
    now: datetime.datetime,
    days: int,
    san: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + datetime.timedelta(days=days), issuer.cert.not_valid_after_utc)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return cert, key


def _issue_server(
    pair: CertPair,
    role: str,
    hosts: Sequence[str],
    issuer: _Issuer,
    *,
    now: datetime.datetime,
    days: int,
) -> None:
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SERVER_URIS[role])]
    for host in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            san.append(x509.DNSName(host))
    cert, key = _leaf(
        f"egobs {role}",
        issuer,
        now=now,
        days=days,
        san=san,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    _write_pair(pair, cert, key)


def _issue_client(
    pair: CertPair, gateway: str, issuer: _Issuer, *, now: datetime.datetime, days: int
) -> None:
    cert, key = _leaf(
        gateway,
        issuer,
        now=now,
        days=days,
        san=[x509.UniformResourceIdentifier(gateway_uri(gateway))],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _write_pair(pair, cert, key)


def is_ip(host: str) -> bool:
    """Whether a host a TLS peer is reached at is an IP literal: then it is checked against
    an IP SAN and sent as no SNI, else against a DNS SAN and sent as SNI."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _valid_host(host: str) -> bool:
    if is_ip(host):
        return True
    label = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    return len(host) <= 253 and re.fullmatch(rf"{label}(\.{label})*", host) is not None


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise CertgenError(f"{path}: not a PEM certificate; give --force to re-issue") from None


def _load_key(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise CertgenError(
            f"{path}: not an unencrypted PEM private key; give --force to re-issue"
        ) from None


def _write_pair(pair: CertPair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    # The key first: a certificate never sits on disk without its key.
    _write(
        pair.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (a key is never readable
    by others, not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # the umask may have taken bits off
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
