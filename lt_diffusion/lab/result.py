"""What a lab returns: its claims with per-seed arms and verdicts, the data of its one figure, and provenance.

A claim (:func:`claim`) is the paper's effect in one sentence, the metric that tests it, the arms' values per
seed, and :func:`lt_diffusion.experiments.summary.effect_verdict`'s verdict for the method arm against the
baseline arm. :func:`summary_sentence` writes what reproduced and what did not from those numbers; nothing
in it is typed by hand. :class:`LabResult` is what ``results/lab/<chapter>.json`` holds.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Sequence

from ..experiments.summary import effect_verdict

__all__ = ["claim", "LabResult", "summary_sentence", "claim_sentence", "mean"]


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _round(v: float, digits: int = 6) -> float:
    return float(f"{float(v):.{digits}g}")


def claim(text: str, metric: str, arms: Dict[str, Sequence[float]], method: str, baseline: str,
          lower_is_better: bool, wall_s: float, short: str, note: str = "") -> Dict[str, Any]:
    """One tested claim.

    Args:
        text: the paper's claim in one sentence (with its citation in words, e.g. "(Ho & Salimans 2022)").
        metric: what the numbers are, with the direction the claim predicts.
        arms: ``{arm: [value per seed]}`` (at least 3 seeds each; all arms of the comparison, e.g. a sweep).
        method, baseline: the two arms the verdict compares (the claim predicts ``method`` better).
        lower_is_better: the direction of "better" for this metric *as the claim states it*.
        wall_s: the lab's wall time (the whole chapter lab: training, sampling, scoring).
        short: a few words for the generated summary ("DDIM beats ancestral sampling at 10 steps").
        note: a design remark (what the arms hold fixed), optional.
    """
    for name in (method, baseline):
        if name not in arms:
            raise ValueError(f"arm {name!r} not in arms {sorted(arms)}")
    arms = {k: [_round(v) for v in vals] for k, vals in arms.items()}
    if min(len(v) for v in arms.values()) < 3:
        raise ValueError(f"every arm needs at least 3 seeds, got {({k: len(v) for k, v in arms.items()})}")
    if any(not math.isfinite(v) for vals in arms.values() for v in vals):
        raise ValueError(f"non-finite value in arms {arms}")
    v = effect_verdict(arms[method], arms[baseline], lower_is_better)
    return {"claim": text, "short": short, "metric": metric, "lower_is_better": bool(lower_is_better),
            "method": method, "baseline": baseline, "arms": arms, "verdict": v["verdict"],
            "gain": _round(v["gain"]), "spread": None if v["spread"] is None else _round(v["spread"]),
            "wall_s": round(float(wall_s), 1), "note": note}


def claim_sentence(c: Dict[str, Any]) -> str:
    """One generated sentence for a claim: what the numbers say about it."""
    m, b = c["arms"][c["method"]], c["arms"][c["baseline"]]
    nums = (f"{c['method']} {mean(m):.4g} vs {c['baseline']} {mean(b):.4g} ({c['metric']}, mean of "
            f"{len(m)} seeds; seed spread {c['spread']:.2g})")
    if c["verdict"] == "yes":
        return f"{c['short']}: reproduced, {nums}."
    if c["verdict"].startswith("yes"):
        return f"{c['short']}: the paper's direction, but within the seed spread, {nums}."
    return f"{c['short']}: did not reproduce, {nums}."


def summary_sentence(claims: Sequence[Dict[str, Any]]) -> str:
    """What reproduced and what did not, from the verdicts (one sentence per group)."""
    yes = [c["short"] for c in claims if c["verdict"] == "yes"]
    weak = [c["short"] for c in claims if c["verdict"].startswith("yes") and c["verdict"] != "yes"]
    no = [c["short"] for c in claims if c["verdict"] == "no"]
    parts = []
    if yes:
        parts.append("Reproduced beyond the seed spread: " + "; ".join(yes) + ".")
    if weak:
        parts.append("In the paper's direction but within the seed spread: " + "; ".join(weak) + ".")
    if no:
        parts.append("Did not reproduce: " + "; ".join(no) + ".")
    return " ".join(parts)


@dataclass
class LabResult:
    """A chapter's lab run.

    Attributes:
        chapter: the results key (``experiments.summary.CHAPTERS``' values, e.g. ``"p2"``).
        title: the lab's name; question: the one question its figure answers.
        design: the lab's design choices in a few sentences (world, model size, steps, arms).
        labs: the claims (:func:`claim`).
        figure: what :func:`lt_diffusion.lab.plot_lab` draws (small lists of numbers).
        seeds, wall_s: the run's seeds and wall time; provenance: :func:`lt_diffusion.provenance.record`.
    """

    chapter: str
    title: str
    question: str
    design: str
    labs: List[Dict[str, Any]]
    figure: Dict[str, Any]
    seeds: List[int]
    wall_s: float
    provenance: Dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """What reproduced and what did not (generated from the verdicts)."""
        return summary_sentence(self.labs)

    @property
    def claims(self) -> List[str]:
        """The papers' claims this lab tests, one sentence each."""
        return [c["claim"] for c in self.labs]

    def sentences(self) -> List[str]:
        """One generated sentence per claim, with the numbers."""
        return [claim_sentence(c) for c in self.labs]

    def to_json(self) -> Dict[str, Any]:
        out = asdict(self)
        out["summary"] = self.summary
        return out

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "LabResult":
        keys = {"chapter", "title", "question", "design", "labs", "figure", "seeds", "wall_s", "provenance"}
        return cls(**{k: obj[k] for k in keys if k in obj})

    def verdicts(self) -> Dict[str, str]:
        """``{claim short name: verdict}``."""
        return {c["short"]: c["verdict"] for c in self.labs}

    def __repr__(self) -> str:
        return f"LabResult({self.chapter!r}, {len(self.labs)} claims, seeds={self.seeds}, wall_s={self.wall_s:.0f})"
