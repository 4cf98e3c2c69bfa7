#!/usr/bin/env python
"""Scan committed notebooks for what their readers should never see.

Each finding names the notebook, the cell (0-based index, as in ``nb.cells``), a kind, and an excerpt. Kinds:

``warning``        a warning in an output (``…Warning:``), usually on stderr
``stderr``         any other stderr output (logging, progress bars)
``error``          an error output (the notebook stopped with an exception)
``progress-bar``   progress-bar redraws (carriage returns) or a widget bar in an output
``machine-path``   a path of the machine that ran it (``/home/…``, ``…/site-packages/…``, ``/tmp/…``)
``object-repr``    an object's default repr as a result (``<… at 0x7f…>``, ``Text(0.5, 1.0, …)``)
``raw-dict``       a dict printed as a result (``{'value': 507.9, 'verdict': …}``)
``raw-table``      a markdown table printed as text instead of displayed (``| a | b |`` / ``|---|``)
``control-char``   a control character in a cell's source or output (e.g. ``\\b``, ``\\a``, ``\\f`` left by
                   LaTeX in a non-raw Python string: ``"\\bar"`` is a backspace and ``ar``)
``build-trace``    words about how the book was produced, not for its readers (remote-GPU call lengths, borrowed
                   machines, sessions, this machine's core count, ``../shared``, ``papers.md``, ``DESIGN.md``,
                   "about N GPU-hours" placeholders, "no GPU was available")
``log-line``       a file-writing log line (``wrote results/smoke/p2.json``)
``smoke-result``   in a notebook whose provenance says ``smoke``: a CIFAR-10 metric table, a printed metric value,
                   or a verdict, presented as a result (a cell tagged ``scale-independent`` is exempt: schedules,
                   closed forms and exact toys are shown at every scale)

Importable (:func:`scan_notebook`, :func:`scan`) and a command line tool:

    python scripts/check_notebooks.py notebooks/*.ipynb [--kind KIND ...] [--ignore KIND ...] [--json]

Exit status 0 when nothing was found (among the selected kinds), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

KINDS = ("warning", "stderr", "error", "progress-bar", "machine-path", "object-repr", "raw-dict", "raw-table",
         "control-char", "build-trace", "log-line", "smoke-result")
EXEMPT_TAG = "scale-independent"

# Control characters other than newline and carriage return (tab included: in a source it is usually "\t"
# from a LaTeX "\text", "\theta", "\tau" in a non-raw string). ANSI escapes (\x1b) in outputs are colours.
SOURCE_CONTROL = re.compile(r"[\x00-\x08\x09\x0b\x0c\x0e-\x1f\x7f]")
OUTPUT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
CARRIAGE_RETURN = re.compile(r"\r(?!\n)")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b:")
MACHINE_PATH = re.compile(
    r"(?<![\w.~])(?:/home/|/Users/|/root/|/tmp/|/work/|/opt/|/mnt/|/private/|/var/folders/|[A-Za-z]:\\Users\\)"
    r"|[\w.-]*/site-packages/|/\.venv/|/dist-packages/|/lib/python3\.\d+/")
OBJECT_REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>|^Text\(-?[\d.]+, -?[\d.]+, |^\[<matplotlib\.")
RAW_DICT = re.compile(r"(?:^|[\s:=(\[])\{\s*['\"][^'\"\n]{1,60}['\"]\s*:\s*[^\n]")
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
LOG_LINE = re.compile(r"^\s*(?:wrote|saved|writing|saving)\s+\S+\.(?:json|png|pdf|pt|pth|npz|npy|csv|ipynb)\b",
                      re.IGNORECASE | re.MULTILINE)
BUILD_TRACE = re.compile(
    "|".join([
        r"\b\d+[- ]?(?:minute|min|second|s)[- ](?:remote[- ])?(?:GPU[- ])?call\b",
        r"\bremote[- ]GPU\b",
        r"\bGPU call\b",
        r"\b(?:borrowed|lent)\b",
        r"\bsessions?\b",
        r"\b\d+-core\b",
        r"\bthis (?:project|machine)'s (?:\d+-core )?CPU\b",
        r"\.\./shared\b",
        r"\bpapers\.md\b",
        r"\bassets README\b",
        r"\bDESIGN\.md\b",
        r"\babout N\b",
        r"\bN GPU-hours\b",
        r"\bno GPU was available\b",
        r"\bhad no GPU\b",
    ]),
    re.IGNORECASE)
# What a CIFAR-10 result looks like: a metric column in a table header, a metric printed with a value, a verdict.
METRIC = r"(?:FID|KID|NLL|LPIPS|bits/dim|bpd|[Pp]recision|[Rr]ecall|[Aa]ccuracy)"
METRIC_COLUMN = re.compile(rf"^(?:(?:head|mid|tail|mean|best|per-class)\s+)?{METRIC}"
                           r"(?:\s*$|\s*[(@×<>]|\s+(?:ours|vs|DDIM|to|of|on|\d))")
METRIC_VALUE = re.compile(rf"\b{METRIC}\b[^\n\d]{{0,25}}-?\d+\.\d+")
VERDICT = re.compile(r"\bverdict\b|\breproduced\b|\bwithin (?:the )?seed spread\b|\bpaper's (?:finding|claim)\b"
                     r"|\bholds here\b|\bdoes not hold\b", re.IGNORECASE)
# A printed code listing (inspect.getsource and the like): its dicts and words are code, not results.
CODE_LISTING = re.compile(r"^\s*(?:def |class |return |@\w|import |from \S+ import )", re.MULTILINE)
FENCED_CODE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
SCALE_IN_OUTPUT = re.compile(
    r"\|\s*scale\s*\|\s*(smoke|book|paper)\s*\||>scale</td>\s*<td[^>]*>(smoke|book|paper)<"
    r"|\bscale\s*[=:]\s*['\"]?(smoke|book|paper)\b|ran at the (smoke|book|paper) scale", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One thing a reader should not see: ``notebook``, ``cell`` index, ``kind``, ``where`` (``source`` or
    ``output``) and an ``excerpt`` around it."""

    notebook: str
    cell: int
    kind: str
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell} [{self.kind}] {self.where}: {self.excerpt}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _excerpt(text: str, match: re.Match | None = None, width: int = 70) -> str:
    if match is None:
        snippet = text[:width]
    else:
        line_start = text.rfind("\n", 0, match.start()) + 1
        start = line_start if match.start() - line_start <= width // 2 else match.start() - width // 3
        snippet = text[start:start + width]
    return repr(" ".join(snippet.split(" ")).replace("\n", " ⏎ "))[1:-1][: width + 20]


def _outputs(cell: Mapping[str, Any]) -> Iterable[tuple[str, str, str]]:
    """``(output_type, mime or stream name, text)`` for every textual part of a cell's outputs."""
    for out in cell.get("outputs", []) or []:
        kind = out.get("output_type", "")
        if kind == "stream":
            yield kind, out.get("name", "stdout"), _text(out.get("text"))
        elif kind == "error":
            yield kind, "error", f"{out.get('ename', '')}: {out.get('evalue', '')}"
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {}) or {}
            for mime, value in data.items():
                if mime.startswith("text/") or mime.endswith("+json"):
                    text = value if isinstance(value, str) else (
                        _text(value) if isinstance(value, list) else json.dumps(value))
                    yield kind, mime, text


def notebook_scale(nb: Mapping[str, Any]) -> str | None:
    """The scale a notebook's outputs were computed at, read from its outputs (provenance table, scale note,
    printed ``scale=…``); ``None`` when the outputs do not say."""
    found = []
    for cell in nb.get("cells", []):
        for _, _, text in _outputs(cell):
            for m in SCALE_IN_OUTPUT.finditer(text):
                found.append(next(g for g in m.groups() if g).lower())
    if not found:
        return None
    # The provenance table comes last; the last statement wins.
    return found[-1]


def scan_notebook(nb: Mapping[str, Any] | str | Path, name: str | None = None) -> list[Finding]:
    """Every finding in one notebook (a path or an already-read notebook dict)."""
    if not isinstance(nb, Mapping):
        path = Path(nb)
        name = name or path.as_posix()
        nb = json.loads(path.read_text(encoding="utf-8"))
    name = name or "<notebook>"
    scale = notebook_scale(nb)
    findings: list[Finding] = []

    def add(i: int, kind: str, where: str, text: str, match: re.Match | None = None) -> None:
        findings.append(Finding(name, i, kind, where, _excerpt(text, match)))

    for i, cell in enumerate(nb.get("cells", [])):
        source = _text(cell.get("source"))
        tags = set((cell.get("metadata") or {}).get("tags", []) or [])
        if m := SOURCE_CONTROL.search(source):
            add(i, "control-char", "source", source, m)
        if cell.get("cell_type") == "markdown" or cell.get("cell_type") == "code":
            for pattern, kind in ((MACHINE_PATH, "machine-path"), (BUILD_TRACE, "build-trace")):
                if m := pattern.search(source):
                    add(i, kind, "source", source, m)
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []) or []:
            data = out.get("data", {}) or {}
            if "application/vnd.jupyter.widget-view+json" in data:
                add(i, "progress-bar", "output", _text(data.get("text/plain", "widget")))
        for otype, mime, text in _outputs(cell):
            if otype == "error":
                add(i, "error", "output", text)
                continue
            if m := WARNING.search(text):
                add(i, "warning", "output", text, m)
            elif mime == "stderr" and text.strip():
                add(i, "stderr", "output", text)
            if m := OUTPUT_CONTROL.search(text):
                add(i, "control-char", "output", text, m)
            if m := CARRIAGE_RETURN.search(text):
                add(i, "progress-bar", "output", text, m)
            if mime == "application/vnd.jupyter.widget-view+json":
                continue
            for pattern, kind in ((MACHINE_PATH, "machine-path"), (BUILD_TRACE, "build-trace"),
                                  (LOG_LINE, "log-line")):
                if m := pattern.search(text):
                    add(i, kind, "output", text, m)
            if mime in ("text/plain", "stdout"):
                if otype == "execute_result" or mime == "stdout":
                    for line in text.splitlines():
                        if m := OBJECT_REPR.search(line):
                            add(i, "object-repr", "output", line, m)
                            break
                # A figure's text/plain ("<Figure size 600x360 with 1 Axes>") beside its image is not shown.
                if not CODE_LISTING.search(text) and (m := RAW_DICT.search(text)):
                    add(i, "raw-dict", "output", text, m)
                if mime == "stdout" and (m := RAW_TABLE.search(text)):
                    add(i, "raw-table", "output", text, m)
        if scale == "smoke" and EXEMPT_TAG not in tags:
            findings += _smoke_results(name, i, cell)
    return findings


def _shown_text(out: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(mime, text)`` of what the book shows for one output: a stream's text, or the richest textual
    representation (markdown, then HTML, then plain text) of a display or result; ``None`` otherwise."""
    if out.get("output_type") == "stream":
        return out.get("name", "stdout"), _text(out.get("text"))
    data = out.get("data", {}) or {}
    if any(k.startswith("image/") for k in data):
        return None  # a figure; its text/plain twin is not shown
    for mime in ("text/markdown", "text/html", "text/plain"):
        if mime in data:
            return mime, _text(data[mime])
    return None


def _smoke_results(name: str, i: int, cell: Mapping[str, Any]) -> list[Finding]:
    """CIFAR-10 results shown by one cell of a smoke-scale notebook (metric tables, metric values, verdicts)."""
    out: list[Finding] = []
    for output in cell.get("outputs", []) or []:
        shown = _shown_text(output)
        if shown is None or shown[0] == "stderr":
            continue
        mime, text = shown
        if SCALE_IN_OUTPUT.search(text) or text.lstrip().startswith("pipeline check"):
            continue  # the provenance table, the scale note, a pipeline check
        text = FENCED_CODE.sub("", text)
        if mime in ("stdout", "text/plain") and CODE_LISTING.search(text):
            continue
        header = _table_header(text, mime)
        columns = [c.strip() for c in (header or "").split("|")]
        metric_columns = [c for c in columns if METRIC_COLUMN.search(c)]
        if metric_columns:
            out.append(Finding(name, i, "smoke-result", "output",
                               f"metric table with {', '.join(metric_columns)}: " + _excerpt(header)))
        elif m := METRIC_VALUE.search(text):
            out.append(Finding(name, i, "smoke-result", "output", "metric value: " + _excerpt(text, m)))
        elif m := VERDICT.search(text):
            out.append(Finding(name, i, "smoke-result", "output", "verdict: " + _excerpt(text, m)))
    return out


def _table_header(text: str, mime: str) -> str | None:
    """The header row of a markdown or HTML table in ``text``, if it holds one."""
    if mime == "text/html":
        m = re.search(r"<thead>(.*?)</thead>", text, re.DOTALL | re.IGNORECASE)
        return re.sub(r"<[^>]+>", " | ", m.group(1)) if m else None
    lines = text.splitlines()
    for a, b in zip(lines, lines[1:]):
        if a.strip().startswith("|") and RAW_TABLE.search(b + "|"):
            return a
    return None


def scan(paths: Iterable[str | Path]) -> list[Finding]:
    """Every finding in every notebook of ``paths``."""
    return [f for p in paths for f in scan_notebook(p)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to scan (default: notebooks/*.ipynb of the repository)")
    parser.add_argument("--kind", action="append", choices=KINDS, help="report only these kinds (repeatable)")
    parser.add_argument("--ignore", action="append", default=[], choices=KINDS, help="skip these kinds (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
    findings = [f for f in scan(paths)
                if (not args.kind or f.kind in args.kind) and f.kind not in args.ignore]
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=1, ensure_ascii=False))
    else:
        for f in findings:
            print(f)
        counts = Counter(f.kind for f in findings)
        summary = ", ".join(f"{k}: {counts[k]}" for k in KINDS if counts[k]) or "nothing found"
        print(f"check_notebooks: {len(paths)} notebooks, {len(findings)} findings ({summary})")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
