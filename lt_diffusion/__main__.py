"""``python -m lt_diffusion ...`` (and ``torchrun ... -m lt_diffusion ...``): the ``lt-diffusion`` command."""
import sys

from lt_diffusion.cli import main

sys.exit(main())
