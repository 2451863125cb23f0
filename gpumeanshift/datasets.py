"""Built-in example data, generated with NumPy alone (no scikit-learn at run time)."""

from __future__ import annotations

import numbers

import numpy as np

from .bandwidth import _check_random_state


def make_blobs(
    n_samples=100,
    centers=None,
    n_features=2,
    cluster_std=1.0,
    *,
    center_box=(-10.0, 10.0),
    shuffle=True,
    random_state=None,
):
    """Generate isotropic Gaussian blobs for clustering.

    The same points as :func:`sklearn.datasets.make_blobs` for the same
    arguments and ``random_state`` (the random draws are made in the same
    order), without importing scikit-learn.

    Parameters
    ----------
    n_samples : int or sequence of int, default=100
        Total number of points, divided as equally as possible among the
        centers (the first ``n_samples % n_centers`` get one more), or the
        number of points of each center.
    centers : int or array-like of shape (n_centers, n_features), default=None
        Number of centers to draw uniformly in ``center_box``, or their
        coordinates. None means 3 centers (or ``len(n_samples)`` when
        ``n_samples`` is a sequence).
    n_features : int, default=2
        Number of features; ignored when ``centers`` gives coordinates.
    cluster_std : float or sequence of float, default=1.0
        Standard deviation of each blob (one value, or one per center).
    center_box : tuple of float, default=(-10.0, 10.0)
        Bounds of the centers drawn at random.
    shuffle : bool, default=True
        Shuffle the points (otherwise they are grouped by blob).
    random_state : int, numpy RandomState or None, default=None
        Seed of the generator, for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The points, float64.
    y : ndarray of shape (n_samples,)
        The blob of each point (int64).

    Examples
    --------
    >>> from gpumeanshift.datasets import make_blobs
    >>> X, y = make_blobs(n_samples=10, centers=[[1, 1], [-1, -1]], cluster_std=0.1,
    ...                   random_state=0)
    >>> X.shape, y.shape
    ((10, 2), (10,))
    >>> sorted(set(y.tolist()))
    [0, 1]
    >>> bool(abs(X[y == 0].mean(axis=0) - 1).max() < 0.2)
    True
    """
    rng = _check_random_state(random_state)
    if isinstance(n_samples, numbers.Integral) and not isinstance(n_samples, bool):
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if centers is None:
            centers = 3
        if isinstance(centers, numbers.Integral) and not isinstance(centers, bool):
            if centers < 1:
                raise ValueError(f"centers must be >= 1, got {centers}")
            if n_features < 1:
                raise ValueError(f"n_features must be >= 1, got {n_features}")
            centers = rng.uniform(center_box[0], center_box[1], size=(centers, n_features))
        else:
            centers = _check_centers(centers)
        per_center = [n_samples // len(centers)] * len(centers)
        for i in range(n_samples % len(centers)):
            per_center[i] += 1
    else:
        try:
            if isinstance(n_samples, (str, bytes)):
                raise TypeError
            per_center = [int(n) for n in n_samples]
        except (TypeError, ValueError):
            raise TypeError(f"n_samples must be an int or a sequence of ints, got {n_samples!r}") from None
        if not per_center or min(per_center) < 0:
            raise ValueError(f"n_samples must be a non-empty sequence of counts >= 0, got {n_samples!r}")
        if centers is None:
            centers = rng.uniform(center_box[0], center_box[1], size=(len(per_center), n_features))
        centers = _check_centers(centers)
        if len(centers) != len(per_center):
            raise ValueError(
                f"n_samples has {len(per_center)} counts but there are {len(centers)} centers"
            )
    n_centers, n_features = centers.shape
    if np.ndim(cluster_std) == 0:
        stds = np.full(n_centers, float(cluster_std))
    else:
        stds = np.asarray(cluster_std, dtype=np.float64)
        if stds.shape != (n_centers,):
            raise ValueError(
                f"cluster_std has {stds.size} values but there are {n_centers} centers"
            )
    if (stds < 0).any():
        raise ValueError(f"cluster_std must be >= 0, got {cluster_std!r}")

    total = sum(per_center)
    X = np.empty((total, n_features), dtype=np.float64)
    y = np.empty(total, dtype=np.int64)
    start = 0
    for i, (n, std) in enumerate(zip(per_center, stds)):
        X[start:start + n] = rng.normal(loc=centers[i], scale=std, size=(n, n_features))
        y[start:start + n] = i
        start += n
    if shuffle:
        order = np.arange(total)
        rng.shuffle(order)
        X, y = X[order], y[order]
    return X, y


def _check_centers(centers) -> np.ndarray:
    arr = np.asarray(centers, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"centers must be an int or an array of shape (n_centers, n_features), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("centers must be finite")
    return arr
