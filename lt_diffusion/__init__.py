"""lt-diffusion: seven diffusion papers on one engine."""
__version__ = "0.1.0"
