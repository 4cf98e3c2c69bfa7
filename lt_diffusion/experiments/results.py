"""Where a chapter's results go: ``results/<chapter>.json`` in a checkout (``results/smoke/`` at smoke scale)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["results_dir", "save_results", "start_chapter", "finish_chapter"]


def results_dir(scale: Optional[str] = None) -> Path:
    """``<repository>/results`` when the package runs from a checkout (next to ``DESIGN.md``), else ``./results``.

    Smoke-scale results go to the ``smoke/`` subfolder, so a CI run never overwrites the committed ``book`` results.
    """
    root = Path(__file__).resolve().parents[2]
    folder = root / "results" if (root / "DESIGN.md").is_file() else Path("results").resolve()
    return folder / "smoke" if scale == "smoke" else folder


def save_results(chapter: str, results: Dict[str, Any]) -> Path:
    """:func:`lt_diffusion.provenance.save_results` into :func:`results_dir` (``results/<chapter>.json``;
    ``results/smoke/<chapter>.json`` when ``results["scale"] == "smoke"``); returns the path, relative to the
    repository when the package runs from a checkout."""
    from lt_diffusion.provenance import save_results as _save

    path = _save(chapter, results, folder=results_dir(results.get("scale")))
    try:   # printed by the chapters: the repository-relative path, not the machine's
        return path.relative_to(Path(__file__).resolve().parents[2])
    except ValueError:
        return path


def finish_chapter(run, chapter: str, results: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """The last cell of a chapter: record the provenance of ``run`` (:func:`lt_diffusion.provenance.start_run`;
    commit, device, scale, seeds, wall time, plus ``extra``) into ``results["provenance"]``, write the results
    with :func:`save_results` and return the provenance (``provenance.provenance_table`` renders it)."""
    results["provenance"] = run.record({"chapter": chapter, **extra})
    save_results(chapter, results)
    return results["provenance"]


def start_chapter(chapter: str, scale: str, seeds=0):
    """The first cell of a chapter: its preset at ``scale``, a provenance run (:func:`lt_diffusion.provenance.
    start_run` with ``seeds``), the device, the label that marks smoke numbers, and the projected H100 cost
    (:func:`lt_diffusion.experiments.projected_gpu_seconds`), printed with the preset's note at ``book``/``paper``.

    Returns ``(preset, run, device, smoke_label, cost)``.
    """
    from lt_diffusion import provenance
    from lt_diffusion.experiments.build import default_device
    from lt_diffusion.experiments.cost import projected_gpu_seconds
    from lt_diffusion.presets import get_preset

    run = provenance.start_run(scale, seeds)   # first: a bad SCALE, or book/paper without a GPU, stops here
    preset = get_preset(chapter, scale)
    device, cost = default_device(), projected_gpu_seconds(preset)
    print(f"scale={scale} device={device} arms={list(preset.arms)}")
    if scale != "smoke":   # a smoke run is timed by its provenance; a projection of it says nothing
        print(f"projected time on one H100 (estimate from measured throughput): {cost['total_s'] / 60:.1f} min"
              f" | {preset.note}")
    return preset, run, device, "" if preset.comparable else " (smoke: not comparable)", cost
