"""Seeding: where the climbs start."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._validation import check_array, check_int, check_real, check_sample_weight, to_numpy
from ._spatial import col_max, col_min


def get_bin_seeds(X, bin_size, min_bin_freq=1, *, sample_weight=None):
    """Seeds at the centres of the occupied cells of a grid of side ``bin_size``.

    The same rule as :func:`sklearn.cluster.get_bin_seeds`: each point is
    binned by ``round(x / bin_size)`` (round half to even), cells with at least
    ``min_bin_freq`` points become seeds at ``cell * bin_size``, in order of
    first occurrence. Unlike scikit-learn, the seeds keep the input's dtype
    (scikit-learn rounds them through float32).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Input points.
    bin_size : float
        Side of the grid cells; usually the bandwidth. 0 returns X unchanged.
    min_bin_freq : int, default=1
        Cells with fewer points give no seed (with ``sample_weight``: cells
        whose points weigh less in total).
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each point, as if repeated that many times: rows of weight
        0 occupy no cell, and the fallback to the points themselves happens
        when there would be as many seeds as the total weight.

    Returns
    -------
    bin_seeds : ndarray of shape (n_seeds, n_features)
        The seeds. When binning would give as many seeds as points, X itself
        is returned with a warning, as scikit-learn does.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import get_bin_seeds
    >>> X = np.array([[0.1, 0.0], [0.2, 0.1], [2.9, 3.1], [3.0, 3.0]])
    >>> get_bin_seeds(X, bin_size=1.0)
    array([[0., 0.],
           [3., 3.]])
    """
    X = check_array(X)
    bin_size = check_real(bin_size, "bin_size", low=0.0)
    min_bin_freq = check_int(min_bin_freq, "min_bin_freq", low=1)
    w = check_sample_weight(sample_weight, len(X))
    points = X if w is None or (w > 0).all() else X[w > 0]
    if bin_size == 0:
        return points
    binned = np.round(points / bin_size)
    if w is None:
        first, counts = _unique_rows(binned)
        total = len(X)
    else:
        first, counts = _unique_rows(binned, w[w > 0])
        total = math.fsum(w)
    seeds = _cells_to_seeds(binned[first], first, counts, total, bin_size, min_bin_freq,
                            X.dtype, stacklevel=2)
    return points if seeds is None else seeds


def device_bin_seeds(X, bin_size, min_bin_freq, backend, *, sample_weight=None):
    """:func:`get_bin_seeds` of validated device data, on the device: the
    same seeds, bit for bit, in the same order (a device array), or X itself.

    ``backend`` is the device backend of the fit (its runtime's sorts; its
    :meth:`~gpumeanshift.backends.cuda.backend.CudaBackend.segment_sums` add
    each cell's weights in row order, as ``np.bincount`` does on the host).
    The rows are put in lexicographic order of their cells (row index last,
    so each run of equal cells starts at its first occurrence); runs become
    cells with their counts. What crosses: a few scalars (the number of
    cells and of seeds; with weights their total), not the data.
    ``sample_weight`` (device, float64, validated) holds X's weights, all
    positive.
    """
    xp = backend.runtime.xp
    w = sample_weight
    n = X.shape[0]
    if bin_size == 0:
        return X
    binned = xp.round(X / X.dtype.type(bin_size))  # in X's dtype, as on the host
    keys64 = binned.astype(np.float64) + 0.0  # -0.0 and 0.0: one cell
    # np.lexsort's last key is the primary one: columns 0, 1, ..., then the index
    index = xp.arange(n, dtype=np.float64)
    keys = xp.concatenate([index[None, :], keys64.T[::-1]])
    order = backend._sort("lexsort", "bin seeding", keys)
    rows = keys64[order]
    new = (rows != xp.roll(rows, 1, axis=0)).any(axis=1)
    new[0] = True
    starts = xp.flatnonzero(new)  # the runs of equal cells
    first = order[starts]  # each cell's first row (the smallest index of its run)
    if w is None:
        counts = xp.diff(starts, append=n)
    else:
        counts = backend.segment_sums(w[order], starts)
    by_first = xp.argsort(first)  # distinct values: any sort is stable
    keep = counts[by_first] >= min_bin_freq
    cells = binned[first[by_first][keep]]
    if _as_many_as_points(cells.shape[0], n, w, xp):
        warnings.warn(
            f"Binning data failed with provided bin_size={bin_size:f}, "
            "using data points as seeds.",
            stacklevel=2,
        )
        return X
    return (cells * X.dtype.type(bin_size)).astype(X.dtype, copy=False)


def _as_many_as_points(n_seeds, n, w, xp):
    """Whether ``n_seeds`` equals the number of points: ``n``, or with
    weights ``math.fsum(w)`` (as on the host), decided on the device where
    the device's sum cannot be that far from the exact one."""
    if w is None:
        return n_seeds == n
    total = float(w.sum())
    if total <= 2.0**53 and bool((w == xp.floor(w)).all()):
        return n_seeds == total  # integer partial sums: exact in any order
    # |total - exact| <= (n - 1) eps exact for weights >= 0, in any order
    if abs(total - n_seeds) > 4.0 * n * np.finfo(np.float64).eps * total:
        return False
    # fractional weights summing to within rounding of n_seeds: the exact test
    return n_seeds == math.fsum(to_numpy(w))


def _cells_to_seeds(cells, first, counts, n_points, bin_size, min_bin_freq, dtype, stacklevel):
    """Seeds from the occupied cells (their integer coordinates, the first row
    in each and its count), in order of first occurrence; None, with
    scikit-learn's warning, when there would be as many seeds as points."""
    order = np.argsort(first, kind="stable")
    bin_seeds = cells[order][counts[order] >= min_bin_freq]
    if len(bin_seeds) == n_points:
        warnings.warn(
            f"Binning data failed with provided bin_size={bin_size:f}, "
            "using data points as seeds.",
            stacklevel=stacklevel + 1,
        )
        return None
    return (bin_seeds * dtype.type(bin_size)).astype(dtype, copy=False)


def _unique_rows(binned, weights=None):
    """First index and count of each distinct row of ``binned`` (integral
    values); with ``weights``, the summed weight of its rows instead of the count.

    When the occupied box of cells has fewer than 2**62 cells, each row is
    encoded as one int64 (mixed radix over the box) and the rows are made
    unique in one 1-D sort, several times faster than ``np.unique(axis=0)``.
    Rows equal as numbers are one cell (-0.0 and 0.0 alike), as in
    scikit-learn, which counts cells in a dict keyed by tuples of floats.
    """
    lo = col_min(binned)
    span = col_max(binned) - lo + 1.0
    if (np.isfinite(span).all() and np.prod(span) < 2.0**62
            and np.abs(binned).max(initial=0.0) < 2.0**52):
        strides = np.cumprod(np.concatenate([[1.0], span[:0:-1]]))[::-1].astype(np.int64)
        key = (binned - lo).astype(np.int64) @ strides
        _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                              return_counts=True)
        return first, _cell_totals(counts, inverse, weights)
    # Huge boxes: rows as opaque records. Normalise -0.0 first so that it
    # shares a cell with 0.0.
    rows = np.ascontiguousarray(binned + 0.0)
    _, first, inverse, counts = np.unique(rows, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    return first, _cell_totals(counts, inverse, weights)


def _cell_totals(counts, inverse, weights):
    if weights is None:
        return counts
    return np.bincount(inverse.ravel(), weights=weights, minlength=len(counts))
