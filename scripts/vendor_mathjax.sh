#!/usr/bin/env bash
# Vendor MathJax 3 for offline math rendering in the book.
#
# Fetches the `mathjax` package from the npm registry with `npm pack` (cached in
# .cache/mathjax/), checks its SHA-256, and extracts the browser bundle (es5/) into
# _vendor/static/mathjax/. _config.yml adds _vendor/static to html_static_path and sets
# mathjax_path to mathjax/tex-mml-chtml.js, so the build serves MathJax and its fonts
# from the book's own _static/ folder. Nothing here is committed (.cache/ and _vendor/
# are git-ignored). Idempotent: a second run does nothing.
set -euo pipefail

VERSION=3.2.2
SHA256=1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/mathjax"
dest="$root/_vendor/static/mathjax"
tgz="$cache/mathjax-$VERSION.tgz"
stamp="$dest/.version"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$VERSION" && -f "$dest/tex-mml-chtml.js" ]]; then
    exit 0
fi

mkdir -p "$cache"
if [[ ! -f "$tgz" ]] || ! echo "$SHA256  $tgz" | sha256sum -c --status; then
    command -v npm >/dev/null || { echo "vendor_mathjax: npm is needed to fetch mathjax@$VERSION" >&2; exit 1; }
    rm -f "$tgz"
    (cd "$cache" && npm pack --silent "mathjax@$VERSION" >/dev/null)
fi
echo "$SHA256  $tgz" | sha256sum -c --status || {
    echo "vendor_mathjax: checksum mismatch for $tgz" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" package/es5 package/LICENSE
es5="$tmp/package/es5"
# Keep the CommonHTML bundle and what it loads lazily (a11y, ui/menu, sre, fonts).
# Drop latest.js (it loads MathJax from a CDN) and the SVG/alternative bundles.
rm -f "$es5/latest.js" "$es5"/*svg*.js "$es5"/tex-chtml-full*.js "$es5/node-main.js"
rm -rf "$es5/output/svg"
cp "$tmp/package/LICENSE" "$es5/LICENSE"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$es5" "$dest"
echo "$VERSION" > "$stamp"
