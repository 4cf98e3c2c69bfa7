"""The ``lt-diffusion`` command (also ``python -m lt_diffusion``): train a chapter's arms, sample a saved arm, score
a sample file, and print what the ``paper`` presets cost.

::

    lt-diffusion train CHAPTER [--arm NAME ...] --scale {smoke,book,paper} --out DIR [--steps N] [--resume]
                               [--seed S] [--ckpt-every K] [--microbatch M] [--device DEV]
    lt-diffusion sample CKPT_OR_ARM_DIR --num N --steps S --out FILE.npz [--guidance-scale W] [--classes C ...]
                                        [--method {ancestral,ddim}] [--batch-size B] [--seed S]
    lt-diffusion evaluate SAMPLES.npz --ref {cifar10-train,cifar10-lt} [--ref-per-class M] [--out FILE.json]
    lt-diffusion cost [--scale paper]

``train`` writes the folder a chapter's ``CHECKPOINT_DIR`` reads (:mod:`lt_diffusion.experiments.runs`):
``DIR/<arm>/ckpt_XXXXXXX.pt`` (the Trainer's exact-resume checkpoints) and ``DIR/<arm>/model_card.json``.
Under ``torchrun --nproc_per_node N`` it trains with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); the
global batch stays the preset's, split across the processes, and every process draws the timesteps and noise of the
whole batch from one shared stream, so N processes train the same model as one
(:func:`lt_diffusion.experiments.train_model`). ``sample`` splits its batches across processes the same way:
batch ``i`` is always drawn with seed ``seed + i``, so the file does not depend on the number of processes.

A bad argument (unknown chapter, arm or scale, a checkpoint of another chapter, ``--resume`` with nothing to resume,
an output folder that holds another run) ends the command with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["main", "CLIError", "NOTEBOOKS", "cost_table_rows", "cost_table_markdown", "reproduce_commands",
           "commands_markdown", "render_running_page", "update_running_page",
           "evaluate_samples"]

#: The notebook of each chapter key, for the reproduction commands.
NOTEBOOKS = {"ddpm": "01_ddpm", "improved_ddpm": "02_improved_ddpm", "adm": "03_adm", "cfg": "04_cfg",
             "p2": "05_p2", "cbdm": "06_cbdm", "minority_guidance": "07_minority_guidance",
             "diffusion_inversion": "08_diffusion_inversion"}
REFERENCES = ("cifar10-train", "cifar10-lt")
#: CIFAR-10-LT as the chapters use it: imbalance ratio 100 (Cao et al. 2019).
LT_IMB_FACTOR = 0.01


class CLIError(Exception):
    """A bad argument: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise CLIError(f"{self.prog}: {message} (see {self.prog} --help)")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _say(*args: Any) -> None:
    if _rank() == 0:
        print(*args, flush=True)


def _device(name: Optional[str]):
    import torch

    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CLIError(f"--device {name!r} is not a device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda, but this machine has no CUDA GPU (use --device cpu)")
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _preset(chapter: str, scale: str):
    from lt_diffusion.presets import get_preset

    try:
        return get_preset(chapter, scale)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------- train
def _without_steps(values: Dict[str, Any]) -> Dict[str, Any]:
    values = json.loads(json.dumps(values))
    values.get("train", {}).pop("steps", None)
    return values


def _check_folder(folder: Path, chapter: str, scale: str, name: str, arm, seed: int, resume: bool) -> Optional[str]:
    """Refuse a folder of another run; returns its newest checkpoint (None: nothing saved yet)."""
    from lt_diffusion.experiments.runs import MODEL_CARD, SavedRunError, _differences, arm_values, read_model_card
    from lt_diffusion.train import latest_checkpoint

    ckpt = latest_checkpoint(str(folder)) if folder.is_dir() else None
    if (folder / MODEL_CARD).is_file():
        try:
            card = read_model_card(folder)
        except SavedRunError as exc:
            raise CLIError(str(exc)) from None
        where = f"{folder} holds a run of {card.get('chapter')}/{card.get('arm')} at scale {card.get('scale')!r}"
        if card.get("chapter") != chapter or card.get("arm") != name:
            raise CLIError(f"{where}, not of {chapter}/{name}: choose another --out")
        if card.get("scale") != scale:
            raise CLIError(f"{where}, not at scale {scale!r}: choose another --out")
        diffs = _differences(_without_steps(card.get("preset") or {}), _without_steps(arm_values(arm)))
        if diffs and ckpt is not None:
            raise CLIError(f"{where} with other settings ({'; '.join(diffs)}): choose another --out")
        if int(card.get("seed", seed)) != seed and ckpt is not None:
            raise CLIError(f"{where} with seed {card.get('seed')}: pass --seed {card.get('seed')} or choose "
                           "another --out")
    if ckpt is not None and not resume:
        raise CLIError(f"{folder} already holds checkpoints (newest: {Path(ckpt).name}): pass --resume to continue "
                       "that run, or choose another --out")
    return ckpt


def _train(args) -> int:
    from lt_diffusion.experiments.runs import MODEL_CARD, model_card, read_model_card, write_model_card
    from lt_diffusion.experiments.training import train_model

    preset = _preset(args.chapter, args.scale)
    names = list(args.arm or preset.arms)
    for name in names:
        if name not in preset.arms:
            raise CLIError(f"chapter {args.chapter!r} has no arm {name!r} at scale {args.scale!r}; its arms: "
                           f"{', '.join(sorted(preset.arms))}")
    derived = {n: preset.arms[n].data.from_arm for n in names if preset.arms[n].data.from_arm is not None}
    if args.arm and derived:
        n, src = next(iter(derived.items()))
        raise CLIError(f"arm {n!r} trains on data that chapter {args.chapter!r} makes from arm {src!r} (generated "
                       f"images or minority levels): train {src!r} here, then run the chapter with CHECKPOINT_DIR "
                       "set; it trains this arm itself")
    names = [n for n in names if n not in derived]
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive number of steps, got {args.steps}")
    if args.ckpt_every is not None and args.ckpt_every < 0:
        raise CLIError(f"--ckpt-every must be >= 0, got {args.ckpt_every}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if args.microbatch is not None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        for name in names:
            local = preset.arms[name].train.batch_size // world
            if args.microbatch < 1 or local % args.microbatch:
                raise CLIError(f"--microbatch {args.microbatch} does not divide arm {name!r}'s batch per process "
                               f"({local}); choose a divisor of {local}")
    out = Path(args.out)
    if out.is_file():
        raise CLIError(f"--out {out} is a file; give a folder")
    if (out / MODEL_CARD).is_file():
        raise CLIError(f"--out {out} is the folder of one arm ({MODEL_CARD} inside); give the folder that holds "
                       "one subfolder per arm")
    if out.is_dir():  # a folder of another chapter's runs
        for card_path in sorted(out.glob(f"*/{MODEL_CARD}")):
            try:
                other = json.loads(card_path.read_text()).get("chapter")
            except (OSError, json.JSONDecodeError):
                other = None
            if other not in (None, args.chapter):
                raise CLIError(f"--out {out} holds runs of chapter {other!r} ({card_path.parent.name}); give each "
                               "chapter its own folder")
    arms = {}
    for name in names:
        arm = preset.arms[name]
        if args.steps is not None:
            arm = dataclasses.replace(arm, train=dataclasses.replace(arm.train, steps=int(args.steps)))
        arms[name] = (arm, _check_folder(out / name, args.chapter, args.scale, name, arm, args.seed, args.resume))
    if args.resume and all(ckpt is None for _, ckpt in arms.values()):
        raise CLIError(f"--resume: {out} holds no checkpoint of {args.chapter} arm(s) {', '.join(names)}; "
                       "there is nothing to resume (leave out --resume to start)")
    if derived:
        _say(f"not trained here: {', '.join(sorted(derived))} (trained by the chapter from "
             f"{', '.join(sorted(set(derived.values())))})")

    device = _device(args.device)
    from lt_diffusion.train import setup_distributed
    rank, world, _ = setup_distributed(device.type)
    command = " ".join(["lt-diffusion"] + list(args.argv))
    for name, (arm, ckpt) in arms.items():
        folder = out / name
        steps = arm.train.steps
        every = args.ckpt_every if args.ckpt_every is not None else (arm.train.ckpt_every or max(1, steps // 10))
        previous_wall = 0.0
        if ckpt is not None and (folder / MODEL_CARD).is_file():
            previous_wall = float(read_model_card(folder).get("wall_s", 0.0))
        _say(f"{args.chapter}/{name} ({args.scale}, {arm.kind}): {steps} steps of batch {arm.train.batch_size} "
             f"on {world} process(es), {device.type}; "
             + (f"resuming from {Path(ckpt).name}" if ckpt else "from scratch") + f" -> {folder}")
        start = time.perf_counter()
        extra = {"command": command, "steps_override": args.steps is not None}

        def write_card(trainer, done: bool = False, name=name, arm=arm, folder=folder, start=start,
                       previous_wall=previous_wall, extra=extra):
            if trainer.is_main:
                card = model_card(args.chapter, args.scale, name, arm, trainer,
                                  previous_wall + time.perf_counter() - start,
                                  training_s=float(trainer.history[-1]["elapsed_s"]) if trainer.history else 0.0,
                                  complete=bool(done or trainer.step >= arm.train.steps), **extra)
                write_model_card(folder, card)
            return False

        folder.mkdir(parents=True, exist_ok=True)
        run = train_model(arm, seed=args.seed, device=device, progress=True, ckpt_dir=str(folder),
                          resume=ckpt is not None, ckpt_every=every, every=every or None, on_chunk=write_card,
                          microbatch=args.microbatch)
        write_card(run.trainer, done=True)
        last = run.trainer.history[-1] if run.trainer.history else {}
        _say(f"{args.chapter}/{name}: step {run.trainer.step}, loss {last.get('loss', float('nan')):.4f}, "
             f"precision {run.trainer.precision}, micro-batch {run.trainer.config.microbatch or 'none'}, "
             f"{time.perf_counter() - start:.1f} s -> {folder / MODEL_CARD}")
    _finish_distributed()
    return 0


def _finish_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- sample
def _saved_arm(path: Path):
    """(preset, arm name, arm, checkpoint file, card) of a checkpoint file or an arm folder."""
    from lt_diffusion.experiments.runs import SavedRunError, read_model_card
    from lt_diffusion.train import latest_checkpoint

    if path.is_dir():
        folder, ckpt = path, latest_checkpoint(str(path))
        if ckpt is None:
            raise CLIError(f"{path} holds no checkpoint (ckpt_*.pt)")
    elif path.is_file():
        folder, ckpt = path.parent, str(path)
    else:
        raise CLIError(f"{path}: no such checkpoint file or arm folder")
    try:
        card = read_model_card(folder)
    except SavedRunError as exc:
        raise CLIError(str(exc)) from None
    preset = _preset(str(card.get("chapter")), str(card.get("scale")))
    name = card.get("arm")
    if name not in preset.arms:
        raise CLIError(f"{folder}: its model card names arm {name!r}, which chapter {card.get('chapter')!r} does not "
                       f"have at scale {card.get('scale')!r}")
    return preset, name, preset.arms[name], ckpt, card


def _sample(args) -> int:
    import numpy as np
    import torch

    from lt_diffusion.experiments.build import make_sampler
    from lt_diffusion.experiments.training import load_trained
    from lt_diffusion.progress import tqdm
    from lt_diffusion.sampling import generate, save_npz

    if args.num < 1 or args.steps < 1 or args.batch_size < 1:
        raise CLIError(f"--num, --steps and --batch-size must be >= 1, got {args.num}, {args.steps}, "
                       f"{args.batch_size}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if not str(args.out).endswith(".npz"):
        raise CLIError(f"--out {args.out}: the samples are written as an .npz file; end the name with .npz")
    preset, name, arm, ckpt, card = _saved_arm(Path(args.checkpoint))
    if arm.kind not in ("denoiser", "generator"):
        raise CLIError(f"{preset.chapter}/{name} is a {arm.kind}, not a model that generates images")
    if args.steps > arm.diffusion.steps:
        raise CLIError(f"--steps {args.steps}: the model was trained with {arm.diffusion.steps} diffusion steps")
    device = _device(args.device)
    try:
        run = load_trained(arm, ckpt, device=device)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise CLIError(f"{ckpt} does not fit {preset.chapter}/{name} at scale {preset.scale!r}: "
                       f"{str(exc).splitlines()[0]}") from None
    model = run.ema
    classes = getattr(model, "num_classes", None)
    if classes is None:
        classes = getattr(getattr(model, "config", None), "num_classes", None)
    labels = None
    if classes is None:
        if args.classes:
            raise CLIError(f"{preset.chapter}/{name} is unconditional: it takes no --classes")
    else:
        chosen = list(args.classes) if args.classes else list(range(classes))
        bad = [c for c in chosen if not 0 <= c < classes]
        if bad:
            raise CLIError(f"--classes {bad}: the model has classes 0..{classes - 1}")
        labels = torch.tensor([chosen[i % len(chosen)] for i in range(args.num)], dtype=torch.long)
    if args.guidance_scale is not None and (classes is None or arm.train.p_uncond <= 0):
        raise CLIError(f"--guidance-scale needs a class-conditional model trained with label dropout "
                       f"(classifier-free guidance); {preset.chapter}/{name} has p_uncond={arm.train.p_uncond}")
    sampler = make_sampler(arm.diffusion, model, sample_steps=args.steps, method=args.method,
                           guidance_scale=args.guidance_scale, device=device)
    from lt_diffusion.train import setup_distributed
    rank, world, _ = setup_distributed(device.type)
    starts = list(range(0, args.num, args.batch_size))
    mine = [i for i in range(len(starts)) if i % world == rank]
    _say(f"sampling {args.num} images from {preset.chapter}/{name} ({Path(ckpt).name}, step {card.get('steps')}): "
         f"{args.steps} {args.method} steps, batch {args.batch_size}, {world} process(es)")
    parts = {}
    t0 = time.perf_counter()
    for i in tqdm(mine, desc="sample", disable=rank != 0):
        start, stop = starts[i], min(starts[i] + args.batch_size, args.num)
        parts[i] = generate(sampler, stop - start, stop - start,
                            labels=None if labels is None else labels[start:stop], seed=args.seed + i,
                            progress=False, device=device).numpy()
    if world > 1:
        import torch.distributed as dist
        gathered: List[Any] = [None] * world
        dist.all_gather_object(gathered, parts)
        parts = {k: v for d in gathered for k, v in d.items()}
    if rank == 0:
        images = np.concatenate([parts[i] for i in range(len(starts))])
        path = save_npz(args.out, images, None if labels is None else labels)
        print(f"wrote {path}: images {images.dtype} {tuple(images.shape)}"
              + ("" if labels is None else f", labels ({len(labels)},)")
              + f" in {time.perf_counter() - t0:.1f} s", flush=True)
    _finish_distributed()
    return 0


# ---------------------------------------------------------------------------------------------------- evaluate
def _reference(name: str, per_class: Optional[int]):
    """(real images uint8 (N, 3, H, W), labels (N,), description) of a reference."""
    from lt_diffusion.data import balanced_subset, load_cifar10, load_cifar10_lt, long_tailed_subset

    if name == "cifar10-train":
        real = load_cifar10("train")
        if per_class is not None:
            real = balanced_subset(real, per_class * real.num_classes)
        desc = "CIFAR-10 train" + ("" if per_class is None else f" ({per_class} images per class)")
    else:
        real = (load_cifar10_lt(LT_IMB_FACTOR) if per_class is None
                else long_tailed_subset(load_cifar10("train"), LT_IMB_FACTOR, n_max=per_class))
        desc = (f"CIFAR-10-LT train (imbalance {round(1 / LT_IMB_FACTOR)}"
                + ("" if per_class is None else f", at most {per_class} images per class") + ")")
    return real, desc


def evaluate_samples(images, labels, ref: str, *, per_class: Optional[int] = None, device=None,
                     k: int = 3) -> Dict[str, Any]:
    """Scores of uint8 samples ``(N, 3, H, W)`` (labels ``(N,)`` or None) against reference ``ref``.

    FID, KID and precision / recall (k-NN balls of ``k``) compare the samples with the reference images
    (``cifar10-train``: the CIFAR-10 train set; ``cifar10-lt``: its long-tailed subset, imbalance 100), at most
    ``per_class`` per class. With labels (at least 2 samples of every class) also the per-class FID and the head /
    mid / tail FID (:func:`lt_diffusion.longtail.lt_fid_breakdown`): each class against the CIFAR-10 train images of
    that class, the groups by CIFAR-10-LT's class counts, as the chapters score the long tail.
    """
    import numpy as np

    from lt_diffusion import longtail
    from lt_diffusion.data import lt_class_counts
    from lt_diffusion.experiments.evaluate import Reference, score_features
    from lt_diffusion import metrics

    real, desc = _reference(ref, per_class)
    real_feats = metrics.compute_features(real.images, progress=False, device=device)
    out: Dict[str, Any] = {"num_samples": int(len(images)), "reference": desc, "reference_images": int(len(real))}
    names = ["fid", "pr", "kid"]
    lt = None
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        classes = real.num_classes
        if lab.min() < 0 or lab.max() >= classes:
            raise CLIError(f"the samples' labels lie in [{lab.min()}, {lab.max()}]; the reference has classes "
                           f"0..{classes - 1}")
        have = np.bincount(lab, minlength=classes)
        if have.min() >= 2:
            balanced, _ = _reference("cifar10-train", per_class)
            bal_feats = real_feats if ref == "cifar10-train" else metrics.compute_features(
                balanced.images, progress=False, device=device)
            counts = lt_class_counts(5000, classes, LT_IMB_FACTOR)
            lt = longtail.class_reference_stats(bal_feats, balanced.labels.numpy(), counts)
            lt.update({"counts": list(counts), "n_head": 3, "n_tail": 3})
            names.append("lt")
            out["per_class_reference"] = (f"{_reference_desc(per_class)}; head / mid / tail by "
                                          f"CIFAR-10-LT's class counts {list(counts)}")
        else:
            out["per_class_note"] = ("no per-class FID: classes "
                                     f"{[c for c in range(classes) if have[c] < 2]} have fewer than 2 samples")
    reference = Reference(metrics.feature_stats(real_feats), desc, len(real), feats=real_feats, lt=lt)
    feats = metrics.compute_features(images, progress=False, device=device)
    scores = score_features(feats, reference, metrics=tuple(names), k=k, labels=labels, device=device)
    if "lt" in scores:
        breakdown = scores.pop("lt")
        out["per_class_FID"] = {str(c): float(v) for c, v in breakdown["per_class"].items()}
        out["group_FID"] = {g: {kk: float(vv) for kk, vv in d.items()} for g, d in breakdown["groups"].items()}
        out["group_members"] = {g: [int(c) for c in m] for g, m in breakdown["group_members"].items()}
        out["count_FID_rank_corr"] = float(breakdown["rank_corr"])
    out.update({("KID_x1e3" if kk == "KID×10³" else "KID_std_x1e3" if kk == "KID std×10³" else kk): float(v)
                for kk, v in scores.items()})
    return out


def _reference_desc(per_class: Optional[int]) -> str:
    return "each class against its CIFAR-10 train images" + ("" if per_class is None else f" (first {per_class})")


def _evaluate(args) -> int:
    from lt_diffusion.sampling import load_npz

    if args.ref not in REFERENCES:
        raise CLIError(f"unknown reference {args.ref!r}; choose one of {', '.join(REFERENCES)}")
    if args.ref_per_class is not None and args.ref_per_class < 2:
        raise CLIError(f"--ref-per-class must be >= 2, got {args.ref_per_class}")
    path = Path(args.samples)
    if not path.is_file():
        raise CLIError(f"{path}: no such sample file")
    try:
        images, labels = load_npz(path)
    except (ValueError, OSError, KeyError) as exc:
        raise CLIError(f"{path} is not a sample file of `lt-diffusion sample` ({exc})") from None
    if images.dtype.is_floating_point or images.ndim != 4 or images.shape[1] != 3 or len(images) < 2:
        raise CLIError(f"{path}: expected at least 2 uint8 RGB images, got {images.dtype} {tuple(images.shape)}")
    device = _device(args.device)
    t0 = time.perf_counter()
    out = {"samples": str(path), **evaluate_samples(images, None if labels is None else labels.numpy(), args.ref,
                                                    per_class=args.ref_per_class, device=device)}
    out["wall_s"] = round(time.perf_counter() - t0, 3)
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.out:
        from lt_diffusion.sampling import atomic_write
        with atomic_write(args.out) as tmp:
            tmp.write_text(text + "\n")
    print(text, flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------- cost


def _per_seed_arms() -> Dict[str, Sequence[str]]:
    """Chapters that train some arms once per seed of their preset (``P.seeds``) and read
    CHECKPOINT_DIR/seed<s>/<arm>: {chapter: the arms trained at every seed} (chapter 06: its ablations at the
    first seed only)."""
    from lt_diffusion.experiments.loss_hook_chapters import EVERY_SEED_ARMS

    return {"cbdm": EVERY_SEED_ARMS}


def reproduce_commands(chapter: str, scale: str = "paper", nproc: int = 8) -> List[str]:
    """The commands that reproduce ``chapter`` at ``scale``: train its arms (once per seed for a chapter of
    :func:`_per_seed_arms`), then run the notebook on them."""
    from lt_diffusion.presets import get_preset

    train = f"torchrun --nproc_per_node {nproc} -m lt_diffusion train {chapter}"
    notebook = (f"papermill notebooks/{NOTEBOOKS[chapter]}.ipynb out.ipynb -p SCALE {scale} -p CHECKPOINT_DIR "
                f"runs/{chapter}")
    per_seed = _per_seed_arms()
    if chapter not in per_seed:
        return [f"{train} --scale {scale} --out runs/{chapter}", notebook]
    seeds = get_preset(chapter, scale).seeds
    arms = "".join(f" --arm {a}" for a in per_seed[chapter])
    return ([f"{train} --scale {scale} --seed {seeds[0]} --out runs/{chapter}/seed{seeds[0]}"]
            + [f"{train}{arms} --scale {scale} --seed {s} --out runs/{chapter}/seed{s}" for s in seeds[1:]]
            + [notebook])


def commands_markdown(scale: str = "paper", nproc: int = 8) -> str:
    """The reproduction commands of every chapter (:func:`reproduce_commands`) as one bash block."""
    from lt_diffusion.presets import get_preset

    lines = ["```bash"]
    for i, chapter in enumerate(NOTEBOOKS):
        derived = sorted(n for n, a in get_preset(chapter, scale).arms.items() if a.data.from_arm is not None)
        note = f"; the chapter trains {', '.join(derived)}" if derived else ""
        lines += ([""] if i else []) + [f"# {NOTEBOOKS[chapter]}{note}"] + reproduce_commands(chapter, scale, nproc)
    return "\n".join(lines + ["```"])


def _fill(text: str, marker: str, content: str) -> str:
    start, end = f"<!-- {marker}: start -->\n", f"<!-- {marker}: end -->"
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + content.strip() + "\n" + text[j:]


def render_running_page(text: str) -> str:
    """``text`` (book/running.md) with its generated blocks (commands, cost table, memory table) filled in from
    :func:`commands_markdown`, :func:`cost_table_markdown` and
    :func:`lt_diffusion.experiments.memory.memory_table_markdown`."""
    from lt_diffusion.experiments.memory import memory_table_markdown

    text = _fill(text, "commands", commands_markdown("paper"))
    text = _fill(text, "cost-table", cost_table_markdown("paper"))
    return _fill(text, "memory-table", memory_table_markdown("book"))


def update_running_page(path: str = "book/running.md") -> None:
    """Rewrite the generated blocks of the "Running the chapters" page."""
    page = Path(path)
    page.write_text(render_running_page(page.read_text()))


def cost_table_rows(scale: str = "paper") -> List[Dict[str, Any]]:
    """One row per chapter: its notebook, the arms ``train`` trains, training images, and the projected GPU-hours
    of training and of sampling + scoring (:func:`lt_diffusion.experiments.projected_gpu_seconds`, throughput
    measured on an NVIDIA H100)."""
    from lt_diffusion.experiments.cost import projected_gpu_seconds
    from lt_diffusion.presets import get_preset

    rows = []
    for chapter in NOTEBOOKS:
        p = get_preset(chapter, scale)
        c = projected_gpu_seconds(p)
        rows.append({"chapter": chapter, "notebook": NOTEBOOKS[chapter], "arms": len(p.arms),
                     "trained by the command": sum(a.data.from_arm is None for a in p.arms.values()),
                     "training images (M)": sum(a.train.steps * a.train.batch_size for a in p.arms.values()) / 1e6,
                     "train (GPU-h)": c["train_s"] / 3600,
                     "sample + score (GPU-h)": (c["sample_s"] + c["fid_s"]) / 3600, "total (GPU-h)": c["total_s"] / 3600})
    return rows


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:.1f}" if h >= 0.1 else f"{h:.2f}"


def cost_table_markdown(scale: str = "paper") -> str:
    """:func:`cost_table_rows` as a Markdown table (the one on the "Running the chapters" page)."""
    head = ("| chapter | notebook | arms (trained by the command) | training images (M) | train (GPU-h) | "
            "sample + score (GPU-h) | total (GPU-h) |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in cost_table_rows(scale):
        lines.append(f"| `{r['chapter']}` | `{r['notebook']}` | {r['arms']} ({r['trained by the command']}) | "
                     f"{r['training images (M)']:,.1f} | {_hours(r['train (GPU-h)'])} | "
                     f"{_hours(r['sample + score (GPU-h)'])} | {_hours(r['total (GPU-h)'])} |")
    return "\n".join(lines)


def _cost(args) -> int:
    if args.scale not in ("smoke", "book", "paper"):
        raise CLIError(f"unknown scale {args.scale!r}; choose one of smoke, book, paper")
    print(f"Projected GPU-hours at scale {args.scale!r} (an estimate from throughput measured on an NVIDIA H100):")
    print(cost_table_markdown(args.scale))
    return 0


# ---------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from lt_diffusion.presets import SCALES, chapters

    parser = _Parser(prog="lt-diffusion", description="Train, sample and score the models of the lt-diffusion "
                                                      "chapters (run under torchrun for several GPUs).")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("train", help="train a chapter's arms into DIR/<arm>/ (checkpoints + model_card.json)")
    p.add_argument("chapter", help=f"one of {', '.join(chapters())}")
    p.add_argument("--arm", action="append", metavar="NAME", help="an arm of the chapter (repeatable; default: all "
                   "arms the command can train)")
    p.add_argument("--scale", required=True, help=f"one of {', '.join(SCALES)}")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder a chapter's CHECKPOINT_DIR reads")
    p.add_argument("--steps", type=int, help="train this many steps instead of the preset's (recorded in the model "
                   "card; a chapter then refuses the run)")
    p.add_argument("--resume", action="store_true", help="continue each arm from its newest checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, metavar="K", help="a checkpoint every K steps (default: a tenth of the "
                   "run; a chapter that scores along training needs its own interval)")
    p.add_argument("--microbatch", type=int, metavar="M", help="forward and backward M samples at a time, the "
                   "gradients summed: the same update in less memory (default: on a GPU, the largest M whose "
                   "estimated memory fits it; the whole batch when it fits)")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.set_defaults(func=_train)

    p = sub.add_parser("sample", help="sample a saved arm into an .npz of uint8 images (and labels)")
    p.add_argument("checkpoint", metavar="CKPT_OR_ARM_DIR", help="a ckpt_*.pt file or an arm folder (its newest)")
    p.add_argument("--num", type=int, required=True, metavar="N")
    p.add_argument("--steps", type=int, required=True, metavar="S", help="sampling steps (respaced)")
    p.add_argument("--out", required=True, metavar="FILE.npz")
    p.add_argument("--method", choices=("ancestral", "ddim"), default="ancestral")
    p.add_argument("--guidance-scale", type=float, metavar="W", help="classifier-free guidance strength w "
                   "((1 + w) eps_c - w eps_null)")
    p.add_argument("--classes", type=int, nargs="+", metavar="C", help="labels to cycle through (default: all "
                   "classes, balanced)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="batch i is drawn with seed + i")
    p.add_argument("--device")
    p.set_defaults(func=_sample)

    p = sub.add_parser("evaluate", help="FID, KID, precision/recall (and per-class FID) of an .npz, as JSON")
    p.add_argument("samples", metavar="SAMPLES.npz")
    p.add_argument("--ref", required=True, help=f"one of {', '.join(REFERENCES)}")
    p.add_argument("--ref-per-class", type=int, metavar="M", help="at most M reference images per class (default: "
                   "all)")
    p.add_argument("--out", metavar="FILE.json")
    p.add_argument("--device")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("cost", help="projected GPU-hours of every chapter at a scale")
    p.add_argument("--scale", default="paper")
    p.set_defaults(func=_cost)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command; returns the exit status (2: a bad argument, reported in one line on stderr)."""
    parser = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except CLIError as exc:
        if _rank() == 0:
            print(f"lt-diffusion: error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
