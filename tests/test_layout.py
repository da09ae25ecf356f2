"""The module maps in the package docstrings (``fer_batch`` and ``fer_batch.training``) name every module, so a
newcomer's first read of the code finds each one's job."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_batch"


def _named_in_docstring(package: Path) -> set[str]:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    return set(re.findall(r"``(\w+)(?:/)?``", doc))


def _modules(package: Path) -> set[str]:
    names = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    return names


@pytest.mark.parametrize("package", [PACKAGE, PACKAGE / "training"], ids=["fer_batch", "fer_batch.training"])
def test_every_module_is_in_its_package_map(package):
    missing = _modules(package) - _named_in_docstring(package)
    assert not missing, f"{package.name}/__init__.py's module map does not name {sorted(missing)}"
