"""`egobs config envoy-proxy`, `egobs stats envoy-proxy` and `egobs collect` against a
running `egobs serve` with a real Envoy (host infra), whose Gateway terminates TLS with a
Secret's private key: none of it may show in any output."""

from __future__ import annotations

import base64
import json
import re
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import GATEWAY_CLASS, Serve
from testkit import unused_port, wait_until

from egobs import _inspect
from egobs._inspect import REDACTED, config_section, gateway_ref, host_envoys, redact
from egobs.cli import CONFIG_TYPE_NAMES, STATS_TYPE_NAMES, main

TESTDATA = Path(__file__).resolve().parents[1] / "gatewayapi" / "testdata"

# The kubernetes.io/tls Secret of a translator test: a throwaway key and certificate.
SECRET = next(
    d
    for d in yaml.safe_load_all((TESTDATA / "https_basic.in.yaml").read_text())
    if d["kind"] == "Secret"
)
KEY_B64 = SECRET["data"]["tls.key"]
KEY_PEM = base64.b64decode(KEY_B64).decode()
# What no output may hold: the key in PEM, in base64, or any line of its PEM body.
KEY_LINES = [line for line in KEY_PEM.splitlines() if line and not line.startswith("-----")]

RESOURCES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}
    - name: https
      protocol: HTTPS
      port: 443
      hostname: www.example.com
      tls: {mode: Terminate, certificateRefs: [{kind: Secret, group: "", name: www}]}
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, namespace: default, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: http, port: 9}]
endpoints: [{addresses: [127.0.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: eg}]
  rules:
    - backendRefs: [{name: a, port: 8080}]
"""

pytestmark = pytest.mark.envoy


def assert_no_private_key(text: str, where: str) -> None:
    assert "PRIVATE KEY" not in text, where
    assert KEY_B64[:40] not in text, where
    for line in KEY_LINES:
        assert line not in text, (where, line)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(
        tmp_path_factory.mktemp("inspect"), port_map={80: unused_port(), 443: unused_port()}
    )
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-resources.yaml", RESOURCES)
    serve.write("20-secret.yaml", yaml.safe_dump(SECRET))
    serve.start()
    try:

        def synced() -> bool:
            import urllib.request

            with urllib.request.urlopen(serve.admin + "/debug/syncz", timeout=5) as resp:
                proxies = json.load(resp)["proxies"]
            return bool(proxies) and all(
                p["synced"] and p["envoyAdmin"] and "SDS" in p["types"] for p in proxies
            )

        wait_until(synced, timeout=30, what="the Envoy to ACK every type, secrets included")
        yield serve
    finally:
        serve.stop()


def run(serve: Serve, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, [*args, "--admin", f"127.0.0.1:{serve.admin_port}"])
    assert result.exit_code == code, (args, result.output, result.stderr)
    return result


# --------------------------------------------------------------------------- config


def test_config_all_holds_every_part_per_node_with_keys_redacted(serve: Serve) -> None:
    out = run(serve, "config", "envoy-proxy", "default/eg").stdout
    assert_no_private_key(out, "config all")
    doc = yaml.safe_load(out)
    ((node, dump),) = doc.items()
    assert node.startswith("default/eg/")
    types = {c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]}
    assert set(_inspect.CONFIG_TYPES.values()) - {None} <= types, types


@pytest.mark.parametrize("config_type", [t for t in CONFIG_TYPE_NAMES if t != "all"])
def test_config_per_type(serve: Serve, config_type: str) -> None:
    # NAME with -n, and the default namespace, find the same Gateway.
    args = ["eg", config_type, "-o", "json"]
    out = run(serve, "config", "envoy-proxy", *args, "-n", "default").stdout
    assert_no_private_key(out, config_type)
    ((node, section),) = json.loads(out).items()
    assert node.startswith("default/eg/")
    assert (
        section["@type"]
        == f"type.googleapis.com/envoy.admin.v3.{_inspect.CONFIG_TYPES[config_type]}"
    )
    text = json.dumps(section)
    expected = {
        "bootstrap": f'"id": "{node}"',
        "cluster": "service/default/a/8080",
        "listener": "https",
        "route": "www.example.com",
        "endpoint": '"port_value": 9',
        "secret": "BEGIN CERTIFICATE",
    }[config_type]
    assert expected in text, (config_type, text[:2000])


def test_config_of_the_tls_secret_shows_the_certificate_not_the_key(serve: Serve) -> None:
    doc = json.loads(run(serve, "config", "envoy-proxy", "eg", "secret", "-o", "json").stdout)
    (section,) = doc.values()
    (secret,) = section["dynamic_active_secrets"]
    tls = secret["secret"]["tls_certificate"]
    assert tls["private_key"] == REDACTED
    chain = tls["certificate_chain"]
    cert = chain.get("inline_string") or base64.b64decode(chain["inline_bytes"]).decode()
    assert "BEGIN CERTIFICATE" in cert


def test_config_of_a_gateway_without_an_envoy_says_why(serve: Serve) -> None:
    result = run(serve, "config", "envoy-proxy", "default/nope", code=1)
    assert "Gateway default/nope is not served" in result.stderr
    assert "served: default/eg" in result.stderr
    result = run(serve, "config", "envoy-proxy", "team-b/eg", "-n", "default", code=2)
    assert "-n says" in result.stderr
    result = CliRunner().invoke(
        main, ["config", "envoy-proxy", "eg", "--admin", f"127.0.0.1:{unused_port()}"]
    )
    assert result.exit_code == 1 and "EGOBS_ADMIN" in result.stderr


# --------------------------------------------------------------------------- stats


def test_stats_prometheus_by_type(serve: Serve) -> None:
    names = {}
    for stats_type in STATS_TYPE_NAMES:
        out = run(serve, "stats", "envoy-proxy", "default/eg", "--type", stats_type).stdout
        names[stats_type] = set(re.findall(r"^# TYPE (\S+)", out, re.M))
    assert names["server"] and all(n.startswith("envoy_server_") for n in names["server"])
    assert names["clusters"] and all(n.startswith("envoy_cluster_") for n in names["clusters"])
    assert names["server"] | names["clusters"] <= names["all"]
    assert names["all"] - names["server"] - names["clusters"], "all has more than the two"


def test_stats_json_by_type(serve: Serve) -> None:
    out = run(serve, "stats", "envoy-proxy", "eg", "--type", "server", "-o", "json").stdout
    stats = json.loads(out)["stats"]
    named = [s["name"] for s in stats if "name" in s]
    assert "server.live" in named and all(n.startswith("server.") for n in named)
    out = run(serve, "stats", "envoy-proxy", "eg", "--type", "clusters", "-o", "json").stdout
    named = [s["name"] for s in json.loads(out)["stats"] if "name" in s]
    assert named and all(n.startswith("cluster.") for n in named)
    assert any(n.startswith("cluster.service/default/a/") for n in named), named[:20]


# --------------------------------------------------------------------------- collect


def test_collect_archive_has_everything_and_no_private_key(serve: Serve, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    result = run(serve, "collect", "-o", str(bundle), "-c", str(serve.config))
    assert result.stdout.strip() == str(bundle)
    with tarfile.open(bundle) as tar:
        members = {
            m.name.removeprefix("egobs-bundle/"): tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }
    for name, text in members.items():
        assert_no_private_key(text, name)
    (node,) = {n.split("/")[1] for n in members if n.startswith("proxies/")}
    assert node.startswith("default_eg_")
    assert {
        "manifest.json",
        "version.json",
        "config.json",
        "controlplane/debug-status.json",
        "controlplane/debug-syncz.json",
        "controlplane/debug-config-dump.json",
        "controlplane/metrics.txt",
        "controlplane/recent.log",
        f"proxies/{node}/config_dump.json",
        f"proxies/{node}/stats.txt",
        f"proxies/{node}/server_info.json",
        f"proxies/{node}/envoy.log",
    } == set(members)
    manifest = json.loads(members["manifest.json"])
    assert manifest["errors"] == [] and manifest["notes"] == []
    assert manifest["admin"]["source"] == "--admin"
    assert "egobs_" in members["controlplane/metrics.txt"]
    logs = [json.loads(line) for line in members["controlplane/recent.log"].splitlines()]
    assert any(r["logger"].startswith("egobs.") for r in logs), logs[:5]
    assert json.loads(members[f"proxies/{node}/server_info.json"])["state"] == "LIVE"
    dump = json.loads(members[f"proxies/{node}/config_dump.json"])
    assert config_section(dump, "endpoint"), "endpoints are included"
    assert config_section(dump, "secret")["dynamic_active_secrets"]
    assert "cluster.service/default/a/8080." in members[f"proxies/{node}/stats.txt"]
    assert json.loads(members["config.json"])["admin"]["port"] == serve.admin_port
    assert json.loads(members["version.json"])["egobs"]


# --------------------------------------------------------------------------- without Envoy


def test_redaction_catches_keys_in_every_form() -> None:
    data = {
        "pem": f"before\n{KEY_PEM}after",
        "b64": KEY_B64,
        "nested": [{"inline_bytes": KEY_B64}, {"private_key": {"inline_string": "x"}}],
        "data": {"tls.key": "anything", "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
    }
    out = redact(data)
    assert out["pem"] == f"before\n{REDACTED}\nafter"
    assert out["b64"] == REDACTED and out["nested"][0]["inline_bytes"] == REDACTED
    assert out["nested"][1]["private_key"] == REDACTED and out["data"]["tls.key"] == REDACTED
    assert out["data"]["tls.crt"] == data["data"]["tls.crt"], "certificates stay"
    assert_no_private_key(json.dumps(out), "redacted")
    text = _inspect.redact_text(f'a {{"k": "{KEY_B64}"}} b\n{KEY_PEM}')
    assert_no_private_key(text, "text")
    # A key cut off mid-way is redacted to the end.
    assert _inspect.redact_text(KEY_PEM[:60]) == REDACTED


def test_gateway_refs_and_envoys_from_a_status_document() -> None:
    assert gateway_ref("eg", None) == "default/eg"
    assert gateway_ref("eg", "team-b") == "team-b/eg"
    assert gateway_ref("team-b/eg", "team-b") == "team-b/eg"
    for bad in ("", "/eg", "ns/", "a/b/c"):
        with pytest.raises(ValueError):
            gateway_ref(bad, None)
    status: dict[str, Any] = {
        "proxies": [
            {
                "name": "default/eg",
                "infra": {
                    "state": "running",
                    "nodeId": "default/eg/3",
                    "adminHost": "127.0.0.1",
                    "adminPort": 41000,
                    "logPath": "/run/eg.log",
                },
            },
            {"name": "default/ext"},
            {"name": "default/down", "infra": {"state": "backoff", "adminPort": None}},
        ]
    }
    (envoy,) = host_envoys(status, "default/eg")
    assert (envoy.node, envoy.url, envoy.log_path) == (
        "default/eg/3",
        "http://127.0.0.1:41000",
        "/run/eg.log",
    )
    with pytest.raises(_inspect.NoEnvoy, match="External"):
        host_envoys(status, "default/ext")
    with pytest.raises(_inspect.NoEnvoy, match="backoff, not running"):
        host_envoys(status, "default/down")
    envoys, skipped = _inspect.every_host_envoy(status)
    assert [e.gateway for e in envoys] == ["default/eg"] and len(skipped) == 2
    assert set(CONFIG_TYPE_NAMES) == set(_inspect.CONFIG_TYPES)
    assert set(STATS_TYPE_NAMES) == set(_inspect.STATS_TYPES)
