"""The grid's cell lists on the device, for ``ms_shift_grid``: the data put
in cell order with each cell's first row, and the seeds' cell order. A
mixin of :class:`~gpumeanshift.backends.cuda.backend.CudaBackend` (it uses
the backend's ``runtime`` and ``_sort``)."""

from __future__ import annotations

import numpy as np

from . import runtime as _rt
from ..._spatial import GAUSSIAN_GRID_RADIUS, GRID_MAX_DIM, SAFE_ABS, gaussian_proof_radius


class _Cells:
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
