"""The loader against the Gateway API v1.6.1 CRDs, object by object (issue 11, item 2).

What the CRD schema or its CEL rules reject must be refused at load, with the object and the
field named; what they accept must not be refused. Each object of the corpus in
``testdata/crd_corpus/`` is judged twice: by ``crd_validation`` (the version's
openAPIV3Schema with jsonschema, then every ``x-kubernetes-validations`` rule with
cel-python: the API server's verdict) and by egobs's loader, alone. The two must agree.

Each corpus document starts with ``# <id> (accept|reject): <what it tests>``; the comment's
verdict is checked against the CRDs too, so a wrong oracle or a wrong corpus entry shows.
The CRDs are read from ``../shared/reference/gateway-api-v1.6.1/`` (unmodified upstream).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crd_validation as crdv
import pytest
import yaml

from egobs.resources import LoadError, load_text
from egobs.resources.loader import KINDS

CORPUS = Path(__file__).resolve().parent / "testdata" / "crd_corpus"
_HEADER = re.compile(r"^# ([a-z0-9][-a-z0-9]*) \((accept|reject)\): (.+)$", re.MULTILINE)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)

# Where the loader and the API server disagree: corpus id -> who accepts, who refuses, and
# the CRD's rule, e.g. "loader accepts, CRD refuses: spec.x pattern ...", or "both refuse,
# but the loader names a parent of the field: ...". Each is an expected failure (strict:
# fixing the loader makes the case pass, and then it must leave this list). None today:
# the 49 listed when this test came (issue 11) are fixed in the loader.
DISAGREEMENTS: dict[str, str] = {}

# CEL rules of the v1.6.1 CRDs that cel-python cannot evaluate by itself, with the reason
# and what this test does instead. A rule that appears in a new CRD and cel-python cannot
# evaluate fails test_cel_rules_cel_python_cannot_evaluate_are_listed until it is listed.
_FROM_K8S = "evaluated with the implementation in crd_validation.K8S_FUNCTIONS"
CEL_GAPS: dict[str, str] = {
    "self == oldSelf": (
        "transition rule (GatewayClass spec.controllerName is immutable): needs the old "
        "object, which a create does not have; skipped"
    ),
    "self.all(h, !isIP(h))": (
        f"isIP is a Kubernetes CEL library function (TLSRoute v1/v1alpha3 hostnames); {_FROM_K8S}"
    ),
    'self.all(key, key.split("/")[0].size() < 253)': (
        "split is from cel-go's strings extension (Gateway infrastructure labels and "
        f"annotations keys); {_FROM_K8S}"
    ),
    (
        "self.all(h, h.contains('*') ? (h.startsWith('*.') && "
        "h.substring(2).matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$')) "
        ": true)"
    ): (
        "substring is from cel-go's strings extension (TLSRoute v1/v1alpha3 wildcard "
        f"hostnames); {_FROM_K8S}"
    ),
}


@dataclass(frozen=True)
class Case:
    id: str
    expect: str  # "accept" or "reject"
    about: str
    text: str
    file: str


def _cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for chunk in _SEPARATOR.split(path.read_text()):
            header = _HEADER.search(chunk)
            if header is None:
                raise AssertionError(f"{path.name}: a document without a '# <id> (...)' line")
            cases.append(Case(header[1], header[2], header[3], chunk, path.name))
    return cases


CASES = _cases()


def _data(case: Case) -> dict[str, Any]:
    data = yaml.load(case.text, Loader=crdv.JSONLikeLoader)
    assert isinstance(data, dict), case.id
    return data


def _modelled(case: Case) -> bool:
    return _data(case).get("kind") in KINDS


def _require_reference() -> None:
    if not crdv.reference_present():
        pytest.fail(
            f"the Gateway API CRDs are absent at {crdv.REFERENCE}: this test checks the loader "
            "against them (../shared/reference/ holds the upstream CRDs)"
        )


@functools.cache
def _api_server(case_id: str) -> crdv.Verdict:
    (case,) = [c for c in CASES if c.id == case_id]
    return crdv.validate(_data(case))


def _explain(verdict: crdv.Verdict) -> str:
    if verdict.accepted:
        return "accepted"
    return "; ".join(
        f"{v.path or '<object>'}: {v.message}" + (f" [rule: {v.rule}]" if v.rule else "")
        for v in verdict.violations
    )


def _ref(data: dict[str, Any]) -> str:
    """``Kind/ns/name`` as the loader names the object (``Kind/name`` if cluster-scoped)."""
    kind, meta = data["kind"], data.get("metadata") or {}
    cls = KINDS.get(kind)
    if cls is not None and not cls.NAMESPACED:
        return f"{kind}/{meta['name']}"
    return f"{kind}/{meta.get('namespace') or 'default'}/{meta['name']}"


def _at_or_below(field: str, parent: str) -> bool:
    return field == parent or (
        field.startswith(parent) and field[len(parent)] in ".[" and bool(parent)
    )


def _params(modelled: bool) -> list[Any]:
    out = []
    for case in CASES:
        if _modelled(case) != modelled:
            continue
        marks = []
        if modelled and case.id in DISAGREEMENTS:
            marks.append(pytest.mark.xfail(strict=True, reason=DISAGREEMENTS[case.id]))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_well_formed() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(CASES) >= 60
    assert {c.expect for c in CASES} == {"accept", "reject"}
    unknown = set(DISAGREEMENTS) - set(ids)
    assert not unknown, f"DISAGREEMENTS names cases that are not in the corpus: {unknown}"
    kinds = {_data(c)["kind"] for c in CASES}
    assert {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TCPRoute", "UDPRoute"} <= kinds
    assert {"TLSRoute", "ReferenceGrant", "BackendTLSPolicy"} <= kinds


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_crds_give_the_verdict_the_corpus_states(case: Case) -> None:
    """The oracle itself: each entry is accepted or refused by the CRDs as its comment says."""
    _require_reference()
    verdict = _api_server(case.id)
    got = "accept" if verdict.accepted else "reject"
    assert got == case.expect, f"{case.file} {case.id} ({case.about}): CRDs say {_explain(verdict)}"


# --------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("case", _params(modelled=True))
def test_loader_agrees_with_the_crds(case: Case) -> None:
    _require_reference()
    verdict = _api_server(case.id)
    try:
        load_text(case.text, file=case.file)
    except LoadError as exc:
        errors = exc.errors
    else:
        errors = []
    loader = "\n".join(str(e) for e in errors) or "accepted"
    if verdict.accepted:
        assert not errors, f"the CRDs accept {case.id}; the loader refused it:\n{loader}"
        return
    assert errors, f"the CRDs refuse {case.id} ({_explain(verdict)}); the loader accepted it"
    ref = _ref(_data(case))
    paths = [v.path for v in verdict.violations]
    named = [
        e
        for e in errors
        if e.object_ref == ref and any(_at_or_below(e.field_path, p) for p in paths)
    ]
    assert named, (
        f"the loader refused {case.id} without naming {ref} and the field the CRDs name "
        f"({_explain(verdict)}):\n{loader}"
    )


def test_every_kind_of_the_corpus_is_modelled() -> None:
    """The loader models every Gateway API kind the corpus holds (BackendTLSPolicy and
    ListenerSet included), so every object above is judged against the CRDs."""
    assert all(_modelled(case) for case in CASES), [c.id for c in CASES if not _modelled(c)]


# --------------------------------------------------------------------------- CEL coverage


def test_cel_rules_cel_python_cannot_evaluate_are_listed() -> None:
    _require_reference()
    gaps: dict[str, tuple[str, ...]] = {}
    for _kind, _version, _path, rule in crdv.all_rules():
        found = crdv.cel_gaps(rule["rule"])
        if found:
            gaps[rule["rule"]] = found
    unlisted = {rule: found for rule, found in gaps.items() if rule not in CEL_GAPS}
    assert not unlisted, f"CEL rules cel-python cannot evaluate, not in CEL_GAPS: {unlisted}"
    stale = set(CEL_GAPS) - set(gaps)
    assert not stale, f"CEL_GAPS lists rules the CRDs no longer have: {stale}"
    for rule, found in gaps.items():
        missing = [g for g in found if g != "oldSelf" and g not in crdv.K8S_FUNCTIONS]
        assert not missing, f"{rule!r} needs {missing}: implement them or skip the rule"


def test_every_rule_the_corpus_reaches_was_evaluated() -> None:
    """No rule is silently skipped: only the transition rule is, everywhere."""
    _require_reference()
    skipped = set()
    for case in CASES:
        skipped |= _api_server(case.id).skipped
    assert skipped <= {"self == oldSelf"}, skipped
