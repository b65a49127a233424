"""The file provider, against a real file system and the real watcher."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from egobs.provider import FileProvider, ProviderEvent, ResourceSnapshot
from egobs.resources import Resources

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /{path}}}}}]
      backendRefs: [{{name: svc, port: 80}}]
"""


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[Resources, float]] = []
        self.events: list[ProviderEvent] = []

    def publish(self, snapshot: ResourceSnapshot) -> None:
        self.published.append((snapshot.resources, snapshot.event_time))

    def on_event(self, ev: ProviderEvent) -> None:
        self.events.append(ev)

    def routes(self) -> dict[str, str]:
        res = self.published[-1][0]
        out = {}
        for r in res.http_routes:
            m = r.spec.rules[0].matches[0].path
            assert m is not None
            out[r.name] = m.value
        return out


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def _run(paths: list[Path], body: Callable[[FileProvider, Recorder], Awaitable[None]]) -> Recorder:
    rec = Recorder()

    async def scenario() -> None:
        prov = FileProvider(paths, publish=rec.publish, on_event=rec.on_event, settle_s=0.2)
        await prov.start()  # the Provider protocol: load, publish, then watch
        await asyncio.sleep(0.2)  # let the watcher start
        try:
            await body(prov, rec)
        finally:
            await asyncio.wait_for(prov.stop(), 5)

    asyncio.run(scenario())
    return rec


def test_create_modify_delete_in_directory(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        assert rec.routes() == {"a": "/a"}
        sub = tmp_path / "nested"
        sub.mkdir()
        (sub / "b.yml").write_text(ROUTE.format(name="b", path="b"))
        await _until(lambda: rec.routes() == {"a": "/a", "b": "/b"})
        (tmp_path / "a.yaml").write_text(ROUTE.format(name="a", path="a2"))
        await _until(lambda: rec.routes().get("a") == "/a2")
        (sub / "b.yml").unlink()
        await _until(lambda: rec.routes() == {"a": "/a2"})

    _run([tmp_path], body)


def test_broken_file_keeps_last_good_objects_and_reports(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        n = len(rec.published)
        f.write_text(ROUTE.format(name="a", path="a").replace("- matches", "- mtches"))
        await _until(lambda: any(e.errors for e in rec.events))
        assert len(rec.published) == n  # nothing republished: still serving the good copy
        assert rec.routes() == {"a": "/a"}
        assert "spec.rules[0].mtches: unknown field" in str(prov.status.errors[str(f)][0])
        f.write_text(ROUTE.format(name="a", path="fixed"))
        await _until(lambda: rec.routes() == {"a": "/fixed"})
        assert str(f) not in prov.status.errors

    _run([tmp_path], body)


def test_half_written_file_then_completed(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))
    full = ROUTE.format(name="a", path="b")

    async def body(prov: FileProvider, rec: Recorder) -> None:
        with f.open("w") as fh:  # truncate, then a partial write, as a slow writer does
            fh.write(full[:40])
            fh.flush()
            await asyncio.sleep(0.15)
            fh.write(full[40:])
        await _until(lambda: rec.routes() == {"a": "/b"})
        # The route never disappeared along the way.
        assert all(len(res.http_routes) == 1 for res, _ in rec.published)

    _run([tmp_path], body)


def test_truncate_then_write_never_publishes_an_empty_set(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        f.write_text("")
        await asyncio.sleep(0.05)
        f.write_text(ROUTE.format(name="a", path="c"))
        await _until(lambda: rec.routes() == {"a": "/c"})
        assert all(len(res.http_routes) == 1 for res, _ in rec.published)

    _run([tmp_path], body)


def test_emptied_file_is_believed_after_settling(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        f.write_text("")
        await _until(lambda: rec.routes() == {})

    _run([tmp_path], body)


def test_rename_over_save_and_temp_files(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        tmp = tmp_path / ".a.yaml.swp"
        tmp.write_text("not: [yaml")  # hidden temp files are ignored
        tmp2 = tmp_path / "a.yaml.tmp"
        tmp2.write_text(ROUTE.format(name="a", path="renamed"))
        os.replace(tmp2, f)
        await _until(lambda: rec.routes() == {"a": "/renamed"})
        assert not any(e.errors for e in rec.events)

    _run([tmp_path], body)


def test_watch_single_file_and_duplicates_keep_first(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(ROUTE.format(name="same", path="first"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        b.write_text(ROUTE.format(name="same", path="second"))
        await _until(lambda: str(b) in prov.status.errors)
        assert rec.routes() == {"same": "/first"}
        assert "duplicate object" in str(prov.status.errors[str(b)][0])

    _run([a, b], body)


def test_burst_of_edits_yields_few_publishes(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(ROUTE.format(name="a", path="a"))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        before = len(rec.published)
        for i in range(100):
            f.write_text(ROUTE.format(name="a", path=f"p{i}"))
        await _until(lambda: rec.routes() == {"a": "/p99"})
        await asyncio.sleep(0.2)
        assert len(rec.published) - before < 20

    _run([tmp_path], body)


def test_new_directory_with_files_and_directory_removal(tmp_path: Path) -> None:
    import shutil

    async def body(prov: FileProvider, rec: Recorder) -> None:
        staging = tmp_path.parent / (tmp_path.name + "-staging")
        staging.mkdir()
        (staging / "x.yaml").write_text(ROUTE.format(name="x", path="x"))
        os.replace(staging, tmp_path / "moved")  # a whole directory appears at once
        await _until(lambda: rec.published and rec.routes() == {"x": "/x"})
        shutil.rmtree(tmp_path / "moved")
        await _until(lambda: rec.routes() == {})

    _run([tmp_path], body)


def _docs(*docs: str) -> str:
    return "---\n".join(docs)


BROKEN = "- matches", "- mtches"  # an unknown field in the rule: that object alone is refused


def test_an_invalid_object_is_refused_alone_at_start(tmp_path: Path) -> None:
    """kubectl apply -f semantics: the file's valid objects are served from the start."""
    f = tmp_path / "a.yaml"
    bad = ROUTE.format(name="b", path="b").replace(*BROKEN)
    f.write_text(_docs(ROUTE.format(name="a", path="a"), bad, ROUTE.format(name="c", path="c")))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        assert rec.routes() == {"a": "/a", "c": "/c"}
        (err,) = prov.errors()[str(f)]
        assert err.object_ref == "HTTPRoute/default/b"
        assert err.field_path == "spec.rules[0].mtches" and err.source.doc == 2

    _run([tmp_path], body)


def test_a_refused_object_keeps_its_last_good_version_and_the_rest_moves_on(
    tmp_path: Path,
) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(_docs(ROUTE.format(name="a", path="a"), ROUTE.format(name="b", path="b")))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        assert rec.routes() == {"a": "/a", "b": "/b"}
        f.write_text(
            _docs(
                ROUTE.format(name="a", path="a2").replace(*BROKEN),
                ROUTE.format(name="b", path="b2"),
                ROUTE.format(name="c", path="c"),
            )
        )
        await _until(lambda: rec.routes() == {"a": "/a", "b": "/b2", "c": "/c"})
        assert [e.object_ref for e in prov.errors()[str(f)]] == ["HTTPRoute/default/a"]
        # Fixed: the new version is served and the error is gone.
        f.write_text(_docs(ROUTE.format(name="a", path="a3"), ROUTE.format(name="c", path="c")))
        await _until(lambda: rec.routes() == {"a": "/a3", "c": "/c"})
        assert str(f) not in prov.errors()

    _run([tmp_path], body)


def test_a_document_that_does_not_say_which_object_it_is_keeps_everything(
    tmp_path: Path,
) -> None:
    """A refused document without kind or name may be any served object, half written:
    every object the file served stays; new valid ones are taken."""
    f = tmp_path / "a.yaml"
    f.write_text(_docs(ROUTE.format(name="a", path="a"), ROUTE.format(name="b", path="b")))

    async def body(prov: FileProvider, rec: Recorder) -> None:
        f.write_text(
            _docs(
                ROUTE.format(name="b", path="b2"),
                "apiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: a}\n",
                ROUTE.format(name="c", path="c"),
            )
        )
        await _until(lambda: rec.routes() == {"a": "/a", "b": "/b2", "c": "/c"})
        (err,) = prov.errors()[str(f)]
        assert err.field_path == "kind"

    _run([tmp_path], body)
