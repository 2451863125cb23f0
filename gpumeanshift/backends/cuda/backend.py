"""The CUDA backend: host logic for the kernels in ``kernels/``.

Written against a runtime (:mod:`gpumeanshift.backends.cuda.runtime`): the same
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

* ``algorithm="grid"`` with d <= 3 -> ``ms_shift_grid`` over a cell list
  built on the device (points sorted by cell; each seed visits only the
  cells within its kernel's reach), same rounds as the fused kernel, plus
  one transfer of the grid's d cell counts per call.
* ``algorithm="auto"``, Gaussian, d <= 3, data wide against the kernel ->
  the same grid with cells of :func:`_spatial.gaussian_proof_radius`: each
  seed proves on every step that the points it did not visit move it by
  less than rounding; a seed that cannot leaves the grid kernel (state
  ``UNPROVEN``) and climbs on with ``ms_shift_fused`` over all the points,
  so the result is brute force's to rounding. One more transfer per call
  (the data's extent) and, when some seed could not prove a step, one
  more pass of rounds for those seeds.

After each round, an ordered compaction (``ms_compact_count``,
``ms_compact_scan``, ``ms_compact``) rebuilds the list of still-active seeds
in the order they had -- the grid kernel's seeds stay in cell order, so the
threads of a warp keep visiting the same cells -- and the host reads one int
(the active count). Every seed stops after at most ``max_iter + 1`` steps,
so a batch makes at most ``R = ceil((max_iter + 1) / S)`` rounds (``S`` =
steps per round) and hence

* device-to-host transfers: ``R`` per batch (one 4-byte count per round);
* kernel launches: ``4 R`` (fused) or ``(2 S + 3) R`` (split) per batch,

independent of the data; the modes stay on the device. With the defaults
(``S = 32`` fused, ``8`` split) and ``max_iter=300``: ``R <= 10`` (fused) or
``38`` (split) round trips per batch, against 301 for one per iteration.
Besides these, a constant number of array-module operations per batch
(centering, scaling back, copying results out) run as CuPy elementwise
kernels, queued without synchronizing.

Sample weights
--------------
With ``weights`` (see :class:`gpumeanshift.backends.base.Backend`) every
method first drops the rows of weight 0 and divides the weights by a power of
two ``2**e`` so that the largest lies in [1/2, 1) (exact; sums and counts are
multiplied back by ``2**e``, logs get ``e log 2``). The weights then travel as
one more column of the data, in its dtype: ``[x, w]`` rows through the same
shared-memory tiles, read by the ``WEIGHTED`` instantiation of each kernel
(``kernel_name(..., weighted=True)``; see kernels/common.cuh). Without
weights the unweighted instantiations run, unchanged. For float32 data the
weights are rounded to float32 (relative 6e-8; integer weights below 2**24
stay exact) and the shift's intensities are float32 sums, as its weight sums;
a weight below 2**-126 times the largest counts as 0 (a float32 denormal,
which the GPU flushes). count_within and the k-th neighbour search sum the
weights in double.

Precision
---------
Sums are accumulated in the input dtype, sequentially over the data for each
seed. float64 results match a float64 reference to rounding; float32 results
carry float32 rounding (the tests use 2e-4 bandwidths on modes and allow a
boundary point to flip), and the float32 Gaussian uses ``exp2f`` (<= 2 ulp).
Under CuPy, ``-ftz=true`` also flushes float32 denormal weights to zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import numpy as np

from . import runtime as _rt
from ..._spatial import (GAUSSIAN_GRID_RADIUS, GRID_MAX_DIM, SAFE_ABS, gaussian_proof_radius,
                         integer_valued, midrange)
from ..base import KERNELS, PartialSums, ShiftResult
from ._images import _Images
from ._queries import _Queries

_SHIFT_FIELDS = {f.name for f in dataclasses.fields(ShiftResult)}
_SHARED_BUDGET = 16 * 1024  # bytes of shared memory per block we aim for
_SHARED_MAX = 48 * 1024     # no opt-in above this
# The kernels index rows and threads with 32-bit ints: data of at most this
# many rows, launches over batches of at most _MAX_BATCH rows (whole blocks of
# threads then stay below 2^31 too).
_MAX_ROWS = 2**31 - 1
_MAX_BATCH = 2**31 - _rt.BLOCK


def _check_rows(n: int, what: str) -> None:
    if n > _MAX_ROWS:
        raise ValueError(f"{what}: {n} rows exceed the CUDA kernels' 32-bit row index "
                         f"(at most {_MAX_ROWS}); use backend='numpy' or split the data")


class CudaBackend(_Queries, _Images):
    """Mean shift with the custom CUDA kernels, on any runtime.

    Parameters
    ----------
    runtime : Runtime
        :class:`~gpumeanshift.backends.cuda.runtime.CupyRuntime` for a GPU, or
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
    max_memory : int, optional
        Bytes a batch may plan to use at most (on top of the data and result
        buffers), whatever the free memory; None: no cap besides
        ``memory_fraction``.
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
                 output_type: str = "input", max_memory: int | None = None):
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
        if max_memory is not None and int(max_memory) < 1:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory}")
        self.max_memory = None if max_memory is None else int(max_memory)
        self.output_type = output_type
        self.last_plan: dict[str, Any] = {}
        self._in_batch = False

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _ctx(self):
        """Every public method runs in it: the runtime's stream current, and
        that stream synchronized before the results leave (the caller may
        read them on another stream, or on the host)."""
        act = getattr(self.runtime, "activate", None)
        with (act() if act is not None else contextlib.nullcontext()):
            yield
            sync = getattr(self.runtime, "synchronize", None)
            if sync is not None:
                sync()

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

    def _weighted(self, X, weights):
        """``(X, w, e)``: X less its rows of weight 0, the others' weights
        divided by ``2**e`` (largest in [1/2, 1)) in X's dtype, on the device;
        ``(X, None, 0)`` for ``weights=None``. Two small transfers (the
        largest weight, whether any row drops)."""
        if weights is None:
            return X, None, 0
        rt, xp = self.runtime, self.runtime.xp
        w = rt.asarray(weights, dtype=np.float64)
        if w.shape != (X.shape[0],):
            raise ValueError(f"weights has shape {w.shape}, expected ({X.shape[0]},)")
        top = float(w.max()) if w.shape[0] else 0.0
        if not (np.isfinite(top) and top > 0.0):
            raise ValueError("weights must be finite and >= 0 with a positive sum")
        e = int(np.frexp(top)[1])  # top = f 2**e, f in [1/2, 1)
        wt = xp.ldexp(w, -e).astype(X.dtype)
        if X.dtype == np.float32:  # what -ftz makes of a denormal weight
            wt[wt < np.finfo(np.float32).tiny] = 0
        keep = wt > 0
        if not bool(keep.all()):
            X, wt = X[keep], wt[keep]  # new C-contiguous arrays (of the runtime's type)
        return X, wt, e

    def _with_weights(self, X, wt, what: str):
        """Rows ``[x, w]`` (d + 1 columns), the input of a weighted kernel."""
        n, d = X.shape
        Xa = self._alloc((n, d + 1), X.dtype, what)
        Xa[:, :d] = X
        Xa[:, d] = wt
        return Xa

    def _batched(self, total: int, per_row: int, fixed: int, fn, what: str) -> None:
        """Run ``fn(lo, hi)`` over row batches that fit free device memory;
        halve the batch on out-of-memory errors."""
        rt = self.runtime
        budget = int(rt.free_memory() * self.memory_fraction)
        if self.max_memory is not None:
            budget = min(budget, self.max_memory)
        budget -= fixed
        size = max(1, min(total, budget // max(1, per_row))) if budget > 0 else 1
        size = min(size, _MAX_BATCH)  # one launch's rows index as int32
        lo = 0
        while lo < total:
            hi = min(total, lo + size)
            try:
                self._in_batch = True
                try:
                    fn(lo, hi)
                finally:
                    self._in_batch = False
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

    def _sort(self, kind: str, what: str, keys):
        """``lexsort(keys)`` or stable ``argsort(keys)`` on the device.

        Under CuPy these are Thrust sorts whose workspace allocation can fail
        (``MemoryError`` from CuPy 14.1 on; see ``CupyRuntime.oom_errors``):
        inside a batch the failure halves the batch like any other
        (:meth:`_batched`); outside one it becomes a MemoryError naming the
        sort, after the memory pool is released. The runtime's own ``lexsort``
        / ``argsort`` are used when it has them (the emulator's inject faults).
        """
        rt = self.runtime
        fn = getattr(rt, kind, None)
        if fn is None:
            fn = rt.xp.lexsort if kind == "lexsort" else (
                lambda a: rt.xp.argsort(a, kind="stable"))
        try:
            return fn(keys)
        except rt.oom_errors as exc:
            if self._in_batch:
                raise
            rt.release_memory()
            raise MemoryError(f"{what}: out of device memory in {kind} of "
                              f"{int(np.prod(np.shape(keys)))} keys ({rt.free_memory()} "
                              f"bytes reported free): {exc}") from exc

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
              algorithm="brute", weights=None, progress=None) -> ShiftResult:
        """Climb every seed to a mode (see the module docstring for the scheme).

        ``algorithm``: "brute" visits every data point (exact sums); so
        does "auto", except for the Gaussian in d <= 3 on data wide against
        the kernel, where it takes the proven grid (the same result to
        rounding; see the module docstring). "grid" has the grid's semantics (the Gaussian truncated at
        ``GAUSSIAN_GRID_RADIUS`` bandwidths; flat is exact): for d <= 3 the
        cell-list kernel ``ms_shift_grid`` visits only the cells around each
        seed (see :meth:`_cell_list`); for d > 3 the all-points kernels run
        with the truncated weights, which gives the same result.
        ``progress(iteration, n_active)`` is called after every round (see
        :meth:`Backend.shift`); the active count it reports costs no extra
        transfer, the round already reads it.
        ``weights``: sample weights (see the module docstring); the
        intensity is then the float64 summed weight within one bandwidth.
        """
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if algorithm not in ("auto", "brute", "grid"):
            raise ValueError(f"algorithm must be 'auto', 'brute' or 'grid', got {algorithm!r}")
        algo = "grid" if algorithm == "grid" else "brute"
        kid = "gaussian_grid" if (algo == "grid" and kernel == "gaussian") else kernel
        # before anything touches (or copies) the data
        _check_rows(int(np.shape(X)[0]) if np.ndim(X) else 0, "shift")
        proven = algorithm == "auto" and kernel == "gaussian"
        with self._ctx():
            res = self._shift(X, seeds, float(bandwidth), kid, int(max_iter), float(tol), progress,
                              grid=algo == "grid", proven=proven, weights=weights)
        if self.last_plan.get("proven"):
            algo = "grid"
        if "algorithm" in _SHIFT_FIELDS:
            return ShiftResult(res.modes, res.n_iter, res.intensity, res.converged,
                               algorithm=algo)
        return res

    def _shift(self, X, seeds, h, kernel, max_iter, tol, progress=None, grid=False,
               proven=False, weights=None):
        rt, xp = self.runtime, self.runtime.xp
        X, seeds = self._inputs(X, seeds)
        # Rows of weight 0 leave first: the arithmetic below (integrality,
        # centre, order) is then that of the data repeated.
        X, wt, wexp = self._weighted(X, weights)
        W = wt is not None
        # Integer-valued data under the flat kernel (pixel coordinates,
        # counts, lattices) stay in their own units: the kernels then decide
        # exact boundary ties as sum (x - q)^2 <= h^2, the positions are means
        # of integers (exact sums), as scikit-learn computes them; see
        # ms_weight_r in kernels/common.cuh. The cell list is then laid out in
        # the data's units too (cells of side h).
        lattice = kernel == "flat" and integer_valued(X, xp)
        if X.shape[0] == 0:
            raise ValueError("shift() needs at least one data point")
        # The cell-list kernel exists for d <= 3; above, "grid" runs the
        # all-points kernels with the same (truncated) weights.
        grid = grid and X.shape[1] in _rt.GRID_DIMS
        dtype = X.dtype
        T = dtype.type
        n, d = X.shape
        m = seeds.shape[0]
        isz = dtype.itemsize
        # Canonical (lexicographic) row order, before anything is summed: the
        # mean, the sums, hence the stopping iteration and the modes do not
        # depend on the order in which the rows were given.
        if W:  # equal rows by weight too: the sums' order is then canonical as well
            order = self._sort("lexsort", "shift", xp.concatenate(
                [wt[None].astype(np.float64), X.T[::-1].astype(np.float64)]))
            X, wt = X[order], wt[order]
        else:
            X = X[self._sort("lexsort", "shift", X.T[::-1])]
        if lattice:
            center, inv_h, unit = xp.zeros(X.shape[1]), 1.0, h
        else:
            center = midrange(X, xp)  # exact for identical rows; never overflows
            inv_h, unit = 1.0 / h, 1.0
        # Weighted: the kernels read rows [x, w] (Xk); the cell lists are
        # built from the coordinates Xs (a view).
        Xk = self._alloc((n, d + W), dtype, "shift")
        Xs = Xk[:, :d] if W else Xk
        Xs[...] = (X - center) * inv_h
        if W:
            Xk[:, d] = wt
        modes = self._alloc((m, d), dtype, "shift")
        n_iter = self._alloc((m,), np.int64, "shift")
        intensity = self._alloc((m,), np.float64 if W else np.int64, "shift")
        converged = self._alloc((m,), np.bool_, "shift")
        if m == 0:
            return ShiftResult(modes, n_iter, intensity, converged)

        D = _rt.shift_dim(d)
        tile = self._tile(d + W, isz)
        smem = tile * (d + W) * isz
        cdt = dtype if W else np.int32  # the kernels' count type (ms_count)
        split, n_splits, chunk = self._plan_split(min(m, 1 << 30), n, tile)
        cells = None
        proof = 0.0
        if proven:  # the Gaussian under "auto": the proven grid when it pays
            cells = self._proven_cells(Xs, Xk)
            if cells is not None:
                # _spatial.gaussian_truncation_bound's factor, folded: 2 exp(-R^2/2) / tau.
                proof = 2.0 * np.exp(-0.5 * cells["cell"] ** 2) / (0.5 * np.finfo(dtype).eps)
                split, n_splits, chunk = False, 1, n
        if grid:  # each seed visits its neighbouring cells only; no split scheme
            cells = self._cell_list(Xs, kernel, unit, rows=Xk)
            split, n_splits, chunk = False, 1, n
        csz = np.dtype(cdt).itemsize  # a split's count: int, or the summed weight
        per_seed = 2 * d * isz + 5 * 4 + (n_splits * ((d + 1) * isz + csz) if split else 0)
        self.last_plan = {"split": split, "n_splits": n_splits, "chunk": chunk,
                          "tile": tile, "dim": D, "rounds": 0, "grid": grid,
                          "n_cells": 0 if cells is None else int(cells["n_cells"]),
                          "proven": proof > 0, "unproven": 0}

        def run(lo, hi):
            mb = hi - lo
            sp, ns, ch = self._plan_split(mb, n, tile) if cells is None else (False, 1, n)
            pos = rt.empty((mb, d), dtype)
            pos[...] = (seeds[lo:hi] - center) * inv_h
            scratch = rt.empty((mb, d) if (D == 0 or sp) else (1,), dtype)
            it = rt.zeros((mb,), np.int32)
            inten = rt.zeros((mb,), cdt)
            state = rt.zeros((mb,), np.int32)
            active = rt.empty((mb,), np.int32)
            active[...] = (xp.arange(mb, dtype=np.int32) if cells is None
                           else self._cell_order(pos, cells))
            active_out = rt.empty((mb,), np.int32)
            spans = rt.empty((-(-mb // _rt.COMPACT_SPAN),), np.int32)
            counter = rt.zeros((1,), np.int32)
            if sp:
                partial = rt.empty((ns * mb * (d + 1),), dtype)
                pcount = rt.empty((ns * mb,), cdt)
            steps = self.split_steps if sp else self.iters_per_launch
            max_rounds = -(-(max_iter + 1) // steps)
            common = (np.int32(max_iter),)
            tol2 = T(min((tol * unit) * (tol * unit), float(np.finfo(dtype).max)))
            r2 = T(unit * unit)  # the flat radius^2 in the kernels' units
            done = [0]  # rounds of this batch so far (progress)

            def climb(active, active_out, n_active, cells):
                """Rounds until no seed in ``active[:n_active]`` is active (the
                grid kernel over ``cells``, or the all-points kernels)."""
                rounds = 0
                while n_active > 0:
                    if rounds >= max_rounds:  # cannot happen unless a kernel is wrong
                        raise RuntimeError(f"shift did not stop after {rounds} rounds "
                                           f"({n_active} seeds still active)")
                    g = self._grid(n_active)
                    if sp:
                        for _ in range(steps):
                            rt.launch(_rt.kernel_name("ms_shift_partial", dtype, D, kernel, W),
                                      (g, ns), (_rt.BLOCK,),
                                      (Xk, np.int32(n), np.int32(d), np.int32(tile),
                                       np.int32(ch), pos, state, active, np.int32(n_active),
                                       partial, pcount, r2),
                                      smem)
                            rt.launch(_rt.kernel_name("ms_shift_finalize", dtype, None, None, W),
                                      (g,), (_rt.BLOCK,),
                                      (partial, pcount, np.int32(ns), np.int32(d), pos, scratch,
                                       it, inten, state, active, np.int32(n_active), *common,
                                       tol2),
                                      0)
                    elif cells is not None:
                        c = cells
                        rt.launch(_rt.kernel_name("ms_shift_grid", dtype, d, kernel, W),
                                  (g,), (_rt.BLOCK,),
                                  (c["X"], np.int32(n), c["ids"], c["start"],
                                   np.int32(c["n_cells"]), c["origin"], c["shape"], c["stride"],
                                   np.float64(c["cell"]), np.float64(c["cell"]), pos, it, inten,
                                   state, active, np.int32(n_active), *common, np.int32(steps),
                                   tol2, r2, np.float64(proof)),
                                  0)
                    else:
                        rt.launch(_rt.kernel_name("ms_shift_fused", dtype, D, kernel, W),
                                  (g,), (_rt.BLOCK,),
                                  (Xk, np.int32(n), np.int32(d), np.int32(tile), pos, scratch,
                                   it, inten, state, active, np.int32(n_active), *common,
                                   np.int32(steps), tol2, r2),
                                  smem)
                    n_active = self._compact(state, active, n_active, active_out, spans,
                                             counter)
                    active, active_out = active_out, active
                    rounds += 1
                    done[0] += 1
                    if progress is not None:
                        # Seeds of later batches count as still moving.
                        progress(min(done[0] * steps, max_iter), n_active + (m - hi))
                return rounds

            rounds = climb(active, active_out, mb, cells)
            if proof > 0:
                # Seeds that could not prove a step climb on over all the points.
                redo = xp.flatnonzero(state == _rt.UNPROVEN).astype(np.int32)
                k = int(redo.shape[0])
                if k:
                    state[redo] = _rt.ACTIVE
                    active[:k] = redo
                    rounds += climb(active, active_out, k, None)
                    self.last_plan["unproven"] += k
            self.last_plan["rounds"] += rounds
            # float64: pos * h may pass float32
            # A seed that never moved (an orphan from the start) keeps its
            # input position exactly, not its round trip through the scaling.
            still = ((state == _rt.ORPHAN) & (it == 0))[:, None]
            modes[lo:hi] = xp.where(still, seeds[lo:hi],
                                    pos if lattice else pos.astype(np.float64) * h + center)
            n_iter[lo:hi] = it
            # weighted: the summed weights, scaled back (exact)
            intensity[lo:hi] = xp.ldexp(inten.astype(np.float64), wexp) if W else inten
            converged[lo:hi] = state == _rt.CONVERGED

        self._batched(m, per_seed, 0, run, "shift")
        return ShiftResult(modes, n_iter, intensity, converged)

    def _compact(self, state, active, n_active, active_out, spans, counter):
        """Ordered compaction: the seeds of ``active[:n_active]`` still
        ``ACTIVE`` go to the front of ``active_out`` in their order (three
        launches: span counts, their scan, the scatter; see meanshift.cu).
        Returns their number, the one value read back per round."""
        rt = self.runtime
        n_spans = -(-n_active // _rt.COMPACT_SPAN)
        n, smem = np.int32(n_active), _rt.BLOCK * 4  # the block scan's ints
        rt.launch("ms_compact_count", (n_spans,), (_rt.BLOCK,), (state, active, n, spans), smem)
        rt.launch("ms_compact_scan", (1,), (_rt.BLOCK,), (spans, np.int32(n_spans), counter),
                  smem)
        rt.launch("ms_compact", (n_spans,), (_rt.BLOCK,),
                  (state, active, n, spans, active_out), smem)
        return int(rt.to_host(counter)[0])

    def _proven_cells(self, Xs, rows=None):
        """The proven Gaussian grid's cell list for the scaled data ``Xs``, or
        None where "auto" keeps the all-points kernels: d > 3, fewer than
        2048 points, cells that would cover a quarter of the data's box or
        more (the first tests of ``_spatial.make_index``), or a grid too
        large. One transfer: the data's extent. ``rows``: what the cell list
        carries for the kernel (``Xs`` itself, or the rows ``[x, w]``)."""
        n, d = Xs.shape
        if d > GRID_MAX_DIM or d not in _rt.GRID_DIMS or n < 2048:
            return None
        lo = self.runtime.to_host(Xs.min(axis=0)).astype(np.float64)
        hi = self.runtime.to_host(Xs.max(axis=0)).astype(np.float64)
        ext = hi - lo
        if not np.isfinite(ext).all() or max(np.abs(lo).max(), np.abs(hi).max()) \
                > 0.25 * SAFE_ABS[np.dtype(Xs.dtype)]:
            return None
        reach = gaussian_proof_radius(Xs.dtype, n, float(np.sqrt(ext @ ext)))
        if np.prod(np.minimum(1.0, 3.0 * reach / np.maximum(ext, 1e-300))) > 0.25:
            return None
        try:
            return self._cell_list(Xs, "gaussian", cell=reach, rows=rows)
        except ValueError:  # too many cells: brute force
            return None

    def _cell_list(self, Xs, kernel: str, unit: float = 1.0, cell: float | None = None,
                   rows=None) -> dict:
        """The cell list of the data ``Xs`` for ``ms_shift_grid``: ``Xs`` in
        bandwidths (``unit`` = 1) or in the data's own units (``unit`` = h,
        integer data under the flat kernel); cells are ``unit`` times the
        kernel's reach wide.

        Built on the device with array-module operations: the data are
        already there, a (stable) device sort of n keys is far cheaper than
        downloading and re-uploading the rows, and the only values the host
        needs are the d cell counts per axis (one small transfer; CuPy's
        ``flatnonzero`` also synchronizes once to size its result).
        Cells have side ``reach`` (1 bandwidth for flat,
        ``GAUSSIAN_GRID_RADIUS`` for the Gaussian, ``cell`` when given), cell
        ``floor((y - origin) / reach)`` per axis, float64, with origin the
        data's minimum. ``rows`` (default ``Xs``): the rows put in cell order
        for the kernel (``[x, w]`` for a weighted shift).
        """
        rt, xp = self.runtime, self.runtime.xp
        n, d = Xs.shape
        if cell is None:
            cell = unit * (1.0 if kernel == "flat" else float(GAUSSIAN_GRID_RADIUS))
        origin = xp.ascontiguousarray(Xs.min(axis=0).astype(np.float64))
        coords = xp.floor((Xs.astype(np.float64) - origin) / cell).astype(np.int64)
        shape = rt.to_host(coords.max(axis=0)).astype(np.int64) + 1
        if (shape > np.iinfo(np.int32).max).any() or np.prod(shape.astype(np.float64)) >= 2.0**62:
            raise ValueError(f"algorithm='grid' would need {shape.tolist()} cells per axis "
                             "(the data span too many bandwidths); use algorithm='brute'")
        stride = np.ones(d, np.int64)
        for k in range(d - 2, -1, -1):
            stride[k] = stride[k + 1] * shape[k + 1]
        ids = (coords * rt.asarray(stride)).sum(axis=1)
        order = self._sort("argsort", "grid cell list", ids)  # stable: rows keep their order
        sid = ids[order]
        first = xp.ones((n,), np.bool_)
        first[1:] = sid[1:] != sid[:-1]
        starts = xp.flatnonzero(first)
        n_cells = int(starts.shape[0])
        start = rt.empty((n_cells + 1,), np.int32)
        start[:n_cells] = starts
        start[n_cells] = n
        return {"X": xp.ascontiguousarray((Xs if rows is None else rows)[order]), "ids": xp.ascontiguousarray(sid[starts]),
                "start": start, "n_cells": n_cells, "origin": origin, "cell": cell,
                "shape": rt.asarray(shape.astype(np.int32)), "stride": rt.asarray(stride),
                "stride_host": stride}

    def _cell_order(self, pos, cells):
        """Seed slots in cell order, so the threads of a warp visit the same cells."""
        xp = self.runtime.xp
        c = xp.floor((pos.astype(np.float64) - cells["origin"]) / cells["cell"])
        c = xp.clip(c, -1, cells["shape"].astype(np.float64)).astype(np.int64)
        key = (c * self.runtime.asarray(cells["stride_host"])).sum(axis=1)
        return self._sort("argsort", "seed cell order", key).astype(np.int32)

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

    # ------------------------------------------------------------ partial sums
    def partial_sums(self, X, seeds, *, bandwidth, kernel, origin=None, exact=False,
                     algorithm="brute", weights=None) -> PartialSums:
        """One step's sums over a chunk (see :meth:`Backend.partial_sums`).

        One launch of ``ms_shift_partial``, the split scheme's first kernel:
        block (x, y) weighs the seeds of x against the rows of range y and
        writes their partial sums; the ranges' sums are then added on the
        device (one reduction per result, in a fixed order). Nothing comes to
        the host: the results are device arrays. ``exact`` keeps the data in
        their own units with ``r2 = h^2``: the kernels' boundary test is then
        the exact one, as for :meth:`shift` on integer-valued data.
        """
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if algorithm not in ("auto", "brute", "grid"):
            raise ValueError(f"algorithm must be 'auto', 'brute' or 'grid', got {algorithm!r}")
        kid = "gaussian_grid" if (algorithm == "grid" and kernel == "gaussian") else kernel
        _check_rows(int(np.shape(X)[0]) if np.ndim(X) else 0, "partial_sums")
        with self._ctx():
            return self._partial_sums(X, seeds, float(bandwidth), kid, origin, exact, weights)

    def _partial_sums(self, X, seeds, h, kernel, origin, exact, weights):
        rt, xp = self.runtime, self.runtime.xp
        X, S = self._inputs(X, seeds)
        X, wt, wexp = self._weighted(X, weights)
        W = wt is not None
        dtype = X.dtype
        T = dtype.type
        n, d = X.shape
        m = S.shape[0]
        if exact:
            if kernel != "flat" or dtype != np.float64 or origin is not None:
                raise ValueError("exact=True needs the flat kernel, float64 data and no origin")
            r2 = T(h * h)
        else:
            r2 = T(1.0)
        Xk = self._alloc((n, d + W), dtype, "partial_sums")
        if exact:
            Xk[:, :d] = X
        else:
            o = xp.zeros(d) if origin is None else rt.asarray(origin, dtype=np.float64)
            Xk[:, :d] = (X - o) * (1.0 / h)
        if W:
            Xk[:, d] = wt
        cdt = dtype if W else np.int32  # the kernel's count type (ms_count)
        sums = rt.zeros((m, d), dtype)
        weight = rt.zeros((m,), dtype)
        count = rt.zeros((m,), np.float64 if W else np.int64)
        if n == 0 or m == 0:
            return PartialSums(sums, weight, count)
        D = _rt.shift_dim(d)  # the bounded path too (d <= 32 in registers)
        if W and kernel == "gaussian_grid" and D in _rt.GRID_DIMS:
            D = 0  # not instantiated (the shift takes the cell list there): the generic path
        tile = self._tile(d + W, dtype.itemsize)
        smem = tile * (d + W) * dtype.itemsize
        name = _rt.kernel_name("ms_shift_partial", dtype, D, kernel, W)
        _, ns_max, _ = self._plan_split(min(m, 1 << 30), n, tile)
        per_seed = d * dtype.itemsize + 8 + ns_max * ((d + 1) * dtype.itemsize + 8)

        def run(lo, hi):
            mb = hi - lo
            _, ns, chunk = self._plan_split(mb, n, tile)
            pos = xp.ascontiguousarray(S[lo:hi])
            state = rt.zeros((mb,), np.int32)  # every seed active
            active = xp.arange(mb, dtype=np.int32)
            partial = rt.empty((ns * mb * (d + 1),), dtype)
            pcount = rt.empty((ns * mb,), cdt)
            rt.launch(name, (self._grid(mb), ns), (_rt.BLOCK,),
                      (Xk, np.int32(n), np.int32(d), np.int32(tile), np.int32(chunk), pos,
                       state, active, np.int32(mb), partial, pcount, r2), smem)
            tot = partial.reshape(ns, mb, d + 1).sum(axis=0)
            sums[lo:hi] = tot[:, :d]
            weight[lo:hi] = tot[:, d]
            count[lo:hi] = pcount.reshape(ns, mb).astype(count.dtype).sum(axis=0)

        self._batched(m, per_seed, 0, run, "partial_sums")
        if W:  # the weights were divided by 2**wexp (exact): scale back
            sums = xp.ldexp(sums, np.int32(wexp)).astype(dtype, copy=False)
            weight = xp.ldexp(weight, np.int32(wexp)).astype(dtype, copy=False)
            count = xp.ldexp(count, np.int32(wexp))
        return PartialSums(sums, weight, count)


def make_cupy_backend(**options: Any) -> CudaBackend:
    """``backend="cupy"``: the CUDA backend on the current device via CuPy.

    Options ``stream`` (a ``cupy.cuda.Stream`` or raw handle) go to
    :class:`~gpumeanshift.backends.cuda.runtime.CupyRuntime`; the rest to
    :class:`CudaBackend`. Raises RuntimeError when CuPy or a device is missing.
    """
    stream = options.pop("stream", None)
    return CudaBackend(_rt.CupyRuntime(stream=stream), **options)
