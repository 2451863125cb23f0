"""Which data points a tile of seeds must visit: the two neighbourhood indexes.

Both work on data already centered and divided by the bandwidth, so the
kernel's reach is a number of bandwidths. Both are exact for what they
promise: every point within ``reach`` of a seed of the tile is among the
candidates (more may be; the kernel itself decides their weight).

``"brute"`` (:class:`SortedIndex`)
    The data sorted along their widest axis. A tile of seeds visits the
    contiguous run of points whose coordinate on that axis lies within
    ``reach`` of the tile's extent, pruned to the tile's bounding box grown by
    ``reach`` in up to 8 dimensions. Works in any dimension; it is the full
    all-pairs computation when the data are no wider than the reach.

``"grid"`` (:class:`CellIndex`)
    A cell list: cubic cells of side ``reach``, cell ``floor(y / reach)`` per
    axis (floor, not truncation toward zero, so the cell at 0 is no wider
    than the others and negative coordinates bin correctly), points sorted
    by cell. A seed visits only the 3^d cells around its own (the
    ``(2 span + 1)^d`` when cells are a ``span``-th of the reach); seeds are
    tiled in Morton order of their cells, so a tile covers a compact block. For the
    Gaussian kernel the grid truncates the kernel at
    :data:`GAUSSIAN_GRID_RADIUS` bandwidths: weights of points farther than
    that are dropped, the largest dropped weight being
    ``exp(-GAUSSIAN_GRID_RADIUS**2 / 2)`` (about 1.5e-8) of the weight at
    distance 0. The flat kernel is not truncated: the grid is exact for it.

``"auto"`` with the Gaussian kernel (:func:`gaussian_proof_radius`)
    The grid with cells sized so that, for a seed among the data, the terms
    outside its cells provably cannot move its new position by more than the
    dtype's rounding (:func:`gaussian_truncation_bound`, checked seed by seed
    on every step); a seed that cannot prove it takes brute force's exact
    step. So "auto" never changes a Gaussian result beyond rounding.
"""

from __future__ import annotations

from ._exact import (SAFE_ABS, col_max, col_min, integer_valued, midrange, pair_distance,
                     pow2_at_least, robust_norm, within_exact)
from ._index import GRID_MAX_DIM, CellIndex, DensityGrid, SortedIndex, make_index
from ._proof import (GAUSSIAN_GRID_RADIUS, gaussian_proof_radius, gaussian_truncation_bound,
                     neighbourhood_reach)
from ._rows import coincident_rows, resolve_leaders

__all__ = ["GAUSSIAN_GRID_RADIUS", "GRID_MAX_DIM", "SAFE_ABS", "CellIndex", "DensityGrid",
           "SortedIndex", "coincident_rows", "col_max", "col_min", "gaussian_proof_radius",
           "gaussian_truncation_bound", "integer_valued", "make_index", "midrange",
           "neighbourhood_reach", "pair_distance", "pow2_at_least", "resolve_leaders",
           "robust_norm", "within_exact"]
