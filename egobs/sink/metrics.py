"""The sink's Prometheus metrics: RED metrics derived from access logs, and self-metrics.

The RED metrics are aggregated in plain lists keyed by label tuple and turned into metric
families only when scraped: a prometheus-client ``labels().inc()`` per entry would cost
several microseconds per metric, which caps a single Python process far below Envoy's rate.
Label values are capped per label (route, upstream cluster, gateway); values beyond the cap
are counted under ``other``, so the number of series stays bounded whatever the input.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = ["LATENCY_BUCKETS", "OTHER", "SinkMetrics"]

OTHER = "other"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_CODE_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_RED_LABELS = ["gateway", "route", "upstream_cluster"]

# Series layout: counts per code class (6), received bytes, sent bytes, latency sum,
# then one (non-cumulative) count per latency bucket plus +Inf.
_RX, _TX, _SUM, _B0 = 6, 7, 8, 9
_SERIES_LEN = _B0 + len(LATENCY_BUCKETS) + 1


class _Labels:
    """Admitted values of one label; past ``cap`` distinct values everything else is OTHER."""

    __slots__ = ("_cap", "_overflow", "values")

    def __init__(self, cap: int, overflow: Any) -> None:
        self.values: dict[str, str] = {}
        self._cap = cap
        self._overflow = overflow

    def get(self, value: str) -> str:
        label = self.values.get(value)
        return self.admit(value) if label is None else label

    def admit(self, value: str) -> str:
        if len(self.values) < self._cap:
            self.values[value] = value
            return value
        self._overflow.inc()
        return OTHER


class SinkMetrics:
    """All metrics of one sink, in their own registry (``registry``), prefix ``egobs_sink_``."""

    def __init__(self, *, label_cap: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "egobs_sink_"
        self.received = Counter(
            p + "entries_received", "Access-log entries received.", ["source"], registry=r
        )
        self.written = Counter(p + "entries_written", "Entries written as JSON lines.", registry=r)
        self.forwarded = Counter(
            p + "entries_forwarded", "Entries accepted by the OTLP collector.", registry=r
        )
        self.dropped = Counter(
            p + "entries_dropped", "Entries lost, by reason.", ["reason"], registry=r
        )
        self.rejected = Counter(
            p + "messages_rejected",
            "gRPC messages rejected (malformed, oversized).",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(p + "queue_depth", "Entries waiting for the outputs.", registry=r)
        self.queue_bytes = Gauge(
            p + "queue_bytes",
            "Estimated memory held by the entries waiting for the outputs.",
            registry=r,
        )
        self.forward_queue_depth = Gauge(
            p + "forward_queue_depth", "Entries waiting for the OTLP forwarder.", registry=r
        )
        self.write_seconds = Histogram(
            p + "write_duration_seconds",
            "Time to write one batch of JSON lines.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )
        self.active_streams = Gauge(
            p + "active_streams", "Open gRPC streams, by service.", ["service"], registry=r
        )
        self.streams_refused = Counter(
            p + "streams_refused",
            "gRPC streams refused because max_streams were open, by service.",
            ["service"],
            registry=r,
        )
        overflow = Counter(
            p + "label_overflow",
            "Entries whose label value was replaced by 'other' (cardinality cap).",
            ["label"],
            registry=r,
        )
        self._gateways = _Labels(label_cap, overflow.labels("gateway"))
        self._routes = _Labels(label_cap, overflow.labels("route"))
        self._clusters = _Labels(label_cap, overflow.labels("upstream_cluster"))
        self._http: dict[tuple[str, str, str], list[float]] = {}
        self._tcp: dict[tuple[str, str, str], list[float]] = {}
        self._flags: dict[tuple[str, str, str], int] = {}
        r.register(_RedCollector(self))

    # ------------------------------------------------------------------ accounting

    def _labels(self, gateway: str, route: str, cluster: str) -> tuple[str, str, str]:
        return (self._gateways.get(gateway), self._routes.get(route), self._clusters.get(cluster))

    def account_http(self, gateway: str, entries: Iterable[Any]) -> None:
        """Add ``HTTPAccessLogEntry`` messages to the RED metrics."""
        series_map = self._http
        routes = self._routes.values
        clusters = self._clusters.values
        g = self._gateways.get(gateway)
        buckets = LATENCY_BUCKETS
        for e in entries:
            c = e.common_properties
            route = c.route_name
            cluster = c.upstream_cluster
            rt = routes.get(route)
            if rt is None:
                rt = self._routes.admit(route)
            cl = clusters.get(cluster)
            if cl is None:
                cl = self._clusters.admit(cluster)
            key = (g, rt, cl)
            s = series_map.get(key)
            if s is None:
                s = series_map[key] = [0.0] * _SERIES_LEN
            code = e.response.response_code.value
            s[code // 100 if code < 600 else 0] += 1
            req, resp = e.request, e.response
            s[_RX] += req.request_headers_bytes + req.request_body_bytes
            s[_TX] += resp.response_headers_bytes + resp.response_body_bytes
            d = c.duration if c.HasField("duration") else c.time_to_last_downstream_tx_byte
            seconds = d.seconds + d.nanos * 1e-9
            s[_SUM] += seconds
            s[_B0 + bisect_left(buckets, seconds)] += 1
            flags = c.response_flags.ListFields()
            if flags:
                self._add_flags(key, flags)

    def http_account(self, gateway: str) -> Callable[[str, str, int, int, int, float, Any], None]:
        """A function adding one HTTP entry's already-read fields to the RED metrics.

        For a caller that reads the entry anyway (the JSON lines): reading the upb fields is
        most of :meth:`account_http`'s cost, so this saves reading them twice. Arguments:
        route, upstream cluster, response code, bytes received, bytes sent, duration in
        seconds, and the response flags' ``ListFields()`` (falsy when none).
        """
        series_map = self._http
        routes, clusters = self._routes, self._clusters
        route_values, cluster_values = routes.values, clusters.values
        g = self._gateways.get(gateway)
        buckets = LATENCY_BUCKETS
        add_flags = self._add_flags

        def add(
            route: str, cluster: str, code: int, rx: int, tx: int, seconds: float, flags: Any
        ) -> None:
            rt = route_values.get(route)
            if rt is None:
                rt = routes.admit(route)
            cl = cluster_values.get(cluster)
            if cl is None:
                cl = clusters.admit(cluster)
            key = (g, rt, cl)
            s = series_map.get(key)
            if s is None:
                s = series_map[key] = [0.0] * _SERIES_LEN
            s[code // 100 if code < 600 else 0] += 1
            s[_RX] += rx
            s[_TX] += tx
            s[_SUM] += seconds
            s[_B0 + bisect_left(buckets, seconds)] += 1
            if flags:
                add_flags(key, flags)

        return add

    def account_tcp(self, gateway: str, entries: Iterable[Any]) -> None:
        """Add ``TCPAccessLogEntry`` messages (one per connection) to the RED metrics."""
        series_map = self._tcp
        for e in entries:
            c = e.common_properties
            key = self._labels(gateway, c.route_name, c.upstream_cluster)
            s = series_map.get(key)
            if s is None:
                s = series_map[key] = [0.0] * _SERIES_LEN
            s[0] += 1
            conn = e.connection_properties
            s[_RX] += conn.received_bytes
            s[_TX] += conn.sent_bytes
            d = c.duration if c.HasField("duration") else c.time_to_last_downstream_tx_byte
            seconds = d.seconds + d.nanos * 1e-9
            s[_SUM] += seconds
            s[_B0 + bisect_left(LATENCY_BUCKETS, seconds)] += 1
            flags = c.response_flags.ListFields()
            if flags:
                self._add_flags(key, flags)

    def account_record(self, record: dict[str, Any]) -> None:
        """Add one record from another source (OTLP) that has at least a response code."""
        key = self._labels(
            str(record.get("gateway", "")),
            str(record.get("route", "")),
            str(record.get("upstream_cluster", "")),
        )
        s = self._http.get(key)
        if s is None:
            s = self._http[key] = [0.0] * _SERIES_LEN
        code = int(record.get("response_code") or 0)
        s[code // 100 if 0 < code < 600 else 0] += 1
        s[_RX] += float(record.get("bytes_received") or 0)
        s[_TX] += float(record.get("bytes_sent") or 0)
        seconds = float(record.get("duration_ms") or 0) / 1000.0
        s[_SUM] += seconds
        s[_B0 + bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def _add_flags(self, key: tuple[str, str, str], flags: list[Any]) -> None:
        for field, value in flags:
            if value is True:
                k = (key[0], key[1], field.name)
                self._flags[k] = self._flags.get(k, 0) + 1

    # ------------------------------------------------------------------ exposition

    def families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "egobs_sink_requests",
            "HTTP requests seen in access logs.",
            labels=[*_RED_LABELS, "code_class"],
        )
        latency = HistogramMetricFamily(
            "egobs_sink_request_duration_seconds",
            "HTTP request duration (first byte received to last byte sent), precise.",
            labels=_RED_LABELS,
        )
        connections = CounterMetricFamily(
            "egobs_sink_tcp_connections", "TCP connections seen in access logs.", labels=_RED_LABELS
        )
        tcp_latency = HistogramMetricFamily(
            "egobs_sink_tcp_connection_duration_seconds",
            "TCP connection duration.",
            labels=_RED_LABELS,
        )
        rx = CounterMetricFamily(
            "egobs_sink_received_bytes",
            "Bytes received from downstream (HTTP headers and body, TCP payload).",
            labels=[*_RED_LABELS, "protocol"],
        )
        tx = CounterMetricFamily(
            "egobs_sink_sent_bytes",
            "Bytes sent to downstream (HTTP headers and body, TCP payload).",
            labels=[*_RED_LABELS, "protocol"],
        )
        flags = CounterMetricFamily(
            "egobs_sink_response_flags",
            "Entries carrying an Envoy response flag.",
            labels=["gateway", "route", "flag"],
        )
        for key, s in list(self._http.items()):
            labels = list(key)
            for i, code_class in enumerate(_CODE_CLASSES):
                if s[i]:
                    requests.add_metric([*labels, code_class], s[i])
            latency.add_metric(labels, _cumulative(s), s[_SUM])
            rx.add_metric([*labels, "http"], s[_RX])
            tx.add_metric([*labels, "http"], s[_TX])
        for key, s in list(self._tcp.items()):
            labels = list(key)
            connections.add_metric(labels, s[0])
            tcp_latency.add_metric(labels, _cumulative(s), s[_SUM])
            rx.add_metric([*labels, "tcp"], s[_RX])
            tx.add_metric([*labels, "tcp"], s[_TX])
        for fkey, n in list(self._flags.items()):
            flags.add_metric(list(fkey), n)
        yield from (requests, latency, connections, tcp_latency, rx, tx, flags)


def _cumulative(s: list[float]) -> list[tuple[str, float]]:
    out = []
    total = 0.0
    for i, bound in enumerate(LATENCY_BUCKETS):
        total += s[_B0 + i]
        out.append((repr(bound), total))
    total += s[_B0 + len(LATENCY_BUCKETS)]
    out.append(("+Inf", total))
    return out


class _RedCollector:
    def __init__(self, metrics: SinkMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()

    def describe(self) -> Iterator[Metric]:
        return self._metrics.families()
