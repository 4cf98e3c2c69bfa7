"""Every notebook has a jupytext pair (py:percent) that is in sync, and a parameters cell.

The .py file is what contributors edit; `jupytext --sync notebooks/NN_name.py` updates the
.ipynb (keeping its outputs). These tests fail when the two drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks
from jupytext.formats import guess_format

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
PY_FILES = sorted(NOTEBOOKS_DIR.glob("*.py"))
CHAPTER = re.compile(r"^\d\d_[a-z0-9_]+$")
SCALE_SMOKE = re.compile(r"""^SCALE\s*=\s*["']smoke["']\s*(#.*)?$""", re.MULTILINE)


def _params(paths: list[Path], what: str):
    if paths:
        return [pytest.param(p, id=p.name) for p in paths]
    return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {what} in notebooks/ yet"))]


def test_notebooks_folder_exists():
    assert NOTEBOOKS_DIR.is_dir(), "the notebooks/ folder is missing"


@pytest.mark.parametrize("ipynb", _params(NOTEBOOKS, "*.ipynb"))
def test_notebook_has_percent_pair(ipynb: Path):
    py = ipynb.with_suffix(".py")
    assert py.is_file(), f"{ipynb.name} has no pair; create it with: jupytext --set-formats ipynb,py:percent {ipynb}"
    fmt, _ = guess_format(py.read_text(encoding="utf-8"), ".py")
    assert fmt == "percent", f"{py.name} is in jupytext format {fmt!r}, expected 'percent' (py:percent)"
    formats = nbformat.read(ipynb, as_version=4).metadata.get("jupytext", {}).get("formats", "")
    assert "ipynb" in formats and "py:percent" in formats, (
        f"{ipynb.name} is not paired (metadata.jupytext.formats={formats!r}); "
        f"run: jupytext --set-formats ipynb,py:percent {ipynb}")


@pytest.mark.parametrize("ipynb", _params(NOTEBOOKS, "*.ipynb"))
def test_pair_in_sync(ipynb: Path):
    py = ipynb.with_suffix(".py")
    if not py.is_file():
        pytest.skip(f"{py.name} is missing (reported by test_notebook_has_percent_pair)")
    from_ipynb = nbformat.read(ipynb, as_version=4)
    from_py = jupytext.read(py)
    try:
        # Compares cell types, sources and the metadata that the text format keeps (tags).
        compare_notebooks(from_py, from_ipynb, fmt="py:percent")
    except Exception as err:  # jupytext raises NotebookDifference (or AssertionError)
        pytest.fail(f"{ipynb.name} and {py.name} differ; edit the .py and run "
                    f"`jupytext --sync {py}`.\n{err}", pytrace=False)


@pytest.mark.parametrize("py", _params(PY_FILES, "*.py"))
def test_no_orphan_py(py: Path):
    assert py.with_suffix(".ipynb").is_file(), (
        f"{py.name} has no notebook; create it with: jupytext --sync {py} "
        "(after jupytext --set-formats ipynb,py:percent)")


@pytest.mark.parametrize("ipynb", _params([p for p in NOTEBOOKS if CHAPTER.match(p.stem)],
                                          "chapter notebooks (NN_name.ipynb)"))
def test_chapter_has_parameters_cell(ipynb: Path):
    nb = nbformat.read(ipynb, as_version=4)
    tagged = [c for c in nb.cells
              if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{ipynb.name} needs exactly one code cell tagged 'parameters', found {len(tagged)}"
    assert SCALE_SMOKE.search(tagged[0].source), (
        f"the parameters cell of {ipynb.name} must set SCALE = \"smoke\" (papermill overrides it "
        f"with -p SCALE book); it is:\n{tagged[0].source}")
