"""mTLS configuration (issue 13): `xds.tls` and `proxyTelemetry.accessLogSink.tls`, the
bootstraps they render (checked by `envoy --mode validate`), `egobs bootstrap` printing
what host mode runs, and unusable files refused in one line before anything starts.
Without TLS config nothing changes: plaintext, no secrets in the bootstrap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit import envoy_binary

from egobs import gatewayapi, ir
from egobs.certs import Layout, TLSFileError, certgen
from egobs.config import (
    Config,
    check_tls,
    host_binding,
    load_config,
    proxy_tls,
    telemetry_defaults,
    xds_server_tls,
)
from egobs.infra.bootstrap import (
    SINK_CA_SECRET,
    SINK_CLIENT_SECRET,
    XDS_CA_SECRET,
    XDS_CLIENT_SECRET,
    XDS_CLUSTER,
    ProxyTLS,
    UpstreamTLS,
    bootstrap,
)
from egobs.resources import load_paths

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
GW = "default/eg"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    root = tmp_path_factory.mktemp("mtls-config") / "certs"
    certgen(root, gateways=[GW])
    return Layout(root)


def _write_config(path: Path, **sections: Any) -> Path:
    doc = {"apiVersion": "egobs.dev/v1alpha1", "kind": "EgobsConfig", **sections}
    path.write_text(yaml.safe_dump(doc))
    return path


def _tls_config(layout: Layout, where: Path) -> Path:
    """A config beside the certificates' directory, naming them relatively."""
    return _write_config(
        where,
        provider={"type": "File", "file": {"paths": [str(QUICKSTART)]}},
        xds={
            "port": 18123,
            "tls": {
                "certFile": "certs/xds.pem",
                "keyFile": "certs/xds-key.pem",
                "caFile": "certs/ca.pem",
            },
        },
        proxyTelemetry={"accessLogSink": {"host": "localhost", "tls": {"caFile": "certs/ca.pem"}}},
    )


def _proxy() -> ir.Proxy:
    return ir.Proxy(GW, "egobs", ())


def _clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _secrets(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in config["static_resources"].get("secrets", [])}


def test_without_tls_config_everything_stays_plaintext() -> None:
    cfg = Config()
    assert cfg.xds.tls is None and xds_server_tls(cfg) is None and proxy_tls(cfg) is None
    check_tls(cfg)
    config = bootstrap(_proxy(), node_id="n", xds_host="127.0.0.1", xds_port=18000, admin_port=0)
    assert "transport_socket" not in _clusters(config)[XDS_CLUSTER]
    assert _secrets(config) == {}


def test_tls_paths_are_relative_to_the_config_file(layout: Layout) -> None:
    cfg = load_config(_tls_config(layout, layout.root.parent / "egobs.yaml"))
    assert cfg.xds.tls is not None
    assert cfg.xds.tls.cert_file == str(layout.xds.cert)
    assert cfg.xds.tls.ca_file == str(layout.ca.cert)
    tls = proxy_tls(cfg)
    assert tls == ProxyTLS(
        xds=UpstreamTLS(str(layout.ca.cert), str(layout.gateways_dir)),
        sink=UpstreamTLS(str(layout.ca.cert), str(layout.gateways_dir), server_name="localhost"),
    )
    server = xds_server_tls(cfg)
    assert server is not None and server.client_ca == layout.ca.cert.read_bytes()
    check_tls(cfg)


def test_the_bootstrap_presents_the_gateways_certificate(layout: Layout, tmp_path: Path) -> None:
    tls = ProxyTLS(
        xds=UpstreamTLS(str(layout.ca.cert), str(layout.gateways_dir)),
        sink=UpstreamTLS(str(layout.ca.cert), str(layout.gateways_dir), server_name="localhost"),
    )
    config = bootstrap(
        _proxy(), node_id="n", xds_host="127.0.0.1", xds_port=18000, admin_port=0, tls=tls
    )
    socket = _clusters(config)[XDS_CLUSTER]["transport_socket"]
    assert socket["name"] == "envoy.transport_sockets.tls"
    common = socket["typed_config"]["common_tls_context"]
    assert common["tls_certificate_sds_secret_configs"] == [{"name": XDS_CLIENT_SECRET}]
    assert common["validation_context_sds_secret_config"] == {"name": XDS_CA_SECRET}
    assert "sni" not in socket["typed_config"]  # an IP: no SNI, an IP SAN is checked
    secrets = _secrets(config)
    assert set(secrets) == {XDS_CLIENT_SECRET, XDS_CA_SECRET, SINK_CLIENT_SECRET, SINK_CA_SECRET}
    pair = layout.gateway(GW)
    for name in (XDS_CLIENT_SECRET, SINK_CLIENT_SECRET):
        assert secrets[name]["tls_certificate"] == {
            "certificate_chain": {"filename": str(pair.cert)},
            "private_key": {"filename": str(pair.key)},
        }
    xds_ca = secrets[XDS_CA_SECRET]["validation_context"]
    assert xds_ca["trusted_ca"] == {"filename": str(layout.ca.cert)}
    assert xds_ca["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}
    ]
    assert secrets[SINK_CA_SECRET]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "localhost"}}
    ]
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(config))
    checked = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Reached by name (a compose service, say): SNI and a DNS SAN.
    named = bootstrap(
        _proxy(), node_id="n", xds_host="egobs", xds_port=18000, admin_port=0, tls=tls
    )
    context = _clusters(named)[XDS_CLUSTER]["transport_socket"]["typed_config"]
    assert context["sni"] == "egobs"
    assert _secrets(named)[XDS_CA_SECRET]["validation_context"][
        "match_typed_subject_alt_names"
    ] == [{"san_type": "DNS", "matcher": {"exact": "egobs"}}]


@pytest.mark.envoy
def test_egobs_bootstrap_prints_what_host_mode_runs(layout: Layout) -> None:
    config_file = _tls_config(layout, layout.root.parent / "egobs.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "egobs.cli", "bootstrap", "--gateway", GW, "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    cfg = load_config(config_file)
    result = gatewayapi.translate(
        load_paths([str(QUICKSTART)]),
        controller_name=cfg.gateway.controller_name,
        telemetry=telemetry_defaults(cfg),
    )
    proxy = host_binding(cfg).proxy(result.proxies[GW])
    expected = bootstrap(
        proxy,
        node_id=f"{GW}/external",
        xds_host="127.0.0.1",
        xds_port=18123,
        admin_port=19000,
        delta=True,
        tls=proxy_tls(cfg),
    )
    assert printed == expected
    assert _secrets(printed)[XDS_CLIENT_SECRET]["tls_certificate"]["private_key"] == {
        "filename": str(layout.gateway(GW).key)
    }


def test_unusable_tls_files_are_one_line(layout: Layout, tmp_path: Path) -> None:
    base = {"provider": {"type": "File", "file": {"paths": [str(QUICKSTART)]}}}
    missing_key = _write_config(
        tmp_path / "a.yaml",
        **base,
        xds={
            "tls": {
                "certFile": str(layout.xds.cert),
                "keyFile": str(tmp_path / "absent-key.pem"),
                "caFile": str(layout.ca.cert),
            }
        },
    )
    with pytest.raises(TLSFileError, match=r"^xds.tls.keyFile .*absent-key.pem: cannot read"):
        check_tls(load_config(missing_key))
    no_dir = _write_config(
        tmp_path / "b.yaml",
        **base,
        xds={
            "tls": {
                "certFile": str(layout.xds.cert),
                "keyFile": str(layout.xds.key),
                "caFile": str(layout.ca.cert),
                "proxyCertDir": str(tmp_path / "nowhere"),
            }
        },
    )
    with pytest.raises(TLSFileError, match=r"^xds.tls.proxyCertDir .*nowhere: not a directory"):
        check_tls(load_config(no_dir))
    # External infra: the proxies' paths are the Envoys' own, not checked here.
    external = load_config(no_dir)
    external.infra.type = "External"
    check_tls(external)

    serve = subprocess.run(
        [sys.executable, "-m", "egobs.cli", "serve", "-c", str(missing_key)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2
    (line,) = serve.stderr.strip().splitlines()
    assert line.startswith("egobs: xds.tls.keyFile ") and "cannot read" in line
