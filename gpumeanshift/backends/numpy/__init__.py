"""The NumPy CPU backend: tiled BLAS products, cell grids and k-d boxes."""

from .backend import NumpyBackend

__all__ = ["NumpyBackend"]
