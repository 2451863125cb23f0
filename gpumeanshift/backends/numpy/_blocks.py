"""The NumPy backend's block primitives: products without the GIL, rows
gathered by ``np.take``, the augmented rows that make a squared distance one
matrix product, weighted rows ``[w x, w]`` and exact sums in index order."""

from __future__ import annotations

import numpy as np


def _rows(A, sel):
    """``A[sel]`` for a slice (a view) or an index array: ``np.take`` along
    axis 0, several times faster than fancy indexing for narrow rows."""
    return A[sel] if isinstance(sel, slice) else np.take(A, sel, axis=0)


def _product(a, b, out=None):
    """``a @ b`` for 2-D arrays, without holding the GIL.

    np.matmul keeps the GIL when its output has fewer than 500 elements (a
    few seeds' ``(t, d + 1)`` sums), which serialised the tile threads:
    measured 0.95x one thread with two for a (128, 512) @ (512, 3) product.
    np.dot releases it at any size but runs 3-8% slower than np.matmul on
    large outputs, so it takes only the small ones.
    """
    if a.shape[0] * b.shape[1] < 500:
        return np.dot(a, b, out=out)
    return np.matmul(a, b, out=out)


def _sorted_union(idx, n: int):
    """``np.sort(idx)`` for distinct indices in ``[0, n)``: a mask pass when
    they are a sizeable fraction of ``n``, else a sort."""
    if 16 * len(idx) < n:
        return np.sort(idx)
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return np.flatnonzero(mask)


def _sequential_sum(X, idx):
    """``np.add.reduce(X[idx], axis=0, dtype=np.float64)``, bit for bit.

    NumPy reduces a C-ordered block along axis 0 row after row, i.e. each
    column is summed strictly left to right (no pairwise summation), which is
    what ``np.mean`` gives scikit-learn. ``np.add.accumulate`` on each column
    makes the same additions in the same order, without paying the per-row
    inner loop of the 2-D reduction (measured 10x faster for 25,000 x 2).
    One column is contiguous: NumPy sums it pairwise, and so does this.
    """
    if X.shape[1] == 1:
        return np.add.reduce(np.take(X[:, 0], idx), dtype=np.float64, keepdims=True)
    return np.array([np.add.accumulate(np.take(X[:, j], idx), dtype=np.float64)[-1]
                     for j in range(X.shape[1])])


#: Widest float32 tile, in bandwidths, stepped in one expansion outside the
#: global frame: its rounding error, about eps * (span / 2 + reach)^2, then
#: stays far below the flat kernel's boundary (~1e-5 of h^2). Float64 keeps
#: its tiles whole (the same error is 5e-11 at a span of 1000 bandwidths).
_MAX_TILE_SPAN = 16.0


def _sequential_mean(X, idx):
    """``np.mean(X[idx], axis=0)`` in float64 as scikit-learn computes it, bit for bit,
    where that sum is finite; past float64's range (data near its maximum) the
    rows are summed in units of a power of two >= their count, so the mean is
    finite and correct to rounding instead of inf."""
    with np.errstate(over="ignore"):
        total = _sequential_sum(X, idx)
    if np.isfinite(total).all():
        return total / idx.size
    unit = float(2 ** int(np.ceil(np.log2(idx.size))))
    part = np.take(X, idx, axis=0).astype(np.float64) / unit
    return _sequential_sum(part, np.arange(idx.size)) / idx.size * unit


def _weighted_data(X, weights):
    """``X`` and the ``weights=`` of a backend call (float64, or None), less
    the rows of weight 0: they add nothing to any sum, and without them the
    arithmetic (the centring, the tiles) is that of the data repeated."""
    if weights is None:
        return X, None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(X),):
        raise ValueError(f"weights has shape {w.shape}, expected ({len(X)},)")
    keep = w > 0
    if not keep.all():
        X, w = np.ascontiguousarray(X[keep]), w[keep]
    return X, w


def _weight_units(w) -> float:
    """The total weight in units of the lightest positive weight."""
    pos = w[w > 0]
    return float(pos.sum() / pos.min()) if pos.size else 0.0


def _weighted_rows(P, w, dtype):
    """Rows ``[w p, w]``: one product of a block of kernel values with them
    gives the weighted sums and the weight total of each seed."""
    n, d = P.shape
    out = np.empty((n, d + 1), dtype)
    np.multiply(P, w[:, None].astype(dtype), out=out[:, :d])
    out[:, d] = w
    return out


def _weighted_mean(X, w, idx):
    """``sum_i w_i x_i / sum_i w_i`` over the rows ``idx`` in float64 (rows
    scaled by a power of two first where the sums would overflow)."""
    rows = np.take(X, idx, axis=0).astype(np.float64)
    total_w = float(w.sum())
    with np.errstate(over="ignore", invalid="ignore"):
        total = w @ rows
    if np.isfinite(total).all():
        return total / total_w
    unit = float(2 ** int(np.ceil(np.log2(max(total_w / float(w[w > 0].min()), 1.0)))))
    return (w @ (rows / unit)) / total_w * unit


def _augment_points(P, dtype, mid=None):
    """Rows ``[p, 1, -|p|^2/2]`` of ``p = P - mid`` (``P`` when ``mid`` is
    None): against :func:`_augment_queries` rows one product gives
    ``-|q - p|^2 / 2``, and the first ``d + 1`` columns give the weighted
    sums and the weight total."""
    n, d = P.shape
    out = np.empty((n, d + 2), dtype)
    p = out[:, :d]
    if mid is None:
        p[...] = P
    else:
        np.subtract(P, mid, out=p)
    out[:, d] = 1.0
    out[:, d + 1] = np.einsum("ij,ij->i", p, p)
    out[:, d + 1] *= -0.5
    return out


def _augment_points_t(P, dtype, mid):
    """:func:`_augment_points` of ``P - mid``, transposed: a C-ordered
    ``(d + 2, n)`` array. As the right operand of the distance product it
    runs ~1.2x faster than the transposed view of the rows (OpenBLAS, d + 2
    = 4, 256 x 256-512 blocks, float64), the same value to rounding."""
    n, d = P.shape
    out = np.empty((d + 2, n), dtype)
    p = out[:d]
    np.subtract(P.T, np.asarray(mid, dtype)[:, None], out=p)
    out[d] = 1.0
    np.einsum("ij,ij->j", p, p, out=out[d + 1])
    out[d + 1] *= -0.5
    return out


def _augment_queries(Q, dtype):
    """Rows ``[q, -|q|^2/2, 1]`` (see :func:`_augment_points`)."""
    t, d = Q.shape
    out = np.empty((t, d + 2), dtype)
    out[:, :d] = Q
    out[:, d] = np.einsum("ij,ij->i", Q, Q)
    out[:, d] *= -0.5
    out[:, d + 1] = 1.0
    return out


def _absmax(A) -> float:
    return float(np.abs(A).max()) if A.size else 0.0


def _neg_half_sqdist(qc, xc):
    """-|q - x|^2 / 2 for every pair, by differences (the overflow-safe
    path for extreme coordinates): a distance past the dtype's range gives
    -inf, i.e. weight 0, never NaN."""
    e = np.zeros((len(qc), len(xc)), dtype=qc.dtype)
    with np.errstate(over="ignore"):
        for k in range(qc.shape[1]):
            diff = np.subtract.outer(qc[:, k], xc[:, k])
            e -= diff * diff
        e *= 0.5
    return e


class _BlockUnits:
    """What :meth:`NumpyBackend._sqdist_blocks` tells its callback about ``d2``."""

    __slots__ = ("unit", "err")

    def __init__(self, unit: float, err: float):
        self.unit = unit  # d2 is in units of unit**2
        self.err = err  # bound on the rounding error of each d2 entry


def _squared_ratio(length: float, unit: float) -> float:
    """(length / unit)**2 in float64; inf past the range, 0 below it."""
    with np.errstate(over="ignore", under="ignore"):
        r = np.float64(length) / unit
        return float(r * r)


def _neg_half_over(d2, h2: float):
    """-d2 / (2 h2) in float64, without the 0 * inf = NaN of a tiny bandwidth
    at distance 0 (its weight is exp(0) = 1) or the 0 / 0 of h2 underflowing."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        e = np.divide(d2, -2.0 * h2, dtype=np.float64)
    e[d2 == 0] = 0.0
    return e
