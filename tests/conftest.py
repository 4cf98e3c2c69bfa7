"""Shared fixtures for the whole test suite.

Keep this file small: fixtures used by one test module belong in that module.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
_SHARED_ASSETS = REPO_ROOT.parent / "shared" / "assets"

# Same rule as the Makefile: use ../shared/assets when it exists and the caller did not
# choose a folder. Set at import time so that modules imported by tests see it too.
if "LT_DIFFUSION_ASSETS" not in os.environ and _SHARED_ASSETS.is_dir():
    os.environ["LT_DIFFUSION_ASSETS"] = str(_SHARED_ASSETS)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder that holds pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """The offline assets folder (``LT_DIFFUSION_ASSETS``); skips the test when there is none."""
    value = os.environ.get("LT_DIFFUSION_ASSETS", "")
    if not value:
        pytest.skip("no offline assets: LT_DIFFUSION_ASSETS is unset and ../shared/assets does not exist")
    path = Path(value).expanduser()
    if not path.is_dir() or not any(path.iterdir()):
        pytest.skip(f"no offline assets: LT_DIFFUSION_ASSETS={value} is not a non-empty folder")
    return path


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored afterwards. Tiny models gain nothing from intra-op threads, and
    on a loaded 2-core CI box OpenMP spin-waiting makes them up to 50x slower. Modules use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
