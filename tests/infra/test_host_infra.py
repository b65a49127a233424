"""HostInfra supervising real Envoy processes (no xDS server: Envoy keeps retrying it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from infra_helpers import run_async
from testkit import envoy_binary, pid_alive, unused_port
from testkit import wait_until_async as wait_until

from egobs import ir
from egobs.infra import host as host_mod
from egobs.infra.host import (
    ExternalInfra,
    HostInfra,
    ProxyState,
    ProxyStatus,
)


def _proxy(name: str = "ns/gw", port: int = 8080, config: str | None = None) -> ir.Proxy:
    return ir.Proxy(
        name=name,
        gateway_class="eg",
        listeners=(ir.ProxyListener(name=f"{name}/http", protocol=ir.Protocol.HTTP, port=port),),
        config=config,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def on_state(self, proxy_name: str, state: ProxyState) -> None:
        self.events.append(("state", proxy_name, state))

    def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
        self.events.append(("restart", proxy_name, exit_code))

    def on_start_duration(self, proxy_name: str, seconds: float) -> None:
        self.events.append(("start", proxy_name, seconds))

    def of(self, kind: str) -> list[tuple[str, Any]]:
        return [(n, v) for k, n, v in self.events if k == kind]


@asynccontextmanager
async def _infra(tmp_path: Path, **kw: Any) -> AsyncIterator[HostInfra]:
    kw.setdefault("envoy_path", envoy_binary())
    infra = HostInfra(
        xds_host="127.0.0.1", xds_port=unused_port(), runtime_dir=tmp_path / "run", **kw
    )
    try:
        yield infra
    finally:
        await infra.shutdown()


async def _running(infra: HostInfra, name: str, not_pid: int | None = None) -> ProxyStatus:
    def ok() -> bool:
        st = infra.status().get(name)
        return st is not None and st.state is ProxyState.RUNNING and st.pid != not_pid

    await wait_until(ok, f"{name} running")
    return infra.status()[name]


def _admin_json(st: ProxyStatus, path: str) -> dict[str, Any]:
    assert st.admin_host == "127.0.0.1"
    with urllib.request.urlopen(f"http://{st.admin_address}{path}", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


async def _server_info_async(st: ProxyStatus) -> dict[str, Any]:
    return await asyncio.to_thread(_admin_json, st, "/server_info")


# --------------------------------------------------------------------------- real Envoy


@pytest.mark.envoy
def test_envoy_binary_is_installed() -> None:
    assert os.access(envoy_binary(), os.X_OK)
    assert HostInfra(xds_host="127.0.0.1", xds_port=1).envoy_path


@pytest.mark.envoy
def test_apply_starts_envoy_with_admin_on_loopback(tmp_path: Path) -> None:
    rec = Recorder()

    async def scenario() -> None:
        async with _infra(
            tmp_path,
            observer=rec,
            extra_args=["--concurrency", "1"],
            runtime={"egobs.test_key": 7},
        ) as infra:
            await infra.apply({"ns/gw": _proxy()})
            st = await _running(infra, "ns/gw")
            assert st.pid is not None and pid_alive(st.pid)
            assert st.restarts == 0 and st.last_exit_code is None
            assert st.started_at is not None and abs(time.time() - st.started_at) < 30
            assert st.node_id is not None and st.node_id.startswith("ns/gw/")
            info = await _server_info_async(st)
            assert info["node"]["cluster"] == "ns/gw"
            assert info["node"]["id"] == st.node_id
            opts = info["command_line_options"]
            assert opts["log_level"] == "warning"
            assert opts["disable_hot_restart"] is True
            assert opts["concurrency"] == 1
            # ENVOY_FLAGS: unknown-field walks of large xDS updates skipped.
            assert opts["ignore_unknown_dynamic_fields"] is True
            runtime = await asyncio.to_thread(_admin_json, st, "/runtime")
            assert runtime["entries"]["egobs.test_key"]["final_value"] == "7"
            assert st.log_path is not None and st.log_path.is_file()
            assert "starting envoy" in st.log_path.read_text()
            boot = json.loads((st.log_path.parent / "bootstrap.json").read_text())
            assert boot["node"] == {"id": st.node_id, "cluster": "ns/gw"}
            # Re-applying an equal proxy changes nothing.
            await infra.apply({"ns/gw": _proxy()})
            assert infra.status()["ns/gw"].pid == st.pid

    run_async(scenario())
    assert rec.of("state") == [
        ("ns/gw", ProxyState.STARTING),
        ("ns/gw", ProxyState.RUNNING),
        ("ns/gw", ProxyState.STOPPED),
    ]
    [(name, seconds)] = rec.of("start")
    assert name == "ns/gw" and 0 < seconds < 15


@pytest.mark.envoy
def test_crashed_envoy_is_restarted(tmp_path: Path) -> None:
    rec = Recorder()

    async def scenario() -> None:
        async with _infra(tmp_path, observer=rec) as infra:
            await infra.apply({"ns/gw": _proxy()})
            first = await _running(infra, "ns/gw")
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            second = await _running(infra, "ns/gw", not_pid=first.pid)
            assert second.restarts == 1
            assert second.last_exit_code == -signal.SIGKILL
            assert second.node_id != first.node_id
            assert not pid_alive(first.pid)
            assert (await _server_info_async(second))["node"]["id"] == second.node_id

    run_async(scenario())
    assert rec.of("restart") == [("ns/gw", -signal.SIGKILL)]
    assert ("ns/gw", ProxyState.BACKOFF) in rec.of("state")


@pytest.mark.envoy
def test_changed_proxy_is_restarted_but_not_for_its_listeners(tmp_path: Path) -> None:
    """Listeners come over LDS: a Gateway gaining, losing or moving a listener (a
    ListenerSet attached) keeps its Envoy. Its EnvoyProxy changing restarts it."""

    async def scenario() -> None:
        async with _infra(tmp_path) as infra:
            await infra.apply({"ns/gw": _proxy(port=8080)})
            first = await _running(infra, "ns/gw")
            assert first.pid is not None
            await infra.apply({"ns/gw": _proxy(port=9090)})
            same = await _running(infra, "ns/gw")
            assert same.pid == first.pid
            await _server_info_async(same)
            await infra.apply({"ns/gw": _proxy(port=9090, config="ns/proxy-config")})
            assert not pid_alive(first.pid), "old envoy must be gone before apply returns"
            second = await _running(infra, "ns/gw", not_pid=first.pid)
            assert second.restarts == 0
            assert infra.status()["ns/gw"].pid == second.pid

    run_async(scenario())


@pytest.mark.envoy
def test_changed_bootstrap_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = host_mod.bootstrap

    async def scenario() -> None:
        async with _infra(tmp_path) as infra:
            await infra.apply({"ns/gw": _proxy()})
            first = await _running(infra, "ns/gw")

            def changed(proxy: ir.Proxy, **kw: Any) -> dict[str, Any]:
                cfg = real(proxy, **kw)
                cfg.setdefault("layered_runtime", {"layers": []})["layers"].append(
                    {"name": "egobs-test", "static_layer": {"egobs.test": 1}}
                )
                return cfg

            monkeypatch.setattr(host_mod, "bootstrap", changed)
            await infra.apply({"ns/gw": _proxy()})
            await _running(infra, "ns/gw", not_pid=first.pid)

    run_async(scenario())


@pytest.mark.envoy
def test_removed_proxy_is_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _infra(tmp_path) as infra:
            await infra.apply({"ns/gw": _proxy()})
            st = await _running(infra, "ns/gw")
            assert st.pid is not None
            await infra.apply({})
            assert not pid_alive(st.pid)
            assert infra.status() == {}

    run_async(scenario())


@pytest.mark.envoy
def test_two_proxies_side_by_side_and_shutdown_leaves_nothing(tmp_path: Path) -> None:
    pids: list[int] = []

    async def scenario() -> None:
        async with _infra(tmp_path) as infra:
            await infra.apply({"ns/a": _proxy("ns/a"), "ns/b": _proxy("ns/b")})
            a = await _running(infra, "ns/a")
            b = await _running(infra, "ns/b")
            assert a.pid != b.pid and a.admin_port != b.admin_port
            assert a.log_path != b.log_path
            assert (await _server_info_async(a))["node"]["cluster"] == "ns/a"
            assert (await _server_info_async(b))["node"]["cluster"] == "ns/b"
            pids.extend(p for p in (a.pid, b.pid) if p is not None)
            # One of them in backoff when shutdown comes.
            assert b.pid is not None
            os.kill(b.pid, signal.SIGKILL)
            await wait_until(lambda: infra.status()["ns/b"].state is ProxyState.BACKOFF, "backoff")
            t0 = time.monotonic()
            await infra.shutdown()
            assert time.monotonic() - t0 < 5
            assert {s.state for s in infra.status().values()} == {ProxyState.STOPPED}
            assert all(s.pid is None for s in infra.status().values())
            with pytest.raises(RuntimeError):
                await infra.apply({})

    run_async(scenario())
    assert len(pids) == 2
    assert [p for p in pids if pid_alive(p)] == []


@pytest.mark.envoy
def test_temporary_runtime_dir_is_removed_on_shutdown() -> None:
    async def scenario() -> None:
        infra = HostInfra(xds_host="127.0.0.1", xds_port=unused_port())
        try:
            await infra.apply({"ns/gw": _proxy()})
            st = await _running(infra, "ns/gw")
            assert st.log_path is not None and st.log_path.is_relative_to(infra.runtime_dir)
        finally:
            await infra.shutdown()
        assert not infra.runtime_dir.exists()

    run_async(scenario())


@pytest.mark.envoy
def test_envoys_die_with_a_killed_egobs(tmp_path: Path) -> None:
    """Even SIGKILL on the supervising process leaves no Envoy behind."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from egobs import ir
        from egobs.infra.host import HostInfra, ProxyState

        async def main():
            infra = HostInfra(xds_host="127.0.0.1", xds_port={unused_port()},
                              runtime_dir={str(tmp_path)!r})
            p = ir.Proxy(name="ns/gw", gateway_class="eg", listeners=())
            await infra.apply({{"ns/gw": p}})
            while infra.status()["ns/gw"].state is not ProxyState.RUNNING:
                await asyncio.sleep(0.02)
            print(infra.status()["ns/gw"].pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), line
        envoy_pid = int(line)
        assert pid_alive(envoy_pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while pid_alive(envoy_pid):
        if time.monotonic() > deadline:
            os.kill(envoy_pid, signal.SIGKILL)
            pytest.fail("envoy outlived its killed supervisor")
        time.sleep(0.05)


# --------------------------------------------------------------------------- fake envoys


def _fake_envoy(tmp_path: Path, body: str) -> str:
    """An executable standing in for envoy, to reach states a healthy Envoy never does."""
    path = tmp_path / "fake-envoy"
    path.write_text(f"#!{sys.executable}\n{textwrap.dedent(body)}")
    path.chmod(0o755)
    return str(path)


def test_crash_loop_backs_off_exponentially(tmp_path: Path) -> None:
    fake = _fake_envoy(tmp_path, "import sys\nsys.exit(3)\n")
    rec = Recorder()
    times: list[float] = []

    class Timed(Recorder):
        def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
            times.append(time.monotonic())
            rec.on_restart(proxy_name, exit_code)

    async def scenario() -> None:
        async with _infra(
            tmp_path, envoy_path=fake, observer=Timed(), backoff_initial_s=0.1, backoff_max_s=0.4
        ) as infra:
            await infra.apply({"ns/gw": _proxy()})
            await wait_until(lambda: infra.status()["ns/gw"].restarts >= 5, "5 restarts")
            st = infra.status()["ns/gw"]
            assert st.last_exit_code == 3
            assert st.state in (ProxyState.BACKOFF, ProxyState.STARTING)

    run_async(scenario())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.1, 0.2, 0.4, then capped at 0.4 (plus the time to spawn the fake).
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4 and gaps[3] >= 0.4
    assert gaps[3] < gaps[2] + 1.0
    assert all(v == 3 for _, v in rec.of("restart"))


def test_backoff_resets_after_staying_up(tmp_path: Path) -> None:
    fake = _fake_envoy(tmp_path, "import sys, time\ntime.sleep(0.3)\nsys.exit(2)\n")
    times: list[float] = []

    class Timed(Recorder):
        def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
            times.append(time.monotonic())

    async def scenario() -> None:
        async with _infra(
            tmp_path,
            envoy_path=fake,
            observer=Timed(),
            backoff_initial_s=0.2,
            backoff_max_s=10,
            backoff_reset_s=0.25,
        ) as infra:
            await infra.apply({"ns/gw": _proxy()})
            await wait_until(lambda: len(times) >= 5, "5 restarts")

    run_async(scenario())
    # Each run outlives backoff_reset_s, so every wait is the initial 0.2 s; without the
    # reset the fourth gap would be 0.3 + 1.6 s.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 1.2, gaps


def test_envoy_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    fake = _fake_envoy(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
        """,
    )

    async def scenario() -> None:
        async with _infra(tmp_path, envoy_path=fake, stop_grace_s=0.5) as infra:
            await infra.apply({"ns/gw": _proxy()})
            await wait_until(lambda: infra.status()["ns/gw"].pid is not None, "spawn")
            await asyncio.sleep(0.3)  # let the interpreter install its handler
            pid = infra.status()["ns/gw"].pid
            assert pid is not None
            t0 = time.monotonic()
            await infra.apply({})
            assert 0.5 <= time.monotonic() - t0 < 5
            assert not pid_alive(pid)

    run_async(scenario())


def test_envoy_without_admin_is_killed_after_start_timeout(tmp_path: Path) -> None:
    fake = _fake_envoy(tmp_path, "import time\ntime.sleep(60)\n")

    async def scenario() -> None:
        async with _infra(
            tmp_path, envoy_path=fake, start_timeout_s=0.5, backoff_initial_s=0.1
        ) as infra:
            await infra.apply({"ns/gw": _proxy()})
            await wait_until(lambda: infra.status()["ns/gw"].restarts >= 1, "restart")
            st = infra.status()["ns/gw"]
            assert st.last_exit_code == -signal.SIGKILL
            assert st.state is not ProxyState.RUNNING

    run_async(scenario())


def test_observer_errors_do_not_break_supervision(tmp_path: Path) -> None:
    class Broken(Recorder):
        def on_state(self, proxy_name: str, state: ProxyState) -> None:
            raise RuntimeError("boom")

    fake = _fake_envoy(tmp_path, "import sys\nsys.exit(1)\n")

    async def scenario() -> None:
        async with _infra(
            tmp_path, envoy_path=fake, observer=Broken(), backoff_initial_s=0.05
        ) as infra:
            await infra.apply({"ns/gw": _proxy()})
            await wait_until(lambda: infra.status()["ns/gw"].restarts >= 2, "restarts")

    run_async(scenario())


def test_external_infra_only_records() -> None:
    rec = Recorder()

    async def scenario() -> None:
        infra = ExternalInfra(observer=rec)
        await infra.apply({"ns/b": _proxy("ns/b"), "ns/a": _proxy("ns/a")})
        st = infra.status()
        assert list(st) == ["ns/a", "ns/b"]
        assert {s.state for s in st.values()} == {ProxyState.EXTERNAL}
        assert all(s.pid is None and s.admin_port is None for s in st.values())
        await infra.apply({"ns/a": _proxy("ns/a")})
        assert list(infra.status()) == ["ns/a"]
        await infra.shutdown()
        assert infra.status() == {}

    run_async(scenario())
    assert rec.of("state") == [
        ("ns/a", ProxyState.EXTERNAL),
        ("ns/b", ProxyState.EXTERNAL),
        ("ns/b", ProxyState.STOPPED),
        ("ns/a", ProxyState.STOPPED),
    ]
