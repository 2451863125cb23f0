"""Anomalies from a fitted mean-shift model: low density, or far from every center.

Two criteria, either or both (a point is an anomaly when any given one
holds):

* **low density**: its log kernel density (:meth:`MeanShift.score_samples`,
  the density the fit climbed) is below a threshold. The threshold is given
  as ``density_threshold`` or chosen as the ``density_quantile`` of the
  training points' own scores, so that about that fraction of the training
  data falls below it.
* **far from every center**: its distance to the nearest cluster center is
  more than ``max_distance`` bandwidths. Centers of clusters with fewer than
  ``min_cluster_size`` training points are ignored, since in mean shift an
  isolated point is the center of its own one-point cluster.

Both run on the model's backend (``log_kernel_density`` and ``nearest``), so
they run on the GPU when the fit did.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import math

import numpy as np

from . import _driver
from ._validation import check_array, check_int, check_real

__all__ = ["Anomalies", "find_anomalies"]


@dataclass(frozen=True)
class Anomalies:
    """What :func:`find_anomalies` returns (host NumPy arrays).

    Attributes
    ----------
    mask : bool ndarray of shape (n_samples,)
        True for the anomalies (any requested criterion holds).
    low_density : bool ndarray of shape (n_samples,) or None
        ``log_density < density_threshold``; None when not requested.
    far : bool ndarray of shape (n_samples,) or None
        ``distance > distance_threshold``; None when not requested.
    log_density : float64 ndarray of shape (n_samples,) or None
        :meth:`MeanShift.score_samples` of each point.
    density_threshold : float or None
        The log-density threshold used (from the quantile, or as given).
    distance : ndarray of shape (n_samples,) or None
        Distance to the nearest center counted (see ``min_cluster_size``).
    distance_threshold : float or None
        ``max_distance * bandwidth_``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.anomaly import find_anomalies
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [4.0, 4.0], [4.1, 4.0], [4.0, 4.1]])
    >>> ms = MeanShift(bandwidth=1.0, kernel="gaussian", backend="numpy").fit(X)
    >>> found = find_anomalies(ms, [[0.05, 0.0], [9.0, 9.0]], density_threshold=-5.0,
    ...                        max_distance=2.0)
    >>> found.mask, found.low_density, found.far
    (array([False,  True]), array([False,  True]), array([False,  True]))
    >>> found.log_density.round(2), found.density_threshold
    (array([ -2.53, -27.18]), -5.0)
    >>> found.distance.round(2), found.distance_threshold
    (array([0.04, 7.02]), 2.0)
    """

    mask: np.ndarray
    low_density: np.ndarray | None = None
    far: np.ndarray | None = None
    log_density: np.ndarray | None = None
    density_threshold: float | None = None
    distance: np.ndarray | None = None
    distance_threshold: float | None = None


def _fraction(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1) (exclusive), got {value!r}")
    return value


def weighted_quantile(values, q: float, weights=None) -> float:
    """``np.quantile(values, q)`` (linear interpolation) of the values each
    repeated ``weights`` times, without repeating them; equal to it for
    integer weights, its continuous extension otherwise.

    >>> import numpy as np
    >>> v, w = np.array([3.0, 1.0, 2.0]), np.array([2, 0, 3])
    >>> bool(weighted_quantile(v, 0.3, w) == np.quantile(np.repeat(v, w), 0.3))
    True
    """
    values = np.asarray(values, dtype=np.float64)
    if weights is None:
        return float(np.quantile(values, q))
    keep = np.asarray(weights) > 0
    order = np.argsort(values[keep], kind="stable")
    v = values[keep][order]
    cum = np.cumsum(np.asarray(weights, dtype=np.float64)[keep][order])
    pos = q * max(cum[-1] - 1.0, 0.0)
    lo = math.floor(pos)

    def at(i):  # the i-th value (0-based) of the repeated, sorted values
        return v[min(int(np.searchsorted(cum, i, side="right")), len(v) - 1)]

    v_lo = at(lo)
    return float(v_lo + (at(min(lo + 1, cum[-1] - 1.0)) - v_lo) * (pos - lo))


def find_anomalies(
    model,
    X=None,
    *,
    density_quantile=None,
    density_threshold=None,
    max_distance=None,
    min_cluster_size=1,
):
    """Flag the points in low-density regions or far from every cluster center.

    Parameters
    ----------
    model : MeanShift
        A fitted :class:`~gpumeanshift.MeanShift` (fitted in this session:
        the density criteria need the training data it keeps).
    X : array-like of shape (n_samples, n_features), default=None
        Points to examine; None examines the training data.
    density_quantile : float in (0, 1), default=None
        Low density means a log density below this quantile of the
        training points' scores (``np.quantile``, linear interpolation).
        Costs one more density pass over the training data unless X is None.
    density_threshold : float, default=None
        Low density means a log density below this value (the units of
        :meth:`MeanShift.score_samples`). Exclusive with ``density_quantile``.
    max_distance : float, default=None
        Far means farther than ``max_distance * bandwidth_`` from every
        counted center. Must be positive.
    min_cluster_size : int, default=1
        Only centers of clusters with at least this many training points
        (``cluster_sizes_``) count for ``max_distance``.

    Returns
    -------
    anomalies : Anomalies
        ``mask`` plus each criterion's flags, values and threshold.

    Raises
    ------
    ValueError
        No criterion given, both density criteria given, a parameter out of
        range, no cluster with ``min_cluster_size`` points, a wrong number of
        features, or a density criterion on a model without training data.
    TypeError
        ``model`` is not a MeanShift, or a parameter is not a number.

    Notes
    -----
    With ``density_quantile=q`` about a fraction q of the training data is
    flagged by the density criterion by construction; on new data drawn
    from the same distribution the expected false-positive rate of that
    criterion is about q.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.anomaly import find_anomalies
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 0.3, (50, 2)), rng.normal(4, 0.3, (50, 2))])
    >>> ms = MeanShift(bandwidth=1.0, kernel="gaussian", backend="numpy").fit(X)
    >>> found = find_anomalies(ms, [[0.1, 0.0], [2.0, 2.0], [9.0, -9.0]],
    ...                        density_quantile=0.05, max_distance=3.0)
    >>> found.mask
    array([False,  True,  True])
    >>> found.far
    array([False, False,  True])
    """
    from ._estimator import MeanShift
    from .backends.base import resolve_backend

    if not isinstance(model, MeanShift):
        raise TypeError(f"model must be a fitted gpumeanshift.MeanShift, got {type(model).__name__}")
    model._check_fitted()
    if density_quantile is None and density_threshold is None and max_distance is None:
        raise ValueError(
            "Give at least one criterion: density_quantile, density_threshold or max_distance."
        )
    if density_quantile is not None and density_threshold is not None:
        raise ValueError("Give density_quantile or density_threshold, not both.")
    if density_quantile is not None:
        density_quantile = _fraction(density_quantile, "density_quantile")
    if density_threshold is not None:
        if isinstance(density_threshold, (bool, np.bool_)) or not isinstance(
            density_threshold, numbers.Real
        ):
            raise TypeError(f"density_threshold must be a real number, got {density_threshold!r}")
        if np.isnan(density_threshold):
            raise ValueError("density_threshold must not be NaN")
        density_threshold = float(density_threshold)
    if max_distance is not None:
        max_distance = check_real(max_distance, "max_distance", low=0.0, low_inclusive=False)
    min_cluster_size = check_int(min_cluster_size, "min_cluster_size", low=1)

    if X is None:
        if not hasattr(model, "_fit_X"):
            raise ValueError("X=None examines the training data, which this model does not hold.")
        X = model._fit_X
    else:
        X = check_array(X)
        if X.shape[1] != model.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model is expecting "
                f"{model.n_features_in_} features as input."
            )

    mask = np.zeros(len(X), dtype=bool)
    low = far = scores = dist = limit = None
    if density_quantile is not None or density_threshold is not None:
        # the result is on the host: the log densities (on the device when
        # the model keeps its training data there) come over once
        scores = _driver.to_numpy(model._log_density(X))
        if density_quantile is not None:
            train = (scores if X is getattr(model, "_fit_X", None)
                     else _driver.to_numpy(model._log_density(model._fit_X)))
            fit_weight = getattr(model, "_fit_weight", None)
            fit_weight = None if fit_weight is None else _driver.to_numpy(fit_weight)
            density_threshold = weighted_quantile(train, density_quantile, fit_weight)
        low = scores < density_threshold
        mask |= low
    if max_distance is not None:
        sizes = _driver.to_numpy(model.cluster_sizes_)
        centers = model._centers_host[sizes >= min_cluster_size]
        if len(centers) == 0:
            raise ValueError(
                f"No cluster has min_cluster_size={min_cluster_size} points or more "
                f"(largest: {int(sizes.max()) if sizes.size else 0})."
            )
        be = resolve_backend(model.backend)
        _, dist = be.nearest(X, np.ascontiguousarray(centers, dtype=X.dtype))
        dist = _driver.to_numpy(dist)
        limit = max_distance * float(model.bandwidth_)
        far = dist > limit
        mask |= far
    return Anomalies(mask=mask, low_density=low, far=far, log_density=scores,
                     density_threshold=density_threshold, distance=dist,
                     distance_threshold=limit)
