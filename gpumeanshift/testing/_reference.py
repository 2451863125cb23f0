"""The float64 references of the conformance suite, written from the
definitions (plain differences, no expansion of squared distances), and its
small deterministic data sets."""

from __future__ import annotations

import math

import numpy as np


def _sqdist(X: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_j (x_j - q_j)^2 per row of X, float64, the features added in order
    (scikit-learn's ball tree test on integer data)."""
    diff = X - q
    d2 = np.zeros(len(X))
    for j in range(X.shape[1]):
        d2 += diff[:, j] * diff[:, j]
    return d2


def _dist_matrix(X: np.ndarray, Q: np.ndarray) -> np.ndarray:
    return np.sqrt(np.stack([_sqdist(X, q) for q in Q]))  # (len(Q), len(X))


def _ref_shift(X, seeds, h, kernel, max_iter, tol, truncate=None):
    """scikit-learn's per-seed loop (``_mean_shift_single_seed``) in float64;
    the Gaussian mean weighted by exp(-d^2 / 2h^2), dropped beyond ``truncate``
    bandwidths when given."""
    m = len(seeds)
    modes = seeds.copy()
    n_iter = np.zeros(m, np.int64)
    intensity = np.zeros(m, np.int64)
    converged = np.zeros(m, bool)
    margin = np.full(m, np.inf)
    for s in range(m):
        pos, it = seeds[s].copy(), 0
        while True:
            d2 = _sqdist(X, pos)
            margin[s] = min(margin[s], float(np.abs(d2 - h * h).min()) / (h * h))
            within = d2 <= h * h
            if kernel == "flat":
                w = within.astype(np.float64)
            else:
                w = np.exp(-d2 / (2.0 * h * h))
                if truncate is not None:
                    w[d2 > (truncate * h) ** 2] = 0.0
            if not w.sum() > 0:  # an orphan: nothing within reach
                break
            intensity[s] = np.count_nonzero(within)
            if kernel == "flat":
                new = X[within].sum(axis=0) / np.count_nonzero(within)
            else:
                new = (w[:, None] * X).sum(axis=0) / w.sum()
            moved = math.sqrt(float(_sqdist(new[None, :], pos)[0]))
            pos = new
            if moved <= tol * h:
                converged[s] = True
                break
            if it == max_iter:
                break
            it += 1
        modes[s], n_iter[s] = pos, it
    return modes, n_iter, intensity, converged, margin


def _ref_log_density(D: np.ndarray, h: float, kernel: str) -> np.ndarray:
    if kernel == "flat":
        count = np.count_nonzero(D <= h, axis=1)
        with np.errstate(divide="ignore"):
            return np.log(count.astype(np.float64))
    e = -(D * D) / (2.0 * h * h)
    top = e.max(axis=1)
    return top + np.log(np.exp(e - top[:, None]).sum(axis=1))


def _blobs(n: int, d: int, seed: int) -> tuple[np.ndarray, float]:
    """Three well separated blobs away from the origin, and a bandwidth."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.0, 8.0, (3, d)) + 10.0
    X = centers[rng.integers(0, 3, n)] + rng.normal(0.0, 0.5, (n, d))
    return X, 0.8 * math.sqrt(d)


def _lattice(n: int, d: int, seed: int) -> np.ndarray:
    """Small integers: many pairs at exactly 1 or 2 apart."""
    return np.random.default_rng(seed).integers(0, 5, (n, d)).astype(np.float64)
