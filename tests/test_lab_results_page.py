"""The results page renders the labs and the benchmark; the edition-status note follows results/."""
import json

from lt_diffusion.experiments.summary import edition_status, load_lab_results, render_lab_section
from lt_diffusion.lab.result import claim


def _lab(key):
    c = claim("The method helps (Someone 2024).", "metric (higher is better)",
              {"base": [0.1, 0.2, 0.15], "method": [0.5, 0.55, 0.6]}, "method", "base", False, 42.0, "it helps")
    return {"chapter": key, "labs": [c], "summary": "Reproduced beyond the seed spread: it helps.", "seeds": [0, 1, 2]}


def test_lab_section_lists_claims_and_the_benchmark(tmp_path):
    (tmp_path / "p2.json").write_text(json.dumps(_lab("p2")))
    fig = {"mean": 0.5, "spread": 0.1, "seeds": [0.45, 0.5, 0.55]}
    bench = {"seeds": [0, 1, 2], "wall_s": 12.0,
             "rows": [{"method": "CBDM", "chapter": "cbdm", "setting": "tau = 1", "recall_head": fig,
                       "recall_tail": fig}]}
    (tmp_path / "longtail_benchmark.json").write_text(json.dumps(bench))
    labs, b = load_lab_results(tmp_path)
    page = render_lab_section(labs, b, "_generated/x.svg")
    row = next(line for line in page.splitlines() if line.startswith("| [05_p2]"))
    assert "The method helps" in row and "| yes |" in row and "0.4 (0.1)" in row and "| 42 |" in row
    assert page.count("no lab results yet") == 7
    assert "| CBDM | cbdm | tau = 1 | – | – | 0.500 (0.100) | 0.500 (0.100) |" in page
    assert "![The long-tail benchmark" in page and "(_generated/x.svg)" in page
    assert "**05_p2**: Reproduced beyond the seed spread: it helps." in page


def test_edition_status_says_what_each_page_shows():
    pages = {"01_ddpm": {"scale": "book", "device": "GPU X"}, "03_adm": {"scale": "book", "device": "GPU X"},
             "04_cfg": {"scale": "smoke"}}
    results = {"ddpm": {"scale": "book"}, "cbdm": {"scale": "book"}}
    text = edition_status(results, {"ddpm": {}, "p2": {}}, pages)
    assert "chapters 01 and 03 show the outputs of a `book`-scale run (GPU X)" in text
    assert "chapters 02 and 04–08 show `smoke`-scale outputs" in text
    # a recorded book run whose chapter page now shows smoke outputs is named as such, not as the page's
    assert "An earlier `book` run of chapter 06, made with a previous version of the code" in text
    assert "labs of 2 of the 8 chapters" in text
    assert "chapter 01 shows" in edition_status({}, None, {"01_ddpm": {"scale": "paper", "device": "G"}})
    assert "chapter 01 shows" not in edition_status({"ddpm": {"scale": "book"}})


def test_page_provenance_reads_the_provenance_table(tmp_path):
    from lt_diffusion.experiments.summary import page_provenance
    from lt_diffusion.provenance import provenance_table

    table = provenance_table({"commit": "a" * 40, "device": "NVIDIA H100", "scale": "book", "seeds": [0, 1]})
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": str(table)}}]}]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert page_provenance(path) == {"scale": "book", "device": "NVIDIA H100", "commit": "a" * 12}
    path.write_text(json.dumps({"cells": []}))
    assert page_provenance(path) == {}
