"""`egobs translate` end to end: loading, both translators, output, and Envoy's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from testkit import envoy_validate

from egobs import gatewayapi
from egobs.cli import EXIT_LOAD_ERROR, dump_yaml, main
from egobs.infra.bootstrap import bootstrap
from egobs.resources import load_paths
from egobs.xds.dump import config_dump, static_bootstrap
from egobs.xds.translate import translate as translate_xds

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
GOLDEN_INPUTS = sorted((REPO / "tests" / "gatewayapi" / "testdata").glob("*.in.yaml"))
XDS_GOLDEN = Path(__file__).parent / "testdata"
NOW = "2026-01-01T00:00:00Z"


def _run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_quickstart_xds_output() -> None:
    code, out, err = _run("translate", "-f", str(QUICKSTART), "--to", "xds")
    assert code == 0, err
    doc = yaml.safe_load(out)
    dump = doc["xds"]["default/eg"]
    assert {"listeners", "routes", "clusters", "endpoints"} <= set(dump)
    assert dump["listeners"][0]["@type"].endswith("envoy.config.listener.v3.Listener")
    clusters = {c["name"] for c in dump["clusters"]}
    # What `egobs serve` with the default config serves: the egobs sink's cluster too, and
    # the listeners bound to infra.host.listenerAddress.
    assert clusters == {
        "service/default/echo-a/8080",
        "service/default/echo-b/8080",
        "telemetry/egobs-sink",
    }
    address = dump["listeners"][0]["address"]["socketAddress"]
    assert address == {"address": "127.0.0.1", "portValue": 80}
    names = [r["name"] for rc in dump["routes"] for vh in rc["virtualHosts"] for r in vh["routes"]]
    assert "httproute/default/echo/rule/0/match/0" in names


def test_quickstart_statuses_and_ir() -> None:
    code, out, err = _run(
        "translate", "-f", str(QUICKSTART), "--to", "status,ir", "--now", NOW, "-o", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    by_kind = {o["kind"]: o for o in doc["resources"]}
    gw_conds = {c["type"]: c for c in by_kind["Gateway"]["status"]["conditions"]}
    assert gw_conds["Accepted"]["status"] == "True" and gw_conds["Programmed"]["status"] == "True"
    assert by_kind["Gateway"]["status"]["listeners"][0]["attachedRoutes"] == 1
    route_conds = {c["type"]: c for c in by_kind["HTTPRoute"]["status"]["parents"][0]["conditions"]}
    assert route_conds["Accepted"]["status"] == "True"
    assert route_conds["ResolvedRefs"]["status"] == "True"
    assert "default/eg" in doc["ir"]["gateways"] and "default/eg" in doc["ir"]["infra"]


def test_type_filter_and_stdin() -> None:
    text = "\n---\n".join(p.read_text() for p in sorted(QUICKSTART.glob("*.yaml")))
    code, out, err = _run("translate", "-f", "-", "--to", "xds", "--type", "cluster", input=text)
    assert code == 0, err
    dump = yaml.safe_load(out)["xds"]["default/eg"]
    assert set(dump) == {"clusters"}


def test_unknown_field_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (QUICKSTART / "routes.yaml")
        .read_text()
        .replace("- path: {type: PathPrefix, value: /a}", "- pth: {type: PathPrefix, value: /a}")
    )
    code, out, err = _run("translate", "-f", str(bad))
    assert code == EXIT_LOAD_ERROR
    assert out == ""
    assert (
        f"{bad}:doc1 (line 20) HTTPRoute/default/echo: spec.rules[1].matches[0].pth: unknown field"
        in err
    )


def test_missing_file_exits_2() -> None:
    code, _, err = _run("translate", "-f", "/nonexistent.yaml")
    assert code == EXIT_LOAD_ERROR and "no such file or directory" in err


def _xds_for(path: Path) -> dict[str, object]:
    result = gatewayapi.translate(load_paths([path]), now=NOW)
    return {name: translate_xds(gw) for name, gw in sorted(result.gateways.items())}


@pytest.mark.parametrize("case", GOLDEN_INPUTS, ids=lambda p: p.name.removesuffix(".in.yaml"))
def test_golden_xds(case: Path, update_golden: bool) -> None:
    """The xDS each golden input produces, as a config dump, compared to its golden file."""
    sets = _xds_for(case)
    text = dump_yaml({name: config_dump(rs) for name, rs in sets.items()})  # type: ignore[arg-type]
    golden = XDS_GOLDEN / case.name.replace(".in.yaml", ".xds.yaml")
    if update_golden or not golden.exists():
        golden.write_text(text)
        if not update_golden:
            pytest.fail(f"golden {golden.name} was missing; written — review and commit it")
    assert text == golden.read_text()


def _bootstraps_for(path: Path) -> dict[str, dict[str, object]]:
    """Each proxy's bootstrap, as `egobs translate --to bootstrap` renders it."""
    result = gatewayapi.translate(load_paths([path]), now=NOW)
    return {
        name: bootstrap(proxy, node_id=name, xds_host="127.0.0.1", xds_port=18000, admin_port=19000)
        for name, proxy in sorted(result.proxies.items())
    }


@pytest.mark.parametrize("case", GOLDEN_INPUTS, ids=lambda p: p.name.removesuffix(".in.yaml"))
def test_golden_bootstrap(case: Path, update_golden: bool) -> None:
    """The bootstrap of each proxy a golden input produces (stats listener, stats sinks,
    inclusion list, tracer runtime), compared to its golden file."""
    text = dump_yaml(_bootstraps_for(case))
    golden = XDS_GOLDEN / case.name.replace(".in.yaml", ".bootstrap.yaml")
    if update_golden or not golden.exists():
        golden.write_text(text)
        if not update_golden:
            pytest.fail(f"golden {golden.name} was missing; written — review and commit it")
    assert text == golden.read_text()


@pytest.mark.envoy
def test_every_golden_bootstrap_is_accepted_by_envoy(envoy_bin: str, tmp_path: Path) -> None:
    """Every golden bootstrap passes `envoy --mode validate` (no deprecated fields either)."""
    checked = 0
    failures = []
    for case in [*GOLDEN_INPUTS, QUICKSTART]:
        for name, config in _bootstraps_for(case).items():
            path = tmp_path / f"{case.name}-{name.replace('/', '_')}.bootstrap.json"
            path.write_text(json.dumps(config))
            problem = envoy_validate(envoy_bin, path)
            checked += 1
            if problem is not None:
                failures.append(f"{case.name} {name}: {problem}")
    assert not failures, "\n".join(failures)
    assert checked >= len(GOLDEN_INPUTS)


def test_translate_to_bootstrap_is_what_bootstrap_prints() -> None:
    """`translate --to bootstrap` and `egobs bootstrap` render the same config (with the
    same node id), and both carry the stats listener of the default telemetry."""
    code, out, err = _run("translate", "-f", str(QUICKSTART), "--to", "bootstrap", "-o", "json")
    assert code == 0, err
    rendered = json.loads(out)["bootstrap"]["default/eg"]
    code, out, err = _run(
        "bootstrap", "--gateway", "default/eg", "-f", str(QUICKSTART), "--node-id", "default/eg"
    )
    assert code == 0, err
    assert json.loads(out) == rendered
    assert "--ignore-unknown-dynamic-fields" in err
    (listener,) = rendered["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19001}


def test_bootstrap_of_an_unknown_gateway_exits_2() -> None:
    code, _, err = _run("bootstrap", "--gateway", "default/nope", "-f", str(QUICKSTART))
    assert code == EXIT_LOAD_ERROR
    assert "default/nope is not programmed by egobs (programmed: default/eg)" in err


@pytest.mark.envoy
def test_every_golden_xds_is_accepted_by_envoy(envoy_bin: str, tmp_path: Path) -> None:
    """Every translated output, golden cases and quickstart, passes `envoy --mode validate`."""
    inputs = [*GOLDEN_INPUTS, QUICKSTART]
    checked = 0
    failures = []
    for case in inputs:
        for name, rs in _xds_for(case).items():
            cfg = tmp_path / f"{case.name}-{name.replace('/', '_')}.json"
            cfg.write_text(json.dumps(static_bootstrap(rs)))  # type: ignore[arg-type]
            problem = envoy_validate(envoy_bin, cfg)
            checked += 1
            if problem is not None:
                failures.append(f"{case.name} {name}: {problem}")
    assert not failures, "\n".join(failures)
    assert checked >= 1


@pytest.mark.envoy
def test_telemetry_example_is_accepted_by_envoy(envoy_bin: str, tmp_path: Path) -> None:
    """The README's EnvoyProxy (examples/telemetry, with the quickstart): its Gateway is
    programmed, and its xDS and bootstrap pass `envoy --mode validate`."""
    example = REPO / "examples" / "telemetry"
    result = gatewayapi.translate(load_paths([QUICKSTART, example]), now=NOW)
    assert set(result.gateways) == {"default/eg", "default/observed"}
    observed = result.gateways["default/observed"]
    assert observed.tracing is not None and observed.tracing.http_path == "/v1/traces"
    assert len(observed.access_logs) == 3
    proxy = result.proxies["default/observed"]
    assert proxy.stats.prometheus is not None and proxy.stats.prometheus.gzip
    xds = tmp_path / "xds.json"
    xds.write_text(json.dumps(static_bootstrap(translate_xds(observed))))
    problem = envoy_validate(envoy_bin, xds)
    assert problem is None, problem
    boot = tmp_path / "bootstrap.json"
    boot.write_text(
        json.dumps(
            bootstrap(proxy, node_id="x", xds_host="127.0.0.1", xds_port=18000, admin_port=19000)
        )
    )
    problem = envoy_validate(envoy_bin, boot)
    assert problem is None, problem


def test_a_port_map_that_does_not_fit_exits_2_naming_the_gateway(tmp_path: Path) -> None:
    config = tmp_path / "egobs.yaml"
    config.write_text(
        "apiVersion: egobs.dev/v1alpha1\nkind: EgobsConfig\ninfra: {host: {portOffset: 65500}}\n"
    )
    code, out, err = _run("translate", "-c", str(config), "-f", str(QUICKSTART), "--to", "xds")
    assert code == EXIT_LOAD_ERROR and out == ""
    assert (
        "egobs: infra.host: Gateway default/eg: listener default/eg/http: port 80 maps to 65580"
        in err
    )
