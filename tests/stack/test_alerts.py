"""The alert rules in ``alerts/``: valid, unit-tested, annotated, and documented.

``promtool check rules`` on every rule file, ``promtool test rules`` on every test file
(``alerts/tests/*.yaml``), then what promtool cannot see: every rule has a severity, a
summary, a description and a runbook URL whose anchor is a section of ``docs/alerts.md``;
every section there is a rule; and every rule has at least one firing and one non-firing
test case. A missing promtool fails (CI installs it through ``.ci/run``), never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
RULE_FILES = sorted(p for p in ALERTS.glob("*.y*ml"))
TEST_FILES = sorted(p for p in (ALERTS / "tests").glob("*.y*ml"))
RUNBOOK = REPO / "docs" / "alerts.md"
RUNBOOK_PREFIX = "docs/alerts.md#"
SEVERITIES = {"critical", "warning"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: install Prometheus's tools "
            "(Debian/Ubuntu: apt-get install prometheus; .ci/run does this in CI)"
        )
    return path


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _alert_rules() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in RULE_FILES:
        for group in _load(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield path, group["name"], rule


def _rules_by_name() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for _, _, rule in _alert_rules()}


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    """Anchor -> heading of every alert section (``### Name``) in docs/alerts.md."""
    text = RUNBOOK.read_text(encoding="utf-8")
    headings = re.findall(r"^### (.+?)\s*$", text, flags=re.MULTILINE)
    return {_slug(h): h for h in headings}


def test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {ALERTS}"
    assert TEST_FILES, f"no promtool test files in {ALERTS / 'tests'}"
    assert RUNBOOK.is_file(), f"{RUNBOOK} is missing"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: str, path: Path) -> None:
    # From the test file's folder: its rule_files are relative to it.
    proc = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_test_files_load_the_rule_files(path: Path) -> None:
    rule_files = _load(path).get("rule_files") or []
    assert rule_files, f"{path.name} names no rule_files"
    for name in rule_files:
        assert (path.parent / name).resolve() in {p.resolve() for p in RULE_FILES}, name


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for _, _, rule in _alert_rules()]
    assert names, "no alerting rules"
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_rule_is_annotated() -> None:
    problems = []
    for path, group, rule in _alert_rules():
        where = f"{path.name}:{group}:{rule['alert']}"
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{where}: severity {severity!r} not in {sorted(SEVERITIES)}")
        annotations = rule.get("annotations") or {}
        for key in REQUIRED_ANNOTATIONS:
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{where}: no {key} annotation")
        description = str(annotations.get("description", ""))
        if "{{" not in description:
            problems.append(f"{where}: description uses no $labels or $value")
    assert not problems, "\n".join(problems)


def test_runbook_anchors_match_rules() -> None:
    sections = _runbook_sections()
    rules = _rules_by_name()
    problems = []
    for name, rule in rules.items():
        url = str((rule.get("annotations") or {}).get("runbook_url", ""))
        if not url.startswith(RUNBOOK_PREFIX):
            problems.append(f"{name}: runbook_url {url!r} does not start with {RUNBOOK_PREFIX}")
            continue
        anchor = url.removeprefix(RUNBOOK_PREFIX)
        if anchor not in sections:
            problems.append(f"{name}: no section with anchor #{anchor} in docs/alerts.md")
        elif sections[anchor] != name:
            problems.append(f"{name}: #{anchor} is the section of {sections[anchor]!r}")
    for heading in sections.values():
        if heading not in rules:
            problems.append(f"docs/alerts.md section {heading!r} has no alerting rule")
    assert not problems, "\n".join(problems)


def _test_cases() -> Iterator[tuple[str, str, bool]]:
    """(file, alertname, fires) for every alert_rule_test of every test file."""
    for path in TEST_FILES:
        for test in _load(path).get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                yield path.name, case["alertname"], bool(case.get("exp_alerts"))


def test_test_cases_name_existing_rules() -> None:
    # promtool passes `exp_alerts: []` for an alert name that no rule has.
    rules = _rules_by_name()
    unknown = sorted({f"{f}: {name}" for f, name, _ in _test_cases() if name not in rules})
    assert not unknown, unknown


def test_every_rule_has_firing_and_non_firing_cases() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for _, name, fires in _test_cases():
        (firing if fires else quiet).add(name)
    rules = set(_rules_by_name())
    missing = [f"{n}: no firing case" for n in sorted(rules - firing)]
    missing += [f"{n}: no non-firing case (exp_alerts: [])" for n in sorted(rules - quiet)]
    assert not missing, "\n".join(missing)


def test_firing_cases_check_labels_and_annotations() -> None:
    problems = []
    for path in TEST_FILES:
        for test in _load(path).get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                for alert in case.get("exp_alerts") or []:
                    where = f"{path.name}: {case['alertname']} at {case['eval_time']}"
                    if "severity" not in (alert.get("exp_labels") or {}):
                        problems.append(f"{where}: exp_labels without severity")
                    if set(REQUIRED_ANNOTATIONS) - set(alert.get("exp_annotations") or {}):
                        problems.append(f"{where}: exp_annotations incomplete")
    assert not problems, "\n".join(problems)
