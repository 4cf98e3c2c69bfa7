#!/usr/bin/env python
"""Run the chapters' exact-data labs and the long-tail benchmark; write ``results/lab/*.json``.

    python scripts/run_labs.py                       # every lab, then the benchmark
    python scripts/run_labs.py p2 cbdm               # some labs
    python scripts/run_labs.py longtail_benchmark    # the benchmark only (re-uses the labs' cached networks)

Each lab runs *cold*, in an empty cache of its own, so the wall time it records is what the lab costs on its own
(training included); its networks are then moved into the shared cache (``LT_DIFFUSION_CACHE``), where the
benchmark, the test suite and the chapter notebooks find them. ``--warm`` runs against the shared cache instead.
Afterwards run ``python scripts/make_results_page.py`` to refresh the results page.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lt_diffusion.lab import LABS, run_benchmark, run_lab  # noqa: E402
from lt_diffusion.lab.common import DEFAULT_SEEDS  # noqa: E402
from lt_diffusion.paths import CACHE_ENV, cache_dir  # noqa: E402

BENCHMARK = "longtail_benchmark"


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _run_cold(name: str, seeds, shared: Path):
    """Run lab ``name`` in an empty cache (seeded with the other labs' results, not their networks)."""
    with tempfile.TemporaryDirectory(prefix="lt-lab-") as tmp:
        (Path(tmp) / "lab").mkdir()
        for f in (shared / "lab").glob("lab-*.json"):   # a lab that reads another lab's result (04 reads 03)
            shutil.copy2(f, Path(tmp) / "lab" / f.name)
        before = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = tmp
        try:
            result = run_lab(name, seeds, refresh=True)
        finally:
            if before is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = before
        for f in (Path(tmp) / "lab").iterdir():
            shutil.move(str(f), str(shared / "lab" / f.name))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"labs ({', '.join(LABS)}) and/or {BENCHMARK}; default: all")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "lab")
    ap.add_argument("--warm", action="store_true", help="use the shared cache (wall times then exclude cached work)")
    args = ap.parse_args(argv)
    names = args.names or list(LABS) + [BENCHMARK]
    unknown = [n for n in names if n not in LABS and n != BENCHMARK]
    if unknown:
        ap.error(f"unknown lab(s) {unknown}; choose from {list(LABS) + [BENCHMARK]}")
    shared = cache_dir()
    (shared / "lab").mkdir(parents=True, exist_ok=True)
    for name in names:
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        if name == BENCHMARK:
            obj = run_benchmark(args.seeds)
            wall = obj["wall_s"]
        else:
            result = run_lab(name, args.seeds, refresh=True) if args.warm else _run_cold(name, args.seeds, shared)
            obj, wall = result.to_json(), result.wall_s
        _write(args.out / f"{name}.json", obj)
        print(f"{name}: wall {wall:.1f} s (call {time.perf_counter() - t0:.1f} s; load average "
              f"{load0:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)
        for c in obj.get("labs", []):
            print(f"  {c['verdict']:<24} {c['short']} (gain {c['gain']:.3g}, spread {c['spread']:.2g})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
