"""The CUDA backend: host logic for the kernels in ``kernels/``.

Written against a runtime (:mod:`gpumeanshift.backends.runtime`): the same
code drives a real GPU through CuPy and, in tests, the CPU emulator.

How :meth:`CudaBackend.shift` runs
----------------------------------
Data and seeds are centered (data mean, float64) and divided by the
bandwidth once, and the data rows put in lexicographic order, so that results
are exactly invariant to a permutation of the rows. Seeds are processed in
batches sized to the free device memory. Per batch:

* many seeds -> ``ms_shift_fused``: one thread per seed, ``iters_per_launch``
  shift steps per launch;
* few seeds (their blocks would not fill the device) -> the split scheme:
  ``ms_shift_partial`` (blocks own a range of the data) + ``ms_shift_finalize``
  (adds the partial sums, applies the step), ``split_steps`` steps queued per
  round without a host round trip.

After each round, ``ms_compact`` rebuilds the list of still-active seeds and
the host reads one int (the active count). Every seed stops after at most
``max_iter + 1`` steps, so a batch makes at most
``R = ceil((max_iter + 1) / S)`` rounds (``S`` = steps per round) and hence

* device-to-host transfers: ``R`` per batch (one 4-byte count per round);
* kernel launches: ``2 R`` (fused) or ``(2 S + 1) R`` (split) per batch,

independent of the data; the modes stay on the device. With the defaults
(``S = 32`` fused, ``8`` split) and ``max_iter=300``: ``R <= 10`` (fused) or
``38`` (split) round trips per batch, against 301 for one per iteration.
Besides these, a constant number of array-module operations per batch
(centering, scaling back, copying results out) run as CuPy elementwise
kernels, queued without synchronizing.

Precision
---------
Sums are accumulated in the input dtype, sequentially over the data for each
seed. float64 results match a float64 reference to rounding; float32 results
carry float32 rounding (the tests use 2e-4 bandwidths on modes and allow a
boundary point to flip), and the float32 Gaussian uses ``exp2f`` (<= 2 ulp).
Under CuPy, ``-ftz=true`` also flushes float32 denormal weights to zero.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import runtime as _rt
from .base import KERNELS, ShiftResult

_SHIFT_FIELDS = {f.name for f in dataclasses.fields(ShiftResult)}
_SHARED_BUDGET = 16 * 1024  # bytes of shared memory per block we aim for
_SHARED_MAX = 48 * 1024     # no opt-in above this


class CudaBackend:
    """Mean shift with the custom CUDA kernels, on any runtime.

    Parameters
    ----------
    runtime : Runtime
        :class:`~gpumeanshift.backends.runtime.CupyRuntime` for a GPU, or
        :class:`gpumeanshift.testing.EmulatedRuntime` on a CPU.
    iters_per_launch : int, default=32
        Shift steps per fused launch (and per host round).
    split : {"auto", True, False}, default="auto"
        Split the data range across blocks. "auto" does so when the seeds'
        blocks give fewer than 2 per multiprocessor.
    n_splits : int, optional
        Number of data ranges in the split scheme (default: enough for about
        4 blocks per multiprocessor, ranges of at least ``min_split_rows`` rows).
    split_steps : int, default=8
        Steps queued per host round in the split scheme.
    min_split_rows : int, default=2048
        Smallest data range one block of the split scheme handles ("auto").
    memory_fraction : float, default=0.8
        Share of the free device memory a batch may plan to use.
    output_type : {"input", "numpy", "cupy"}, default="input"
        Not applied here (the backend returns its runtime's arrays, as the
        driver expects); stored for the driver / estimator, which convert.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.testing import EmulatedRuntime
    >>> be = CudaBackend(EmulatedRuntime())
    >>> labels, dist = be.nearest(np.array([[0.0], [2.9]]), np.array([[0.0], [3.0]]))
    >>> labels.tolist()
    [0, 1]
    """

    name = "cupy"

    def __init__(self, runtime: Any, *, iters_per_launch: int = 32, split: Any = "auto",
                 n_splits: int | None = None, split_steps: int = 8,
                 min_split_rows: int = 2048, memory_fraction: float = 0.8,
                 output_type: str = "input"):
        if int(iters_per_launch) < 1 or int(split_steps) < 1:
            raise ValueError("iters_per_launch and split_steps must be >= 1")
        if split not in ("auto", True, False):
            raise ValueError(f"split must be 'auto', True or False, got {split!r}")
        if output_type not in ("input", "numpy", "cupy"):
            raise ValueError(f"output_type must be 'input', 'numpy' or 'cupy', got {output_type!r}")
        self.runtime = runtime
        self.iters_per_launch = int(iters_per_launch)
        self.split = split
        self.n_splits = None if n_splits is None else int(n_splits)
        self.split_steps = int(split_steps)
        self.min_split_rows = int(min_split_rows)
        self.memory_fraction = float(memory_fraction)
        self.output_type = output_type
        self.last_plan: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _ctx(self):
        act = getattr(self.runtime, "activate", None)
        if act is None:
            import contextlib

            return contextlib.nullcontext()
        return act()

    def _inputs(self, X, Q=None):
        rt = self.runtime
        X = rt.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {X.shape}")
        _rt.ctype(X.dtype)
        if Q is None:
            return X
        Q = rt.asarray(Q, dtype=X.dtype)
        if Q.ndim != 2 or Q.shape[1] != X.shape[1]:
            raise ValueError(f"queries of shape {Q.shape} do not match data of shape {X.shape}")
        return X, Q

    @staticmethod
    def _tile(d: int, itemsize: int) -> int:
        row = d * itemsize
        if row > _SHARED_MAX:
            raise ValueError(
                f"d={d} ({row} bytes per row) exceeds the {_SHARED_MAX}-byte shared-memory "
                "tile of the CUDA kernels; use backend='numpy'")
        return max(1, min(_rt.BLOCK, _SHARED_BUDGET // row))

    @staticmethod
    def _grid(count: int) -> int:
        return max(1, -(-count // _rt.BLOCK))

    def _batched(self, total: int, per_row: int, fixed: int, fn, what: str) -> None:
        """Run ``fn(lo, hi)`` over row batches that fit free device memory;
        halve the batch on out-of-memory errors."""
        rt = self.runtime
        budget = int(rt.free_memory() * self.memory_fraction) - fixed
        size = max(1, min(total, budget // max(1, per_row))) if budget > 0 else 1
        lo = 0
        while lo < total:
            hi = min(total, lo + size)
            try:
                fn(lo, hi)
            except rt.oom_errors as exc:
                rt.release_memory()
                if size <= 1:
                    raise MemoryError(
                        f"{what}: out of device memory even for one row; needed about "
                        f"{fixed + per_row} bytes ({fixed} fixed + {per_row} per row), "
                        f"{rt.free_memory()} reported free ({exc})") from exc
                size = max(1, size // 2)
                continue
            lo = hi
        self.last_plan["batch_rows"] = size

    def _alloc(self, shape, dtype, what: str):
        rt = self.runtime
        try:
            return rt.empty(shape, dtype)
        except rt.oom_errors as exc:
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            raise MemoryError(f"{what}: out of device memory allocating {nbytes} bytes "
                              f"({rt.free_memory()} reported free)") from exc

    # -------------------------------------------------------------------- shift
    def shift(self, X, seeds, *, bandwidth, kernel, max_iter, tol,
              algorithm="brute") -> ShiftResult:
        """Climb every seed to a mode (see the module docstring for the scheme).

        ``algorithm``: the kernels always visit every data point; "auto" and
        "brute" give the exact sums, "grid" gives the grid's semantics (the
        Gaussian truncated at ``GRID_RADIUS`` bandwidths; flat is exact).
        """
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if algorithm not in ("auto", "brute", "grid"):
            raise ValueError(f"algorithm must be 'auto', 'brute' or 'grid', got {algorithm!r}")
        algo = "grid" if algorithm == "grid" else "brute"
        kid = "gaussian_grid" if (algo == "grid" and kernel == "gaussian") else kernel
        with self._ctx():
            res = self._shift(X, seeds, float(bandwidth), kid, int(max_iter), float(tol))
        if "algorithm" in _SHIFT_FIELDS:
            return ShiftResult(res.modes, res.n_iter, res.intensity, res.converged,
                               algorithm=algo)
        return res

    def _shift(self, X, seeds, h, kernel, max_iter, tol):
        rt, xp = self.runtime, self.runtime.xp
        X, seeds = self._inputs(X, seeds)
        if X.shape[0] == 0:
            raise ValueError("shift() needs at least one data point")
        dtype = X.dtype
        T = dtype.type
        n, d = X.shape
        m = seeds.shape[0]
        isz = dtype.itemsize
        # Canonical (lexicographic) row order, before anything is summed: the
        # mean, the sums, hence the stopping iteration and the modes do not
        # depend on the order in which the rows were given.
        X = X[xp.lexsort(X.T[::-1])]
        center = X.mean(axis=0, dtype=np.float64)
        inv_h = 1.0 / h
        Xs = self._alloc((n, d), dtype, "shift")
        Xs[...] = (X - center) * inv_h
        modes = self._alloc((m, d), dtype, "shift")
        n_iter = self._alloc((m,), np.int64, "shift")
        intensity = self._alloc((m,), np.int64, "shift")
        converged = self._alloc((m,), np.bool_, "shift")
        if m == 0:
            return ShiftResult(modes, n_iter, intensity, converged)

        D = _rt.kernel_dim(d)
        tile = self._tile(d, isz)
        smem = tile * d * isz
        split, n_splits, chunk = self._plan_split(min(m, 1 << 30), n, tile)
        per_seed = 2 * d * isz + 5 * 4 + (n_splits * ((d + 1) * isz + 4) if split else 0)
        self.last_plan = {"split": split, "n_splits": n_splits, "chunk": chunk,
                          "tile": tile, "dim": D, "rounds": 0}

        def run(lo, hi):
            mb = hi - lo
            sp, ns, ch = self._plan_split(mb, n, tile)
            pos = rt.empty((mb, d), dtype)
            pos[...] = (seeds[lo:hi] - center) * inv_h
            scratch = rt.empty((mb, d) if (D == 0 or sp) else (1,), dtype)
            it = rt.zeros((mb,), np.int32)
            inten = rt.zeros((mb,), np.int32)
            state = rt.zeros((mb,), np.int32)
            active = rt.empty((mb,), np.int32)
            active[...] = xp.arange(mb, dtype=np.int32)
            active_out = rt.empty((mb,), np.int32)
            counter = rt.zeros((1,), np.int32)
            if sp:
                partial = rt.empty((ns * mb * (d + 1),), dtype)
                pcount = rt.empty((ns * mb,), np.int32)
            steps = self.split_steps if sp else self.iters_per_launch
            max_rounds = -(-(max_iter + 1) // steps)
            common = (np.int32(max_iter),)
            tol2 = T(min(tol * tol, float(np.finfo(dtype).max)))
            n_active, rounds = mb, 0
            while n_active > 0:
                if rounds >= max_rounds:  # cannot happen unless a kernel is wrong
                    raise RuntimeError(f"shift did not stop after {rounds} rounds "
                                       f"({n_active} seeds still active)")
                g = self._grid(n_active)
                if sp:
                    for _ in range(steps):
                        rt.launch(_rt.kernel_name("ms_shift_partial", dtype, D, kernel),
                                  (g, ns), (_rt.BLOCK,),
                                  (Xs, np.int32(n), np.int32(d), np.int32(tile), np.int32(ch),
                                   pos, state, active, np.int32(n_active), partial, pcount),
                                  smem)
                        rt.launch(_rt.kernel_name("ms_shift_finalize", dtype),
                                  (g,), (_rt.BLOCK,),
                                  (partial, pcount, np.int32(ns), np.int32(d), pos, scratch,
                                   it, inten, state, active, np.int32(n_active), *common, tol2),
                                  0)
                else:
                    rt.launch(_rt.kernel_name("ms_shift_fused", dtype, D, kernel),
                              (g,), (_rt.BLOCK,),
                              (Xs, np.int32(n), np.int32(d), np.int32(tile), pos, scratch,
                               it, inten, state, active, np.int32(n_active), *common,
                               np.int32(steps), tol2),
                              smem)
                counter[...] = 0
                rt.launch("ms_compact", (g,), (_rt.BLOCK,),
                          (state, active, np.int32(n_active), active_out, counter), 0)
                n_active = int(rt.to_host(counter)[0])
                active, active_out = active_out, active
                rounds += 1
            self.last_plan["rounds"] += rounds
            modes[lo:hi] = pos * h + center
            n_iter[lo:hi] = it
            intensity[lo:hi] = inten
            converged[lo:hi] = state == _rt.CONVERGED

        self._batched(m, per_seed, 0, run, "shift")
        return ShiftResult(modes, n_iter, intensity, converged)

    def _plan_split(self, m: int, n: int, tile: int):
        """(use_split, n_splits, chunk rows) for a batch of m seeds.

        "auto" aims at 4 blocks per multiprocessor: when the seeds alone give
        fewer than half of that, the data range is split (ranges of at least
        ``min_split_rows`` rows) to make up the difference.
        """
        seed_blocks = self._grid(m)
        if self.split is False:
            return False, 1, n
        target = 4 * self.runtime.multiprocessor_count
        if self.split == "auto":
            want = min(-(-target // seed_blocks), n // max(1, self.min_split_rows))
            if want < 2:
                return False, 1, n
        else:
            want = self.n_splits or max(2, -(-target // seed_blocks))
        want = max(1, min(want, n))
        chunk = -(-n // want)
        chunk = -(-chunk // tile) * tile  # whole tiles per range
        ns = -(-n // chunk)
        if ns > 65535:  # grid.y limit
            chunk = -(-n // 65535)
            chunk = -(-chunk // tile) * tile
            ns = -(-n // chunk)
        return True, ns, chunk

    # ------------------------------------------------------- other operations
    def _per_query(self, base, X, Q, extra_args, out_dtype, dim_kernel=None, what=""):
        """Launch a one-thread-per-query kernel over Q against X, batched."""
        rt = self.runtime
        n, d = X.shape
        m = Q.shape[0]
        dtype = X.dtype
        tile = self._tile(d, dtype.itemsize)
        name = _rt.kernel_name(base, dtype, _rt.kernel_dim(d), dim_kernel)
        out = self._alloc((m,), out_dtype, what)
        if m == 0 or n == 0:
            out[...] = 0  # no data: nothing within reach, zero density
            return out, tile

        def run(lo, hi):
            res = rt.empty((hi - lo,), out_dtype)
            Qb = Q[lo:hi]
            rt.launch(name, (self._grid(hi - lo),), (_rt.BLOCK,),
                      (X, np.int32(n), Qb, np.int32(hi - lo), np.int32(d), np.int32(tile),
                       *extra_args, res), tile * d * dtype.itemsize)
            out[lo:hi] = res

        self._batched(m, np.dtype(out_dtype).itemsize, 0, run, what)
        return out, tile

    def nearest(self, X, centers):
        rt = self.runtime
        with self._ctx():
            X, C = self._inputs(X, centers)
            n, d = X.shape
            k = C.shape[0]
            if k == 0:
                raise ValueError("nearest() needs at least one center")
            dtype = X.dtype
            tile = self._tile(d, dtype.itemsize)
            labels = self._alloc((n,), np.int64, "nearest")
            dist = self._alloc((n,), dtype, "nearest")
            name = _rt.kernel_name("nearest_center", dtype, _rt.kernel_dim(d))

            def run(lo, hi):
                lab = rt.empty((hi - lo,), np.int32)
                dst = rt.empty((hi - lo,), dtype)
                rt.launch(name, (self._grid(hi - lo),), (_rt.BLOCK,),
                          (X[lo:hi], np.int32(hi - lo), C, np.int32(k), np.int32(d),
                           np.int32(tile), lab, dst), tile * d * dtype.itemsize)
                labels[lo:hi] = lab
                dist[lo:hi] = dst

            if n:
                self._batched(n, 4 + dtype.itemsize, 0, run, "nearest")
            return labels, dist

    def count_within(self, X, queries, radius):
        with self._ctx():
            X, Q = self._inputs(X, queries)
            r2 = _squared_radius(radius, X.dtype)
            out, _ = self._per_query("count_within", X, Q, (r2,), np.int64, what="count_within")
            return out

    def kth_neighbor_distance(self, X, queries, k):
        with self._ctx():
            X, Q = self._inputs(X, queries)
            k = int(k)
            if not 1 <= k <= X.shape[0]:
                raise ValueError(f"k must be in [1, {X.shape[0]}], got {k}")
            out, _ = self._per_query("kth_neighbor", X, Q, (np.int32(k),), X.dtype,
                                     what="kth_neighbor_distance")
            return out

    def kernel_sum(self, X, queries, *, bandwidth, kernel):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        with self._ctx():
            X, Q = self._inputs(X, queries)
            # clamped: inf would give 0 * inf = NaN at distance 0 (float32, tiny h)
            inv_h2 = X.dtype.type(min(1.0 / float(bandwidth) ** 2, float(np.finfo(X.dtype).max)))
            out, _ = self._per_query("kernel_sum", X, Q, (inv_h2,), X.dtype, dim_kernel=kernel,
                                     what="kernel_sum")
            return out


def _squared_radius(radius: float, dtype: Any):
    """The largest r2 of ``dtype`` with sqrt(r2) <= radius: the kernel's
    ``d2 <= r2`` is then exactly ``sqrt(d2) <= radius`` (IEEE sqrt is
    correctly rounded, hence monotonic), also for points on the boundary."""
    T = np.dtype(dtype).type
    with np.errstate(over="ignore"):  # a huge radius: r2 = inf, everything counts
        r = T(radius)
        r2 = T(r * r)
        while r2 > 0 and np.sqrt(r2) > r:
            r2 = np.nextafter(r2, T(0))
        while np.isfinite(r2) and np.sqrt(np.nextafter(r2, T(np.inf))) <= r:
            r2 = np.nextafter(r2, T(np.inf))
    return T(r2)


def make_cupy_backend(**options: Any) -> CudaBackend:
    """``backend="cupy"``: the CUDA backend on the current device via CuPy.

    Options ``stream`` (a ``cupy.cuda.Stream`` or raw handle) go to
    :class:`~gpumeanshift.backends.runtime.CupyRuntime`; the rest to
    :class:`CudaBackend`. Raises RuntimeError when CuPy or a device is missing.
    """
    stream = options.pop("stream", None)
    return CudaBackend(_rt.CupyRuntime(stream=stream), **options)
