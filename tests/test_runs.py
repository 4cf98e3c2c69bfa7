"""Saved runs (lt_diffusion.experiments.runs): a chapter that loads an arm from CHECKPOINT_DIR gets the weights the
training run ended with, replays its chunk callback on the saved checkpoints at the same steps, and refuses a run of
another chapter, scale, arm, configuration or seed with a message that says what to do."""
import dataclasses
import json
import time

import pytest
import torch

from lt_diffusion.data import ImageDataset
from lt_diffusion.experiments import (Arm, ChapterPreset, DiffusionSpec, EvalSpec, SavedRunError, model_card,
                                      train_model, train_or_load, write_model_card)
from lt_diffusion.models import get_model_config
from lt_diffusion.train import TrainConfig

TINY = dataclasses.replace(get_model_config("smoke"), attention_resolutions=())
ARM = Arm("denoiser", TINY, TrainConfig(steps=4, batch_size=4, lr=1e-3, ema_rate=0.5, amp=False, log_every=1),
          diffusion=DiffusionSpec(steps=50))
PRESET = ChapterPreset(scale="smoke", arms={"baseline": ARM}, eval=EvalSpec(num_samples=2, sample_steps=2),
                       chapter="p2")


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                        torch.arange(n) % 10, [str(i) for i in range(10)])


def _save_run(root, preset=PRESET, name="baseline", seed=0, every=2):
    """What `lt-diffusion train` leaves: checkpoints every `every` steps and a model card."""
    folder = root / name
    arm = preset.arm(name)
    t0 = time.perf_counter()
    cfg_arm = dataclasses.replace(arm, train=dataclasses.replace(arm.train, ckpt_every=every))
    run = train_model(cfg_arm, seed=seed, device="cpu", data=_data(), ckpt_dir=str(folder))
    write_model_card(folder, model_card(preset.chapter, preset.scale, name, arm, run.trainer,
                                        time.perf_counter() - t0))
    return run


def _ema_tensors(module):
    return [p.detach().clone() for p in module.state_dict().values()]


def test_loaded_arm_equals_the_trained_one_and_replays_the_callback(tmp_path):
    trained = _save_run(tmp_path)
    seen_trained, seen_loaded = [], []

    def record(into):
        return lambda trainer: into.append((trainer.step, float(sum(p.detach().sum() for p in trainer.ema_model.parameters()))))

    again = train_or_load(PRESET, "baseline", seed=0, device="cpu", data=_data(), every=2,
                          on_chunk=record(seen_trained))
    loaded = train_or_load(PRESET, "baseline", checkpoint_dir=tmp_path, seed=0, device="cpu", every=2,
                           on_chunk=record(seen_loaded))
    assert loaded.trainer is None
    for a, b in zip(_ema_tensors(trained.ema), _ema_tensors(loaded.ema)):
        assert torch.equal(a, b)
    # the callback sees the same steps and the same EMA weights as a run that trains
    assert [s for s, _ in seen_loaded] == [2, 4] == [s for s, _ in seen_trained]
    assert seen_loaded == seen_trained
    timing = ("images_per_s", "elapsed_s")
    strip = lambda hist: [{k: v for k, v in h.items() if k not in timing} for h in hist]  # noqa: E731
    assert strip(loaded.history) == strip(again.history)


def test_saved_runs_of_something_else_are_refused(tmp_path):
    _save_run(tmp_path)
    with pytest.raises(SavedRunError, match="SEED 0"):
        train_or_load(PRESET, "baseline", checkpoint_dir=tmp_path, seed=1, device="cpu")
    other_scale = dataclasses.replace(PRESET, scale="book")
    with pytest.raises(SavedRunError, match="SCALE = 'book'"):
        train_or_load(other_scale, "baseline", checkpoint_dir=tmp_path, device="cpu")
    other_chapter = dataclasses.replace(PRESET, chapter="cbdm")
    with pytest.raises(SavedRunError, match="not arm 'baseline' of chapter 'cbdm'"):
        train_or_load(other_chapter, "baseline", checkpoint_dir=tmp_path, device="cpu")
    longer = dataclasses.replace(PRESET, arms={"baseline": dataclasses.replace(
        ARM, train=dataclasses.replace(ARM.train, lr=2e-3))})
    with pytest.raises(SavedRunError, match=r"train\.lr: saved 0\.001, chapter 0\.002"):
        train_or_load(longer, "baseline", checkpoint_dir=tmp_path, device="cpu")
    with pytest.raises(SavedRunError, match="no folder 'p2'"):
        train_or_load(dataclasses.replace(PRESET, arms={"p2": ARM}), "p2", checkpoint_dir=tmp_path, device="cpu")


def test_missing_or_unfinished_runs_say_what_to_do(tmp_path):
    _save_run(tmp_path, every=3)            # checkpoints at steps 3 and 4 only
    with pytest.raises(SavedRunError, match="--ckpt-every 2"):
        train_or_load(PRESET, "baseline", checkpoint_dir=tmp_path, device="cpu", every=2, on_chunk=lambda t: None)
    (tmp_path / "baseline" / "ckpt_0000004.pt").unlink()
    with pytest.raises(SavedRunError, match="--resume"):
        train_or_load(PRESET, "baseline", checkpoint_dir=tmp_path, device="cpu")
    (tmp_path / "baseline" / "model_card.json").write_text("{")
    with pytest.raises(SavedRunError, match="not valid JSON"):
        train_or_load(PRESET, "baseline", checkpoint_dir=tmp_path, device="cpu")


def test_model_card_records_what_was_trained(tmp_path):
    _save_run(tmp_path)
    card = json.loads((tmp_path / "baseline" / "model_card.json").read_text())
    assert card["chapter"] == "p2" and card["scale"] == "smoke" and card["arm"] == "baseline"
    assert card["steps"] == 4 and card["images_seen"] == 16 and card["seed"] == 0
    assert card["preset"]["train"]["lr"] == 1e-3 and "seed" not in card["preset"]["train"]
    assert card["precision"] == "fp32" and card["world_size"] == 1 and "loss" in card["last_losses"]
