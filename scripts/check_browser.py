#!/usr/bin/env python
"""Open the built book in headless Chromium and check that math renders offline.

Serves ``_build/html`` on 127.0.0.1 (a free port), opens pages that contain equations,
waits until MathJax has typeset them, and checks that

* every math node of the page became a MathJax ``mjx-container`` with no ``mjx-merror``;
* every request the browser made went to 127.0.0.1 / localhost (no CDN, no web fonts);
* no request failed and no response was an HTTP error (a missing font or script would show here).

It saves a full-page screenshot of the first page and prints its path. Exit status 0 means all
checks passed. The browser is Debian's ``/usr/bin/chromium`` driven through Playwright's Python
package; Playwright never downloads a browser here.

Usage: python scripts/check_browser.py [--html _build/html] [--page book/notation.html ...]
       [--screenshot PATH] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob", "about"}
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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_page(page, url: str) -> dict:
    """Load url, wait for MathJax and fonts, and return counts of math nodes and typeset output."""
    page.goto(url, wait_until="load")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                           timeout=60_000)
    page.evaluate("() => MathJax.startup.promise")
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_load_state("networkidle")
    return page.evaluate(
        """() => ({
            math_nodes: document.querySelectorAll('.math').length,
            typeset: document.querySelectorAll('mjx-container').length,
            errors: document.querySelectorAll('mjx-merror').length,
            title: document.title,
        })"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--page", action="append", dest="pages",
                        help="page relative to --html (repeatable); default: notation and intro")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="PNG path (default: <html>/../browser-check.png)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    pages = args.pages or ["book/notation.html", "book/intro.html"]
    html = args.html.resolve()
    shot = (args.screenshot or html.parent / "browser-check.png").resolve()
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
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="lt-chromium-") as profile:
            context = pw.chromium.launch_persistent_context(
                user_data_dir=profile,
                executable_path=args.chromium,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            context.on("request", lambda r: requests.append(r.url))
            context.on("requestfailed",
                       lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
            context.on("response",
                       lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
            page = context.new_page()
            for i, p in enumerate(pages):
                url = f"{base}/{p}"
                stats = check_page(page, url)
                print(f"check_browser: {p}: {stats['typeset']} MathJax containers for "
                      f"{stats['math_nodes']} math nodes, {stats['errors']} errors "
                      f"(title: {stats['title']!r})")
                if stats["math_nodes"] == 0:
                    problems.append(f"{p}: the page has no math to check")
                if stats["typeset"] < stats["math_nodes"] or stats["typeset"] == 0:
                    problems.append(f"{p}: MathJax typeset {stats['typeset']} of "
                                    f"{stats['math_nodes']} math nodes")
                if stats["errors"]:
                    problems.append(f"{p}: {stats['errors']} MathJax errors (mjx-merror)")
                if i == 0:
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shot), full_page=True)
            context.close()
    finally:
        server.shutdown()

    external = sorted({u for u in requests
                       if urllib.parse.urlsplit(u).scheme not in LOCAL_SCHEMES
                       and urllib.parse.urlsplit(u).hostname not in LOCAL_HOSTS})
    problems += [f"external request: {u}" for u in external]
    print(f"check_browser: {len(requests)} requests, {len(external)} to other hosts")
    print(f"check_browser: screenshot {shot}")
    for p in problems:
        print(f"check_browser: FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
