"""Every shell command of the README's ```sh blocks runs as written, from the repository root.

Commands that start a long-running server, need the compose stack or a running control
plane, or are benchmarks that load Envoy for minutes are skipped by an explicit list, each
entry with its reason; every entry must match a README command, so the list cannot go stale.
A redirection into a file (`> bootstrap.json`) is rewritten into a temporary directory: the
test never writes into the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV_BIN = ".venv/bin/"
TIMEOUT_S = 300


class Skip(NamedTuple):
    """README commands this test does not run: those matching ``pattern``, and why."""

    pattern: str
    reason: str


SKIPS = (
    Skip(r"make demo\b", "runs the demo stack (control plane, Envoy, sink, echoes) until Ctrl-C"),
    Skip(r"make test\b", "the whole test suite, this test included"),
    Skip(r"docker compose\b", "needs a Docker engine; the stack is checked by tests/stack/"),
    Skip(r"\.venv/bin/egobs serve\b", "the control plane: a long-running server"),
    Skip(
        r"\.venv/bin/egobs status\b",
        "needs a running control plane; driven against `egobs serve` by tests/cli/test_cli_e2e.py",
    ),
    Skip(
        r"\.venv/bin/egobs (config|stats) envoy-proxy\b",
        "needs a running control plane and its Envoy; driven against `egobs serve` by "
        "tests/cli/test_cli_inspect.py",
    ),
    Skip(
        r"\.venv/bin/egobs collect\b",
        "needs a running control plane; driven against `egobs serve` by "
        "tests/cli/test_cli_inspect.py",
    ),
    Skip(r"\.venv/bin/egobs sink\b", "the access-log sink: a long-running server"),
    Skip(r"\.venv/bin/egobs echo\b", "an echo backend: a long-running server"),
    Skip(
        r"\.venv/bin/python bench/converge\.py\b",
        "benchmark: runs the control plane and a real Envoy through 10,000-route edits",
    ),
    Skip(
        r"\.venv/bin/python bench/fanout\.py\b",
        "benchmark: 500 xDS clients and an Envoy; tests/bench/ runs it at a small size",
    ),
    Skip(
        r"\.venv/bin/python bench/endpoints\.py\b",
        "benchmark: runs the control plane and a real Envoy through 10,000-route slice edits",
    ),
    Skip(
        r"\.venv/bin/python bench/sink\.py\b",
        "benchmark: loads the sink and Envoy with wrk at full rate for tens of seconds",
    ),
    Skip(
        r"\.venv/bin/python bench/translate\.py\b.*--instrumented both",
        "benchmark: 20 full translations of 10,000 routes and 80 edits, over a minute; "
        "tests/bench/ runs it at a small size",
    ),
    Skip(
        r"\.venv/bin/python bench/telemetry_overhead\.py\b",
        "benchmark: Envoys, telemetry receivers and wrk at full load for minutes",
    ),
)


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` that starts a word outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(text: str) -> list[str]:
    """The commands of every ```sh block: one per line (backslash continuations joined),
    comments, blank and comment-only lines left out."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = strip_comment(pending + line).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def skip_reason(command: str) -> str | None:
    for skip in SKIPS:
        if re.match(skip.pattern, command):
            return skip.reason
    return None


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))
RUNNABLE = [c for c in COMMANDS if skip_reason(c) is None]


def test_the_readme_has_commands_to_run() -> None:
    fences = re.findall(r"^```(\w+)", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert not {"bash", "shell", "console", "zsh"} & set(fences), "write shell blocks as ```sh"
    assert len(COMMANDS) >= 15
    assert any(c.startswith(".venv/bin/egobs translate") for c in RUNNABLE)
    assert any(c.startswith(".venv/bin/egobs bootstrap") for c in RUNNABLE)


@pytest.mark.parametrize("skip", SKIPS, ids=lambda s: s.pattern)
def test_every_skip_matches_a_readme_command(skip: Skip) -> None:
    assert skip.reason
    assert any(re.match(skip.pattern, c) for c in COMMANDS), (
        f"no README command matches {skip.pattern!r}: drop it from SKIPS"
    )


_REDIRECT = re.compile(r"(?P<op>\d?>>?)\s*(?P<target>[^\s;&|]+)")


def sandboxed(command: str, bin_dir: Path, tmp: Path) -> tuple[str, list[Path]]:
    """``command`` with the venv's bin dir for ``.venv/bin/`` and every redirection into
    a file rewritten into ``tmp``; also the repository paths it would have written."""
    command = re.sub(r"(?<![\w/.])\.venv/bin/", f"{bin_dir}/", command)
    avoided: list[Path] = []

    def into_tmp(match: re.Match[str]) -> str:
        target = match["target"]
        if target.startswith("&") or target == "/dev/null":
            return match[0]
        avoided.append(REPO / target)
        return f"{match['op']} {shlex.quote(str(tmp / Path(target).name))}"

    return _REDIRECT.sub(into_tmp, command), avoided


def test_sandboxing_rewrites_the_venv_and_redirections(tmp_path: Path) -> None:
    command, avoided = sandboxed(
        ".venv/bin/egobs bootstrap --gateway default/eg > bootstrap.json 2>&1",
        Path("/v/bin"),
        tmp_path,
    )
    assert command == (
        f"/v/bin/egobs bootstrap --gateway default/eg > {tmp_path}/bootstrap.json 2>&1"
    )
    assert avoided == [REPO / "bootstrap.json"]
    assert strip_comment("make demo  # the 'main' job") == "make demo"
    assert strip_comment("curl -H 'a #b' x#y # c") == "curl -H 'a #b' x#y"
    assert sandboxed("cat a | .venv/bin/egobs x", Path("/v/bin"), tmp_path) == (
        "cat a | /v/bin/egobs x",
        [],
    )


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    shell_command, avoided = sandboxed(command, bin_dir, tmp_path)
    existed = {p: p.exists() for p in avoided}
    stdout = tmp_path / "stdout"
    with stdout.open("wb") as out:
        proc = subprocess.run(
            shell_command,
            shell=True,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT_S,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            check=False,
        )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{shell_command}\nexit {proc.returncode}\n{err[-3000:]}"
    for path, was in existed.items():
        assert path.exists() == was, f"{command} wrote {path} into the repository"
