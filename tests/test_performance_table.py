"""The Performance page's table is rendered from the benchmark JSON files, never typed by hand."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_performance_table_matches_benchmark_json():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_table.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_performance_table_has_every_json_file():
    table = (ROOT / "book" / "_generated" / "performance_table.md").read_text()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert path.name in table
