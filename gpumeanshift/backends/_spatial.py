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
    by cell. A seed visits only the 3^d cells around its own. For the
    Gaussian kernel the grid truncates the kernel at
    :data:`GAUSSIAN_GRID_RADIUS` bandwidths: weights of points farther than
    that are dropped, the largest dropped weight being
    ``exp(-GAUSSIAN_GRID_RADIUS**2 / 2)`` (about 1.5e-8) of the weight at
    distance 0. The flat kernel is not truncated: the grid is exact for it.
"""

from __future__ import annotations

import itertools

import numpy as np

ALGORITHMS = ("auto", "brute", "grid")

#: Truncation radius of the Gaussian kernel on the grid, in bandwidths.
GAUSSIAN_GRID_RADIUS = 6.0

#: Largest dimension for which "auto" considers the grid (3^d cells per seed).
GRID_MAX_DIM = 3

# Squared distance (in bandwidths) beyond which exp(-d2/2) is exactly 0.0.
_GAUSS_D2_CUTOFF = {
    np.dtype(np.float64): 2.0 * 746.0,  # exp(-746) == 0.0 in float64
    np.dtype(np.float32): 2.0 * 104.0,  # exp(-104) == 0.0 in float32
}


def neighbourhood_reach(kernel: str, dtype, algorithm: str) -> float:
    """Distance (in bandwidths) beyond which a point's weight is taken as 0."""
    if kernel == "flat":
        return 1.0
    if algorithm == "grid":
        return GAUSSIAN_GRID_RADIUS
    # Brute force and auto: only where exp() underflows to exactly 0.
    return float(np.sqrt(_GAUSS_D2_CUTOFF[np.dtype(dtype)]))


class SortedIndex:
    """The data sorted along the widest axis; see the module docstring."""

    name = "brute"
    truncate2 = None

    def __init__(self, Y: np.ndarray):
        n, d = Y.shape
        self.axis = int(np.argmax(np.ptp(Y, axis=0))) if n > 1 else 0
        self.order = np.argsort(Y[:, self.axis], kind="stable")
        self.Y = np.ascontiguousarray(Y[self.order])
        self.key = np.ascontiguousarray(self.Y[:, self.axis])
        self.cull_dims = min(d, 8)

    def tile_order(self, P: np.ndarray) -> np.ndarray:
        """Order seeds so that consecutive ones are close: by a slab two
        bandwidths wide along the sorted axis, then by the next axis."""
        if P.shape[1] == 1:
            return np.argsort(P[:, 0], kind="stable")
        other = 1 if self.axis == 0 else 0
        return np.lexsort((P[:, other], np.floor(P[:, self.axis] * 0.5)))

    def candidates(self, q: np.ndarray, reach: float):
        lo = q.min(axis=0) - reach
        hi = q.max(axis=0) + reach
        a = int(np.searchsorted(self.key, lo[self.axis], side="left"))
        b = int(np.searchsorted(self.key, hi[self.axis], side="right"))
        if b <= a or self.cull_dims == 1:
            return slice(a, b)
        k = self.cull_dims
        sub = self.Y[a:b, :k]
        inside = np.all((sub >= lo[:k]) & (sub <= hi[:k]), axis=1)
        if inside.all():
            return slice(a, b)
        return np.flatnonzero(inside) + a


class CellIndex:
    """A cell list with cells of side ``cell``; see the module docstring."""

    name = "grid"

    def __init__(self, Y: np.ndarray, cell: float, truncate: float | None = None):
        n, d = Y.shape
        self.cell = float(cell)
        self.truncate2 = None if truncate is None else float(truncate) ** 2
        self.origin = Y.min(axis=0).astype(np.float64)
        coords = self._coords(Y)
        self.shape = coords.max(axis=0) + 1
        if np.prod(self.shape.astype(np.float64)) >= 2.0**62:
            raise ValueError("the grid would need more than 2**62 cells; use algorithm='brute'")
        self.strides = np.cumprod(np.concatenate([[1], self.shape[::-1][:-1]]))[::-1].astype(np.int64)
        ids = coords @ self.strides
        self.order = np.argsort(ids, kind="stable")
        self.Y = np.ascontiguousarray(Y[self.order])
        sorted_ids = ids[self.order]
        self.cell_ids, self.cell_start, counts = np.unique(
            sorted_ids, return_index=True, return_counts=True
        )
        self.cell_end = self.cell_start + counts
        self.offsets = np.array(list(itertools.product((-1, 0, 1), repeat=d)), dtype=np.int64)

    def _coords(self, P: np.ndarray) -> np.ndarray:
        return np.floor((np.asarray(P, np.float64) - self.origin) / self.cell).astype(np.int64)

    def tile_order(self, P: np.ndarray) -> np.ndarray:
        """Seeds in cell order, so a tile covers few, adjacent cells."""
        c = self._coords(P)
        return np.lexsort(c.T[::-1])

    def candidates(self, q: np.ndarray, reach: float):
        if reach > self.cell * (1 + 1e-12):
            raise ValueError(f"reach {reach} exceeds the cell side {self.cell}")
        cells = np.unique(self._coords(q), axis=0)
        nb = (cells[:, None, :] + self.offsets[None, :, :]).reshape(-1, cells.shape[1])
        ok = np.all((nb >= 0) & (nb < self.shape), axis=1)
        ids = np.unique(nb[ok] @ self.strides)
        pos = np.minimum(np.searchsorted(self.cell_ids, ids), len(self.cell_ids) - 1)
        hit = pos[self.cell_ids[pos] == ids]
        starts, ends = self.cell_start[hit], self.cell_end[hit]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        # Concatenate the ranges [start, end) without a Python loop.
        shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return np.arange(total, dtype=np.int64) + shift

    def mean_candidates(self) -> float:
        """Average number of points a seed placed on a data point visits."""
        coords = np.stack(np.unravel_index(self.cell_ids, tuple(self.shape)), axis=1)
        counts = self.cell_end - self.cell_start
        total = np.zeros(len(self.cell_ids))
        for off in self.offsets:
            nb = coords + off
            ok = np.all((nb >= 0) & (nb < self.shape), axis=1)
            ids = nb[ok] @ self.strides
            pos = np.searchsorted(self.cell_ids, ids)
            pos[pos >= len(self.cell_ids)] = 0
            found = self.cell_ids[pos] == ids
            add = np.zeros(len(self.cell_ids))
            add[np.flatnonzero(ok)[found]] = counts[pos[found]]
            total += add
        return float((total * counts).sum() / counts.sum())


def make_index(Y: np.ndarray, reach: float, algorithm: str):
    """Build the index for ``algorithm`` ("brute", "grid" or "auto").

    "auto" takes the grid when the data have at most :data:`GRID_MAX_DIM`
    features and a seed on a data point would visit, on average, fewer than
    a quarter of the points through the grid; otherwise brute force. The
    Gaussian kernel under "auto" keeps brute force's exact reach, so auto
    never changes a Gaussian result through truncation.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    n, d = Y.shape
    if algorithm == "brute":
        return SortedIndex(Y)
    if algorithm == "grid":
        truncate = reach if reach == GAUSSIAN_GRID_RADIUS else None
        return CellIndex(Y, reach, truncate)
    # auto
    if d > GRID_MAX_DIM or n < 2048:
        return SortedIndex(Y)
    extent = np.ptp(Y, axis=0)
    if np.prod(np.minimum(1.0, 3.0 * reach / np.maximum(extent, 1e-300))) > 0.25:
        return SortedIndex(Y)
    try:
        grid = CellIndex(Y, reach)
    except ValueError:
        return SortedIndex(Y)
    if grid.mean_candidates() < 0.25 * n:
        return grid
    return SortedIndex(Y)
