"""Shell completion, as the README documents it: the script, and what it completes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

EGOBS = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "egobs")


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    env["_EGOBS_COMPLETE"] = "bash_complete"
    out = subprocess.run([EGOBS], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split(",", 1)[1] for line in out.stdout.splitlines()]


def test_the_bash_script_registers_egobs() -> None:
    env = {**os.environ, "_EGOBS_COMPLETE": "bash_source"}
    out = subprocess.run([EGOBS], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "complete -o nosort -F _egobs_completion egobs" in out.stdout


def test_commands_and_option_values_complete() -> None:
    assert _complete("egobs sta", 1) == ["stats", "status"]
    assert _complete("egobs status -o ", 3) == ["table", "yaml", "json"]
    assert "--to" in _complete("egobs translate --t", 2)
