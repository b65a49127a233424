"""mTLS on the access-log sink (issue 13): only clients with a certificate from the CA are
heard, and only for the Gateway their certificate names. In process, on 127.0.0.1, with
raw gRPC clients standing in for Envoy's access loggers (tests/security/test_mtls_e2e.py
has the real Envoy)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from mtls_helpers import (
    GW,
    OTHER,
    client_credentials,
    export_otlp_logs,
    make_certs,
    send_access_logs,
)

from egobs.certs import Layout, TLSFileError
from egobs.sink import Sink, SinkConfig, load_sink_config


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return make_certs(tmp_path_factory.mktemp("sink-mtls") / "certs", GW, OTHER)


def _config(layout: Layout, jsonl: Path) -> SinkConfig:
    return SinkConfig.model_validate(
        {
            "port": 0,
            "metrics": {"port": 0},
            "jsonl": {"path": str(jsonl)},
            "tls": {
                "certFile": str(layout.sink.cert),
                "keyFile": str(layout.sink.key),
                "caFile": str(layout.ca.cert),
            },
        }
    )


def _received(sink: Sink, source: str) -> float:
    value = sink.metrics.registry.get_sample_value(
        "egobs_sink_entries_received_total", {"source": source}
    )
    return value or 0.0


async def _until(pred: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_entries_are_taken_only_for_the_certified_gateway(layout: Layout, tmp_path: Path) -> None:
    jsonl = tmp_path / "access.jsonl"

    async def main() -> None:
        sink = Sink(_config(layout, jsonl))
        await sink.start()
        try:
            port = sink.grpc_port
            # Refused first: had any of their entries been queued, they would be written
            # before the good ones, which the test waits for.
            forged = await send_access_logs(
                port, client_credentials(layout, OTHER), GW, ["/forged"]
            )
            assert forged.code is grpc.StatusCode.PERMISSION_DENIED
            assert forged.details == (
                "entries for Gateway default/eg, but the client certificate names default/other"
            )
            anonymous = await send_access_logs(
                port, client_credentials(layout, None), GW, ["/anonymous"]
            )
            plaintext = await send_access_logs(port, None, GW, ["/plaintext"])
            for out in (anonymous, plaintext):
                assert out.code is grpc.StatusCode.UNAVAILABLE, out
            otlp = await export_otlp_logs(port, client_credentials(layout, OTHER), GW, "/otlp")
            assert otlp.code is grpc.StatusCode.PERMISSION_DENIED
            assert "names default/other" in otlp.details

            good = await send_access_logs(
                port, client_credentials(layout, GW), GW, ["/good-1", "/good-2"]
            )
            assert good.code is grpc.StatusCode.OK, good
            await _until(lambda: len(_lines(jsonl)) >= 2, "the certified entries written")
            assert _received(sink, "als_http") == 2
            assert _received(sink, "otlp") == 0
        finally:
            await sink.stop()
        lines = _lines(jsonl)
        assert sorted(str(x["path"]) for x in lines) == ["/good-1", "/good-2"]
        assert {x["gateway"] for x in lines} == {GW}

    asyncio.run(asyncio.wait_for(main(), 60))


def test_tls_files_relative_to_the_config_and_checked_at_start(
    layout: Layout, tmp_path: Path
) -> None:
    config = layout.root / "sink.yaml"
    config.write_text(
        "apiVersion: egobs.dev/v1alpha1\nkind: SinkConfig\n"
        "tls: {certFile: sink.pem, keyFile: xds-key.pem, caFile: ca.pem}\n"
    )
    cfg = load_sink_config(config)
    assert cfg.tls is not None and cfg.tls.cert_file == str(layout.sink.cert)

    async def main() -> None:
        with pytest.raises(TLSFileError, match=r"^tls.keyFile .*xds-key.pem: not the key of "):
            await Sink(cfg.model_copy(update={"port": 0})).start()

    asyncio.run(main())


def _sink_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egobs.cli", "sink", "--port", "0", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_sink_command_refuses_partial_or_unusable_tls(layout: Layout, tmp_path: Path) -> None:
    partial = _sink_command("--tls-cert", str(layout.sink.cert))
    assert partial.returncode == 2
    assert partial.stderr.strip().splitlines() == [
        "egobs: mTLS needs all of --tls-cert, --tls-key and --tls-ca"
    ]
    missing = _sink_command(
        "--tls-cert",
        str(layout.sink.cert),
        "--tls-key",
        str(layout.sink.key),
        "--tls-ca",
        str(tmp_path / "absent.pem"),
    )
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith("egobs: tls.caFile ") and line.endswith(
        "absent.pem: cannot read: No such file or directory"
    )
