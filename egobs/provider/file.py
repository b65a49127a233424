"""The file provider: watches YAML files and directories and publishes the current resource set.

What makes it safe to edit live config:

* **Last good per object.** Each invalid object of a file is refused alone, as
  ``kubectl apply -f`` applies every valid object of a multi-document file: the file's valid
  objects are taken, and a refused object keeps the version it last loaded successfully. The
  error is recorded (and published as provider status); nothing that was serving is dropped.
  A file whose YAML is malformed keeps all it served (what follows the syntax error is
  unknown).
* **Half-written files.** Events are debounced, a file that does not parse keeps its last good
  objects until it does, and a file that suddenly became empty while it had objects is given
  a short settle time before the emptiness is believed (editors truncate, then write).
* **Editor save patterns.** Directories are watched, not files, so rename-over saves and
  temp files are seen as what they are; only ``*.yaml``/``*.yml`` files (not hidden) count.
* **First definition wins.** An object defined in a second file is a duplicate error for the
  second file; the object already accepted keeps serving.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from egobs.provider.base import ProviderEvent, Publish, Report, ResourceSnapshot
from egobs.resources import Resource, ResourceError, Resources, Source, load_documents
from egobs.resources.loader import YAML_SUFFIXES, read_text, yaml_files

__all__ = ["FileProvider", "ProviderStatus"]

log = logging.getLogger("egobs.provider")

RESOURCES_KEY = "resources"


@dataclass
class ProviderStatus:
    """Per-file state: objects loaded from the last good content, and current errors."""

    files: dict[str, list[Resource]] = field(default_factory=dict)
    errors: dict[str, list[ResourceError]] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)


class FileProvider:
    """Loads ``paths`` and republishes the merged resource set whenever a file changes: a
    :class:`~egobs.provider.base.Provider` whose sources are files.

    ``publish`` receives a :class:`ResourceSnapshot` (the merged set and the wall-clock time
    of the earliest file event behind it); ``on_event`` (optional) receives a
    :class:`ProviderEvent` per reload. Objects of files that were not reloaded are the very
    same objects in every set published (the translators rely on it for speed).
    """

    kind = "file"

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        publish: Publish,
        on_event: Report | None = None,
        debounce_ms: int = 5,
        settle_s: float = 0.3,
    ) -> None:
        self.paths = [Path(p).resolve() for p in paths]
        self._publish = publish
        self._on_event = on_event
        self._debounce_ms = debounce_ms
        self._settle_s = settle_s
        self.status = ProviderStatus()
        self._published_once = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The merge, kept up to date file by file so that a reload costs what the changed
        # file holds, not what all files hold (10,000 routes: ~20 ms per reload otherwise,
        # mostly in computing every object's key). Per accepted file: its objects grouped
        # by Resources field, and their keys in document order. Per key: the files defining
        # it (once per definition) in merge order, so the first one is the object served.
        self._groups: dict[str, dict[str, list[Resource]]] = {}
        self._keys: dict[str, list[tuple[str, str, str]]] = {}
        self._owners: dict[tuple[str, str, str], list[str]] = {}
        self._dups: set[tuple[str, str, str]] = set()
        self._order: list[str] | None = None  # accepted files in merge order; None: stale

    # ------------------------------------------------------------------ loading

    def _wanted(self, path: Path) -> bool:
        if not path.name.endswith(YAML_SUFFIXES) or path.name.startswith("."):
            return False
        for root in self.paths:
            if path == root:
                return True
            if root.is_dir() or not root.exists():
                try:
                    rel = path.relative_to(root)
                except ValueError:
                    continue
                if not any(part.startswith(".") for part in rel.parts[:-1]):
                    return True
        return False

    def _relevant(self, path: Path) -> bool:
        # Directory events matter too: files written into a new directory before the
        # watcher got to it produce no events of their own, so a new directory is scanned.
        return self._wanted(path) or (
            not path.name.startswith(".") and not path.suffix and self._under_root(path)
        )

    def _under_root(self, path: Path) -> bool:
        return any(root == path or root in path.parents for root in self.paths)

    def _current_files(self) -> list[Path]:
        found: list[Path] = []
        for root in self.paths:
            if root.exists():
                found.extend(p.resolve() for p in yaml_files(root))
        return found

    def _load_file(self, path: Path, now: float) -> tuple[bool, list[ResourceError]]:
        """Reload one file; returns (its accepted objects changed, errors)."""
        key = str(path)
        try:
            text = read_text(path)  # bounded; a FIFO or device is refused, never read
        except FileNotFoundError:
            return self._forget(key), []
        except (OSError, UnicodeDecodeError) as exc:
            err = ResourceError(Source(key, 0, 0), f"cannot read: {exc}")
            self.status.errors[key] = [err]
            return False, [err]
        loaded = load_documents(text, file=key)
        previous = self.status.files.get(key) or []
        objects = loaded.objects
        if loaded.errors:
            # Each invalid object is refused alone: the file's valid objects are taken, and
            # a refused object the file served before keeps its last good version. When a
            # refused document does not say which object it is (a half-written file, say),
            # any served object might be the one it breaks: all of them are kept then.
            self.status.errors[key] = loaded.errors
            taken = {o.ref() for o in objects}
            objects = objects + [
                o
                for o in previous
                if o.ref() not in taken and (loaded.unidentified or o.ref() in loaded.refused)
            ]
        else:
            self.status.errors.pop(key, None)
        if self.status.files.get(key) == objects or (not objects and key not in self.status.files):
            return False, loaded.errors
        if key in self.status.files:
            self._unindex(key)
        self.status.files[key] = objects
        self.status.accepted_at.setdefault(key, now)
        self._index(key, objects)
        return True, loaded.errors

    def _forget(self, key: str) -> bool:
        self.status.errors.pop(key, None)
        if key in self.status.files:
            self._unindex(key)
        self.status.accepted_at.pop(key, None)
        return self.status.files.pop(key, None) is not None

    def _rank(self, fname: str) -> tuple[float, str]:
        # Files accepted earlier win duplicates, so a new file can't displace a serving object.
        return (self.status.accepted_at.get(fname, 0.0), fname)

    def _index(self, fname: str, objects: list[Resource]) -> None:
        """Add an accepted file's objects to the merge (``accepted_at`` is already set)."""
        groups: dict[str, list[Resource]] = {}
        keys: list[tuple[str, str, str]] = []
        by_kind = Resources._BY_KIND
        for obj in objects:
            groups.setdefault(by_kind[obj.KIND], []).append(obj)
            k = obj.key
            keys.append(k)
            owners = self._owners.get(k)
            if owners is None:
                self._owners[k] = [fname]
            else:
                # After equal ranks: a second definition in the same file loses to the first.
                bisect.insort_right(owners, fname, key=self._rank)
                self._dups.add(k)
        self._groups[fname] = groups
        self._keys[fname] = keys
        self._order = None

    def _unindex(self, fname: str) -> None:
        for k in self._keys.pop(fname, ()):
            owners = self._owners[k]
            owners.remove(fname)
            if not owners:
                del self._owners[k]
            if len(owners) <= 1:
                self._dups.discard(k)
        self._groups.pop(fname, None)
        self._order = None

    def _merged(self) -> tuple[Resources, list[ResourceError]]:
        if self._order is None:
            self._order = sorted(self.status.files, key=self._rank)
        order = self._order
        losers = {f for k in self._dups for f in self._owners[k][1:]}
        fields: dict[str, list[Resource]] = {attr: [] for attr in Resources._BY_KIND.values()}
        errors: list[ResourceError] = []
        for fname in order:
            if fname in losers:
                self._merge_with_duplicates(fname, fields, errors)
                continue
            for attr, objs in self._groups[fname].items():
                fields[attr].extend(objs)
        # Built by field rather than with Resources.of: same lists, in the same order
        # (merge order of files, document order within a file), without a call per object.
        merged = Resources(**fields)  # type: ignore[arg-type]
        dup_files: dict[str, list[ResourceError]] = {}
        for err in errors:
            dup_files.setdefault(err.source.file, []).append(err)
        for fname, errs in dup_files.items():
            self.status.errors.setdefault(fname, [])
            self.status.errors[fname] = [
                e for e in self.status.errors[fname] if "duplicate object" not in e.message
            ] + errs
        return merged, errors

    def _merge_with_duplicates(
        self, fname: str, fields: dict[str, list[Resource]], errors: list[ResourceError]
    ) -> None:
        """Merge a file some objects of which lose to an earlier definition (rare)."""
        by_kind = Resources._BY_KIND
        seen_here: set[tuple[str, str, str]] = set()
        for obj, k in zip(self.status.files[fname], self._keys[fname], strict=True):
            first_file = self._owners[k][0]
            if first_file == fname and k not in seen_here:
                seen_here.add(k)
                fields[by_kind[obj.KIND]].append(obj)
                continue
            seen_here.add(k)
            first = self._first_definition(first_file, k)
            errors.append(
                ResourceError(
                    obj.source or Source(fname, 0, 0),
                    f"duplicate object: already defined at {first.source}; ignored",
                    obj.ref(),
                )
            )

    def _first_definition(self, fname: str, k: tuple[str, str, str]) -> Resource:
        for obj, key in zip(self.status.files[fname], self._keys[fname], strict=True):
            if key == k:
                return obj
        raise KeyError(k)

    def _emit(
        self,
        event_time: float,
        *,
        dirty: bool,
        created: Iterable[str] = (),
        modified: Iterable[str] = (),
        deleted: Iterable[str] = (),
        errors: Iterable[ResourceError] = (),
    ) -> bool:
        # Comparing whole object sets would cost more than the translation it saves; a
        # file whose accepted objects changed is what makes the set dirty.
        changed = dirty or not self._published_once
        dup_errors: list[ResourceError] = []
        if changed:
            merged, dup_errors = self._merged()
            self._published_once = True
            self._publish(ResourceSnapshot(merged, event_time))
        all_errors = (*errors, *dup_errors)
        for err in all_errors:
            log.warning("resource load error: %s", err)
        if self._on_event is not None:
            self._on_event(
                ProviderEvent(
                    event_time=event_time,
                    created=tuple(created),
                    modified=tuple(modified),
                    deleted=tuple(deleted),
                    errors=all_errors,
                    changed=changed,
                )
            )
        return changed

    def load_initial(self) -> list[ResourceError]:
        """Load every file once and publish; returns the errors (the good files still load)."""
        now = time.time()
        errors: list[ResourceError] = []
        missing = [p for p in self.paths if not p.exists()]
        for p in missing:
            errors.append(
                ResourceError(Source(str(p), 0, 0), "no such file or directory (watching for it)")
            )
        files = self._current_files()
        for path in files:
            _, errs = self._load_file(path, now)
            errors.extend(errs)
        self._emit(now, dirty=True, created=[str(p) for p in files], errors=errors)
        return errors

    # ------------------------------------------------------------------ watching

    def _watch_roots(self) -> list[Path]:
        roots: set[Path] = set()
        for p in self.paths:
            if p.is_dir():
                roots.add(p)
            else:
                parent = p.parent
                while not parent.exists() and parent != parent.parent:
                    parent = parent.parent
                roots.add(parent)
        # A root inside another root is redundant.
        return sorted(r for r in roots if not any(o != r and o in r.parents for o in roots))

    async def run(self) -> None:
        """Watch until :meth:`stop`; call :meth:`load_initial` first."""
        roots = self._watch_roots()
        log.info("watching %s", ", ".join(map(str, roots)))
        # ``step`` is the quiet time that ends a batch: a change is seen after 1-2 steps
        # (the watcher sleeps a step, sees the change, sleeps another to see no more), so
        # it is most of the watch latency (20 ms: ~30 ms on average). A few ms is enough:
        # atomic saves are one event, a half-written or truncated file keeps its last good
        # objects (parse errors, settle time), and the bus coalesces publishes that come
        # faster than translation. ``debounce`` caps how long a continuous burst is grouped.
        async for changes in watchfiles.awatch(
            *roots,
            debounce=1000,
            step=self._debounce_ms,
            stop_event=self._stop,
            watch_filter=lambda _change, path: self._relevant(Path(path)),
            recursive=True,
        ):
            await self._handle(changes)

    async def _handle(self, changes: set[tuple[watchfiles.Change, str]]) -> None:
        now = time.time()
        created: list[str] = []
        modified: list[str] = []
        deleted: list[str] = []
        errors: list[ResourceError] = []
        settle: list[Path] = []
        dirty = False
        for change, raw in sorted(changes, key=lambda c: c[1]):
            path = Path(raw)
            key = str(path)
            if not self._wanted(path):
                if path.is_dir():
                    for sub in yaml_files(path):
                        loaded, errs = self._load_file(sub.resolve(), now)
                        dirty |= loaded
                        errors.extend(errs)
                        created.append(str(sub))
                elif not path.exists():
                    for gone in [f for f in self.status.files if f.startswith(key + os.sep)]:
                        dirty |= self._forget(gone)
                        deleted.append(gone)
                continue
            if change == watchfiles.Change.deleted and not path.exists():
                if self._forget(key):
                    deleted.append(key)
                    dirty = True
                continue
            (created if change == watchfiles.Change.added else modified).append(key)
            if self.status.files.get(key) and _is_blank(path):
                settle.append(path)
                continue
            loaded, errs = self._load_file(path, now)
            dirty |= loaded
            errors.extend(errs)
        if settle:
            await asyncio.sleep(self._settle_s)
            for path in settle:
                loaded, errs = self._load_file(path, now)
                dirty |= loaded
                errors.extend(errs)
        self._emit(
            now, dirty=dirty, created=created, modified=modified, deleted=deleted, errors=errors
        )

    async def start(self) -> None:
        """Provider protocol: load every file, publish, then watch in the background."""
        self.load_initial()
        self._task = asyncio.create_task(self.run(), name="provider.file")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await asyncio.gather(task, return_exceptions=True)

    def errors(self) -> dict[str, list[ResourceError]]:
        """Provider protocol: current load errors by file."""
        return {f: errs for f, errs in self.status.errors.items() if errs}


def _is_blank(path: Path) -> bool:
    try:
        return not read_text(path).strip()
    except (OSError, UnicodeDecodeError):
        return False
