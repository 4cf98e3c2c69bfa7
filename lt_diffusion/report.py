"""What a chapter shows its reader: tables, the note on the scale of the run, and pipeline checks.

A number computed at the ``smoke`` scale (tiny models, a handful of steps, a few samples) says only that the
code runs; it is never shown as a result. The chapters therefore decide with one predicate what a CIFAR-10
experiment shows::

    from lt_diffusion import report

    run = provenance.start_run(SCALE, SEED)          # stops early on a bad SCALE, or on 'book' without CUDA
    display(report.scale_note(run, chapter="05_p2"))  # one admonition: what this run is, and what it is not
    ...
    if report.shows_results(SCALE):                  # 'book' or 'paper'
        display(plotting.metrics_table(rows))        # tables, figures, verdicts, paper-claim checks
    else:
        report.pipeline_check("FID sweep", timer, samples=samples, fid=fids)  # it ran, shapes, wall time

Deterministic material (schedules, closed forms, exact toys) does not depend on the scale and is shown at
every scale.

:class:`Table` is the one table type of the package (:func:`lt_diffusion.plotting.metrics_table` and
:func:`lt_diffusion.provenance.provenance_table` return it): a ``str`` holding a markdown table, with an HTML
rendering for Jupyter. In the built book the markdown form is rendered (MyST-NB prefers ``text/markdown``,
see ``_config.yml``), so cell outputs and book pages get the same tables.
"""
from __future__ import annotations

import html as _html
import math
import numbers
from typing import Any, Mapping, Sequence

__all__ = [
    "RESULT_SCALES",
    "SCALES",
    "Note",
    "PipelineCheck",
    "Table",
    "pipeline_check",
    "scale_note",
    "shows_results",
    "table",
]

SCALES = ("smoke", "book", "paper")
RESULT_SCALES = ("book", "paper")


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
class Table(str):
    """A table: the ``str`` is markdown (for ``.md`` pages and ``IPython.display.Markdown``); Jupyter renders
    it as HTML (``_repr_html_``: class ``lt-table``, numbers right-aligned, padded cells).

    ``rows``/``columns`` keep the data; ``to_pandas()`` gives a DataFrame when pandas is installed.
    """

    rows: list[dict]
    columns: list[str]
    html: str

    def __new__(cls, markdown: str, html: str, rows: list[dict], columns: list[str]):
        obj = super().__new__(cls, markdown)
        obj.html, obj.rows, obj.columns = html, rows, columns
        return obj

    @property
    def markdown(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.html

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_pandas needs pandas; the markdown/HTML forms work without it") from exc
        return pd.DataFrame(self.rows, columns=self.columns)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool) and not _is_bool(value)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Real) and not _is_bool(value) and math.isnan(float(value)))


def _cell(value: Any, fmt: str | None) -> str:
    if _is_missing(value):
        return "–"
    if _is_bool(value):
        return str(bool(value))
    if isinstance(value, numbers.Integral) and fmt:
        return format(int(value), fmt)
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return format(float(value), fmt or ".4g")
    return str(value)


# Inline styles make the HTML readable where the book's stylesheet is absent (Jupyter, Colab); the
# book's CSS (book/_static/lt-diffusion.css) styles the same classes.
_CELL_STYLE = "padding:0.25em 0.8em"
_NUM_STYLE = "text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap"


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    formats: Mapping[str, str] | None = None,
    *,
    kind: str | None = None,
) -> Table:
    """Render ``rows`` (one dict per row) as a :class:`Table`; missing cells show "–".

    Args:
        rows: one mapping per row, ``{column: value}``.
        columns: column order (default: keys in order of first appearance).
        formats: per-column format specs, e.g. ``{"FID": ".2f"}``; floats default to ``.4g``.
        kind: an extra CSS class ``lt-<kind>`` on the HTML table (e.g. ``"metrics"``, ``"provenance"``).

    A column whose present values are all numbers is right-aligned (``---:`` in markdown, ``lt-num`` in HTML).
    """
    rows = [dict(r) for r in rows]
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    columns = [str(c) for c in columns]
    formats = dict(formats or {})
    body = [[_cell(r.get(c), formats.get(c)) for c in columns] for r in rows]
    present = [[r.get(c) for r in rows if not _is_missing(r.get(c))] for c in columns]
    numeric = [bool(vals) and all(_is_number(v) for v in vals) for vals in present]

    def md_row(cells):
        cells = [c.replace("|", "\\|").replace("\n", " ").strip() for c in cells]
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    md = [md_row(columns), "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    md += [md_row(r) for r in body]

    def attrs(n: bool) -> str:
        return (f' class="lt-num" style="{_CELL_STYLE};{_NUM_STYLE}"' if n
                else f' style="{_CELL_STYLE};text-align:left"')

    classes = "lt-table" + (f" lt-{kind}" if kind else "")
    html = [f'<table class="{classes}" style="border-collapse:collapse">', "<thead><tr>"]
    html += [f"<th{attrs(n)}>{_html.escape(c)}</th>" for c, n in zip(columns, numeric)]
    html += ["</tr></thead>", "<tbody>"]
    for r in body:
        html.append("<tr>" + "".join(f"<td{attrs(n)}>{_html.escape(s)}</td>" for s, n in zip(r, numeric))
                    + "</tr>")
    html += ["</tbody>", "</table>"]
    return Table("\n".join(md), "".join(html), rows, columns)


# --------------------------------------------------------------------------------------------------
# the scale of a run
# --------------------------------------------------------------------------------------------------
def _scale_of(run: Any) -> str:
    """The scale named by a scale string, a :class:`lt_diffusion.provenance.Run` or a provenance record."""
    if isinstance(run, str):
        scale = run
    elif isinstance(run, Mapping):
        scale = run.get("scale")
    else:
        scale = getattr(run, "scale", None)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {list(SCALES)} "
                         "(a scale name, a provenance Run or a provenance record)")
    return scale


def shows_results(run: Any) -> bool:
    """True when CIFAR-10 numbers of this run may be shown as results: the scale is ``book`` or ``paper``.

    ``run``: a scale name (``SCALE``), a :class:`~lt_diffusion.provenance.Run` or a provenance record dict.
    At ``smoke`` (False) a chapter shows a :func:`pipeline_check` instead of tables, figures, verdicts and
    paper-claim checks of CIFAR-10 numbers. Raises ``ValueError`` for an unknown scale.
    """
    return _scale_of(run) in RESULT_SCALES


class Note(str):
    """A note for the reader: the ``str`` is MyST markdown (an admonition), rendered by the book;
    Jupyter and Colab show its HTML form, and a terminal its plain text (``text``)."""

    html: str
    text: str

    def __new__(cls, markdown: str, html: str, text: str):
        obj = super().__new__(cls, markdown)
        obj.html, obj.text = html, text
        return obj

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # what a bare expression prints outside Jupyter
        return self.text


def _minutes(seconds: Any) -> str | None:
    if not isinstance(seconds, numbers.Real) or _is_missing(seconds):
        return None
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def scale_note(run: Any, chapter: str | None = None) -> Note:
    """One admonition, generated from the provenance, that says what the outputs of this page are.

    Args:
        run: a :class:`~lt_diffusion.provenance.Run` (from ``start_run``), a provenance record
            (``provenance.record`` / ``Run.record``), or a scale name.
        chapter: the notebook's name (``"05_p2"``), for the command that reruns it at ``book`` scale.

    At ``smoke``: the CIFAR-10 outputs only check that the pipeline runs, and the chapter's CIFAR-10 results
    await a ``book`` run on a GPU. At ``book``/``paper``: which run the results come from (scale, device, and
    commit, seeds and wall time when ``run`` is a record).
    """
    scale = _scale_of(run)
    rec: Mapping[str, Any] = run if isinstance(run, Mapping) else {}
    device = rec.get("device")
    if device is None and not isinstance(run, str):
        from lt_diffusion.provenance import device_name

        device = device_name()
    on = f" on {device}" if device else ""
    notebook = f"notebooks/{chapter}.ipynb" if chapter else "notebooks/<chapter>.ipynb"
    command = f"papermill {notebook} out.ipynb -p SCALE book"
    if scale == "smoke":
        title = "This page ran at the smoke scale: its CIFAR-10 results await a book run"
        kind = "warning"
        paras = [
            f"The outputs on this page were computed at the `smoke` scale{on}: tiny models, a handful of "
            "training steps and a few samples, so that the whole chapter runs on a CPU in minutes. Its CIFAR-10 "
            "experiments print only a pipeline check (that they ran, the shapes of what they produced, the wall "
            "time); their numbers say nothing about the method and are not shown.",
            "The chapter's CIFAR-10 tables, figures and comparisons with the paper await a `book` run on a GPU: "
            f"`{command}`. Schedules, closed forms and exact toy experiments do not depend on the scale; "
            "they are shown as computed.",
        ]
    else:
        what = ("a `book` run: models and sample sizes scaled to minutes on one GPU, so compare the direction of "
                "an effect with the paper's, not absolute numbers" if scale == "book"
                else "a `paper` run, with the paper's settings where they are known")
        title = f"The results on this page come from a {scale} run"
        kind = "note"
        details = []
        if rec.get("commit"):
            details.append(f"commit `{str(rec['commit'])[:12]}`")
        if rec.get("seeds") is not None:
            seeds = rec["seeds"] if isinstance(rec["seeds"], (list, tuple)) else [rec["seeds"]]
            details.append(("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds))
        wall = _minutes(rec.get("wall_time_s"))
        if wall:
            details.append(f"{wall} wall time")
        paras = [f"The outputs on this page were computed{on} in {what}."
                 + (f" The run: {'; '.join(details)}." if details else "")
                 + " The provenance table at the end of the page records it."]
    markdown = "\n".join([f":::{{admonition}} {title}", f":class: {kind}", "", "\n\n".join(paras), ":::", ""])
    html_paras = "".join(f"<p>{_md_inline_to_html(p)}</p>" for p in paras)
    html = (f'<div class="admonition {kind}" style="border-left:4px solid '
            f'{"#e69f00" if kind == "warning" else "#0072b2"};padding:0.4em 0.9em;margin:0.5em 0">'
            f'<p class="admonition-title" style="font-weight:600">{_html.escape(title)}</p>{html_paras}</div>')
    text = title + "\n" + "\n".join(p.replace("`", "") for p in paras)
    return Note(markdown, html, text)


def _md_inline_to_html(text: str) -> str:
    """Escape ``text`` and turn its inline code spans (backticks) into ``<code>``."""
    parts = text.split("`")
    return "".join(f"<code>{_html.escape(p)}</code>" if i % 2 else _html.escape(p) for i, p in enumerate(parts))


# --------------------------------------------------------------------------------------------------
# pipeline checks
# --------------------------------------------------------------------------------------------------
class PipelineCheck(str):
    """The line :func:`pipeline_check` printed; ``finite`` says whether every numeric output was finite."""

    finite: bool

    def __new__(cls, line: str, finite: bool):
        obj = super().__new__(cls, line)
        obj.finite = finite
        return obj


def _describe(name: str, value: Any) -> tuple[str, bool]:
    """``(description, finite)`` of one output: shape and dtype for arrays, "computed" for numbers."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        shape = tuple(int(s) for s in value.shape)
        dtype = str(value.dtype).replace("torch.", "")
        finite = True
        try:
            import numpy as np

            arr = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if arr.dtype.kind in "fc":
                finite = bool(np.isfinite(arr).all())
        except Exception:  # an array type numpy can not read: report the shape only
            pass
        return f"{name} {shape} {dtype}" + ("" if finite else " NOT FINITE"), finite
    if isinstance(value, Mapping):
        parts = [_describe(str(k), v) for k, v in value.items()]
        finite = all(f for _, f in parts)
        return f"{name}: {{{', '.join(d for d, _ in parts)}}}", finite
    if isinstance(value, (list, tuple)) and value and all(_is_number(v) or _is_missing(v) for v in value):
        finite = all(not _is_missing(v) and math.isfinite(float(v)) for v in value)
        return f"{name} ({len(value)} values{'' if finite else ', NOT FINITE'})", finite
    if _is_number(value) or _is_missing(value):
        finite = not _is_missing(value) and math.isfinite(float(value.real if isinstance(value, complex) else value))
        return f"{name} {'computed' if finite else 'NOT FINITE'}", finite
    return f"{name} {type(value).__name__}", True


def pipeline_check(stage: str, seconds: Any = None, *, require_finite: bool = True, **outputs: Any) -> PipelineCheck:
    """Print one line saying that ``stage`` ran: the shape and dtype of each array output, which numbers were
    computed, and the wall time; never the numbers themselves (at ``smoke`` they mean nothing).

    Args:
        stage: what ran, e.g. ``"train 2 arms"`` or ``"FID sweep"``.
        seconds: wall time in seconds, or a :class:`~lt_diffusion.provenance.Stopwatch` (its ``elapsed``).
        require_finite: raise ``ValueError`` when a numeric output holds NaN or inf (a broken pipeline).
        **outputs: what the stage produced: tensors/arrays ``(N, C, H, W)`` etc., numbers, lists of numbers,
            or dicts of those.

    Returns the printed line (a ``str`` with ``.finite``). Example output::

        pipeline check · FID sweep: ran in 4.2 s · samples (8, 3, 32, 32) uint8 · fid (3 values)
    """
    if hasattr(seconds, "elapsed"):
        seconds = seconds.elapsed
    parts = [_describe(k, v) for k, v in outputs.items()]
    finite = all(f for _, f in parts)
    ran = "ran" if seconds is None else f"ran in {seconds:.1f} s"
    line = " · ".join([f"pipeline check · {stage}: {ran}"] + [d for d, _ in parts])
    print(line)
    if require_finite and not finite:
        bad = [d for d, f in parts if not f]
        raise ValueError(f"pipeline check of {stage!r}: outputs are not finite ({'; '.join(bad)}); the stage ran "
                         "but produced NaN or inf, so the pipeline is broken at this point")
    return PipelineCheck(line, finite)
