"""A lab's independent pieces (an arm: train it, then score it) run side by side, one process per core.

The labs run on one torch thread per process (:func:`lt_diffusion.lab.common.single_thread`), so a lab whose arms
ran one after another would leave every other core idle. :func:`run_jobs` hands the arms to worker processes
instead; a job computes exactly what it computes in this process (same seeds, same single-threaded arithmetic),
so a lab's numbers do not depend on how many processes ran it, only its wall time does.

``LT_DIFFUSION_LAB_WORKERS`` caps the processes (default: the CPUs this process may run on; ``1`` runs every job
here, in order).
"""
from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Sequence

import torch

__all__ = ["WORKERS_ENV", "lab_workers", "run_jobs"]

WORKERS_ENV = "LT_DIFFUSION_LAB_WORKERS"


def lab_workers() -> int:
    """How many processes :func:`run_jobs` may use: ``LT_DIFFUSION_LAB_WORKERS`` when set, else the number of CPUs
    this process may run on."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{WORKERS_ENV}={raw!r}: set it to a whole number of processes >= 1 (or unset it to use "
                             f"every CPU)")
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return max(1, os.cpu_count() or 1)


def _in_worker(fn: Callable[..., Any], job: tuple) -> Any:
    torch.set_num_threads(1)   # one thread per process, as in the parent
    return fn(*job)


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], *, cost: Optional[Sequence[float]] = None,
             workers: Optional[int] = None) -> List[Any]:
    """``[fn(*job) for job in jobs]``, computed in up to ``workers`` processes (default :func:`lab_workers`).

    Args:
        fn: a module-level function (workers import it by name); its arguments and result are pickled.
        jobs: one argument tuple per call.
        cost: a rough relative cost per job: the costliest start first, so the processes finish together.
        workers: the most processes to use; with 1 (or a single job) every call runs here, in order.
    Returns the results in the order of ``jobs``.
    """
    jobs = [tuple(j) for j in jobs]
    workers = min(len(jobs), lab_workers() if workers is None else int(workers))
    if workers <= 1:
        return [fn(*job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    order = sorted(range(len(jobs)), key=lambda i: -(cost[i] if cost is not None else 0.0))
    # "spawn": a fresh interpreter per worker (forking a process that has run torch's thread pools can hang)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {i: pool.submit(_in_worker, fn, jobs[i]) for i in order}
        return [futures[i].result() for i in range(len(jobs))]
