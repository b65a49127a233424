"""JSON lines output: rotation by size and age, retention, and through a running sink."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from sink_helpers import async_wait, read_jsonl, send_als, sink_config

from egobs.sink import Sink
from egobs.sink._synthetic import http_message
from egobs.sink.jsonl import JsonlWriter, encode_record
from egobs.sink.metrics import SinkMetrics
from egobs.sink.records import REDACTED, HeaderPolicy, HttpLines, Origin, http_records


def test_size_rotation_keeps_whole_lines_and_only_the_newest_backups(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    writer = JsonlWriter(str(path), max_bytes=2048, backups=2)
    for i in range(100):
        writer.write([{"n": i * 5 + j, "pad": "x" * 40} for j in range(5)])
    writer.close()
    rotated = writer.rotated_files()
    assert writer.rotations > 2
    assert len(rotated) == 2
    for f in [*rotated, path]:
        assert f.stat().st_size <= 2048
    # The newest lines survive, in order, each a whole JSON document.
    numbers = [
        json.loads(line)["n"] for f in [*rotated, path] for line in f.read_text().splitlines()
    ]
    assert numbers == list(range(numbers[0], 500))


def test_age_rotation(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    writer = JsonlWriter(str(path), max_age_s=0.05, backups=5)
    writer.write([{"n": 1}])
    writer.write([{"n": 2}])
    assert writer.rotations == 0
    time.sleep(0.1)
    writer.write([{"n": 3}])
    writer.close()
    assert writer.rotations == 1
    (old,) = writer.rotated_files()
    assert [json.loads(x)["n"] for x in old.read_text().splitlines()] == [1, 2]
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [3]


def test_idle_sink_rotates_on_time(tmp_path: Path) -> None:
    """A file past its age is rotated while no entries arrive, not at the next write."""

    async def main() -> None:
        path = tmp_path / "access.jsonl"
        sink = Sink(sink_config(tmp_path, jsonl={"path": str(path), "maxAgeS": 0.3}))
        await sink.start()
        try:
            await send_als(sink.grpc_port, [http_message(3).SerializeToString()])
            await async_wait(lambda: len(read_jsonl(path)) == 3, what="3 lines")
            assert not list(tmp_path.glob("access.jsonl.*"))
            rotated = await async_wait(
                lambda: list(tmp_path.glob("access.jsonl.*")), timeout=5, what="a rotation"
            )
            assert len(rotated) == 1 and len(rotated[0].read_text().splitlines()) == 3
            # Nothing more written: no empty files are rotated after it.
            await asyncio.sleep(0.5)
            assert len(list(tmp_path.glob("access.jsonl.*"))) == 1
        finally:
            await sink.stop()

    asyncio.run(main())


def test_redaction_and_allowlist() -> None:
    policy = HeaderPolicy(allowlist=None, redact=("authorization", "Cookie"))
    assert policy.apply({"Authorization": "Bearer x", "cookie": "a=b", "accept": "*/*"}) == {
        "authorization": REDACTED,
        "cookie": REDACTED,
        "accept": "*/*",
    }
    only = HeaderPolicy(allowlist=("accept",), redact=("authorization",))
    assert only.apply({"authorization": "x", "accept": "*/*"}) == {"accept": "*/*"}


def test_sink_rotates_its_file(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Sink(
            sink_config(
                tmp_path,
                jsonl={"path": str(tmp_path / "access.jsonl"), "maxBytes": 4096, "backups": 100},
            )
        )
        await sink.start()
        try:
            await send_als(
                sink.grpc_port,
                [
                    http_message(
                        20,
                        start=i * 20,
                        identifier=i == 0,
                        headers={"authorization": "Bearer t0ps3cret", "content-type": "x/y"},
                    ).SerializeToString()
                    for i in range(10)
                ],
            )
            await async_wait(
                lambda: len(read_jsonl(tmp_path / "access.jsonl")) >= 200, what="200 lines"
            )
        finally:
            await sink.stop()
        lines = read_jsonl(tmp_path / "access.jsonl")
        assert sorted(r["request_id"] for r in lines) == sorted(f"req-{i}" for i in range(200))
        assert len(list(tmp_path.glob("access.jsonl.*"))) >= 3
        assert all(r["request_headers"]["authorization"] == REDACTED for r in lines)
        assert all(r["request_headers"]["content-type"] == "x/y" for r in lines)
        assert not any("t0ps3cret" in f.read_text() for f in tmp_path.glob("access.jsonl*"))

    asyncio.run(main())


def _odd_entries() -> list:
    """Entries exercising every optional part of a line, and strings that need escaping."""
    msg = http_message(
        4,
        route='route/"quoted"\\back\nslash',
        cluster="cluster/ünïcode/✓",
        headers={"authorization": "Bearer s3cret", "x-trace": 'a"b\tc', "accept": "*/*"},
    )
    entries = list(msg.http_logs.log_entry)
    a, b, c, d = entries
    a.common_properties.response_flags.no_healthy_upstream = True
    a.common_properties.response_flags.upstream_request_timeout = True
    a.common_properties.upstream_transport_failure_reason = "TLS error: \x01 bad"
    a.common_properties.upstream_remote_address.socket_address.address = "10.0.0.1"
    a.common_properties.upstream_remote_address.socket_address.port_value = 8080
    b.common_properties.duration.FromNanoseconds(2_000_000_000)
    b.common_properties.downstream_remote_address.Clear()
    b.common_properties.downstream_remote_address.pipe.path = "/run/envoy.sock"
    b.response.response_headers.update({"set-cookie": "k=v", "content-type": "text/plain"})
    b.request.user_agent = "curl/8 «x»"
    c.request.request_headers.clear()
    # Mixed-case names are not what Envoy sends, but must collapse as the dict path does.
    d.request.request_headers.update({"X-Trace": "upper", "Accept": "also"})
    return entries


def test_direct_lines_equal_encoded_records() -> None:
    origin = Origin('default/"gw"', "node-ü", "egobs")
    for policy in (
        HeaderPolicy(allowlist=None, redact=("authorization", "set-cookie")),
        HeaderPolicy(allowlist=("x-trace", "set-cookie"), redact=("set-cookie",)),
        HeaderPolicy(allowlist=(), redact=()),
    ):
        entries = _odd_entries()
        expected = "".join(encode_record(r) + "\n" for r in http_records(entries, origin, policy))
        text, count = HttpLines(policy).lines(entries, origin)
        assert count == len(entries)
        assert text == expected
        assert all(json.loads(line) for line in text.splitlines())
    assert (
        "s3cret"
        not in HttpLines(HeaderPolicy(allowlist=None, redact=("authorization",))).lines(
            _odd_entries(), origin
        )[0]
    )


def test_one_pass_lines_and_metrics_equal_two_passes() -> None:
    """The hot path (line and RED metrics read in one pass) changes neither output."""
    origin = Origin("default/gw", "node", "egobs")
    policy = HeaderPolicy(allowlist=None, redact=("authorization",))
    entries = _odd_entries()
    entries[2].response.response_code.value = 503
    entries[3].response.response_code.value = 404
    separate, combined = SinkMetrics(label_cap=2), SinkMetrics(label_cap=2)
    separate.account_http(origin.gateway, entries)
    expected, _ = HttpLines(policy).lines(entries, origin)
    text, count = HttpLines(policy).lines(entries, origin, combined.http_account(origin.gateway))
    assert (text, count) == (expected, len(entries))

    def samples(m: SinkMetrics) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (s.name, sorted(s.labels.items()), s.value)
            for fam in m.registry.collect()
            for s in fam.samples
            if not s.name.endswith("_created")
        )

    got = samples(combined)
    assert got == samples(separate)
    # The flags, the code classes and the latency sum are all in there, not only counts.
    names = {name for name, _, value in got if value}
    assert {
        "egobs_sink_response_flags_total",
        "egobs_sink_requests_total",
        "egobs_sink_request_duration_seconds_sum",
    } <= names


def test_write_lines_counts_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    writer = JsonlWriter(str(path), max_bytes=1024, backups=10)
    for i in range(20):
        assert writer.write_lines("".join(f'{{"n":{i * 10 + j}}}\n' for j in range(10)), 10) == 10
    writer.close()
    assert writer.rotations > 0
    files = [*writer.rotated_files(), path]
    numbers = [json.loads(x)["n"] for f in files for x in f.read_text().splitlines()]
    assert numbers == list(range(200))
