"""JSON lines output with size- and age-based rotation and a retention count.

A rotated file is renamed to ``<path>.<UTC timestamp>-<n>`` (names sort by age), then all
but the newest ``backups`` rotated files are deleted. A file past its age is rotated by the
next write, or by :meth:`JsonlWriter.rotate_if_due` (the sink calls it while idle). Writes go through one buffered file
and are flushed once per batch, so a reader sees whole lines and a batch costs one syscall.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["JsonlWriter", "encode_record"]

# Compact, non-ASCII kept; records.HttpLines produces exactly this encoding without a dict.
_encode = encode_record = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=str
).encode


class JsonlWriter:
    """Writes records as JSON lines to ``path`` (``"-"``: stdout, never rotated)."""

    def __init__(
        self,
        path: str,
        *,
        max_bytes: int = 100 * 1024 * 1024,
        max_age_s: float | None = None,
        backups: int = 5,
    ) -> None:
        self._stdout = path == "-"
        self._path = Path(path)
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._backups = backups
        self._file: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0
        self.rotations = 0
        if not self._stdout:
            self._path.parent.mkdir(parents=True, exist_ok=True)

    def _open(self) -> IO[bytes]:
        if self._stdout:
            self._file = sys.stdout.buffer
            return self._file
        f = self._file = self._path.open("ab", buffering=256 * 1024)
        self._size = f.tell()
        self._opened = time.monotonic()
        return f

    def write(self, records: Sequence[dict[str, Any]]) -> int:
        """Append records as lines; returns how many were written. Raises OSError."""
        return self.write_lines("".join([_encode(r) + "\n" for r in records]), len(records))

    def write_lines(self, text: str, count: int) -> int:
        """Append ``count`` ready lines (``text``, each ending in a newline) in one write."""
        data = text.encode()
        if not data:
            return 0
        f = self._file or self._open()
        if not self._stdout and self._due(len(data)):
            self._rotate()
            f = self._open()
        f.write(data)
        f.flush()
        self._size += len(data)
        return count

    def seconds_until_due(self) -> float | None:
        """Seconds until the open file reaches its maximum age; None if that cannot happen
        (no age limit, stdout, or nothing written since the last rotation)."""
        if self._stdout or self._max_age_s is None or self._file is None or not self._size:
            return None
        return max(0.0, self._opened + self._max_age_s - time.monotonic())

    def rotate_if_due(self) -> bool:
        """Rotate a file past its maximum age now, without waiting for the next write."""
        due = self.seconds_until_due()
        if due is None or due > 0:
            return False
        self._rotate()
        return True

    def _due(self, incoming: int) -> bool:
        if self._size and self._size + incoming > self._max_bytes:
            return True
        return (
            self._max_age_s is not None
            and self._size > 0
            and time.monotonic() - self._opened >= self._max_age_s
        )

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self._path.with_name(f"{self._path.name}.{stamp}-{self._seq:06d}")
        # The file may have been removed from under us (an operator): then start afresh.
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._path, target)
        self.rotations += 1
        self._prune()

    def rotated_files(self) -> list[Path]:
        """Rotated files, oldest first."""
        prefix = self._path.name + "."
        return sorted(
            (p for p in self._path.parent.iterdir() if p.name.startswith(prefix)),
            key=lambda p: p.name,
        )

    def _prune(self) -> None:
        files = self.rotated_files()
        for old in files[: max(0, len(files) - self._backups)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            if not self._stdout:
                self._file.close()
            self._file = None
