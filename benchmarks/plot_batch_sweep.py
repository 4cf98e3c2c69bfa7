#!/usr/bin/env python
"""Plot training throughput against batch size from ``train_throughput.py --batch-sweep`` JSON files.

    python benchmarks/plot_batch_sweep.py benchmarks/results/h100_batch_sweep.json \\
        --out book/_generated/throughput_vs_batch.png

One curve per (model, mode); failed points (e.g. out of memory) are left out and listed on stdout. The figure goes
through :func:`lt_diffusion.plotting.curves` so it looks like the chapters' figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sweep_curves(reports: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """``{"<model>, <mode> (<device>)": (batches, images_per_s)}`` from parsed JSON reports."""
    curves = {}
    for rep in reports:
        device = rep["meta"]["device"]
        for entry in rep["results"]:
            for mode, rows in entry.get("sweep", {}).items():
                ok = [r for r in rows if "images_per_s" in r]
                for r in rows:
                    if "images_per_s" not in r:
                        print(f"left out: {entry['model']} {mode} batch {r.get('batch')}: {r.get('error')}")
                if ok:
                    curves[f"{entry['model']}, {mode} ({device})"] = ([r["batch"] for r in ok],
                                                                       [r["images_per_s"] for r in ok])
    return curves


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args(argv)
    from lt_diffusion import plotting

    curves = sweep_curves([json.loads(p.read_text()) for p in args.json])
    if not curves:
        print(f"no --batch-sweep results in {[str(p) for p in args.json]}: run train_throughput.py --batch-sweep",
              file=sys.stderr)
        return 1
    fig = plotting.curves(None, curves, "batch size", "training images / s", logx=True, markers=True,
                          title="Training throughput vs batch size")
    plotting.savefig(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
