"""A chapter evaluates a saved run: ``lt-diffusion train ddpm --scale smoke --out DIR``, then chapter 01 with
``-p CHECKPOINT_DIR DIR`` skips training and writes the same results as the chapter run that trains its model.

Chapter 01 is the smallest chapter (one arm). Both notebook runs go through papermill, as a reader runs them; the
results compared are the ones the chapter writes (``results/smoke/ddpm.json``): FID, final loss, images seen,
parameters. Training at one process gives the same weights in the command and in the notebook (tests/test_cli.py),
so the two runs must agree exactly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_ddpm.ipynb"
RESULTS = ROOT / "results" / "smoke" / "ddpm.json"
COMPARED = ("fid", "final_loss", "train_images", "params", "fid_samples", "sampling_steps")


def _run_chapter(tmp_path: Path, name: str, **parameters) -> dict:
    import papermill

    RESULTS.unlink(missing_ok=True)
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / f"{name}.ipynb"), parameters={"SCALE": "smoke", **parameters},
                               kernel_name="python3", cwd=str(NOTEBOOK.parent), progress_bar=False)
    return json.loads(RESULTS.read_text())


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_chapter_01_with_checkpoint_dir_skips_training_and_prints_the_same_results(tmp_path, assets_dir):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "lt_diffusion", "train", "ddpm", "--scale", "smoke", "--out", str(runs)],
                   check=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    card = json.loads((runs / "ddpm" / "model_card.json").read_text())
    assert (card["chapter"], card["scale"], card["arm"]) == ("ddpm", "smoke", "ddpm")

    loaded = _run_chapter(tmp_path, "loaded", CHECKPOINT_DIR=str(runs))
    trained = _run_chapter(tmp_path, "trained")
    assert {k: loaded[k] for k in COMPARED} == {k: trained[k] for k in COMPARED}
    # the loaded run did not train: its training cell took a fraction of the training run's
    assert loaded["provenance"]["train_s"] < 0.2 * trained["provenance"]["train_s"], (loaded["provenance"],
                                                                                      trained["provenance"])
