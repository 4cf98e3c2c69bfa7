"""Notebook hygiene: the scanner of committed outputs (scripts/check_notebooks.py) and quiet progress bars.

The scanner is tested on small synthetic notebooks: each bad one is flagged with the right kind, a clean one
passes. Progress bars (lt_diffusion.progress) stay out of notebook outputs and never raise tqdm's
"IProgress not found" warning.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_scanner():
    spec = importlib.util.spec_from_file_location("check_notebooks", ROOT / "scripts" / "check_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_notebooks"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


scanner = _load_scanner()


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _code(source="x", *outputs, tags=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = list(outputs)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _display(data, kind="display_data"):
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, execution_count=1)
    return nbformat.v4.new_output("display_data", data=data)


def _kinds(nb):
    return sorted({f.kind for f in scanner.scan_notebook(nb, name="t.ipynb")})


SMOKE_PROVENANCE = _code("display(Markdown(provenance_table(prov)))",
                         _display({"text/markdown": "| | |\n|---|---|\n| scale | smoke |\n| device | CPU |",
                                   "text/plain": "<IPython.core.display.Markdown object>"}))
BOOK_PROVENANCE = _code("display(Markdown(provenance_table(prov)))",
                        _display({"text/markdown": "| | |\n|---|---|\n| scale | book |\n| device | H100 |",
                                  "text/plain": "<IPython.core.display.Markdown object>"}))


def test_a_clean_notebook_passes():
    from lt_diffusion import report

    note = report.scale_note({"scale": "smoke", "device": "CPU"}, chapter="05_p2")
    nb = _nb(
        nbformat.v4.new_markdown_cell("# Title\n\nThe forward process adds noise: $x_t = \\sqrt{\\bar\\alpha_t} x_0$."),
        _code("print(betas[:3])", _stream("beta_1 = 1.0e-04, beta_T = 2.0e-02\n")),
        _code("show_source(f)", _stream("def f(x):\n    return {'a': x}\n")),  # a code listing, not a dict
        _code("fig", _display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 600x360 with 1 Axes>"})),
        _code("display(note)", _display({"text/markdown": str(note), "text/html": note._repr_html_(),
                                          "text/plain": repr(note)})),
        _code("pipeline_check(...)", _stream("pipeline check · FID sweep: ran in 4.2 s · samples (8, 3, 32, 32) uint8"
                                             " · fid (3 values)\n")),
        _code("display(schedule_table)", _display({"text/markdown": "| t | SNR |\n|---:|---:|\n| 1 | 9999 |"}),
              tags=["scale-independent"]),
        SMOKE_PROVENANCE,
    )
    assert [f for f in scanner.scan_notebook(nb) if f.where == "output"] == []


@pytest.mark.parametrize("cell, kind", [
    (_code("import x", _stream("/x/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not "
                               "found. Please update jupyter and ipywidgets.\n", name="stderr")), "warning"),
    (_code("log()", _stream("INFO starting\n", name="stderr")), "stderr"),
    (_code("1/0", nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                         traceback=[])), "error"),
    (_code("train()", _stream("train:  10%|#         | 1/10\rtrain:  20%|##        | 2/10\r")), "progress-bar"),
    (_code("save()", _stream("results in /home/alice/lt/results\n")), "machine-path"),
    (_code("ax.legend()", _display({"text/plain": "<matplotlib.legend.Legend at 0x7f443f4c13d0>"},
                                   "execute_result")), "object-repr"),
    (_code("ax.set_title('a')", _display({"text/plain": "Text(0.5, 1.0, 'a')"}, "execute_result")), "object-repr"),
    (_code("print(h)", _stream("{'value': 507.92, 'verdict': 'yes, one seed'}\n")), "raw-dict"),
    (_code("print(metrics_table(rows))", _stream("| arm | FID |\n|---|---:|\n| P2 | 12.3 |\n")), "raw-table"),
    (_code("x = '\\bar'", ), "control-char"),
    (nbformat.v4.new_markdown_cell("Each remote GPU call may last 10 minutes."), "build-trace"),
    (nbformat.v4.new_markdown_cell("Measured on this project's 2-core CPU."), "build-trace"),
    (nbformat.v4.new_markdown_cell("The numbers are in papers.md §4."), "build-trace"),
    (nbformat.v4.new_markdown_cell("See ../shared/assets for the weights."), "build-trace"),
    (_code("save()", _stream("wrote results/smoke/p2.json\n")), "log-line"),
])
def test_each_kind_of_noise_is_flagged(cell, kind):
    if kind == "control-char":
        cell.source = "x = '\bar\alpha'"  # what "\bar\alpha" in a non-raw string holds
    kinds = _kinds(_nb(cell, BOOK_PROVENANCE))
    assert kind in kinds, kinds


@pytest.mark.parametrize("output", [
    _display({"text/markdown": "| arm | FID | precision |\n|---|---:|---:|\n| P2 | 507.9 | 0.000 |",
              "text/html": "<table><thead><tr><th>arm</th><th>FID</th></tr></thead></table>"}),
    _stream("P2 baseline  FID=521.65 precision=0.000 recall=0.000\n"),
    _stream("verdict: yes, within seed spread\n"),
])
def test_smoke_numbers_shown_as_results_are_flagged_only_at_smoke(output):
    smoke = _nb(_code("show()", output), SMOKE_PROVENANCE)
    assert _kinds(smoke) == ["smoke-result"]
    assert _kinds(_nb(_code("show()", output), BOOK_PROVENANCE)) == []
    exempt = _nb(_code("show()", output, tags=["scale-independent"]), SMOKE_PROVENANCE)
    assert _kinds(exempt) == []


def test_notebook_scale_reads_the_provenance():
    assert scanner.notebook_scale(_nb(SMOKE_PROVENANCE)) == "smoke"
    assert scanner.notebook_scale(_nb(BOOK_PROVENANCE)) == "book"
    assert scanner.notebook_scale(_nb(_code("x", _stream("scale=book device=cuda\n")))) == "book"
    assert scanner.notebook_scale(_nb(_code("x"))) is None


def test_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_nb(_code("print(h)", _stream("{'value': 1.5}\n"))), bad)
    good = tmp_path / "good.ipynb"
    nbformat.write(_nb(_code("print(1)", _stream("1\n"))), good)
    assert scanner.main([str(good)]) == 0
    assert "0 findings" in capsys.readouterr().out
    assert scanner.main([str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert "bad.ipynb cell 0 [raw-dict]" in out and "1 findings (raw-dict: 1)" in out
    assert scanner.main([str(bad), "--ignore", "raw-dict"]) == 0
    capsys.readouterr()
    assert scanner.main([str(bad), "--json"]) == 1
    assert '"kind": "raw-dict"' in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# progress bars
# --------------------------------------------------------------------------------------------------
def test_no_module_imports_tqdm_auto():
    """tqdm.auto warns "IProgress not found" in notebooks without ipywidgets; the package uses progress.tqdm."""
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "lt_diffusion").rglob("*.py")
                 if "tqdm.auto" in p.read_text(encoding="utf-8") and p.name != "progress.py"]
    assert not offenders, f"use lt_diffusion.progress.tqdm instead of tqdm.auto in {offenders}"


def test_progress_rule(monkeypatch):
    from lt_diffusion import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    assert not progress.enabled() and progress.tqdm(range(3)).disable
    monkeypatch.setenv(progress.PROGRESS_ENV, "1")
    assert progress.enabled() and not progress.tqdm(range(3), file=sys.stdout).disable
    assert progress.tqdm(range(3), disable=True).disable  # the caller's switch wins
    monkeypatch.delenv(progress.PROGRESS_ENV)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress.enabled()  # a log file, papermill, nbval: no bars
    assert list(progress.tqdm(range(3))) == [0, 1, 2]


@pytest.mark.timeout(300)
def test_a_notebook_run_has_no_progress_noise(tmp_path):
    """Run a notebook that trains and samples with progress on: its outputs carry no bar and no warning."""
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})  # this checkout's package\n"
        "from lt_diffusion.progress import tqdm\n"
        "from lt_diffusion import diffusion\n"
        "total = sum(tqdm(range(50), desc='loop'))\n"
        "steps = list(diffusion._progress(range(5), True))\n"
        "print(total, len(steps))")]
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = nb.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stdout"] and outputs[0]["text"] == "1225 5\n", outputs
    assert [f for f in scanner.scan_notebook(nb) if f.where == "output"] == []


COMMITTED = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_notebook_is_clean(path):
    """Every committed chapter, sources and outputs: no warning, stderr, error, progress bar, machine path, object
    repr, raw dict or table, control character, build-trace words, log line, or smoke number shown as a result."""
    findings = scanner.scan_notebook(path)
    assert not findings, "\n".join(str(f) for f in findings)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.py")), ids=lambda p: p.name)
def test_notebook_sources_hold_no_control_characters(path):
    """A LaTeX command in a non-raw Python string (``"\\bar"``) turns into a control character (backspace + "ar");
    the jupytext sources must hold none (tab, newline and carriage return excepted)."""
    text = path.read_text(encoding="utf-8")
    bad = [(n, line) for n, line in enumerate(text.splitlines(), 1)
           if any(ord(c) < 32 and c not in "\t\r\n" or ord(c) == 127 for c in line)]
    assert not bad, f"{path.name}: control characters on lines {[n for n, _ in bad]}"
