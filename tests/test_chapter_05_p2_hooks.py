"""Chapters 05 and 06: the loss-hook glue (lt_diffusion.experiments.loss_hook_chapters) against the engine."""
import pytest

from lt_diffusion.experiments import loss_hook_chapters as ch
from lt_diffusion.lab.result import LabResult, claim
from lt_diffusion.presets import get_preset

P2 = get_preset("p2", "smoke")
CBDM = get_preset("cbdm", "smoke")
LT_COUNTS = [500, 300, 180, 100, 60, 40, 20, 14, 8, 5]


def test_arm_diff_names_only_the_hook_fields():
    diff = ch.arm_diff(P2.arm("baseline"), P2.arm("p2"), ("baseline", "P2")).splitlines()
    changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changed == ["-p2_gamma = 0.0", "+p2_gamma = 1.0"]
    assert ch.arm_diff(P2.arm("p2"), P2.arm("p2")) == ""
    cb = [line for line in ch.arm_diff(CBDM.arm("baseline"), CBDM.arm("cbdm")).splitlines()
          if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert cb == ["-cbdm_tau = 0.0", "+cbdm_tau = 1.0"]


def test_p2_loss_is_the_weight_times_the_baseline_mse():
    table, err = ch.loss_terms_check(P2.arm("baseline"), P2.arm("p2"), names=("baseline", "P2"))
    assert err < 1e-6
    rows = table.rows
    steps = P2.arm("p2").diffusion.steps
    assert [r["t"] for r in rows] == [0, 33, 66, steps - 1]
    for r in rows:
        # the baseline's loss is its ε-MSE; the same network and noise give P2 the same MSE, times the weight
        assert r["P2 loss"] == pytest.approx(r["P2 loss_weight"] * r["baseline loss"], rel=1e-5)
    assert rows[0]["P2 loss_weight"] < 2e-3 < rows[-1]["P2 loss_weight"]   # 1/(1 + SNR_t) grows with t


def test_cbdm_loss_adds_a_regulariser_that_vanishes_at_t0():
    table, err = ch.loss_terms_check(CBDM.arm("baseline"), CBDM.arm("cbdm"), class_counts=LT_COUNTS,
                                     names=("baseline", "CBDM"))
    assert err < 1e-6
    rows = table.rows
    assert rows[0]["CBDM reg"] == 0.0                       # weight τ t / T with t = 0
    assert all(r["CBDM reg"] > 0 for r in rows[1:])          # the random network depends on the label
    for r in rows:
        assert r["CBDM loss"] == pytest.approx(r["baseline loss"] + r["CBDM reg"], rel=1e-5)


def test_loss_terms_check_raises_when_the_identity_breaks(monkeypatch):
    from lt_diffusion.diffusion import GaussianDiffusion

    real = GaussianDiffusion.training_losses

    def off_by_one(self, *args, **kwargs):   # a hooked engine whose loss is no longer loss_weight · mse
        terms = real(self, *args, **kwargs)
        if self.loss_weight is not None:
            terms["loss"] = terms["loss"] + 1.0
        return terms

    monkeypatch.setattr(GaussianDiffusion, "training_losses", off_by_one)
    with pytest.raises(AssertionError, match="identity"):
        ch.loss_terms_check(P2.arm("baseline"), P2.arm("p2"))


def test_p2_tables_match_the_closed_forms():
    w = ch.p2_weight_table((1.0,), ts=(0, 999)).rows
    # linear schedule, T = 1000: β_1 = 1e-4, so SNR(0) = (1 - β_1) / β_1 and the γ = 1 factor is β_1
    assert w[0]["SNR(t)"] == pytest.approx((1 - 1e-4) / 1e-4, rel=1e-9)
    assert w[0]["P2 factor, γ = 1"] == pytest.approx(1e-4, rel=1e-6)
    assert w[1]["λ_t"] == pytest.approx((1 - 0.02) / 0.02, rel=1e-3)   # ᾱ_T ≈ 0: λ_T ≈ (1 - β_T) / β_T
    stages = ch.p2_stage_table().rows
    assert all(r["coarse steps"] + r["content steps"] + r["clean-up steps"] == 1000 for r in stages)
    res = {r["schedule"]: r for r in ch.p2_residual_table((0.0, 1.0, 3.0)).rows}
    assert res["linear"]["γ = 0"] < 0.01 and res["linear"]["γ = 3"] > 0.5   # the threshold argument of Eq. p2-residual
    assert res["cosine"]["γ = 1"] < res["cosine"]["γ = 3"]




def test_seed_dir_and_recipe_table():
    assert ch.seed_dir(None, 1) is None
    assert str(ch.seed_dir("runs/cbdm", 1)).endswith("seed1")
    t = ch.cbdm_recipe_table({"paper": get_preset("cbdm", "paper"), "smoke": CBDM})
    steps = next(r for r in t.rows if r["setting"] == "steps")
    assert steps["smoke"] == str(CBDM.arm("cbdm").train.steps)
