"""Progress bars for long loops (training, sampling, feature extraction) that stay out of notebook outputs.

``tqdm.auto`` chooses the Jupyter widget inside a notebook and, where ``ipywidgets`` is missing, warns
(``TqdmWarning: IProgress not found``, with a path into the installed packages); under papermill and nbval
every bar, widget or text, ends up in the saved outputs. :func:`tqdm` here is tqdm's bar with one rule for
when it is shown:

* ``LT_DIFFUSION_PROGRESS=1`` shows bars everywhere (the Jupyter widget when ``ipywidgets`` is installed,
  else the text bar); ``LT_DIFFUSION_PROGRESS=0`` hides them everywhere;
* unset (the default), bars are shown only on an interactive terminal (``stderr`` is a TTY): scripts in a
  shell show them, notebooks, papermill and nbval runs, and logs redirected to a file do not.

A caller's own switch still applies: ``tqdm(..., disable=not progress)`` is never shown.
"""
from __future__ import annotations

import os
import sys
from typing import Any

PROGRESS_ENV = "LT_DIFFUSION_PROGRESS"

__all__ = ["PROGRESS_ENV", "enabled", "tqdm"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's shell), where ``tqdm.auto`` would pick the widget."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def enabled() -> bool:
    """Whether progress bars are shown here (see the module docstring for the rule)."""
    flag = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    try:
        return bool(sys.stderr.isatty()) and not _in_notebook()
    except (AttributeError, ValueError):  # stderr replaced or closed
        return False


def tqdm(iterable: Any = None, *args: Any, disable: bool | None = False, **kwargs: Any):
    """``tqdm.tqdm(iterable, *args, **kwargs)``, disabled unless :func:`enabled` (and the caller's ``disable``
    is false). Takes tqdm's arguments (``total``, ``initial``, ``desc``, ``leave``, ...)."""
    show = enabled() and not disable
    if show and _in_notebook():
        try:
            import ipywidgets  # noqa: F401  (the widget bar needs it; without it tqdm.auto warns)
            from tqdm.notebook import tqdm as bar
        except ImportError:
            from tqdm.std import tqdm as bar
    else:
        from tqdm.std import tqdm as bar
    return bar(iterable, *args, disable=not show, **kwargs)
