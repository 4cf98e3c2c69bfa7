#!/usr/bin/env python
"""Compare the printed numbers of two executed versions of a chapter notebook::

    python scripts/compare_notebook_outputs.py OLD.ipynb NEW.ipynb [--ignore REGEX ...]

Every text output (streams, and the markdown or plain text of displayed results such as tables) is split into
lines; lines with numbers are aligned by their wording (numbers masked), and aligned lines are compared number by
number. The report lists the lines whose numbers moved, and the lines that exist in only one version. Lines that
match an ``--ignore`` pattern (by default: wall times, throughputs, dates, commits and machine details) are left
out. Exit status 0 when every compared number is equal, 1 otherwise.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import List, Tuple

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
DEFAULT_IGNORE = [r"\d s\b|\d+(\.\d+)? ?s[,;)]|\bs / image", r"img/s|images/s|image-steps/s|/s\b",
                  r"wall|elapsed|seconds|time \(|minutes|\bmin\b", r"commit|20\d\d-\d\d-\d\d|torch |python |device",
                  r"\| *(git|host|cpu|gpu|platform)", r"_s \|", r"warning|site-packages|^wrote |results/|^\S*\.py:\d+"]


def text_lines(path: Path) -> List[str]:
    """The lines of every text output of the notebook's code cells, in order."""
    nb = json.loads(path.read_text())
    lines: List[str] = []
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
            else:
                data = out.get("data", {})
                text = data.get("text/markdown") or data.get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            lines += [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines


def numbered(lines: List[str], ignore: List[re.Pattern]) -> Tuple[List[str], List[str], int]:
    """Lines with numbers (minus the ignored ones), their masked templates, and the count of ignored lines."""
    kept, skipped = [], 0
    for ln in lines:
        if not NUMBER.search(ln):
            continue
        if any(p.search(ln) for p in ignore):
            skipped += 1
            continue
        kept.append(ln)
    return kept, [NUMBER.sub("#", ln) for ln in kept], skipped


def compare(old: Path, new: Path, ignore: List[str]) -> int:
    patterns = [re.compile(p, re.IGNORECASE) for p in ignore]
    a, ta, skip_a = numbered(text_lines(old), patterns)
    b, tb, skip_b = numbered(text_lines(new), patterns)
    moved, only_old, only_new, n_equal = [], [], [], 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        if op == "equal":
            for la, lb in zip(a[i1:i2], b[j1:j2]):
                na, nb_ = NUMBER.findall(la), NUMBER.findall(lb)
                if na == nb_:
                    n_equal += len(na)
                else:
                    moved.append((la, lb))
        else:
            only_old += a[i1:i2]
            only_new += b[j1:j2]
    print(f"{old.name}: {n_equal} numbers equal on {len(a) - len(only_old) - len(moved)} aligned lines; "
          f"{len(moved)} lines with moved numbers; {len(only_old)} lines only in OLD, {len(only_new)} only in NEW; "
          f"ignored {skip_a} / {skip_b} volatile lines")
    for la, lb in moved:
        print(f"  moved  OLD: {la[:220]}\n         NEW: {lb[:220]}")
    for ln in only_old:
        print(f"  only OLD: {ln[:220]}")
    for ln in only_new:
        print(f"  only NEW: {ln[:220]}")
    return 0 if not (moved or only_old or only_new) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--ignore", action="append", default=None,
                    help="regex of lines to leave out (repeatable; replaces the default list)")
    args = ap.parse_args(argv)
    return compare(args.old, args.new, DEFAULT_IGNORE if args.ignore is None else args.ignore)


if __name__ == "__main__":
    sys.exit(main())
