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


# ------------------------------------------------ sample weights, bin seeding
def _weights(n, seed=7):
    """Integer weights 0..3 (some rows of weight 0): the host reference is
    exact, the same as np.repeat of the data."""
    return np.random.default_rng(seed).integers(0, 4, n).astype(np.float64)


def _same_fit(ms, ref):
    np.testing.assert_array_equal(np.asarray(ms.labels_), ref.labels_)
    np.testing.assert_allclose(np.asarray(ms.cluster_centers_), ref.cluster_centers_,
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(ms.center_intensity_), ref.center_intensity_)
    np.testing.assert_array_equal(np.asarray(ms.cluster_sizes_), ref.cluster_sizes_)


@pytest.mark.parametrize("weights_on,params", [
    ("device", {"bandwidth": 0.6, "kernel": "gaussian"}),
    ("host", {"bandwidth": 0.6, "kernel": "gaussian"}),
    ("device", {"bandwidth": 0.9, "kernel": "flat", "label_assignment": "basin",
                "cluster_all": False}),
    ("device", {"bandwidth": None, "kernel": "flat"}),
    ("device", {"bandwidth": "scott", "kernel": "gaussian"}),
])
def test_weighted_fit_of_device_data_moves_nothing_of_size_n(weights_on, params):
    # The weights are validated on the device, the rows of weight 0 dropped
    # there, and basin labels climb there; device weights never cross, host
    # weights are uploaded once. The weighted k-th neighbour search of the
    # estimate caps its k on the device (ms_segment_sum), not on a download.
    X = blobs(N, D, seed=3)
    seeds = X[:: N // M][:M]
    w = _weights(N)
    be = emulated_backend()
    rt = be.runtime
    Xd, Sd, wd = rt.to_device(X, 0), rt.to_device(seeds, 0), rt.to_device(w, 0)
    rt.reset_counters()
    ms = MeanShift(seeds=Sd, backend=be, bin_seeding=False, **params).fit(
        Xd, sample_weight=wd if weights_on == "device" else w)
    k, isz = len(ms.cluster_centers_), X.dtype.itemsize
    bound = 2 * (k * D + M * (D + 3)) * isz + (N // 500 + 1 + D) * 8 + SMALL * 8
    assert rt.d2h_bytes <= bound, (rt.d2h_bytes, bound)
    upload = N * 8 if weights_on == "host" else 0
    assert rt.h2d_bytes <= bound + upload, (rt.h2d_bytes, bound + upload)
    for a in (ms.labels_, ms.cluster_centers_, ms.cluster_sizes_, ms.center_intensity_):
        assert isinstance(a, EmulatedDeviceArray), type(a)
    ref = MeanShift(seeds=seeds, backend="numpy", bin_seeding=False, **params).fit(
        X, sample_weight=w)
    # sums of the estimate on the device: equal to the host's fsum to rounding
    assert ms.bandwidth_ == pytest.approx(ref.bandwidth_, rel=1e-13, abs=0)
    _same_fit(ms, ref)
    # the weighted density of the fit's (device) data and weights
    np.testing.assert_allclose(np.asarray(ms.score_samples(Xd[:50])),
                               ref.score_samples(X[:50]), rtol=1e-9)
    # the weights are those of np.repeat: the unweighted fit of the repeated rows
    if params["bandwidth"] == 0.6:
        rep = MeanShift(seeds=seeds, backend="numpy", bin_seeding=False, **params).fit(
            np.repeat(X, w.astype(int), axis=0))
        np.testing.assert_allclose(np.asarray(ms.cluster_centers_), rep.cluster_centers_,
                                   rtol=0, atol=1e-9)
        np.testing.assert_array_equal(np.asarray(ms.center_intensity_), rep.center_intensity_)


def test_weighted_basin_labels_of_device_data_with_the_data_as_seeds():
    # Every row of positive weight is a seed; the rows of weight 0 climb
    # once more for their basin labels, on the device.
    X = blobs(200, D, seed=10)
    w = _weights(200, seed=15)
    be = emulated_backend()
    rt = be.runtime
    params = dict(bandwidth=0.9, kernel="flat", bin_seeding=False, label_assignment="basin")
    Xd, wd = rt.to_device(X, 0), rt.to_device(w, 0)
    rt.reset_counters()
    ms = MeanShift(backend=be, **params).fit(Xd, sample_weight=wd)
    # what crosses: the seeds' (the positive rows') results, not the rest
    k, n_seeds, isz = len(ms.cluster_centers_), int((w > 0).sum()), X.dtype.itemsize
    bound = 2 * (k * D + n_seeds * (D + 3)) * isz + SMALL * 8
    assert rt.d2h_bytes <= bound and rt.h2d_bytes <= SMALL * 8, (rt.d2h_bytes, rt.h2d_bytes)
    assert isinstance(ms.labels_, EmulatedDeviceArray)
    _same_fit(ms, MeanShift(backend="numpy", **params).fit(X, sample_weight=w))


@pytest.mark.parametrize("weights_on", [None, "device", "host"])
@pytest.mark.parametrize("params", [
    {"bandwidth": 0.6, "kernel": "flat"},
    {"bandwidth": 0.8, "kernel": "gaussian", "min_bin_freq": 3},
])
def test_bin_seeding_of_device_data_bins_on_the_device(weights_on, params):
    # Only the bin seeds' per-seed results cross, not the data.
    from gpumeanshift import get_bin_seeds

    X = blobs(N, D, seed=8)
    w = None if weights_on is None else _weights(N, seed=9)
    be = emulated_backend()
    rt = be.runtime
    Xd = rt.to_device(X, 0)
    sw = None if w is None else (rt.to_device(w, 0) if weights_on == "device" else w)
    rt.reset_counters()
    ms = MeanShift(backend=be, bin_seeding=True, **params).fit(Xd, sample_weight=sw)
    pos = slice(None) if w is None else w > 0
    n_seeds = len(get_bin_seeds(X[pos], params["bandwidth"], params.get("min_bin_freq", 1),
                                sample_weight=None if w is None else w[pos]))
    assert 1 < n_seeds < N // 10
    k, isz = len(ms.cluster_centers_), X.dtype.itemsize
    bound = 2 * (k * D + n_seeds * (D + 3)) * isz + SMALL * 8
    assert rt.d2h_bytes <= bound, (rt.d2h_bytes, bound)
    upload = N * 8 if weights_on == "host" else 0
    assert rt.h2d_bytes <= bound + upload, (rt.h2d_bytes, bound + upload)
    assert isinstance(ms.labels_, EmulatedDeviceArray)
    ref = MeanShift(backend="numpy", bin_seeding=True, **params).fit(X, sample_weight=w)
    assert ms.n_iter_ == ref.n_iter_
    _same_fit(ms, ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_device_bin_seeds_are_the_host_bin_seeds(dtype, weighted):
    # The same seeds, bit for bit and in the same order (first occurrence),
    # as get_bin_seeds on the host: -0.0 and 0.0 share a cell, cells below
    # min_bin_freq (counts or summed fractional weights) give none, and
    # binning that would give a seed per point falls back to the points.
    from gpumeanshift.seeding import device_bin_seeds, get_bin_seeds

    rng = np.random.default_rng(11)
    X = rng.normal(0, 1.5, (700, 3)).astype(dtype)
    X[:40] = rng.normal(0, 0.01, (40, 3))  # cells around 0, with -0.0 after rounding
    X[40] = [-0.0, 0.0, -0.0]
    w = rng.uniform(0.05, 1.3, len(X)) if weighted else None  # fractional: order matters
    be = emulated_backend()
    rt = be.runtime
    Xd = rt.to_device(X, 0)
    wd = None if w is None else rt.to_device(w, 0)
    for bin_size, min_bin_freq in ((1.0, 1), (1.0, 3), (0.7, 2)):
        want = get_bin_seeds(X, bin_size, min_bin_freq, sample_weight=w)
        rt.reset_counters()
        got = device_bin_seeds(Xd, bin_size, min_bin_freq, be, sample_weight=wd)
        assert rt.d2h_bytes <= SMALL and rt.h2d_bytes <= SMALL, (rt.d2h_bytes, rt.h2d_bytes)
        assert isinstance(got, EmulatedDeviceArray) and got.dtype == dtype
        assert 1 < len(want) < len(X)
        np.testing.assert_array_equal(np.asarray(got).view(np.uint8), want.view(np.uint8))
    # a seed per point: the points themselves, with scikit-learn's warning
    with pytest.warns(UserWarning, match="Binning data failed"):
        got = device_bin_seeds(Xd, 1e-6, 1, be, sample_weight=None)
    assert got is Xd


def test_segment_sums_add_in_order_as_the_host_does():
    # Sequential double sums, as np.cumsum and np.bincount add: the cap of the
    # weighted k-th neighbour search and bin seeding's weight per cell.
    v = np.random.default_rng(12).uniform(0, 1e3, 5000) ** 3  # rounding differs by order
    be = emulated_backend()
    rt = be.runtime
    vd = rt.to_device(v, 0)
    total = float(np.asarray(be.segment_sums(vd))[0])
    assert total == float(np.cumsum(v)[-1])
    assert total != float(np.sum(v))  # pairwise: another sum, so the order was tested
    starts = np.array([0, 3, 3, 1000, 4999])
    got = np.asarray(be.segment_sums(vd, rt.to_device(starts, 0)))
    ids = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(v)]))
    np.testing.assert_array_equal(got, np.bincount(ids, weights=v, minlength=len(starts)))
    assert got[1] == 0.0


def test_weighted_kth_neighbor_cap_is_computed_on_the_device():
    # k equal to the total weight: the kernel's own sequential sum caps it,
    # computed on the device; the answer is each query's farthest row.
    rng = np.random.default_rng(13)
    X = rng.normal(size=(400, 2))
    w = rng.uniform(0.1, 2.0, 400)
    be = emulated_backend()
    rt = be.runtime
    Xd, wd = rt.to_device(X, 0), rt.to_device(w, 0)
    total = float(np.sum(w))
    rt.reset_counters()
    got = be.kth_neighbor_distance(Xd, Xd[:9], total, weights=wd)
    assert rt.d2h_bytes <= SMALL and rt.h2d_bytes <= SMALL, (rt.d2h_bytes, rt.h2d_bytes)
    far = np.sqrt(((X[:9, None, :] - X[None, :, :]) ** 2).sum(axis=2)).max(axis=1)
    np.testing.assert_allclose(np.asarray(got), far, rtol=1e-12)


def test_weighted_estimate_bandwidth_of_device_data():
    X = blobs(1234, 3, seed=6)
    w = _weights(1234, seed=14)
    be = emulated_backend()
    rt = be.runtime
    Xd, wd = rt.to_device(X, 0), rt.to_device(w, 0)
    for kw in ({}, {"quantile": 0.1}, {"n_samples": 300, "random_state": 2}):
        rt.reset_counters()
        got = estimate_bandwidth(Xd, backend=be, sample_weight=wd, **kw)
        assert rt.d2h_bytes <= SMALL * 8, rt.d2h_bytes
        assert got == pytest.approx(estimate_bandwidth(X, sample_weight=w, **kw),
                                    rel=1e-13, abs=0)
        # integer weights: the estimate of the repeated rows
        if not kw:
            rep = np.repeat(X, w.astype(int), axis=0)
            assert got == pytest.approx(estimate_bandwidth(rep), rel=1e-12)


@pytest.mark.parametrize("bad,match", [
    (lambda w: np.where(np.arange(len(w)) == 5, -1.0, w), r"must be >= 0: 1 value\(s\) are "
                                                          r"negative \(first at index 5: -1.0\)"),
    (lambda w: np.where(np.arange(len(w)) == 7, np.nan, w),
     r"must be finite: 1 value\(s\) are NaN or infinite \(first at index 7"),
    (lambda w: np.where(np.arange(len(w)) % 9 == 2, np.inf, w), r"must be finite: 6 value"),
    (lambda w: np.zeros_like(w), "zero for every row"),
    (lambda w: w[:-1], "has 49 values but X has 50 rows"),
    (lambda w: w.reshape(5, 10), "must be 1-D"),
])
def test_bad_device_weights_are_refused_on_the_device(bad, match):
    be = emulated_backend()
    rt = be.runtime
    X = blobs(50, 2, seed=4)
    w = bad(np.ones(50))
    Xd, wd = rt.to_device(X, 0), rt.to_device(w, 0)
    rt.reset_counters()
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=0.5, backend=be).fit(Xd, sample_weight=wd)
    assert rt.d2h_bytes == 0 and rt.h2d_bytes == 0, (rt.d2h_bytes, rt.h2d_bytes)
    # the same refusal as for host weights
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=0.5, backend="numpy").fit(X, sample_weight=w)
