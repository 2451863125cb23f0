"""The NumPy backend's k-th neighbour distances (estimate_bandwidth's core).

In 1-3 dimensions they come from k-d boxes and bands (gpumeanshift.backends.numpy._kth),
elsewhere from full blocks; both must give the k-th smallest of the distances
computed by differences, against a brute-force float64 reference, including
ties, duplicates, lattices, queries apart from the data, k = 1 and k = n.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpumeanshift import estimate_bandwidth
from gpumeanshift.backends.numpy import _kth
from gpumeanshift._spatial import pair_distance
from gpumeanshift.backends.numpy.backend import NumpyBackend


def ref_kth(X, Q, k):
    """k-th smallest distance by differences (squares summed over the axes in
    order), brute force over every pair."""
    X = np.asarray(X, np.float64)
    Q = np.asarray(Q, np.float64)
    diff = Q[:, None, :] - X[None, :, :]
    s = diff * diff
    d2 = s[..., 0].copy()
    for j in range(1, X.shape[1]):
        d2 += s[..., j]
    return np.sort(np.sqrt(d2), axis=1)[:, k - 1]


def _data(kind, n, d, rng):
    if kind == "normal":
        return rng.normal(size=(n, d))
    if kind == "blobs":
        centers = rng.uniform(-10, 10, size=(4, d))
        return centers[rng.integers(0, 4, n)] + rng.normal(scale=0.3, size=(n, d))
    if kind == "lattice":  # ties everywhere
        return rng.integers(0, 6, size=(n, d)).astype(np.float64)
    if kind == "duplicates":
        return np.repeat(rng.normal(size=(-(-n // 5), d)), 5, axis=0)[:n]
    if kind == "line":  # one axis of zero extent
        X = rng.normal(size=(n, d))
        X[:, -1] = 3.0
        return X
    raise AssertionError(kind)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("kind", ["normal", "blobs", "lattice", "duplicates", "line"])
@pytest.mark.parametrize("n", [1, 2, 9, 257, 1500])
def test_kth_matches_brute_force(d, kind, n):
    rng = np.random.default_rng(n * 10 + d)
    X = _data(kind, n, d, rng)
    Q = np.r_[X[: min(n, 200)], rng.normal(scale=8.0, size=(30, d))]
    for k in sorted({1, min(2, n), max(1, n // 5), max(1, int(0.3 * n)), max(1, n - 1), n}):
        for threads in (1, 2):
            out = NumpyBackend(n_threads=threads).kth_neighbor_distance(X, Q, k)
            np.testing.assert_array_equal(out, ref_kth(X, Q, k), err_msg=f"k={k}")


@pytest.mark.parametrize("d", [1, 2])
def test_kth_equals_pair_distance_values(d):
    """For d <= 2 the values are pair_distance's, bit for bit (the block path's)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, d)) * 1e3 + 1e6
    k = 210
    D = pair_distance(np.repeat(X, len(X), axis=0), np.tile(X, (len(X), 1)))
    ref = np.sort(D.reshape(len(X), len(X)), axis=1)[:, k - 1]
    np.testing.assert_array_equal(NumpyBackend().kth_neighbor_distance(X, X, k), ref)


def test_kth_tiny_coordinates_are_exact():
    """Coordinates near 1e-200: the squares of differences underflow, so the
    rows whose k-th distance is that small take the underflow-safe path."""
    rng = np.random.default_rng(2)
    X = np.r_[rng.normal(size=(60, 2)) * 1e-200, rng.normal(size=(60, 2))]
    k = 30
    D = pair_distance(np.repeat(X, len(X), axis=0), np.tile(X, (len(X), 1)))
    ref = np.sort(D.reshape(len(X), len(X)), axis=1)[:, k - 1]
    out = NumpyBackend().kth_neighbor_distance(X, X, k)
    assert (ref[:60] < 1e-190).all() and (ref[:60] > 0).all()
    np.testing.assert_array_equal(out, ref)


def test_kth_only_the_band_gets_distances(monkeypatch):
    """10,000 2-D points, k = 3,000: the boxes leave a band of candidates
    per query (measured ~18% of the n x n pairs with tiles of up to 32
    queries and boxes of up to 4 points: larger tiles than the thinnest band
    needs, fewer NumPy calls); the block path computed all of them."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=10_000, centers=[[1, 1], [-1, -1], [1, -1]],
                      cluster_std=0.6, random_state=0)
    pairs = []
    real = _kth._sqdist

    def counting(q, P):
        pairs.append(len(q) * len(P))
        return real(q, P)

    monkeypatch.setattr(_kth, "_sqdist", counting)
    out = NumpyBackend(n_threads=1).kth_neighbor_distance(X, X, 3000)
    assert 0 < sum(pairs) < 0.25 * len(X) ** 2, sum(pairs) / len(X) ** 2
    sample = np.random.default_rng(0).choice(len(X), 300, replace=False)
    np.testing.assert_array_equal(out[sample], ref_kth(X, X[sample], 3000))


def test_estimate_bandwidth_large_matches_sklearn():
    from sklearn.cluster import estimate_bandwidth as sk_estimate
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=6000, centers=[[1, 1], [-1, -1], [1, -1]],
                      cluster_std=0.6, random_state=0)
    for quantile in (0.2, 0.3):
        assert estimate_bandwidth(X, quantile=quantile) == \
            pytest.approx(sk_estimate(X, quantile=quantile), rel=1e-12, abs=0)


def test_kth_higher_dimensions_and_extremes_use_blocks():
    """d = 4 and magnitudes past 2**450 keep the block path, still exact."""
    rng = np.random.default_rng(3)
    X4 = rng.normal(size=(300, 4))
    assert not _kth.applies(X4, X4)
    np.testing.assert_allclose(NumpyBackend().kth_neighbor_distance(X4, X4, 90),
                               ref_kth(X4, X4, 90), rtol=1e-15)
    big = rng.normal(size=(200, 2)) * 1e200
    assert not _kth.applies(big, big)
    D = pair_distance(np.repeat(big, 200, axis=0), np.tile(big, (200, 1)))
    np.testing.assert_array_equal(NumpyBackend().kth_neighbor_distance(big, big, 60),
                                  np.sort(D.reshape(200, 200), axis=1)[:, 59])
