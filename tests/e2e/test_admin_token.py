"""admin.tokenFile: /debug/* need the bearer token; health and metrics stay open; the CLI
finds the token in -c's config or $EGOBS_ADMIN_TOKEN (real egobs serve, External infra)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import Serve

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("token")
    (tmp / "admin.token").write_text(TOKEN + "\n")
    server = Serve(tmp, infra="External", admin_token_file="admin.token")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_debug_endpoints_need_the_token(serve: Serve) -> None:
    for path in ("/debug/status", "/debug/syncz", "/debug/config_dump", "/debug/logs"):
        assert _status(serve.admin + path) == 401, path
        assert _status(serve.admin + path, "wrong") == 401, path
        assert _status(serve.admin + path, TOKEN) == 200, path


def test_health_and_metrics_stay_open(serve: Serve) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert _status(serve.admin + path) == 200, path


def _egobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EGOBS_ADMIN")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "egobs.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def test_the_cli_sends_the_token_from_the_config_or_the_environment(serve: Serve) -> None:
    with_config = _egobs("status", "-o", "json", "-c", str(serve.config))
    assert with_config.returncode == 0, with_config.stderr
    admin = f"127.0.0.1:{serve.admin_port}"
    from_env = _egobs("status", "--admin", admin, env={"EGOBS_ADMIN_TOKEN": TOKEN})
    assert from_env.returncode == 0, from_env.stderr
    without = _egobs("status", "--admin", admin)
    assert without.returncode == 1, without.stderr
    assert "answered 401: it requires a token; set EGOBS_ADMIN_TOKEN" in without.stderr


def test_serve_refuses_a_missing_token_file(tmp_path: Path) -> None:
    server = Serve(tmp_path, infra="External", admin_token_file="absent.token")
    proc = _egobs("serve", "-c", str(server.config))
    assert proc.returncode == 2
    assert "admin.tokenFile" in proc.stderr and "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr
