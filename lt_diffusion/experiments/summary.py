"""What each chapter reports to the book's "Results at a glance" page, and how that page is rendered.

A chapter's results JSON (``results/<chapter>.json``, written by :func:`lt_diffusion.experiments.common.save_results`)
may carry two extra entries built here:

* ``"headline"`` (:func:`headline`): the chapter's one number at its scale, the paper's number for the paper's own
  setting (only numbers read in the paper itself), and the paper's *effect* (method vs baseline)
  measured in our run, per seed, so the page can say whether it reproduced in direction and whether the gap
  exceeds the seed spread;
* ``"longtail"`` (:func:`longtail_row`): rows of the one CIFAR-10-LT table across methods.

The chapters' CPU labs (:mod:`lt_diffusion.lab`) write ``results/lab/<chapter>.json`` and
``results/lab/longtail_benchmark.json`` (``scripts/run_labs.py``); :func:`load_lab_results` reads them and
:func:`render_lab_section` renders them.

:func:`render_results_page` turns a folder of such files into markdown; ``scripts/make_results_page.py`` writes it to
``book/_generated/results_tables.md``, and :func:`edition_status` the "state of this edition" note. Nothing on
those pages is typed by hand.
"""
from __future__ import annotations

import json
import re
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = ["headline", "longtail_row", "effect_verdict", "load_results", "render_results_page", "CHAPTERS",
           "load_lab_results", "render_lab_section", "edition_status", "page_provenance"]

# notebook stem -> results key, in book order (the key is what the chapter passes to save_results)
CHAPTERS = {
    "01_ddpm": "ddpm",
    "02_improved_ddpm": "improved_ddpm",
    "03_adm": "adm",
    "04_cfg": "cfg",
    "05_p2": "p2",
    "06_cbdm": "cbdm",
    "07_minority_guidance": "minority_guidance",
    "08_diffusion_inversion": "diffusion_inversion",
}


def _floats(values: Optional[Iterable[float]], what: str) -> Optional[List[float]]:
    if values is None:
        return None
    out = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    if not out:
        raise ValueError(f"{what}: give at least one value (one per seed)")
    if any(not math.isfinite(v) for v in out):
        raise ValueError(f"{what}: non-finite value in {out}")
    return out


def effect_verdict(method: Sequence[float], baseline: Sequence[float], lower_is_better: bool) -> Dict[str, Any]:
    """Did the method beat the baseline, and by more than the seed spread?

    Args:
        method, baseline: the metric per seed for each arm (one value each is allowed: then no spread is known).
        lower_is_better: ``True`` for FID-like metrics.

    Returns ``{"gain", "spread", "verdict"}``: ``gain`` = how much better the method's mean is (positive = better),
    ``spread`` = the larger of the two arms' ranges (max − min over seeds; ``None`` with one seed per arm), and
    ``verdict`` one of ``"yes"`` (better by more than the spread), ``"yes, within seed spread"``, ``"yes, one seed"``,
    ``"no"`` (equal or worse).
    """
    m = _floats(method, "method")
    b = _floats(baseline, "baseline")
    diff = sum(m) / len(m) - sum(b) / len(b)
    gain = -diff if lower_is_better else diff
    ranges = [max(v) - min(v) for v in (m, b) if len(v) > 1]
    spread = max(ranges) if ranges else None
    if gain <= 0:
        verdict = "no"
    elif spread is None:
        verdict = "yes, one seed"
    elif gain > spread:
        verdict = "yes"
    else:
        verdict = "yes, within seed spread"
    return {"gain": gain, "spread": spread, "verdict": verdict}


def headline(metric: str, value: float, *, claim: str, lower_is_better: bool = True,
             method: Optional[Sequence[float]] = None, baseline: Optional[Sequence[float]] = None,
             method_name: str = "", baseline_name: str = "", paper_value: Optional[float] = None,
             paper_setting: str = "", comparable: bool = True) -> Dict[str, Any]:
    """The chapter's headline entry for its results JSON.

    Args:
        metric: what ``value`` is, e.g. ``"FID (5k samples, 100 steps)"``.
        value: our number for the chapter's main configuration.
        claim: the paper's effect in a few words, e.g. ``"CBDM lowers tail-class FID"``.
        method, baseline: that effect's metric per seed in our run (method arm and baseline arm); omit both when
            the chapter has no comparison (then no verdict is given).
        paper_value, paper_setting: the paper's number and where it holds (its model, data, steps); ``None`` when
            the paper reports none for a comparable setting.
        comparable: ``False`` at ``smoke`` scale (numbers there measure nothing).
    """
    if (method is None) != (baseline is None):
        raise ValueError("give both method and baseline values (one per seed), or neither")
    out: Dict[str, Any] = {"metric": metric, "value": float(value), "claim": claim,
                           "lower_is_better": bool(lower_is_better), "comparable": bool(comparable),
                           "paper_value": None if paper_value is None else float(paper_value),
                           "paper_setting": paper_setting}
    if method is not None:
        out.update({"method_name": method_name, "baseline_name": baseline_name,
                    "method": _floats(method, "method"), "baseline": _floats(baseline, "baseline")})
        out.update(effect_verdict(out["method"], out["baseline"], lower_is_better))
    return out


def longtail_row(method: str, *, fid: Optional[float] = None, fid_head: Optional[float] = None,
                 fid_tail: Optional[float] = None, recall: Optional[float] = None,
                 balanced_accuracy: Optional[float] = None, seeds: int = 1, note: str = "") -> Dict[str, Any]:
    """One row of the CIFAR-10-LT table (any metric may be missing for a method it does not apply to)."""
    return {"method": method, "fid": fid, "fid_head": fid_head, "fid_tail": fid_tail, "recall": recall,
            "balanced_accuracy": balanced_accuracy, "seeds": int(seeds), "note": note}


def load_results(folder: Path) -> Dict[str, Dict[str, Any]]:
    """``{results key: parsed JSON}`` for every chapter whose ``<key>.json`` exists in ``folder``."""
    out = {}
    for key in CHAPTERS.values():
        path = Path(folder) / f"{key}.json"
        if path.is_file():
            try:
                out[key] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc}); rerun the chapter to rewrite it") from exc
    return out


def _gpu_minutes(res: Dict[str, Any]) -> str:
    prov = res.get("provenance") or {}
    wall = prov.get("wall_time_s")
    device = prov.get("device", "")
    if wall is None:
        return "—"
    return f"{wall / 60:.1f} ({device})" if device else f"{wall / 60:.1f}"


def render_results_page(results: Dict[str, Dict[str, Any]]) -> str:
    """Markdown for the results page from :func:`load_results`'s output (chapters without a file: "not run").

    The tables go through :func:`lt_diffusion.plotting.metrics_table`, like every table in the chapters.
    """
    from lt_diffusion.plotting import metrics_table

    rows = []
    for stem, key in CHAPTERS.items():
        res = results.get(key)
        row: Dict[str, Any] = {"chapter": f"[{stem}](../notebooks/{stem}.ipynb)"}
        if res is None:
            rows.append({**row, "headline (ours)": "not run at `book` scale yet (needs a GPU)"})
            continue
        h, scale = res.get("headline"), res.get("scale", "?")
        row.update({"scale": scale, "compute, min": _gpu_minutes(res)})
        if h is None:
            rows.append({**row, "headline (ours)": "results file has no headline entry"})
            continue
        verdict = h.get("verdict", "no comparison") if h.get("comparable", True) else f"not comparable ({scale})"
        gain = None if "gain" not in h else (
            f"{h['gain']:.3g}" + (f" ({h['spread']:.2g})" if h.get("spread") is not None else " (one seed)"))
        paper = None if h.get("paper_value") is None else f"{h['paper_value']:.3g} ({h.get('paper_setting', '')})"
        rows.append({**row, "headline (ours)": h["metric"], "ours": h["value"], "paper": paper,
                     "the paper's effect": h["claim"], "reproduced in direction?": verdict,
                     "gain (seed spread)": gain})
    columns = ["chapter", "headline (ours)", "scale", "ours", "paper", "the paper's effect",
               "reproduced in direction?", "gain (seed spread)", "compute, min"]
    out = ["## Every chapter's headline", "", metrics_table(rows, columns, {"ours": ".4g"}), ""]

    out += ["## The long tail: CIFAR-10-LT across methods", ""]
    lt_rows = [{"method": r["method"], "chapter": key, "FID (all)": r.get("fid"), "FID (head)": r.get("fid_head"),
                "FID (tail)": r.get("fid_tail"), "recall": r.get("recall"),
                "balanced accuracy": r.get("balanced_accuracy"), "seeds": r.get("seeds", 1), "note": r.get("note", "")}
               for key in CHAPTERS.values() for r in (results.get(key) or {}).get("longtail", [])]
    if not lt_rows:
        out.append("No chapter has reported CIFAR-10-LT numbers at `book` scale yet.")
    else:
        fid_fmt = {c: ".2f" for c in ("FID (all)", "FID (head)", "FID (tail)")}
        out.append(metrics_table(lt_rows, None, {**fid_fmt, "recall": ".3f", "balanced accuracy": ".3f"}))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- the CPU labs
_STEMS = {key: stem for stem, key in CHAPTERS.items()}


def load_lab_results(folder: Path) -> tuple:
    """``({results key: lab JSON}, benchmark JSON or None)`` from ``folder`` (``results/lab``)."""
    folder = Path(folder)
    labs = {}
    for key in CHAPTERS.values():
        path = folder / f"{key}.json"
        if path.is_file():
            try:
                labs[key] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc}); rerun python scripts/run_labs.py {key}") from exc
    bench_path = folder / "longtail_benchmark.json"
    bench = None
    if bench_path.is_file():
        try:
            bench = json.loads(bench_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{bench_path}: not valid JSON ({exc}); rerun python scripts/run_labs.py") from exc
    return labs, bench


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def render_lab_section(labs: Dict[str, Dict[str, Any]], benchmark: Optional[Dict[str, Any]],
                       figure: Optional[str] = None) -> str:
    """Markdown for the labs: one row per tested claim, then the long-tail benchmark (table, and ``figure``, a
    path relative to the results page, when given)."""
    from lt_diffusion.plotting import metrics_table

    out = ["## What the labs show", ""]
    rows = []
    for key, stem in _STEMS.items():
        lab = labs.get(key)
        if lab is None:
            rows.append({"chapter": f"[{stem}](../notebooks/{stem}.ipynb)", "claim tested": "no lab results yet"})
            continue
        for c in lab["labs"]:
            m, b = c["arms"][c["method"]], c["arms"][c["baseline"]]
            rows.append({"chapter": f"[{stem}](../notebooks/{stem}.ipynb)", "claim tested": c["claim"],
                         "metric": c["metric"], "arm": c["method"], "ours": _mean(m), "against": c["baseline"],
                         "its value": _mean(b), "gain (seed spread)": f"{c['gain']:.3g} ({c['spread']:.2g})",
                         "reproduced?": c["verdict"], "seeds": len(m), "lab wall time, s": c["wall_s"]})
    out.append(metrics_table(rows, None, {"ours": ".4g", "its value": ".4g", "lab wall time, s": ".0f"}))
    out.append("")
    for key, stem in _STEMS.items():
        if key in labs and labs[key].get("summary"):
            out.append(f"- **{stem}**: {labs[key]['summary']}")
    out += ["", "## The long-tail benchmark", ""]
    if benchmark is None:
        out.append("The benchmark has not been run yet (`python scripts/run_labs.py longtail_benchmark`).")
        return "\n".join(out) + "\n"
    cols = [("fidelity_head", "fidelity, head"), ("fidelity_tail", "fidelity, tail"),
            ("recall_head", "recall, head"), ("recall_tail", "recall, tail"),
            ("share_tail", "share in the tail"),
            ("balanced_accuracy_head", "balanced accuracy, head"),
            ("balanced_accuracy_tail", "balanced accuracy, tail")]
    brows = []
    for r in benchmark["rows"]:
        row = {"method": r["method"], "chapter": r["chapter"], "setting": r["setting"]}
        for k, label in cols:
            if k in r:
                row[label] = f"{r[k]['mean']:.3f} ({r[k]['spread']:.3f})"
        brows.append(row)
    out.append(f"Mean over {len(benchmark['seeds'])} seeds, with the seed spread (max - min) in brackets; "
               f"wall time {benchmark['wall_s']:.0f} s on the chapter labs' networks.")
    out += ["", metrics_table(brows, ["method", "chapter", "setting"] + [c[1] for c in cols]), ""]
    if figure:
        out += [f"![The long-tail benchmark: head and tail for every method]({figure})", ""]
    return "\n".join(out) + "\n"


_PROVENANCE_ROW = re.compile(r"^\|\s*(scale|device|commit)\s*\|\s*([^|]+?)\s*\|\s*$", re.M)


def page_provenance(notebook: Path) -> Dict[str, str]:
    """``{"scale", "device", "commit"}`` of the run whose outputs a committed chapter shows, read from the provenance
    table in its outputs (``finish_chapter``'s last cell); ``{}`` when the notebook shows none."""
    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    found: Dict[str, str] = {}
    for cell in cells:
        for out in cell.get("outputs", []):
            text = (out.get("data") or {}).get("text/markdown", "")
            text = "".join(text) if isinstance(text, list) else text
            rows = dict(_PROVENANCE_ROW.findall(text))
            if "scale" in rows:
                found = rows
    return found


def edition_status(results: Dict[str, Dict[str, Any]], labs: Optional[Dict[str, Dict[str, Any]]] = None,
                   pages: Optional[Dict[str, Dict[str, str]]] = None) -> str:
    """The "state of this edition" note: at which scale each chapter page's outputs were made (``pages``, from
    :func:`page_provenance` of the committed notebooks), which `book`/`paper` runs are recorded in ``results`` for
    chapters whose page shows another run, and how many chapters have an exact-data lab."""
    pages = pages or {}
    full = [stem for stem in CHAPTERS if (pages.get(stem) or {}).get("scale") in ("book", "paper")]
    rest = [stem for stem in CHAPTERS if stem not in full]

    def names(stems):   # "01", "02-05 and 08": consecutive chapters as ranges
        nums = [int(s.split("_")[0]) for s in stems]
        runs, start = [], nums[0]
        for a, b in zip(nums, nums[1:] + [None]):
            if b != a + 1:
                runs.append(f"{start:02d}" if start == a else f"{start:02d}–{a:02d}")
                start = b
        return ", ".join(runs[:-1]) + (" and " if len(runs) > 1 else "") + runs[-1]

    def plural(stems, one, many):
        return many if len(stems) > 1 else one

    parts = ["State of this edition:"]
    if full:
        devices = sorted({pages[s].get("device", "a GPU") for s in full})
        parts.append(f"{plural(full, 'chapter', 'chapters')} {names(full)} {plural(full, 'shows', 'show')} the "
                     f"outputs of a `book`-scale run ({', '.join(devices)});")
    if rest:
        parts.append(f"{plural(rest, 'chapter', 'chapters')} {names(rest)} {plural(rest, 'shows', 'show')} "
                     "`smoke`-scale outputs: they check that the code runs, and their image-model numbers measure "
                     "nothing.")
    recorded = [stem for stem in rest if (results.get(CHAPTERS[stem]) or {}).get("scale") in ("book", "paper")]
    if recorded:
        parts.append(f"An earlier `book` run of {plural(recorded, 'chapter', 'chapters')} {names(recorded)}, made "
                     "with a previous version of the code, is recorded on the Results at a glance page.")
    n_labs = len(labs or {})
    if n_labs:
        parts.append(f"The exact-data labs of {n_labs} of the {len(CHAPTERS)} chapters run at full size on a CPU, so "
                     f"their numbers are real at every scale (see Results at a glance).")
    return " ".join(parts) + "\n"
