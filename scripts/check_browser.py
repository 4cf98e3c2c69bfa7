#!/usr/bin/env python
"""Open every page of the built book in headless Chromium, at 1280 px and at 390 px, and check what a reader sees.

Serves ``_build/html`` on 127.0.0.1 (a free port), opens every page (the ``.html`` files of the build, except
redirects) at a desktop width (1280 px) and a phone width (390 px), waits until MathJax has typeset the page,
and fails on

* **math**: a MathJax error (``mjx-merror``, e.g. "Math input error"), or math nodes left untypeset;
* **clipping**: an element of the page whose content is wider than its box and can not be scrolled to (its
  own ``overflow-x`` is not ``auto``/``scroll`` and no scrolling box around it holds the overflow: a cut-off
  table or equation), or a page that is wider than the window;
* **raw tables**: markdown table pipes (``|---|``) in rendered text or in a cell's printed output;
* **raw LaTeX** (``\\(``, ``\\mathcal``, ``$…$``) in the window title, the navigation or a heading;
* **requests to another host** (no CDN, no web fonts), failed requests and HTTP errors;
* **page height**: a chapter page (``notebooks/…``) taller than ``--max-height`` pixels at 1280 px.

It prints one line per page and width, then the height of every page at 1280 px (``--heights-json`` writes
them as JSON), and saves a screenshot of the first page at each width. Findings on pages that match a
``--report-only`` pattern are printed as ``WARN`` and do not fail the check. Exit status 0 means no failure.
The browser is Debian's ``/usr/bin/chromium`` driven through Playwright's Python package; Playwright never
downloads a browser here.

Usage: python scripts/check_browser.py [--html _build/html] [--page book/notation.html ...]
       [--width 1280 --width 390] [--max-height 15000] [--report-only 'notebooks/*']
       [--heights-json PATH] [--screenshot PATH] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob", "about"}
WIDTHS = (1280, 390)
HEIGHTS = {1280: 900, 390: 844}
MAX_CHAPTER_HEIGHT = 15_000
CHAPTER_PAGES = "notebooks/*"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs in the page after MathJax has finished; returns what the checks need. Kept in one function so
# that a page is inspected in one round trip.
INSPECT_JS = r"""
() => {
  const SLACK = 2;  // px of sub-pixel rounding tolerated
  const content = document.querySelector('main#main-content') || document.querySelector('main')
                  || document.body;
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += '#' + el.id;
    const cls = (typeof el.className === 'string' ? el.className : '').trim().split(/\s+/)
                .filter(Boolean).slice(0, 3);
    if (cls.length) name += '.' + cls.join('.');
    let section = el.closest('section');
    const heading = section && section.querySelector('h1, h2, h3, h4');
    const text = (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 70);
    return {element: name, text: text, under: heading ? heading.textContent.replace(/¶/g, '').trim()
            .slice(0, 60) : ''};
  };

  // 1. Math.
  const merrors = [...document.querySelectorAll('mjx-merror')].map(e =>
      (e.getAttribute('data-mjx-error') || e.textContent || '').trim().slice(0, 80));
  const mathNodes = document.querySelectorAll('.math').length;
  const typeset = document.querySelectorAll('mjx-container').length;

  // 2. Content wider than its box that the reader can not scroll to.
  const scrolls = (cs) => cs.overflowX === 'auto' || cs.overflowX === 'scroll';
  const clipped = [];
  // MathJax's own parts (stretchy glyphs, the hidden MathML for screen readers) are sized by MathJax:
  // a formula is measured as a whole, by its typeset width against its container's.
  const contentWidth = (el) => {
    if (el.tagName === 'MJX-CONTAINER') {
      const m = el.querySelector(':scope > mjx-math');
      return m ? Math.ceil(m.getBoundingClientRect().width) : 0;
    }
    return el.scrollWidth;
  };
  for (const el of content.querySelectorAll('*')) {
    if (el.closest('script, style, template')) continue;
    if (el.parentElement && el.parentElement.closest('mjx-container')) continue;
    const cs = getComputedStyle(el);
    // Block boxes only: inline-level boxes (inline math, badges) flow with their line.
    if (cs.display.startsWith('inline') || cs.display === 'none' || cs.display === 'contents') continue;
    if (cs.visibility === 'hidden' || cs.textOverflow === 'ellipsis') continue;
    if (el.clientWidth <= SLACK || scrolls(cs)) continue;
    if (contentWidth(el) - el.clientWidth <= SLACK) continue;
    // The overflow is fine when the nearest box around it that cuts content off scrolls.
    let holder = el.parentElement, held = false;
    while (holder && holder !== document.documentElement) {
      const hs = getComputedStyle(holder);
      if (hs.overflowX !== 'visible') { held = scrolls(hs); break; }
      holder = holder.parentElement;
    }
    if (cs.overflowX === 'visible' && held) continue;
    clipped.push(el);
  }
  // Report the innermost offenders only (their ancestors overflow because of them).
  const innermost = clipped.filter(el => !clipped.some(o => o !== el && el.contains(o)));
  const overflow = innermost.slice(0, 20).map(el => Object.assign(describe(el),
      {scroll_width: contentWidth(el), width: el.clientWidth}));
  const pageOverflow = document.documentElement.scrollWidth - window.innerWidth;

  // 3. Markdown table pipes in rendered text and in printed outputs (not in code the reader reads).
  // A separator row; smart punctuation may have turned its dashes into an em or en dash.
  const PIPES = /\|\s*:?(?:-{3,}|[\u2013\u2014]{1,2}):?\s*\|/;
  const rawTables = [];
  const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
  const blocks = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!p || p.closest('script, style, mjx-container, .cell_input')) continue;
    if (p.closest('pre, code') && !p.closest('.cell_output')) continue;
    if (n.textContent.includes('|')) blocks.add(p.closest('p, li, td, th, pre, div') || p);
  }
  for (const b of blocks) {
    if (PIPES.test(b.textContent)) rawTables.push(describe(b));
  }

  // 4. Raw LaTeX in the window title, the navigation and the headings.
  const LATEX = /\\[()[\]]|\\[A-Za-z]{2,}|\$[^$\s][^$]*\$/;
  const rawLatex = [];
  if (LATEX.test(document.title)) rawLatex.push({where: 'title', text: document.title});
  const navs = document.querySelectorAll(
      'nav, .bd-sidebar-primary, .bd-sidebar-secondary, .prev-next-area, .bd-breadcrumbs, '
      + 'h1, h2, h3, h4, h5, h6');
  const seen = new Set();
  for (const root of navs) {
    const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      if (n.parentElement && n.parentElement.closest('mjx-container, script, style')) continue;
      const t = n.textContent.trim();
      if (t && LATEX.test(t) && !seen.has(t)) {
        seen.add(t);
        const where = root.matches('h1, h2, h3, h4, h5, h6') ? 'heading' : 'navigation';
        rawLatex.push({where: where, text: t.slice(0, 100)});
      }
    }
  }

  return {title: document.title, height: Math.ceil(document.documentElement.scrollHeight),
          math_nodes: mathNodes, typeset: typeset, merrors: merrors, overflow: overflow,
          page_overflow: pageOverflow, raw_tables: rawTables, raw_latex: rawLatex};
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def book_pages(html: Path) -> list[str]:
    """Every page of the build (relative paths), without static files and without redirect stubs."""
    pages = []
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html).as_posix()
        if rel.split("/")[0] in {"_static", "_sources", "_images", "_downloads"}:
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:4000].lower()
        if 'http-equiv="refresh"' in head:
            continue
        pages.append(rel)
    return pages


def inspect_page(page, url: str) -> dict:
    """Load url, wait for MathJax (when the page loads it) and fonts, and return INSPECT_JS's findings."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url, wait_until="load")
    if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\"]')"):
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
    page.evaluate("() => document.fonts.ready.then(() => true)")
    try:  # late requests (lazy MathJax parts, fonts) are seen by the request handlers either way
        page.wait_for_load_state("networkidle", timeout=10_000)
    except PlaywrightTimeout:
        pass
    return page.evaluate(INSPECT_JS)


def findings(rel: str, width: int, stats: dict, max_height: int | None) -> list[str]:
    """The problems INSPECT_JS found on one page at one width, as lines."""
    out = []
    where = f"{rel} @{width}px"
    if stats["typeset"] < stats["math_nodes"]:
        out.append(f"{where}: MathJax typeset {stats['typeset']} of {stats['math_nodes']} math nodes")
    for msg in stats["merrors"]:
        out.append(f"{where}: MathJax error: {msg!r}")
    for o in stats["overflow"]:
        out.append(f"{where}: clipped: <{o['element']}> is {o['scroll_width']} px wide in a {o['width']} px "
                   f"box that does not scroll (under {o['under']!r}): {o['text']!r}")
    if stats["page_overflow"] > 2:
        out.append(f"{where}: the page is {stats['page_overflow']} px wider than the window")
    for t in stats["raw_tables"]:
        out.append(f"{where}: raw markdown table in <{t['element']}> (under {t['under']!r}): {t['text']!r}")
    for t in stats["raw_latex"]:
        out.append(f"{where}: raw LaTeX in the {t['where']}: {t['text']!r}")
    if max_height is not None and width == WIDTHS[0] and fnmatch.fnmatch(rel, CHAPTER_PAGES) \
            and stats["height"] > max_height:
        out.append(f"{where}: the page is {stats['height']:,} px tall (limit {max_height:,} px)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--page", action="append", dest="pages",
                        help="page relative to --html (repeatable); default: every page of the build")
    parser.add_argument("--width", action="append", type=int, dest="widths",
                        help=f"viewport width in px (repeatable); default: {' and '.join(map(str, WIDTHS))}")
    parser.add_argument("--max-height", type=int, default=MAX_CHAPTER_HEIGHT,
                        help=f"fail when a chapter page ({CHAPTER_PAGES}) is taller at 1280 px "
                             f"(default {MAX_CHAPTER_HEIGHT}; 0 turns the limit off)")
    parser.add_argument("--report-only", action="append", default=[], metavar="GLOB",
                        help="pages matching GLOB are checked, but their findings do not fail (repeatable)")
    parser.add_argument("--heights-json", type=Path, default=None,
                        help="write {page: height in px at 1280 px} to this JSON file")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="PNG path of the first page at 1280 px (default: <html>/../browser-check.png); "
                             "other widths get -<width> before the suffix")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    html = args.html.resolve()
    pages = args.pages or book_pages(html)
    widths = args.widths or list(WIDTHS)
    max_height = args.max_height or None
    shot = (args.screenshot or html.parent / "browser-check.png").resolve()
    if not pages:
        print(f"check_browser: no pages under {html}; build the book first", file=sys.stderr)
        return 2
    for p in pages:
        if not (html / p).is_file():
            print(f"check_browser: {html / p} does not exist; build the book first", file=sys.stderr)
            return 2
    if not Path(args.chromium).exists():
        print(f"check_browser: no browser at {args.chromium}", file=sys.stderr)
        return 2

    # Keep Playwright from looking for (or fetching) its own browser builds.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    server, base = serve(html)
    requests: list[str] = []
    problems: list[str] = []
    warnings: list[str] = []
    heights: dict[str, int] = {}
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="lt-chromium-") as profile:
            context = pw.chromium.launch_persistent_context(
                user_data_dir=profile,
                executable_path=args.chromium,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": widths[0], "height": HEIGHTS.get(widths[0], 900)},
            )
            context.on("request", lambda r: requests.append(r.url))
            context.on("requestfailed",
                       lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
            context.on("response",
                       lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
            page = context.new_page()
            for width in widths:
                page.set_viewport_size({"width": width, "height": HEIGHTS.get(width, 900)})
                for i, rel in enumerate(pages):
                    stats = inspect_page(page, f"{base}/{rel}")
                    if width == widths[0]:
                        heights[rel] = stats["height"]
                    found = findings(rel, width, stats, max_height)
                    print(f"check_browser: {rel} @{width}px: {stats['height']:,} px tall, "
                          f"{stats['typeset']}/{stats['math_nodes']} math nodes typeset, "
                          f"{len(found)} findings")
                    report_only = any(fnmatch.fnmatch(rel, g) for g in args.report_only)
                    (warnings if report_only else problems).extend(found)
                    if i == 0:
                        path = shot if width == widths[0] else shot.with_name(f"{shot.stem}-{width}{shot.suffix}")
                        path.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(path), full_page=True)
            context.close()
    finally:
        server.shutdown()

    external = sorted({u for u in requests
                       if urllib.parse.urlsplit(u).scheme not in LOCAL_SCHEMES
                       and urllib.parse.urlsplit(u).hostname not in LOCAL_HOSTS})
    problems += [f"external request: {u}" for u in external]
    print(f"check_browser: {len(pages)} pages at {', '.join(f'{w} px' for w in widths)}; "
          f"{len(requests)} requests, {len(external)} to other hosts")
    if heights:
        print(f"check_browser: page heights at {widths[0]} px:")
        for rel, h in sorted(heights.items(), key=lambda kv: -kv[1]):
            print(f"check_browser:   {h:>8,} px  {rel}")
    if args.heights_json:
        args.heights_json.parent.mkdir(parents=True, exist_ok=True)
        args.heights_json.write_text(json.dumps(heights, indent=1) + "\n")
    print(f"check_browser: screenshot {shot}")
    for w in warnings:
        print(f"check_browser: WARN {w}")
    for p in problems:
        print(f"check_browser: FAIL {p}", file=sys.stderr)
    print(f"check_browser: {len(problems)} failures, {len(warnings)} findings reported only")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
