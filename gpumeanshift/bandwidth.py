"""Bandwidth selection: scikit-learn's quantile estimate and the normal-reference rules."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validation import (array_module, check_array, check_int, check_real, check_sample_weight,
                          is_device_array, keeps_device, to_numpy, total_weight,
                          weights_beside)

RULES = ("scott", "silverman")


def _check_random_state(seed):
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


def estimate_bandwidth(X, *, quantile=0.3, n_samples=None, random_state=0, backend="numpy",
                       sample_weight=None):
    """Estimate the bandwidth to use with mean shift.

    Exactly scikit-learn's definition: the mean over the (optionally
    subsampled) points of the distance to their k-th nearest neighbour, the
    point itself counted, with ``k = max(1, int(n * quantile))``. The
    subsample is ``RandomState(random_state).permutation(n)[:n_samples]``, as
    in scikit-learn, so both pick the same points.

    The neighbour distances are exact (recomputed by differences, scaled so
    that neither 1e-300 nor 1e154 data under- or overflow). scikit-learn's
    brute-force neighbours use expanded squared distances instead, whose
    cancellation error is about ``sqrt(eps) * |X|``: where the two differ it
    is by that much, and this estimate is the correct one. In particular,
    with ``k = 1`` (``n * quantile < 2``) every point's nearest neighbour is
    itself, so the estimate is exactly 0, where scikit-learn may return a
    small positive artifact such as 1e-8.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Input points.
    quantile : float, default=0.3
        Between 0 and 1; 0.5 means the median of all pairwise distances is used.
    n_samples : int, default=None
        Number of samples to use; None uses all (in 1-3 dimensions the NumPy
        backend computes distances only for the points near each k-th
        neighbour's distance; otherwise every pair).
    random_state : int, RandomState instance or None, default=0
        Which points are sampled when ``n_samples`` is given.
    backend : str or Backend, default="numpy"
        Where the neighbour distances are computed.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each point, as if repeated that many times. With integer
        weights the estimate is the one of ``np.repeat(X, sample_weight,
        axis=0)`` (to rounding): ``k = max(1, int(W * quantile))`` with ``W``
        the total weight, each point's k-th neighbour distance is where its
        nearest points' weight reaches ``k``, and the mean is weighted. With
        fractional weights ``k = W * quantile`` (at least the smallest
        positive weight). With ``n_samples``, the rows are sampled as without
        weights and keep theirs. Device data with a device backend keep the
        weights on the device (host weights are uploaded once); ``W`` and the
        weighted mean are then summed there, equal to the host's correctly
        rounded sums (``math.fsum``) to rounding.

    Returns
    -------
    bandwidth : numpy.float64
        The estimated bandwidth, a NumPy scalar as scikit-learn returns it
        (0 when ``k = 1``, or when at least ``k`` copies of each point exist).
        It is the radius of a flat kernel; ``MeanShift(kernel="gaussian")``
        with ``bandwidth=None`` uses ``bandwidth / sqrt(n_features + 2)``, the
        Gaussian with the same per-coordinate variance (pass that yourself when
        you estimate once for a Gaussian fit).

    Raises
    ------
    ValueError
        When the distances exceed float64's range (data spanning more than
        about 1.8e308): no finite bandwidth describes them.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import estimate_bandwidth
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> bw = estimate_bandwidth(X, quantile=0.5)
    >>> type(bw).__name__, round(float(bw), 4)
    ('float64', 1.6191)
    """
    from .backends.base import resolve_backend

    be = resolve_backend(backend)
    # Device data with a device backend stay there: only the k-th distances'
    # sums per batch of 500 (n / 500 values) and a few scalars come back
    # (with sample weights, which join the data there: scalars only).
    on_device = keeps_device(be, X)
    X = check_array(X, keep_device=on_device)
    quantile = check_real(quantile, "quantile", low=0.0)
    if quantile > 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    n_samples = check_int(n_samples, "n_samples", low=1, allow_none=True)
    rng = _check_random_state(random_state)
    w = check_sample_weight(sample_weight, X.shape[0])
    w = weights_beside(w, be, on_device)
    if n_samples is not None:
        sample = rng.permutation(X.shape[0])[:n_samples]
        X = X[sample]
        w = None if w is None else w[sample]
    if w is not None:
        X64 = X.astype(np.float64, copy=False) if on_device \
            else np.ascontiguousarray(X, dtype=np.float64)
        return _weighted_estimate(X64, w, quantile, be)
    X64 = X.astype(np.float64, copy=False) if keeps_device(be, X) \
        else np.ascontiguousarray(X, dtype=np.float64)
    k = max(1, int(X.shape[0] * quantile))
    kth = be.kth_neighbor_distance(X64, X64, k)
    top = float(to_numpy(kth.max())) if kth.size else 0.0
    if not math.isfinite(top):
        _refuse_overflow(X64)
    # Accumulate in batches of 500, in the same order as scikit-learn; if that
    # sum overflows (distances near float64's max), sum in units of a power
    # of two instead (exact scaling, the mean is representable).
    unit = 1.0
    if top * len(kth) > np.finfo(np.float64).max / 2:
        unit = float(np.ldexp(1.0, min(int(np.frexp(top)[1]), 1023)))
    full = len(kth) - len(kth) % 500
    batch_sums = list(to_numpy((kth[:full] / unit).reshape(-1, 500).sum(axis=1)))
    if full < len(kth):
        batch_sums.append(to_numpy((kth[full:] / unit).sum()))
    total = 0.0
    for s in batch_sums:
        total += s
    return np.float64(total / X.shape[0] * unit)


def _refuse_overflow(X64):
    lo, hi = float(to_numpy(X64.min())), float(to_numpy(X64.max()))
    raise ValueError(
        "estimate_bandwidth: the distances between points exceed float64's range "
        f"(coordinates from {lo:g} to {hi:g}); no finite bandwidth "
        "can be estimated. Rescale the data or pass a bandwidth.")


def _weighted_estimate(X64, w, quantile, be):
    """The estimate with sample weights (see :func:`estimate_bandwidth`).

    On the host the total weight and the weighted mean are correctly rounded
    (``math.fsum``); with device data and weights (both device arrays) the
    same quantities are summed on the device, equal to rounding, and only
    scalars cross.
    """
    xp = array_module(w)
    device = is_device_array(w)
    total = total_weight(w)
    if not total > 0:
        raise ValueError("estimate_bandwidth: the sampled rows all have weight 0; "
                         "pass n_samples=None or a larger n_samples")
    positive = w > 0
    if bool((w == xp.round(w)).all()):
        k = float(max(1, int(total * quantile)))
    else:
        k = max(total * quantile, float(w[positive].min()))
    queries = X64[positive] if device else np.ascontiguousarray(X64[positive])
    kth = be.kth_neighbor_distance(X64, queries, k, weights=w)
    if not device:
        kth = np.asarray(to_numpy(kth), dtype=np.float64)
    if not bool(xp.isfinite(kth).all()):
        _refuse_overflow(X64)
    # The weighted mean; in units of a power of two where the products
    # would overflow.
    top = float(kth.max()) if kth.size else 0.0
    unit = float(np.ldexp(1.0, min(int(np.frexp(top)[1]), 1023))) if top > 1e300 else 1.0
    terms = w[positive] * (kth / unit)
    mean = total_weight(terms)
    return np.float64(mean / total * unit)


def rule_of_thumb_bandwidth(X, rule="scott", *, sample_weight=None):
    """Normal-reference bandwidth for a Gaussian kernel (Scott or Silverman).

    With ``n`` points in ``d`` dimensions, Scott's factor is
    ``n ** (-1 / (d + 4))`` and Silverman's is
    ``(n * (d + 2) / 4) ** (-1 / (d + 4))`` -- the factors of
    :class:`scipy.stats.gaussian_kde`. Mean shift needs one isotropic
    bandwidth, so the factor multiplies the root-mean of the per-feature
    variances (ddof=1): ``h = factor * sqrt(mean(var(X, axis=0, ddof=1)))``.
    For standardized data that is the factor itself, exactly the
    bandwidth ``gaussian_kde`` uses.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Input points; at least 2.
    rule : {"scott", "silverman"}, default="scott"
        Which factor.

    Returns
    -------
    bandwidth : float

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.bandwidth import rule_of_thumb_bandwidth
    >>> X = np.random.RandomState(0).normal(size=(1000, 2))
    >>> round(rule_of_thumb_bandwidth(X, "scott"), 4)
    0.3094
    """
    # Device data stay on the device (the variances are d values), and so do
    # the weights (a host copy of device weights for host data).
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    X = check_array(X, ensure_min_samples=2, keep_device=True)
    n, d = X.shape
    w = check_sample_weight(sample_weight, n)
    xp = array_module(X)
    if w is None:
        var = to_numpy(xp.var(X, axis=0, ddof=1, dtype=np.float64))
    else:
        # As on the repeated rows: n is the total weight, the variance the
        # weighted one with W - 1 in the denominator; correctly rounded
        # (fsum) on the host, summed on the device (equal to rounding).
        w = xp.asarray(w) if is_device_array(X) else to_numpy(w)
        n = total_weight(w)
        if not n > 1:
            raise ValueError(f"the {rule} rule needs a total sample_weight > 1, got {n:g}")
        X64 = X.astype(np.float64)
        mean = (w @ X64) / n
        var = to_numpy((w @ (X64 - mean) ** 2) / (n - 1))
    return rule_from_variances(rule, n, d, var)


def rule_from_variances(rule: str, n: float, d: int, var) -> float:
    """Scott's or Silverman's bandwidth from the per-feature variances
    (ddof=1) of ``n`` points (or a total weight) in ``d`` dimensions:
    ``factor * sqrt(mean(var))``; a ValueError when every feature is constant.

    >>> rule_from_variances("scott", 16.0, 4, [1.0, 1.0, 1.0, 1.0])
    0.7071067811865476
    """
    if rule == "scott":
        factor = n ** (-1.0 / (d + 4))
    else:
        factor = (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    sigma = float(np.sqrt(np.mean(var)))
    if sigma == 0:
        raise ValueError(f"every feature of X is constant; the {rule} rule gives bandwidth 0")
    return float(factor * sigma)
