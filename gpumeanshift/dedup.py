"""The host-side mode-deduplication pass (scikit-learn's rule, vectorized).

scikit-learn keys each surviving seed's mode by its exact coordinates (so
bit-identical modes merge and the last seed's intensity wins), orders the
modes by (intensity, coordinates) descending, and walks that order keeping a
mode unless an already kept mode lies within one bandwidth (distance <=
bandwidth). That greedy walk is inherently sequential, but its cost is not:
here the candidates are visited in blocks; each block is first tested against
every mode kept so far with one distance computation, and only the block's
survivors are resolved among themselves, in a short loop over a block-sized
boolean matrix. The work is O(k * kept) distance evaluations done in NumPy,
never a Python loop over all pairs.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 256


def _within(A: np.ndarray, B: np.ndarray, unit: float, r2: float) -> np.ndarray:
    """Boolean matrix |(a - b) / unit|^2 <= r2, computed by differences.

    ``unit`` is a power of two near the bandwidth, so the division is exact
    and the test is the exact rule |a - b| <= bandwidth wherever the plain
    squares neither overflow nor underflow; unlike the plain squares it also
    holds for modes 1e-300 apart or 1e200 apart (where a difference past the
    dtype's range is infinitely far, never within).
    """
    out = np.zeros((len(A), len(B)), dtype=bool)
    step = max(1, (1 << 20) // max(1, len(B) * A.shape[1]))
    inv = 1.0 / unit
    with np.errstate(over="ignore", under="ignore"):
        for i in range(0, len(A), step):
            diff = (A[i:i + step, None, :] - B[None, :, :]).astype(np.float64) * inv
            out[i:i + step] = np.einsum("ijk,ijk->ij", diff, diff) <= r2
    return out


def order_modes(modes: np.ndarray, intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique modes with their intensities, ordered as scikit-learn orders them.

    Rows with equal coordinates merge; the intensity kept is that of the
    last such row. The order is by intensity, then by the coordinates
    compared lexicographically, both descending.
    """
    modes = np.ascontiguousarray(modes)
    # Last occurrence of each distinct row: unique over the reversed rows.
    rev = modes[::-1]
    uniq, first_in_rev = np.unique(rev, axis=0, return_index=True)
    last_idx = len(modes) - 1 - first_in_rev
    inten = np.asarray(intensity)[last_idx]
    # lexsort: last key is primary. Descending = reverse of ascending order.
    keys = [uniq[:, j] for j in range(uniq.shape[1] - 1, -1, -1)] + [inten]
    order = np.lexsort(keys)[::-1]
    return uniq[order], inten[order]


def deduplicate(modes: np.ndarray, intensity: np.ndarray, bandwidth: float):
    """Keep the strongest modes, dropping any within ``bandwidth`` of a kept one.

    Parameters
    ----------
    modes : ndarray of shape (k, d)
        Converged modes of the non-orphan seeds (any order).
    intensity : ndarray of shape (k,)
        Points within one bandwidth of each mode.
    bandwidth : float
        Suppression radius (inclusive); 0 merges only equal modes.

    Returns
    -------
    centers : ndarray of shape (c, d)
        The kept modes, strongest first.
    center_intensity : ndarray of shape (c,)
        Their intensities.
    """
    ordered, inten = order_modes(modes, intensity)
    bandwidth = float(bandwidth)
    if not (np.isfinite(bandwidth) and bandwidth >= 0):
        raise ValueError(f"bandwidth must be a finite number >= 0, got {bandwidth!r}")
    if bandwidth == 0:  # only equal modes merge, and order_modes has merged them
        return ordered, inten
    # Distances in units of a power of two near the bandwidth: the squares
    # stay in range whatever the scale (r2 lies in [1, 4)).
    mant, exp = np.frexp(bandwidth)
    unit = float(np.ldexp(1.0, int(exp) - 1))
    r2 = (bandwidth / unit) ** 2
    keep = np.zeros(len(ordered), dtype=bool)
    kept_rows: list[np.ndarray] = []
    kept = np.empty((0, ordered.shape[1]), dtype=ordered.dtype)
    for start in range(0, len(ordered), _BLOCK):
        block = ordered[start:start + _BLOCK]
        alive = np.ones(len(block), dtype=bool)
        if len(kept):
            alive &= ~_within(block, kept, unit, r2).any(axis=1)
        idx = np.flatnonzero(alive)
        if idx.size:
            near = _within(block[idx], block[idx], unit, r2)
            ok = np.ones(idx.size, dtype=bool)
            for i in range(idx.size):  # sequential within a block only
                if ok[i]:
                    ok[i + 1:] &= ~near[i, i + 1:]
            alive[idx[~ok]] = False
        keep[start:start + len(block)] = alive
        if alive.any():
            kept_rows.append(block[alive])
            kept = np.concatenate(kept_rows)
            kept_rows = [kept]
    return ordered[keep], inten[keep]
