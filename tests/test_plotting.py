"""Plotting helpers: figures are returned (not shown), shapes/labels as asked, tables render."""
from __future__ import annotations

from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lt_diffusion import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_style_applied_on_import():
    plotting.set_style()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    assert colors[: len(plotting.PALETTE)] == plotting.PALETTE
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_sample_grid_uint8_and_float_agree():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
    fig = plotting.sample_grid(u8, nrow=3, title="samples", padding=2)
    assert isinstance(fig, matplotlib.figure.Figure)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    assert np.array_equal(np.asarray(shown)[2:10, 2:10], u8[0].permute(1, 2, 0).numpy())
    assert fig.axes[0].get_title() == "samples"
    fig2 = plotting.sample_grid(u8.float() / 127.5 - 1, nrow=3)
    assert np.abs(np.asarray(fig2.axes[0].images[0].get_array()).astype(int) - np.asarray(shown).astype(int)).max() <= 1
    _, ax = plt.subplots()
    assert plotting.sample_grid(u8, nrow=2, ax=ax) is ax.figure


def test_image_rows_layout():
    rows = {"x_t": torch.rand(5, 3, 4, 4) * 2 - 1, "x_0 pred": torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)}
    fig = plotting.image_rows(rows, col_labels=[f"t={t}" for t in range(5)], title="forward")
    assert len(fig.axes) == 10
    assert fig.axes[0].get_ylabel() == "x_t" and fig.axes[5].get_ylabel() == "x_0 pred"
    assert fig.axes[4].get_title() == "t=4"
    assert len(fig.axes[9].images) == 0 and len(fig.axes[7].images) == 1  # short row leaves cells empty


def test_curves_log_axes_shade_and_own_x():
    t = np.arange(1, 101)
    fig = plotting.curves(t, {"linear": np.linspace(1, 0, 100), "cosine": torch.linspace(1, 0.01, 100)},
                          "t", "ᾱ_t", logy=True, shade={"linear": (np.zeros(100), np.ones(100))})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_xlabel() == "t"
    assert len(ax.collections) == 1 and ax.get_legend() is not None
    fig = plotting.curves(None, {"head": ([10, 50, 100], [9.0, 5.0, 4.0])}, "steps", "FID", logx=True, markers=True)
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].lines[0].get_color() == plotting.GROUP_COLORS["head"]
    with pytest.raises(ValueError, match="shape"):
        plotting.curves(t, {"a": np.zeros(5)})


def test_bar_single_and_grouped():
    fig = plotting.bar(["a", "b", "c"], [5000, 500, 50], "class", "images", logy=True, annotate=True)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and ax.get_yscale() == "log"
    assert [tk.get_text() for tk in ax.get_xticklabels()] == ["a", "b", "c"]
    fig = plotting.bar(range(4), {"LT": [4, 3, 2, 1], "balanced": [1, 1, 1, 1]})
    assert len(fig.axes[0].patches) == 8 and fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="3 categories"):
        plotting.bar(["a", "b", "c"], [1, 2])


class _Cells(HTMLParser):
    """Collects (tag, attrs, text) of every th/td of an HTML table."""

    def __init__(self):
        super().__init__()
        self.cells, self.tables, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(dict(attrs))
        if tag in ("th", "td"):
            self._open = [tag, dict(attrs), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._open is not None:
            self.cells.append(tuple(self._open))
            self._open = None


def test_metrics_table_markdown_and_html():
    rows = [{"method": "DDPM", "FID": 3.17, "IS": 9.46}, {"method": "ours | book", "FID": 12.3456, "steps": 100}]
    table = plotting.metrics_table(rows, formats={"FID": ".2f"})
    lines = table.splitlines()
    assert lines[0] == "| method | FID | IS | steps |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| DDPM | 3.17 | 9.46 | – |"
    assert lines[3] == "| ours \\| book | 12.35 | – | 100 |"
    assert isinstance(table, str) and table._repr_markdown_() == str(table)
    parser = _Cells()
    parser.feed(table._repr_html_())
    assert parser.tables == [{"class": "lt-table lt-metrics", "style": "border-collapse:collapse"}]
    assert [c[2] for c in parser.cells] == ["method", "FID", "IS", "steps", "DDPM", "3.17", "9.46", "–",
                                            "ours | book", "12.35", "–", "100"]
    for tag, attrs, text in parser.cells:
        style = attrs["style"].replace(" ", "")
        assert "padding:" in style, f"cell {text!r} has no padding: columns would run together"
        if text in ("method", "DDPM", "ours | book"):
            assert "text-align:left" in style and "class" not in attrs
        else:  # numeric columns, header included: right-aligned, figures of equal width
            assert attrs.get("class") == "lt-num" and "text-align:right" in style and "tabular-nums" in style
    assert plotting.metrics_table(rows, columns=["FID"]).splitlines()[0] == "| FID |"
    assert plotting.metrics_table([{"a": None, "b": float("nan"), "ok": True}]).splitlines()[2] == "| – | – | True |"


def test_savefig(tmp_path):
    fig = plotting.curves([0, 1], {"a": [0, 1]})
    path = plotting.savefig(fig, tmp_path / "sub" / "c.png")
    assert path.exists() and path.stat().st_size > 1000
