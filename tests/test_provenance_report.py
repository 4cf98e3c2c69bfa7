"""What a chapter shows its reader: tables, the scale note, pipeline checks, and the start of a run.

The scale predicate and the note decide whether CIFAR-10 numbers appear as results (only at ``book`` and
``paper``); ``start_run`` stops a chapter with one readable message on a bad ``SCALE`` or on a GPU scale
without CUDA; ``paths.assets_dir`` finds the asset folder beside the checkout as the Makefile does.
"""
from __future__ import annotations

import math
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from lt_diffusion import paths, provenance, report

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def test_provenance_table_is_a_table_with_markdown_and_html(monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_COMMIT", "a" * 40)
    monkeypatch.setenv("LT_DIFFUSION_DIRTY", "0")
    rec = provenance.record("smoke", [0, 1], 12.3456, extra={"note": "x | y"})
    table = provenance.provenance_table(rec)
    assert isinstance(table, report.Table) and isinstance(table, str)
    lines = table.splitlines()
    assert lines[:3] == ["| | |", "|---|---|", "| commit | aaaaaaaaaaaa |"]
    assert "| dirty | no |" in lines and "| seeds | 0, 1 |" in lines and "| note | x \\| y |" in lines
    html = table._repr_html_()
    assert html.startswith('<table class="lt-table lt-provenance"') and "x | y" in html
    assert table.rows[0] == {"": "commit", " ": "a" * 12}


def test_table_alignment_and_missing_cells():
    t = report.table([{"name": "a", "n": np.int64(3), "v": np.float32(0.5)}, {"name": "b", "v": None}],
                     formats={"v": ".2f"})
    assert t.splitlines() == ["| name | n | v |", "|---|---:|---:|", "| a | 3 | 0.50 |", "| b | – | – |"]
    mixed = report.table([{"x": 1}, {"x": "one"}])  # a column with text is left-aligned
    assert mixed.splitlines()[1] == "|---|"


# --------------------------------------------------------------------------------------------------
# the scale predicate and the note
# --------------------------------------------------------------------------------------------------
def test_shows_results_only_at_book_and_paper(monkeypatch):
    monkeypatch.setenv(provenance.ALLOW_CPU_ENV, "1")
    assert report.shows_results("smoke") is False
    assert report.shows_results("book") is True and report.shows_results("paper") is True
    assert report.shows_results(provenance.start_run("smoke", 0)) is False
    assert report.shows_results(provenance.start_run("book", 0)) is True
    assert report.shows_results({"scale": "paper"}) is True
    for bad in ("Book", "", None, {"scale": "tiny"}):
        with pytest.raises(ValueError, match="unknown scale"):
            report.shows_results(bad)


def test_scale_note_at_smoke_says_results_await_a_book_run():
    note = report.scale_note({"scale": "smoke", "device": "AMD EPYC"}, chapter="05_p2")
    md = str(note)
    assert md.startswith(":::{admonition} ") and ":class: warning" in md and md.rstrip().endswith(":::")
    assert "`smoke` scale on AMD EPYC" in md and "await a `book` run on a GPU" in md
    assert "papermill notebooks/05_p2.ipynb out.ipynb -p SCALE book" in md
    assert note._repr_markdown_() == md
    assert '<div class="admonition warning"' in note._repr_html_() and "<code>smoke</code>" in note._repr_html_()
    assert "`" not in repr(note) and "smoke" in repr(note)


def test_scale_note_at_book_names_the_run():
    rec = {"scale": "book", "device": "NVIDIA H100 80GB HBM3", "commit": "b" * 40, "seeds": [0, 1],
           "wall_time_s": 431.0}
    md = str(report.scale_note(rec))
    assert ":class: note" in md and "a book run" in md and "on NVIDIA H100 80GB HBM3" in md
    assert "commit `bbbbbbbbbbbb`" in md and "seeds 0, 1" in md and "7.2 min wall time" in md
    assert "smoke" not in md
    paper = str(report.scale_note({"scale": "paper", "device": "x"}))
    assert "a paper run" in paper and "paper's settings" in paper


def test_scale_note_from_a_run_names_this_machine(monkeypatch):
    monkeypatch.setattr(provenance, "device_name", lambda: "Test CPU 9000")
    md = str(report.scale_note(provenance.start_run("smoke", 0)))
    assert "on Test CPU 9000" in md


# --------------------------------------------------------------------------------------------------
# pipeline checks
# --------------------------------------------------------------------------------------------------
def test_pipeline_check_prints_shapes_and_time_not_numbers(capsys):
    with provenance.Stopwatch() as sw:
        pass
    line = report.pipeline_check("FID sweep", sw, samples=torch.zeros(8, 3, 32, 32, dtype=torch.uint8),
                                 fid=[507.91, 480.25], metrics={"precision": 0.0, "recall": np.float64(0.125)},
                                 loss=torch.tensor([0.5, 0.25]))
    printed = capsys.readouterr().out.strip()
    assert printed == str(line) and line.finite
    assert printed.startswith("pipeline check · FID sweep: ran in 0.0 s")
    assert "samples (8, 3, 32, 32) uint8" in printed and "fid (2 values)" in printed
    assert "precision computed" in printed and "loss (2,) float32" in printed
    assert "507" not in printed and "0.125" not in printed and "0.5" not in printed


def test_pipeline_check_fails_on_nan():
    with pytest.raises(ValueError, match="not finite.*broken"):
        report.pipeline_check("train", 1.0, loss=torch.tensor([1.0, math.nan]))
    line = report.pipeline_check("train", None, require_finite=False, fid=float("inf"))
    assert not line.finite and "NOT FINITE" in line and "ran ·" in line


# --------------------------------------------------------------------------------------------------
# start_run: a bad SCALE and a GPU scale without a GPU stop with one message
# --------------------------------------------------------------------------------------------------
def test_scales_agree_with_the_presets():
    from lt_diffusion.presets import SCALES

    assert provenance.SCALES == report.SCALES == SCALES


@pytest.mark.parametrize("bad", ["bok", "Smoke", "", 3, None])
def test_start_run_rejects_a_bad_scale_with_one_readable_message(bad):
    with pytest.raises(provenance.RunSetupError) as info:
        provenance.start_run(bad, 0)
    msg = str(info.value)
    assert f"SCALE = {bad!r} is not a scale" in msg and "'smoke'" in msg and "'book'" in msg
    assert info.value._render_traceback_() == [f"RunSetupError: {msg}"]
    assert isinstance(info.value, ValueError)
    if bad == "bok":
        assert "did you mean 'book'?" in msg


def test_start_run_at_book_without_cuda_stops_unless_allowed(monkeypatch):
    monkeypatch.setattr(provenance, "_cuda_available", lambda: False)
    monkeypatch.delenv(provenance.ALLOW_CPU_ENV, raising=False)
    assert provenance.start_run("smoke", 0).scale == "smoke"
    for scale in ("book", "paper"):
        with pytest.raises(provenance.RunSetupError) as info:
            provenance.start_run(scale, 0)
        msg = str(info.value)
        assert f"SCALE = {scale!r} needs a CUDA GPU" in msg and "SCALE = 'smoke'" in msg
        assert "LT_DIFFUSION_ALLOW_CPU=1" in msg
    monkeypatch.setenv(provenance.ALLOW_CPU_ENV, "1")
    assert provenance.start_run("book", [0, 1]).scale == "book"
    monkeypatch.setattr(provenance, "_cuda_available", lambda: True)
    monkeypatch.delenv(provenance.ALLOW_CPU_ENV)
    assert provenance.start_run("paper", 0).scale == "paper"


@pytest.mark.timeout(300)
def test_papermill_shows_the_message_not_a_traceback(tmp_path):
    """What a reader sees when `papermill ... -p SCALE bok` fails: the message, with no frames of ours."""
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('SCALE = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("from lt_diffusion import provenance\n"
                                                  "run = provenance.start_run(SCALE, 0)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env_path}" if env_path else str(ROOT)
    try:
        with pytest.raises(papermill.PapermillExecutionError) as info:
            papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                       parameters={"SCALE": "bok"}, kernel_name="python3", progress_bar=False,
                                       cwd=str(tmp_path))
    finally:
        os.environ["PYTHONPATH"] = env_path
        if not env_path:
            del os.environ["PYTHONPATH"]
    err = info.value
    assert err.ename == "RunSetupError" and "SCALE = 'bok' is not a scale" in err.evalue
    shown = "\n".join(err.traceback)
    assert shown.startswith("RunSetupError: SCALE = 'bok' is not a scale"), shown
    assert "File " not in shown and "provenance.py" not in shown  # no frames, no paths


# --------------------------------------------------------------------------------------------------
# the asset folder beside the checkout
# --------------------------------------------------------------------------------------------------
def test_assets_dir_finds_the_folder_beside_the_checkout(monkeypatch, tmp_path):
    beside = ROOT.parent / "shared" / "assets"
    assert paths.default_assets_dir() == (beside if beside.is_dir() else None)   # ROOT is resolved; a symlinked folder stays as named
    monkeypatch.delenv(paths.ASSETS_ENV, raising=False)
    assert paths.assets_dir() == paths.default_assets_dir()  # unset: as the Makefile does
    monkeypatch.setenv(paths.ASSETS_ENV, "")
    assert paths.assets_dir() is None  # set but empty: no asset folder (downloads)
    monkeypatch.setenv(paths.ASSETS_ENV, str(tmp_path))
    assert paths.assets_dir() == tmp_path and paths.assets_dir(tmp_path / "x") == tmp_path / "x"
