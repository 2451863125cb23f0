"""Labelling, the last step of a fit: each point takes its nearest center
(or, for ``label_assignment="basin"``, the center nearest its own mode), and
``cluster_all=False`` marks with -1 the points farther than the bandwidth
from their center. One definition for the single-machine fit, ``predict`` and
the Dask estimator's chunks; host or device arrays alike (the arithmetic runs
in the arrays' own module)."""

from __future__ import annotations

import numpy as np

from ._validation import array_module

__all__ = ["nearest_labels", "outside_reach"]


def nearest_labels(backend, points, centers, threshold=None):
    """Index of each point's nearest center, int64, in the array module of
    the backend's answer; -1 where that center is farther than ``threshold``
    (None: every point is labelled).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.backends.numpy.backend import NumpyBackend
    >>> pts = np.array([[0.0], [0.9], [5.0]]); ctr = np.array([[0.0], [1.0]])
    >>> nearest_labels(NumpyBackend(), pts, ctr).tolist()
    [0, 1, 1]
    >>> nearest_labels(NumpyBackend(), pts, ctr, threshold=0.5).tolist()
    [0, 1, -1]
    """
    labels, dist = backend.nearest(points, centers)
    labels = labels.astype(np.int64, copy=False)
    if threshold is None:
        return labels
    return array_module(labels).where(dist <= threshold, labels, -1)


def outside_reach(X, labels, centers, h):
    """``labels`` with -1 where a point of ``X`` lies farther than ``h`` from
    the center it is labelled with (squared distances in float64), for
    labels that did not come from the nearest center (basin labels).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [3.0]]); ctr = np.array([[0.5]])
    >>> outside_reach(X, np.array([0, 0]), ctr, 1.0).tolist()
    [0, -1]
    """
    xp = array_module(X)
    diff = X.astype(np.float64) - xp.asarray(centers, dtype=np.float64)[labels]
    return xp.where((diff * diff).sum(axis=1) <= h * h, labels, -1)
