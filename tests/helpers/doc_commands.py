"""Run a command exactly as README.md or docs/ print it, and find every such command.

The rule (DEVELOPERS.md): every command the README and docs/ show must work exactly as written, and a test
must prove it. A test proves a command by passing its exact text, as a string literal, to
:func:`run_documented`; ``tests/docs/test_documented_commands.py`` then checks statically that every
documented command is passed somewhere, so a command added to the docs without a test fails CI.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# First words of the lines that count as commands a reader would type.
COMMAND_WORDS = ("dvc", "pagstore", "torchrun", "python", "make")
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELL_LANGS = {"", "bash", "sh", "shell", "console"}


def documented_commands(paths: list[Path] | None = None) -> dict[str, list[str]]:
    """Map each command shown in a shell code block of README.md / docs/*.md to the files showing it.

    A command is a line (joined over trailing backslashes) of a ``bash``/``sh``/``console``/unlabelled
    fenced block whose first word is one of :data:`COMMAND_WORDS`, with a leading ``$ `` prompt and a
    trailing ``  # comment`` removed.
    """
    if paths is None:
        paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    found: dict[str, list[str]] = {}
    for path in paths:
        in_shell = False
        in_block = False
        pending = ""
        for raw in path.read_text().splitlines():
            fence = _FENCE.match(raw.strip())
            if fence:
                in_block = not in_block
                in_shell = in_block and fence.group(1) in _SHELL_LANGS
                pending = ""
                continue
            if not in_shell:
                continue
            line = raw.strip()
            if pending:
                line = pending + " " + line
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            command = normalise(line)
            if command and command.split()[0] in COMMAND_WORDS:
                found.setdefault(command, []).append(_shown(path))
    return found


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def normalise(line: str) -> str:
    """Strip a ``$ `` prompt and a trailing ``  # comment`` (two spaces or more before the ``#``)."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    line = re.split(r"\s{2,}#", line, maxsplit=1)[0]
    return " ".join(line.split())


def commands_run_by_tests(tests_dir: Path | None = None) -> set[str]:
    """Every string literal passed as the first argument of ``run_documented(...)`` under ``tests/``."""
    tests_dir = tests_dir or REPO / "tests"
    out: set[str] = set()
    for path in tests_dir.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "run_documented"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                out.add(normalise(node.args[0].value))
    return out


def run_documented(
    command: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` exactly as documented (through ``bash -c``) in ``cwd``.

    The test interpreter's bin directory comes first on PATH, so ``dvc``, ``pagstore``, ``torchrun`` and
    ``python`` are the installed ones; ``PYTHONPATH`` holds this checkout. ``env`` adds variables.
    """
    full = dict(os.environ)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), full.get("PYTHONPATH", "")) if p)
    full["DVC_NO_ANALYTICS"] = "1"
    full.setdefault("OMP_NUM_THREADS", "1")
    full.update(env or {})
    proc = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"documented command failed ({proc.returncode}): {command}\n{proc.stdout}\n{proc.stderr}")
    return proc
