"""The CUDA backend's queries: one thread per query against all the data
(nearest center, counts within a radius, k-th neighbour distances, kernel
sums and densities), batched, with the scalings that keep their squares in
the dtype's normal range."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import runtime as _rt
from ..._spatial import SAFE_ABS, midrange, pow2_at_least
from ..base import KERNELS


class _Queries:
    """Mixed into :class:`~.backend.CudaBackend` (uses its runtime, batching
    and weights helpers)."""

    def _per_query(self, base, X, Q, extra_args, out_dtype, dim_kernel=None, what="",
                   wt=None):
        """Launch a one-thread-per-query kernel over Q against X, batched;
        its weighted instantiation over rows ``[x, w]`` when ``wt`` is given."""
        rt = self.runtime
        n, d = X.shape
        m = Q.shape[0]
        dtype = X.dtype
        W = wt is not None
        tile = self._tile(d + W, dtype.itemsize)
        name = _rt.kernel_name(base, dtype, _rt.kernel_dim(d, query=True, weighted=W),
                               dim_kernel, W)
        out = self._alloc((m,), out_dtype, what)
        if m == 0 or n == 0:
            out[...] = 0  # no data: nothing within reach, zero density
            return out, tile
        if W:
            X = self._with_weights(X, wt, what)

        def run(lo, hi):
            res = rt.empty((hi - lo,), out_dtype)
            Qb = Q[lo:hi]
            rt.launch(name, (self._grid(hi - lo),), (_rt.BLOCK,),
                      (X, np.int32(n), Qb, np.int32(hi - lo), np.int32(d), np.int32(tile),
                       *extra_args, res), tile * (d + W) * dtype.itemsize)
            out[lo:hi] = res

        self._batched(m, np.dtype(out_dtype).itemsize, 0, run, what)
        return out, tile

    def _unit_scaled(self, X, Q):
        """(X, Q, unit): both divided by a power of two ``unit`` (exact) when their
        coordinates' squares would over- or underflow the dtype (|x| past
        ``SAFE_ABS`` or below its inverse), else unchanged with ``unit = 1``.
        Distances computed on the result are in units of ``unit``."""
        xp = self.runtime.xp
        top = max(float(xp.abs(X).max()) if X.size else 0.0,
                  float(xp.abs(Q).max()) if Q.size else 0.0)
        safe = SAFE_ABS[np.dtype(X.dtype)]
        if not (top > safe or 0.0 < top < 1.0 / safe):
            return X, Q, 1.0
        unit = pow2_at_least(top)
        inv = 1.0 / unit  # in float64: 1/unit may pass float32's range
        return ((X.astype(np.float64) * inv).astype(X.dtype),
                (Q.astype(np.float64) * inv).astype(X.dtype), unit)

    def _radius_scaled(self, X, Q, radius: float, unit: float):
        """(X, Q, unit) for a test ``|x - q| <= radius`` whose squares would
        fall below the dtype's normal range, where the GPU flushes them to
        zero (float32 under ``-ftz=true``): the points are centred and divided
        by a power of two near the radius (in float64, rounded once), so that
        the radius is about 1 in the new units. Left as they are when the
        radius is not that small, or when the centred coordinates would then
        pass ``SAFE_ABS`` (data spanning more than ~2^60 radii)."""
        dt = np.dtype(X.dtype)
        r = radius / unit
        if not (0.0 < r and r * r < 2.0**20 * float(np.finfo(dt).tiny)):
            return X, Q, unit
        xp = self.runtime.xp
        both = xp.concatenate([X, Q]).astype(np.float64)
        center = midrange(both, xp).astype(np.float64)
        scale = pow2_at_least(r)
        top = float(xp.abs(both - center).max()) / scale if both.size else 0.0
        if not top <= SAFE_ABS[dt]:
            return X, Q, unit
        inv = 1.0 / scale
        return (((X.astype(np.float64) - center) * inv).astype(dt),
                ((Q.astype(np.float64) - center) * inv).astype(dt), unit * scale)

    def nearest(self, X, centers):
        rt = self.runtime
        with self._ctx():
            X, C = self._inputs(X, centers)
            X, C, unit = self._unit_scaled(X, C)
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
            if unit != 1.0:
                with np.errstate(over="ignore"):  # past the dtype: inf, as on NumPy
                    dist[...] = dist.astype(np.float64) * unit
            return labels, dist

    def count_within(self, X, queries, radius, *, weights=None):
        """Rows of X within ``radius`` of each query (int64); with
        ``weights``, their summed weight (float64, summed in double)."""
        with self._ctx():
            X, Q = self._inputs(X, queries)
            X, wt, wexp = self._weighted(X, weights)
            X, Q, unit = self._unit_scaled(X, Q)
            X, Q, unit = self._radius_scaled(X, Q, float(radius), unit)
            r2 = _squared_radius(float(radius) / unit, X.dtype)
            out, _ = self._per_query("count_within", X, Q, (r2,),
                                     np.int64 if wt is None else np.float64,
                                     what="count_within", wt=wt)
            if wt is not None:
                out[...] = self.runtime.xp.ldexp(out, wexp)
            return out

    def kth_neighbor_distance(self, X, queries, k, *, weights=None):
        """Distance to the k-th nearest row; with ``weights``, the smallest r
        whose rows within weigh at least ``k`` (a float in (0, total weight]).

        Weighted, the kernel's radix search counts summed weights (double,
        row order): exact for integer weights, and otherwise decided by those
        sums, whose total caps ``k`` (a ``k`` equal to the total weight may
        exceed the rounded sum by an ulp: it then gives the farthest row).
        That total is the same sequential sum, computed on the device
        (:meth:`segment_sums`); one more scalar crosses.
        """
        with self._ctx():
            X, Q = self._inputs(X, queries)
            if weights is None:
                k = int(k)
                if not 1 <= k <= X.shape[0]:
                    raise ValueError(f"k must be in [1, {X.shape[0]}], got {k}")
                karg = np.int32(k)
            else:
                total = float(self.runtime.xp.asarray(weights, dtype=np.float64).sum())
                k = float(k)
                if not 0.0 < k <= total:
                    raise ValueError(f"k must be in (0, {total:g}] (the total weight), got {k}")
            X, wt, wexp = self._weighted(X, weights)
            if wt is not None:
                # the kernel's own sum over all rows, in its order (sequential)
                seq = float(self.segment_sums(wt.astype(np.float64))[0])
                karg = np.float64(min(np.ldexp(k, -wexp), seq))
            X, Q, unit = self._unit_scaled(X, Q)
            out, _ = self._per_query("kth_neighbor", X, Q, (karg,), X.dtype,
                                     what="kth_neighbor_distance", wt=wt)
            if unit != 1.0:
                with np.errstate(over="ignore"):
                    out[...] = out.astype(np.float64) * unit
            return out

    def segment_sums(self, values, starts=None):
        """Sums of runs of ``values`` (1-D, float64), each added sequentially
        in order from 0.0 in double, as a host loop (``np.bincount``,
        ``np.cumsum``) adds them: run ``s`` is ``values[starts[s]:starts[s +
        1]]``, the last ending at the end; ``starts=None`` is one run of all
        (its sum is that of ``np.cumsum(values)[-1]``, bit for bit).

        Kernel ``ms_segment_sum`` (kernels/neighbors.cu): one thread per run.
        Returns a float64 device array of one sum per run.
        """
        rt = self.runtime
        with self._ctx():
            v = rt.asarray(values, dtype=np.float64)
            if v.ndim != 1:
                raise ValueError(f"values must be 1-D, got shape {v.shape}")
            n = v.shape[0]
            if n > 2**31 - 1:  # the kernel indexes rows as int
                raise ValueError(f"segment_sums: {n} values exceed the kernel's 32-bit index")
            st = rt.zeros((1,), np.int32) if starts is None else \
                rt.asarray(starts, dtype=np.int32)
            m = st.shape[0]
            out = self._alloc((m,), np.float64, "segment_sums")
            if m:
                rt.launch("ms_segment_sum", (self._grid(m),), (_rt.BLOCK,),
                          (v, np.int32(n), st, np.int32(m), out), 0)
            return out

    def kernel_sum(self, X, queries, *, bandwidth, kernel, weights=None):
        """Sum of w K(|q - x| / bandwidth) per query, in X's dtype (w = 1
        without ``weights``)."""
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        with self._ctx():
            X, Q = self._inputs(X, queries)
            X, wt, wexp = self._weighted(X, weights)
            X, Q, unit = self._unit_scaled(X, Q)
            with np.errstate(over="ignore"):  # clamped below
                inv_h2 = 1.0 / (float(bandwidth) / unit) ** 2 if float(bandwidth) / unit > 1e-154 \
                    else float("inf")
            # clamped: inf would give 0 * inf = NaN at distance 0 (float32, tiny h)
            inv_h2 = X.dtype.type(min(inv_h2, float(np.finfo(X.dtype).max)))
            out, _ = self._per_query("kernel_sum", X, Q, (inv_h2,), X.dtype, dim_kernel=kernel,
                                     what="kernel_sum", wt=wt)
            if wt is not None:
                with np.errstate(over="ignore"):  # past the dtype: inf
                    out[...] = self.runtime.xp.ldexp(out.astype(np.float64), wexp)
            return out

    def log_kernel_density(self, X, queries, *, bandwidth, kernel, weights=None):
        """log of sum_j K((q - x_j) / bandwidth) per query, float64 (see
        :meth:`gpumeanshift.backends.base.Backend.log_kernel_density`).

        Kernel ``log_kernel_density`` (kernels/density.cu): one thread per
        query, an online log-sum-exp for the Gaussian (data and queries
        centered and scaled by the bandwidth first), the log of an exact
        count for flat (raw coordinates, boundary as in :meth:`count_within`).
        Exponents are computed in the data's dtype: for float32, a squared
        distance beyond the float32 range (about 1.8e19 bandwidths) saturates
        to a finite -1.7e38 instead of its true, more negative value.
        With ``weights`` the Gaussian's terms are multiplied by the rows'
        weights inside the log-sum-exp (rows of weight 0 drop out), flat sums
        the weights (-inf where none is within reach).
        """
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        with self._ctx():
            X, Q = self._inputs(X, queries)
            X, wt, wexp = self._weighted(X, weights)
            dtype = X.dtype
            if X.shape[0] == 0:  # an empty sum: log(0)
                out = self._alloc((Q.shape[0],), np.float64, "log_kernel_density")
                out[...] = -np.inf
                return out
            if kernel == "flat":
                args = (_squared_radius(bandwidth, dtype),)
            else:
                center = X.mean(axis=0, dtype=np.float64)
                inv_h = 1.0 / float(bandwidth)
                X = ((X - center) * inv_h).astype(dtype)
                Q = ((Q - center) * inv_h).astype(dtype)
                args = (dtype.type(1),)  # unused by the Gaussian
            out, _ = self._per_query("log_kernel_density", X, Q, args, np.float64,
                                     dim_kernel=kernel, what="log_kernel_density", wt=wt)
            if wt is not None:
                out += wexp * float(np.log(2.0))  # -inf stays -inf
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

