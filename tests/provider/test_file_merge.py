"""The provider's incremental merge equals merging every file from scratch."""

from __future__ import annotations

import random
from pathlib import Path

from egobs.provider import FileProvider
from egobs.resources import Resource, ResourceError, Resources, Source

SVC = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: ns}}
spec:
  ports: [{{name: http, port: {port}}}]
"""
ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: svc, port: {port}}}]}}]
"""


def _from_scratch(prov: FileProvider) -> tuple[list[Resource], list[str]]:
    """The merge as it was first written: every object of every file, each run."""
    files, accepted = prov.status.files, prov.status.accepted_at
    seen: dict[tuple[str, str, str], Resource] = {}
    errors: list[str] = []
    for fname in sorted(files, key=lambda f: (accepted.get(f, 0.0), f)):
        for obj in files[fname]:
            first = seen.setdefault(obj.key, obj)
            if first is not obj:
                errors.append(f"{obj.source} {obj.ref()} already at {first.source}")
    return list(Resources.of(seen.values())), errors


def _describe(errors: list[ResourceError]) -> list[str]:
    out = []
    for e in errors:
        where = e.message.removeprefix("duplicate object: already defined at ")
        out.append(f"{e.source} {e.object_ref} already at {where.removesuffix('; ignored')}")
    return out


def test_incremental_merge_matches_full_merge(tmp_path: Path) -> None:
    rng = random.Random(7)
    prov = FileProvider([tmp_path], publish=lambda *_: None)
    names = [f"o{i}" for i in range(6)]
    now = 0.0
    for step in range(300):
        now += 1.0
        path = tmp_path / f"f{rng.randrange(5)}.yaml"
        if rng.random() < 0.2:
            path.unlink(missing_ok=True)
            prov._forget(str(path))
        else:
            docs = [
                rng.choice((SVC, ROUTE)).format(name=rng.choice(names), port=rng.randrange(1, 4))
                for _ in range(rng.randrange(0, 4))
            ]
            path.write_text("---\n".join(docs))
            prov._load_file(path, now)
        merged, errors = prov._merged()
        want, want_errors = _from_scratch(prov)
        got = list(merged)
        assert [id(o) for o in got] == [id(o) for o in want], step
        assert _describe(errors) == want_errors, step
        for err in errors:
            assert isinstance(err.source, Source)
            assert err in prov.status.errors[err.source.file]
