"""Provenance of a result: which code, on which machine, at which scale and seeds, and how long it took.

Every chapter ends with ``provenance_table(record(...))``; results are saved with :func:`save_results`.
On machines without a ``.git`` folder (e.g. a copied working tree on a remote GPU), set
``LT_DIFFUSION_COMMIT`` (and optionally ``LT_DIFFUSION_DIRTY=0/1``) before running.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from lt_diffusion.report import Table

__all__ = [
    "ALLOW_CPU_ENV", "Run", "RunSetupError", "SCALES", "Stopwatch", "check_scale", "device_name", "git_state",
    "provenance_table", "record", "save_results", "start_run",
]

COMMIT_ENV = "LT_DIFFUSION_COMMIT"
DIRTY_ENV = "LT_DIFFUSION_DIRTY"


class Stopwatch:
    """Wall-clock timer (``time.perf_counter``); usable as a context manager.

    >>> with Stopwatch() as sw:
    ...     pass
    >>> sw.elapsed >= 0
    True
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._stop: float | None = None

    def __enter__(self) -> "Stopwatch":
        self._start, self._stop = time.perf_counter(), None
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> float:
        """Freeze the timer and return the elapsed seconds."""
        self._stop = time.perf_counter()
        return self.elapsed

    @property
    def elapsed(self) -> float:
        """Seconds since start (up to ``stop()`` if stopped)."""
        return (self._stop if self._stop is not None else time.perf_counter()) - self._start


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_state() -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the package's checkout.

    ``LT_DIFFUSION_COMMIT`` wins when set (dirty then from ``LT_DIFFUSION_DIRTY``, else ``None``).
    Outside a git checkout: ``("unknown", None)``. ``dirty`` counts modified tracked files only.
    """
    env_commit = os.environ.get(COMMIT_ENV, "").strip()
    if env_commit:
        flag = os.environ.get(DIRTY_ENV, "").strip().lower()
        return env_commit, (flag in ("1", "true", "yes") if flag else None)
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown", None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def device_name() -> str:
    """GPU name (``torch.cuda.get_device_name``) if a GPU is visible, else the CPU model."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # torch missing or CUDA broken: fall back to the CPU
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def record(scale: str, seeds: Sequence[int] | int, wall_time: float, extra: dict | None = None) -> dict[str, Any]:
    """Provenance of one run as a JSON-able dict.

    Keys: ``commit``, ``dirty``, ``device``, ``torch``, ``python``, ``scale``, ``seeds`` (list),
    ``wall_time_s``, ``timestamp_utc`` (ISO 8601), plus ``extra``'s items (which may not override these).
    """
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    commit, dirty = git_state()
    out: dict[str, Any] = {
        "commit": commit,
        "dirty": dirty,
        "device": device_name(),
        "torch": torch_version,
        "python": platform.python_version(),
        "scale": scale,
        "seeds": [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds],
        "wall_time_s": round(float(wall_time), 3),
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in (extra or {}).items():
        if key in out:
            raise ValueError(f"extra key {key!r} would overwrite a provenance field")
        out[key] = value
    return out


SCALES = ("smoke", "book", "paper")
ALLOW_CPU_ENV = "LT_DIFFUSION_ALLOW_CPU"


class RunSetupError(ValueError):
    """A run can not start as asked (a bad ``SCALE``, or a GPU scale without a GPU).

    In Jupyter and papermill the message is all the reader sees, not a traceback: IPython prints what
    ``_render_traceback_`` returns.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class Run:
    """A started run: ``start_run(scale, seeds)`` ... ``run.record(extra)``."""

    def __init__(self, scale: str, seeds: Sequence[int] | int) -> None:
        self.scale, self.seeds = scale, seeds
        self.stopwatch = Stopwatch()

    def record(self, extra: dict | None = None) -> dict[str, Any]:
        """:func:`record` with the wall time since :func:`start_run`."""
        return record(self.scale, self.seeds, self.stopwatch.elapsed, extra)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or CUDA broken: no GPU
        return False


def check_scale(scale: Any) -> str:
    """Return ``scale`` if it is one of :data:`SCALES` and this machine can run it; else raise :class:`RunSetupError`.

    ``book`` and ``paper`` need a CUDA GPU: on a CPU they would train for hours. Set
    ``LT_DIFFUSION_ALLOW_CPU=1`` to run them on a CPU on purpose.
    """
    if not isinstance(scale, str) or scale not in SCALES:
        hint = ""
        if isinstance(scale, str):
            close = [s for s in SCALES if s.startswith(scale.strip().lower()[:1])] if scale.strip() else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RunSetupError(
            f"SCALE = {scale!r} is not a scale{hint}. Use SCALE = 'smoke' (any CPU, minutes: checks that the "
            "chapter runs), 'book' (one CUDA GPU: the book's results) or 'paper' (the paper's settings), e.g. "
            "papermill NOTEBOOK.ipynb out.ipynb -p SCALE smoke")
    if scale != "smoke" and not _cuda_available():
        flag = os.environ.get(ALLOW_CPU_ENV, "").strip().lower()
        if flag not in ("1", "true", "yes"):
            raise RunSetupError(
                f"SCALE = {scale!r} needs a CUDA GPU, and this machine has none (torch.cuda.is_available() is "
                f"False): on a CPU it would train for hours. On a CPU, use SCALE = 'smoke'. To run {scale!r} on "
                f"this CPU anyway, set {ALLOW_CPU_ENV}=1 in the environment before starting "
                f"(e.g. {ALLOW_CPU_ENV}=1 papermill NOTEBOOK.ipynb out.ipynb -p SCALE {scale}).")
    return scale


def start_run(scale: str, seeds: Sequence[int] | int) -> Run:
    """Check ``scale`` (:func:`check_scale`) and start the clock for a run at ``scale`` with ``seeds``.

    The chapters call it first, so that a bad ``SCALE``, or ``book``/``paper`` on a machine without CUDA,
    stops the notebook with one clear message (:class:`RunSetupError`) before anything runs.
    """
    return Run(check_scale(scale), seeds)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_fmt(v)) for v in value)
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def provenance_table(d: dict[str, Any]) -> "Table":
    """Two-column table of a :func:`record` dict (commit shortened to 12 characters).

    Returns a :class:`lt_diffusion.report.Table`: a markdown ``str`` (``display(Markdown(...))`` and book
    pages render it) with an HTML form for Jupyter, so ``display(provenance_table(d))`` works as well.
    """
    from lt_diffusion.report import table

    rows = []
    for key, value in d.items():
        if key == "commit" and isinstance(value, str) and len(value) == 40:
            value = value[:12]
        rows.append({"": key, " ": _fmt(value)})
    return table(rows, ["", " "], kind="provenance")


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if hasattr(obj, "tolist"):  # torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in results JSON")


def save_results(chapter: str, results: dict[str, Any], folder: str | os.PathLike = "results") -> Path:
    """Write ``results`` to ``<folder>/<chapter>.json`` atomically (numpy / torch values converted).

    Returns the path. ``folder`` is relative to the working directory unless absolute.
    """
    from lt_diffusion.sampling import atomic_write

    path = Path(folder) / f"{chapter}.json"
    text = json.dumps(results, indent=2, sort_keys=False, default=_json_default, allow_nan=True)
    with atomic_write(path) as tmp:
        tmp.write_text(text + "\n")
    return path
