"""Structured logs: JSON lines (default) or console text, with the trace of the current change.

Every record emitted while a sampled span is current (the stages of a traced change) carries
``trace_id`` and ``span_id``, so a log line leads to its trace and back.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

__all__ = [
    "RECENT",
    "ConsoleFormatter",
    "JsonFormatter",
    "OneLineBadRequests",
    "RecentLogs",
    "http_logger",
    "setup_logging",
]

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# LogRecord attributes that are not user-supplied ``extra`` fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _trace_ids() -> tuple[str, str] | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, trace ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ids = _trace_ids()
        if ids is not None:
            out["trace_id"], out["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines; the trace id is appended when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _trace_ids()
        if ids is not None:
            first, sep, rest = text.partition("\n")
            text = f"{first} trace_id={ids[0]} span_id={ids[1]}{sep}{rest}"
        return text


def level_of(name: str) -> int:
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}") from None


class RecentLogs(logging.Handler):
    """The last ``capacity`` log records as JSON lines, in memory: what ``/debug/logs``
    serves and ``egobs collect`` puts in a support bundle, whatever the process's own log
    output is (a terminal, a file, journald)."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted must not break logging
            self.handleError(record)

    def lines(self) -> list[str]:
        return list(self._lines)


RECENT = RecentLogs()
"""The process's recent-log ring; :func:`setup_logging` attaches it to the root logger."""


def setup_logging(
    *,
    fmt: str = "json",
    level: str = "info",
    components: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger. ``components`` maps logger names (``egobs.xds``) to levels."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.addHandler(RECENT)
    root.setLevel(level_of(level))
    for name, comp_level in (components or {}).items():
        logging.getLogger(name).setLevel(level_of(comp_level))


class OneLineBadRequests(logging.Filter):
    """aiohttp answers a malformed request (garbage, a port scan, a header line too long)
    with a 400 naming the problem, then logs it with its full traceback at ERROR: one
    client could fill the log. Such a record becomes one DEBUG line; a handler's own
    failure (a 500) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported here: aiohttp costs ~10 MiB, and only its servers log such records.
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        # The message quotes what the client sent: one line, printable, bounded.
        text = " ".join(str(exc.message).split())[:200]
        reason = "".join(c if c.isprintable() else "?" for c in text)
        record.msg = f"{record.msg}: %s %s"
        record.args = (*(record.args if isinstance(record.args, tuple) else ()), exc.code, reason)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the record through as an ERROR; it is a DEBUG now.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def http_logger(name: str) -> logging.Logger:
    """The logger for what aiohttp logs about one of egobs's HTTP servers: under egobs's
    name (so ``telemetry.logging.components`` sets its level), one line per bad request."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, OneLineBadRequests) for f in logger.filters):
        logger.addFilter(OneLineBadRequests())
    return logger
