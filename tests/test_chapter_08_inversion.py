"""Chapter 08's package stages (lt_diffusion.experiments.inversion_chapter): reading the data-size curves and the
paper claims from classifier rows."""
import math
from types import SimpleNamespace

from lt_diffusion.experiments import inversion_chapter as ic


def _rows():
    def r(name, real, gen, aug, acc):
        return {"training data": name, "real": real, "generated": gen, "augment": aug, "accuracy": acc}

    return [r("real (100)", 100, 0, True, 0.30), r("real (200)", 200, 0, True, 0.40), r("real (400)", 400, 0, True, 0.50),
            r("generated (50)", 0, 50, True, 0.20), r("real + generated (100 + 50)", 100, 50, True, 0.35),
            r("generated (100)", 0, 100, True, 0.25), r("real + generated (100 + 100)", 100, 100, True, 0.45),
            r("real (100), no augmentation", 100, 0, False, 0.25),
            r("real + generated (100 + 100), no augmentation", 100, 100, False, 0.33)]


def test_data_size_reading():
    reading = ic.data_size_reading(_rows(), 100)
    assert reading.real == [(100, 0.30), (200, 0.40), (400, 0.50)]
    assert [w["reading"] for w in reading.worth] == ["inside", "inside"]
    # 0.45 lies halfway between 200 (0.40) and 400 (0.50) in log size: 200 * sqrt(2) real images
    assert math.isclose(reading.worth[1]["equivalent real images"], 200 * 2 ** 0.5, rel_tol=1e-6)
    assert math.isclose(reading.worth[1]["sample-complexity gain"], 2 * 2 ** 0.5, rel_tol=1e-6)
    assert reading.aug_table == [
        {"training data": "real (100)", "no augmentation": 0.25, "random crop + flip": 0.30},
        {"training data": "real + generated (100)", "no augmentation": 0.33, "random crop + flip": 0.45}]


def test_paper_claims():
    rows = _rows()
    reading = ic.data_size_reading(rows, 100)
    per = {c: 0.5 for c in range(10)}
    results = {name: {"balanced_accuracy": acc, "per_class": per} for name, acc in
               zip(ic.LT_ARMS, (0.40, 0.35, 0.45, 0.42, 0.41))}
    lt = SimpleNamespace(results=results, groups={"head": [0, 1, 2], "mid": [3, 4, 5, 6], "tail": [7, 8, 9]})
    claims = ic.paper_claims(reading, rows, lt, throughput=100.0, sample_steps=50)
    holds = [c["direction holds"] for c in claims]
    assert holds == [True, None, True, True]
    assert "generated only (100) 0.250 vs as many real images 0.300" in claims[0]["ours"]
