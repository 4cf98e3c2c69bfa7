"""Faults survived: training processes killed with SIGKILL (at random steps, and halfway through a checkpoint
write) resume from what is on disk and end bit-identical to an uninterrupted run; a run resumed in a fresh
process matches too, optimizer state included.

Child processes fork from a ``forkserver`` that has only imported the modules, so each one is a new process that
never held a trainer, without paying the interpreter start-up for every kill. The run (``train_toys``) is a
tiny UNet, 12 steps, a checkpoint every 3 steps and a history record every 2.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import time

import pytest
import torch

import train_toys
from lt_diffusion.train import latest_checkpoint
from train_toys import FAULT_CKPT_EVERY, FAULT_STEPS, TIMING_KEYS, fault_trainer

KILLED = -signal.SIGKILL


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)


@pytest.fixture(scope="module")
def ctx():
    context = mp.get_context("forkserver")
    # torch._dynamo: the first optimizer imports it (seconds); do it once in the server
    context.set_forkserver_preload(["torch", "torch._dynamo", "lt_diffusion.train", "lt_diffusion.models",
                                    "lt_diffusion.resample", "train_toys"])
    return context


def _child(ctx, ckpt_dir, mode: str, arg: int = 0, progress: str = ""):
    proc = ctx.Process(target=train_toys._child, args=(str(ckpt_dir), mode, arg, progress))
    proc.start()
    return proc


def _join(proc, timeout: float = 120.0) -> int:
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        pytest.fail("child training process hung")
    return proc.exitcode


def _step_on_disk(folder) -> int:
    path = latest_checkpoint(str(folder))
    return 0 if path is None else int(os.path.basename(path)[5:12])


def _temp_files(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(".tmp_ckpt_"))


def _assert_same(a, b, where: str = "") -> None:
    """Every tensor ``torch.equal``, every other value ``==``; ``history`` compared without its timing fields."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _assert_same_run(path_a: str, path_b: str) -> None:
    a = torch.load(path_a, map_location="cpu", weights_only=True)
    b = torch.load(path_b, map_location="cpu", weights_only=True)
    for key in ("step", "model", "ema", "optimizer", "rng", "data", "sampler", "model_config", "precision"):
        _assert_same(a[key], b[key], key)
    strip = lambda hist: [{k: v for k, v in rec.items() if k not in TIMING_KEYS} for rec in hist]  # noqa: E731
    _assert_same(strip(a["history"]), strip(b["history"]), "history")
    assert [r["step"] for r in a["history"]] == list(range(2, FAULT_STEPS + 1, 2))
    acc_a = {k: v for k, v in a["accumulators"].items() if not k.startswith("elapsed")}
    acc_b = {k: v for k, v in b["accumulators"].items() if not k.startswith("elapsed")}
    _assert_same(acc_a, acc_b, "accumulators")
    cfg_a = {k: v for k, v in a["config"].items() if k != "ckpt_dir"}
    cfg_b = {k: v for k, v in b["config"].items() if k != "ckpt_dir"}
    assert cfg_a == cfg_b


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in this process."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(1)
    trainer = fault_trainer(str(folder))
    trainer.run()
    return os.path.join(folder, f"ckpt_{FAULT_STEPS:07d}.pt")


def test_sigkilled_runs_resume_bit_identical(ctx, tmp_path, reference):
    """SIGKILL at a random step, then halfway through a checkpoint write, then from outside at a random
    moment; each time the next process resumes from the newest checkpoint on disk. The end state equals the
    uninterrupted run's: weights, EMA, optimizer, RNG, data position, sampler, logged history."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    info = f"(random seed {seed})"
    folder = tmp_path / "run"
    kills = []

    # 1. the process kills itself right after a random step (before that step's record / checkpoint)
    k1 = rng.randint(1, FAULT_STEPS - 1)
    assert _join(_child(ctx, folder, "kill-at", k1)) == KILLED, info
    kills.append(("after step", k1, _step_on_disk(folder)))
    # the checkpoint of step k1 itself would have been written after the step returned
    assert _step_on_disk(folder) == FAULT_CKPT_EVERY * ((k1 - 1) // FAULT_CKPT_EVERY), info

    # 2. killed halfway through writing a checkpoint: the half-written temporary file stays behind, the
    #    previous checkpoint is intact and is what the next process resumes from
    done = _step_on_disk(folder)
    s2 = rng.choice([s for s in range(FAULT_CKPT_EVERY, FAULT_STEPS + 1, FAULT_CKPT_EVERY) if s > done])
    assert _join(_child(ctx, folder, "kill-in-save", s2)) == KILLED, info
    assert _step_on_disk(folder) == s2 - FAULT_CKPT_EVERY, info
    assert len(_temp_files(folder)) == 1, info  # the orphan of the killed write
    kills.append(("writing checkpoint", s2, _step_on_disk(folder)))

    # 3. killed from outside at a random moment (maybe mid-step, maybe mid-write)
    done = _step_on_disk(folder)
    if done < FAULT_STEPS - 1:
        k3 = rng.randint(done + 1, FAULT_STEPS - 1)
        progress = str(tmp_path / "progress.json")
        proc = _child(ctx, folder, "slow", 0, progress)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.is_alive():
            try:
                with open(progress) as f:
                    if json.load(f)["step"] >= k3:
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        assert _join(proc) == KILLED, info
        kills.append(("from outside at about step", k3, _step_on_disk(folder)))

    # 4. the last process finishes the run
    assert _join(_child(ctx, folder, "finish")) == 0, info
    assert _temp_files(folder) == [], info  # orphans of killed writes were cleaned up on resume/save
    print("kills (where, step, resumed from):", kills, info)
    _assert_same_run(str(folder / f"ckpt_{FAULT_STEPS:07d}.pt"), reference)


def test_resume_in_fresh_process_matches_optimizer_state(ctx, tmp_path, reference):
    """Half the run here, the other half in a new process from the checkpoint: the optimizer's moments, the
    step counts and everything else equal the uninterrupted run's."""
    folder = tmp_path / "half"
    first = fault_trainer(str(folder), steps=FAULT_STEPS)
    first.run(5)  # mid-record (log every 2) and mid-interval (checkpoint every 3): the accumulators matter
    assert _step_on_disk(folder) == 5
    assert _join(_child(ctx, folder, "finish")) == 0
    state = torch.load(folder / f"ckpt_{FAULT_STEPS:07d}.pt", weights_only=True)
    assert state["optimizer"]["state"][0]["exp_avg"].abs().sum() > 0  # AdamW moments are there to compare
    _assert_same_run(str(folder / f"ckpt_{FAULT_STEPS:07d}.pt"), reference)
