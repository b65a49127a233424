"""Proxy records: a kept Envoy is found again by its pid and start time, and a pid that now
belongs to another process is never signalled. Real processes stand in for Envoys (their
command line names the record's bootstrap, as an Envoy's does)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import pid_alive, wait_until

from egobs.infra.host import HostInfra
from egobs.infra.records import (
    RECORD_FILE,
    ProxyRecord,
    live_records,
    start_ticks,
    stop_recorded,
    write_record,
)


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], ProxyRecord]]:
    """A process whose command line names ``<dir>/bootstrap.json``, and its record."""
    workdir = tmp_path / "default_eg"
    workdir.mkdir()
    bootstrap = workdir / "bootstrap.json"
    bootstrap.write_text("{}")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(bootstrap)],
        start_new_session=True,
    )
    ticks = wait_until(lambda: start_ticks(proc.pid), what="process started")
    record = ProxyRecord(
        name="default/eg",
        pid=proc.pid,
        start_ticks=ticks,
        node_id="default/eg/7",
        fingerprint="f" * 64,
        xds="127.0.0.1:18000",
        bootstrap=str(bootstrap),
        started_at=time.time(),
    )
    write_record(record)
    yield proc, record
    proc.kill()
    proc.wait()


def test_a_live_record_is_found_and_a_dead_one_removed(
    tmp_path: Path, stand_in: tuple[subprocess.Popen[bytes], ProxyRecord]
) -> None:
    proc, record = stand_in
    assert live_records(tmp_path) == [record]
    proc.kill()
    proc.wait()
    assert live_records(tmp_path) == []
    assert not (record.directory / RECORD_FILE).exists()


def test_a_reused_pid_is_never_signalled(
    tmp_path: Path, stand_in: tuple[subprocess.Popen[bytes], ProxyRecord]
) -> None:
    proc, record = stand_in
    # The same pid with another start time: what a record looks like once its Envoy has
    # exited and the kernel gave the pid to some other process.
    reused = dataclasses.replace(record, start_ticks=record.start_ticks - 1)
    write_record(reused)
    assert live_records(tmp_path) == []
    assert stop_recorded(reused, grace_s=0.1)  # nothing of ours left: done, nothing sent
    assert pid_alive(proc.pid)


def test_stop_recorded_stops_the_process(
    tmp_path: Path, stand_in: tuple[subprocess.Popen[bytes], ProxyRecord]
) -> None:
    proc, record = stand_in
    assert stop_recorded(record, grace_s=5)
    assert proc.wait(5) is not None
    assert not (record.directory / RECORD_FILE).exists()


def test_adopt_takes_only_its_own_control_planes_envoys(
    tmp_path: Path, stand_in: tuple[subprocess.Popen[bytes], ProxyRecord]
) -> None:
    proc, record = stand_in

    async def adopted(xds_port: int) -> list[ProxyRecord]:
        infra = HostInfra(
            xds_host="127.0.0.1",
            xds_port=xds_port,
            runtime_dir=tmp_path,
            keep_proxies=True,
            envoy_path="/bin/false",
        )
        found = await infra.adopt()
        await infra.shutdown()
        return found

    assert asyncio.run(adopted(18001)) == []  # another control plane's Envoy
    assert pid_alive(proc.pid)
    assert asyncio.run(adopted(18000)) == [record]
    assert pid_alive(proc.pid)  # adopting is not touching: only apply() decides
