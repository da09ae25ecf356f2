"""The module maps in the package docstrings (``fer_batch`` and ``fer_batch.training``) name every module and
nothing else, so a newcomer's first read of the code finds each one's job."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_batch"


def _mapped(package: Path) -> list[str]:
    """Every ````name```` in the docstring's table (between its ``====`` rules), a trailing ``/`` dropped."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=") and set(line) <= {"=", " "}]
    assert len(rules) == 2, f"{package.name}/__init__.py: expected one table with two '====' rules, found {rules}"
    table = "\n".join(lines[rules[0] + 1:rules[1]])
    return re.findall(r"``(\w+)/?``", table)


def _modules(package: Path) -> set[str]:
    names = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return names | {p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


@pytest.mark.parametrize("package", [PACKAGE, PACKAGE / "training"], ids=["fer_batch", "fer_batch.training"])
def test_the_package_map_names_every_module_and_nothing_else(package):
    mapped, modules = _mapped(package), _modules(package)
    assert not modules - set(mapped), f"{package.name}/__init__.py's map leaves out {sorted(modules - set(mapped))}"
    assert not set(mapped) - modules, f"{package.name}/__init__.py's map names {sorted(set(mapped) - modules)}, " \
                                      "which are not modules"
    assert len(mapped) == len(set(mapped)), f"{package.name}/__init__.py's map names a module twice: {mapped}"


def test_every_public_name_resolves_and_importing_the_package_stays_light():
    """`import fer_batch` is instant and changes nothing (no TensorFlow, MediaPipe, OpenCV or pandas, no logging
    handlers); each name of __all__ resolves on first use and is listed by dir()."""
    import subprocess
    import sys

    code = ("import logging, os, sys; env = dict(os.environ); handlers = list(logging.getLogger().handlers)\n"
            "import fer_batch\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'mediapipe', 'cv2', 'pandas') if m in sys.modules)\n"
            "assert heavy == [], heavy\n"
            "assert dict(os.environ) == env and logging.getLogger().handlers == handlers\n"
            "missing = [n for n in fer_batch.__all__ if n not in dir(fer_batch) or getattr(fer_batch, n) is None]\n"
            "assert missing == [], missing\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
