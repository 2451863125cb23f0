"""The Gaussian kernel against an independent float64 reference, and the
worked examples of the texts our users read."""

import numpy as np
import pytest

import gpumeanshift as gms
from sklearn.datasets import make_blobs
from gpumeanshift.backends.numpy.backend import NumpyBackend

TOL = {np.float64: dict(rtol=0, atol=1e-9), np.float32: dict(rtol=0, atol=2e-4)}


def reference_shift(X, seeds, h, max_iter, tol):
    """Plain float64 Gaussian mean shift, one seed at a time, no tricks."""
    X = np.asarray(X, dtype=np.float64)
    out, iters = [], []
    for s in np.asarray(seeds, dtype=np.float64):
        it = 0
        while True:
            w = np.exp(-((X - s) ** 2).sum(1) / (2 * h * h))
            new = (w[:, None] * X).sum(0) / w.sum()
            stop = np.linalg.norm(new - s) <= tol * h or it == max_iter
            s = new
            if stop:
                break
            it += 1
        out.append(s)
        iters.append(it)
    return np.array(out), np.array(iters)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 2, 3, 5, 16])
def test_gaussian_shift_matches_reference(dtype, d):
    rng = np.random.default_rng(d)
    X = np.concatenate([rng.normal(c, 1.0, size=(60, d)) for c in (-4.0, 0.0, 5.0)])
    X = X.astype(dtype)
    seeds = X[::9]
    h = 1.5 * np.sqrt(d)
    res = NumpyBackend().shift(X, seeds, bandwidth=h, kernel="gaussian", max_iter=300, tol=1e-6)
    ref_modes, ref_iter = reference_shift(X, seeds, h, 300, 1e-6)
    assert res.modes.dtype == dtype
    np.testing.assert_allclose(res.modes, ref_modes, **TOL[dtype])
    if dtype == np.float64:
        np.testing.assert_array_equal(res.n_iter, ref_iter)
    ref_count = (((X[None].astype(np.float64) - ref_modes[:, None]) ** 2).sum(-1) <= h * h).sum(1)
    assert np.abs(res.intensity - ref_count).max() <= (0 if dtype == np.float64 else 2)


def test_gaussian_seed_far_from_data_is_orphaned_not_nan():
    X = np.random.default_rng(0).normal(size=(50, 2))
    seeds = np.array([[0.0, 0.0], [1e6, 1e6]])
    res = NumpyBackend().shift(X, seeds, bandwidth=0.5, kernel="gaussian", max_iter=50, tol=1e-3)
    assert np.isfinite(res.modes).all()
    assert res.intensity[1] == 0 and res.intensity[0] > 0


def test_gaussian_kernel_sum_matches_reference():
    rng = np.random.default_rng(1)
    X, Q = rng.normal(size=(200, 3)), rng.normal(size=(30, 3))
    ref = np.exp(-((Q[:, None] - X[None]) ** 2).sum(-1) / (2 * 0.7**2)).sum(1)
    np.testing.assert_allclose(
        NumpyBackend().kernel_sum(X, Q, bandwidth=0.7, kernel="gaussian"), ref, rtol=1e-12
    )


def test_backend_memory_tiles_do_not_change_results():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 2))
    small = NumpyBackend(tile_elements=1024, n_threads=1)
    big = NumpyBackend(tile_elements=2**22, n_threads=2)
    for kernel in ("gaussian", "flat"):
        a = small.shift(X, X[::10], bandwidth=0.5, kernel=kernel, max_iter=300, tol=1e-3)
        b = big.shift(X, X[::10], bandwidth=0.5, kernel=kernel, max_iter=300, tol=1e-3)
        np.testing.assert_allclose(a.modes, b.modes, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(a.n_iter, b.n_iter)
        np.testing.assert_array_equal(a.intensity, b.intensity)


def test_repeated_fits_are_bit_identical(blobs):
    X, _ = blobs
    a = gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    b = gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert np.array_equal(a.labels_, b.labels_)


# --------------------------------------------- worked examples (shared/seeds)
def test_tutorial_three_blobs_of_10000_points():
    """The scikit-learn tutorial: estimate_bandwidth(quantile=0.2, n_samples=500),
    bin seeding, 10,000 points in 3 blobs -> 3 clusters."""
    X, y = make_blobs(n_samples=10_000, centers=[[1, 1], [-1, -1], [1, -1]],
                                   cluster_std=0.6, random_state=0)
    bw = gms.estimate_bandwidth(X, quantile=0.2, n_samples=500)
    # The tutorial uses scikit-learn's (flat) kernel; a Gaussian of the same
    # bandwidth smooths more and merges these blobs, so it is not asked here.
    ms = gms.MeanShift(bandwidth=bw, bin_seeding=True, kernel="flat", backend="numpy").fit(X)
    assert len(ms.cluster_centers_) == 3
    np.testing.assert_allclose(
        np.sort(ms.cluster_centers_, axis=0),
        np.sort(np.array([[1, 1], [-1, -1], [1, -1]], float), axis=0), atol=0.15)


def test_from_scratch_two_gaussian_clusters_bandwidth_2():
    """The from-scratch NumPy text: two clusters of 100 points around (3, 3) and
    (8, 8), Gaussian kernel, bandwidth 2 -> 2 clusters."""
    np.random.seed(42)
    c1 = np.random.normal(loc=[3, 3], scale=1, size=(100, 2))
    c2 = np.random.normal(loc=[8, 8], scale=1, size=(100, 2))
    X = np.vstack([c1, c2])
    ms = gms.MeanShift(bandwidth=2.0, kernel="gaussian", backend="numpy").fit(X)
    assert len(ms.cluster_centers_) == 2
    np.testing.assert_array_equal(np.bincount(ms.labels_), [100, 100])


def test_kde_explainer_3d_blobs_default_estimator():
    """The KDE explainer: 150 points around (2,2,2), (7,7,7), (5,13,13),
    cluster_std=0.6, default MeanShift() -> 3 clusters."""
    X, _ = make_blobs(n_samples=150, centers=[[2, 2, 2], [7, 7, 7], [5, 13, 13]],
                                   cluster_std=0.60, random_state=0)
    ms = gms.MeanShift(backend="numpy").fit(X)
    assert len(ms.cluster_centers_) == 3
