"""Exact-ground-truth labs: every chapter's paper tested on data whose density is known, on a CPU.

For a chapter notebook::

    from lt_diffusion.lab import run_lab, plot_lab
    result = run_lab("p2")            # cached: re-uses the test suite's run when the source has not changed
    plot_lab(result)                  # the lab's one figure; its question is result.question
    result.summary                    # what reproduced and what did not, generated from the numbers
    result.claims                     # the papers' claims, one sentence each

and for the results page and the long-tail chapter: :func:`run_benchmark`, :func:`benchmark_table`,
:func:`plot_benchmark`. The modules: :mod:`.world` (the data and its exact density), :mod:`.denoiser`
(batched MLP ensembles), :mod:`.engine` (the one training and the one sampling door into the engine),
:mod:`.metrics` and :mod:`.evaluate` (exact metrics), :mod:`.exact` (exact guidance), one module per chapter
(:mod:`.ddpm`, :mod:`.improved_ddpm`, :mod:`.adm`, :mod:`.cfg`, :mod:`.p2`, :mod:`.cbdm`, :mod:`.minority`,
:mod:`.inversion`), :mod:`.benchmark`, :mod:`.plots`, :mod:`.registry` and :mod:`.cache`.
"""
from .benchmark import benchmark_table, plot_benchmark, run_benchmark
from .plots import plot_lab
from .registry import LABS, load_committed, run_lab
from .result import LabResult
from .world import LabWorld, longtail_world, picture_world

__all__ = ["run_lab", "plot_lab", "LabResult", "LABS", "load_committed", "run_benchmark", "benchmark_table",
           "plot_benchmark", "LabWorld", "longtail_world", "picture_world"]
