"""Tests of lt_diffusion.longtail (class groups, balanced labels, per-class tables, arm comparison)."""
import math

import numpy as np
import pytest
import torch

from lt_diffusion import longtail
from lt_diffusion.data import lt_class_counts

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_cifar10_lt_groups():
    counts = lt_class_counts(5000, 10, 0.01)
    assert counts == CIFAR10_LT and sum(counts) == 12406
    g = longtail.class_groups(counts)
    assert g == {"head": [0, 1, 2], "mid": [3, 4, 5, 6], "tail": [7, 8, 9]}
    inv = longtail.group_of(g)
    assert inv[0] == "head" and inv[5] == "mid" and inv[9] == "tail"


def test_groups_rank_by_count_not_label():
    g = longtail.class_groups([10, 50, 30, 30, 5], n_head=1, n_tail=2)
    assert g == {"head": [1], "mid": [2, 3], "tail": [0, 4]}
    with pytest.raises(ValueError):
        longtail.class_groups([1, 2, 3], n_head=2, n_tail=2)


@pytest.mark.parametrize("n", [0, 1, 10, 64, 5003])
def test_balanced_labels(n):
    g = torch.Generator().manual_seed(0)
    y = longtail.balanced_labels(n, 10, generator=g)
    assert y.dtype == torch.long and y.shape == (n,)
    counts = torch.bincount(y, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == n
    if n % 10:
        assert (counts[: n % 10] == n // 10 + 1).all()


def test_balanced_labels_reproducible_and_shuffled():
    a = longtail.balanced_labels(100, 10, generator=torch.Generator().manual_seed(1))
    b = longtail.balanced_labels(100, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    s = longtail.balanced_labels(100, 10, shuffle=False)
    assert torch.equal(s, torch.arange(10).repeat_interleave(10))
    assert not torch.equal(a, s)


def test_per_class_rows_and_rank_corr():
    fid = {c: 10.0 + 5 * c for c in range(10)}          # rarer classes (higher c) worse
    rows = longtail.per_class_rows(fid, CIFAR10_LT, longtail.class_groups(CIFAR10_LT), value_name="FID")
    assert [r["class"] for r in rows] == list(range(10))
    assert rows[0]["group"] == "head" and rows[-1]["group"] == "tail" and rows[-1]["FID"] == 55.0
    assert math.isclose(longtail.frequency_rank_correlation(fid, CIFAR10_LT), -1.0)
    rows2 = longtail.per_class_rows({c: {"a": 1.0, "b": 2.0} for c in range(3)}, [3, 2, 1],
                                    {"head": [0], "mid": [1], "tail": [2]}, class_names=["x", "y", "z"])
    assert rows2[0] == {"class": 0, "name": "x", "train images": 3, "group": "head", "a": 1.0, "b": 2.0}


def test_lt_fid_breakdown_on_features():
    rng = np.random.default_rng(0)
    counts = [40, 20, 10, 5]
    real = rng.normal(size=(160, 8))
    real_y = np.repeat(np.arange(4), 40)
    gen = rng.normal(size=(80, 8)) + np.repeat(np.arange(4), 20)[:, None] * 0.5   # drift grows with c
    gen_y = np.repeat(np.arange(4), 20)
    out = longtail.lt_fid_breakdown(gen, gen_y, real, real_y, counts, n_head=1, n_tail=1)
    assert set(out["per_class"]) == {0, 1, 2, 3}
    assert out["group_members"] == {"head": [0], "mid": [1, 2], "tail": [3]}
    assert out["groups"]["tail"]["mean_class_fid"] > out["groups"]["head"]["mean_class_fid"]
    assert out["rank_corr"] < 0


def test_compare_arms():
    r = longtail.compare_arms([40.0, 41.0], [35.0, 36.0], names=("baseline", "CBDM"))
    assert r["exceeds_spread"] and r["better"] == "CBDM" and r["diff"] == pytest.approx(-5.0)
    r = longtail.compare_arms([40.0, 44.0], [41.0, 42.0], names=("baseline", "CBDM"))
    assert not r["exceeds_spread"] and "not resolved" in r["verdict"]
    r = longtail.compare_arms([0.5], [0.6], names=("a", "b"), lower_is_better=False)
    assert not r["exceeds_spread"] and r["better"] == "b" and "one seed" in r["verdict"]


def test_breakdown_matches_metrics_per_class():
    from lt_diffusion.metrics import per_class_fid

    rng = np.random.default_rng(3)
    real, real_y = rng.normal(size=(60, 16)), np.repeat(np.arange(3), 20)
    gen, gen_y = rng.normal(size=(30, 16)) + 0.2, np.repeat(np.arange(3), 10)
    out = longtail.lt_fid_breakdown(gen, gen_y, real, real_y, [30, 20, 10], n_head=1, n_tail=1)
    ref = per_class_fid(gen, gen_y, real, real_y, [0, 1, 2])
    for c in range(3):
        assert out["per_class"][c] == pytest.approx(ref[c], rel=1e-6)


def test_breakdown_with_precomputed_reference_is_identical():
    rng = np.random.default_rng(5)
    counts = [40, 20, 10, 5]
    real, real_y = rng.normal(size=(200, 12)), np.repeat(np.arange(4), 50)
    gen, gen_y = rng.normal(size=(60, 12)) + 0.3, np.repeat(np.arange(4), 15)
    ref = longtail.class_reference_stats(real, real_y, counts, n_head=1, n_tail=1)
    assert set(ref["per_class"]) == {0, 1, 2, 3} and set(ref["groups"]) == {"head", "mid", "tail"}
    np.testing.assert_allclose(ref["groups"]["mid"].mu, real[(real_y == 1) | (real_y == 2)].mean(0))
    a = longtail.lt_fid_breakdown(gen, gen_y, real, real_y, counts, n_head=1, n_tail=1)
    b = longtail.lt_fid_breakdown(gen, gen_y, None, None, counts, n_head=1, n_tail=1, reference=ref)
    for c in range(4):
        assert b["per_class"][c] == pytest.approx(a["per_class"][c], rel=1e-12)
    for g in ("head", "mid", "tail"):
        assert b["groups"][g]["union_fid"] == pytest.approx(a["groups"][g]["union_fid"], rel=1e-12)
    with pytest.raises(ValueError, match="class_reference_stats"):
        longtail.lt_fid_breakdown(gen, gen_y, None, None, [1, 2, 3], n_head=1, n_tail=1, reference=ref)
    with pytest.raises(ValueError, match="2 real images"):
        longtail.class_reference_stats(real[:51], real_y[:51], counts, n_head=1, n_tail=1)
