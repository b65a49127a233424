"""`egobs status` and `egobs version` without Envoy: finding the admin server, selecting
and rendering hand-made status and sync documents, versions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from testkit import unused_port

from egobs._status_table import (
    Selector,
    age,
    render,
    render_syncz,
    resolve_kind,
    select,
    select_syncz,
)
from egobs.cli import AdminTarget, main, parse_admin_address, resolve_admin

NOW = datetime(2026, 1, 1, 0, 10, 0, tzinfo=UTC)


def cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason or type_, "message": message}


def parent(name: str, *conds: dict[str, str], ns: str = "default") -> dict[str, Any]:
    return {"parentRef": {"namespace": ns, "name": name}, "conditions": list(conds)}


STATUS_DOC: dict[str, Any] = {
    "resources": [
        {
            "kind": "GatewayClass",
            "namespace": "",
            "name": "egobs",
            "status": {"conditions": [cond("Accepted"), cond("SupportedVersion")]},
        },
        {
            "kind": "Gateway",
            "namespace": "default",
            "name": "eg",
            "status": {
                "conditions": [cond("Accepted"), cond("Programmed")],
                "listeners": [
                    {
                        "name": "http",
                        "conditions": [cond("Programmed"), cond("Conflicted", "False")],
                    },
                    {
                        "name": "https",
                        "conditions": [
                            cond("ResolvedRefs", "False", "InvalidCertificateRef", "no secret")
                        ],
                    },
                ],
            },
        },
        {
            "kind": "HTTPRoute",
            "namespace": "default",
            "name": "main",
            "status": {
                "parents": [
                    parent(
                        "eg",
                        cond("Accepted"),
                        cond("ResolvedRefs"),
                        cond("PartiallyInvalid", "True", "UnsupportedValue", "bad regex " * 20),
                    )
                ]
            },
        },
        {
            "kind": "HTTPRoute",
            "namespace": "team-b",
            "name": "main",
            "status": {"parents": [parent("eg", cond("Accepted"), cond("ResolvedRefs"))]},
        },
        {
            "kind": "GRPCRoute",
            "namespace": "team-b",
            "name": "rpc",
            "status": {"parents": [parent("eg", cond("Accepted"), cond("Quiet", "True"))]},
        },
    ],
    "proxies": [
        {
            "name": "default/eg",
            "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80, "address": "127.0.0.1:10080"}
            ],
            "programmed": True,
            "infra": {"state": "running", "pid": 42, "restarts": 0},
        },
        {"name": "team-b/other", "listeners": [], "programmed": True},
    ],
    "xdsRejections": [],
    "providerErrors": [],
}


def rows(table: str) -> list[list[str]]:
    """The first table's rows (split on runs of two or more spaces)."""
    import re

    first = table.split("\n\n")[0].splitlines()
    return [re.split(r"\s{2,}", line) for line in first]


# --------------------------------------------------------------------------- admin address


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:49000", "http://127.0.0.1:49000"),
        ("http://127.0.0.1:49000", "http://127.0.0.1:49000"),
        ("http://127.0.0.1:49000/", "http://127.0.0.1:49000"),
        ("https://cp.example:443", "https://cp.example:443"),
        ("[::1]:19000", "http://[::1]:19000"),
        ("localhost:19000", "http://localhost:19000"),
    ],
)
def test_admin_address_with_or_without_scheme(value: str, url: str) -> None:
    assert parse_admin_address(value) == url


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "127.0.0.1:x", "ftp://h:1", "h:1/debug", "::1:19000", "h:0"]
)
def test_bad_admin_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_admin_address(value)


def write_config(tmp_path: Path, address: str, port: int) -> str:
    path = tmp_path / "egobs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "egobs.dev/v1alpha1",
                "kind": "EgobsConfig",
                "admin": {"address": address, "port": port},
            }
        )
    )
    return str(path)


def test_admin_resolution_order(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "0.0.0.0", 49001)
    env = {"EGOBS_ADMIN": "127.0.0.2:49002"}
    assert resolve_admin("127.0.0.3:49003", cfg, env) == AdminTarget(
        "http://127.0.0.3:49003", "--admin"
    )
    # Every interface is reached on loopback.
    assert resolve_admin(None, cfg, env) == AdminTarget("http://127.0.0.1:49001", f"-c {cfg}")
    assert resolve_admin(None, None, env) == AdminTarget("http://127.0.0.2:49002", "EGOBS_ADMIN")
    assert resolve_admin(None, None, {}) == AdminTarget("http://127.0.0.1:19000", "default")
    v6 = write_config(tmp_path, "::", 49004)
    assert resolve_admin(None, v6, {}).url == "http://[::1]:49004"
    with pytest.raises(ValueError, match=r"admin\.port is 0"):
        resolve_admin(None, write_config(tmp_path, "127.0.0.1", 0), {})


def test_unreachable_admin_names_address_and_how_to_point_elsewhere() -> None:
    port = unused_port()
    for args, env, source in [
        (["--admin", f"127.0.0.1:{port}"], {}, "--admin"),
        ([], {"EGOBS_ADMIN": f"http://127.0.0.1:{port}"}, "EGOBS_ADMIN"),
    ]:
        result = CliRunner().invoke(main, ["status", *args], env=env)
        assert result.exit_code == 1
        (line,) = result.stderr.splitlines()
        assert f"http://127.0.0.1:{port} ({source})" in line
        for hint in ("--admin", "-c egobs.yaml", "EGOBS_ADMIN"):
            assert hint in line
    result = CliRunner().invoke(main, ["status", "--admin", "nope:x"])
    assert result.exit_code == 2 and "invalid port" in result.stderr


# --------------------------------------------------------------------------- kinds, filters


def test_kinds_accept_plural_short_and_any_case() -> None:
    assert resolve_kind("gc") == resolve_kind("GatewayClasses") == "GatewayClass"
    assert resolve_kind("GTW") == resolve_kind("gateways") == "Gateway"
    assert resolve_kind("HTTPRoute") == resolve_kind("httproutes") == "HTTPRoute"
    for kind in ("GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute"):
        assert resolve_kind(kind.lower()) == kind
    assert resolve_kind("lset") == resolve_kind("ListenerSets") == "ListenerSet"
    assert resolve_kind("btlspolicy") == resolve_kind("backendtlspolicies") == "BackendTLSPolicy"
    assert resolve_kind("ALL") is None
    with pytest.raises(KeyError):
        resolve_kind("route")


def test_unknown_kind_exits_2_listing_the_valid_ones() -> None:
    result = CliRunner().invoke(main, ["status", "routes", "--admin", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "unknown kind 'routes'" in result.stderr
    for kind in ("gatewayclass (gc)", "gateway (gtw)", "httproute", "udproute"):
        assert kind in result.stderr


def test_usage_errors_exit_2() -> None:
    for args in (["-n", "x", "-A"], ["httproute", "--proxies"]):
        result = CliRunner().invoke(main, ["status", "--admin", "127.0.0.1:1", *args])
        assert result.exit_code == 2, args


def names(doc: dict[str, Any]) -> list[str]:
    return [f"{o['kind']}:{o['namespace']}/{o['name']}" for o in doc["resources"]]


def test_select_by_kind_name_and_namespace() -> None:
    everything = select(STATUS_DOC, Selector())
    assert len(everything["resources"]) == 5 and len(everything["proxies"]) == 2
    routes = select(STATUS_DOC, Selector(kind="HTTPRoute"))
    assert names(routes) == ["HTTPRoute:default/main", "HTTPRoute:team-b/main"]
    assert routes["proxies"] == [], "proxies go with Gateways"
    one = select(STATUS_DOC, Selector(kind="HTTPRoute", name="main", namespace="team-b"))
    assert names(one) == ["HTTPRoute:team-b/main"]
    # The namespace does not hide cluster-scoped GatewayClasses.
    team_b = select(STATUS_DOC, Selector(namespace="team-b"))
    assert names(team_b) == ["GatewayClass:/egobs", "HTTPRoute:team-b/main", "GRPCRoute:team-b/rpc"]
    assert [p["name"] for p in team_b["proxies"]] == ["team-b/other"]
    gw = select(STATUS_DOC, Selector(kind="Gateway", name="eg"))
    assert names(gw) == ["Gateway:default/eg"]
    assert [p["name"] for p in gw["proxies"]] == ["default/eg"]


# --------------------------------------------------------------------------- rendering


def test_default_table_shows_key_conditions_and_problems() -> None:
    table = render(STATUS_DOC)
    got = rows(table)
    assert got[0] == ["KIND", "NAMESPACE", "NAME", "SCOPE", "TYPE", "STATUS", "REASON", "MESSAGE"]
    shown = {(r[0], r[1], r[2], r[3], r[4]) for r in got[1:]}
    assert ("GatewayClass", "-", "egobs", "-", "Accepted") in shown
    kinds = list(dict.fromkeys(r[0] for r in got[1:]))
    assert kinds == ["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"], "egctl's order"
    assert ("Gateway", "default", "eg", "-", "Programmed") in shown
    # A listener's problem shows, its healthy conditions do not.
    assert ("Gateway", "default", "eg", "listener/https", "ResolvedRefs") in shown
    assert not any(s[3] == "listener/http" for s in shown)
    # Not a key condition, no problem: hidden; a True PartiallyInvalid is a problem.
    assert not any(s[4] in ("SupportedVersion", "Quiet") for s in shown)
    assert ("HTTPRoute", "default", "main", "parent default/eg", "PartiallyInvalid") in shown
    assert "…" in table, "long messages are shortened"
    # The proxies egobs runs follow.
    assert "PROXY" in table and "127.0.0.1:10080" in table and "running" in table


def test_verbose_table_shows_every_condition_in_full() -> None:
    table = render(STATUS_DOC, verbose=True)
    shown = {(r[2], r[3], r[4]) for r in rows(table)[1:]}
    assert ("egobs", "-", "SupportedVersion") in shown
    assert ("eg", "listener/http", "Conflicted") in shown
    assert ("rpc", "parent default/eg", "Quiet") in shown
    assert ("bad regex " * 20).strip() in table


def test_empty_selection_says_so() -> None:
    assert render(select(STATUS_DOC, Selector(kind="TLSRoute"))) == "No resources found"


SYNCZ_DOC: dict[str, Any] = {
    "proxies": [
        {
            "node": "default/eg/1",
            "gateway": "default/eg",
            "mode": "delta",
            "peer": "ipv4:127.0.0.1:5555",
            "connectedSince": "2026-01-01T00:08:00.000Z",
            "latestSnapshot": "0123456789abcdef",
            "envoyAdmin": "127.0.0.1:41234",
            "synced": False,
            "types": {
                "RDS": {
                    "state": "NACK",
                    "sentVersion": "ffffeeee11112222",
                    "ackedVersion": "aaaabbbbccccdddd",
                    "ackedAt": "2026-01-01T00:09:57.000Z",
                    "lastNack": {
                        "version": "ffffeeee11112222",
                        "message": "route: invalid regex\n" + "x" * 200,
                    },
                },
                "CDS": {
                    "state": "SYNCED",
                    "sentVersion": "1234567890abcdef",
                    "ackedVersion": "1234567890abcdef",
                    "ackedAt": "2026-01-01T00:08:00.000Z",
                },
            },
        },
        {
            "node": "team-b/other/1",
            "gateway": "team-b/other",
            "mode": "sotw",
            "connectedSince": None,
            "latestSnapshot": None,
            "envoyAdmin": None,
            "types": {},
        },
    ]
}


def test_proxies_table_versions_acks_and_nacks() -> None:
    table = render_syncz(SYNCZ_DOC, now=NOW)
    summary, detail = table.split("\n\n")
    head, row, other = rows(summary)
    assert head == [
        "NODE",
        "GATEWAY",
        "MODE",
        "CDS",
        "EDS",
        "LDS",
        "SRDS",
        "RDS",
        "SDS",
        "SNAPSHOT",
        "ENVOY ADMIN",
        "CONNECTED",
    ]
    assert row == [
        "default/eg/1",
        "default/eg",
        "delta",
        "SYNCED",
        "-",
        "-",
        "-",
        "NACK",
        "-",
        "01234567",
        "127.0.0.1:41234",
        "2m",
    ]
    assert other[-3:] == ["-", "-", "-"]
    dhead, cds, rds = rows(detail)
    assert dhead == ["NODE", "TYPE", "STATE", "SENT", "ACKED", "LAST ACK", "LAST NACK"]
    assert cds == ["default/eg/1", "CDS", "SYNCED", "12345678", "12345678", "2m", "-"]
    assert rds[:6] == ["default/eg/1", "RDS", "NACK", "ffffeeee", "aaaabbbb", "3s"]
    assert rds[6].startswith("ffffeeee: route: invalid regex x") and rds[6].endswith("…")
    assert len(rds[6]) < 80
    full = render_syncz(SYNCZ_DOC, now=NOW, verbose=True)
    assert "ffffeeee11112222" in full and "x" * 200 in full


def test_proxies_selection_by_namespace_and_gateway() -> None:
    assert [
        p["node"] for p in select_syncz(SYNCZ_DOC, Selector(namespace="team-b"))["proxies"]
    ] == ["team-b/other/1"]
    sel = Selector(kind="Gateway", name="eg")
    assert [p["node"] for p in select_syncz(SYNCZ_DOC, sel)["proxies"]] == ["default/eg/1"]
    assert render_syncz({"proxies": []}) == "no proxies connected"


def test_ages() -> None:
    assert [age(s) for s in (0, 3.9, 59, 60, 150, 3599, 3600, 86399, 200000)] == [
        "0s",
        "3s",
        "59s",
        "1m",
        "2m",
        "59m",
        "1h",
        "23h",
        "2d",
    ]


# --------------------------------------------------------------------------- against a stub


class _Stub(BaseHTTPRequestHandler):
    docs = {"/debug/status": STATUS_DOC, "/debug/syncz": SYNCZ_DOC}

    def do_GET(self) -> None:
        body = json.dumps(self.docs.get(self.path, {})).encode()
        self.send_response(200 if self.path in self.docs else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stub_admin() -> Iterator[str]:
    """An admin server answering the hand-made documents."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_status_command_filters_and_outputs(stub_admin: str, tmp_path: Path) -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(main, ["status", *args], env=env)

    result = run("httproute", "-n", "team-b", "--admin", stub_admin)
    assert result.exit_code == 0, result.output
    assert [r[:3] for r in rows(result.stdout)[1:]] == [["HTTPRoute", "team-b", "main"]] * 2

    result = run("HTTPRoutes", "main", "-o", "json", env={"EGOBS_ADMIN": stub_admin})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert names(doc) == ["HTTPRoute:default/main", "HTTPRoute:team-b/main"]

    host, port = stub_admin.split(":")
    cfg = write_config(tmp_path, host, int(port))
    result = run("gtw", "eg", "-o", "yaml", "-c", cfg)
    assert result.exit_code == 0, result.output
    assert names(yaml.safe_load(result.stdout)) == ["Gateway:default/eg"]

    result = run("gateway", "nope", "--admin", stub_admin)
    assert result.exit_code == 1 and "Gateway 'nope' not found" in result.stderr

    result = run("--proxies", "-n", "default", "--admin", f"http://{stub_admin}")
    assert result.exit_code == 0, result.output
    assert "default/eg/1" in result.stdout and "team-b/other/1" not in result.stdout
    assert "LAST ACK" in result.stdout and "127.0.0.1:41234" in result.stdout


# --------------------------------------------------------------------------- version


def test_version_without_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    import egobs.infra.host

    def missing() -> str:
        raise FileNotFoundError("no envoy")

    monkeypatch.setattr(egobs.infra.host, "find_envoy", missing)
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0, result.output
    assert "envoy:" in result.stdout and "not found" in result.stdout
    result = CliRunner().invoke(main, ["version", "-o", "json"])
    doc = json.loads(result.stdout)
    assert doc["envoy"]["version"] is None and doc["envoy"]["error"] == "not found"
    assert set(doc["libraries"]) == {
        "grpcio",
        "protobuf",
        "xds-protos",
        "opentelemetry-sdk",
        "pydantic",
        "prometheus-client",
    }
    assert all(doc["libraries"].values())


def test_policy_ancestors_and_listenerset_parents_are_shown() -> None:
    problem = {"type": "Accepted", "status": "False", "reason": "Conflicted", "message": "older"}
    fine = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"}
    doc = {
        "resources": [
            {
                "kind": "BackendTLSPolicy",
                "namespace": "default",
                "name": "p",
                "status": {
                    "ancestors": [
                        {
                            "ancestorRef": {"namespace": "default", "name": "eg"},
                            "conditions": [problem],
                        }
                    ]
                },
            },
            {
                "kind": "HTTPRoute",
                "namespace": "default",
                "name": "r",
                "status": {
                    "parents": [
                        {
                            "parentRef": {
                                "kind": "ListenerSet",
                                "namespace": "default",
                                "name": "team",
                            },
                            "conditions": [fine],
                        }
                    ]
                },
            },
        ],
        "proxies": [],
    }
    shown = {(r[0], r[3], r[4], r[6]) for r in rows(render(doc))[1:]}
    assert ("BackendTLSPolicy", "ancestor default/eg", "Accepted", "Conflicted") in shown
    assert ("HTTPRoute", "parent ListenerSet default/team", "Accepted", "Accepted") in shown
    kinds = [r[0] for r in rows(render(doc))[1:] if r and r[0] in ("HTTPRoute", "BackendTLSPolicy")]
    assert kinds == ["HTTPRoute", "BackendTLSPolicy"]
