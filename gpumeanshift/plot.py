"""Pictures of the results (matplotlib, an optional extra, imported only when a plot is made).

Every function builds a :class:`matplotlib.figure.Figure` directly (no
``pyplot`` state, so it works without a display and in threads) and returns
it: notebooks display it, scripts call ``fig.savefig(path)``.

* :func:`plot_clusters` -- points coloured by cluster, with the centers
  (the first two principal axes for more than two features);
* :func:`plot_bandwidth_sweep` -- scores and cluster count against bandwidth
  (of :func:`gpumeanshift.bandwidth_sweep`);
* :func:`plot_segmentation` -- original, filtered and region boundaries side
  by side (of :func:`gpumeanshift.segment_image`).

All of the project's matplotlib code is here.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import to_numpy
from .metrics import SCORES

# Most points drawn in a scatter plot (a fixed random subsample beyond).
MAX_POINTS = 50_000


def project_2d(X, centers):
    """Two plotting coordinates for points and centers.

    Data with one feature get a zero second coordinate, two features are
    used as they are, and more are projected on the first two principal
    axes of ``X`` (centered SVD, float64).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points.
    centers : array-like of shape (n_clusters, n_features)
        The cluster centers, projected with the points' axes.

    Returns
    -------
    P : ndarray of shape (n_samples, 2)
    C : ndarray of shape (n_clusters, 2)
    axis_names : tuple of str
        Labels of the two axes.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.plot import project_2d
    >>> X = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> P, C, names = project_2d(X, X[:1])
    >>> P.shape, C.shape, names
    ((3, 2), (1, 2), ('principal axis 1', 'principal axis 2'))
    """
    X = np.asarray(X, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if X.ndim != 2 or centers.ndim != 2 or centers.shape[1] != X.shape[1]:
        raise ValueError(
            f"X and centers must be 2-D with the same number of columns, got shapes "
            f"{X.shape} and {centers.shape}"
        )
    if X.shape[1] == 1:
        return (np.column_stack([X[:, 0], np.zeros(len(X))]),
                np.column_stack([centers[:, 0], np.zeros(len(centers))]), ("x0", ""))
    if X.shape[1] == 2:
        return X, centers, ("x0", "x1")
    mu = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mu, full_matrices=False)
    axes = vt[:2].T
    return (X - mu) @ axes, (centers - mu) @ axes, ("principal axis 1", "principal axis 2")


def plot_clusters(X, labels, centers, ax=None, *, title=None, axis_names=None,
                  max_points=MAX_POINTS):
    """Scatter plot of the points coloured by cluster, with the centers marked.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points (NumPy or CuPy).
    labels : array-like of shape (n_samples,)
        Cluster index of each point; -1 (outliers) is drawn in grey.
    centers : array-like of shape (n_clusters, n_features)
        The cluster centers, drawn as black crosses: smaller and thinner
        beyond 20 centers, so that many centers do not hide the points.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None makes a new 6.4 x 4.8 inch figure at 100 dpi.
    title : str, default=None
        Title of the axes.
    axis_names : sequence of 2 str, default=None
        Axis labels for two-feature data (for example the column names); by
        default "x0", "x1", or the principal axes for more features.
    max_points : int, default=50000
        At most this many points are drawn (a fixed random subsample).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (the one holding ``ax`` when given).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.plot import plot_clusters
    >>> X = np.array([[0.0, 0.0], [0.2, 0.1], [5.0, 5.0], [5.1, 4.9]])
    >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X)
    >>> fig = plot_clusters(X, ms.labels_, ms.cluster_centers_, title="two clusters")
    >>> fig.axes[0].get_title()
    'two clusters'
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # matplotlib only when plotting

    X = to_numpy(X).astype(np.float64, copy=False)
    labels = to_numpy(labels).astype(np.int64, copy=False).ravel()
    centers = to_numpy(centers).astype(np.float64, copy=False)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if labels.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries but X has {X.shape[0]} rows")
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise ValueError(f"max_points must be a positive integer, got {max_points!r}")
    if len(X) > max_points:
        keep = np.random.RandomState(0).choice(len(X), max_points, replace=False)
        X, labels = X[keep], labels[keep]
    P, C, names = project_2d(X, centers)
    if axis_names is not None and X.shape[1] == 2:
        names = tuple(axis_names[:2])
    if ax is None:
        fig = Figure(figsize=(6.4, 4.8), dpi=100)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    colors = colormaps["tab10"](np.mod(labels, 10))
    colors[labels < 0] = (0.6, 0.6, 0.6, 1.0)  # outliers in grey
    ax.scatter(P[:, 0], P[:, 1], c=colors, s=4, alpha=0.6, linewidths=0)
    size, width = center_marker(len(C))
    ax.scatter(C[:, 0], C[:, 1], marker="x", c="black", s=size, linewidths=width, label="centers")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return fig


def center_marker(n_centers: int) -> tuple[float, float]:
    """Marker area (points^2) and line width of the center crosses.

    Up to 20 centers: 80 and 2. Beyond, the total inked area is kept that of
    20 crosses (the area falls as 20 / n), down to a floor of 4 (a cross
    two points wide), so that a thousand centers mark the modes without
    covering the data.

    Examples
    --------
    >>> from gpumeanshift.plot import center_marker
    >>> center_marker(3), center_marker(80), center_marker(1000)
    ((80.0, 2.0), (20.0, 1.0), (4.0, 0.5))
    """
    n = max(1, int(n_centers))
    area = max(4.0, 80.0 * min(1.0, 20.0 / n))
    return area, max(0.5, 2.0 * math.sqrt(area / 80.0))


def plot_bandwidth_sweep(result, ax=None):
    """Scores and cluster count against bandwidth (matplotlib, imported here only).

    Parameters
    ----------
    result : BandwidthSweep
        From :func:`bandwidth_sweep`.
    ax : matplotlib.axes.Axes, default=None
        Where to draw the chosen score; None makes a new figure with one
        panel per score and one for the cluster count.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import bandwidth_sweep
    >>> from gpumeanshift.plot import plot_bandwidth_sweep
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.3, size=(50, 2)) for c in ([0, 0], [3, 0])])
    >>> fig = plot_bandwidth_sweep(bandwidth_sweep(X, [0.3, 1.0, 5.0], backend="numpy"))
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure  # matplotlib only when plotting

    h = result.bandwidths
    titles = {"silhouette": "silhouette (higher is better)",
              "davies_bouldin": "Davies-Bouldin (lower is better)",
              "calinski_harabasz": "Calinski-Harabasz (higher is better)"}
    if ax is not None:
        ax.plot(h, getattr(result, result.score), "o-")
        ax.set_xscale("log")
        ax.set_xlabel("bandwidth")
        ax.set_ylabel(titles[result.score])
        if result.best_index is not None:
            ax.axvline(result.best_bandwidth, color="k", ls="--", lw=1)
        return ax.figure
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    axes = fig.subplots(1, 4, sharex=True)
    for a, name in zip(axes, SCORES):
        a.plot(h, getattr(result, name), "o-")
        a.set_title(titles[name], fontsize=9)
    axes[3].plot(h, result.n_clusters, "o-")
    axes[3].set_yscale("log")
    axes[3].set_title("clusters", fontsize=9)
    for a in axes:
        a.set_xscale("log")
        a.set_xlabel("bandwidth")
        if result.best_index is not None:
            a.axvline(result.best_bandwidth, color="k", ls="--", lw=1)
    fig.suptitle(f"bandwidth sweep: best {result.best_bandwidth} by {result.score}")
    return fig


def plot_segmentation(image, filtered, labels, *, boundary_color=(255, 0, 0)):
    """Original, filtered and label boundaries side by side (matplotlib).

    Parameters
    ----------
    image, filtered : ndarray of shape (height, width, 3)
        The input and the filtered output of :func:`segment_image`.
    labels : ndarray of shape (height, width)
        The label image.
    boundary_color : tuple, default=(255, 0, 0)
        Colour of the region boundaries, drawn over the original (0-255).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import segment_image
    >>> from gpumeanshift.plot import plot_segmentation
    >>> img = np.zeros((10, 12, 3), dtype=np.uint8)
    >>> img[:, 6:] = 200
    >>> fig = plot_segmentation(img, *segment_image(img, 2, 20))
    >>> len(fig.axes)
    3
    """
    from matplotlib.figure import Figure  # matplotlib only when plotting

    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    overlay = np.array(image, copy=True)
    if overlay.ndim == 2:
        overlay = np.repeat(overlay[:, :, None], 3, axis=2)
    scale = 1.0 if overlay.dtype.kind in "biu" else 1.0 / 255.0
    overlay[edge] = np.asarray(boundary_color) * scale
    fig = Figure(figsize=(12, 4), layout="constrained")
    for ax, pic, title in zip(fig.subplots(1, 3), (image, filtered, overlay),
                              ("original", "filtered",
                               f"{int(labels.max()) + 1} region" + ("s" if labels.max() else ""))):
        ax.imshow(pic, cmap="gray" if np.ndim(pic) == 2 else None)
        ax.set_title(title)
        ax.set_axis_off()
    return fig


__all__ = ["plot_bandwidth_sweep", "plot_clusters", "plot_segmentation", "project_2d"]
