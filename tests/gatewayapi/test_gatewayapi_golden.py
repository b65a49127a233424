"""Golden cases: ``testdata/<case>.in.yaml`` translated must equal ``<case>.out.yaml``.

Regenerate with ``EGOBS_UPDATE_GOLDEN=1`` (or ``--update-golden``), then review the diff:
a golden that encodes a bug is worse than none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gatewayapi_golden import NOW, render

from egobs.gatewayapi import translate
from egobs.resources import Resources, load_paths

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(TESTDATA.glob("*.in.yaml"))


def _id(path: Path) -> str:
    return path.name.removesuffix(".in.yaml")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_golden(case: Path, update_golden: bool) -> None:
    text = render(translate(load_paths([case]), now=NOW))
    golden = case.with_name(f"{_id(case)}.out.yaml")
    if update_golden or not golden.exists():
        golden.write_text(text)
        if not update_golden:
            pytest.fail(f"golden {golden.name} was missing; written - review it")
    assert text == golden.read_text()


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_output_does_not_depend_on_input_order(case: Path) -> None:
    resources = load_paths([case])
    reversed_ = Resources.of(reversed(list(resources)))
    assert render(translate(reversed_, now=NOW)) == render(translate(resources, now=NOW))


def test_enough_cases() -> None:
    assert len(CASES) >= 30
