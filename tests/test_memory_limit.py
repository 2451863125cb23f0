"""max_memory: honoured by both backends, results unchanged under a tight limit,
and an out-of-memory error in the middle of a fit (emulated device) halves
the batch and the fit completes with the same result."""

from __future__ import annotations

import numpy as np
import pytest

from gpumeanshift import MeanShift, mean_shift
from gpumeanshift._driver import make_backend
from gpumeanshift.backends.numpy.backend import NumpyBackend
from _emulation import emulated_backend_or_skip


_emulated = emulated_backend_or_skip


def blobs(n=300, d=2, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, (4, d))
    return centers[rng.integers(0, 4, n)] + rng.normal(0, 0.6, (n, d))


# ------------------------------------------------------------------ NumPy
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_numpy_tight_limit_gives_the_same_fit(kernel):
    X = blobs()
    ref = MeanShift(bandwidth=1.5, kernel=kernel, backend="numpy").fit(X)
    # 2 threads x 32 bytes x 1024 elements: the smallest tile there is
    # (tiles of 1024 elements instead of 2**17).
    tight = MeanShift(bandwidth=1.5, kernel=kernel, backend="numpy", n_jobs=2,
                      max_memory=2 * 32 * 1024).fit(X)
    np.testing.assert_array_equal(tight.labels_, ref.labels_)
    np.testing.assert_allclose(tight.cluster_centers_, ref.cluster_centers_,
                               rtol=0, atol=1e-12 * 1.5)
    np.testing.assert_array_equal(tight.predict(X[:50]), ref.predict(X[:50]))
    c, lab = mean_shift(X, bandwidth=1.5, kernel=kernel, backend="numpy", n_jobs=2,
                        max_memory=2 * 32 * 1024)
    np.testing.assert_array_equal(lab, ref.labels_)


def test_numpy_limit_sets_tile_size():
    be = make_backend("numpy", n_jobs=2, max_memory=2 * 32 * 4096)
    assert isinstance(be, NumpyBackend)
    assert be.tile_elements == 4096 and be.n_threads == 2
    assert make_backend("numpy", n_jobs=1).tile_elements == 2**17  # default untouched


def test_numpy_limit_operations_match_unlimited():
    X = blobs(400, 3, seed=3)
    Q = blobs(50, 3, seed=4)
    free, tight = NumpyBackend(n_threads=1), NumpyBackend(n_threads=1, max_memory=32 * 1024)
    assert tight.tile_elements == 1024
    for name, args in [("nearest", (Q, X[:7])), ("count_within", (X, Q, 2.0)),
                       ("kth_neighbor_distance", (X, Q, 9))]:
        a, b = getattr(free, name)(*args), getattr(tight, name)(*args)
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(u, v, err_msg=name)
    np.testing.assert_allclose(tight.kernel_sum(X, Q, bandwidth=1.0, kernel="gaussian"),
                               free.kernel_sum(X, Q, bandwidth=1.0, kernel="gaussian"),
                               rtol=1e-13)


def test_numpy_limit_too_small_is_a_clear_valueerror():
    with pytest.raises(ValueError, match=r"max_memory=1000 bytes is too small.*at least 65536"):
        MeanShift(bandwidth=1.0, backend="numpy", n_jobs=2, max_memory=1000).fit(blobs(20))
    # Enough for a tile, not for one row of distances to 2000 points.
    X = blobs(2000, 2)
    with pytest.raises(ValueError, match="one row of distances to 2000 points"):
        # bandwidth=None: the estimate needs each point's distances to all 2000
        MeanShift(backend="numpy", n_jobs=1, max_memory=32 * 1024).fit(X)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-5, ValueError), (1.5, TypeError),
                                     ("1GB", TypeError)])
def test_max_memory_is_validated(bad, exc):
    with pytest.raises(exc, match="max_memory"):
        MeanShift(bandwidth=1.0, backend="numpy", max_memory=bad).fit(blobs(20))


def test_max_memory_with_a_backend_object_is_refused():
    with pytest.raises(ValueError, match="configure the NumpyBackend object itself"):
        MeanShift(bandwidth=1.0, backend=NumpyBackend(), max_memory=1 << 20).fit(blobs(20))


def test_n_jobs_goes_only_to_the_numpy_backend(monkeypatch):
    """backend="auto" resolving to CUDA must not receive n_threads."""
    import gpumeanshift.backends.base as base

    seen = {}

    def fake_cuda(**options):
        seen.update(options)
        return NumpyBackend()  # stands in for the device backend

    monkeypatch.setattr(base, "cuda_available", lambda: True)
    monkeypatch.setattr(base, "_factory", lambda name: fake_cuda if name == "cupy"
                        else NumpyBackend)
    make_backend("auto", n_jobs=4, max_memory=1 << 22)
    assert seen == {"max_memory": 1 << 22}
    seen.clear()
    make_backend("cupy", n_jobs=4)
    assert seen == {}


# ------------------------------------------------------------- emulated CUDA
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_emulated_cuda_max_memory_caps_batches_same_fit(kernel):
    X = blobs(200, 2, seed=5)
    free = _emulated(split=False)
    ref = MeanShift(bandwidth=1.5, kernel=kernel, backend=free).fit(X)
    capped = _emulated(split=False, max_memory=40 * 48)  # ~40 seeds per batch
    ms = MeanShift(bandwidth=1.5, kernel=kernel, backend=capped).fit(X)
    # The cap splits the seeds of the shift into batches (~40 seeds each).
    capped.shift(X, X, bandwidth=1.5, kernel=kernel, max_iter=300, tol=1e-3)
    free.shift(X, X, bandwidth=1.5, kernel=kernel, max_iter=300, tol=1e-3)
    assert capped.last_plan["batch_rows"] <= 48
    assert free.last_plan["batch_rows"] == 200
    np.testing.assert_array_equal(ms.labels_, ref.labels_)
    np.testing.assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-12)


def test_cuda_factory_accepts_max_memory():
    cb = pytest.importorskip("gpumeanshift.backends.cuda.backend")
    be = cb.CudaBackend(runtime=None, max_memory=12345)
    assert be.max_memory == 12345
    with pytest.raises(ValueError, match="max_memory"):
        cb.CudaBackend(runtime=None, max_memory=0)


def test_emulated_oom_mid_fit_halves_the_batch_same_result():
    """Free memory over-reported: the first seed batches fail with an
    (emulated) out-of-memory error mid-fit; the batch halves and the fit
    gives the same clustering as an unconstrained one."""
    X = blobs(200, 3, seed=6)
    ref_be = _emulated(split=False)
    ref = MeanShift(bandwidth=1.4, kernel="flat", backend=ref_be).fit(X)
    fixed = 200 * 3 * 8 * 2 + 2 * 200 * 8 + 200  # data copy + result buffers
    be = _emulated(split=False, runtime_options={"memory_limit": fixed + 3000,
                                                 "reported_free": 1 << 30})
    ms = MeanShift(bandwidth=1.4, kernel="flat", backend=be).fit(X)
    assert be.runtime.failed_allocations >= 2  # 200 seeds failed, then 100
    np.testing.assert_array_equal(ms.labels_, ref.labels_)
    np.testing.assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-12)
