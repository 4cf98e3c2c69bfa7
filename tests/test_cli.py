"""The ``lt-diffusion`` command: train (1 process and 2 processes under torchrun, interrupted and resumed), the
folder a chapter's ``train_or_load`` reads, sample / evaluate, the one-line errors, and the cost table of the
"Running the chapters" page."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lt_diffusion import cli
from lt_diffusion.experiments.runs import SavedRunError, read_model_card, train_or_load
from lt_diffusion.presets import get_preset

REPO = Path(__file__).resolve().parent.parent


def _tiny_preset(steps: int = 3):
    """The smoke preset of chapter 01 with a 3-step arm (the real smoke arm trains 40 steps)."""
    p = get_preset("ddpm", "smoke")
    arm = p.arms["ddpm"]
    return dataclasses.replace(p, arms={"ddpm": dataclasses.replace(arm, train=dataclasses.replace(arm.train,
                                                                                                 steps=steps))})


@pytest.fixture
def tiny(monkeypatch):
    """Every `get_preset("ddpm", "smoke")` in this process returns the 3-step preset."""
    real = get_preset
    preset = _tiny_preset()
    monkeypatch.setattr("lt_diffusion.presets.get_preset",
                        lambda ch, sc: preset if (ch, sc) == ("ddpm", "smoke") else real(ch, sc))
    return preset


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_the_folder_train_or_load_reads(tiny, tmp_path, capsys, assets_dir):
    code, out, err = _run(["train", "ddpm", "--scale", "smoke", "--out", str(tmp_path), "--ckpt-every", "1",
                           "--device", "cpu"], capsys)
    assert code == 0, err
    folder = tmp_path / "ddpm"
    assert sorted(p.name for p in folder.glob("ckpt_*.pt")) == [f"ckpt_000000{i}.pt" for i in (1, 2, 3)]
    card = read_model_card(folder)
    assert (card["chapter"], card["scale"], card["arm"], card["kind"]) == ("ddpm", "smoke", "ddpm", "denoiser")
    assert card["steps"] == 3 and card["images_seen"] == 3 * 16 and card["world_size"] == 1
    assert card["precision"] == "fp32" and card["complete"] and card["steps_override"] is False
    assert card["preset"]["train"]["steps"] == 3 and card["wall_s"] > 0 and np.isfinite(card["last_losses"]["loss"])
    assert card["command"].startswith("lt-diffusion train ddpm")
    # train_or_load loads it without training, and calls the chunk callback on the saved checkpoints
    seen = []
    run = train_or_load(tiny, "ddpm", checkpoint_dir=tmp_path, seed=0, device="cpu", every=1,
                        on_chunk=lambda tr: seen.append(tr.step))
    assert run.trainer is None and seen == [1, 2, 3]
    saved = torch.load(folder / "ckpt_0000003.pt", weights_only=True)
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, saved["model"][k]), k
    # it is the same model the chapter would have trained itself (one process, same seed)
    trained = train_or_load(tiny, "ddpm", checkpoint_dir=None, seed=0, device="cpu")
    for k, v in trained.model.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # another seed is refused by the chapter
    with pytest.raises(SavedRunError, match="seed"):
        train_or_load(tiny, "ddpm", checkpoint_dir=tmp_path, seed=1, device="cpu")
    # a second `train` into the same folder without --resume is refused; --resume of a finished run trains nothing
    code, _, err = _run(["train", "ddpm", "--scale", "smoke", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1


def test_steps_override_is_recorded_and_refused_by_the_chapter(tiny, tmp_path, capsys, assets_dir):
    code, _, err = _run(["train", "ddpm", "--scale", "smoke", "--out", str(tmp_path), "--steps", "1",
                         "--device", "cpu"], capsys)
    assert code == 0, err
    card = read_model_card(tmp_path / "ddpm")
    assert card["steps"] == 1 and card["steps_override"] is True and card["preset"]["train"]["steps"] == 1
    with pytest.raises(SavedRunError, match="train.steps: saved 1, chapter 3"):
        train_or_load(tiny, "ddpm", checkpoint_dir=tmp_path, seed=0, device="cpu")


def _torchrun(args, env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lt_diffusion", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_torchrun_two_processes_interrupted_and_resumed_equal_one_process(tmp_path, capsys, assets_dir):
    """`torchrun --nproc_per_node 2` (gloo on CPU) trains 2 steps, is resumed to 4 steps in micro-batches of 4 (two
    per process and step), and ends with the weights of one process training 4 steps on the whole global batch
    (16), to 1e-5 (float32 on CPU; observed ~5e-7: only the summation order of the gradient differs)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    t0 = time.perf_counter()
    out = _torchrun(["train", "ddpm", "--scale", "smoke", "--out", str(ddp), "--steps", "2", "--ckpt-every", "1",
                     "--device", "cpu"], env)
    assert "on 2 process(es)" in out and out.count("from scratch") == 1  # rank 0 alone prints
    card = read_model_card(ddp / "ddpm")
    assert card["world_size"] == 2 and card["steps"] == 2 and card["images_seen"] == 32
    out = _torchrun(["train", "ddpm", "--scale", "smoke", "--out", str(ddp), "--steps", "4", "--ckpt-every", "1",
                     "--resume", "--microbatch", "4", "--device", "cpu"], env)
    wall = time.perf_counter() - t0
    print(f"torchrun: 2 + 2 steps on 2 processes in {wall:.1f} s")
    assert "resuming from ckpt_0000002.pt" in out
    card = read_model_card(ddp / "ddpm")
    assert card["steps"] == 4 and card["world_size"] == 2 and card["complete"] and card["microbatch"] == 4
    assert "micro-batch 4" in out
    assert cli.main(["train", "ddpm", "--scale", "smoke", "--out", str(single), "--steps", "4",
                     "--device", "cpu"]) == 0
    a = torch.load(ddp / "ddpm" / "ckpt_0000004.pt", weights_only=True)
    b = torch.load(single / "ddpm" / "ckpt_0000004.pt", weights_only=True)
    init = torch.load(ddp / "ddpm" / "ckpt_0000001.pt", weights_only=True)
    moved = max((b["model"][k] - init["model"][k]).abs().max().item() for k in b["model"])
    assert moved > 1e-4  # the steps after the first checkpoint did change the weights
    for part in ("model", "ema"):
        for k, v in b[part].items():
            if v.is_floating_point():
                torch.testing.assert_close(a[part][k], v, rtol=0, atol=1e-5, msg=f"{part}.{k}")
    assert [h["step"] for h in a["history"]] == [h["step"] for h in b["history"]]
    np.testing.assert_allclose([h["loss"] for h in a["history"]], [h["loss"] for h in b["history"]], rtol=1e-5)


def _fake_features(images, **kwargs):
    """A stand-in for Inception features in the evaluate test: a fixed projection of 8x8 pooled pixels (64-d)."""
    x = torch.as_tensor(images).float() / 255.0
    x = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)            # (N, 48)
    proj = torch.Generator().manual_seed(0)
    w = torch.randn(x.shape[1], 64, generator=proj)
    return (x @ w).double().numpy()


def test_sample_and_evaluate_round_trip(tmp_path, capsys, monkeypatch, assets_dir):
    # a tiny class-conditional checkpoint: chapter 04's smoke arm, 1 step
    p = get_preset("cfg", "smoke")
    name = next(n for n, a in p.arms.items() if a.kind == "denoiser" and a.train.p_uncond > 0)
    code, _, err = _run(["train", "cfg", "--arm", name, "--scale", "smoke", "--out", str(tmp_path), "--steps", "1",
                         "--device", "cpu"], capsys)
    assert code == 0, err
    npz = tmp_path / "s.npz"
    code, out, err = _run(["sample", str(tmp_path / name), "--num", "5", "--steps", "2", "--batch-size", "2",
                           "--guidance-scale", "1.0", "--classes", "3", "7", "--out", str(npz), "--device", "cpu"],
                          capsys)
    assert code == 0, err
    with np.load(npz) as f:
        images, labels = f["images"], f["labels"]
    assert images.dtype == np.uint8 and images.shape == (5, 3, 32, 32)
    assert labels.tolist() == [3, 7, 3, 7, 3]
    # the same seed gives the same file, from the arm folder or its checkpoint file
    again = tmp_path / "again.npz"
    assert cli.main(["sample", str(tmp_path / name / "ckpt_0000001.pt"), "--num", "5", "--steps", "2",
                     "--batch-size", "2", "--guidance-scale", "1.0", "--classes", "3", "7", "--out", str(again),
                     "--device", "cpu"]) == 0
    with np.load(again) as f:
        assert np.array_equal(f["images"], images)
    capsys.readouterr()
    monkeypatch.setattr("lt_diffusion.metrics.compute_features", _fake_features)
    report = tmp_path / "e.json"
    code, out, err = _run(["evaluate", str(npz), "--ref", "cifar10-train", "--ref-per-class", "3", "--out",
                           str(report), "--device", "cpu"], capsys)
    assert code == 0, err
    scores = json.loads(report.read_text())
    assert json.loads(out) == scores
    assert scores["num_samples"] == 5 and scores["reference_images"] == 30
    for key in ("FID", "KID_x1e3", "precision", "recall"):
        assert np.isfinite(scores[key]), key
    assert scores["FID"] > 0 and 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
    assert "per_class_FID" not in scores and "fewer than 2 samples" in scores["per_class_note"]
    # with two samples of every class the per-class FID is there (10 classes)
    labelled = tmp_path / "lab.npz"
    rng = np.random.default_rng(0)
    np.savez(labelled, images=rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8),
             labels=np.repeat(np.arange(10), 2))
    code, out, err = _run(["evaluate", str(labelled), "--ref", "cifar10-lt", "--ref-per-class", "200",
                           "--device", "cpu"], capsys)
    assert code == 0, err
    scores = json.loads(out)
    assert sorted(scores["per_class_FID"], key=int) == [str(c) for c in range(10)]
    assert set(scores["group_FID"]) == {"head", "mid", "tail"} and "CIFAR-10-LT" in scores["reference"]


@pytest.mark.parametrize("argv, message", [
    (["train", "ddmp", "--scale", "smoke", "--out", "{tmp}"], "unknown chapter 'ddmp'"),
    (["train", "ddpm", "--scale", "huge", "--out", "{tmp}"], "unknown scale 'huge'"),
    (["train", "ddpm", "--arm", "nope", "--scale", "smoke", "--out", "{tmp}"], "has no arm 'nope'"),
    (["train", "ddpm", "--scale", "smoke", "--out", "{tmp}", "--resume"], "nothing to resume"),
    (["train", "ddpm", "--scale", "smoke", "--out", "{tmp}", "--steps", "0"], "--steps must be a positive"),
    (["train", "ddpm", "--scale", "smoke", "--out", "{tmp}", "--microbatch", "5"],
     "--microbatch 5 does not divide arm 'ddpm'"),
    (["train", "diffusion_inversion", "--arm", "classifier", "--scale", "smoke", "--out", "{tmp}"],
     "makes from arm 'generator'"),
    (["train", "ddpm", "--out", "{tmp}"], "the following arguments are required: --scale"),
    (["sample", "{tmp}/missing", "--num", "2", "--steps", "2", "--out", "{tmp}/s.npz"], "no such checkpoint"),
    (["evaluate", "{tmp}/missing.npz", "--ref", "cifar10-train"], "no such sample file"),
    (["evaluate", "{tmp}/missing.npz", "--ref", "imagenet"], "unknown reference 'imagenet'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, out, err = _run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lt-diffusion: error:") and message in lines[0], err
    assert "Traceback" not in err


def test_a_folder_of_another_chapter_or_checkpoint_is_refused(tiny, tmp_path, capsys, assets_dir):
    assert cli.main(["train", "ddpm", "--scale", "smoke", "--out", str(tmp_path / "runs"), "--steps", "1",
                     "--device", "cpu"]) == 0
    capsys.readouterr()
    # the folder of chapter 01 is not chapter 05's
    code, _, err = _run(["train", "p2", "--scale", "smoke", "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and "holds runs of chapter 'ddpm'" in err and len(err.strip().splitlines()) == 1
    # an arm folder whose card names another chapter / scale
    folder = tmp_path / "runs" / "ddpm"
    card = json.loads((folder / "model_card.json").read_text())
    shutil.copytree(folder, tmp_path / "other" / "ddpm")
    (tmp_path / "other" / "ddpm" / "model_card.json").write_text(json.dumps({**card, "scale": "book"}))
    code, _, err = _run(["train", "ddpm", "--scale", "smoke", "--out", str(tmp_path / "other"), "--resume"], capsys)
    assert code == 2 and "not at scale 'smoke'" in err
    # a checkpoint whose card names an arm the chapter does not have
    (tmp_path / "other" / "ddpm" / "model_card.json").write_text(json.dumps({**card, "arm": "ghost"}))
    code, _, err = _run(["sample", str(tmp_path / "other" / "ddpm"), "--num", "2", "--steps", "2", "--out",
                         str(tmp_path / "s.npz")], capsys)
    assert code == 2 and "arm 'ghost'" in err
    # a checkpoint of another model under this chapter's card
    cfg = next(n for n, a in get_preset("cfg", "smoke").arms.items() if a.kind == "denoiser")  # class-conditional
    (tmp_path / "other" / "ddpm" / "model_card.json").write_text(json.dumps({**card, "chapter": "cfg", "arm": cfg}))
    code, _, err = _run(["sample", str(tmp_path / "other" / "ddpm"), "--num", "2", "--steps", "2", "--out",
                         str(tmp_path / "s.npz"), "--device", "cpu"], capsys)
    assert code == 2 and f"does not fit cfg/{cfg}" in err and len(err.strip().splitlines()) == 1


def test_python_m_and_console_script_are_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^lt-diffusion = "lt_diffusion\.cli:main"$', text, re.M)
    proc = subprocess.run([sys.executable, "-m", "lt_diffusion", "train", "nope", "--scale", "smoke", "--out", "x"],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"lt-diffusion: error: unknown chapter 'nope'; known chapters: {sorted(cli.NOTEBOOKS)}"]


def test_colab_keeps_its_torch():
    """pyproject's torch / torchvision are lower bounds (any Colab build satisfies them); the exact versions live
    in constraints.txt only."""
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    for pkg in ("torch", "torchvision"):
        spec = re.search(rf'"{pkg}([^"]*)"', deps).group(1)
        assert spec.startswith(">=") and "<" not in spec and "==" not in spec, (pkg, spec)
    assert re.search(r"^torch==", (REPO / "constraints.txt").read_text(), re.M)


def test_model_card_records_fp16_precision():
    from lt_diffusion.experiments.runs import model_card

    class FakeTrainer:
        step, precision, world_size, history = 5, "fp16", 2, [{"loss": 0.5}]
        config = get_preset("ddpm", "smoke").arms["ddpm"].train

    card = model_card("ddpm", "smoke", "ddpm", get_preset("ddpm", "smoke").arms["ddpm"], FakeTrainer(), 1.0)
    assert card["precision"] == "fp16" and card["world_size"] == 2 and card["images_seen"] == 5 * 16


def _block(page: str, marker: str) -> str:
    block = re.search(rf"<!-- {marker}: start -->\n(.*?)\n<!-- {marker}: end -->", page, re.S)
    assert block is not None, f"book/running.md lacks the generated block {marker!r}"
    return block.group(1).strip()


STALE = "stale: regenerate with python -c 'from lt_diffusion.cli import update_running_page; update_running_page()'"


def test_running_page_tables_are_the_functions_output():
    page = (REPO / "book" / "running.md").read_text()
    assert _block(page, "cost-table") == cli.cost_table_markdown("paper").strip(), STALE
    assert _block(page, "commands") == cli.commands_markdown("paper").strip(), STALE
    for chapter in cli.NOTEBOOKS:
        for command in cli.reproduce_commands(chapter):
            assert command in page, command
    readme = (REPO / "README.md").read_text()
    assert cli.reproduce_commands("p2")[0] in readme and cli.reproduce_commands("p2")[1] in readme
    rows = cli.cost_table_rows("paper")
    assert [r["chapter"] for r in rows] == list(cli.NOTEBOOKS) and all(r["total (GPU-h)"] > 1 for r in rows)


def test_train_or_load_trains_an_arm_made_from_another_arms_output(tmp_path, monkeypatch):
    """An arm whose data the chapter makes (``data.from_arm``) has no folder from `lt-diffusion train`: with
    CHECKPOINT_DIR set, train_or_load trains it from ``data=`` instead of refusing."""
    p = get_preset("diffusion_inversion", "smoke")
    name = next(n for n, a in p.arms.items() if a.data.from_arm is not None)
    calls = []
    monkeypatch.setattr("lt_diffusion.experiments.training.train_model",
                        lambda arm, **kw: calls.append((arm, kw)) or "trained")
    assert train_or_load(p, name, checkpoint_dir=tmp_path, seed=0, data="DATA") == "trained"
    assert calls[0][0] is p.arms[name] and calls[0][1]["data"] == "DATA"
    with pytest.raises(SavedRunError, match="has no folder"):  # an arm the command trains is still required
        train_or_load(p, p.arms[name].data.from_arm, checkpoint_dir=tmp_path, seed=0)


@pytest.mark.slow
def test_running_page_memory_table_is_the_functions_output():
    """The memory estimate of the `book` presets (one float32 forward pass at batch 2 per distinct model), and the
    micro-batch that brings every one of them into 80% of a 15 GB GPU."""
    from lt_diffusion.experiments.memory import GPU_FRACTION, memory_rows, memory_table_markdown

    page = (REPO / "book" / "running.md").read_text()
    assert _block(page, "memory-table") == memory_table_markdown("book").strip(), STALE
    rows = memory_rows("book")
    assert all(r["activations_gb"] > r["state_gb"] > 0 for r in rows)
    assert all(r["fitted_gb"] <= GPU_FRACTION * 15 for r in rows)
    assert any(r["total_gb"] > 15 for r in rows) and all(r["microbatch"] for r in rows if r["total_gb"] > 15)
    # CBDM's regulariser runs the model twice per step: about twice the activations of its plain arm
    cbdm = next(r for r in rows if r["chapter"] == "cbdm")
    ddpm = next(r for r in rows if r["chapter"] == "ddpm")
    assert 1.6 < cbdm["activations_gb"] / ddpm["activations_gb"] < 2.4


def test_per_seed_chapter_commands_write_the_folders_the_chapter_reads():
    """Chapter 06 reads CHECKPOINT_DIR/seed<s>/<arm> (loss_hook_chapters.seed_dir): one train command per seed of
    its preset, every arm at the first seed, baseline and CBDM at the others."""
    from lt_diffusion.experiments import loss_hook_chapters

    commands = cli.reproduce_commands("cbdm")
    seeds = get_preset("cbdm", "paper").seeds
    assert len(commands) == len(seeds) + 1 and commands[-1].endswith("-p CHECKPOINT_DIR runs/cbdm")
    for command, seed in zip(commands, seeds):
        out = command.split("--out ")[1]
        assert out == str(loss_hook_chapters.seed_dir("runs/cbdm", seed)) and f"--seed {seed} " in command
    assert "--arm" not in commands[0] and "--arm baseline --arm cbdm" in commands[1]
