#!/usr/bin/env python
"""Run chapters at a given scale with papermill and write the executed notebooks back in place.

This is the GPU runner of the book (see ``book/running.md``)::

    python scripts/run_book_gpu.py 01_ddpm 02_improved_ddpm --scale book --out "$OUT"

For each chapter it executes ``notebooks/<chapter>.ipynb`` with ``-p SCALE <scale>``, removes papermill's
injected-parameters cell (so the committed code still reads ``SCALE = "smoke"``; the provenance cell records
the scale that produced the outputs), writes the notebook back in place and, with ``--out``, copies the
notebook and the chapter's ``results/<chapter>.json`` there. A missing asset makes the chapter fail (the data
loader raises instead of falling back), and any failure makes the script exit non-zero after the others ran.
A short table is printed last.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _strip_injected(nb_path: Path) -> None:
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    # papermill's per-cell timing metadata would leak into the jupytext .py pair; the provenance cell
    # records the wall time instead
    nb.metadata.pop("papermill", None)   # it records the machine's paths
    for c in nb.cells:
        c.metadata.pop("papermill", None)
        c.metadata.pop("execution", None)
        if c.metadata.get("tags") == []:  # papermill adds empty tag lists
            c.metadata.pop("tags")
        if c.get("outputs"):   # tqdm's notice that ipywidgets is missing names the interpreter's path
            c.outputs = [o for o in c.outputs if not (o.get("name") == "stderr" and "IProgress not found" in o.get("text", ""))]
    nbformat.write(nb, nb_path)


def run_chapter(chapter: str, scale: str, out: Path | None, timeout: int) -> dict:
    import papermill as pm

    nb_path = ROOT / "notebooks" / f"{chapter}.ipynb"
    if not nb_path.exists():
        raise FileNotFoundError(f"{nb_path} does not exist; chapters are {sorted(p.stem for p in (ROOT / 'notebooks').glob('*.ipynb'))}")
    tmp = nb_path.with_suffix(".running.ipynb")
    t0, t_start = time.perf_counter(), time.time()
    status, error = "ok", ""
    try:
        pm.execute_notebook(
            str(nb_path), str(tmp), parameters={"SCALE": scale}, kernel_name="python3",
            cwd=str(ROOT), progress_bar=False, log_output=True, execution_timeout=timeout,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
        status, error = "FAILED", f"{type(exc).__name__}: {str(exc)[:2000]}"
    wall = time.perf_counter() - t0
    if tmp.exists():
        _strip_injected(tmp)
        if status == "ok":
            os.replace(tmp, nb_path)
            final = nb_path
        else:
            final = tmp
        if out is not None:
            shutil.copy(final, out / f"{chapter}.ipynb")
            # the chapter writes results/<chapter key>.json (e.g. 01_ddpm -> ddpm.json): copy what this run wrote
            for res in (ROOT / "results").glob("*.json"):
                if res.stat().st_mtime >= t_start:
                    shutil.copy(res, out / f"{chapter}.{res.name}")
    return {"chapter": chapter, "status": status, "wall_s": round(wall, 1), "error": error}


def projected_seconds(chapter: str, scale: str) -> float | None:
    """The chapter preset's projected GPU seconds (:func:`lt_diffusion.experiments.projected_gpu_seconds`;
    ``None`` for a notebook that is no chapter with presets)."""
    from lt_diffusion.experiments import projected_gpu_seconds
    from lt_diffusion.presets import get_preset

    key = chapter.split("_", 1)[1] if chapter[:2].isdigit() else chapter
    try:
        preset = get_preset(key, scale)
    except ValueError:
        return None
    return float(projected_gpu_seconds(preset)["total_s"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="+", help="notebook stems, e.g. 01_ddpm")
    ap.add_argument("--scale", default="book", choices=["smoke", "book", "paper"])
    ap.add_argument("--out", type=Path, default=None, help="folder to copy executed notebooks and results to")
    ap.add_argument("--timeout", type=int, default=540, help="per-cell timeout in seconds")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds for the whole run (e.g. a 600 s remote call less a margin): a chapter whose "
                         "projected time does not fit in what is left is skipped, and cells time out at the "
                         "deadline, so the chapters that finished still reach --out")
    args = ap.parse_args(argv)
    if args.scale != "smoke":
        try:
            import torch
            if not torch.cuda.is_available():
                print(f"scale {args.scale!r} needs a CUDA GPU; none is visible", file=sys.stderr)
                return 2
        except ImportError:
            print("torch is not importable", file=sys.stderr)
            return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t_begin = time.perf_counter()
    for ch in args.chapters:
        timeout = args.timeout
        if args.deadline is not None:
            left = args.deadline - (time.perf_counter() - t_begin)
            need = projected_seconds(ch, args.scale)
            if need is not None and need > left:
                print(f"=== {ch}: SKIPPED, projected {need:.0f} s > {left:.0f} s left ===", flush=True)
                rows.append({"chapter": ch, "status": "SKIPPED", "wall_s": 0.0,
                             "error": f"projected {need:.0f} s, {left:.0f} s left before the deadline"})
                continue
            timeout = max(1, min(timeout, int(left)))
        print(f"=== {ch} ({args.scale}) ===", flush=True)
        row = run_chapter(ch, args.scale, args.out, timeout)
        rows.append(row)
        if row["error"]:
            print(row["error"], file=sys.stderr, flush=True)
    if args.out is not None:
        (args.out / "run_summary.json").write_text(json.dumps(rows, indent=1))
    print("\nchapter                      status   wall [s]")
    for r in rows:
        print(f"{r['chapter']:<28} {r['status']:<8} {r['wall_s']:>8.1f}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
