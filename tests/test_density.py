"""Kernel density (``score_samples``, ``Backend.log_kernel_density``) and the
anomaly helper (``gpumeanshift.anomaly.find_anomalies``).

References: scikit-learn's KernelDensity with rtol=0, atol=0 (exact; it has
no 'brute' algorithm, the kd-tree with zero tolerances sums every point) and
a float64 NumPy/SciPy log-sum-exp over the full distance matrix.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

from gpumeanshift import MeanShift
from gpumeanshift.anomaly import Anomalies, find_anomalies
from gpumeanshift.backends.numpy.backend import NumpyBackend

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

SK_KERNEL = {"gaussian": "gaussian", "flat": "tophat"}


def _blobs(n, d, seed, spread=4.0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-spread, spread, size=(3, d))
    return centers[rng.integers(0, 3, n)] + rng.normal(scale=0.6, size=(n, d))


def _queries(X, seed, n_far=4):
    """Near queries (data rows and random points in the box) plus far ones."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    lo, hi = X.min(axis=0), X.max(axis=0)
    box = rng.uniform(lo - 1.0, hi + 1.0, size=(40, d))
    far = X.mean(axis=0) + np.array([30.0, 1e3, 1e5, 1e6])[:n_far, None] * np.eye(d)[0]
    return np.concatenate([X[:20], box, far])


def _sklearn(X, Q, h, kernel):
    kde = KernelDensity(bandwidth=h, kernel=SK_KERNEL[kernel], algorithm="kd_tree",
                        rtol=0, atol=0)
    return kde.fit(np.asarray(X, np.float64)).score_samples(np.asarray(Q, np.float64))


def _ref_log_sum(X, Q, h, kernel):
    """Float64 reference of the backend's unnormalised log sum, by differences."""
    X = np.asarray(X, np.float64)
    Q = np.asarray(Q, np.float64)
    d2 = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    if kernel == "gaussian":
        return logsumexp(-0.5 * d2 / h**2, axis=1)
    count = (d2 <= h * h).sum(axis=1)
    out = np.full(len(Q), -np.inf)
    np.log(count, out=out, where=count > 0)
    return out


CASES = [  # (n, d, bandwidth, seed)
    (300, 1, 0.4, 0),
    (400, 2, 0.8, 1),
    (500, 3, 1.3, 2),
    (250, 5, 2.0, 3),
    (200, 8, 3.0, 4),
]


# ------------------------------------------------------------------ backend
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
@pytest.mark.parametrize("n,d,h,seed", CASES)
def test_backend_log_kernel_density_matches_reference(n, d, h, seed, kernel):
    X = _blobs(n, d, seed)
    Q = _queries(X, seed + 100)
    got = NumpyBackend(n_threads=2, tile_elements=4096).log_kernel_density(
        X, Q, bandwidth=h, kernel=kernel)
    ref = _ref_log_sum(X, Q, h, kernel)
    assert got.dtype == np.float64 and got.shape == (len(Q),)
    assert np.array_equal(np.isneginf(got), np.isneginf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-9, atol=1e-9)


def test_backend_gaussian_far_query_is_finite():
    X = _blobs(100, 2, 7)
    Q = np.array([[1e8, -1e8], [1e150, 0.0]])
    got = NumpyBackend().log_kernel_density(X, Q, bandwidth=0.5, kernel="gaussian")
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _ref_log_sum(X, Q, 0.5, "gaussian"), rtol=1e-12)


def test_backend_gaussian_overflowing_distance_is_neg_inf_without_warning():
    # |q - x|^2 beyond the float64 range: -inf, as scikit-learn gives, no NaN.
    X = np.zeros((3, 1))
    got = NumpyBackend().log_kernel_density(X, np.array([[1e200], [0.0]]),
                                            bandwidth=1.0, kernel="gaussian")
    assert got[0] == -np.inf
    np.testing.assert_allclose(got[1], np.log(3.0), rtol=1e-15)


def test_backend_flat_empty_neighbourhood_is_neg_inf():
    X = np.array([[0.0, 0.0], [0.5, 0.0]])
    got = NumpyBackend().log_kernel_density(X, np.array([[0.2, 0.0], [5.0, 5.0]]),
                                            bandwidth=1.0, kernel="flat")
    np.testing.assert_allclose(got[0], np.log(2.0), rtol=1e-15)
    assert got[1] == -np.inf


# ------------------------------------------------------------- score_samples
@pytest.mark.parametrize("n,d,h,seed", CASES)
def test_score_samples_gaussian_matches_sklearn(n, d, h, seed):
    X = _blobs(n, d, seed)
    Q = _queries(X, seed + 100)
    ms = MeanShift(bandwidth=h, kernel="gaussian", backend="numpy", bin_seeding=True).fit(X)
    got = ms.score_samples(Q)
    ref = _sklearn(X, Q, h, "gaussian")
    assert np.all(np.isfinite(ref)) and np.all(np.isfinite(got))
    assert ref[-1] < -1e10  # the far queries are really far
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("n,d,h,seed", CASES)
def test_score_samples_flat_matches_sklearn_tophat(n, d, h, seed):
    X = _blobs(n, d, seed)
    Q = _queries(X, seed + 100)
    ms = MeanShift(bandwidth=h, kernel="flat", backend="numpy", bin_seeding=True).fit(X)
    got = ms.score_samples(Q)
    ref = _sklearn(X, Q, h, "flat")
    assert np.isneginf(ref).any() and np.isfinite(ref).any()  # both cases exercised
    assert np.all(np.isneginf(got[np.isneginf(ref)]))
    fin = np.isfinite(got)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-9, atol=1e-12)
    # Where only scikit-learn is finite, its kd-tree bounds leave a spurious
    # count of ~1e-13 points (log-space rounding): no point is within h.
    log_norm = got[0] - np.log(np.count_nonzero(np.linalg.norm(X - Q[0], axis=1) <= h))
    spurious = np.isfinite(ref) & ~fin
    assert np.all(np.exp(ref[spurious] - log_norm) < 1e-9)
    assert np.all(np.isneginf(_ref_log_sum(X, Q[spurious], h, "flat")))


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_score_samples_float32(kernel):
    """float32 data: the distances are float32, the log-sum-exp float64.

    Stated tolerance: |error| <= 1e-5 * max(1, |reference|), the reference
    being scikit-learn in float64 on the same (float32-rounded) values.
    """
    X = _blobs(600, 3, 11).astype(np.float32)
    Q = _queries(X, 12).astype(np.float32)
    h = 1.0
    ms = MeanShift(bandwidth=h, kernel=kernel, backend="numpy", bin_seeding=True).fit(X)
    got = ms.score_samples(Q)
    ref = _sklearn(X, Q, h, kernel)
    assert got.dtype == np.float64
    assert np.all(np.isneginf(got[np.isneginf(ref)]))
    fin = np.isfinite(got)
    err = np.abs(got[fin] - ref[fin])
    assert np.all(err <= 1e-5 * np.maximum(1.0, np.abs(ref[fin]))), err.max()


def test_score_samples_of_training_points_are_the_kde_at_the_data():
    X = _blobs(300, 2, 21)
    ms = MeanShift(kernel="gaussian", bandwidth=0.9, backend="numpy", bin_seeding=True).fit(X)
    np.testing.assert_allclose(ms.score_samples(X), _sklearn(X, X, 0.9, "gaussian"), rtol=1e-6)


def test_score_samples_uses_estimated_bandwidth():
    X = _blobs(300, 2, 22)
    ms = MeanShift(kernel="gaussian", backend="numpy", bin_seeding=True).fit(X)  # bandwidth=None
    Q = _queries(X, 23)
    np.testing.assert_allclose(ms.score_samples(Q), _sklearn(X, Q, ms.bandwidth_, "gaussian"),
                               rtol=1e-6)


def test_fit_keeps_a_private_copy_of_the_data():
    X = _blobs(200, 2, 24)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(X)
    before = ms.score_samples(X[:5])
    X[:] = 100.0  # the caller changes its array afterwards
    np.testing.assert_array_equal(ms.score_samples(_blobs(200, 2, 24)[:5]), before)


def test_score_samples_errors():
    X = _blobs(100, 2, 25)
    with pytest.raises(ValueError, match="not fitted"):
        MeanShift(bandwidth=1.0, backend="numpy").score_samples(X)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but MeanShift is expecting 2"):
        ms.score_samples(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite|NaN|infinity"):
        ms.score_samples([[np.nan, 0.0]])
    del ms._fit_X  # what a model read by load_model looks like
    with pytest.raises(ValueError, match="holds no training data"):
        ms.score_samples(X)


# -------------------------------------------------------- emulated CUDA side
def _cuda_backend_or_skip():
    from gpumeanshift.backends.cuda.backend import CudaBackend

    if not hasattr(CudaBackend, "log_kernel_density"):
        pytest.skip("CudaBackend.log_kernel_density is not implemented yet")
    from gpumeanshift.testing import EmulatedRuntime

    return CudaBackend(EmulatedRuntime())


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_emulated_cuda_log_kernel_density(kernel, dtype, rtol):
    be = _cuda_backend_or_skip()
    X = _blobs(150, 3, 31).astype(dtype)
    Q = _queries(X, 32, n_far=3).astype(dtype)
    got = np.asarray(be.log_kernel_density(X, Q, bandwidth=1.1, kernel=kernel), np.float64)
    ref = _ref_log_sum(X, Q, 1.1, kernel)
    assert np.array_equal(np.isneginf(got), np.isneginf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=rtol, atol=rtol)


def test_emulated_cuda_score_samples_matches_sklearn():
    be = _cuda_backend_or_skip()
    X = _blobs(150, 2, 33)
    Q = _queries(X, 34, n_far=3)
    ms = MeanShift(kernel="gaussian", bandwidth=0.8, backend=be, bin_seeding=True).fit(X)
    np.testing.assert_allclose(ms.score_samples(Q), _sklearn(X, Q, 0.8, "gaussian"), rtol=1e-6)
    found = find_anomalies(ms, Q, density_quantile=0.05, max_distance=4.0)
    ref = find_anomalies(MeanShift(kernel="gaussian", bandwidth=0.8, backend="numpy", bin_seeding=True).fit(X), Q,
                         density_quantile=0.05, max_distance=4.0)
    np.testing.assert_array_equal(found.mask, ref.mask)


@pytest.mark.parametrize("weighted", [False, True])
def test_emulated_cuda_anomalies_of_device_training_data(weighted):
    """X=None on a fit of device data examines the training data the model
    keeps on the device: its log densities (and the fit's weights, for the
    quantile) come to the host once, where the host result is built (CuPy
    refuses a host mask or-ed with a device one, and np.asarray of a device
    array)."""
    be = _cuda_backend_or_skip()
    X = _blobs(150, 2, 35)
    w = np.random.default_rng(35).integers(1, 4, len(X)).astype(np.float64) if weighted else None
    ms = MeanShift(kernel="gaussian", bandwidth=0.8, backend=be).fit(
        be.runtime.asarray(X), sample_weight=None if w is None else be.runtime.asarray(w))
    ref = MeanShift(kernel="gaussian", bandwidth=0.8, backend="numpy").fit(X, sample_weight=w)
    for kwargs in ({"density_quantile": 0.05}, {"density_threshold": -4.0},
                   {"density_quantile": 0.05, "max_distance": 2.0}):
        found, want = find_anomalies(ms, **kwargs), find_anomalies(ref, **kwargs)
        assert type(found.mask) is np.ndarray and type(found.log_density) is np.ndarray
        np.testing.assert_allclose(found.log_density, want.log_density, rtol=1e-9)
        assert found.density_threshold == pytest.approx(want.density_threshold, rel=1e-9)
        np.testing.assert_array_equal(found.mask, want.mask)


# ----------------------------------------------------------------- anomalies
def _planted(seed, n_in=900, n_out=30):
    """Three tight blobs in 2-D and uniform outliers at least 4 away from them."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 6.0]])
    inl = centers[rng.integers(0, 3, n_in)] + rng.normal(scale=0.5, size=(n_in, 2))
    out = []
    while len(out) < n_out:
        p = rng.uniform(-15, 20, size=2)
        if np.min(np.linalg.norm(centers - p, axis=1)) > 4.0:
            out.append(p)
    return inl, np.array(out)


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_anomalies_novelty_density_recall_and_false_positives(kernel):
    train, _ = _planted(40)
    test_in, test_out = _planted(41)
    ms = MeanShift(bandwidth=1.0, kernel=kernel, backend="numpy", bin_seeding=True).fit(train)
    X = np.concatenate([test_in, test_out])
    found = find_anomalies(ms, X, density_quantile=0.02)
    is_out = np.r_[np.zeros(len(test_in), bool), np.ones(len(test_out), bool)]
    recall = found.mask[is_out].mean()
    fpr = found.mask[~is_out].mean()
    assert recall >= 0.95, recall
    assert fpr <= 0.05, fpr
    # The threshold is the training quantile, and the flags follow it.
    ref_train = _sklearn(train, train, 1.0, kernel)
    np.testing.assert_allclose(found.density_threshold, np.quantile(ref_train, 0.02), rtol=1e-6)
    np.testing.assert_array_equal(found.low_density, found.log_density < found.density_threshold)
    assert found.far is None and found.distance is None


def test_anomalies_far_from_centers():
    train, _ = _planted(42)
    test_in, test_out = _planted(43)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(train)
    X = np.concatenate([test_in, test_out])
    found = find_anomalies(ms, X, max_distance=3.0)
    is_out = np.r_[np.zeros(len(test_in), bool), np.ones(len(test_out), bool)]
    assert found.mask[is_out].mean() >= 0.95
    assert found.mask[~is_out].mean() <= 0.01
    # Independent reference: distance to the nearest center by brute force.
    C = ms.cluster_centers_
    dist = np.sqrt(((X[:, None, :] - C[None]) ** 2).sum(axis=2)).min(axis=1)
    np.testing.assert_allclose(found.distance, dist, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(found.far, dist > 3.0)
    assert found.distance_threshold == 3.0 and found.log_density is None


def test_anomalies_in_contaminated_training_data():
    """X=None: the outliers are in the fit. Each isolated outlier is its own
    one-point cluster, so the distance criterion needs min_cluster_size."""
    inl, out = _planted(44)
    X = np.concatenate([inl, out])
    is_out = np.r_[np.zeros(len(inl), bool), np.ones(len(out), bool)]
    ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X)
    by_density = find_anomalies(ms, density_quantile=0.04)
    assert by_density.mask[is_out].mean() >= 0.95
    assert by_density.mask[~is_out].mean() <= 0.02
    naive = find_anomalies(ms, max_distance=3.0)
    assert naive.mask[is_out].mean() < 0.5  # outliers are centers themselves
    by_distance = find_anomalies(ms, max_distance=3.0, min_cluster_size=20)
    assert by_distance.mask[is_out].mean() >= 0.95
    assert by_distance.mask[~is_out].mean() <= 0.01
    both = find_anomalies(ms, density_quantile=0.04, max_distance=3.0, min_cluster_size=20)
    np.testing.assert_array_equal(both.mask, by_density.mask | by_distance.mask)


def test_anomalies_density_threshold_given():
    train, _ = _planted(45)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(train)
    X = np.array([[0.0, 0.0], [12.0, 12.0]])
    found = find_anomalies(ms, X, density_threshold=-8.0)
    assert isinstance(found, Anomalies)
    np.testing.assert_array_equal(found.mask, _sklearn(train, X, 1.0, "gaussian") < -8.0)
    np.testing.assert_array_equal(found.mask, [False, True])


@pytest.mark.parametrize("kwargs,exc,match", [
    ({}, ValueError, "at least one criterion"),
    ({"density_quantile": 0.1, "density_threshold": -3.0}, ValueError, "not both"),
    ({"density_quantile": 0.0}, ValueError, r"density_quantile must be in \(0, 1\)"),
    ({"density_quantile": 1.0}, ValueError, r"density_quantile must be in \(0, 1\)"),
    ({"density_quantile": "low"}, TypeError, "density_quantile must be a real number"),
    ({"density_quantile": True}, TypeError, "density_quantile must be a real number"),
    ({"density_threshold": float("nan")}, ValueError, "density_threshold must not be NaN"),
    ({"density_threshold": "x"}, TypeError, "density_threshold must be a real number"),
    ({"max_distance": 0.0}, ValueError, "max_distance must be finite and > 0"),
    ({"max_distance": -1.0}, ValueError, "max_distance must be finite and > 0"),
    ({"max_distance": float("inf")}, ValueError, "max_distance must be finite"),
    ({"max_distance": 1.0, "min_cluster_size": 0}, ValueError, "min_cluster_size must be >= 1"),
    ({"max_distance": 1.0, "min_cluster_size": 2.5}, TypeError, "min_cluster_size must be an integer"),
    ({"max_distance": 1.0, "min_cluster_size": 10**6}, ValueError, "No cluster has min_cluster_size"),
])
def test_anomalies_bad_parameters(kwargs, exc, match):
    train, _ = _planted(46, n_in=90, n_out=3)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(train)
    with pytest.raises(exc, match=match):
        find_anomalies(ms, train[:5], **kwargs)


def test_anomalies_bad_model_and_data():
    X = _blobs(50, 2, 47)
    with pytest.raises(TypeError, match="model must be a fitted gpumeanshift.MeanShift"):
        find_anomalies(object(), X, max_distance=1.0)
    with pytest.raises(ValueError, match="not fitted"):
        find_anomalies(MeanShift(), X, max_distance=1.0)
    ms = MeanShift(bandwidth=1.0, backend="numpy", bin_seeding=True).fit(X)
    with pytest.raises(ValueError, match="X has 1 features, but the model is expecting 2"):
        find_anomalies(ms, np.zeros((3, 1)), max_distance=1.0)
