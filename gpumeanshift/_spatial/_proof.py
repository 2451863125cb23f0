"""The Gaussian kernel's reach: where ``exp`` underflows, and the proof that a
truncated neighbourhood moves a seed by less than rounding."""

from __future__ import annotations

import numpy as np

#: Truncation radius of the Gaussian kernel on the grid, in bandwidths.
GAUSSIAN_GRID_RADIUS = 6.0

# Squared distance (in bandwidths) beyond which exp(-d2/2) is exactly 0.0.
_GAUSS_D2_CUTOFF = {
    np.dtype(np.float64): 2.0 * 746.0,  # exp(-746) == 0.0 in float64
    np.dtype(np.float32): 2.0 * 104.0,  # exp(-104) == 0.0 in float32
}


def gaussian_proof_radius(dtype, n: int, extent: float) -> float:
    """Radius (in bandwidths) past which the Gaussian terms of ``n`` points
    provably move a seed's step by less than the dtype's rounding.

    The radius ``R`` at which :func:`gaussian_truncation_bound` passes for a
    seed whose retained weight is at least 1 (a seed on a data point, or
    anywhere near one) with all ``n`` points dropped and the new position
    ``extent`` bandwidths from the seed (``extent``: the diagonal of the
    data's bounding box, which holds both the seed's step and its mean):
    ``2 n exp(-R^2/2) (R + extent) <= eps/2``. About
    10.8 bandwidths in float64 and 8.7 in float32 for a million points,
    against 38.6 and 14.4 where ``exp`` underflows to zero.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import gaussian_proof_radius
    >>> r64 = gaussian_proof_radius(np.float64, 10**6, 700.0)
    >>> r32 = gaussian_proof_radius(np.float32, 10**6, 700.0)
    >>> round(r64, 2), round(r32, 2)
    (10.75, 8.68)
    >>> bool(gaussian_truncation_bound(np.float64, 10**6, r64, 1.0, 700.0) <= 1.0)
    True
    """
    tau = 0.5 * float(np.finfo(dtype).eps)
    n = max(int(n), 1)
    extent = max(float(extent), 0.0)
    r = 1.0
    # Fixed point of r = sqrt(2 ln(2 n (r + extent) / tau)): increasing in r and
    # contracting (its slope is ~ 1 / (r (r + extent)) < 1 for r >= 1); a few
    # rounds settle it to well within the last iteration's 1e-9.
    for _ in range(50):
        nxt = float(np.sqrt(2.0 * np.log(2.0 * n * (r + extent) / tau)))
        if abs(nxt - r) < 1e-9:
            r = nxt
            break
        r = nxt
    return max(1.0, r * (1.0 + 1e-6))


def gaussian_truncation_bound(dtype, n_out, clearance, w_in, shift):
    """How far the dropped terms may move a Gaussian step, in units of its rounding.

    A seed ``q`` whose step sums the points within reach (retained weight
    ``w_in``) and drops ``n_out`` points, each more than ``clearance`` (>= 1)
    bandwidths away, computes ``m = A_in / W_in`` instead of
    ``(A_in + A_out) / (W_in + W_out)``. Their difference is
    ``sum_out w_i (y_i - m) / (W_in + W_out)``, so its norm is at most
    ``sum_out w_i (|y_i - q| + |q - m|) / W_in``. A dropped point at distance
    ``r > clearance >= 1`` has ``w = exp(-r^2/2)`` and ``r w <= clearance *
    exp(-clearance^2/2)`` (``r exp(-r^2/2)`` decreases past 1), so the norm is
    at most ``n_out exp(-clearance^2/2) (clearance + shift) / w_in`` with
    ``shift = |q - m|``. Returned divided by the tolerance ``eps/2`` (one
    bandwidth's rounding in the dtype) and doubled for the rounding of the
    inputs: a value <= 1 proves that dropping the terms changes the step by
    less than rounding. Why ``eps/2`` bandwidths and not ``eps/2 * |m|``: each
    coordinate of the computed step averages coordinates spread over about a
    bandwidth, so its own rounding is at least that, whatever the position's
    magnitude; the stricter choice costs only ~0.3 bandwidths of radius.
    Any input may be an array; ``w_in == 0`` gives inf (unproven).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift._spatial import gaussian_truncation_bound
    >>> b = gaussian_truncation_bound(np.float64, np.array([0, 10, 10]), 11.0,
    ...                               np.array([1.0, 1.0, 0.0]), 0.5)
    >>> b.tolist()[0], bool(b[1] < 1.0), b.tolist()[2]
    (0.0, True, inf)
    >>> bool(gaussian_truncation_bound(np.float64, 10, 6.0, 1.0, 0.5) > 1e6)  # 6 bandwidths
    True
    """
    tau = 0.5 * float(np.finfo(dtype).eps)
    n_out = np.asarray(n_out, dtype=np.float64)
    c = np.maximum(np.asarray(clearance, dtype=np.float64), 1.0)
    w_in = np.asarray(w_in, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        drop = n_out * np.exp(-0.5 * c * c) * (c + np.asarray(shift, dtype=np.float64))
        out = np.where(n_out > 0, 2.0 * drop / (w_in * tau), 0.0)
    return np.where(np.isnan(out), np.inf, out)


def neighbourhood_reach(kernel: str, dtype, algorithm: str) -> float:
    """Distance (in bandwidths) beyond which a point's weight is taken as 0."""
    if kernel == "flat":
        return 1.0
    if algorithm == "grid":
        return GAUSSIAN_GRID_RADIUS
    # Brute force and auto: only where exp() underflows to exactly 0.
    return float(np.sqrt(_GAUSS_D2_CUTOFF[np.dtype(dtype)]))
