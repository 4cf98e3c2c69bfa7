"""Sampling helpers (generate, to_uint8, npz / grid IO) and provenance records."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from lt_diffusion import provenance
from lt_diffusion.sampling import atomic_write, generate, load_npz, save_grid, save_npz, to_uint8


def _toy_sample_fn(calls=None):
    """Images whose pixels are noise from ``generator`` plus a label-dependent offset, in [-1, 1]."""

    def sample_fn(batch_size, labels, generator):
        if calls is not None:
            calls.append((batch_size, None if labels is None else labels.tolist()))
        x = torch.rand(batch_size, 3, 4, 4, generator=generator, device=generator.device) * 0.5 - 0.25
        if labels is not None:
            x = x + (labels.float().view(-1, 1, 1, 1) / 10)
        return x

    return sample_fn


def test_to_uint8_rounds_and_quantises():
    x = torch.tensor([-1.0, -1.2, 1.0, 1.5, 0.0, -1 + 1 / 127.5 * 0.49, -1 + 1 / 127.5 * 0.51]).view(1, 1, 1, 7)
    out = to_uint8(x)
    assert out.dtype == torch.uint8
    assert out.flatten().tolist() == [0, 0, 255, 255, 128, 0, 1]
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.tensor([float("nan")]).view(1, 1, 1, 1))
    with pytest.raises(ValueError, match="float"):
        to_uint8(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_generate_batches_labels_and_seed():
    calls = []
    labels = torch.arange(10) % 3
    out = generate(_toy_sample_fn(calls), 10, 4, labels=labels, seed=7, progress=False, device="cpu")
    assert out.shape == (10, 3, 4, 4) and out.dtype == torch.uint8 and out.device.type == "cpu"
    assert [c[0] for c in calls] == [4, 4, 2]
    assert sum((c[1] for c in calls), []) == labels.tolist()
    again = generate(_toy_sample_fn(), 10, 4, labels=labels, seed=7, progress=False, device="cpu")
    assert torch.equal(out, again)
    other = generate(_toy_sample_fn(), 10, 4, labels=labels, seed=8, progress=False, device="cpu")
    assert not torch.equal(out, other)
    # batch i uses seed + i: the second batch of a run equals the first batch of a run seeded one higher
    shifted = generate(_toy_sample_fn(), 4, 4, labels=labels[4:8], seed=8, progress=False, device="cpu")
    assert torch.equal(out[4:8], shifted)
    const = generate(_toy_sample_fn(calls), 3, 3, labels=2, progress=False, device="cpu")
    assert calls[-1] == (3, [2, 2, 2]) and const.shape[0] == 3


def test_generate_rejects_bad_sample_fn_and_labels():
    with pytest.raises(ValueError, match="sample_fn must return"):
        generate(lambda b, y, g: torch.zeros(b + 1, 3, 2, 2), 4, 2, progress=False, device="cpu")
    with pytest.raises(ValueError, match="labels has 3"):
        generate(_toy_sample_fn(), 4, 2, labels=torch.zeros(3, dtype=torch.long), progress=False, device="cpu")


def test_npz_roundtrip_atomic_and_nhwc(tmp_path):
    images = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4])
    path = save_npz(tmp_path / "s.npz", images, labels)
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temp files left
    got, got_labels = load_npz(path)
    assert torch.equal(got, images) and torch.equal(got_labels, labels)
    np.savez(tmp_path / "nhwc.npz", images=images.permute(0, 2, 3, 1).numpy())
    got, got_labels = load_npz(tmp_path / "nhwc.npz")
    assert torch.equal(got, images) and got_labels is None
    with pytest.raises(ValueError, match="uint8"):
        save_npz(tmp_path / "bad.npz", images.float())
    with pytest.raises(ValueError, match="labels has 2"):
        save_npz(tmp_path / "bad.npz", images, labels[:2])


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_save_grid(tmp_path):
    from PIL import Image

    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    p = save_grid(tmp_path / "g.png", images, nrow=3, padding=2)
    with Image.open(p) as im:
        assert im.size == (3 * 10 + 2, 2 * 10 + 2)
        grid = np.asarray(im)
    assert np.array_equal(grid[2:10, 2:10], images[0].permute(1, 2, 0).numpy())
    save_grid(tmp_path / "f.png", images.float() / 127.5 - 1, nrow=3)  # [-1, 1] input also accepted
    assert (tmp_path / "f.png").exists()


# --------------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------------
def test_record_fields_and_env_commit(monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_COMMIT", "abc123")
    monkeypatch.setenv("LT_DIFFUSION_DIRTY", "0")
    rec = provenance.record("smoke", [0, 1], 12.3456, extra={"fid": np.float64(3.5)})
    assert rec["commit"] == "abc123" and rec["dirty"] is False
    assert rec["scale"] == "smoke" and rec["seeds"] == [0, 1] and rec["wall_time_s"] == 12.346
    assert rec["torch"] == torch.__version__ and rec["python"].count(".") == 2
    assert rec["timestamp_utc"].endswith("+00:00") and rec["device"]
    table = provenance.provenance_table(rec)
    assert table.splitlines()[0] == "| | |" and "| commit | abc123 |" in table and "| seeds | 0, 1 |" in table
    with pytest.raises(ValueError, match="overwrite"):
        provenance.record("smoke", 0, 1.0, extra={"scale": "x"})


def test_git_state_in_checkout_and_outside(monkeypatch):
    monkeypatch.delenv("LT_DIFFUSION_COMMIT", raising=False)
    commit, dirty = provenance.git_state()
    assert commit == "unknown" or (len(commit) == 40 and dirty in (True, False))
    monkeypatch.setattr(provenance, "_git", lambda *a: None)  # as outside any checkout
    assert provenance.git_state() == ("unknown", None)


def test_stopwatch_start_run_and_save_results(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_ALLOW_CPU", "1")  # start_run("book") stops on a machine without CUDA
    with provenance.Stopwatch() as sw:
        sum(range(1000))
    frozen = sw.elapsed
    assert frozen >= 0 and sw.elapsed == frozen
    run = provenance.start_run("book", 3)
    rec = run.record({"note": "x"})
    assert rec["seeds"] == [3] and rec["wall_time_s"] >= 0 and rec["note"] == "x"
    path = provenance.save_results("ch1", {"fid": np.float32(2.5), "arr": np.arange(3), "t": torch.tensor([1.0]),
                                           "prov": rec}, folder=tmp_path / "results")
    data = json.loads(path.read_text())
    assert path.name == "ch1.json" and data["fid"] == 2.5 and data["arr"] == [0, 1, 2] and data["t"] == [1.0]
    assert os.listdir(tmp_path / "results") == ["ch1.json"]
    with pytest.raises(TypeError, match="cannot store"):
        provenance.save_results("ch2", {"x": object()}, folder=tmp_path / "results")
