"""The sink's gRPC services in process: bad input, OTLP in and out, shutdown, bounds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from sink_helpers import (
    als_call,
    async_metrics,
    async_wait,
    free_port,
    read_jsonl,
    send_als,
    sink_config,
    total,
)

from egobs.resources.loader import LoadError
from egobs.sink import Sink, load_sink_config
from egobs.sink._synthetic import http_message
from egobs.sink.metrics import OTHER, SinkMetrics
from egobs.sink.pipeline import Pipeline, batch_cost
from egobs.sink.records import Origin


def _url(sink: Sink) -> str:
    return f"http://127.0.0.1:{sink.metrics_port}"


def test_malformed_and_oversized_messages_are_counted_not_fatal(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Sink(sink_config(tmp_path, max_message_bytes=1024))
        await sink.start()
        try:
            await send_als(
                sink.grpc_port,
                [
                    http_message(2).SerializeToString(),
                    b"\x0a\xff\xff\xff\xff",  # a length prefix far past the end
                    http_message(10, identifier=False).SerializeToString(),  # > 1024 bytes
                    http_message(3, identifier=False, start=2).SerializeToString(),
                ],
            )
            m = await async_wait(lambda: _written(sink, 5), what="the valid entries written")
            assert total(m, "egobs_sink_messages_rejected_total", reason="malformed") == 1
            assert total(m, "egobs_sink_messages_rejected_total", reason="oversized") == 1
            assert total(m, "egobs_sink_entries_received_total", source="als_http") == 5
            # Still serving: a new stream is accepted and processed.
            await send_als(sink.grpc_port, [http_message(1, start=5).SerializeToString()])
            await async_wait(lambda: _written(sink, 6), what="the next stream")
        finally:
            await sink.stop()
        paths = sorted(r["path"] for r in read_jsonl(tmp_path / "access.jsonl"))
        assert paths == sorted(f"/synthetic/{i}" for i in range(6))

    asyncio.run(main())


async def _written(sink: Sink, n: int) -> dict[Any, float] | None:
    m = await async_metrics(_url(sink))
    return m if total(m, "egobs_sink_entries_written_total") >= n else None


class _Receiver(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self) -> None:
        self.records: list[Any] = []

    async def Export(self, request: Any, context: Any) -> Any:
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                self.records.extend(sl.log_records)
        return logs_service_pb2.ExportLogsServiceResponse()


def test_otlp_forwarding_reaches_a_collector(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = _Receiver()
        server = grpc.aio.server()
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(receiver, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        sink = Sink(
            sink_config(
                tmp_path,
                otlp__endpoint=f"127.0.0.1:{port}",
                otlp__flush_interval_s=0.1,
                otlp__batch_size=64,
            )
        )
        await sink.start()
        try:
            await send_als(
                sink.grpc_port,
                [
                    http_message(50, start=i * 50, identifier=i == 0).SerializeToString()
                    for i in range(3)
                ],
            )
            await async_wait(lambda: len(receiver.records) >= 150, what="150 forwarded records")
            m = await async_wait(
                lambda: _forwarded(sink, 150), what="egobs_sink_entries_forwarded_total"
            )
            assert total(m, "egobs_sink_entries_dropped_total") == 0
        finally:
            await sink.stop()
            await server.stop(0)
        assert len(receiver.records) == 150
        attrs = [{kv.key: kv.value for kv in r.attributes} for r in receiver.records]
        assert {a["request_id"].string_value for a in attrs} == {f"req-{i}" for i in range(150)}
        first = attrs[0]
        assert first["gateway"].string_value == "default/gw"
        assert first["route"].string_value == "httproute/default/synthetic/rule/0/match/0"
        assert first["response_code"].int_value == 200
        assert receiver.records[0].body.string_value.startswith("GET example.com/synthetic/")
        assert receiver.records[0].time_unix_nano > 0

    asyncio.run(main())


async def _forwarded(sink: Sink, n: int) -> dict[Any, float] | None:
    m = await async_metrics(_url(sink))
    return m if total(m, "egobs_sink_entries_forwarded_total") >= n else None


def test_forward_target_down_counts_drops_and_keeps_serving(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Sink(
            sink_config(
                tmp_path,
                shutdown_grace_s=2,
                otlp={
                    "endpoint": f"127.0.0.1:{free_port()}",  # nobody listens
                    "batchSize": 50,
                    "maxQueue": 100,
                    "flushIntervalS": 0.05,
                    "maxAttempts": 2,
                    "initialBackoffS": 0.05,
                    "timeoutS": 0.5,
                },
            )
        )
        await sink.start()
        try:
            messages = [
                http_message(50, start=i * 50, identifier=i == 0).SerializeToString()
                for i in range(10)
            ]
            await send_als(sink.grpc_port, messages)
            m = await async_wait(lambda: _written(sink, 500), what="500 entries written")

            async def dropped() -> bool:
                m = await async_metrics(_url(sink))
                return (
                    total(m, "egobs_sink_entries_dropped_total", reason="forward_failed") > 0
                    and total(m, "egobs_sink_entries_dropped_total", reason="forward_queue_full")
                    > 0
                )

            await async_wait(dropped, timeout=15, what="forwarding drops counted")
            # The collector being down does not stop the sink from taking more logs.
            await send_als(sink.grpc_port, [http_message(5, start=500).SerializeToString()])
            m = await async_wait(lambda: _written(sink, 505), what="more entries written")
            assert total(m, "egobs_sink_entries_forwarded_total") == 0
            assert total(m, "egobs_sink_forward_queue_depth") <= 100
        finally:
            await asyncio.wait_for(sink.stop(), 10)
        m_final = sink.metrics.registry
        dropped_total = sum(
            s.value
            for fam in m_final.collect()
            if fam.name == "egobs_sink_entries_dropped"
            for s in fam.samples
            if s.name.endswith("_total")
        )
        assert dropped_total == 505  # every entry written, none forwarded, all counted lost

    asyncio.run(main())


def test_otlp_logs_are_accepted_as_input(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Sink(sink_config(tmp_path))
        await sink.start()
        try:
            request = logs_service_pb2.ExportLogsServiceRequest()
            rl = request.resource_logs.add()
            for key, value in (("cluster_name", "default/gw"), ("node_name", "n1")):
                rl.resource.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
            lr = rl.scope_logs.add().log_records.add()
            lr.time_unix_nano = 1_700_000_000_123_456_789
            lr.body.string_value = "GET /x 503"
            lr.attributes.add(key="response_code", value=common_pb2.AnyValue(int_value=503))
            lr.attributes.add(key="route_name", value=common_pb2.AnyValue(string_value="r1"))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{sink.grpc_port}") as channel:
                await logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=5)
            m = await async_wait(lambda: _written(sink, 1), what="the OTLP record written")
            assert total(m, "egobs_sink_requests_total", route="r1", code_class="5xx") == 1
            assert total(m, "egobs_sink_entries_received_total", source="otlp") == 1
        finally:
            await sink.stop()
        (line,) = read_jsonl(tmp_path / "access.jsonl")
        assert line["gateway"] == "default/gw" and line["node"] == "n1"
        assert line["body"] == "GET /x 503"
        assert line["time"] == "2023-11-14T22:13:20.123456Z"

    asyncio.run(main())


def test_shutdown_flushes_what_the_sink_holds(tmp_path: Path) -> None:
    async def main() -> int:
        sink = Sink(sink_config(tmp_path))
        await sink.start()
        await send_als(
            sink.grpc_port,
            [
                http_message(100, start=i * 100, identifier=i == 0).SerializeToString()
                for i in range(20)
            ],
        )
        await sink.stop()  # immediately: the queue is drained, the file flushed
        return len(read_jsonl(tmp_path / "access.jsonl"))

    assert asyncio.run(main()) == 2000


def test_full_queue_drops_whole_batches_and_counts_them() -> None:
    async def main() -> None:
        metrics = SinkMetrics()
        # Worker not started: nothing makes room, so the third batch waits, then is dropped.
        pipeline = Pipeline(metrics=metrics, max_queue=100, full_wait_s=0.05)
        origin = Origin("default/gw", "n", "egobs")
        for _ in range(3):
            await pipeline.submit_http(origin, http_message(40).http_logs.log_entry)
        assert pipeline.depth == 80
        text = _samples(metrics)
        assert text[("egobs_sink_entries_dropped_total", (("reason", "queue_full"),))] == 40
        assert text[("egobs_sink_queue_depth", ())] == 80
        pipeline.start()
        await pipeline.drain(timeout=5)
        assert pipeline.depth == 0
        assert total(_samples(metrics), "egobs_sink_requests_total") == 80

    asyncio.run(main())


def _samples(metrics: SinkMetrics) -> dict[Any, float]:
    from prometheus_client import generate_latest
    from sink_helpers import parse_metrics

    return parse_metrics(generate_latest(metrics.registry).decode())


def test_label_cap_sends_new_values_to_other() -> None:
    metrics = SinkMetrics(label_cap=2)
    for i in range(5):
        msg = http_message(3, route=f"r{i}", cluster=f"c{i % 2}")
        metrics.account_http("default/gw", msg.http_logs.log_entry)
    s = _samples(metrics)
    routes = {
        dict(lbl)["route"] for (name, lbl), _ in s.items() if name == "egobs_sink_requests_total"
    }
    assert routes == {"r0", "r1", OTHER}
    assert total(s, "egobs_sink_requests_total", route=OTHER) == 9
    assert total(s, "egobs_sink_requests_total") == 15
    assert total(s, "egobs_sink_label_overflow_total", label="route") == 9
    assert total(s, "egobs_sink_label_overflow_total", label="upstream_cluster") == 0


def test_config_file_is_strict(tmp_path: Path) -> None:
    good = tmp_path / "sink.yaml"
    good.write_text(json.dumps({"kind": "SinkConfig", "jsonl": {"path": "-", "maxBytes": 4096}}))
    assert load_sink_config(good).jsonl.max_bytes == 4096
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"kind": "SinkConfig", "jsonl": {"pth": "x"}}))
    with pytest.raises(LoadError):
        load_sink_config(bad)


def _vm(field: str) -> int:
    """A ``/proc/self/status`` size field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_flood_of_large_messages_is_bounded_by_bytes_and_counted(tmp_path: Path) -> None:
    # 1 GiB offered as 1 MiB messages (100 entries with 10 KiB of headers each) over 8
    # streams while the outputs are stalled. Bounded in entries only, the queue would keep
    # 500 such messages (over 500 MiB decoded); bounded in bytes it keeps about 48 MiB.
    mib = 1024 * 1024
    streams, per_stream = 8, 128
    headers = {f"x-h{i}": "v" * 1024 for i in range(10)}
    body = http_message(100, identifier=False, headers=headers).SerializeToString()
    assert mib <= len(body) < 1.1 * mib
    first = http_message(100, headers=headers).SerializeToString()

    async def main() -> None:
        sink = Sink(sink_config(tmp_path, jsonl__path=None, queue_full_wait_s=0.01))
        pipeline = sink.pipeline
        pipeline.start = lambda: None  # type: ignore[method-assign]  # the consumer is paused
        await sink.start()
        peak = 0
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _vm("VmRSS"))
                await asyncio.sleep(0.005)

        try:
            before = _vm("VmRSS")
            exact = _reset_peak_rss()
            sampler = asyncio.create_task(sample())
            await asyncio.gather(
                *(
                    send_als(sink.grpc_port, [first] + [body] * (per_stream - 1))
                    for _ in range(streams)
                )
            )
            stop.set()
            await sampler
            peak = max(peak, _vm("VmHWM") if exact else 0)
            growth = (peak - before) / mib
            assert growth < 150, f"RSS grew {growth:.0f} MiB for 1 GiB offered"
            s = _samples(sink.metrics)
            offered = streams * per_stream * 100
            assert total(s, "egobs_sink_entries_received_total") == offered
            dropped = total(s, "egobs_sink_entries_dropped_total", reason="queue_full")
            assert dropped > offered // 2
            assert dropped + pipeline.depth == offered
            held = total(s, "egobs_sink_queue_bytes")
            assert held == pipeline.queued_bytes <= sink.config.max_queue_bytes
            assert pipeline.depth < 5000  # what 48 MiB of these holds, not max_queue's 50,000
        finally:
            Pipeline.start(pipeline)  # resumed: what was queued is processed, not lost
            await sink.stop()
        s = _samples(sink.metrics)
        assert total(s, "egobs_sink_requests_total") + dropped == offered
        assert total(s, "egobs_sink_entries_dropped_total") == dropped
        assert pipeline.queued_bytes == 0

    asyncio.run(main())


def test_queue_bytes_bound_drops_batches_that_do_not_fit() -> None:
    async def main() -> None:
        metrics = SinkMetrics()
        cost = batch_cost(100_000, 10)
        pipeline = Pipeline(
            metrics=metrics, max_queue=1000, max_queue_bytes=2 * cost, full_wait_s=0.01
        )
        origin = Origin("default/gw", "n", "egobs")
        entries = http_message(10).http_logs.log_entry
        for _ in range(3):
            await pipeline.submit_http(origin, entries, 100_000)
        assert (pipeline.depth, pipeline.queued_bytes) == (20, 2 * cost)
        s = _samples(metrics)
        assert total(s, "egobs_sink_entries_dropped_total", reason="queue_full") == 10
        assert total(s, "egobs_sink_queue_bytes") == 2 * cost
        # Small batches still fit in what is left of the entry bound... but not the bytes one.
        await pipeline.submit_http(origin, entries[:1])
        assert pipeline.depth == 20
        pipeline.start()
        await pipeline.drain(timeout=5)
        assert (pipeline.depth, pipeline.queued_bytes) == (0, 0)
        assert total(_samples(metrics), "egobs_sink_requests_total") == 20

    asyncio.run(main())


def test_streams_beyond_max_streams_are_refused_and_counted(tmp_path: Path) -> None:
    """What gRPC buffers is bounded per stream; max_streams bounds the streams."""

    async def main() -> None:
        sink = Sink(sink_config(tmp_path, jsonl__path=None, max_streams=2))
        await sink.start()
        release = asyncio.Event()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{sink.grpc_port}") as channel:
                stream = als_call(channel)

                async def held() -> Any:
                    yield http_message(1).SerializeToString()
                    await release.wait()

                calls = [stream(held(), timeout=10) for _ in range(2)]
                await async_wait(
                    lambda: total(_samples(sink.metrics), "egobs_sink_active_streams") == 2,
                    what="two open streams",
                )
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await send_als(sink.grpc_port, [http_message(1).SerializeToString()])
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                s = _samples(sink.metrics)
                assert total(s, "egobs_sink_streams_refused_total", service="als") == 1
                release.set()
                await asyncio.gather(*calls)
            # Room again once they closed.
            await send_als(sink.grpc_port, [http_message(3).SerializeToString()])
            await async_wait(
                lambda: total(_samples(sink.metrics), "egobs_sink_requests_total") == 5,
                what="5 requests counted",
            )
            assert total(_samples(sink.metrics), "egobs_sink_active_streams") == 0
        finally:
            release.set()
            await sink.stop()

    asyncio.run(main())
