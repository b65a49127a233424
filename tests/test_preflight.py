"""The broken-install check: xds-protos' stale opentelemetry/proto copy is caught with a fix."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from egobs import _preflight
from egobs.cli import EXIT_BROKEN_INSTALL, main


def test_healthy_environment_passes() -> None:
    _preflight.run_checks()
    # The real OTLP exporter imports, which is what the check protects.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: F401


@pytest.fixture
def stale_otel_proto(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shape xds-protos leaves behind: the module imports, the newer message is absent.
    stale = types.ModuleType("opentelemetry.proto.common.v1.common_pb2")
    stale.AnyValue = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.common.v1.common_pb2", stale)


@pytest.mark.usefixtures("stale_otel_proto")
def test_stale_copy_is_detected_with_exact_fix() -> None:
    with pytest.raises(_preflight.BrokenInstall) as info:
        _preflight.run_checks()
    msg = str(info.value)
    assert "InstrumentationScope" in msg
    assert (
        f"{sys.executable} -m pip install --force-reinstall --no-deps opentelemetry-proto==1.45.2"
        in msg
    )


@pytest.mark.usefixtures("stale_otel_proto")
def test_cli_prints_fix_instead_of_traceback() -> None:
    result = CliRunner().invoke(main, ["translate", "-f", "examples/quickstart"])
    assert result.exit_code == EXIT_BROKEN_INSTALL
    assert "Traceback" not in result.output
    assert "--force-reinstall --no-deps opentelemetry-proto==" in result.output


def test_fresh_interpreter_with_stale_module_exits_with_fix(tmp_path: Path) -> None:
    # Shadow the real module on sys.path with a stale one and check the CLI's report in a
    # fresh interpreter, so nothing in this process is touched.
    pkg = tmp_path / "shadow"
    mod_dir = pkg / "opentelemetry" / "proto" / "common" / "v1"
    mod_dir.mkdir(parents=True)
    for d in (pkg / "opentelemetry" / "proto", pkg / "opentelemetry" / "proto" / "common", mod_dir):
        (d / "__init__.py").write_text("")
    (mod_dir / "common_pb2.py").write_text("AnyValue = object\n")
    code = (
        f"import sys; sys.path.insert(0, {str(pkg)!r})\n"
        "import opentelemetry\n"
        f"opentelemetry.__path__.insert(0, {str(pkg / 'opentelemetry')!r})\n"
        "from egobs.cli import main\n"
        "main(['translate', '-f', 'examples/quickstart'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BROKEN_INSTALL, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Fix: " in proc.stderr and "opentelemetry-proto==1.45.2" in proc.stderr
