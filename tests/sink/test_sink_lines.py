"""The one-pass JSON lines (escaping, the bounded escaped-value cache, metrics), the worker's
slices of large batches and the idle rotation, held to the two-pass and record forms."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from envoy.data.accesslog.v3 import accesslog_pb2

from egobs.sink import records
from egobs.sink._synthetic import http_message
from egobs.sink.jsonl import JsonlWriter, encode_record
from egobs.sink.metrics import SinkMetrics
from egobs.sink.pipeline import _SLICE, Pipeline
from egobs.sink.records import HeaderPolicy, HttpLines, Origin, http_records

# Characters JSON must escape, or keeps as is with ensure_ascii=False.
_CHARS = ["a", '"', "\\", "\n", "\x00", "\x1f", "\x7f", "ü", "✓", "\u2028", "😀", ":", "/", "\t"]
_FLAGS = [f.name for f in accesslog_pb2.ResponseFlags.DESCRIPTOR.fields if f.type == f.TYPE_BOOL]


def _text(rng: random.Random, n: int = 4) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randrange(n)))


def _entries(rng: random.Random, count: int) -> list[Any]:
    out = list(http_message(count).http_logs.log_entry)
    for e in out:
        c = e.common_properties
        if rng.random() < 0.7:
            c.route_name = _text(rng)
        if rng.random() < 0.7:
            c.upstream_cluster = _text(rng)
        r = rng.random()
        if r < 0.3:
            c.upstream_remote_address.socket_address.address = _text(rng, 3) or "x"
            c.upstream_remote_address.socket_address.port_value = rng.randrange(3)
        elif r < 0.6:
            c.upstream_remote_address.pipe.path = _text(rng)
        r = rng.random()
        if r < 0.3:
            c.downstream_remote_address.Clear()
            c.downstream_remote_address.pipe.path = _text(rng)
        elif r < 0.6:
            c.downstream_remote_address.socket_address.address = _text(rng, 3)
        if rng.random() < 0.3:
            c.ClearField("time_to_last_downstream_tx_byte")  # no duration at all
        if rng.random() < 0.3:
            c.duration.FromNanoseconds(rng.randrange(10**11))
        if rng.random() < 0.3:
            for _ in range(rng.randrange(3)):
                setattr(c.response_flags, rng.choice(_FLAGS), rng.random() < 0.8)
        if rng.random() < 0.1:
            c.response_flags.unauthorized_details.reason = 1  # a flag field that is no bool
        if rng.random() < 0.1:
            c.response_flags.SetInParent()
        if rng.random() < 0.3:
            c.upstream_transport_failure_reason = _text(rng)
        if rng.random() < 0.5:
            e.request.authority = _text(rng)
        if rng.random() < 0.5:
            e.request.user_agent = _text(rng)
        if rng.random() < 0.5:
            e.response.response_code_details = _text(rng)
        if rng.random() < 0.5:
            e.request.path = _text(rng)
        if rng.random() < 0.3:
            e.response.response_code.value = rng.choice([0, 101, 204, 302, 404, 503, 600, 999])
        if rng.random() < 0.3:
            e.protocol_version = rng.randrange(6)
        if rng.random() < 0.3:
            e.request.request_method = rng.randrange(12)
        if rng.random() < 0.3:
            e.request.request_headers.update(
                {rng.choice(["authorization", "x-a", "X-B", "ü", _text(rng, 3)]): _text(rng)}
            )
        if rng.random() < 0.3:
            e.response.response_headers.update({rng.choice(["set-cookie", "x-a"]): _text(rng)})
    return out


def _samples(m: SinkMetrics) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted(
        (s.name, sorted(s.labels.items()), s.value)
        for fam in m.registry.collect()
        for s in fam.samples
        if not s.name.endswith("_created")
    )


# --------------------------------------------------------------------------- lines


def test_lines_and_metrics_equal_records_over_escaping_values_and_cache_clears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many batches through one HttpLines: its escaped-value cache fills, clears (also in the
    middle of a batch) and refills."""
    monkeypatch.setattr(records, "_ESCAPED_MAX", 64)
    rng = random.Random(5)
    policy = HeaderPolicy(allowlist=None, redact=("authorization", "set-cookie"))
    lines = HttpLines(policy)

    class Escaped(dict):  # type: ignore[type-arg]
        clears = 0

        def clear(self) -> None:
            Escaped.clears += 1
            super().clear()

    lines._escaped = Escaped()
    for _ in range(400):
        origin = Origin(_text(rng), _text(rng), _text(rng))
        entries = _entries(rng, rng.randrange(1, 40))
        two_pass, one_pass = SinkMetrics(label_cap=5), SinkMetrics(label_cap=5)
        two_pass.account_http(origin.gateway, entries)
        expected = "".join(encode_record(r) + "\n" for r in http_records(entries, origin, policy))
        text, count = lines.lines(entries, origin, one_pass.http_account(origin.gateway))
        assert (text, count) == (expected, len(entries))
        assert _samples(one_pass) == _samples(two_pass)
        assert [json.loads(line) for line in text.split("\n")[:-1]] == http_records(
            entries, origin, policy
        )
    assert Escaped.clears > 0


def test_a_value_cached_from_one_field_is_right_in_another() -> None:
    """One cache for routes, clusters, hosts, agents...: a pipe path equal to a route name,
    and a socket address whose text equals a pipe path."""
    policy = HeaderPolicy(allowlist=None, redact=())
    entries = list(http_message(3).http_logs.log_entry)
    weird = '/run/"x"\n.sock'
    a, b, c = (e.common_properties for e in entries)
    a.route_name = weird
    a.upstream_remote_address.pipe.path = weird
    b.upstream_cluster = "1.2.3.4:80"
    b.downstream_remote_address.Clear()
    b.downstream_remote_address.pipe.path = "1.2.3.4:80"
    c.upstream_remote_address.socket_address.address = "1.2.3.4"
    c.upstream_remote_address.socket_address.port_value = 80
    entries[2].request.user_agent = weird
    origin = Origin("g", "n", "l")
    expected = "".join(encode_record(r) + "\n" for r in http_records(entries, origin, policy))
    lines = HttpLines(policy)
    assert lines.lines(entries, origin)[0] == expected
    assert lines.lines(list(reversed(entries)), origin)[0] == "".join(
        encode_record(r) + "\n" for r in http_records(list(reversed(entries)), origin, policy)
    )


def test_escaped_value_cache_stays_bounded_within_one_batch() -> None:
    """The cache is cleared only at the start of lines(): one message of entries with
    distinct values (authority, user agent, addresses... come from the network) grows it far
    past _ESCAPED_MAX, and it is kept at that size until the next batch. One 4 MiB message
    (the default max_message_bytes) holds ~58,000 such entries: ~400,000 cache entries,
    ~70 MiB kept, which the queue's byte accounting knows nothing about."""
    msg = http_message(1)
    msg.http_logs.ClearField("log_entry")
    for i in range(20_000):
        e = msg.http_logs.log_entry.add()
        e.request.authority = f"a{i}"
        e.request.user_agent = f"u{i}"
    lines = HttpLines(HeaderPolicy(allowlist=None, redact=()))
    lines.lines(msg.http_logs.log_entry, Origin("g", "n", "l"))
    assert len(lines._escaped) <= records._ESCAPED_MAX + 1, len(lines._escaped)


# --------------------------------------------------------------------------- worker slice


def test_worker_yields_after_a_slice_of_entries_not_a_whole_message(tmp_path: Path) -> None:
    """The worker yields every _SLICE entries, splitting a message larger than that (Envoy
    sends ~900 entries per 256 KiB batch), and processes every entry exactly once."""

    async def main() -> list[int]:
        pipeline = Pipeline(
            metrics=SinkMetrics(), max_queue=100_000, jsonl=JsonlWriter(str(tmp_path / "a.jsonl"))
        )
        sizes: list[int] = []
        process = pipeline._process

        def spy(batch: list[tuple[Any, ...]]) -> None:
            sizes.append(sum(len(item[2]) for item in batch))
            process(batch)

        pipeline._process = spy  # type: ignore[method-assign]
        origin = Origin("g", "n", "l")
        for _ in range(2):
            await pipeline.submit_http(origin, list(http_message(900).http_logs.log_entry))
        pipeline.start()
        await pipeline.drain(timeout=10)
        return sizes

    sizes = asyncio.run(main())
    assert sum(sizes) == 1800
    assert max(sizes) <= _SLICE, sizes


# --------------------------------------------------------------------------- rotation


def test_seconds_until_due_and_rotate_if_due(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    assert JsonlWriter("-", max_age_s=0.01).seconds_until_due() is None
    assert JsonlWriter(str(path)).seconds_until_due() is None  # no age limit
    writer = JsonlWriter(str(path), max_age_s=0.2, backups=5)
    assert writer.seconds_until_due() is None  # nothing written yet
    assert not writer.rotate_if_due()
    writer.write([{"n": 1}])
    due = writer.seconds_until_due()
    assert due is not None and 0 < due <= 0.2
    assert not writer.rotate_if_due()
    time.sleep(0.25)
    assert writer.seconds_until_due() == 0.0
    assert writer.rotate_if_due()
    assert writer.rotations == 1
    # Rotated and nothing written since: nothing more to rotate, no empty files.
    assert writer.seconds_until_due() is None
    assert not writer.rotate_if_due()
    writer.write([{"n": 2}])
    writer.close()
    (old,) = writer.rotated_files()
    assert [json.loads(x)["n"] for x in old.read_text().splitlines()] == [1]
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [2]


def test_rotate_if_due_on_a_file_removed_from_under_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    writer = JsonlWriter(str(path), max_age_s=0.05)
    writer.write([{"n": 1}])
    path.unlink()
    time.sleep(0.1)
    assert writer.rotate_if_due()
    writer.write([{"n": 2}])
    writer.close()
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [2]
