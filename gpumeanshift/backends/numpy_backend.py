"""The NumPy (CPU) backend: tiled, vectorized, multi-threaded.

How the shift step is computed
------------------------------
The data are centered and divided by the bandwidth once, so a pair (seed s,
point x) has weight ``1[|s - x|^2 <= 1]`` (flat) or ``exp(-|s - x|^2 / 2)``
(Gaussian). The data are sorted along their widest axis. Every iteration the
active seeds are sorted into spatially compact tiles; for each tile only the
data within reach of the tile's bounding box are visited (reach: 1 for the
flat kernel, and for the Gaussian the distance past which ``exp`` underflows
to exactly zero, so the culling never changes a result). For a tile of ``t``
seeds and ``c`` candidate points, one matrix product gives the squared
distances (coordinates taken relative to the tile's center, which keeps the
expansion |s|^2 + |x|^2 - 2 s.x accurate) and a second gives the weighted
sums and the weight total at once (the data carry a column of ones). Memory
is bounded by the tile size, never n x m. Converged seeds leave the active
set. Tiles run on a small thread pool: NumPy and BLAS release the GIL.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ._spatial import make_index, neighbourhood_reach
from .base import ShiftResult

def _parallel_method(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._parallel():
            return method(self, *args, **kwargs)

    return wrapper


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
    tile_elements : int, default=2**19
        Upper bound on the elements of one tile's seed x point block; the
        peak extra memory is about ``4 * 8 * tile_elements`` bytes per thread.
    """

    name = "numpy"

    def __init__(self, *, n_threads: int | None = None, tile_elements: int = 2**19):
        if n_threads is not None and int(n_threads) < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if int(tile_elements) < 1024:
            raise ValueError(f"tile_elements must be >= 1024, got {tile_elements}")
        self.n_threads = int(n_threads) if n_threads is not None else _default_threads()
        self.tile_elements = int(tile_elements)
        self._local = threading.local()  # the pool of the call running on this thread

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
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
            return
        self._local.active = True
        try:
            with threadpool_limits(limits=1, user_api="blas"):
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
        step = max(1, min(n_rows, self.tile_elements // max(1, n_cols)))
        # Spread rows evenly so every thread gets work.
        n_chunks = max(-(-n_rows // step), min(self.n_threads, n_rows))
        bounds = np.linspace(0, n_rows, n_chunks + 1).astype(np.int64)
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _seed_tiles(self, m: int, tile: int = 256):
        tile = max(1, min(tile, -(-m // self.n_threads)))
        return [(a, min(a + tile, m)) for a in range(0, m, tile)]

    # -------------------------------------------------------------------- shift
    @_parallel_method
    def shift(self, X, seeds, *, bandwidth, kernel, max_iter, tol, algorithm="brute"):
        X = np.asarray(X)
        seeds = np.asarray(seeds, dtype=X.dtype)
        dtype = X.dtype
        n, d = X.shape
        m = seeds.shape[0]

        # Centre and pre-scale: distances are in bandwidths from here on.
        center = X.mean(axis=0, dtype=np.float64)
        inv_h = 1.0 / bandwidth
        Y = ((X - center.astype(dtype)) * dtype.type(inv_h)).astype(dtype, copy=False)
        S = ((seeds - center.astype(dtype)) * dtype.type(inv_h)).astype(dtype, copy=False)

        reach = neighbourhood_reach(kernel, dtype, algorithm)
        index = make_index(Y, reach, algorithm)
        Ys = index.Y
        # [Y, 1]: one product yields the weighted sum and the weight total.
        Y1 = np.concatenate([Ys, np.ones((n, 1), dtype)], axis=1)
        thresh2 = float(tol) ** 2  # stopping rule, in bandwidth units

        pos = S.copy()
        n_iter = np.zeros(m, dtype=np.int64)
        intensity = np.zeros(m, dtype=np.int64)
        converged = np.zeros(m, dtype=bool)
        active = np.arange(m)

        def step(idx):
            """One shift step for the seed rows ``idx``: new positions, weight totals."""
            q = pos[idx]
            cand = Y1[index.candidates(q, reach)]
            t = len(idx)
            mid = ((q.min(axis=0) + q.max(axis=0)) * 0.5).astype(dtype)
            qc = q - mid
            # d2 = |q|^2 + |x|^2 - 2 q.x as ONE product: [q, |q|^2, 1] . [-2x, 1, |x|^2]
            qa = np.empty((t, d + 2), dtype)
            qa[:, :d] = qc
            qa[:, d] = np.einsum("ij,ij->i", qc, qc)
            qa[:, d + 1] = 1.0
            acc = np.zeros((t, d + 1), dtype=dtype)
            step_cols = max(1, self.tile_elements // t)
            for c0 in range(0, len(cand), step_cols):
                part = cand[c0:c0 + step_cols]
                xa = np.empty((len(part), d + 2), dtype)
                np.subtract(part[:, :d], mid, out=xa[:, :d])
                xa[:, d + 1] = np.einsum("ij,ij->i", xa[:, :d], xa[:, :d])
                xa[:, :d] *= -2.0
                xa[:, d] = 1.0
                d2 = qa @ xa.T
                if kernel == "flat":
                    w = np.less_equal(d2, 1.0, out=d2, casting="unsafe")
                else:
                    d2 *= -0.5
                    np.minimum(d2, 0.0, out=d2)
                    if reach2_cut := index.truncate2:
                        # Grid: weights past the truncation radius are dropped.
                        d2[d2 < -0.5 * reach2_cut] = -np.inf
                    w = np.exp(d2, out=d2)
                acc += w @ part
            wsum = acc[:, d]
            ok = wsum > 0
            new = q.copy()
            new[ok] = acc[ok, :d] / wsum[ok, None]
            return new, wsum

        prev = pos.copy()  # where each seed's last step started
        orphaned = np.zeros(m, dtype=bool)
        it = 0
        while active.size:
            active = active[index.tile_order(pos[active])]
            results = self._map(
                lambda ab: step(active[ab[0]:ab[1]]), self._seed_tiles(active.size)
            )
            new = np.concatenate([r[0] for r in results])
            wsum = np.concatenate([r[1] for r in results])

            old = pos[active]
            orphan = ~(wsum > 0)
            moved2 = np.einsum("ij,ij->i", new - old, new - old)
            done_tol = (moved2 <= thresh2) & ~orphan
            stop = orphan | done_tol | (it >= max_iter)
            if kernel == "flat":
                intensity[active] = np.rint(wsum).astype(np.int64)
            prev[active] = old
            live = active[~orphan]
            pos[live] = new[~orphan]
            converged[active[done_tol]] = True
            orphaned[active[orphan]] = True
            n_iter[active[~stop]] += 1
            active = active[~stop]
            it += 1

        if kernel == "flat":
            live = np.flatnonzero(~orphaned)
            modes = np.empty_like(seeds)
            modes[orphaned] = seeds[orphaned]
            loop_modes = (pos[live].astype(np.float64) * bandwidth + center).astype(dtype)
            exact, counts = self._flat_final_means(X, index, prev[live])
            lost = counts == 0  # a boundary point lost to rounding: keep the climb's result
            exact[lost] = loop_modes[lost]
            counts[lost] = intensity[live][lost]
            modes[live], intensity[live] = exact, counts
        else:
            # Intensity is counted once, from where each seed's last step began.
            intensity = self._count_unit(index, prev)
            modes = (pos.astype(np.float64) * bandwidth + center).astype(dtype)
        intensity[orphaned] = 0
        return ShiftResult(modes=modes, n_iter=n_iter, intensity=intensity,
                           converged=converged, algorithm=index.name)

    def _unit_pass(self, index, P, fn):
        """fn(rows, within) for tiles of P, within = float 0/1 matrix of
        |p - y|^2 <= 1 against the tile's candidate rows (and their indices)."""
        def tile(ab):
            rows = walk[ab[0]:ab[1]]
            q = P[rows]
            sel = index.candidates(q, 1.0)
            cand_idx = np.arange(len(index.Y))[sel] if isinstance(sel, slice) else sel
            step = max(1, self.tile_elements // len(rows))
            for c0 in range(0, len(cand_idx), step):
                part = cand_idx[c0:c0 + step]
                fn(rows, part, self._within_unit(q, index.Y[part]))

        walk = index.tile_order(P)
        self._map(tile, self._seed_tiles(len(P)))

    def _count_unit(self, index, P):
        counts = np.zeros(len(P), dtype=np.int64)

        def fn(rows, part, within):
            counts[rows] += np.count_nonzero(within, axis=1)

        self._unit_pass(index, P, fn)
        return counts

    def _flat_final_means(self, X, index, P):
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
        # A set's signature: its size and the sum of fixed random weights of
        # its members. Equal signatures (bitwise) mean equal sets; an equal
        # set split over two signatures only costs one more mean.
        R = np.random.default_rng(0).random((len(index.Y), 2))
        sig = np.zeros((m, 2))

        def fn(rows, part, within):
            sig[rows] += within @ R[part]

        self._unit_pass(index, P, fn)
        _, first, inverse = np.unique(sig, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        modes = np.empty((m, d), dtype=X.dtype)
        counts = np.zeros(m, dtype=np.int64)
        for g, r in enumerate(first):
            sel = index.candidates(P[r:r + 1], 1.0)
            cand_idx = np.arange(len(index.Y))[sel] if isinstance(sel, slice) else sel
            hit = cand_idx[self._within_unit(P[r:r + 1], index.Y[cand_idx])[0] > 0]
            idx = np.sort(index.order[hit])
            members = inverse == g
            counts[members] = idx.size
            if idx.size:
                modes[members] = np.add.reduce(X[idx], axis=0) / idx.size
        return modes, counts

    @staticmethod
    def _within_unit(q, C):
        """Float 0/1 matrix of |q_i - c_j|^2 <= 1 (relative to q's center)."""
        mid = ((q.min(axis=0) + q.max(axis=0)) * 0.5).astype(C.dtype)
        qc = q - mid
        cc = C - mid
        d2 = qc @ cc.T
        d2 *= -2.0
        d2 += np.einsum("ij,ij->i", qc, qc)[:, None]
        d2 += np.einsum("ij,ij->i", cc, cc)[None, :]
        return np.less_equal(d2, 1.0, out=d2, casting="unsafe")

    # --------------------------------------------------------- other operations
    def _sqdist_blocks(self, X, Q, fn):
        """Call fn(a, b, d2) for row blocks of Q, d2 = squared distances to X."""
        X = np.asarray(X)
        Q = np.asarray(Q, dtype=X.dtype)
        center = X.mean(axis=0, dtype=np.float64).astype(X.dtype) if len(X) else 0
        Xc = X - center
        xx = np.einsum("ij,ij->i", Xc, Xc)

        def block(ab):
            a, b = ab
            q = Q[a:b] - center
            d2 = q @ Xc.T
            d2 *= -2.0
            d2 += np.einsum("ij,ij->i", q, q)[:, None]
            d2 += xx[None, :]
            np.maximum(d2, 0.0, out=d2)
            return fn(a, b, d2, q)

        return self._map(block, self._row_chunks(len(Q), max(1, len(X))))

    @_parallel_method
    def nearest(self, X, centers):
        X = np.asarray(X)
        C = np.asarray(centers, dtype=X.dtype)
        labels = np.empty(len(X), dtype=np.int64)
        dist = np.empty(len(X), dtype=X.dtype)

        def fn(a, b, d2, q):
            # Exact distance for the winner: recompute it by differences so
            # the threshold test on it is not at the mercy of cancellation.
            j = np.argmin(d2, axis=1)
            labels[a:b] = j
            diff = np.asarray(X[a:b], dtype=np.float64) - C[j]
            dist[a:b] = np.sqrt(np.einsum("ij,ij->i", diff, diff))

        # Queries are the data rows here; the "data" are the centers.
        self._sqdist_blocks(C, X, fn)
        return labels, dist

    @_parallel_method
    def count_within(self, X, queries, radius):
        X = np.asarray(X)
        out = np.empty(len(queries), dtype=np.int64)
        r2 = float(radius) ** 2

        def fn(a, b, d2, q):
            out[a:b] = np.count_nonzero(d2 <= r2, axis=1)

        self._sqdist_blocks(X, queries, fn)
        return out

    @_parallel_method
    def kth_neighbor_distance(self, X, queries, k):
        X = np.asarray(X)
        n = len(X)
        if not 1 <= k <= n:
            raise ValueError(f"k must be in [1, {n}], got {k}")
        X64 = np.asarray(X, dtype=np.float64)
        Q64 = np.asarray(queries, dtype=np.float64)
        out = np.empty(len(Q64), dtype=np.float64)

        def fn(a, b, d2, q):
            # Select on the fast expanded distances, then recompute the
            # selected one exactly by differences.
            part = np.argpartition(d2, k - 1, axis=1)[:, k - 1]
            diff = Q64[a:b] - X64[part]
            out[a:b] = np.sqrt(np.einsum("ij,ij->i", diff, diff))

        self._sqdist_blocks(X64, Q64, fn)
        return out

    @_parallel_method
    def kernel_sum(self, X, queries, *, bandwidth, kernel):
        X = np.asarray(X)
        out = np.empty(len(queries), dtype=np.float64)
        h2 = float(bandwidth) ** 2

        def fn(a, b, d2, q):
            if kernel == "flat":
                out[a:b] = np.count_nonzero(d2 <= h2, axis=1)
            else:
                out[a:b] = np.exp(d2 * (-0.5 / h2)).sum(axis=1)

        self._sqdist_blocks(X, queries, fn)
        return out
