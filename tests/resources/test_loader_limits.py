"""Hostile or malformed input is bounded and refused precisely (issue 13: bounded input).

A "billion laughs" document, duplicate keys, runaway nesting, special files, oversized
files and names Kubernetes would refuse: each is one error naming file, document, line and
(where there is one) object and field, in bounded time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from egobs.resources import LoadError, load_documents, load_paths, load_text
from egobs.resources import loader as loader_module

LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{x}: &{x} [{','.join([f'*{p}'] * 9)}]"
            for p, x in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "kind: HTTPRoute",
    ]
)


def _errors(text: str) -> list[str]:
    with pytest.raises(LoadError) as info:
        load_text(text, file="in.yaml")
    return [str(e) for e in info.value.errors]


def test_a_billion_laughs_document_is_refused_before_it_is_expanded() -> None:
    started = time.monotonic()
    (err,) = _errors(LAUGHS)
    assert time.monotonic() - started < 5
    assert "in.yaml:doc1" in err and "nodes once aliases are expanded" in err


def test_aliases_within_bounds_still_load() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata: {name: web, labels: &l {app: web}, annotations: *l}
spec: {ports: [{port: 80}]}
"""
    (svc,) = load_text(text)
    assert svc.metadata.annotations == {"app": "web"}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\nspec: {}\n"
    (err,) = _errors(text)
    assert err == "in.yaml:doc1 (line 5): duplicate key 'name' (first at line 4)"


def test_duplicate_keys_in_a_flow_mapping_too() -> None:
    (err,) = _errors("apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\n")
    assert "duplicate key 'name'" in err


def test_runaway_nesting_is_refused() -> None:
    deep = "[" * 150 + "]" * 150
    (err,) = _errors(f"apiVersion: v1\nkind: Service\nmetadata: {{name: a}}\nspec: {deep}\n")
    assert "nesting deeper than" in err


def test_a_refused_document_does_not_take_the_others_down() -> None:
    good = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nspec: {ports: [{port: 80}]}\n"
    loaded = load_documents(good + "---\n" + LAUGHS + "\n---\n" + good.replace("ok", "ok2"))
    assert [o.name for o in loaded.objects] == ["ok", "ok2"]
    assert len(loaded.errors) == 1 and loaded.errors[0].source.doc == 2


def test_too_many_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_module, "MAX_DOCUMENTS", 3)
    doc = "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
    loaded = load_documents("---\n".join(doc.format(i=i) for i in range(6)))
    assert len(loaded.objects) == 3
    assert "more than 3 documents" in loaded.errors[0].message


def test_special_and_oversized_files_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: big}\n" + "#" * 200 + "\n")
    monkeypatch.setattr(loader_module, "MAX_FILE_BYTES", 100)
    started = time.monotonic()
    with pytest.raises(LoadError) as info:
        load_paths([tmp_path])
    assert time.monotonic() - started < 5  # a FIFO would block forever if it were read
    messages = sorted(str(e) for e in info.value.errors)
    assert any("big.yaml" in m and "more than the 100" in m for m in messages), messages
    assert any("pipe.yaml" in m and "not a regular file" in m for m in messages), messages


@pytest.mark.parametrize(
    ("kind", "meta", "field", "fragment"),
    [
        ("Service", "{name: b/c, namespace: a}", "metadata.name", "invalid name 'b/c'"),
        ("Service", "{name: c, namespace: a/b}", "metadata.namespace", "invalid name 'a/b'"),
        ("Service", "{name: Web}", "metadata.name", "invalid name 'Web'"),
        ("Service", "{name: 1web}", "metadata.name", "starting with a letter"),
        ("Service", "{name: web.v2}", "metadata.name", "invalid name 'web.v2'"),
        ("Secret", "{name: " + "a" * 254 + "}", "metadata.name", "at most 253"),
        ("Namespace", "{name: team.a}", "metadata.name", "invalid name 'team.a'"),
    ],
)
def test_names_are_validated_as_kubernetes_does(
    kind: str, meta: str, field: str, fragment: str
) -> None:
    """Service b/c in namespace a and Service c in namespace a/b would both become the
    cluster service/a/b/c/80: neither is a valid name, so neither loads."""
    (err,) = _errors(f"apiVersion: v1\nkind: {kind}\nmetadata: {meta}\n")
    assert f": {field}: " in err and fragment in err


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Secret", "1abc"), ("Secret", "tls.example.com"), ("Service", "web-2"), ("Namespace", "a1")],
)
def test_valid_names_load(kind: str, name: str) -> None:
    (obj,) = load_text(f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: {name}}}\n")
    assert obj.name == name
