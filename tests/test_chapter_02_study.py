"""Chapter 02's CIFAR-10 glue (lt_diffusion.experiments.improved_ddpm_study), on the smoke preset without training:
the sample-set keys, the loss-noise read-out and the paper-direction checks."""
import numpy as np
import pytest

from lt_diffusion.experiments import improved_ddpm_study as study
from lt_diffusion.presets import get_preset
from lt_diffusion.schedules import space_timesteps


@pytest.fixture(scope="module")
def P():
    return get_preset("improved_ddpm", "smoke")


def test_sample_sets_share_equal_keys_and_skip_nothing_at_f0(P):
    table, steps, skips = study.sample_sets(P)
    assert set(table) == set(P.arms)
    assert all(s[2] == tuple(sorted(space_timesteps(P.T, P.eval.sample_steps))) for s in table.values())
    # the learned variance at the table's step count is one set, drawn once
    if P.eval.sample_steps in P.step_sweep and P.sweep_samples == P.eval.num_samples:
        assert steps[("learned", P.eval.sample_steps)] == table["cosine_hybrid"]
        assert len(dict.fromkeys([*table.values(), *steps.values(), *skips.values()])) < (
            len(table) + len(steps) + len(skips))
    for key in P.skip_runs:
        assert skips[(key, 0.0)][2] == tuple(sorted(space_timesteps(P.T, P.skip_steps)))
        assert max(skips[(key, 0.5)][2]) < P.T // 2


def test_loss_noise_divides_the_hybrid_term_back_by_lambda(P):
    rng = np.random.default_rng(0)
    histories = {k: [{"step": i, "vb": float(v)} for i, v in enumerate(rng.uniform(1, 2, 40))] for k in P.noise_runs}
    histories["cosine_hybrid"] = [{"step": i, "vb": 0.001 * 3.0} for i in range(40)]
    curves, rows = study.loss_noise(P, histories)
    assert set(curves) == {P.arm("cosine_vlb_uniform").label, P.arm("cosine_vlb_is").label}
    hybrid = next(r for r in rows if r["run"] == P.arm("cosine_hybrid").label)
    assert hybrid["mean L_vlb estimate (bits/dim)"] == pytest.approx(3.0) and hybrid["std across steps"] < 1e-12
    uniform = next(r for r in rows if r["run"] == P.arm("cosine_vlb_uniform").label)
    tail = np.array([h["vb"] for h in histories["cosine_vlb_uniform"]])[20:]
    assert uniform["std / mean"] == pytest.approx(tail.std() / tail.mean())


def test_paper_directions_compare_the_right_numbers(P):
    bpd = {"linear_simple": 5.0, "linear_hybrid": 4.0, "cosine_simple": 4.5, "cosine_hybrid": 3.5,
           "cosine_vlb_is": 3.0, "cosine_vlb_uniform": 3.2}
    fid = {k: 100.0 for k in P.arms} | {"cosine_vlb_is": 200.0}
    noise = [{"run": P.arm(k).label, "std / mean": v} for k, v in
             (("cosine_vlb_uniform", 0.5), ("cosine_vlb_is", 0.2), ("cosine_hybrid", 0.4))]
    _, step_rows = study.step_study(P, {(n, K): (n, K) for n in P.step_arms for K in P.step_sweep},
                                    {(n, K): (float(K), None) for n in P.step_arms for K in P.step_sweep})
    skip_rows = [{"schedule": s, "skipped f": f, "FID": 10.0 + (f if s == "linear" else 5 * f)}
                 for s in ("linear", "cosine") for f in P.skip_fractions]
    checks = {c: (a, b) for c, a, b in study.paper_directions(P, bpd, fid, noise, skip_rows, step_rows)}
    assert checks["NLL: cosine < linear (L_simple)"] == (4.5, 5.0)
    assert checks["NLL: L_vlb + IS < L_vlb uniform"] == (3.0, 3.2)
    assert checks["loss noise (std/mean): IS < uniform"] == (0.2, 0.5)
    assert checks["FID: L_hybrid < L_vlb + IS (cosine)"] == (100.0, 200.0)
    skip = next(v for c, v in checks.items() if c.startswith("FID increase when skipping"))
    f = max(P.skip_fractions) if 0.2 not in P.skip_fractions else 0.2
    assert skip == pytest.approx((f, 5 * f))
