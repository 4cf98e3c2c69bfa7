"""``run_lab(name, seeds)``: the one entry point of the chapter labs (cached, single-threaded, with provenance).

The names are the results keys of :data:`lt_diffusion.experiments.summary.CHAPTERS` (``"ddpm"`` …
``"diffusion_inversion"``). A run is cached on disk under the key (name, seeds, source hash), so the notebook
of a chapter re-uses the run the test suite just made; ``refresh=True`` recomputes.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Sequence

from . import cache
from .common import DEFAULT_SEEDS, cpu_seconds, single_thread, lab_provenance
from .result import LabResult

__all__ = ["LABS", "run_lab", "load_committed"]

#: results key -> module of :mod:`lt_diffusion.lab` whose ``run(seeds)`` runs that chapter's lab
LABS: Dict[str, str] = {
    "ddpm": "ddpm",
    "improved_ddpm": "improved_ddpm",
    "adm": "adm",
    "cfg": "cfg",
    "p2": "p2",
    "cbdm": "cbdm",
    "minority_guidance": "minority",
    "diffusion_inversion": "inversion",
}


def _runner(name: str) -> Callable[[Sequence[int]], LabResult]:
    if name not in LABS:
        raise ValueError(f"unknown lab {name!r}; choose one of {list(LABS)}")
    return importlib.import_module(f"lt_diffusion.lab.{LABS[name]}").run


def run_lab(name: str, seeds: Sequence[int] = DEFAULT_SEEDS, refresh: bool = False) -> LabResult:
    """Run (or read back from the cache) the lab of chapter ``name`` at ``seeds`` (at least 3).

    Returns a :class:`~lt_diffusion.lab.result.LabResult`: ``.labs`` (claims with per-seed arms and verdicts),
    ``.summary`` (what reproduced, generated from the numbers), ``.figure`` (what :func:`plot_lab` draws).
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 3 or len(set(seeds)) != len(seeds):
        raise ValueError(f"a lab needs at least 3 distinct seeds, got {seeds}")
    run = _runner(name)
    key = cache.cache_key(f"lab-{name}", seeds, {})
    if not refresh:
        hit = cache.load_json(key)
        if hit is not None:
            return LabResult.from_json(hit)
    with single_thread():
        cpu = cpu_seconds()
        result = run(seeds)
        # one thread per process: the CPU time (workers included) is about the wall time of the lab on one core
        result.provenance = lab_provenance(seeds, result.wall_s, {"lab": name,
                                                                  "cpu_s": round(cpu_seconds() - cpu, 1)})
    cache.save_json(key, result.to_json())
    return result


def load_committed(name: str, folder=None) -> LabResult:
    """The committed run of lab ``name`` (``results/lab/<name>.json``)."""
    import json
    from pathlib import Path

    folder = Path(folder) if folder is not None else Path(__file__).resolve().parents[2] / "results" / "lab"
    path = folder / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run python scripts/run_labs.py {name}")
    return LabResult.from_json(json.loads(path.read_text()))
