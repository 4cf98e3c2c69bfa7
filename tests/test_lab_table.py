"""The lab table the chapters display (lt_diffusion.lab.plots.lab_table): one row per claim, the compared arms
as mean (min–max over seeds), and the verdict the claim carries."""
from lt_diffusion.lab import LabResult, load_committed
from lt_diffusion.lab.plots import lab_table
from lt_diffusion.lab.result import claim


def _result(method, baseline):
    c = claim("A lowers the error (a test).", "error (lower is better)", {"A": method, "B": baseline}, "A", "B",
              True, 1.0, "A beats B")
    return LabResult("ddpm", "t", "q?", "d", [c], {}, [0, 1, 2], 1.0)


def test_a_row_holds_the_arms_gain_spread_and_verdict():
    table = lab_table(_result([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
    (row,) = table.rows
    assert row["method"] == "A: 2 (1–3)" and row["baseline"] == "B: 5 (4–6)"
    assert row["gain"] == 3.0 and row["seed spread"] == 2.0 and row["verdict"] == "yes"
    assert "| A beats B |" in str(table)


def test_a_claim_that_did_not_reproduce_says_no():
    (row,) = lab_table(_result([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])).rows
    assert row["verdict"] == "no" and row["gain"] < 0


def test_the_committed_labs_of_chapters_01_and_02_render_every_claim():
    for name in ("ddpm", "improved_ddpm"):
        lab = load_committed(name)
        table = lab_table(lab)
        assert [r["verdict"] for r in table.rows] == [c["verdict"] for c in lab.labs]
        assert [r["claim"] for r in table.rows] == [c["short"] for c in lab.labs]
