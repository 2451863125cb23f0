"""The two neighbourhood indexes (see the package's documentation) and the
density grid that plans tiles."""

from __future__ import annotations

import itertools

import numpy as np

from .._params import ALGORITHMS
from ._exact import col_max, col_min
from ._proof import GAUSSIAN_GRID_RADIUS

#: Largest dimension for which "auto" considers the grid (3^d cells per seed).
GRID_MAX_DIM = 3


class SortedIndex:
    """The data sorted along the widest axis; see the module docstring."""

    name = "brute"
    truncate2 = None

    def __init__(self, Y: np.ndarray):
        n, d = Y.shape
        self._lo = col_min(Y) if n else np.zeros(d, Y.dtype)
        self._hi = col_max(Y) if n else np.zeros(d, Y.dtype)
        self.axis = int(np.argmax(self._hi - self._lo)) if n > 1 else 0
        # Ties may come in any order (introsort: 4x faster than a stable
        # sort at 1e5 points); sums over them change only by rounding.
        self.order = np.argsort(Y[:, self.axis])
        self.Y = np.take(Y, self.order, axis=0)
        self.key = np.ascontiguousarray(self.Y[:, self.axis])
        self.cull_dims = min(d, 8)
        # The other axes, as columns, to cull a slab without a 2-D pass.
        self._cols = [(j, np.ascontiguousarray(self.Y[:, j]))
                      for j in range(self.cull_dims) if j != self.axis]
        self._density = None

    def tile_order(self, P: np.ndarray) -> np.ndarray:
        """Order seeds so that consecutive ones are close: by a slab two
        bandwidths wide along the sorted axis, then by the next axis."""
        if P.shape[1] == 1:
            return np.argsort(P[:, 0], kind="stable")
        other = 1 if self.axis == 0 else 0
        return np.lexsort((P[:, other], np.floor(P[:, self.axis] * 0.5)))

    def density(self) -> "DensityGrid":
        """A coarse count of the points over the sorted axis and the next
        widest one (built on first use), for planning tiles of few seeds."""
        if self._density is None:
            self._density = _widest_density(self.Y, self._lo, self._hi, self.axis)
        return self._density

    # A gathered candidate row (np.take) costs about as much as this many
    # seed-point pairs (measured: ~3.7 ns a row, ~2.7 ns a pair).
    _GATHER_PAIRS = 1.5

    def candidates(self, q: np.ndarray, reach: float):
        lo = q.min(axis=0) - reach
        hi = q.max(axis=0) + reach
        a = int(np.searchsorted(self.key, lo[self.axis], side="left"))
        b = int(np.searchsorted(self.key, hi[self.axis], side="right"))
        if b <= a or self.cull_dims == 1:
            return slice(a, b)
        # Only axes along which the box is narrower than the data can
        # exclude a point (the same comparisons as a full box test).
        inside = None
        for j, col in self._cols:
            if lo[j] <= self._lo[j] and hi[j] >= self._hi[j]:
                continue
            c = col[a:b]
            m = c >= lo[j]
            m &= c <= hi[j]
            if inside is None:
                inside = m
            else:
                inside &= m
        if inside is None:
            return slice(a, b)
        # The slab itself is a view; the culled rows must be gathered. Cull
        # only when the pairs it saves outweigh the gather (few seeds per
        # tile: only when it drops most of the slab).
        kept = int(np.count_nonzero(inside))
        t = len(q)
        if kept * (t + self._GATHER_PAIRS) >= (b - a) * t:
            return slice(a, b)
        return np.flatnonzero(inside) + a


def _widest_density(Y, lo, hi, first: int) -> "DensityGrid":
    """The density grid of ``Y`` over axis ``first`` and the widest other one."""
    axes = [first]
    if Y.shape[1] > 1:
        ext = (hi - lo).astype(np.float64)
        ext[first] = -1.0
        axes.append(int(np.argmax(ext)))
    return DensityGrid(Y, axes, lo, hi)


class DensityGrid:
    """Point counts of boxes, to within a cell: a summed-area table of the
    data over one or two axes, at most ``cells`` cells a side.

    ``boxes(P, reach)`` gives, for each row of ``P``, the cell range its box
    ``[p - reach, p + reach]`` touches (outward-rounded, so ``count`` of a
    union of such ranges is an upper bound on the points in the boxes,
    counting only the grid's axes); ``count`` reads the table in O(1).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import DensityGrid
    >>> Y = np.array([[0.0, 0.0], [0.1, 0.1], [5.0, 5.0]])
    >>> g = DensityGrid(Y, [0, 1], Y.min(axis=0), Y.max(axis=0), cells=10)
    >>> i0, i1, j0, j1 = g.boxes(np.array([[0.0, 0.0], [5.0, 5.0]]), 1.0)
    >>> g.count(i0[0], i1[0], j0[0], j1[0]), g.count(i0[1], i1[1], j0[1], j1[1])
    (2, 1)
    >>> g.count(i0[0], i1[1], j0[0], j1[1])  # the union of both boxes
    3
    """

    def __init__(self, Y, axes, lo, hi, cells: int = 256):
        self.axes = list(axes)[:2]
        lo = np.asarray(lo, np.float64)[self.axes]
        ext = np.asarray(hi, np.float64)[self.axes] - lo
        self.lo = lo
        self.shape = [int(cells) if e > 0 else 1 for e in ext]
        self.width = np.where(ext > 0, ext / np.maximum(self.shape, 1), 1.0)
        flat = np.zeros(len(Y), dtype=np.int64)
        for k, j in enumerate(self.axes):
            c = self._cell(np.asarray(Y[:, j], np.float64), k)
            flat = flat * self.shape[k] + c
        counts = np.bincount(flat, minlength=int(np.prod(self.shape))).reshape(self.shape)
        if len(self.axes) == 1:
            counts = counts[:, None]
        sat = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.int64)
        np.cumsum(np.cumsum(counts, axis=0), axis=1, out=sat[1:, 1:])
        self._sat = sat.tolist()  # Python ints: the planner reads it one cell at a time

    def _cell(self, v, k):
        c = np.floor((v - self.lo[k]) / self.width[k])
        return np.clip(c, 0, self.shape[k] - 1).astype(np.int64)

    def boxes(self, P, reach: float):
        """Per row of ``P``: ``i0, i1, j0, j1`` (lists), the half-open cell
        ranges along the grid's axes of the box ``[p - reach, p + reach]``."""
        return [list(col) for col in self.box_array(P, reach).T.tolist()]

    def box_array(self, P, reach: float) -> np.ndarray:
        """:meth:`boxes` as one ``(len(P), 4)`` integer array."""
        out = np.zeros((len(P), 4), dtype=np.int64)
        out[:, 3] = 1  # a grid of one axis: the second is one cell
        for k, j in enumerate(self.axes):
            v = np.asarray(P[:, j], np.float64)
            out[:, 2 * k] = self._cell(v - reach, k)
            out[:, 2 * k + 1] = self._cell(v + reach, k) + 1
        return out

    def count(self, i0: int, i1: int, j0: int, j1: int) -> int:
        """Points in the cells ``[i0, i1) x [j0, j1)``."""
        s = self._sat
        return s[i1][j1] - s[i0][j1] - s[i1][j0] + s[i0][j0]


class CellIndex:
    """A cell list with cells of side ``cell``; see the module docstring."""

    name = "grid"

    def __init__(self, Y: np.ndarray, cell: float, truncate: float | None = None, span: int = 1):
        n, d = Y.shape
        self.cell = float(cell)
        self.span = int(span)  # a seed visits the (2 * span + 1)^d cells around its own
        self.truncate2 = None if truncate is None else float(truncate) ** 2
        self.origin = col_min(Y).astype(np.float64)
        coords = self._coords(Y)
        self.shape = col_max(coords) + 1
        if np.prod(self.shape.astype(np.float64)) >= 2.0**62:
            raise ValueError("the grid would need more than 2**62 cells; use algorithm='brute'")
        self.strides = np.cumprod(np.concatenate([[1], self.shape[::-1][:-1]]))[::-1].astype(np.int64)
        ids = coords @ self.strides
        self.order = np.argsort(ids, kind="stable")
        self.Y = np.take(Y, self.order, axis=0)
        sorted_ids = ids[self.order]
        self.cell_ids, self.cell_start, counts = np.unique(
            sorted_ids, return_index=True, return_counts=True
        )
        self.cell_end = self.cell_start + counts
        self.offsets = np.array(list(itertools.product(range(-self.span, self.span + 1), repeat=d)),
                                dtype=np.int64)
        self._density = None

    def density(self) -> "DensityGrid":
        """A coarse count of the points over the two widest axes (built on
        first use), for planning tiles of few seeds: a tile's candidates are
        the cells around its seeds, within the box the plan counts."""
        if self._density is None:
            lo, hi = col_min(self.Y), col_max(self.Y)
            self._density = _widest_density(self.Y, lo, hi, int(np.argmax(hi - lo)))
        return self._density

    def _coords(self, P: np.ndarray) -> np.ndarray:
        return np.floor((np.asarray(P, np.float64) - self.origin) / self.cell).astype(np.int64)

    def _cells_for(self, reach: float) -> int:
        """Cells on each side of a seed's own that hold every point within
        ``reach`` of it: ``span`` when the reach fits in it (the grid's
        design), fewer for a shorter reach, more for a longer one."""
        if reach <= self.cell * self.span * (1 + 1e-12):
            return max(1, min(self.span, int(np.ceil(reach / self.cell - 1e-12))))
        return int(np.ceil(reach / self.cell - 1e-12))

    def clearance(self, P: np.ndarray, reach: float, cells: int | None = None) -> np.ndarray:
        """Per row of ``P``: a lower bound on the distance from it to any
        point that ``candidates(P, reach)`` leaves out (0 at worst).

        The distance to the nearest face of the seed's own block of cells
        (its cell and ``s`` more on each side, all visited), less a margin for
        the rounding of the cell coordinates (a point a hair inside a face
        may be binned just outside it).
        ``cells`` overrides the ``s`` that ``reach`` gives (the clearance of
        a wider block, see :meth:`block_totals`).

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift._spatial import CellIndex
        >>> idx = CellIndex(np.array([[0.0], [10.0]]), 2.0)
        >>> [round(float(c), 6) for c in idx.clearance(np.array([[0.5], [3.0]]), 1.0)]
        [2.5, 3.0]
        """
        P = np.asarray(P, np.float64)
        s = self._cells_for(reach) if cells is None else int(cells)
        return self._clearance(P, self._coords(P).astype(np.float64), s)

    def _clearance(self, P, k, s: int):
        """:meth:`clearance` of the rows ``P`` (float64) in cells ``k``
        (their coordinates, as float64) for blocks of ``s`` cells a side."""
        # Column by column (rows of 1-3 values reduce slowly along axis 1).
        gap = np.full(len(P), np.inf)
        top_p = np.zeros(len(P))
        top_k = np.zeros(len(P))
        for j in range(P.shape[1]):
            p, kj, o = P[:, j], k[:, j], self.origin[j]
            np.minimum(gap, p - (o + (kj - s) * self.cell), out=gap)
            np.minimum(gap, (o + (kj + s + 1) * self.cell) - p, out=gap)
            np.maximum(top_p, np.abs(p), out=top_p)
            np.maximum(top_k, np.abs(kj), out=top_k)
        eps = float(np.finfo(np.float64).eps)
        top = top_p + float(np.abs(self.origin).max(initial=0.0)) + (top_k + s + 1) * self.cell
        return np.maximum(gap - 16.0 * eps * top, 0.0)

    def tile_order(self, P: np.ndarray) -> np.ndarray:
        """Seeds in Morton (Z) order of their cells, so a tile of consecutive
        seeds covers a compact block of cells rather than a long row (about
        20% fewer candidate pairs than row order on 2-D hotspot data)."""
        c = self._coords(P)
        key = _morton(c)
        if key is None:
            return np.lexsort(c.T[::-1])
        return np.argsort(key, kind="stable")

    def candidates(self, q: np.ndarray, reach: float):
        """Sorted rows of the cells within ``s`` cells (per axis) of a row of
        ``q``'s own, ``s`` the fewest that hold the ``reach``: every point
        within ``reach`` of a row of ``q``.

        Along the last axis consecutive cells have consecutive ids, so a
        seed's block is ``(2 s + 1)^(d - 1)`` runs of sorted points; the runs
        of the tile's seeds are merged row by row and each is found by two
        binary searches (no per-cell work).

        A compact tile (its seeds' cells span at most an eighth of a block
        on every axis, the common case for seeds taken in Morton order)
        takes the box of cells around them instead: a superset of the
        blocks' union by at most ``(9/8)^d``, read from a table of each
        cell's first row (:meth:`_box_candidates`) in a few NumPy calls.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift._spatial import CellIndex
        >>> idx = CellIndex(np.array([[0.5, 0.5], [1.5, 0.5], [4.5, 4.5]]), 1.0)
        >>> idx.Y[idx.candidates(np.array([[0.9, 0.6]]), 1.0)].tolist()
        [[0.5, 0.5], [1.5, 0.5]]
        """
        d = self.origin.shape[0]
        s = self._cells_for(reach)
        k = self._coords(q)
        if len(k):
            lo, hi = k.min(axis=0), k.max(axis=0)
            if 8 * int((hi - lo).max()) <= 2 * s + 1 and self._first_rows() is not None:
                return self._box_candidates(lo - s, hi + s)
        cells = _unique_rows(k)
        top = self.shape - 1
        # One run per (seed cell, row offset over the first d - 1 axes).
        lead = (np.array(list(itertools.product(range(-s, s + 1), repeat=d - 1)),
                         dtype=np.int64) if d > 1 else np.zeros((1, 0), np.int64))
        rows = (cells[:, None, :d - 1] + lead[None, :, :]).reshape(len(cells) * len(lead), d - 1)
        lo = np.repeat(cells[:, d - 1] - s, len(lead))  # unclipped: all 2 s + 1 wide
        ok = np.all((rows >= 0) & (rows <= top[:d - 1]), axis=1)
        base = rows[ok] @ self.strides[:d - 1] if d > 1 else np.zeros(int(ok.sum()), np.int64)
        lo = lo[ok]
        if base.size == 0:
            return np.empty(0, dtype=np.int64)
        # Merge the runs of a row (equal widths: sorted by start, sorted by
        # end too), then clip them to the grid.
        order = np.lexsort((lo, base))
        base, lo = base[order], lo[order]
        new = np.ones(len(base), dtype=bool)
        new[1:] = (base[1:] != base[:-1]) | (lo[1:] > lo[:-1] + 2 * s + 1)
        start = np.flatnonzero(new)
        end = np.append(start[1:], len(base)) - 1
        a = np.maximum(lo[start], 0)
        b = np.minimum(lo[end] + 2 * s, top[d - 1])
        inside = b >= a
        base, a, b = base[start][inside], a[inside], b[inside]
        first = np.searchsorted(self.cell_ids, base + a, side="left")
        last = np.searchsorted(self.cell_ids, base + b, side="right")
        keep = last > first
        starts = self.cell_start[first[keep]]
        lengths = self.cell_end[last[keep] - 1] - starts
        return _concat_ranges(starts, lengths)

    def _first_rows(self):
        """Per cell id ``c`` (all ``prod(shape)`` of them, and one past the
        last): the first sorted row of a cell with id ``>= c``; None when
        the grid is too large for the table (see ``_TABLE_PER_POINT``)."""
        table = self.__dict__.get("_first")
        if table is None and "_first" not in self.__dict__:
            size = float(np.prod(self.shape.astype(np.float64)))
            if size <= max(self._TABLE_PER_POINT * len(self.Y), self._TABLE_MIN):
                table = np.zeros(int(size) + 1, dtype=np.int64)
                table[self.cell_ids + 1] = self.cell_end - self.cell_start
                np.cumsum(table, out=table)
            self.__dict__["_first"] = table
        return table

    def _box_candidates(self, lo, hi):
        """Sorted rows of the cells ``lo <= k <= hi`` (integer corners,
        clipped to the grid here): one run per row of cells along the last
        axis, its ends read from :meth:`_first_rows`."""
        first = self._first_rows()
        d = len(lo)
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape - 1)
        if (hi < lo).any():
            return np.empty(0, dtype=np.int64)
        base = np.zeros(1, dtype=np.int64)
        for j in range(d - 1):  # ids of the rows' first cells, in id order
            base = (base[:, None] + np.arange(lo[j], hi[j] + 1) * self.strides[j]).reshape(-1)
        starts = np.take(first, base + lo[d - 1])
        lengths = np.take(first, base + (hi[d - 1] + 1)) - starts
        return _concat_ranges(starts, lengths)

    # Largest summed-area table of the cells ``block_totals`` builds, in
    # entries per data point (and at least this many in all): past it the
    # proof counts every point outside a seed's block at the block's clearance.
    _TABLE_PER_POINT = 8
    _TABLE_MIN = 1 << 20

    def block_totals(self, P: np.ndarray, spans, weights=None):
        """Per row of ``P`` and per ``s`` in ``spans``: the points (or their
        summed ``weights``, given in the index's order) in the block of cells
        within ``s`` of the row's own, clipped to the grid; None when the
        grid is too large for its summed-area table.

        Counts are exact; summed weights are float64 sums, each within
        ``len(cells) * eps`` of the total weight of its true value.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift._spatial import CellIndex
        >>> idx = CellIndex(np.array([[0.5], [1.5], [2.5], [9.5]]), 1.0)
        >>> [t.tolist() for t in idx.block_totals(np.array([[1.7], [30.0]]), [0, 1])]
        [[1, 0], [3, 0]]
        """
        if self._block_table(weights) is None:
            return None
        return self._block_totals(self._coords(P), spans, weights)

    def _block_totals(self, k, spans, weights):
        table = self._block_table(weights)
        d = self.origin.shape[0]
        flat = table.reshape(-1)
        strides = [int(v) for v in np.cumprod(np.concatenate([[1], self.shape[::-1] + 1]))[::-1][1:]]
        cols = [np.ascontiguousarray(k[:, j]) for j in range(d)]
        out = []
        for s in spans:
            # First cell and one past the last, as offsets into the prefix table.
            lo = [np.clip(cols[j] - s, 0, int(self.shape[j])) * strides[j] for j in range(d)]
            hi = [np.clip(cols[j] + (s + 1), 0, int(self.shape[j])) * strides[j] for j in range(d)]
            tot = None
            for corner in itertools.product((0, 1), repeat=d):
                at = sum(hi[j] if c else lo[j] for j, c in enumerate(corner))
                v = np.take(flat, at)
                if tot is None:
                    tot = v if (d - sum(corner)) % 2 == 0 else -v
                elif (d - sum(corner)) % 2:
                    tot -= v
                else:
                    tot += v
            # A block off the grid on some axis: lo == hi there, and its
            # terms cancel to exactly 0 (integers) or to rounding (weights).
            out.append(tot)
        return out

    def proof_shells(self, P: np.ndarray, s: int, weights=None):
        """What the proven Gaussian needs of a seed's neighbourhood, for
        the rows of ``P`` and blocks of ``s`` cells a side: the clearances of
        the blocks of ``s`` and ``s + 1`` cells and the points (or weights)
        in each (see :meth:`block_totals`); None without the table."""
        if self._block_table(weights) is None:
            return None
        P = np.asarray(P, np.float64)
        k = self._coords(P)
        kf = k.astype(np.float64)
        c1, c2 = self._clearance(P, kf, s), self._clearance(P, kf, s + 1)
        # The totals depend on the seed's cell only: read per cell, from
        # totals made once for every cell of the grid (seeds off the grid
        # take the table).
        key = ("_cell_totals", s, weights is None)
        per_cell = self.__dict__.get(key)
        if per_cell is None:
            every = np.stack(np.unravel_index(np.arange(int(np.prod(self.shape))),
                                              tuple(int(v) for v in self.shape)), axis=1)
            per_cell = self.__dict__[key] = self._block_totals(every, [s, s + 1], weights)
        inside = np.ones(len(k), dtype=bool)
        flat = np.zeros(len(k), dtype=np.int64)
        for j in range(k.shape[1]):
            kj = k[:, j]
            inside &= (kj >= 0) & (kj < self.shape[j])
            flat += kj * int(self.strides[j])
        if inside.all():
            return c1, c2, np.take(per_cell[0], flat), np.take(per_cell[1], flat)
        t1, t2 = self._block_totals(k, [s, s + 1], weights)
        return c1, c2, t1, t2

    def block_total_error(self, total: float) -> float:
        """Bound on the rounding of a weighted :meth:`block_totals` entry
        (``total``: the weight of all points): inclusion-exclusion of
        ``2**d`` prefix sums, each of at most as many terms as the table has
        entries."""
        d = self.origin.shape[0]
        size = float(np.prod(self.shape.astype(np.float64) + 1))
        return 2.0**d * 2.0 * size * float(np.finfo(np.float64).eps) * float(total)

    def _block_table(self, weights):
        key = "_table_w" if weights is not None else "_table_n"
        if key in self.__dict__:
            return self.__dict__[key]
        n, d = self.Y.shape
        # The table and the per-cell totals of ``proof_shells``.
        size = 3.0 * float(np.prod(self.shape.astype(np.float64) + 1))
        table = None
        if size <= max(self._TABLE_PER_POINT * n, self._TABLE_MIN):
            grid = np.zeros(int(np.prod(self.shape)),
                            dtype=np.int64 if weights is None else np.float64)
            per_cell = (self.cell_end - self.cell_start) if weights is None else \
                np.add.reduceat(np.asarray(weights, np.float64), self.cell_start)
            grid[self.cell_ids] = per_cell
            table = np.zeros(tuple(int(v) + 1 for v in self.shape), dtype=grid.dtype)
            acc = grid.reshape(tuple(int(v) for v in self.shape))
            for j in range(d):
                acc = np.cumsum(acc, axis=j)
            table[(slice(1, None),) * d] = acc
        self.__dict__[key] = table
        return table

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


_SPREAD = {  # (bits per axis, [(shift, mask), ...]) spreading bits for Morton keys
    2: (32, [(16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
             (2, 0x3333333333333333), (1, 0x5555555555555555)]),
    3: (21, [(32, 0x001F00000000FFFF), (16, 0x001F0000FF0000FF), (8, 0x100F00F00F00F00F),
             (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)]),
}


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ranges ``[start, start + length)`` one after another, without a
    Python loop (empty ranges allowed)."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _unique_rows(c: np.ndarray) -> np.ndarray:
    """``np.unique(c, axis=0)`` for integer rows, through one integer key
    (several times faster than the structured sort of ``axis=0``)."""
    if len(c) == 0:
        return c
    lo = c.min(axis=0)
    size = c.max(axis=0) - lo + 1
    if float(np.prod(size.astype(np.float64))) >= 2.0**62:
        return np.unique(c, axis=0)
    radix = np.cumprod(np.concatenate([[1], size[::-1][:-1]]))[::-1].astype(np.int64)
    key = np.unique((c - lo) @ radix)
    out = np.empty((len(key), c.shape[1]), dtype=c.dtype)
    for j in range(c.shape[1]):
        out[:, j], key = np.divmod(key, radix[j])
    return out + lo


def _morton(c: np.ndarray):
    """Morton keys of integer cell coordinates (d <= 3), or None when they do not fit."""
    m, d = c.shape
    if m == 0:
        return np.zeros(0, dtype=np.uint64)
    c = c - c.min(axis=0)
    if d == 1:
        return c[:, 0].astype(np.uint64)
    if d not in _SPREAD or int(c.max()) >= 1 << _SPREAD[d][0]:
        return None
    key = np.zeros(m, dtype=np.uint64)
    for j in range(d):
        x = c[:, j].astype(np.uint64)
        for shift, mask in _SPREAD[d][1]:
            x = (x | (x << np.uint64(shift))) & np.uint64(mask)
        key |= x << np.uint64(j)
    return key


def make_index(Y: np.ndarray, reach: float, algorithm: str, span: int = 1):
    """Build the index for ``algorithm`` ("brute", "grid" or "auto").

    "auto" takes the grid when the data have at most :data:`GRID_MAX_DIM`
    features and a seed on a data point would visit, on average, fewer than
    a quarter of the points through the grid; otherwise brute force. Its
    cells have side ``reach / span`` and a seed visits ``span`` cells on each
    side of its own. For the Gaussian kernel the backends pass the radius of
    :func:`gaussian_proof_radius` and check every seed's truncation (see the
    module docstring), so auto never changes a Gaussian result beyond
    rounding.
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
    extent = col_max(Y) - col_min(Y)
    if np.prod(np.minimum(1.0, 3.0 * reach / np.maximum(extent, 1e-300))) > 0.25:
        return SortedIndex(Y)
    try:
        if n > 4 * _AUTO_SAMPLE:
            # A strided sample predicts the grid's candidate count: when it
            # is clearly above the threshold, skip building the full grid.
            # (A wrong guess costs speed only: both indexes give the same
            # result under "auto".)
            sample = Y[:: n // _AUTO_SAMPLE]
            estimate = CellIndex(sample, reach / span, span=span).mean_candidates() \
                * (n / len(sample))
            if estimate > 0.4 * n:
                return SortedIndex(Y)
        grid = CellIndex(Y, reach / span, span=span)
    except ValueError:
        return SortedIndex(Y)
    if grid.mean_candidates() < 0.25 * n:
        return grid
    return SortedIndex(Y)


_AUTO_SAMPLE = 4096  # rows of the sample that pre-screens the grid under "auto"
