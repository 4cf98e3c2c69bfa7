"""The benchmark scripts run end to end on a CPU with the tiny model (the GPU numbers come from the same code)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(*args):
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def sweep_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    _run(BENCH / "train_throughput.py", "--tiny", "--no-diffusers", "--no-sample", "--modes", "fp32",
         "--batch-sweep", "2", "4", "--out", out)
    return out


def test_train_throughput_tiny_report_is_consistent(sweep_json):
    from lt_diffusion.models import UNetModel, count_parameters, get_model_config

    rep = json.loads(sweep_json.read_text())
    assert rep["meta"]["tiny"] is True and rep["meta"]["batch_sweep"] == [2, 4]
    (entry,) = rep["results"]
    assert entry["model"] == "smoke"
    assert entry["params"] == count_parameters(UNetModel(get_model_config("smoke")))
    assert entry["gflops_per_image"] > 0
    fp32 = entry["train"]["fp32"]
    assert fp32["images_per_s"] == pytest.approx(rep["meta"]["batch"] / (fp32["median_ms"] / 1e3), rel=1e-9)
    assert [r["batch"] for r in entry["sweep"]["fp32"]] == [2, 4]
    for r in entry["sweep"]["fp32"]:
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["median_ms"] / 1e3), rel=1e-9)
        assert r["tflops"] == pytest.approx(entry["gflops_per_image"] * r["images_per_s"] / 1e3, rel=1e-9)


def test_plot_batch_sweep_writes_png(sweep_json, tmp_path):
    png = tmp_path / "sweep.png"
    _run(BENCH / "plot_batch_sweep.py", sweep_json, "--out", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_batch_sweep_without_sweep_fails_clearly(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"meta": {"device": "cpu"}, "results": [{"model": "smoke", "train": {}}]}))
    r = subprocess.run([sys.executable, str(BENCH / "plot_batch_sweep.py"), str(plain), "--out",
                        str(tmp_path / "x.png")], capture_output=True, text=True)
    assert r.returncode == 1 and "--batch-sweep" in r.stderr


def test_batch_sweep_rejects_nonpositive_sizes():
    r = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), "--tiny", "--batch-sweep", "0"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "positive" in r.stderr
