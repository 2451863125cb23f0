"""Device in, device out: a fit, predict and score_samples of device data
(the emulated runtime's arrays) move nothing of size n between host and device.

The emulated runtime counts the copies a CuPy runtime would make: uploads of
host data in ``asarray``, downloads through ``to_host`` / ``.get()``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import blobs
from gpumeanshift import MeanShift, estimate_bandwidth
from gpumeanshift.testing import emulated_backend
from gpumeanshift.testing.emulator import EmulatedDeviceArray

N, D, M = 600, 2, 12  # rows, features, seeds
SMALL = 64  # bytes of scalars (counts, flags) per call


def _fit_on_device(output_type="input", seed=3, **params):
    """A fit of device data with M device seeds, the transfer counters reset
    just before it; ``params`` replace the defaults (Gaussian, bandwidth 0.6)."""
    X = blobs(N, D, seed=seed)
    seeds = X[:: N // M][:M]
    be = emulated_backend()
    rt = be.runtime
    Xd, Sd = rt.to_device(X, 0), rt.to_device(seeds, 0)
    rt.reset_counters()
    params = {"bandwidth": 0.6, "kernel": "gaussian", "bin_seeding": False, **params}
    ms = MeanShift(seeds=Sd, backend=be, output_type=output_type, **params).fit(Xd)
    return X, seeds, Xd, be, rt, ms


def _reference(X, seeds):
    return MeanShift(bandwidth=0.6, kernel="gaussian", seeds=seeds, bin_seeding=False,
                     backend="numpy").fit(X)


def test_fit_predict_score_of_device_data_move_nothing_of_size_n():
    X, seeds, Xd, be, rt, ms = _fit_on_device()
    k, isz = len(ms.cluster_centers_), X.dtype.itemsize
    # per seed: mode (d values), n_iter, intensity, converged; per center: d values
    bound = 2 * (k * D + M * (D + 3)) * isz + SMALL * 8
    fit_down, fit_up = rt.d2h_bytes, rt.h2d_bytes
    assert fit_down <= bound, (fit_down, bound)
    assert fit_up <= bound, (fit_up, bound)  # X never uploaded: it is on the device
    Q = rt.to_device(X[::-1].copy(), 0)
    rt.reset_counters()
    labels = ms.predict(Q)
    scores = ms.score_samples(Q)
    assert rt.d2h_bytes <= bound and rt.h2d_bytes <= bound, (rt.d2h_bytes, rt.h2d_bytes)
    # device in, device out: every array result stays a device array
    for a in (ms.labels_, ms.cluster_centers_, ms.cluster_sizes_, ms.center_intensity_,
              labels, scores):
        assert isinstance(a, EmulatedDeviceArray), type(a)
    # the same answers as the NumPy backend on host data
    ref = _reference(X, seeds)
    np.testing.assert_allclose(np.asarray(ms.cluster_centers_), ref.cluster_centers_,
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(ms.labels_), ref.labels_)
    np.testing.assert_array_equal(np.asarray(ms.cluster_sizes_), ref.cluster_sizes_)
    np.testing.assert_array_equal(np.asarray(labels), ref.predict(X[::-1]))
    np.testing.assert_allclose(np.asarray(scores), ref.score_samples(X[::-1]), rtol=1e-9)


def test_training_copy_for_scores_is_not_the_callers_array():
    X, seeds, Xd, be, rt, ms = _fit_on_device()
    Q = rt.to_device(X[:5], 0)
    before = np.asarray(ms.score_samples(Q)).copy()
    Xd[...] = 100.0  # the caller changes its array after the fit
    np.testing.assert_array_equal(np.asarray(ms.score_samples(Q)), before)


@pytest.mark.parametrize("output_type", ["numpy"])
def test_output_type_numpy_gives_host_arrays(output_type):
    X, seeds, Xd, be, rt, ms = _fit_on_device(output_type)
    labels = ms.predict(rt.to_device(X, 0))
    for a in (ms.labels_, ms.cluster_centers_, ms.cluster_sizes_, ms.center_intensity_, labels):
        assert type(a) is np.ndarray, type(a)
    np.testing.assert_array_equal(ms.labels_, _reference(X, seeds).labels_)


def test_bad_device_input_is_refused_on_the_device():
    be = emulated_backend()
    rt = be.runtime
    X = blobs(50, 2, seed=4)
    X[3, 1] = np.nan
    rt.reset_counters()
    with pytest.raises(ValueError, match="X contains NaN"):
        MeanShift(bandwidth=0.5, backend=be).fit(rt.to_device(X, 0))
    assert rt.d2h_bytes == 0
    with pytest.raises(ValueError, match="2-D"):
        MeanShift(bandwidth=0.5, backend=be).fit(rt.to_device(X[:, 0], 0))


@pytest.mark.parametrize("bandwidth", [None, "scott", "silverman"])
@pytest.mark.parametrize("label_assignment", ["nearest", "basin"])
def test_estimated_bandwidth_and_basin_labels_stay_on_the_device(bandwidth, label_assignment):
    # The bandwidth estimate (k-th neighbour distances on the device, summed
    # there per batch of 500), the rules of thumb (d variances) and basin
    # labels (each point's own climb, on the device) add only O(n / 500 + d)
    # values to what crosses.
    X, seeds, Xd, be, rt, ms = _fit_on_device(seed=5, bandwidth=bandwidth, kernel="flat",
                                              cluster_all=False,
                                              label_assignment=label_assignment)
    k, isz = len(ms.cluster_centers_), X.dtype.itemsize
    bound = 2 * (k * D + M * (D + 3)) * isz + (N // 500 + 1 + D) * 8 + SMALL * 8
    assert rt.d2h_bytes <= bound, (rt.d2h_bytes, bound)
    assert rt.h2d_bytes <= bound, (rt.h2d_bytes, bound)
    assert isinstance(ms.labels_, EmulatedDeviceArray)
    ref = MeanShift(bandwidth=bandwidth, seeds=seeds, backend="numpy", cluster_all=False,
                    label_assignment=label_assignment).fit(X)
    assert ms.bandwidth_ == pytest.approx(ref.bandwidth_, rel=1e-12, abs=0)
    np.testing.assert_allclose(np.asarray(ms.cluster_centers_), ref.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(ms.labels_), ref.labels_)


def test_estimate_bandwidth_of_device_data_equals_the_host_estimate():
    X = blobs(1234, 3, seed=6)  # 2 full batches of 500 and a partial one
    be = emulated_backend()
    rt = be.runtime
    Xd = rt.to_device(X, 0)
    for kw in ({}, {"quantile": 0.1}, {"n_samples": 300, "random_state": 2}):
        rt.reset_counters()
        got = estimate_bandwidth(Xd, backend=be, **kw)
        assert rt.d2h_bytes <= (1234 // 500 + 3) * 8, rt.d2h_bytes
        assert got == pytest.approx(estimate_bandwidth(X, **kw), rel=1e-13, abs=0)
    assert type(got) is np.float64
