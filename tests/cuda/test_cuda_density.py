"""CudaBackend.log_kernel_density (kernels/density.cu) vs a float64 reference.

Reference: scipy's logsumexp of -|q - x|^2 / (2 h^2) over the data, in
float64 (Gaussian), and the log of an exact count (flat).
Tolerances: float64 relative 1e-6 (observed ~1e-13); float32
|out - ref| <= 2e-6 * (1 + |ref|) (observed <= 5e-7: the exponent of a far
query carries float32 rounding of its squared distance).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from cuda_testlib import blobs, make_backend, runtime_kind, to_numpy  # noqa: F401
from gpumeanshift.backends.numpy.backend import NumpyBackend


def _ref(X, Q, h, kernel):
    X = np.asarray(X, np.float64)
    Q = np.asarray(Q, np.float64)
    d2 = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    if kernel == "flat":
        cnt = (d2 <= h * h).sum(axis=1).astype(np.float64)
        out = np.full(len(Q), -np.inf)
        np.log(cnt, out=out, where=cnt > 0)
        return out
    return logsumexp(-d2 / (2 * h * h), axis=1)


def _queries(X, d, rng):
    near = X[::9]
    between = rng.normal(10.0, 2.0, (7, d))
    far = rng.normal(0, 1, (5, d)) + 60.0  # every weight underflows: must stay finite
    return np.concatenate([near, between, far])


@pytest.mark.parametrize("d", [1, 2, 3, 5, 16, 64])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_gaussian_log_density_parity(make_backend, dtype, d):
    rng = np.random.default_rng(d)
    X = blobs(200 if d < 64 else 120, d, seed=d)
    Q = _queries(X, d, rng)
    h = 0.5 * np.sqrt(d)
    X, Q = X.astype(dtype), Q.astype(dtype)
    out = to_numpy(make_backend().log_kernel_density(X, Q, bandwidth=h, kernel="gaussian"))
    ref = _ref(X, Q, h, "gaussian")
    assert out.dtype == np.float64 and out.shape == (len(Q),)
    assert np.isfinite(out).all() and ref[-5:].max() < -1000  # far queries: finite, very low
    if dtype == np.float64:
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=0)
    else:
        assert (np.abs(out - ref) <= 2e-6 * (1 + np.abs(ref))).all()


@pytest.mark.parametrize("d", [1, 3, 16])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_flat_log_density_is_log_count(make_backend, dtype, d):
    rng = np.random.default_rng(2)
    X = blobs(200, d, seed=d).astype(dtype)
    Q = _queries(X, d, rng).astype(dtype)
    h = 0.8 * np.sqrt(d)
    out = to_numpy(make_backend().log_kernel_density(X, Q, bandwidth=h, kernel="flat"))
    ref = _ref(X, Q, h, "flat")
    assert np.isneginf(out[-5:]).all()  # nobody within reach
    if dtype == np.float64:
        np.testing.assert_array_equal(out, ref)
    else:  # a point at the boundary may fall on either side
        fin = np.isfinite(ref)
        assert (np.isfinite(out) == fin).all()
        np.testing.assert_allclose(np.exp(out[fin]), np.exp(ref[fin]), atol=1.01)


def test_matches_the_numpy_backend(make_backend):
    X = blobs(300, 3, seed=4) - 10.0
    Q = _queries(X, 3, np.random.default_rng(0))
    for kernel in ("gaussian", "flat"):
        out = to_numpy(make_backend().log_kernel_density(X, Q, bandwidth=0.7, kernel=kernel))
        ref = NumpyBackend().log_kernel_density(X, Q, bandwidth=0.7, kernel=kernel)
        np.testing.assert_allclose(out, ref, rtol=1e-9, atol=0)


def test_tiny_bandwidth_and_empty_inputs(make_backend):
    be = make_backend()
    X = np.array([[0.0], [1.0]], np.float32)
    # float64: exact far into the tail (log(2) - 0.125 / h^2)
    out = to_numpy(be.log_kernel_density(X.astype(np.float64), np.array([[0.5]]),
                                         bandwidth=1e-30, kernel="gaussian"))
    np.testing.assert_allclose(out, [-0.125e60], rtol=1e-12)
    # float32: squared distances past the float32 range saturate; still finite
    out = to_numpy(be.log_kernel_density(X, np.array([[0.5]], np.float32), bandwidth=1e-30,
                                         kernel="gaussian"))
    assert np.isfinite(out).all() and out[0] < -1e38
    none = to_numpy(be.log_kernel_density(np.empty((0, 1)), np.zeros((2, 1)), bandwidth=1.0,
                                          kernel="gaussian"))
    assert np.isneginf(none).all()
    assert to_numpy(be.log_kernel_density(X, np.empty((0, 1), np.float32), bandwidth=1.0,
                                          kernel="flat")).shape == (0,)
    with pytest.raises(ValueError, match="kernel must be one of"):
        be.log_kernel_density(X, X, bandwidth=1.0, kernel="epanechnikov")
