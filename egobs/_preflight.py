"""Start-up checks for broken installs, reported as a fix to run rather than a traceback.

xds-protos ships its own, older copy of ``opentelemetry/proto/*`` and installing it
overwrites opentelemetry-proto's files. The OTLP exporter then fails deep inside an import
(``cannot import name 'InstrumentationScope'``). Detecting it up front lets us print the
one command that repairs the environment.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

# Kept equal to the pin in pyproject.toml; used when package metadata is unreadable.
PINNED_OTEL_PROTO = "1.45.2"


class BrokenInstall(RuntimeError):
    """The environment cannot run egobs; ``str()`` says how to fix it."""


def otel_proto_fix_command() -> str:
    try:
        version = importlib.metadata.version("opentelemetry-proto")
    except importlib.metadata.PackageNotFoundError:
        version = PINNED_OTEL_PROTO
    return (
        f"{sys.executable} -m pip install --force-reinstall --no-deps "
        f"opentelemetry-proto=={version}"
    )


def check_otel_proto() -> None:
    """Raise :class:`BrokenInstall` when opentelemetry-proto's modules are xds-protos' stale copy."""
    try:
        common = importlib.import_module("opentelemetry.proto.common.v1.common_pb2")
    except ImportError as exc:
        raise BrokenInstall(
            f"opentelemetry-proto cannot be imported ({exc}).\nFix: {otel_proto_fix_command()}"
        ) from None
    if not hasattr(common, "InstrumentationScope"):
        raise BrokenInstall(
            "opentelemetry-proto was overwritten by the stale copy that xds-protos ships "
            "(opentelemetry.proto.common.v1 has no InstrumentationScope), so the OTLP exporter "
            "cannot load.\n"
            f"Fix: {otel_proto_fix_command()}"
        )


def run_checks() -> None:
    check_otel_proto()
