"""Notebooks narrate, the package computes: no function or class is defined in a chapter beyond the teaching toys
listed here (each must assert agreement with the package), and code stays under MAX_CODE_SHARE of the non-blank
lines of ``notebooks/*.py`` (code: the non-blank lines of code cells; the rest is markdown, cell markers and the
jupytext header)."""
import ast
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))
# Teaching toys a notebook may define: {notebook file: {name, ...}}; at most 8 in the whole book.
TEACHING_TOYS: dict = {}
MAX_CODE_SHARE = 0.45   # code lines over non-blank lines of notebooks/*.py, the whole book


def _code_cells(path: Path):
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]


def _definitions(path: Path):
    names = []
    for source in _code_cells(path):
        body = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        names += [n.name for n in ast.walk(ast.parse(body))
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return names


def test_the_allow_list_is_small():
    assert sum(len(v) for v in TEACHING_TOYS.values()) <= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_definitions_beyond_teaching_toys(path):
    extra = set(_definitions(path)) - set(TEACHING_TOYS.get(path.name, ()))
    assert not extra, (f"{path.name} defines {sorted(extra)}: move it into the package (a helper), or, for a teaching "
                       f"toy that asserts agreement with the package, list it in TEACHING_TOYS")


def test_code_share_of_the_notebooks():
    code = total = 0
    for path in NOTEBOOKS:
        total += sum(1 for line in path.read_text().splitlines() if line.strip())
        code += sum(1 for source in _code_cells(path) for line in source.splitlines() if line.strip())
    assert NOTEBOOKS and code / total <= MAX_CODE_SHARE, (
        f"code is {code / total:.1%} of the {total} non-blank lines of notebooks/*.py (at most "
        f"{MAX_CODE_SHARE:.0%}): move glue into the package")
