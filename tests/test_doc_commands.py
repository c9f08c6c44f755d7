"""The benchmark and script commands the docs quote still parse: each answers `--help` (without running
the benchmark) and knows every option that README.md, ASSETS.md and the model card give it."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "ASSETS.md", ROOT / "src" / "talkface" / "assets" / "MODEL_CARD.md"]
PROGRAMS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])
_QUOTED = re.compile(r"\b((?:benchmarks|scripts)/\w+\.py)\b([^`]*)")


def quoted_options(text: str) -> dict[str, set[str]]:
    """The `--options` each benchmark or script is quoted with inside `code spans` of `text`, by path."""
    found: dict[str, set[str]] = {}
    for span in re.findall(r"`([^`]+)`", text):
        for path, rest in _QUOTED.findall(span):
            found.setdefault(path, set()).update(re.findall(r"(?<![\w-])--[a-z][\w-]*", rest))
    return found


def test_quoted_options_are_read_from_code_spans_only():
    text = "`python benchmarks/a.py --x 1\n--y-z 2` then --w, and `scripts/b.py` plus `benchmarks/a.py --v`"
    assert quoted_options(text) == {"benchmarks/a.py": {"--x", "--y-z", "--v"}, "scripts/b.py": set()}


@functools.cache
def _help(path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help_answers_without_running_and_knows_the_quoted_options(path: Path):
    out = _help(path)
    assert out.startswith("usage:"), out[:400]
    quoted: set[str] = set()
    for doc in DOCS:
        quoted |= quoted_options(doc.read_text(encoding="utf-8")).get(f"{path.parent.name}/{path.name}", set())
    missing = sorted(o for o in quoted if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", out))
    assert not missing, f"{path.name}: the docs quote {missing}, which --help does not list"


def test_every_quoted_program_exists():
    quoted = set()
    for doc in DOCS:
        quoted |= set(quoted_options(doc.read_text(encoding="utf-8")))
    assert quoted <= {f"{p.parent.name}/{p.name}" for p in PROGRAMS}
