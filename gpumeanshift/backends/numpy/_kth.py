"""Exact k-th neighbour distances in low dimension without an n x m pass.

The data are split into small boxes (a k-d tree's leaves of a few points,
each box the bounding box of its points); the queries into compact tiles
(the leaves of a k-d tree of the queries), grouped into larger tiles. For a
tile and a box, every pair's squared distance lies between the boxes' gap
and their far-corner distance. Counting box points by those two bounds
gives, for the whole tile, a band ``[L, U]`` that holds each of its queries'
k-th squared distance: boxes entirely below ``L`` are counted wholesale,
boxes entirely above ``U`` are dropped. The large tiles narrow the boxes to
their band, the small ones narrow that again, and only the points of a small
tile's band (a thin ring, about two boxes and a tile wide) get distances,
computed by differences. The k-th distance is then a per-row selection of
one rank among those few candidates.

Exactness: the bounds use the same floating-point operations, in the same
order, as the squared distances by differences (per axis a difference, its
square, then a sum over the axes in order). Rounding is monotone, so the
computed gap never exceeds a pair's computed difference and the far corner
never falls below it: ``near <= d2 <= far`` holds for the computed values
themselves, and the k-th smallest computed ``d2`` over the candidates is the
k-th smallest over all points.
"""

from __future__ import annotations

import numpy as np

from ..._spatial import SAFE_ABS

MAX_DIM = 3  # beyond it the boxes get too many neighbours to pay off
_BINS = 1024  # histogram bins of the bounds, per tile
_DATA_LEAF = 4  # points per data box (at most)
_QUERY_LEAF = 32  # queries per small tile (at most)
_GROUP = 64  # small tiles per large tile (the unit of work of a thread), at most
_FAN = 8  # children per tile on the way down
#: Squared distances below this may have lost bits to underflow in their
#: squares; nonzero coordinates of at least ``_NO_UNDERFLOW`` in magnitude
#: differ by at least ulp(2**-400) = 2**-452, whose square is normal.
UNDERFLOW_RISK = 2.0**-900
_NO_UNDERFLOW = 2.0**-400


def applies(X, Q) -> bool:
    """Whether the boxes apply: low dimension, and coordinates whose squared
    differences cannot overflow (finite, at most ``SAFE_ABS``)."""
    d = X.shape[1]
    if not 1 <= d <= MAX_DIM or len(Q) == 0:
        return False
    top = max(float(np.abs(X).max()), float(np.abs(Q).max()))
    return top <= SAFE_ABS[np.dtype(np.float64)]  # False for inf and NaN too


def may_underflow(X, Q) -> bool:
    """Whether some nonzero coordinate is small enough for the square of a
    difference to underflow."""
    return any(bool(((A != 0) & (np.abs(A) < _NO_UNDERFLOW)).any()) for A in (X, Q))


def kd_leaves(P, leaf: int, levels=None):
    """Order of the rows of ``P`` and the starts of k-d tree leaves of at
    most ``leaf`` rows: each level splits every larger leaf at its median
    along its widest axis. Each level's starts are appended to ``levels``
    (a list): a level's leaves are contiguous in the final order too, since
    later levels only reorder rows within a leaf."""
    m = len(P)
    order = np.arange(m)
    starts = np.zeros(1, dtype=np.int64)
    while True:
        if levels is not None:
            levels.append(starts)
        if not m or np.diff(np.r_[starts, m]).max() <= leaf:
            break
        sizes = np.diff(np.r_[starts, m])
        Ps = P[order]
        lo = np.minimum.reduceat(Ps, starts, axis=0)
        hi = np.maximum.reduceat(Ps, starts, axis=0)
        seg = np.repeat(np.arange(len(starts)), sizes)
        axis = np.argmax(hi - lo, axis=1)
        key = Ps[np.arange(m), axis[seg]]
        order = order[np.lexsort((key, seg))]
        big = sizes > leaf
        starts = np.sort(np.r_[starts, starts[big] + sizes[big] // 2])
    return order, starts


def _bounds(t_lo, t_hi, b_lo, b_hi):
    """Squared-distance bounds between tiles (rows) and boxes (columns),
    by the same operations as :func:`_sqdist` (see the module docstring)."""
    near = far = None
    for j in range(b_lo.shape[1]):
        a0, a1 = t_lo[:, j, None], t_hi[:, j, None]
        c0, c1 = b_lo[None, :, j], b_hi[None, :, j]
        gap = np.maximum(c0 - a1, a0 - c1)
        np.maximum(gap, 0.0, out=gap)
        gap *= gap
        span = np.maximum(a1 - c0, c1 - a0)
        span *= span
        if near is None:
            near, far = gap, span
        else:
            near += gap
            far += span
    return near, far


def _sqdist(q, P):
    d2 = np.subtract.outer(q[:, 0], P[:, 0])
    d2 *= d2
    for j in range(1, q.shape[1]):
        diff = np.subtract.outer(q[:, j], P[:, j])
        diff *= diff
        d2 += diff
    return d2


def _bins(v, lo, scale):
    """Histogram bin of each entry: monotone in ``v`` within a row."""
    b = v - lo[:, None]
    b *= scale[:, None]
    np.clip(b, 0, _BINS - 1, out=b)
    return b.astype(np.int64)


def _band(near, far, counts, k: int):
    """Per row, ``L`` and ``U`` with ``L <= r <= U`` for the k-th smallest
    squared distance ``r`` of any query of the row's tile.

    ``L`` is below the smallest ``t`` with ``sum(counts[near <= t]) >= k``
    (at least k points lie in boxes whose gap is at most r), ``U`` above the
    smallest ``t`` with ``sum(counts[far <= t]) >= k`` (at least k points
    lie within it). Both come from a histogram, yet are values of the bounds
    themselves: only the monotonicity of the binning matters, not its
    rounding.
    """
    B, C = near.shape
    lo = near.min(axis=1)
    span = far.max(axis=1) - lo
    scale = np.divide(_BINS, span, out=np.zeros(B), where=span > 0)
    # near's rows then far's, binned and counted in one pass
    both = np.concatenate([near, far])
    b = _bins(both, np.r_[lo, lo], np.r_[scale, scale])
    b += (np.arange(2 * B) * _BINS)[:, None]
    w = np.broadcast_to(counts, (2 * B, C)).ravel()
    hist = np.bincount(b.ravel(), weights=w, minlength=2 * B * _BINS)
    first = np.argmax(np.cumsum(hist.reshape(2 * B, _BINS), axis=1) >= k, axis=1)
    first += np.arange(2 * B) * _BINS
    L = np.where(b[:B] < first[:B, None], near, 0.0).max(axis=1)
    U = np.where(b[B:] <= first[B:, None], far, 0.0).max(axis=1)
    return L, U


def first_reaching_weight(w, k):
    """Per row of ``w`` (weights in order of distance), the first position
    where the cumulative weight reaches ``k``; the last position where
    rounding leaves the total a hair short of it."""
    cum = np.cumsum(w, axis=1)
    return np.minimum(np.count_nonzero(cum < k, axis=1), w.shape[1] - 1)


def _kth_weighted(d2, w, kk):
    """Per row of ``d2``, the smallest entry at which the weights ``w`` of
    the entries up to it reach ``kk``."""
    order = np.argsort(d2, axis=1)
    pick = first_reaching_weight(np.take(w, order), kk)
    rows = np.arange(len(d2))
    return d2[rows, order[rows, pick]]


class KthIndex:
    """The data's boxes, ready for :meth:`group`.

    With ``weights`` (all > 0) a box counts its points' summed weight and
    the k-th distance is where the nearest points' weight reaches k.
    """

    def __init__(self, X, weights=None):
        self.levels = []
        order, starts = kd_leaves(X, _DATA_LEAF, self.levels)
        self.order = order
        self.points = X[order]
        self.starts = starts
        self.weights = None if weights is None else np.asarray(weights, np.float64)[order]
        self.sizes = np.diff(np.r_[starts, len(X)])  # points per box
        self.counts = self.sizes if weights is None else np.add.reduceat(self.weights, starts)
        self.lo = np.minimum.reduceat(self.points, starts, axis=0)
        self.hi = np.maximum.reduceat(self.points, starts, axis=0)

    def _gather(self, boxes, what=None):
        lens = self.sizes[boxes]
        shift = np.repeat(self.starts[boxes] - (np.cumsum(lens) - lens), lens)
        at = shift + np.arange(int(lens.sum()))
        return (self.points if what is None else what)[at]

    def tile(self, Q, leaf_starts, k: int, max_elements: int):
        """k-th smallest squared distance from every row of ``Q``, a tile
        whose small tiles start at ``leaf_starts`` (the first is 0)."""
        out = np.empty(len(Q))
        everything = np.arange(len(self.counts))
        self._descend(Q, np.r_[leaf_starts, len(Q)], everything, self.counts, 0, k,
                      max_elements, out)
        return out

    def _descend(self, Q, edges, cand, counts, below, k, max_elements, out):
        """Narrow the candidate boxes ``cand`` (``below`` points known nearer)
        for the children of the tile whose leaves have the ``edges``, down to
        the leaves, where the points are selected."""
        n_leaves = len(edges) - 1
        if n_leaves == 1:  # a tile of one leaf: no band yet
            self._select(Q[edges[0]:edges[1]], cand, k - below, 0.0, 0.0, max_elements,
                         out[edges[0]:edges[1]])
            return
        per = -(-n_leaves // _FAN)
        cuts = edges[::per]
        if cuts[-1] != edges[-1]:
            cuts = np.r_[cuts, edges[-1]]
        starts = cuts[:-1]
        rows = Q[edges[0]:edges[-1]]
        t_lo = np.minimum.reduceat(rows, starts - edges[0], axis=0)
        t_hi = np.maximum.reduceat(rows, starts - edges[0], axis=0)
        near, far = _bounds(t_lo, t_hi, self.lo[cand], self.hi[cand])
        L, U = _band(near, far, counts, k - below)
        keep = (near <= U[:, None]) & (far >= L[:, None])
        nearer = np.where(far < L[:, None], counts, 0).sum(axis=1)
        for i in range(len(starts)):
            child = edges[i * per:(i + 1) * per + 1]
            if len(child) == 2:  # a leaf: select among its band's points
                self._select(Q[child[0]:child[1]], cand[keep[i]], k - below - nearer[i].item(),
                             L[i], U[i], max_elements, out[child[0]:child[1]])
            else:
                self._descend(Q, child, cand[keep[i]], counts[keep[i]],
                              below + nearer[i].item(), k, max_elements, out)

    def _select(self, q, boxes, kk, lo, hi, max_elements, out):
        P = self._gather(boxes)
        step = max(1, max_elements // max(1, len(P)))
        if self.weights is not None:
            wP = self._gather(boxes, self.weights)
            for r0 in range(0, len(q), step):
                out[r0:r0 + step] = _kth_weighted(_sqdist(q[r0:r0 + step], P), wP, kk)
            return
        for r0 in range(0, len(q), step):
            out[r0:r0 + step] = _kth_in_band(_sqdist(q[r0:r0 + step], P), kk, lo, hi)


_KEYS = 65536


def _kth_in_band(d2, kk, lo, hi):
    """The kk-th smallest entry of each row of ``d2``, known to lie in
    ``[lo, hi]``.

    The rows are partitioned on 16-bit keys (0 below ``lo``, 65535 above
    ``hi``, the band in between: about 2.5x faster than on the float64
    values), then the entries sharing the k-th key are sorted. The keys are
    a monotone function of the values, so the k-th key is the k-th value's,
    and the entries with smaller keys are exactly the smaller values.
    """
    scale = (_KEYS - 3) / (hi - lo) if hi > lo else 0.0
    if not 0.0 < scale < np.inf:
        return np.partition(d2, kk - 1, axis=1)[:, kk - 1]
    key = d2 - lo
    key *= scale
    key += 1.0
    np.clip(key, 0.0, _KEYS - 1, out=key)
    key = key.astype(np.uint16)
    kth = np.sort(key, axis=1, kind="stable")[:, kk - 1][:, None]  # a radix sort
    below = np.count_nonzero(key < kth, axis=1)
    tie = key == kth
    count = np.count_nonzero(tie, axis=1)
    vals = d2[tie]  # row by row
    row = np.repeat(np.arange(len(d2)), count)
    order = np.lexsort((vals, row))
    return vals[order[np.cumsum(count) - count + (kk - 1 - below)]]


def query_tiles(Q, n_threads: int = 1, index=None):
    """Order of the queries and their tiles ``(a, b, leaf_starts)``: rows
    ``[a, b)`` of the ordered queries, small tiles' starts relative to ``a``.
    At least four tiles per thread where there are enough queries. With the
    ``index`` of the same points, its tree gives the tiles (no second tree).
    """
    m = len(Q)
    if index is None:
        order, starts = kd_leaves(Q, _QUERY_LEAF)
    else:
        order = index.order
        starts = next(s for s in index.levels if np.diff(np.r_[s, m]).max() <= _QUERY_LEAF)
    group = max(1, min(_GROUP, len(starts) // (4 * max(1, n_threads))))
    tiles = []
    for g in range(0, len(starts), group):
        s = starts[g:g + group]
        b = int(starts[g + group]) if g + group < len(starts) else m
        tiles.append((int(s[0]), b, s - s[0]))
    return order, tiles
