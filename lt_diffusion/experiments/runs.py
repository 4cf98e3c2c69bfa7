"""Saved runs: the folder a full-scale training command writes, and what a chapter loads from it.

A chapter trains its arms itself, or, with the notebook parameter ``CHECKPOINT_DIR``, evaluates arms trained
elsewhere (``lt-diffusion train CHAPTER --arm NAME --scale S --out DIR`` on a GPU machine). The folder holds one
subfolder per arm::

    DIR/<arm>/ckpt_0001200.pt     the Trainer's exact-resume checkpoints (weights_only)
    DIR/<arm>/model_card.json     what was trained: chapter, scale, arm, the arm's preset values, seed, commit,
                                  device, world size, steps, images seen, wall time, last losses, precision

:func:`train_or_load` is the one call a chapter makes for an arm: it trains (``CHECKPOINT_DIR = None``) or loads, and
in both cases calls the chunk callback at the same steps, so a chapter that scores its model along training reads
the same curve from a saved run (the run must have kept a checkpoint at every ``every`` steps).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

__all__ = ["MODEL_CARD", "SavedRunError", "arm_values", "model_card", "write_model_card", "read_model_card",
           "check_model_card", "checkpoint_path", "train_or_load"]

MODEL_CARD = "model_card.json"
# TrainConfig fields that say how a run was executed, not what was trained: they may differ between the saved run
# and the chapter's preset (the seed is compared on its own).
RUNTIME_FIELDS = ("seed", "device", "progress", "ckpt_dir", "ckpt_every", "log_every", "compile", "compile_mode",
                  "compile_regional")


class SavedRunError(ValueError):
    """A saved run that does not match what the chapter asks for (another chapter, scale, arm, config or seed)."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def arm_values(arm) -> Dict[str, Any]:
    """The arm's preset values as JSON data (tuples become lists), without the run-time fields of its TrainConfig."""
    values = _jsonable(dataclasses.asdict(arm))
    for key in RUNTIME_FIELDS:
        values["train"].pop(key, None)
    return values


def checkpoint_path(folder: os.PathLike | str, step: int) -> Path:
    """``folder/ckpt_{step:07d}.pt``, the Trainer's checkpoint name."""
    return Path(folder) / f"ckpt_{int(step):07d}.pt"


def model_card(chapter: str, scale: str, name: str, arm, trainer, wall_s: float, **extra: Any) -> Dict[str, Any]:
    """The model card of one trained arm (written beside its checkpoints)."""
    from lt_diffusion.provenance import device_name, git_state

    commit, dirty = git_state()
    last = trainer.history[-1] if trainer.history else {}
    return {"chapter": chapter, "scale": scale, "arm": name, "kind": arm.kind, "preset": arm_values(arm),
            "seed": int(trainer.config.seed), "commit": commit, "dirty": dirty, "device": device_name(),
            "world_size": int(getattr(trainer, "world_size", 1)), "steps": int(trainer.step),
            "images_seen": int(trainer.step) * int(trainer.config.batch_size), "wall_s": round(float(wall_s), 3),
            "precision": getattr(trainer, "precision", None),
            "microbatch": getattr(trainer.config, "microbatch", None),
            "last_losses": {k: v for k, v in last.items() if k == "loss" or k.startswith(("mse", "vb", "loss_q"))},
            **extra}


def write_model_card(folder: os.PathLike | str, card: Dict[str, Any]) -> Path:
    """Write ``folder/model_card.json`` atomically."""
    from lt_diffusion.sampling import atomic_write

    path = Path(folder) / MODEL_CARD
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def read_model_card(folder: os.PathLike | str) -> Dict[str, Any]:
    """The model card of a saved arm; a :class:`SavedRunError` says what to do when there is none."""
    path = Path(folder) / MODEL_CARD
    if not path.is_file():
        raise SavedRunError(f"{folder} holds no {MODEL_CARD}: it was not written by `lt-diffusion train` "
                            "(train the arm with that command, or leave CHECKPOINT_DIR = None to train here)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SavedRunError(f"{path} is not valid JSON ({exc}); train the arm again") from exc


def _differences(saved: Any, wanted: Any, prefix: str = "") -> List[str]:
    if isinstance(saved, dict) and isinstance(wanted, dict):
        out: List[str] = []
        for key in sorted(set(saved) | set(wanted)):
            out += _differences(saved.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == wanted else [f"{prefix[:-1]}: saved {saved!r}, chapter {wanted!r}"]


def check_model_card(card: Dict[str, Any], chapter: str, scale: str, name: str, arm, seed: int) -> None:
    """Refuse a saved arm of another chapter, scale, arm, configuration or seed (every difference is listed)."""
    where = f"saved run {card.get('chapter')}/{card.get('arm')} at scale {card.get('scale')!r}"
    if card.get("chapter") != chapter or card.get("arm") != name:
        raise SavedRunError(f"{where} is not arm {name!r} of chapter {chapter!r}: point CHECKPOINT_DIR at the folder "
                            f"that `lt-diffusion train {chapter} --arm {name}` wrote")
    if card.get("scale") != scale:
        raise SavedRunError(f"{where} does not match SCALE = {scale!r}: run the chapter with "
                            f"-p SCALE {card.get('scale')} or train the arm at {scale!r}")
    diffs = _differences(card.get("preset"), arm_values(arm))
    if diffs:
        raise SavedRunError(f"{where} was trained with other settings than this preset ({'; '.join(diffs)}); "
                            "retrain it with the current preset")
    if int(card.get("seed", -1)) != int(seed):
        raise SavedRunError(f"{where} was trained with seed {card.get('seed')}; run the chapter with "
                            f"-p SEED {card.get('seed')}")


class _SavedTrainer:
    """What a chunk callback reads of a trainer (step, config, history, model, EMA), from one saved checkpoint."""

    def __init__(self, result, step: int, config):
        self.model, self.ema_model, self.step, self.config = result.model, result.ema, step, config
        self.history = [h for h in result.history if h.get("step", 0) <= step]


def train_or_load(preset, name: str, *, checkpoint_dir: Optional[os.PathLike | str] = None, seed: int = 0,
                  device=None, data=None, every: Optional[int] = None,
                  on_chunk: Optional[Callable[[Any], Optional[bool]]] = None, progress: bool = False):
    """Train arm ``name`` of ``preset`` (:func:`~lt_diffusion.experiments.train_model`), or load it from
    ``checkpoint_dir/name`` when ``checkpoint_dir`` is set; returns a :class:`~lt_diffusion.experiments.TrainResult`
    (``trainer`` is ``None`` when loaded).

    With ``every``/``on_chunk`` a loaded arm replays the callback on its saved checkpoints at steps ``every``,
    ``2 * every``, ... (the callback sees ``trainer.step``, ``trainer.ema_model``, ``trainer.history``), so the
    chapter prints the same numbers whether it trained or loaded. A saved arm of another chapter, scale, arm,
    configuration or seed, or a missing checkpoint, is a :class:`SavedRunError` that says what to do. An arm whose
    data the chapter makes from another arm (``arm.data.from_arm``: generated images, minority levels) is trained here
    from ``data`` when ``checkpoint_dir`` has no folder for it, since ``lt-diffusion train`` cannot make its data.

    Example (a chapter cell)::

        run = train_or_load(P, "p2", checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device)
    """
    from lt_diffusion.experiments.training import load_trained, train_model

    arm = preset.arm(name)
    if checkpoint_dir is None:
        return train_model(arm, seed=seed, device=device, data=data, every=every, on_chunk=on_chunk,
                           progress=progress)
    folder = Path(checkpoint_dir) / name
    if not folder.is_dir() and arm.data.from_arm is not None:
        # `lt-diffusion train` cannot make this arm's data (the chapter makes it from another arm): train it here
        return train_model(arm, seed=seed, device=device, data=data, every=every, on_chunk=on_chunk,
                           progress=progress)
    if not folder.is_dir():
        raise SavedRunError(f"CHECKPOINT_DIR={checkpoint_dir} has no folder {name!r} (it has "
                            f"{sorted(p.name for p in Path(checkpoint_dir).iterdir()) if Path(checkpoint_dir).is_dir() else 'no such folder'}); "
                            f"train it with `lt-diffusion train {preset.chapter} --arm {name} --scale {preset.scale} "
                            f"--out {checkpoint_dir}`")
    check_model_card(read_model_card(folder), preset.chapter, preset.scale, name, arm, seed)
    total = arm.train.steps
    final = checkpoint_path(folder, total)
    if not final.is_file():
        raise SavedRunError(f"{folder} has no checkpoint of step {total} ({final.name}): the run did not finish; "
                            f"resume it with `lt-diffusion train {preset.chapter} --arm {name} --scale "
                            f"{preset.scale} --out {checkpoint_dir} --resume`")
    config = dataclasses.replace(arm.train, seed=seed)
    if on_chunk is not None:
        steps = list(range(every, total, every)) + [total] if every else [total]
        for step in steps:
            path = checkpoint_path(folder, step)
            if not path.is_file():
                raise SavedRunError(f"{folder} has no checkpoint of step {step}: this chapter scores the model every "
                                    f"{every} steps; train the arm with --ckpt-every {every}")
            if on_chunk(_SavedTrainer(load_trained(arm, str(path), device=device), step, config)):
                break
    return load_trained(arm, str(final), device=device)
