"""The NumPy (CPU) backend: tiled, vectorized, multi-threaded.

How the shift step is computed
------------------------------
The data are centered and divided by the bandwidth once, so a pair (seed s,
point x) has weight ``1[|s - x|^2 <= 1]`` (flat) or ``exp(-|s - x|^2 / 2)``
(Gaussian). The data are sorted along their widest axis. Every iteration the
active seeds are sorted into spatially compact tiles; for each tile only the
data within reach of the tile's bounding box are visited (reach: 1 for the
flat kernel, and for the Gaussian the distance past which ``exp`` underflows
to exactly zero, so the culling never changes a result; under "auto" in
d <= 3, a cell grid whose shorter reach each seed proves harmless, step by
step, or else takes the exact step, see ``_spatial``). For a tile of ``t``
seeds and ``c`` candidate points, one matrix product gives the squared
distances (coordinates taken relative to the tile's center, which keeps the
expansion |s|^2 + |x|^2 - 2 s.x accurate) and a second gives the weighted
sums and the weight total at once (the data carry a column of ones). Memory
is bounded by the tile size, never n x m. Converged seeds leave the active
set. Tiles run on a small thread pool: NumPy's loops and BLAS release the
GIL (products go through ``_product``: np.matmul keeps it for small
outputs).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ..._spatial import (GAUSSIAN_GRID_RADIUS, SAFE_ABS, SortedIndex, coincident_rows,
                         midrange, neighbourhood_reach, pair_distance,
                         pow2_at_least, within_exact)
from ..base import PartialSums
from . import _kth
from ._blocks import (_MAX_TILE_SPAN, _BlockUnits, _absmax, _augment_points, _augment_queries,
                      _neg_half_over, _neg_half_sqdist, _product, _rows, _sequential_mean,
                      _sorted_union, _squared_ratio, _weighted_data, _weighted_mean,
                      _weighted_rows)
from ._climb import Climb

def _parallel_method(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._parallel():
            return method(self, *args, **kwargs)

    return wrapper


_CONTROLLER = []  # [threadpoolctl.ThreadpoolController], made on first use


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once.

    ``threadpool_limits`` scans every loaded library on each call (2.7 ms
    measured, ~10% of a 100,000-point bin-seeding fit that enters the pool a
    few times); a kept controller limits in 0.02 ms. NumPy's BLAS, the one
    the tiles call, is loaded with NumPy, before any backend call, so it is
    always among the controller's; a BLAS loaded after the first call
    (SciPy's, say) is not, and the tiles never call it. None without
    threadpoolctl.
    """
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class NumpyBackend:
    """Mean shift on the CPU with NumPy.

    Parameters
    ----------
    n_threads : int, default=None
        Worker threads for the tiles; None uses every core this process may
        run on.
    tile_elements : int, default=2**17
        Upper bound on the elements of one tile's seed x point block; the
        peak extra memory is about ``4 * 8 * tile_elements`` bytes per thread
        (float32 shift tiles hold twice as many elements in the same bytes).
        The default keeps a float64 block (1 MiB) in the L2 cache: measured
        1.2-1.3x faster than 2**19 on the Gaussian step at d = 2 and 16 in
        float64, and on the flat kernel with bin seeding; float32 is not
        sensitive to it.
    max_memory : int, default=None
        Bytes the tiles of one call may use, all threads together: sets
        ``tile_elements`` to at most ``max_memory // (32 * n_threads)``.
        It bounds the scratch blocks that grow with (points x seeds); the
        copies of the inputs (centred, scaled, sorted: a few times
        ``(n + m) * d`` values) come on top. A limit too small for a
        1024-element tile, or for one row of distances to every point in
        ``nearest``/``count_within``/``kth_neighbor_distance``/``kernel_sum``,
        is a ValueError. Results do not depend on it beyond rounding (the
        Gaussian sums are split differently).
    """

    name = "numpy"
    _FEW_FINAL_MEANS = 64  # below this many distinct final positions, no signature pass
    _BYTES_PER_ELEMENT = 32  # 4 live float64 blocks per tile element
    _SEED_TILE = 256  # seeds per tile when there are many
    # Planning tiles of few seeds (``_plan_tiles``), costs in seed-point
    # pairs (measured, 2-D, flat kernel: ~3 ns a pair): a tile's fixed cost
    # (~30 us) and each candidate point's own (culling, gathering, and the
    # poor efficiency of matrix products with very few rows).
    _TILE_OVERHEAD_PAIRS = 10_000
    _CANDIDATE_PAIRS = 8
    # The plan by cost of the proven Gaussian grid (``by_cost``): a tile of
    # its costs far more (its candidate lists, culls and gathers: ~0.1-0.3
    # ms, and with two threads as many GIL hand-offs), so tiles grow larger.
    # Against 256 and 10,000 on 100,000 hotspot points: two threads 1.35x
    # faster (half the context switches), one 1.12x.
    _COST_TILE = 1024
    _COST_TILE_OVERHEAD_PAIRS = 300_000
    _GLOBAL_FRAME_MAX = 16.0  # bandwidths; see ``shift``
    # The proven Gaussian grid (``shift``): cells of a ninth of the proof
    # radius in d <= 2 (a third in d = 3, where a block has (2 s + 1)^3
    # cells). A seed first visits ``_PROOF_SPAN - 1`` cells on each side of
    # its own and proves that step with the counts of the cells around its
    # block; a seed that cannot visits ``_PROOF_SPAN`` (the proof radius),
    # then takes the exact step. On hotspot data at bandwidth 2 the first
    # block proves every seed with 0.77x the pairs of the full one (17/19
    # cells a side, squared, plus the tiles' overlap).
    _PROOF_SPAN = {1: 9, 2: 9, 3: 3}

    def __init__(self, *, n_threads: int | None = None, tile_elements: int = 2**17,
                 max_memory: int | None = None):
        if n_threads is not None and int(n_threads) < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if int(tile_elements) < 1024:
            raise ValueError(f"tile_elements must be >= 1024, got {tile_elements}")
        self.n_threads = int(n_threads) if n_threads is not None else _default_threads()
        self.tile_elements = int(tile_elements)
        self.max_memory = None if max_memory is None else int(max_memory)
        if self.max_memory is not None:
            per_thread = self.max_memory // (self._BYTES_PER_ELEMENT * self.n_threads)
            if per_thread < 1024:
                need = 1024 * self._BYTES_PER_ELEMENT * self.n_threads
                raise ValueError(
                    f"max_memory={self.max_memory} bytes is too small for the NumPy backend: "
                    f"{self.n_threads} thread(s) need at least {need} bytes "
                    "(a 1024-element tile each); raise max_memory or lower n_jobs")
            self.tile_elements = min(self.tile_elements, int(per_thread))
        self._local = threading.local()  # the pool of the call running on this thread

    def __getstate__(self):
        # The per-thread pool handle is process-local: not pickled.
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    # ------------------------------------------------------------------ helpers
    def _map(self, fn, items):
        items = list(items)
        pool = getattr(self._local, "pool", None)
        if pool is None or len(items) <= 1:
            return [fn(it) for it in items]
        return list(pool.map(fn, items))

    @contextmanager
    def _parallel(self):
        """Thread pool for the tiles, with BLAS held to one thread meanwhile.

        Each tile's products are small; letting BLAS start its own threads
        inside ours oversubscribes the cores (measured 2-3x slower, and far
        worse on a loaded machine, where BLAS threads spin). Pinning BLAS
        needs threadpoolctl; without it the tiles run on one thread and BLAS
        keeps its own threading.
        """
        if getattr(self._local, "active", False):
            yield
            return
        controller = _blas_controller()
        if controller is None:
            yield
            return
        self._local.active = True
        try:
            with controller.limit(limits=1, user_api="blas"):
                if self.n_threads == 1:
                    yield
                    return
                with ThreadPoolExecutor(self.n_threads) as pool:
                    self._local.pool = pool
                    try:
                        yield
                    finally:
                        self._local.pool = None
        finally:
            self._local.active = False

    def _row_chunks(self, n_rows: int, n_cols: int):
        if self.max_memory is not None and n_cols > self.tile_elements:
            raise ValueError(
                f"max_memory={self.max_memory} bytes is too small: one row of distances "
                f"to {n_cols} points needs {n_cols * self._BYTES_PER_ELEMENT * self.n_threads} "
                f"bytes with {self.n_threads} thread(s); raise max_memory or lower n_jobs")
        step = max(1, min(n_rows, self.tile_elements // max(1, n_cols)))
        # Spread rows evenly so every thread gets work.
        n_chunks = max(-(-n_rows // step), min(self.n_threads, n_rows))
        bounds = np.linspace(0, n_rows, n_chunks + 1).astype(np.int64)
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _seed_tiles(self, m: int, tile: int = 256):
        """``[a, b)`` tiles of at most ``tile`` seeds, as many as a multiple of
        the thread count and of equal size (to one seed), so that no thread
        waits for another's last tile at the end of a round."""
        if m == 0:
            return []
        n_tiles = -(-m // tile)
        n_tiles = min(m, -(-n_tiles // self.n_threads) * self.n_threads)
        bounds = (np.arange(n_tiles + 1) * m) // n_tiles
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def _plan_tiles(self, index, P, reach, by_cost=False):
        """The order of the seeds ``P`` and the ``[a, b)`` tiles of that order.

        Many seeds: the index's spatial order in tiles of ``_SEED_TILE``.
        Few seeds (fewer than ``_SEED_TILE`` per thread) are far apart as a
        rule (bin seeding, or the last seeds still climbing), and a tile of
        far-apart seeds visits the union of their neighbourhoods for each of
        them. So with few seeds a seed joins the tile before it (in the
        index's order) only when that costs less than a tile of its own,
        counting points on the index's density grid: a tile of ``t`` seeds
        and ``c`` candidates costs ``(t + _CANDIDATE_PAIRS) * c +
        _TILE_OVERHEAD_PAIRS``. At least one tile per thread.

        ``by_cost`` plans any number of seeds by that cost (the proven
        Gaussian grid, whose seeds stop one by one and leave gaps in the
        order: 19% fewer pairs than fixed tiles on 2-D hotspot data, every
        point a seed), in tiles of up to ``_COST_TILE`` seeds with a tile's
        own cost ``_COST_TILE_OVERHEAD_PAIRS``. Consecutive seeds with the
        same box on the density grid join as one unit (a seed joining a tile
        of its own box costs nothing), so the plan loops over units, not
        seeds.
        """
        m = len(P)
        order = index.tile_order(P)
        density = getattr(index, "density", None)
        if density is None or (m >= self.n_threads * self._SEED_TILE and not by_cost):
            return order, self._seed_tiles(m, self._SEED_TILE)
        grid = density()
        boxes = grid.box_array(P[order], reach)
        cap, overhead = self._SEED_TILE, self._TILE_OVERHEAD_PAIRS
        if by_cost:
            cap, overhead = self._COST_TILE, self._COST_TILE_OVERHEAD_PAIRS
            # Within windows of a quarter tile of the index's order (a
            # compact region), seeds of equal boxes are brought together:
            # the index's cells are coarser than the density grid's, so
            # its order interleaves boxes (0.84 units a seed, against
            # 0.23 after this, on 2-D hotspot data; 3x less planning).
            key = np.arange(m) // max(1, cap // 4)  # the window, then the box
            radix = int(max(grid.shape)) + 1  # box entries are in [0, max(grid.shape)]
            for j in range(4):
                key = key * radix + boxes[:, j]
            sub = np.argsort(key, kind="stable")
            order, boxes = order[sub], boxes[sub]
        # Units: runs of equal boxes, cut to at most a tile's seeds.
        first = np.ones(m, dtype=bool)
        first[1:] = (boxes[1:] != boxes[:-1]).any(axis=1)
        first[::cap] = True  # a run longer than a tile is cut (conservatively)
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], m).tolist()
        unit_boxes = boxes[starts].tolist()
        starts = starts.tolist()
        count = grid.count
        tiles = []  # [start, end, count of the tile's box]
        box = unit_boxes[0]
        cur = count(*box)
        start, end = starts[0], ends[0]
        c = self._CANDIDATE_PAIRS
        for a, b, ubox in zip(starts[1:], ends[1:], unit_boxes[1:]):
            t, u = end - start, b - a
            joined_box = [min(box[0], ubox[0]), max(box[1], ubox[1]),
                          min(box[2], ubox[2]), max(box[3], ubox[3])]
            joined = count(*joined_box)
            alone = count(*ubox)
            if (t + u <= cap and (t + u + c) * joined
                    <= (t + c) * cur + (u + c) * alone + overhead):
                box, cur, end = joined_box, joined, b
            else:
                tiles.append([start, end, cur])
                start, end, box, cur = a, b, ubox, alone
        tiles.append([start, end, cur])
        # One tile per thread at least: halve the costliest.
        while len(tiles) < min(self.n_threads, m):
            k = max((j for j, (a, b, _) in enumerate(tiles) if b - a > 1),
                    key=lambda j: (tiles[j][1] - tiles[j][0]) * tiles[j][2])
            a, b, c = tiles[k]
            tiles[k:k + 1] = [[a, (a + b) // 2, c], [(a + b) // 2, b, c]]
        return order, [(a, b) for a, b, _ in tiles]

    # -------------------------------------------------------------------- shift
    @_parallel_method
    def shift(self, X, seeds, *, bandwidth, kernel, max_iter, tol, algorithm="brute",
              weights=None, progress=None):
        """The climb of every seed (see :class:`~gpumeanshift.backends.base.Backend`);
        the plan and the steps are :class:`._climb.Climb`'s."""
        climb = Climb(self, X, seeds, bandwidth=bandwidth, kernel=kernel, algorithm=algorithm,
                      weights=weights)
        result = climb.run(max_iter, tol, progress)
        self._exact_steps = climb.n_exact  # diagnostics: seed steps the proof sent to brute force
        self._wider_steps = climb.n_wider  # and those it sent to the full proof radius
        return result

    def _unit_pass(self, index, P, fn, within):
        """fn(rows, part, w) for tiles of P: w = within(q, part), the float 0/1
        matrix of |p - y|^2 <= 1 against the tile's candidate rows ``part``."""
        def tile(ab):
            rows = walk[ab[0]:ab[1]]
            q = P[rows]
            sel = index.candidates(q, 1.0)
            # A slice's rows, without an arange of every point per tile.
            cand_idx = np.arange(*sel.indices(len(index.Y))) if isinstance(sel, slice) \
                else sel
            step = max(1, self.tile_elements // len(rows))
            for c0 in range(0, len(cand_idx), step):
                part = cand_idx[c0:c0 + step]
                fn(rows, part, within(q, part))

        walk = index.tile_order(P)
        self._map(tile, self._seed_tiles(len(P)))

    def _count_unit(self, index, P, within, wts=None):
        """Points within one bandwidth of each row of P (their summed weight
        with ``wts``, given in the data's original order)."""
        if wts is None:
            counts = np.zeros(len(P), dtype=np.int64)

            def fn(rows, part, within):
                counts[rows] += np.count_nonzero(within, axis=1)

            self._unit_pass(index, P, fn, within)
            return counts
        counts = np.zeros(len(P))
        w_sorted = wts[index.order]

        def fn(rows, part, within):
            counts[rows] += within.astype(np.float64) @ np.take(w_sorted, part)

        self._unit_pass(index, P, fn, within)
        return counts

    def _flat_final_means(self, X, index, P, within, wts=None):
        """Redo each seed's last flat step in the data's own coordinates.

        The mode of a flat-kernel climb is the plain mean of a point set. It
        is recomputed here from the original data, summing the set's rows in
        index order and dividing by the count (what ``np.mean`` does), so
        that a mode of one or two points, or a feature that is constant over
        the set, comes out bit-for-bit as scikit-learn's. That matters when
        modes tie on intensity and the ordering falls to their coordinates.
        Seeds whose last step saw the same set share one computation.
        """
        m, d = P.shape
        rep = coincident_rows(P)
        lead = np.flatnonzero(rep == np.arange(m))
        if lead.size < m:  # one computation per distinct position
            modes, counts = self._flat_final_means(X, index, P[lead], within, wts)
            at = np.searchsorted(lead, rep)
            return modes[at], counts[at]
        # A set's signature: its size and the sum of fixed random weights of
        # its members. Equal signatures (bitwise) mean equal sets; an equal
        # set split over two signatures only costs one more mean.
        if m <= self._FEW_FINAL_MEANS:
            # Few positions (bin seeding): one mean each costs less than
            # the signature pass over every seed.
            first, inverse = np.arange(m), np.arange(m)
        else:
            R = np.random.default_rng(0).random((len(index.Y), 2))
            sig = np.zeros((m, 2))

            def fn(rows, part, within):
                sig[rows] += _product(within, np.take(R, part, axis=0))

            self._unit_pass(index, P, fn, within)
            _, first, inverse = np.unique(sig, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
        modes = np.empty((m, d), dtype=X.dtype)
        counts = np.zeros(m, dtype=np.int64 if wts is None else np.float64)
        def one(g):
            r = first[g]
            sel = index.candidates(P[r:r + 1], 1.0)
            hit = np.flatnonzero(within(P[r:r + 1], sel)[0] > 0)
            at = sel.start + hit if isinstance(sel, slice) else sel[hit]
            idx = _sorted_union(index.order[at], len(X))
            members = inverse == g  # disjoint between groups: threads never share a row
            if wts is not None:
                w_set = np.take(wts, idx)
                total = float(w_set.sum())
                counts[members] = total
                if total > 0:
                    modes[members] = _weighted_mean(X, w_set, idx)
                return
            counts[members] = idx.size
            if idx.size:
                # float64 sums: float32 rows near the dtype's max would overflow.
                modes[members] = _sequential_mean(X, idx)

        self._map(one, range(len(first)))
        return modes, counts

    @staticmethod
    def _within_unit(q, C):
        """Float 0/1 matrix of |q_i - c_j|^2 <= 1 (relative to q's center).

        Queries spread over more than ``_MAX_TILE_SPAN`` bandwidths are split
        along their widest axis, as in the shift step, so that the expansion
        around their centre keeps its accuracy.
        """
        wide = len(q) > 1 and C.dtype == np.float32
        span = q.max(axis=0).astype(np.float64) - q.min(axis=0) if wide else None
        if span is not None and span.max() > _MAX_TILE_SPAN:
            order = np.argsort(q[:, int(span.argmax())], kind="stable")
            half = len(q) // 2
            out = np.empty((len(q), len(C)), dtype=C.dtype)
            for rows in (order[:half], order[half:]):
                out[rows] = NumpyBackend._within_unit(q[rows], C)
            return out
        mid = ((q.min(axis=0) + q.max(axis=0)) * 0.5).astype(C.dtype)
        qc = q - mid
        cc = C - mid
        if max(_absmax(qc), _absmax(cc)) > SAFE_ABS[np.dtype(C.dtype)]:
            d2 = _neg_half_sqdist(qc, cc)
            d2 *= -2.0  # exact
            return np.less_equal(d2, 1.0, out=d2, casting="unsafe")
        d2 = _product(qc, cc.T)
        d2 *= -2.0
        d2 += np.einsum("ij,ij->i", qc, qc)[:, None]
        d2 += np.einsum("ij,ij->i", cc, cc)[None, :]
        return np.less_equal(d2, 1.0, out=d2, casting="unsafe")

    # --------------------------------------------------------- other operations
    def _sqdist_blocks(self, X, Q, fn):
        """Call ``fn(a, b, d2, g)`` for row blocks ``Q[a:b]``; ``d2`` holds the squared
        distances to every row of X in units of ``g.unit ** 2``.

        The rows are centred on the data's midrange and, when their
        magnitude would make the squares overflow or underflow, divided by a
        power of two ``g.unit`` (exact); for ordinary data ``g.unit == 1.0``
        and ``d2`` is the plain squared distance. ``g.err`` bounds the
        absolute rounding error of the expanded ``|q|^2 + |x|^2 - 2 q.x``
        (same units), for callers that must select exactly.
        """
        X = np.asarray(X)
        Q = np.asarray(Q, dtype=X.dtype)
        dt = np.dtype(X.dtype)
        center = midrange(X).astype(dt) if len(X) else dt.type(0)
        with np.errstate(over="ignore"):
            Xc = X - center
            Qc = Q - center
        top = max(_absmax(Xc), _absmax(Qc))
        if not np.isfinite(top):
            raise ValueError("coordinates differ by more than the largest "
                             f"{dt.name} number; the distances cannot be represented")
        unit = 1.0
        if top > SAFE_ABS[dt] or 0.0 < top < 1.0 / SAFE_ABS[dt]:
            unit = pow2_at_least(top)
            # exact (a power of two), in float64: 1/unit may pass float32's range
            Xc = (Xc.astype(np.float64) * (1.0 / unit)).astype(dt)
            Qc = (Qc.astype(np.float64) * (1.0 / unit)).astype(dt)
        xx = np.einsum("ij,ij->i", Xc, Xc)
        xx_max = float(xx.max()) if len(xx) else 0.0
        eps = float(np.finfo(dt).eps)
        tiny = float(np.finfo(dt).tiny)
        n_feat = X.shape[1]

        def block(ab):
            a, b = ab
            q = Qc[a:b]
            qq = np.einsum("ij,ij->i", q, q)
            d2 = _product(q, Xc.T)
            d2 *= -2.0
            d2 += qq[:, None]
            d2 += xx[None, :]
            np.maximum(d2, 0.0, out=d2)
            err = 4.0 * (n_feat + 4) * (eps * (float(qq.max()) + xx_max) + tiny)
            return fn(a, b, d2, _BlockUnits(unit, err))

        return self._map(block, self._row_chunks(len(Q), max(1, len(X))))

    @_parallel_method
    def nearest(self, X, centers):
        X = np.asarray(X)
        C = np.asarray(centers, dtype=X.dtype)
        labels = np.empty(len(X), dtype=np.int64)
        dist = np.empty(len(X), dtype=X.dtype)

        def fn(a, b, d2, g):
            # The expanded d2 may be off by g.err: among centers within that
            # of the smallest, the winner is chosen on distances recomputed
            # by differences (the first of exact ties). Rows with such near
            # ties are rare outside lattices, where they are the rule.
            j = np.argmin(d2, axis=1)
            close = d2 <= (d2[np.arange(b - a), j] + 2.0 * g.err)[:, None]
            multi = np.flatnonzero(np.count_nonzero(close, axis=1) > 1)
            if multi.size:
                rows, cand = np.nonzero(close[multi])
                rows = multi[rows]
                exact = pair_distance(X[a + rows], C[cand])
                pick = np.lexsort((cand, exact, rows))  # per row: nearest, then lowest index
                first = np.ones(len(pick), dtype=bool)
                first[1:] = rows[pick[1:]] != rows[pick[:-1]]
                j[rows[pick[first]]] = cand[pick[first]]
            labels[a:b] = j
            # Exact distance for the winner: recompute it by differences so
            # the threshold test on it is not at the mercy of cancellation.
            with np.errstate(over="ignore"):  # a float32 distance past the dtype: inf
                dist[a:b] = pair_distance(X[a:b], C[j])

        # Queries are the data rows here; the "data" are the centers.
        self._sqdist_blocks(C, X, fn)
        return labels, dist

    @_parallel_method
    def count_within(self, X, queries, radius, *, weights=None):
        X, wts = _weighted_data(np.asarray(X), weights)
        out = np.empty(len(queries), dtype=np.int64 if wts is None else np.float64)

        def fn(a, b, d2, g):
            inside = d2 <= _squared_ratio(radius, g.unit)
            out[a:b] = np.count_nonzero(inside, axis=1) if wts is None else inside @ wts

        self._sqdist_blocks(X, queries, fn)
        return out

    @_parallel_method
    def kth_neighbor_distance(self, X, queries, k, *, weights=None):
        X, wts = _weighted_data(np.asarray(X), weights)
        if wts is not None:
            total = float(wts.sum())
            if not 0 < k <= total:
                raise ValueError(f"k must be in (0, {total:g}] (the total weight), got {k}")
        n = len(X)
        if wts is None and not 1 <= k <= n:
            raise ValueError(f"k must be in [1, {n}], got {k}")
        X64 = np.asarray(X, dtype=np.float64)
        Q64 = np.asarray(queries, dtype=np.float64)
        self._row_chunks(len(Q64), n)  # a leaf's band may hold every point: the same bound
        if not _kth.applies(X64, Q64):
            return self._kth_by_blocks(X64, Q64, k, wts)
        # Data boxes and query tiles from k-d trees (see _kth): exact, and only
        # a thin band of candidates per query gets distances.
        index = _kth.KthIndex(X64, wts)
        same = Q64 is X64 or (Q64.shape == X64.shape and np.array_equal(Q64, X64))
        order, tiles = _kth.query_tiles(Q64, self.n_threads, index if same else None)
        Qs = Q64[order]
        r2 = np.empty(len(Q64))

        def tile(t):
            a, b, leaves = t
            r2[a:b] = index.tile(Qs[a:b], leaves, k, self.tile_elements)

        self._map(tile, tiles)
        out = np.empty(len(Q64))
        out[order] = np.sqrt(r2)
        # A tiny k-th distance may owe its value to squares rounded by
        # underflow: those rows are recomputed by the overflow- and
        # underflow-safe path (data with tiny coordinates only).
        redo = np.flatnonzero(r2 < _kth.UNDERFLOW_RISK) if _kth.may_underflow(X64, Q64) \
            else np.zeros(0, dtype=np.int64)
        if redo.size:
            out[order[redo]] = self._kth_by_blocks(X64, Qs[redo], k, wts)
        return out

    def _kth_by_blocks(self, X64, Q64, k, wts=None):
        """k-th neighbour distances from full blocks of expanded squared
        distances (any dimension, any magnitude); with ``wts`` (all > 0),
        the distance at which the nearest rows' weight first reaches k."""
        n = len(X64)
        out = np.empty(len(Q64), dtype=np.float64)

        def weighted(a, b, d2, g):
            # As below: every row that can be within the answer has
            # d2 <= (the expanded answer) + 2 err; those get distances by
            # differences and the cumulative weight picks the answer.
            rows = np.arange(b - a)
            order = np.argsort(d2, axis=1)
            first = _kth.first_reaching_weight(np.take(wts, order), k)
            upper = d2[rows, order[rows, first]] + 2.0 * g.err
            width = int(np.count_nonzero(d2 <= upper[:, None], axis=1).max())
            near = order[:, :width]
            dist = pair_distance(np.repeat(Q64[a:b], width, axis=0),
                                 X64[near.ravel()]).reshape(b - a, width)
            by = np.argsort(dist, axis=1)
            pick = _kth.first_reaching_weight(np.take(wts, np.take_along_axis(near, by, 1)), k)
            out[a:b] = dist[rows, by[rows, pick]]

        def fn(a, b, d2, g):
            # The expanded d2 may be off by g.err (cancellation), enough to
            # pick the wrong neighbour among near ties (a point 1e-7 from a
            # query at 37 looks as near as the query itself). Every row that
            # can be among the k nearest has d2 - err <= (k-th smallest d2) +
            # err; those rows' distances are recomputed by differences and
            # the k-th smallest of them is the exact answer.
            upper = np.partition(d2, k - 1, axis=1)[:, k - 1] + 2.0 * g.err
            width = int(np.count_nonzero(d2 <= upper[:, None], axis=1).max())
            near = np.argpartition(d2, width - 1, axis=1)[:, :width] if width < n else \
                np.broadcast_to(np.arange(n), (b - a, n))
            rows = max(1, self.tile_elements // max(1, width * X64.shape[1]))
            for r0 in range(0, b - a, rows):
                idx = near[r0:r0 + rows]
                qrows = np.repeat(np.arange(a + r0, a + r0 + len(idx)), width)
                dist = pair_distance(Q64[qrows], X64[idx.ravel()]).reshape(len(idx), width)
                out[a + r0:a + r0 + len(idx)] = np.partition(dist, k - 1, axis=1)[:, k - 1]

        self._sqdist_blocks(X64, Q64, fn if wts is None else weighted)
        return out

    @_parallel_method
    def kernel_sum(self, X, queries, *, bandwidth, kernel, weights=None):
        X, wts = _weighted_data(np.asarray(X), weights)
        out = np.empty(len(queries), dtype=np.float64)

        def fn(a, b, d2, g):
            h2 = _squared_ratio(bandwidth, g.unit)  # the bandwidth^2 in d2's units
            if kernel == "flat":
                inside = d2 <= h2
                out[a:b] = np.count_nonzero(inside, axis=1) if wts is None else inside @ wts
            else:
                k = np.exp(_neg_half_over(d2, h2))
                out[a:b] = k.sum(axis=1) if wts is None else k @ wts

        self._sqdist_blocks(X, queries, fn)
        return out

    @_parallel_method
    def log_kernel_density(self, X, queries, *, bandwidth, kernel, weights=None):
        X, wts = _weighted_data(np.asarray(X), weights)
        if wts is not None:
            log_w = np.log(wts)  # each term's log w
        out = np.empty(len(queries), dtype=np.float64)

        def fn(a, b, d2, g):
            h2 = _squared_ratio(bandwidth, g.unit)  # the bandwidth^2 in d2's units
            # A block holds whole rows (every data point for its queries), so
            # each query's log-sum-exp is finished inside one block.
            if kernel == "flat":
                inside = d2 <= h2
                count = np.count_nonzero(inside, axis=1) if wts is None else inside @ wts
                # log(0) = -inf by definition here: no point within reach.
                res = np.full(b - a, -np.inf)
                np.log(count, out=res, where=count > 0)
                out[a:b] = res
            else:
                # Factor out the largest term: exp(e - top) has a 1 in every
                # row, so the sum never underflows and far queries stay finite.
                # In float64 whatever the data dtype: -0.5 / h2 can pass the
                # float32 range for a tiny bandwidth.
                e = _neg_half_over(d2, h2)
                if wts is not None:
                    e += log_w
                top = e.max(axis=1)
                ok = np.isfinite(top)  # False only if |q - x|^2 overflowed the dtype
                top[~ok] = 0.0
                e -= top[:, None]
                np.exp(e, out=e)
                res = np.full(b - a, -np.inf)
                np.log(e.sum(axis=1), out=res, where=ok)
                out[a:b] = res + top

        self._sqdist_blocks(X, queries, fn)
        return out

    # ------------------------------------------------------------ partial sums
    @_parallel_method
    def partial_sums(self, X, seeds, *, bandwidth, kernel, origin=None, exact=False,
                     algorithm="brute", weights=None):
        """One step's sums over a chunk (see :meth:`Backend.partial_sums`).

        The shift step's arithmetic: seeds in tiles (:meth:`_plan_tiles`),
        each visiting the sorted data within the kernel's reach of its box,
        ``-|q - y|^2 / 2`` as one product of augmented rows relative to the
        tile's centre, and the sums as a second product with rows ``[y, 1]``
        (``[w y, w]`` weighted). ``exact``: in the data's units, the pairs
        within rounding of the boundary decided by :func:`within_exact` (the
        slack of :meth:`shift`'s lattice path), the sums of float64 rows.
        """
        X, wts = _weighted_data(np.asarray(X), weights)
        dtype = X.dtype
        n, d = X.shape
        S = np.ascontiguousarray(np.asarray(seeds, dtype=dtype).reshape(-1, d))
        m = len(S)
        if exact:
            if kernel != "flat" or dtype != np.float64 or origin is not None:
                raise ValueError("exact=True needs the flat kernel, float64 data and no origin")
            Y, r = X, float(bandwidth)
        else:
            o = np.zeros(d) if origin is None else np.asarray(origin, dtype=np.float64)
            Y, r = ((X - o) * (1.0 / bandwidth)).astype(dtype), 1.0
        cnt_type = np.int64 if wts is None else np.float64
        acc = np.zeros((m, d + 1), dtype=dtype)
        cnt = np.zeros(m, dtype=cnt_type)
        if n == 0 or m == 0:
            return PartialSums(acc[:, :d], acc[:, d], cnt)
        r2 = r * r
        eps = float(np.finfo(dtype).eps)
        reach = r * neighbourhood_reach(kernel, dtype, algorithm)
        trunc2 = None
        if kernel == "gaussian" and algorithm == "grid":
            trunc2 = GAUSSIAN_GRID_RADIUS ** 2
        if exact:  # a point at exactly the radius may land a rounding error past it
            reach += 64 * eps * (r + max(_absmax(Y), _absmax(S)))
        index = SortedIndex(Y)
        Ys = index.Y
        w_sorted = None if wts is None else wts[index.order]
        # Rows whose product with a block of kernel values gives the sums.
        rows_of = _augment_points(Ys, dtype)[:, :d + 1] if wts is None else \
            _weighted_rows(Ys, w_sorted, dtype)
        budget = self.tile_elements * (8 // dtype.itemsize)

        def tile(idx):
            q = S[idx]
            t = len(idx)
            if t > 1 and not exact:
                # A tile's expansion is relative to its centre: its rounding
                # grows with the square of the tile's span. A wide tile (a far
                # seed among near ones) is split along its widest axis, as in
                # ``shift``.
                span = q.max(axis=0).astype(np.float64) - q.min(axis=0)
                if span.max() > _MAX_TILE_SPAN:
                    o = np.argsort(q[:, int(span.argmax())], kind="stable")
                    halves = [tile(idx[o[:t // 2]]), tile(idx[o[t // 2:]])]
                    a_t = np.empty((t, d + 1), dtype=dtype)
                    c_t = np.empty(t, dtype=cnt_type)
                    for rows, (a_h, c_h) in zip((o[:t // 2], o[t // 2:]), halves):
                        a_t[rows], c_t[rows] = a_h, c_h
                    return a_t, c_t
            sel = index.candidates(q, reach)
            cand = _rows(Ys, sel)
            a_t = np.zeros((t, d + 1), dtype=dtype)
            c_t = np.zeros(t, dtype=cnt_type)
            if not len(cand):
                return a_t, c_t
            sums_rows = _rows(rows_of, sel)
            cand_w = None if wts is None else _rows(w_sorted, sel)
            mid = ((q.min(axis=0) + q.max(axis=0)) * 0.5).astype(dtype)
            qa = _augment_queries(q - mid, dtype)
            q_half2 = float(np.abs(qa[:, d]).max())
            step_cols = max(1, budget // t)
            for c0 in range(0, len(cand), step_cols):
                part = cand[c0:c0 + step_cols]
                xa = _augment_points(part, dtype, mid)
                e = _product(qa, xa.T)  # -|q - y|^2 / 2
                inside = e >= -0.5 * r2
                if exact:
                    # Rounding of the expansion: a few ulps of its terms.
                    slack = 64 * (d + 2) * eps * (r2 + q_half2 + float(np.abs(xa[:, d + 1]).max()))
                    rr, cc = np.nonzero(np.abs(e + 0.5 * r2) <= slack)
                    if rr.size:
                        inside[rr, cc] = within_exact(part[cc], q[rr], r)
                if cand_w is None:
                    c_t += np.count_nonzero(inside, axis=1)
                else:
                    c_t += _product(inside.astype(np.float64), cand_w[c0:c0 + step_cols, None])[:, 0]
                if kernel == "flat":
                    w = inside.astype(dtype)
                else:
                    if trunc2 is not None:
                        e[e < -0.5 * trunc2] = -np.inf
                    w = np.exp(e, out=e)
                a_t += _product(w, sums_rows[c0:c0 + step_cols])
            return a_t, c_t

        order, tiles = self._plan_tiles(index, S, reach)
        parts = self._map(lambda ab: tile(order[ab[0]:ab[1]]), tiles)
        for (a, b), (a_t, c_t) in zip(tiles, parts):
            acc[order[a:b]] = a_t
            cnt[order[a:b]] = c_t
        return PartialSums(acc[:, :d], acc[:, d], cnt)
