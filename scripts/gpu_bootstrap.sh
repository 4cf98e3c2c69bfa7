# Set up a remote GPU machine for lt-diffusion from the parts built by scripts/make_gpu_bundle.py.
#
#   source scripts/gpu_bootstrap.sh && python -m papermill notebooks/x.ipynb out.ipynb -k python3
#
# Source it (do not execute it) first in every remote command: it exports
#   PYTHONPATH          $LT_SITE (installed wheels) and the repository root
#   LT_DIFFUSION_ASSETS $LT_ASSETS_DIR (weights from .gpu/weights*, with SHA256SUMS)
#   LT_DIFFUSION_CACHE  uint8 CIFAR-10 caches installed from .gpu/data-* shards
# and registers the ipykernel "python3" for papermill. Idempotent: what a previous (warm) call
# installed is kept in persistent folders and not redone; parts may arrive in different calls.
# Overridable: LT_PYTHON, LT_SITE (/root/lt-site), LT_ASSETS_DIR (/root/lt-assets),
# LT_DIFFUSION_CACHE (/root/lt-cache), JUPYTER_DATA_DIR.

_lt_bootstrap() {
    local repo py site assets wheels stamp kdir
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    py="${LT_PYTHON:-$(command -v python || command -v python3)}"
    site="${LT_SITE:-/root/lt-site}"
    assets="${LT_ASSETS_DIR:-/root/lt-assets}"
    export LT_DIFFUSION_CACHE="${LT_DIFFUSION_CACHE:-/root/lt-cache}"
    mkdir -p "$site" "$assets" "$LT_DIFFUSION_CACHE" || return 1
    echo "[bootstrap] python: $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"

    # 1. wheels -> $site (pip --target; plain unzip if pip is missing)
    wheels=("$repo"/.gpu/env/wheels/*.whl)
    if [ -e "${wheels[0]}" ]; then
        stamp="$site/.installed-$(cd "$repo/.gpu/env/wheels" && ls | sha256sum | cut -c1-16)"
        if [ -f "$stamp" ]; then
            echo "[bootstrap] wheels: already installed in $site"
        else
            echo "[bootstrap] wheels: installing ${#wheels[@]} into $site"
            if "$py" -m pip --version >/dev/null 2>&1; then
                "$py" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile --upgrade \
                    --target "$site" "${wheels[@]}" 2>&1 | grep -v "^WARNING: Target directory" \
                    || true
            else
                "$py" - "$site" "${wheels[@]}" <<'EOF'
import pathlib, shutil, sys, zipfile
site = pathlib.Path(sys.argv[1])
for w in sys.argv[2:]:
    with zipfile.ZipFile(w) as z:
        z.extractall(site)
for d in site.glob("*.data"):
    for sub in ("purelib", "platlib"):
        if (d / sub).is_dir():
            shutil.copytree(d / sub, site, dirs_exist_ok=True)
    shutil.rmtree(d)
EOF
            fi
            PYTHONPATH="$site" "$py" -c "import papermill, nbclient, ipykernel, jupytext, importlib.util as u; assert u.find_spec('pytorch_fid') and u.find_spec('lpips')" \
                || { echo "[bootstrap] ERROR: installed wheels do not import (see above); rebuild .gpu/env"; return 1; }
            rm -f "$site"/.installed-*
            touch "$stamp"
        fi
    elif ls "$site"/.installed-* >/dev/null 2>&1; then
        echo "[bootstrap] wheels: using the earlier install in $site"
    else
        echo "[bootstrap] wheels: none carried and none installed: carry .gpu/env to run notebooks"
    fi
    case ":${PYTHONPATH:-}:" in *":$site:"*) ;; *) export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}" ;; esac
    case ":$PATH:" in *":$site/bin:"*) ;; *) export PATH="$site/bin:$PATH" ;; esac

    # 2. weights -> $assets (fp16 copies and/or joined fp32 parts, SHA256-checked)
    "$py" "$repo/scripts/make_gpu_bundle.py" install-weights --assets "$assets" \
        $(ls -d "$repo"/.gpu/weights "$repo"/.gpu/weights-fp32-* 2>/dev/null) || return 1
    export LT_DIFFUSION_ASSETS="$assets"

    # 3. data shards -> uint8 caches in $LT_DIFFUSION_CACHE (needs torch, numpy, PIL)
    "$py" "$repo/scripts/make_gpu_bundle.py" install-data --cache "$LT_DIFFUSION_CACHE" \
        $(ls -d "$repo"/.gpu/data-* 2>/dev/null) || return 1

    # 4. Jupyter kernel "python3" pointing at this python
    kdir="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}/kernels/python3"
    if [ -f "$kdir/kernel.json" ] && grep -qF "\"$py\"" "$kdir/kernel.json"; then
        echo "[bootstrap] kernel: python3 already registered ($kdir)"
    elif PYTHONPATH="$site" "$py" -c "import ipykernel" 2>/dev/null; then
        PYTHONPATH="$site" "$py" -m ipykernel install --user --name python3 >/dev/null \
            && echo "[bootstrap] kernel: registered python3 -> $py ($kdir)"
    else
        echo "[bootstrap] kernel: ipykernel not installed, skipped"
    fi

    echo "[bootstrap] PYTHONPATH=$PYTHONPATH"
    echo "[bootstrap] LT_DIFFUSION_ASSETS=$LT_DIFFUSION_ASSETS: $(cd "$assets" && ls *.pth 2>/dev/null | tr '\n' ' ')"
    echo "[bootstrap] LT_DIFFUSION_CACHE=$LT_DIFFUSION_CACHE: $(cd "$LT_DIFFUSION_CACHE" && ls *.pt 2>/dev/null | tr '\n' ' ')"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _lt_bootstrap || exit 1
    echo "[bootstrap] note: executed, not sourced; the exports above do not reach your shell"
else
    _lt_bootstrap
fi
