"""The trainer refuses bad input at the boundary and keeps no bad state.

Config values, the first batch (dtype, range, shape, labels), the loader's batch size, non-finite losses
(with the step and the last good checkpoint named, and no checkpoint of the diverged state), checkpoints of
another model or data set (refused whole, the trainer unchanged), unreadable or unsafe checkpoint files,
orphaned temporary files and file modes; the logged history does not depend on where a run is split; the
mixed-precision choice and the fp16 gradient scaler's exact resume.
"""
from __future__ import annotations

import os
import stat

import pytest
import torch

from lt_diffusion import train as train_mod
from lt_diffusion.data import GPUBatchLoader, ImageDataset
from lt_diffusion.train import (CheckpointError, NonFiniteLossError, Trainer, check_batch, latest_checkpoint,
                                select_precision)
from train_toys import TIMING_KEYS, StandInDiffusion, ToyData, cfg, tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)


class ListData:
    """Serves the given batches, then repeats the last one (no batch_size attribute, no state)."""

    def __init__(self, batches):
        self.batches, self.i = list(batches), 0

    def __iter__(self):
        return self

    def __next__(self):
        b = self.batches[min(self.i, len(self.batches) - 1)]
        self.i += 1
        return b


def _toy_batch(n=16, size=8, classes=4):
    x = torch.rand(n, 3, size, size) * 2 - 1
    return x, torch.arange(n) % classes


def _flat(module):
    return torch.cat([v.detach().flatten().float() for v in module.state_dict().values()])


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("steps", -1), ("steps", 0), ("lr", -1.0), ("lr", float("nan")), ("lr", 0.0),
    ("weight_decay", -0.1), ("warmup_steps", -5), ("grad_clip", 0.0), ("ema_rate", 1.5), ("log_every", 0),
    ("ckpt_every", -1), ("betas", (0.9,)), ("betas", (0.9, 1.0)), ("momentum", 1.0), ("num_classes", 0),
    ("steps", 2.5), ("batch_size", True), ("schedule_sampler", "lossaware"), ("data_range", (1.0, -1.0)),
])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        cfg(**{field: value})


# ---------------------------------------------------------------------------------------------- first batch
@pytest.mark.parametrize("make, match", [
    (lambda: (torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8), torch.arange(16) % 4), "to_model_range"),
    (lambda: (torch.rand(16, 3, 8, 8) * 255, torch.arange(16) % 4), r"\[0, 255\] pixels: map them with x / 127.5 - 1"),
    (lambda: (torch.rand(16, 3, 7, 7) * 2 - 1, torch.arange(16) % 4), r"model expects \(B, 3, 8, 8\)"),
    (lambda: (torch.rand(16, 3, 16, 16) * 2 - 1, torch.arange(16) % 4), r"model expects \(B, 3, 8, 8\)"),
    (lambda: (torch.rand(16, 8, 8, 3) * 2 - 1, torch.arange(16) % 4), "NHWC"),
    (lambda: (torch.rand(16, 3, 8, 8).index_put_((torch.tensor([3]),), torch.tensor(float("nan"))),
              torch.arange(16) % 4), "non-finite"),
    (lambda: (torch.rand(16, 3, 8, 8), (torch.arange(16) % 4).float()), "integer"),
    (lambda: (torch.rand(16, 3, 8, 8), torch.arange(8)), r"shape \(16,\)"),
    (lambda: (torch.rand(16, 3, 8, 8), torch.arange(16) % 5), r"null label"),   # label 4 = the null label
    (lambda: (torch.rand(16, 3, 8, 8), torch.arange(16) % 10), r"labels lie in \[0, 9\].*4 classes"),
    (lambda: (torch.rand(16, 3, 8, 8), -(torch.arange(16) % 4)), r"labels lie in \[-3, 0\]"),
    (lambda: (torch.rand(8, 3, 8, 8), torch.arange(8) % 4), "batches of 8 but TrainConfig.batch_size is 16"),
])
def test_first_batch_is_refused_before_any_update(make, match):
    model = tiny_model()
    before = _flat(model).clone()
    trainer = Trainer(model, StandInDiffusion(), ListData([make()]), cfg(steps=3))
    with pytest.raises(ValueError, match=match):
        trainer.run()
    assert trainer.step == 0 and torch.equal(_flat(trainer.model), before)


def test_later_batches_checked_for_size_and_dtype():
    good = _toy_batch()
    trainer = Trainer(tiny_model(), StandInDiffusion(), ListData([good, good, _toy_batch(n=7)]), cfg(steps=5))
    with pytest.raises(ValueError, match="batches of 7"):
        trainer.run()
    assert trainer.step == 2


def test_vector_data_without_image_config_is_not_taken_for_images():
    """A model without an image config (an MLP on (B, D) vectors) gets the generic checks only."""
    net = torch.nn.Linear(5, 5)

    class VectorObjective:
        num_timesteps = 10

        def training_losses(self, model, x, t, model_kwargs=None):
            return {"loss": (model(x) - x).square().mean(1)}

    x = torch.randn(16, 5) * 3  # not in [-1, 1]: the range is the config's to state for such data
    with pytest.raises(ValueError, match=r"expected range is \[-1, 1\].*data_range"):
        Trainer(net, VectorObjective(), ListData([x]), cfg(steps=2)).run()
    hist = Trainer(net, VectorObjective(), ListData([x]), cfg(steps=2, data_range=None)).run()
    assert len(hist) == 2
    check_batch(x, None, data_range=None)  # the generic check alone


def test_uint8_refused_by_model_forward_too():
    model = tiny_model()
    with pytest.raises(ValueError, match="to_model_range"):
        model(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2))


# ---------------------------------------------------------------------------------------------- labels / classes
def test_config_num_classes_must_match_the_model():
    with pytest.raises(ValueError, match=r"num_classes=5.*4 classes.*null label"):
        Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(num_classes=5))
    with pytest.raises(ValueError, match="unconditional"):
        Trainer(tiny_model(num_classes=None), StandInDiffusion(), ToyData(), cfg(num_classes=4))
    Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(num_classes=4))  # agreeing is fine


def test_loader_batch_size_must_match_and_throughput_uses_real_batch():
    with pytest.raises(ValueError, match="batch_size is 32 but TrainConfig.batch_size is 16"):
        Trainer(tiny_model(), StandInDiffusion(), ToyData(batch_size=32), cfg())
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(batch_size=16), cfg(steps=4, log_every=4))
    rec = trainer.run()[-1]
    assert rec["images_per_s"] * rec["elapsed_s"] == pytest.approx(4 * 16, rel=1e-6)


# ---------------------------------------------------------------------------------------------- non-finite
def test_nan_in_a_later_batch_stops_with_step_and_last_good_checkpoint(tmp_path):
    good, bad = _toy_batch(), _toy_batch()
    bad[0][2, 0, 0, 0] = float("nan")
    data = ListData([good, good, good, good, bad])
    trainer = Trainer(tiny_model(), StandInDiffusion(), data, cfg(steps=10, ckpt_dir=str(tmp_path), ckpt_every=2))
    with pytest.raises(NonFiniteLossError, match=r"step 5 .*ckpt_0000004\.pt") as info:
        trainer.run()
    assert info.value.step == 5
    assert sorted(os.listdir(tmp_path)) == ["ckpt_0000002.pt", "ckpt_0000004.pt"]
    with pytest.raises(NonFiniteLossError):  # the trainer stays stopped
        trainer.save_checkpoint(str(tmp_path / "after.pt"))
    assert not (tmp_path / "after.pt").exists()
    resumed = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=10))
    resumed.load_checkpoint(str(tmp_path / "ckpt_0000004.pt"))
    assert resumed.step == 4 and torch.isfinite(_flat(resumed.model)).all()


def test_huge_lr_diverges_and_no_nonfinite_checkpoint_is_written(tmp_path):
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(),
                      cfg(steps=50, lr=1e6, ckpt_dir=str(tmp_path), ckpt_every=1, log_every=1))
    with pytest.raises(NonFiniteLossError, match="lower TrainConfig.lr"):
        trainer.run()
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.history)
    for name in os.listdir(tmp_path):
        state = torch.load(tmp_path / name, weights_only=True)
        for key in ("model", "ema"):
            assert all(torch.isfinite(v).all() for v in state[key].values() if v.is_floating_point()), name


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_another_model_config_is_refused_listing_fields(tmp_path):
    src = Trainer(tiny_model(num_heads=2), StandInDiffusion(), ToyData(), cfg(steps=2))
    src.run()
    src.save_checkpoint(str(tmp_path / "c.pt"))
    dst = Trainer(tiny_model(num_heads=4, seed=1), StandInDiffusion(), ToyData(), cfg(steps=2))
    before = _flat(dst.model).clone()
    with pytest.raises(CheckpointError, match=r"num_heads: checkpoint 2, model 4"):
        dst.load_checkpoint(str(tmp_path / "c.pt"))
    assert dst.step == 0 and torch.equal(_flat(dst.model), before)
    other = Trainer(tiny_model(model_channels=8), StandInDiffusion(), ToyData(), cfg(steps=2))
    with pytest.raises(CheckpointError, match=r"(?s)model_channels: checkpoint 16, model 8.*shape.*more tensors"):
        other.load_checkpoint(str(tmp_path / "c.pt"))


def _loader_trainer(n_images, seed=0, steps=3):
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(torch.randint(0, 256, (n_images, 3, 8, 8), dtype=torch.uint8, generator=g),
                      torch.arange(n_images) % 4, ["a", "b", "c", "d"])
    return Trainer(tiny_model(seed=seed), StandInDiffusion(), GPUBatchLoader(ds, 16, seed=seed), cfg(steps=steps))


def test_failed_load_leaves_the_trainer_unchanged(tmp_path):
    """The data loader refuses the checkpoint's position (another data set size): nothing else may have moved."""
    src = _loader_trainer(64)
    src.run()
    src.save_checkpoint(str(tmp_path / "c.pt"))
    dst = _loader_trainer(32, seed=1)
    dst.run(1)
    snap = {"model": _flat(dst.model).clone(), "ema": _flat(dst.ema).clone(), "step": dst.step,
            "opt": [t.clone() for s in dst.optimizer.state.values() for t in s.values() if torch.is_tensor(t)],
            "data": dst.data.state_dict(), "history": list(dst.history), "rng": torch.get_rng_state()}
    with pytest.raises(CheckpointError, match="(?s)data-loader or sampler state does not fit.*nothing was loaded"):
        dst.load_checkpoint(str(tmp_path / "c.pt"))
    assert dst.step == snap["step"] and dst.history == snap["history"]
    assert torch.equal(_flat(dst.model), snap["model"]) and torch.equal(_flat(dst.ema), snap["ema"])
    opt_now = [t for s in dst.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    assert all(torch.equal(a, b) for a, b in zip(opt_now, snap["opt"]))
    data_now = dst.data.state_dict()
    assert data_now["position"] == snap["data"]["position"] and torch.equal(data_now["perm"], snap["data"]["perm"])
    assert torch.equal(torch.get_rng_state(), snap["rng"])
    dst.run()  # and it still trains
    assert dst.step == 3


def test_unreadable_and_unsafe_checkpoint_files(tmp_path):
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=1))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: empty file"):
        trainer.load_checkpoint(str(empty))
    trainer.run()
    good = tmp_path / "good.pt"
    trainer.save_checkpoint(str(good))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.pt: truncated or corrupt"):
        trainer.load_checkpoint(str(cut))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        trainer.load_checkpoint(str(junk))
    weights = tmp_path / "weights.pt"
    torch.save(trainer.model.state_dict(), weights)
    with pytest.raises(CheckpointError, match="not a trainer checkpoint"):
        trainer.load_checkpoint(str(weights))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        trainer.load_checkpoint(str(tmp_path / "missing.pt"))

    canary = tmp_path / "canary"
    canary.write_text("still here")

    class Payload:
        def __reduce__(self):
            return (os.remove, (str(canary),))

    evil = tmp_path / "evil.pt"
    torch.save({"format": 2, "step": 1, "model": Payload(), "ema": {}, "optimizer": {}, "rng": []}, evil)
    with pytest.raises(CheckpointError, match=r"refused.*GLOBAL posix\.remove"):
        trainer.load_checkpoint(str(evil))
    assert canary.read_text() == "still here"  # the payload never ran
    assert trainer.step == 1


def test_orphan_temp_files_removed_and_checkpoint_mode(tmp_path):
    dead = tmp_path / ".tmp_ckpt_999999999_abc.pt"  # no such process
    dead.write_bytes(b"half a checkpoint")
    live = tmp_path / f".tmp_ckpt_{os.getppid()}_def.pt"  # a live process's write in progress
    live.write_bytes(b"being written")
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=1, ckpt_dir=str(tmp_path)))
    trainer.run()
    assert not dead.exists() and live.exists()
    path = latest_checkpoint(str(tmp_path))
    assert path.endswith("ckpt_0000001.pt")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_history_does_not_depend_on_where_the_run_is_split(tmp_path):
    kw = dict(steps=7, log_every=3, grad_clip=1.0, schedule_sampler="loss-second-moment")
    straight = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(**kw))
    straight.run()
    split = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(**kw))
    split.run(2)
    split.run(2)  # stopped at step 4: one step into the second record's window
    split.save_checkpoint(str(tmp_path / "c.pt"))
    resumed = Trainer(tiny_model(seed=7), StandInDiffusion(), ToyData(), cfg(**kw))
    resumed.load_checkpoint(str(tmp_path / "c.pt"))
    resumed.run()
    strip = lambda h: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in h]  # noqa: E731
    assert [r["step"] for r in straight.history] == [3, 6, 7]
    assert strip(resumed.history) == strip(straight.history)


# ---------------------------------------------------------------------------------------------- precision
def test_precision_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, bf16, expected in [((7, 5), True, "fp16"), ((7, 0), False, "fp16"), ((8, 0), True, "bf16"),
                                       ((9, 0), True, "bf16"), ((8, 6), False, "fp16")]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, b=bf16: b)
        assert select_precision(True, "cuda:0") == expected, capability
        assert select_precision(False, "cuda:0") == "fp32"
    assert select_precision(True, "cpu") == "fp32"
    monkeypatch.undo()  # no GPU here: train on the CPU for real
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=1))
    assert trainer.precision == "fp32" and trainer.scaler is None
    assert trainer.run()[-1]["precision"] == "fp32"  # recorded for provenance


def test_fp16_scaler_state_resumes_exactly(tmp_path, monkeypatch):
    """The fp16 path (autocast + GradScaler), exercised on the CPU: scaler state in the checkpoint, exact resume."""
    monkeypatch.setattr(train_mod, "select_precision", lambda amp, device: "fp16")
    c = cfg(steps=4, grad_clip=1.0, log_every=2)
    straight = Trainer(tiny_model(), StandInDiffusion(), ToyData(), c)
    assert straight.precision == "fp16" and straight.scaler is not None
    straight.run()
    first = Trainer(tiny_model(), StandInDiffusion(), ToyData(), c)
    first.run(2)
    first.save_checkpoint(str(tmp_path / "c.pt"))
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["precision"] == "fp16" and state["scaler"]["scale"] == first.scaler.get_scale()
    resumed = Trainer(tiny_model(seed=3), StandInDiffusion(), ToyData(), c)
    resumed.load_checkpoint(str(tmp_path / "c.pt"))
    resumed.run()
    assert torch.equal(_flat(resumed.model), _flat(straight.model))
    assert torch.equal(_flat(resumed.ema), _flat(straight.ema))
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert {h["precision"] for h in resumed.history} == {"fp16"}
