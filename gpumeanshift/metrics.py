"""Cluster-quality scores: silhouette, Davies-Bouldin and Calinski-Harabasz.

The definitions and the numbers are :mod:`sklearn.metrics`' (equal within
1e-9 in float64); the memory is not: nothing of size n x n is ever built.
The data are centred first (the scores do not change under translation), so
data far from the origin keep their digits: at an offset of 1e4 scikit-learn's
Davies-Bouldin index is 3e-9 off the exact value, these scores within 1e-13
(relative).

How the work is tiled
---------------------
The points are sorted by label once, so every cluster is a contiguous run of
rows. The silhouette then takes the rows in blocks: one matrix product gives
the block's distances to all points (``|x|^2 - 2 x.y + |y|^2``, scikit-learn's
expansion, self-distances set to 0), and a segmented sum over the label runs
gives each row's total distance to every cluster; the block is then dropped.
Peak extra memory is about ``3 * block_rows * n`` floats. Davies-Bouldin and
Calinski-Harabasz need only per-cluster sums (O(n d)) and, for
Davies-Bouldin, centroid distances taken in row blocks too.

Array libraries
---------------
Every function works on the array library of ``X``: NumPy arrays on the
CPU, CuPy arrays on the GPU (the products and reductions then run there).
The library is recognised from ``sys.modules`` without importing anything.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validation import array_module, to_numpy

DEFAULT_WORKING_MEMORY = 64 * 2**20  # bytes for one block of distances


def _distance_rows(xp, A, sq, r0, r1):
    """Distances from rows ``r0:r1`` of ``A`` to every row, by scikit-learn's
    expansion in its order (-2 x.y + |x|^2 + |y|^2, clipped at 0), with
    each row's distance to itself exactly 0; ``sq`` holds |a|^2 per row."""
    D = -2.0 * (A[r0:r1] @ A.T)
    D += sq[r0:r1, None]
    D += sq[None, :]
    xp.maximum(D, 0.0, out=D)
    D[xp.arange(r1 - r0), xp.arange(r0, r1)] = 0.0
    xp.sqrt(D, out=D)
    return D


def _prepare(X, labels):
    """float64 data sorted by encoded label, with the run of each cluster.

    Returns xp, Xs (sorted, float64), ls (sorted labels 0..k-1), order (the
    permutation), counts (per cluster) and starts (first row of each run).
    """
    xp = array_module(X)
    X = xp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array for X, got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    X = X.astype(xp.float64, copy=False)
    if not bool(xp.isfinite(X).all()):
        raise ValueError("X contains NaN or infinity")
    # All three scores are translation invariant; centring keeps the expansion
    # |x|^2 - 2 x.y + |y|^2 accurate for data far from the origin.
    X = X - X.mean(axis=0)
    labels = xp.asarray(labels).ravel()
    n = X.shape[0]
    if labels.shape[0] != n:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n}, {labels.shape[0]}]"
        )
    _, encoded = xp.unique(labels, return_inverse=True)
    encoded = encoded.ravel()
    k = int(encoded.max()) + 1 if n else 0
    if not 1 < k < n:
        raise ValueError(
            f"Number of labels is {k}. Valid values are 2 to n_samples - 1 (inclusive)"
        )
    order = xp.argsort(encoded, kind="stable") if xp is np else xp.argsort(encoded)
    ls = encoded[order]
    counts = xp.bincount(ls, minlength=k)
    starts = xp.concatenate([xp.zeros(1, dtype=counts.dtype), xp.cumsum(counts)[:-1]])
    return xp, X[order], ls, order, counts, starts


def _segment_sum(xp, A, starts, counts, axis):
    """Sums of A over the runs [starts[j], starts[j] + counts[j]) along ``axis``."""
    if xp is np:
        return np.add.reduceat(A, starts, axis=axis)
    cs = xp.cumsum(A, axis=axis)
    ends = starts + counts - 1
    hi = xp.take(cs, ends, axis=axis)
    lo = xp.take(cs, xp.maximum(starts - 1, 0), axis=axis)
    shape = [1] * A.ndim
    shape[axis] = -1
    return hi - xp.where((starts > 0).reshape(shape), lo, 0)


def _block_rows(n, block_rows):
    if block_rows is None:
        return max(1, DEFAULT_WORKING_MEMORY // (8 * 3 * max(n, 1)))
    if isinstance(block_rows, bool) or not isinstance(block_rows, numbers.Integral) or block_rows < 1:
        raise ValueError(f"block_rows must be a positive integer or None, got {block_rows!r}")
    return int(block_rows)


def silhouette_samples(X, labels, *, block_rows=None):
    """Silhouette coefficient of every sample, Euclidean, without an n x n matrix.

    ``s = (b - a) / max(a, b)`` with ``a`` the mean distance to the other
    points of the sample's cluster and ``b`` the smallest mean distance to the
    points of another cluster; 0 for a sample alone in its cluster.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster label of each point; 2 to n_samples - 1 distinct values.
    block_rows : int, default=None
        Rows of distances computed at once; None fits a block of about
        64 MiB.

    Returns
    -------
    silhouette : ndarray of shape (n_samples,), float64
        Of the array library of ``X``.

    See Also
    --------
    sklearn.metrics.silhouette_samples : The same values.

    Examples
    --------
    >>> from gpumeanshift.metrics import silhouette_samples
    >>> X = [[0.0], [1.0], [10.0], [11.0], [30.0]]
    >>> silhouette_samples(X, [0, 0, 1, 1, 2]).round(4)
    array([0.9048, 0.8947, 0.8947, 0.9048, 0.    ])
    """
    xp, Xs, ls, order, counts, starts = _prepare(X, labels)
    n = Xs.shape[0]
    rows = _block_rows(n, block_rows)
    sq = (Xs * Xs).sum(axis=1)
    intra = xp.empty(n, dtype=xp.float64)
    inter = xp.empty(n, dtype=xp.float64)
    counts_f = counts.astype(xp.float64)
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        b = r1 - r0
        D = _distance_rows(xp, Xs, sq, r0, r1)
        sums = _segment_sum(xp, D, starts, counts, axis=1)  # (b, k)
        del D
        own = ls[r0:r1]
        intra[r0:r1] = sums[xp.arange(b), own]
        sums /= counts_f[None, :]
        sums[xp.arange(b), own] = xp.inf
        inter[r0:r1] = sums.min(axis=1)
    denom = counts_f[ls] - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = intra / denom
        s = (inter - a) / xp.maximum(a, inter)
    s = xp.where(denom == 0, 0.0, s)
    s = xp.nan_to_num(s)
    out = xp.empty_like(s)
    out[order] = s
    return out


def silhouette_score(X, labels, *, block_rows=None):
    """Mean silhouette coefficient over all samples (``sklearn.metrics.silhouette_score``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster labels; 2 to n_samples - 1 distinct values.
    block_rows : int, default=None
        As for :func:`silhouette_samples`.

    Returns
    -------
    score : float
        In [-1, 1]; higher is better.

    Examples
    --------
    >>> from gpumeanshift.metrics import silhouette_score
    >>> round(silhouette_score([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1]), 4)
    0.8997
    """
    return float(silhouette_samples(X, labels, block_rows=block_rows).mean())


def _centroids(xp, Xs, starts, counts):
    return _segment_sum(xp, Xs, starts, counts, axis=0) / counts[:, None].astype(xp.float64)


def davies_bouldin_score(X, labels, *, block_rows=None):
    """Davies-Bouldin index (``sklearn.metrics.davies_bouldin_score``).

    For every cluster ``i``, the largest ``(s_i + s_j) / d(c_i, c_j)`` over the
    other clusters, averaged over ``i``; ``s`` is a cluster's mean distance to
    its centroid, ``d`` the distance between centroids (coinciding centroids
    are skipped). 0 when every ``s`` or every ``d`` is (close to) 0.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster labels; 2 to n_samples - 1 distinct values.
    block_rows : int, default=None
        Centroid rows per block of centroid distances; None fits about 64 MiB.

    Returns
    -------
    score : float
        Non-negative; lower is better.

    Examples
    --------
    >>> from gpumeanshift.metrics import davies_bouldin_score
    >>> round(davies_bouldin_score([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1]), 4)
    0.1
    """
    xp, Xs, ls, _, counts, starts = _prepare(X, labels)
    centroids = _centroids(xp, Xs, starts, counts)
    diff = Xs - centroids[ls]
    dist = xp.sqrt((diff * diff).sum(axis=1))
    intra = _segment_sum(xp, dist, starts, counts, axis=0) / counts.astype(xp.float64)
    k = centroids.shape[0]
    rows = _block_rows(k, block_rows)
    csq = (centroids * centroids).sum(axis=1)
    scores = xp.empty(k, dtype=xp.float64)
    all_centroids_close = True
    for r0 in range(0, k, rows):
        r1 = min(r0 + rows, k)
        D = _distance_rows(xp, centroids, csq, r0, r1)
        # np.isclose(d, 0) with its default tolerances: |d| <= 1e-8.
        all_centroids_close = all_centroids_close and bool((D <= 1e-8).all())
        D[D == 0] = xp.inf
        scores[r0:r1] = ((intra[r0:r1, None] + intra[None, :]) / D).max(axis=1)
    if bool((intra <= 1e-8).all()) or all_centroids_close:
        return 0.0
    return float(scores.mean())


def calinski_harabasz_score(X, labels):
    """Calinski-Harabasz index, the variance ratio criterion (``sklearn.metrics``).

    ``(B / (k - 1)) / (W / (n - k))`` with ``B`` the between-cluster and ``W``
    the within-cluster sum of squared distances to the means; 1.0 when ``W``
    is 0.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster labels; 2 to n_samples - 1 distinct values.

    Returns
    -------
    score : float
        Higher is better.

    Examples
    --------
    >>> from gpumeanshift.metrics import calinski_harabasz_score
    >>> round(calinski_harabasz_score([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1]), 4)
    200.0
    """
    xp, Xs, ls, _, counts, starts = _prepare(X, labels)
    n, k = Xs.shape[0], counts.shape[0]
    centroids = _centroids(xp, Xs, starts, counts)
    mean = Xs.mean(axis=0)
    dm = centroids - mean
    extra = float((counts.astype(xp.float64) * (dm * dm).sum(axis=1)).sum())
    diff = Xs - centroids[ls]
    intra = float((diff * diff).sum())
    if intra == 0.0:
        return 1.0
    return extra * (n - k) / (intra * (k - 1.0))


def cluster_scores(X, labels, *, block_rows=None):
    """The three scores at once, NaN where they are undefined (fewer than 2 or n labels).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster labels.
    block_rows : int, default=None
        As for :func:`silhouette_samples`.

    Returns
    -------
    scores : dict
        ``{"silhouette": ..., "davies_bouldin": ..., "calinski_harabasz": ...}``.

    Examples
    --------
    >>> from gpumeanshift.metrics import cluster_scores
    >>> s = cluster_scores([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1])
    >>> {k: round(v, 4) for k, v in s.items()}
    {'silhouette': 0.8997, 'davies_bouldin': 0.1, 'calinski_harabasz': 200.0}
    >>> cluster_scores([[0.0], [1.0]], [0, 0])["silhouette"]
    nan
    """
    n_labels = len(np.unique(to_numpy(labels)))
    if not 1 < n_labels < len(labels):
        return {name: math.nan for name in SCORES}
    return {
        "silhouette": silhouette_score(X, labels, block_rows=block_rows),
        "davies_bouldin": davies_bouldin_score(X, labels, block_rows=block_rows),
        "calinski_harabasz": calinski_harabasz_score(X, labels),
    }


# name -> True when higher is better
SCORES = {"silhouette": True, "davies_bouldin": False, "calinski_harabasz": True}
