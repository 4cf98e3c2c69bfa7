"""The results page is rendered from the chapters' JSON files; the effect verdict follows the seed spread."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lt_diffusion.experiments.summary import (effect_verdict, headline, load_results, longtail_row,
                                              render_results_page)

ROOT = Path(__file__).resolve().parents[1]


def test_verdict_beyond_within_and_against_the_seed_spread():
    # FID: lower is better; method mean 10, baseline mean 14, ranges 2 and 1 -> gain 4 > spread 2
    v = effect_verdict([9.0, 11.0], [13.5, 14.5], lower_is_better=True)
    assert v["gain"] == pytest.approx(4.0) and v["spread"] == pytest.approx(2.0) and v["verdict"] == "yes"
    v = effect_verdict([9.0, 13.0], [12.0, 14.0], lower_is_better=True)  # gain 2 < spread 4
    assert v["verdict"] == "yes, within seed spread" and v["gain"] == pytest.approx(2.0)
    v = effect_verdict([0.8], [0.7], lower_is_better=False)  # accuracy, one seed
    assert v["verdict"] == "yes, one seed" and v["spread"] is None and v["gain"] == pytest.approx(0.1)
    assert effect_verdict([15.0], [14.0], lower_is_better=True)["verdict"] == "no"


def test_headline_validates_its_input():
    with pytest.raises(ValueError, match="both"):
        headline("FID", 3.0, claim="x", method=[1.0])
    with pytest.raises(ValueError, match="non-finite"):
        headline("FID", 3.0, claim="x", method=[float("nan")], baseline=[1.0])
    h = headline("FID", 3.0, claim="x")
    assert "verdict" not in h and h["paper_value"] is None


def test_render_from_a_results_folder(tmp_path):
    cbdm = {"chapter": "cbdm", "scale": "book",
            "provenance": {"wall_time_s": 300.0, "device": "NVIDIA H100 80GB HBM3"},
            "headline": headline("tail-class FID", 80.5, claim="CBDM lowers tail-class FID",
                                 method=[80.0, 81.0], baseline=[90.0, 92.0], paper_value=None),
            "longtail": [longtail_row("baseline (CFG)", fid=70.0, fid_tail=91.0, recall=0.3, seeds=2),
                         longtail_row("CBDM", fid=68.0, fid_tail=80.5, recall=0.35, seeds=2)]}
    (tmp_path / "cbdm.json").write_text(json.dumps(cbdm))
    (tmp_path / "ddpm.json").write_text(json.dumps({"chapter": "ddpm", "scale": "book"}))
    page = render_results_page(load_results(tmp_path))
    row = next(line for line in page.splitlines() if line.startswith("| [06_cbdm]"))
    assert "| 80.5 |" in row and "| yes |" in row and "10.5 (2)" in row and "5.0 (NVIDIA H100" in row
    assert "results file has no headline entry" in page  # ddpm.json without a headline
    assert page.count("not run at `book` scale yet") == 6
    assert "| CBDM | cbdm | 68.00 |" in page and "| 0.350 |" in page


def test_smoke_headline_is_marked_not_comparable(tmp_path):
    res = {"scale": "smoke", "headline": headline("FID", 300.0, claim="c", method=[1.0], baseline=[2.0],
                                                  comparable=False)}
    (tmp_path / "p2.json").write_text(json.dumps(res))
    assert "not comparable (smoke)" in render_results_page(load_results(tmp_path))


def test_broken_json_names_the_file(tmp_path):
    (tmp_path / "adm.json").write_text("{")
    with pytest.raises(ValueError, match="adm.json"):
        load_results(tmp_path)


def test_committed_results_page_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_results_page.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
