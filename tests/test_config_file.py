"""The serve config file: defaults, relative paths, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from egobs.config import Config, load_config
from egobs.resources import LoadError


def test_defaults_bind_loopback() -> None:
    cfg = Config()
    assert cfg.xds.address == "127.0.0.1" and cfg.admin.address == "127.0.0.1"
    assert cfg.infra.host.listener_address == "127.0.0.1"
    assert cfg.gateway.controller_name == "gateway.egobs.dev/gatewayclass-controller"


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    f = tmp_path / "conf" / "egobs.yaml"
    f.write_text(
        "provider: {file: {paths: [../resources, /abs/dir]}}\n"
        "infra: {host: {portOffset: 10000, portMap: {443: 8443}}}\n"
    )
    cfg = load_config(f)
    assert cfg.provider.file.paths == [str(tmp_path / "conf" / ".." / "resources"), "/abs/dir"]
    assert cfg.infra.host.port_offset == 10000 and cfg.infra.host.port_map == {443: 8443}


def test_unknown_field_names_file_and_path(tmp_path: Path) -> None:
    f = tmp_path / "egobs.yaml"
    f.write_text("xds: {prot: 1}\n")
    with pytest.raises(LoadError) as info:
        load_config(f)
    assert f"{f}:doc1 (line 1) EgobsConfig: xds.prot: unknown field" == str(info.value.errors[0])


def test_hostname_scopes_threshold(tmp_path: Path) -> None:
    assert Config().xds.hostname_scopes_min_routes == 1000
    f = tmp_path / "egobs.yaml"
    f.write_text("xds: {hostnameScopesMinRoutes: null}\n")
    assert load_config(f).xds.hostname_scopes_min_routes is None
    f.write_text("xds: {hostnameScopesMinRoutes: -1}\n")
    with pytest.raises(LoadError) as info:
        load_config(f)
    assert "xds.hostnameScopesMinRoutes" in str(info.value.errors[0])
