"""Chapter helpers: thin, documented wrappers over the engine that several chapters share.

The notebooks import these so that a chapter reads as "train this preset, sample it, score it" while the
maths stays in the engine modules (:mod:`lt_diffusion.diffusion`, :mod:`lt_diffusion.train`, ...), where
the chapters show it with ``inspect.getsource``.
"""
from . import common
from .common import *  # noqa: F401,F403  (the names are common.__all__, listed once there)

__all__ = list(common.__all__)
