"""`egobs certgen` (issue 13): a local CA, the xDS and sink server certificates and one
client certificate per Gateway, checked with `cryptography` as a verifier would; keys
0600; a second run keeps what exists; problems are one line and exit 2."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from egobs.certs import (
    CA_DAYS,
    CertgenError,
    Layout,
    ServerTLS,
    TLSFileError,
    certgen,
    gateway_uri,
    gateways_named,
)

GW, OTHER = "default/eg", "team-b/edge.v2"


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _egobs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egobs.cli", *args], capture_output=True, text=True, timeout=60
    )


def _verify_server(layout: Layout, leaf: Path, host: str) -> None:
    """Verify ``leaf`` as a TLS client does: chain to the CA, the host's name, usage."""
    store = Store([_cert(layout.ca.cert)])
    subject: x509.verification.Subject
    try:
        subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(store).build_server_verifier(subject)
    verifier.verify(_cert(leaf), [])


def _verify_client(layout: Layout, leaf: Path) -> None:
    store = Store([_cert(layout.ca.cert)])
    PolicyBuilder().store(store).build_client_verifier().verify(_cert(leaf), [])


def test_certgen_writes_a_ca_servers_and_one_client_per_gateway(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    written = certgen(out, gateways=[GW, OTHER], days=30)
    layout = Layout(out)
    pairs = [layout.ca, layout.xds, layout.sink, layout.gateway(GW), layout.gateway(OTHER)]
    assert sorted(written) == sorted(p for pair in pairs for p in (pair.cert, pair.key))
    assert _mode(out) == 0o700
    for pair in pairs:
        assert _mode(pair.key) == 0o600, pair.key
        assert _mode(pair.cert) == 0o644, pair.cert
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        assert key.public_key() == _cert(pair.cert).public_key()
    assert not list(out.rglob(".*.tmp"))

    ca = _cert(layout.ca.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > datetime.timedelta(days=CA_DAYS)

    for role, pair in (("xds", layout.xds), ("sink", layout.sink)):
        cert = _cert(pair.cert)
        cert.verify_directly_issued_by(ca)
        for host in ("127.0.0.1", "::1", "localhost"):
            _verify_server(layout, pair.cert, host)
        uris = _san(cert).get_values_for_type(x509.UniformResourceIdentifier)
        assert uris == [f"spiffe://egobs.local/{role}"]
        assert gateways_named(cert) == frozenset()  # a server certificate names no Gateway
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert datetime.timedelta(days=30) <= life <= datetime.timedelta(days=30, minutes=6)

    for gateway in (GW, OTHER):
        cert = _cert(layout.gateway(gateway).cert)
        _verify_client(layout, layout.gateway(gateway).cert)
        assert _san(cert).get_values_for_type(x509.UniformResourceIdentifier) == [
            f"spiffe://egobs.local/gateway/{gateway}"
        ]
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == gateway
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert gateways_named(cert) == {gateway}
        # A client certificate is no server certificate.
        with pytest.raises(x509.verification.VerificationError):
            _verify_server(layout, layout.gateway(gateway).cert, "127.0.0.1")


def test_a_second_run_keeps_everything_and_adds_what_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    certgen(out, gateways=[GW])
    layout = Layout(out)
    before = {p: p.read_bytes() for p in out.rglob("*.pem")}
    assert certgen(out, gateways=[GW]) == []
    added = certgen(out, gateways=[GW, OTHER])
    assert added == [layout.gateway(OTHER).cert, layout.gateway(OTHER).key]
    assert {p: p.read_bytes() for p in before} == before  # nothing rewritten
    _verify_client(layout, layout.gateway(OTHER).cert)  # signed by the same CA

    # A new --host re-issues the server certificates (same CA), nothing else.
    again = certgen(out, hosts=["egobs"])
    assert sorted(again) == sorted(
        [layout.xds.cert, layout.xds.key, layout.sink.cert, layout.sink.key]
    )
    _verify_server(layout, layout.xds.cert, "egobs")
    _verify_server(layout, layout.sink.cert, "127.0.0.1")
    assert layout.ca.cert.read_bytes() == before[layout.ca.cert]


def test_force_issues_a_new_ca_and_reissues_every_certificate(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    certgen(out, gateways=[GW, OTHER])
    layout = Layout(out)
    old_ca = layout.ca.cert.read_bytes()
    written = certgen(out, force=True)
    assert layout.ca.cert.read_bytes() != old_ca
    # The Gateways already there are re-issued too, or they would chain to a dead CA.
    assert layout.gateway(GW).cert in written and layout.gateway(OTHER).cert in written
    for gateway in (GW, OTHER):
        _verify_client(layout, layout.gateway(gateway).cert)
    _verify_server(layout, layout.xds.cert, "127.0.0.1")


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        (None, {"gateways": ["eg"]}, "--gateway 'eg': expected NAMESPACE/NAME"),
        (None, {"gateways": ["Default/eg"]}, "--gateway 'Default/eg': expected NAMESPACE/NAME"),
        (None, {"days": 0}, "--days 0: must be between 1 and 3650"),
        (None, {"hosts": ["bad host"]}, "--host 'bad host': not a DNS name or IP address"),
        ("file", {}, "exists and is not a directory"),
        ("ca-without-key", {}, "ca.pem exists without "),
        ("cert-without-key", {}, "xds.pem exists without "),
        ("foreign-leaf", {}, "xds.pem: not signed by the CA in "),
    ],
)
def test_certgen_problems_are_one_line(
    tmp_path: Path, setup: str | None, kwargs: dict[str, object], message: str
) -> None:
    out = tmp_path / "certs"
    if setup == "file":
        out.write_text("")
    elif setup == "ca-without-key":
        certgen(out)
        Layout(out).ca.key.unlink()
    elif setup == "cert-without-key":
        certgen(out)
        Layout(out).xds.key.unlink()
    elif setup == "foreign-leaf":
        certgen(out)
        certgen(tmp_path / "other")
        for name in ("xds.pem", "xds-key.pem"):
            (out / name).write_bytes((tmp_path / "other" / name).read_bytes())
    with pytest.raises(CertgenError) as failed:
        certgen(out, **kwargs)  # type: ignore[arg-type]
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)


def test_the_certgen_command(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    first = _egobs("certgen", "--out", str(out), "--gateway", GW)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 8
    assert first.stdout.splitlines()[-1] == str(Layout(out).gateway(GW).key)
    second = _egobs("certgen", "--out", str(out), "--gateway", GW)
    assert second.returncode == 0 and second.stdout == ""
    assert second.stderr == f"egobs: certgen: every file in {out} exists; nothing written\n"
    bad = _egobs("certgen", "--out", str(out), "--gateway", "nope")
    assert bad.returncode == 2
    assert bad.stderr == (
        "egobs: certgen: --gateway 'nope': expected NAMESPACE/NAME, as Kubernetes names them\n"
    )


def test_server_tls_files_are_checked(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "certs")
    certgen(layout.root)
    ok = ServerTLS.load(
        str(layout.xds.cert), str(layout.xds.key), str(layout.ca.cert), what="xds.tls"
    )
    assert ok.cert_chain == layout.xds.cert.read_bytes()
    cases = [
        ((layout.xds.cert, layout.sink.key, layout.ca.cert), "xds.tls.keyFile", "not the key of"),
        ((layout.xds.cert, layout.xds.key, tmp_path / "nope.pem"), "xds.tls.caFile", "cannot read"),
        ((layout.xds.key, layout.xds.key, layout.ca.cert), "xds.tls.certFile", "not a PEM cert"),
        ((layout.xds.cert, layout.xds.cert, layout.ca.cert), "xds.tls.keyFile", "not an unencr"),
    ]
    for (cert, key, ca), field, message in cases:
        with pytest.raises(TLSFileError) as failed:
            ServerTLS.load(str(cert), str(key), str(ca), what="xds.tls")
        assert str(failed.value).startswith(field) and message in str(failed.value)


def test_gateway_uri_and_keys_never_readable_by_others(tmp_path: Path) -> None:
    assert gateway_uri(OTHER) == "spiffe://egobs.local/gateway/team-b/edge.v2"
    old = os.umask(0)  # even with a permissive umask
    try:
        certgen(tmp_path / "certs", gateways=[GW])
    finally:
        os.umask(old)
    for key in (tmp_path / "certs").rglob("*key.pem"):
        assert _mode(key) == 0o600, key
