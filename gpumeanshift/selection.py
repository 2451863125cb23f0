"""Bandwidth selection by a sweep: fit at every bandwidth, score the clusterings, pick one.

For every bandwidth of the grid, :class:`~gpumeanshift.MeanShift` is fitted on
the chosen backend and its labels are scored with the three indices of
:mod:`gpumeanshift.metrics`. With the CUDA backend the data are put on the
GPU once and the scores are computed there too (the silhouette's distances in
row blocks, never n x n).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import check_array, check_bandwidth
from .metrics import SCORES, cluster_scores


@dataclass(frozen=True)
class BandwidthSweep:
    """What :func:`bandwidth_sweep` returns: one entry per bandwidth.

    Attributes
    ----------
    bandwidths : ndarray of shape (m,)
        The bandwidths, in the order given.
    n_clusters : ndarray of shape (m,)
        Number of clusters found at each.
    silhouette, davies_bouldin, calinski_harabasz : ndarray of shape (m,)
        The scores; NaN where the clustering has one cluster or one per point.
    score : str
        The score that chose the best bandwidth.
    best_index : int or None
        Index of the best bandwidth (highest silhouette or Calinski-Harabasz,
        lowest Davies-Bouldin; the first on ties); None when no bandwidth
        could be scored.
    best_bandwidth : float or None
        ``bandwidths[best_index]``.
    labels : list of ndarray
        The labels of each fit.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.selection import bandwidth_sweep
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.3, size=(30, 2)) for c in ([0, 0], [3, 0])])
    >>> sweep = bandwidth_sweep(X, [0.3, 1.0, 5.0], kernel="gaussian", backend="numpy")
    >>> sweep.n_clusters.tolist(), sweep.silhouette.round(3).tolist()
    ([2, 2, 1], [0.832, 0.832, nan])
    >>> sweep.score, sweep.best_index, sweep.best_bandwidth
    ('silhouette', 0, 0.3)
    >>> [np.bincount(labels).tolist() for labels in sweep.labels]
    [[30, 30], [30, 30], [60]]
    """

    bandwidths: np.ndarray
    n_clusters: np.ndarray
    silhouette: np.ndarray
    davies_bouldin: np.ndarray
    calinski_harabasz: np.ndarray
    score: str
    best_index: int | None
    best_bandwidth: float | None
    labels: list = field(repr=False)

    def plot(self, ax=None):
        """Plot the scores and the cluster count against the bandwidth; see
        :func:`gpumeanshift.plot.plot_bandwidth_sweep`."""
        from .plot import plot_bandwidth_sweep

        return plot_bandwidth_sweep(self, ax=ax)


def _best(values, higher_is_better):
    v = np.asarray(values, dtype=np.float64)
    if np.isnan(v).all():
        return None
    return int(np.nanargmax(v) if higher_is_better else np.nanargmin(v))


def bandwidth_sweep(X, bandwidths, *, kernel="flat", score="silhouette", backend="auto",
                    bin_seeding=False, max_iter=300, tol=1e-3, n_jobs=None, block_rows=None):
    """Fit mean shift at every bandwidth and pick the best by a cluster-quality score.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data.
    bandwidths : array-like of shape (m,)
        Positive bandwidths to try, e.g. ``np.geomspace(h / 4, 2 * h, 10)``
        around :func:`~gpumeanshift.estimate_bandwidth` or
        :func:`~gpumeanshift.bandwidth.rule_of_thumb_bandwidth`.
    kernel : {"flat", "gaussian"}, default="flat"
        As for :class:`~gpumeanshift.MeanShift`.
    score : {"silhouette", "davies_bouldin", "calinski_harabasz"}, default="silhouette"
        The score that picks the best bandwidth: highest silhouette, lowest
        Davies-Bouldin, highest Calinski-Harabasz. All three are computed.
    backend : {"auto", "numpy", "cupy"} or Backend, default="auto"
        Where the fits and the scores run.
    bin_seeding, max_iter, tol, n_jobs
        As for :class:`~gpumeanshift.MeanShift`.
    block_rows : int, default=None
        Rows per block of the silhouette's distances (see
        :func:`gpumeanshift.metrics.silhouette_samples`).

    Returns
    -------
    result : BandwidthSweep
        Per bandwidth the number of clusters and the three scores, and the
        best bandwidth. A clustering with a single cluster (or one per point)
        cannot be scored: its scores are NaN and it is never the best.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.selection import bandwidth_sweep
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.3, size=(100, 2)) for c in ([0, 0], [3, 0], [0, 3])])
    >>> sweep = bandwidth_sweep(X, [0.1, 0.5, 1.0, 5.0], kernel="gaussian", backend="numpy",
    ...                         bin_seeding=True)
    >>> sweep.n_clusters.tolist()
    [25, 3, 3, 1]
    >>> sweep.best_bandwidth
    0.5
    >>> bool(np.isnan(sweep.silhouette[-1]))
    True
    """
    from ._estimator import MeanShift

    if score not in SCORES:
        raise ValueError(f"score must be one of {tuple(SCORES)}, got {score!r}")
    X = check_array(X)
    hs = np.asarray(bandwidths, dtype=np.float64).ravel() if not np.isscalar(bandwidths) else None
    if hs is None or hs.size == 0:
        raise ValueError(f"bandwidths must be a non-empty sequence of positive numbers, got {bandwidths!r}")
    hs = np.array([check_bandwidth(float(h)) for h in hs])
    X_scores = None
    n_clusters, labels_all = [], []
    values = {name: [] for name in SCORES}
    for h in hs:
        ms = MeanShift(bandwidth=float(h), kernel=kernel, backend=backend, bin_seeding=bin_seeding,
                       max_iter=max_iter, tol=tol, n_jobs=n_jobs, output_type="numpy").fit(X)
        if X_scores is None:
            if ms.backend_ == "cupy":  # score on the device the fit used
                import cupy

                X_scores = cupy.asarray(X)
            else:
                X_scores = X
        labels = ms.labels_
        n_clusters.append(len(ms.cluster_centers_))
        labels_all.append(labels)
        if X_scores is not X:
            import cupy

            s = cluster_scores(X_scores, cupy.asarray(labels), block_rows=block_rows)
        else:
            s = cluster_scores(X, labels, block_rows=block_rows)
        for name in SCORES:
            values[name].append(s[name])
    arrays = {name: np.array(v, dtype=np.float64) for name, v in values.items()}
    best = _best(arrays[score], SCORES[score])
    return BandwidthSweep(
        bandwidths=hs,
        n_clusters=np.array(n_clusters, dtype=np.int64),
        silhouette=arrays["silhouette"],
        davies_bouldin=arrays["davies_bouldin"],
        calinski_harabasz=arrays["calinski_harabasz"],
        score=score,
        best_index=best,
        best_bandwidth=None if best is None else float(hs[best]),
        labels=labels_all,
    )



__all__ = ["BandwidthSweep", "bandwidth_sweep"]
