"""`egobs translate` with egctl's habits: `-t/--type` checked against `--to`, `--from`,
`--to gateway-api`, an RFC 3339 `--now`, empty input, routes whose Gateway is missing and
a missing file, each with its exact output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from egobs.cli import EXIT_LOAD_ERROR, TRANSLATE_TYPES, main, translate

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
NOW = "2026-01-01T00:00:00Z"
XDS_KEYS = {
    "cluster": "clusters",
    "listener": "listeners",
    "route": "routes",
    "endpoint": "endpoints",
    "secret": "secrets",
}


def _run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["translate", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str) -> Any:
    code, out, err = _run("-f", str(QUICKSTART), "-o", "json", "--now", NOW, *args)
    assert code == 0, err
    return json.loads(out)


def _error(err: str) -> str:
    """The message of a usage error (click's last line, after ``Error: ``)."""
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: "), err
    return last.removeprefix("Error: ")


# --------------------------------------------------------------------------- -t / --type


def test_type_choices_are_egctls() -> None:
    assert TRANSLATE_TYPES == (
        "all",
        "bootstrap",
        "cluster",
        "listener",
        "route",
        "endpoint",
        "secret",
    )
    code, out, _ = _run("--help")
    assert code == 0
    assert "-t, --type [all|bootstrap|cluster|listener|route|endpoint|secret]" in out
    (to,) = [p for p in translate.params if p.name == "to"]
    assert isinstance(to, click.Option) and "gateway-api is an alias" in (to.help or "")


@pytest.mark.parametrize("xds_type", list(XDS_KEYS))
def test_each_xds_type_is_that_part_of_the_full_dump(xds_type: str) -> None:
    full = _json("--to", "xds")["xds"]["default/eg"]
    short = _json("--to", "xds", "-t", xds_type)
    long = _json("--to", "xds", "--type", xds_type)
    assert short == long == {"xds": {"default/eg": {XDS_KEYS[xds_type]: full[XDS_KEYS[xds_type]]}}}


def test_type_all_prints_every_part() -> None:
    doc = _json("--to", "xds,bootstrap", "-t", "all")
    assert set(doc) == {"xds", "bootstrap"}
    assert {"listeners", "routes", "clusters", "endpoints"} <= set(doc["xds"]["default/eg"])


@pytest.mark.parametrize("to", ["bootstrap", "xds", "xds,bootstrap", "status,xds"])
def test_type_bootstrap_is_the_bootstrap_alone(to: str) -> None:
    """egctl's `--to xds -t bootstrap`, and egobs' own `--to bootstrap`: the bootstrap
    section, never the xDS resources."""
    expected = _json("--to", "bootstrap")
    doc = _json("--to", to, "-t", "bootstrap")
    assert doc["bootstrap"] == expected["bootstrap"]
    assert "xds" not in doc
    assert ("resources" in doc) == ("status" in to)


def test_an_xds_type_leaves_the_bootstrap_out() -> None:
    doc = _json("--to", "status,xds,bootstrap", "-t", "route")
    assert list(doc) == ["resources", "xds"]
    assert set(doc["xds"]["default/eg"]) == {"routes"}


@pytest.mark.parametrize(
    ("xds_type", "to", "needed"),
    [
        ("cluster", "status", "xds"),
        ("route", "status,ir", "xds"),
        ("listener", "bootstrap", "xds"),
        ("secret", "ir,bootstrap", "xds"),
        ("bootstrap", "status", "xds or bootstrap"),
        ("bootstrap", "ir", "xds or bootstrap"),
    ],
)
def test_a_type_that_to_does_not_print_exits_2(xds_type: str, to: str, needed: str) -> None:
    for flag in ("-t", "--type"):
        code, out, err = _run("-f", str(QUICKSTART), "--to", to, flag, xds_type)
        assert code == 2 and out == ""
        assert _error(err) == (
            f"--type {xds_type} selects part of the Envoy config, but --to {to} prints none "
            f"of it: add {needed} to --to, or use --type all"
        )


def test_type_default_with_status_only_is_fine() -> None:
    assert list(_json("--to", "status")) == ["resources"]


def test_an_unknown_type_exits_2() -> None:
    code, _, err = _run("-f", str(QUICKSTART), "--to", "xds", "-t", "clusters")
    assert code == 2 and "Invalid value for '-t' / '--type'" in err


# --------------------------------------------------------------------------- --from / --to


def test_from_gateway_api_is_the_default() -> None:
    assert _json("--from", "gateway-api") == _json()


@pytest.mark.parametrize("value", ["kubernetes", "xds", "ir", ""])
def test_from_anything_else_exits_2(value: str) -> None:
    code, out, err = _run("-f", str(QUICKSTART), "--from", value)
    assert code == 2 and out == ""
    assert _error(err) == f"Invalid value for '--from': {value!r} is not 'gateway-api'."


def test_to_gateway_api_is_status() -> None:
    """egctl's `--to gateway-api`: the input resources, each with its status; the same
    output as `--to status`, once even when both are asked for."""
    status = _json("--to", "status")
    assert _json("--to", "gateway-api") == status
    assert _json("--to", "gateway-api,status") == status
    assert list(_json("--to", "gateway-api,ir")) == ["resources", "ir"]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in status["resources"]]
    assert kinds == [("GatewayClass", "egobs"), ("Gateway", "eg"), ("HTTPRoute", "echo")]
    for obj in status["resources"]:
        assert obj["status"], obj["kind"]
    gw = status["resources"][1]
    assert [c["type"] for c in gw["status"]["conditions"]] == ["Accepted", "Programmed"]
    assert {c["lastTransitionTime"] for c in gw["status"]["conditions"]} == {NOW}


def test_an_unknown_to_exits_2_listing_the_choices() -> None:
    code, _, err = _run("-f", str(QUICKSTART), "--to", "xds,envoy")
    assert code == 2
    assert _error(err) == (
        "Invalid value for '--to': choose from status, gateway-api, ir, xds, bootstrap "
        "(comma-separated)"
    )


# --------------------------------------------------------------------------- --now


@pytest.mark.parametrize(
    "now",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00.123456Z",
        "2026-01-01T02:00:00+02:00",
        "2025-12-31T19:00:00-05:00",
    ],
)
def test_now_accepts_rfc3339_and_writes_it(now: str) -> None:
    code, out, err = _run("-f", str(QUICKSTART), "--to", "status", "-o", "json", "--now", now)
    assert code == 0, err
    times = {
        c["lastTransitionTime"]
        for o in json.loads(out)["resources"]
        for c in o["status"].get("conditions", [])
    }
    assert times == {now}


@pytest.mark.parametrize(
    "now",
    [
        "yesterday",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "20260101T000000Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T25:00:00Z",
        "2026-01-01T00:00:00+0200",
        "",
    ],
)
def test_now_rejects_anything_else_naming_the_flag(now: str) -> None:
    code, out, err = _run("-f", str(QUICKSTART), "--now", now)
    assert code == 2 and out == ""
    assert _error(err) == (
        f"Invalid value for '--now': {now!r} is not an RFC 3339 time (such as 2026-01-01T00:00:00Z)"
    )


# --------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("text", ["", "\n", "# just a comment\n", "---\n---\n"])
def test_empty_stdin_exits_2(text: str) -> None:
    code, out, err = _run("-f", "-", input=text)
    assert code == EXIT_LOAD_ERROR and out == ""
    assert err == "egobs: no objects in <stdin>: nothing to translate\n"


def test_an_empty_directory_and_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    code, out, err = _run("-f", str(tmp_path / "d"), "-f", str(tmp_path / "empty.yaml"))
    assert code == EXIT_LOAD_ERROR and out == ""
    assert err == (
        f"egobs: no objects in {tmp_path / 'd'}, {tmp_path / 'empty.yaml'}: nothing to translate\n"
    )


# --------------------------------------------------------------------------- unknown parents

ROUTES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: lost, namespace: default}
spec:
  parentRefs:
    - name: eg                          # in the input: fine
    - {name: nope, sectionName: http}   # missing
    - {name: eg, namespace: other}      # missing: another namespace
    - {name: svc, kind: Service, group: ""}   # not a Gateway: not ours to judge
  rules: [{backendRefs: [{name: echo-a, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: orphan, namespace: team}
spec:
  parentRefs: [{name: eg}]              # team/eg: missing
"""


def test_routes_whose_gateway_is_missing_are_warned_about(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    code, out, err = _run("-f", str(QUICKSTART), "-f", str(routes), "--to", "status")
    assert code == 0, err
    assert err.splitlines() == [
        f"egobs: warning: {routes}:1 (doc 1): HTTPRoute/default/lost: spec.parentRefs[1]: "
        "Gateway default/nope is not in the input",
        f"egobs: warning: {routes}:1 (doc 1): HTTPRoute/default/lost: spec.parentRefs[2]: "
        "Gateway other/eg is not in the input",
        f"egobs: warning: {routes}:12 (doc 2): GRPCRoute/team/orphan: spec.parentRefs[0]: "
        "Gateway team/eg is not in the input",
    ]
    names = [o["metadata"]["name"] for o in yaml.safe_load(out)["resources"]]
    assert "lost" in names and "orphan" not in names


def test_routes_alone_warn_and_print_no_status() -> None:
    code, out, err = _run("-f", str(QUICKSTART / "routes.yaml"), "--to", "status")
    assert code == 0
    assert err == (
        f"egobs: warning: {QUICKSTART / 'routes.yaml'}:1 (doc 1): HTTPRoute/default/echo: "
        "spec.parentRefs[0]: Gateway default/eg is not in the input\n"
    )
    assert yaml.safe_load(out) == {"resources": []}


def test_the_quickstart_has_no_warnings() -> None:
    code, _, err = _run("-f", str(QUICKSTART))
    assert code == 0 and err == ""


# --------------------------------------------------------------------------- missing file


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = _run("-f", str(QUICKSTART), "-f", str(missing))
    assert code == EXIT_LOAD_ERROR and out == ""
    assert err.splitlines() == [f"{missing}: file not found (no such file or directory)"]
    assert "doc0" not in err and "line 0" not in err
