"""gpumeanshift.dask with sample_weight, on a local cluster of 2 worker processes.

The reference is the repetition: for integer weights w, the weighted fit
equals the unweighted single-machine fit of ``np.repeat(X, w, axis=0)``
(centers within 1e-9, the labels of the weighted rows equal those of their
repeated rows, same ``n_iter_``; intensities and cluster sizes are the
repeated counts, as summed weights).
"""

import logging
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gpumeanshift.dask as gdask  # noqa: E402
from gpumeanshift import MeanShift, estimate_bandwidth  # noqa: E402

BANDWIDTH = 1.0
CHUNK = 25


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            Client(lc) as client:
        yield client


def two_blobs(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 0.5, (n, 2)), rng.normal(3.0, 0.5, (n, 2))])


X = two_blobs()
W = np.random.default_rng(1).integers(0, 5, len(X))


def reference(X, w, **params):
    """The single-machine unweighted fit of the repeated rows."""
    return MeanShift(backend="numpy", **params).fit(np.repeat(X, w, axis=0))


def assert_repeats(ours, ref, w):
    centers = np.asarray(ours.cluster_centers_)
    assert centers.shape == ref.cluster_centers_.shape
    np.testing.assert_allclose(centers, ref.cluster_centers_, rtol=0, atol=1e-9)
    labels = ours.labels_.compute() if isinstance(ours.labels_, da.Array) else ours.labels_
    np.testing.assert_array_equal(np.repeat(labels, w), np.asarray(ref.labels_))
    assert ours.n_iter_ == ref.n_iter_
    assert ours.center_intensity_.dtype == np.float64
    np.testing.assert_array_equal(ours.center_intensity_, ref.center_intensity_)
    np.testing.assert_array_equal(ours.cluster_sizes_, ref.cluster_sizes_)
    assert ours.bandwidth_ == pytest.approx(ref.bandwidth_, rel=1e-12)


def fit(X, w, chunks=CHUNK, **params):
    params.setdefault("bandwidth", BANDWIDTH)
    return gdask.MeanShift(backend="numpy", **params).fit(da.from_array(X, chunks=chunks),
                                                          sample_weight=w)


# ------------------------------------------------------------------ repetition
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_repetition_matches_single_machine(client, strategy, kernel, bin_seeding):
    ours = fit(X, W, kernel=kernel, bin_seeding=bin_seeding, strategy=strategy)
    assert ours.strategy_ == strategy
    assert_repeats(ours, reference(X, W, bandwidth=BANDWIDTH, kernel=kernel,
                                   bin_seeding=bin_seeding), W)


@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_repetition_matches_dask_unweighted(client, strategy):
    """Against gpumeanshift's own unweighted Dask fit of the repeated rows."""
    Xr = np.repeat(X, W, axis=0)
    ref = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy=strategy).fit(
        da.from_array(Xr, chunks=CHUNK))
    ours = fit(X, W, strategy=strategy)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.repeat(ours.labels_.compute(), W), ref.labels_.compute())
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(ours.center_intensity_, ref.center_intensity_)
    np.testing.assert_array_equal(ours.cluster_sizes_, ref.cluster_sizes_)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data_seed=st.integers(0, 2**16), w=st.lists(st.integers(0, 5), min_size=24, max_size=24),
       kernel=st.sampled_from(["flat", "gaussian"]), bin_seeding=st.booleans(),
       strategy=st.sampled_from(["data", "seeds"]), integer_data=st.booleans())
def test_random_integer_weights(client, data_seed, w, kernel, bin_seeding, strategy,
                                integer_data):
    """Random weights 0-5 on 24 points: continuous data, or integer data with
    the flat kernel (boundary ties, decided exactly on both sides)."""
    w = np.array(w)
    if w.sum() == 0:
        w[0] = 1
    rng = np.random.default_rng(data_seed)
    if integer_data:
        Xs = rng.integers(-3, 4, (24, 2)).astype(np.float64)
        kernel, h = "flat", 2.0
    else:
        Xs = rng.normal(0.0, 1.5, (24, 2))
        h = 1.2
    params = dict(bandwidth=h, kernel=kernel, bin_seeding=bin_seeding)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binning may fall back to the points, on both sides
        ref = reference(Xs, w, **params)
        ours = fit(Xs, w, chunks=7, strategy=strategy, **params)
    assert_repeats(ours, ref, w)


def test_seeds_strategy_integer_ties(client):
    """A point at distance == bandwidth of a seed, integer data: the
    "seeds" strategy is the backend's weighted shift."""
    Xi = np.array([[-1.0, 1.0], [-1.0, 3.0], [0.0, 0.0], [3.0, -3.0]])
    w = np.array([1, 2, 1, 0])
    ref = reference(Xi, w, bandwidth=2.0)
    assert_repeats(fit(Xi, w, chunks=2, bandwidth=2.0, strategy="data"), ref, w)
    assert_repeats(fit(Xi, w, chunks=2, bandwidth=2.0, strategy="seeds"), ref, w)


# ------------------------------------------------------------------ zero weights
@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_zero_weight_rows_take_no_part_but_are_labelled(client, strategy):
    far = np.array([[40.0, 40.0], [41.0, 40.0]])
    Xz = np.concatenate([X, far])
    w = np.concatenate([np.ones(len(X)), [0.0, 0.0]])
    ours = fit(Xz, w, strategy=strategy)
    ref = MeanShift(backend="numpy", bandwidth=BANDWIDTH).fit(X)
    # The far rows would be a cluster of their own; at weight 0 they seed nothing.
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    labels = ours.labels_.compute()
    np.testing.assert_array_equal(labels[:len(X)], ref.labels_)
    np.testing.assert_array_equal(labels[len(X):], ref.predict(far))
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(ours.cluster_sizes_, ref.cluster_sizes_)


@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_zero_weight_rows_not_cluster_all(client, strategy):
    far = np.array([[40.0, 40.0]])
    Xz = np.concatenate([X, far])
    w = np.concatenate([W, [0]])
    ours = fit(Xz, w, strategy=strategy, cluster_all=False)
    ref = reference(X, W, bandwidth=BANDWIDTH, cluster_all=False)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    labels = ours.labels_.compute()
    assert labels[-1] == -1
    np.testing.assert_array_equal(np.repeat(labels[:-1], W), ref.labels_)


# ------------------------------------------------------------------ scaling
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_scaling_the_weights_changes_nothing(client, strategy, kernel):
    base = fit(X, W, strategy=strategy, kernel=kernel)
    scaled = fit(X, W * 2.5, strategy=strategy, kernel=kernel)
    np.testing.assert_allclose(scaled.cluster_centers_, base.cluster_centers_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scaled.labels_.compute(), base.labels_.compute())
    assert scaled.n_iter_ == base.n_iter_
    np.testing.assert_allclose(scaled.center_intensity_, 2.5 * base.center_intensity_, rtol=1e-12)
    np.testing.assert_allclose(scaled.cluster_sizes_, 2.5 * base.cluster_sizes_, rtol=1e-12)


# ------------------------------------------------------------------ inputs
@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_dask_weights_rechunked_to_the_rows(client, strategy):
    ours = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy=strategy).fit(
        da.from_array(X, chunks=CHUNK), sample_weight=da.from_array(W, chunks=33))
    assert_repeats(ours, reference(X, W, bandwidth=BANDWIDTH), W)


def test_fit_predict_with_weights(client):
    ms = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy="data")
    labels = ms.fit_predict(da.from_array(X, chunks=CHUNK), sample_weight=W)
    ref = reference(X, W, bandwidth=BANDWIDTH)
    np.testing.assert_array_equal(np.repeat(labels.compute(), W), ref.labels_)


def test_all_ones_equal_no_weights(client):
    ours = fit(X, np.ones(len(X)), strategy="data")
    plain = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy="data").fit(
        da.from_array(X, chunks=CHUNK))
    # The same arithmetic but for the centring (a weighted mean): rounding only.
    np.testing.assert_allclose(ours.cluster_centers_, plain.cluster_centers_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.labels_.compute(), plain.labels_.compute())
    np.testing.assert_array_equal(ours.center_intensity_, plain.center_intensity_)
    assert ours.n_iter_ == plain.n_iter_


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_rule_bandwidth_with_weights(client, rule):
    from gpumeanshift.bandwidth import rule_of_thumb_bandwidth

    ours = fit(X, W, bandwidth=rule, strategy="data", kernel="gaussian")
    assert ours.bandwidth_ == pytest.approx(
        rule_of_thumb_bandwidth(np.repeat(X, W, axis=0), rule), rel=1e-12)


def test_min_bin_freq_compares_summed_weight(client):
    params = dict(bandwidth=BANDWIDTH, bin_seeding=True, min_bin_freq=6)
    ours = fit(X, W, strategy="data", **params)
    assert_repeats(ours, reference(X, W, **params), W)


# ------------------------------------------------------------------ bandwidth estimate
def test_estimate_bandwidth_with_weights(client):
    ours = gdask.estimate_bandwidth(da.from_array(X, chunks=CHUNK), sample_weight=W,
                                    quantile=0.3, client=client)
    assert float(ours) == pytest.approx(float(estimate_bandwidth(np.repeat(X, W, axis=0),
                                                                 quantile=0.3)), rel=1e-12)


@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_estimated_bandwidth_fit_with_weights(client, strategy):
    ours = fit(X, W, bandwidth=None, strategy=strategy)
    ref = reference(X, W, bandwidth=None)
    assert_repeats(ours, ref, W)


def test_zero_bandwidth_with_weights(client):
    """Duplicated rows: the estimate is 0 and every distinct row of positive
    weight is a cluster, its intensity the summed weight of its copies."""
    Xd = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [9.0, 1.0]]), 3, axis=0)
    w = np.array([3, 3, 3, 4, 4, 1, 0, 0, 0, 3, 3, 2])  # k = int(26 * 0.3) = 7 <= 8 copies
    ours = gdask.MeanShift(backend="numpy", strategy="data").fit(
        da.from_array(Xd, chunks=5), sample_weight=w)
    ref = reference(Xd, w)
    assert ours.bandwidth_ == ref.bandwidth_ == 0.0
    assert_repeats(ours, ref, w)
    # Fractional weights: intensities are the summed weights, not truncated.
    small = gdask.MeanShift(backend="numpy", strategy="data").fit(
        da.from_array(Xd, chunks=5), sample_weight=w * 0.25)
    assert small.bandwidth_ == 0.0
    np.testing.assert_array_equal(small.cluster_centers_, ours.cluster_centers_)
    np.testing.assert_allclose(small.center_intensity_, 0.25 * ours.center_intensity_,
                               rtol=1e-12)


# ------------------------------------------------------------------ errors
BAD = [
    (np.r_[W[:-1], -1], "must be >= 0: 1 value"),
    (np.r_[W[:-1], np.nan], "must be finite: 1 value"),
    (np.r_[np.inf, W[1:]], r"must be finite: 1 value\(s\) are NaN or infinite \(first at index 0"),
    (np.zeros(len(X)), "zero for every row"),
    (W[:-1], f"has {len(X) - 1} values but X has {len(X)} rows"),
    (np.ones((len(X), 2)), "must be 1-D"),
]


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("w, match", BAD)
def test_bad_weights(client, w, match, lazy):
    if lazy:
        w = da.from_array(w, chunks=17)
    ms = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy="data")
    with pytest.raises(ValueError, match=match):
        ms.fit(da.from_array(X, chunks=CHUNK), sample_weight=w)
    assert not hasattr(ms, "cluster_centers_")


def test_non_numeric_weights(client):
    ms = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH)
    with pytest.raises(ValueError, match="must hold real numbers"):
        ms.fit(da.from_array(X, chunks=CHUNK), sample_weight=np.array(["a"] * len(X)))
    with pytest.raises(ValueError, match="must hold real numbers"):
        ms.fit(da.from_array(X, chunks=CHUNK),
               sample_weight=da.from_array(np.array(["a"] * len(X)), chunks=CHUNK))


def test_lazy_bad_weight_inside_a_computation(client):
    """A negative weight that only exists once the graph runs is still found."""
    w = da.from_array(W.astype(np.float64), chunks=CHUNK) - da.from_array(
        np.r_[np.zeros(len(X) - 1), 10.0], chunks=CHUNK)
    ms = gdask.MeanShift(backend="numpy", bandwidth=BANDWIDTH, strategy="seeds")
    with pytest.raises(ValueError, match=rf"first at index {len(X) - 1}"):
        ms.fit(da.from_array(X, chunks=CHUNK), sample_weight=w)


@pytest.mark.parametrize("strategy", ["data", "seeds"])
def test_basin_labels_with_weights(client, strategy):
    """label_assignment="basin": rows of weight 0 climb for their own labels
    but seed no cluster; the others are labelled as their repeated rows."""
    far = np.array([[1.5, 1.5]])  # between the blobs, weight 0
    Xz = np.concatenate([X, far])
    w = np.concatenate([W, [0]])
    ours = fit(Xz, w, strategy=strategy, label_assignment="basin")
    ref = reference(X, W, bandwidth=BANDWIDTH, label_assignment="basin")
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    labels = ours.labels_.compute()
    np.testing.assert_array_equal(np.repeat(labels[:-1], W), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    single = MeanShift(backend="numpy", bandwidth=BANDWIDTH, label_assignment="basin").fit(
        Xz, sample_weight=w)
    assert labels[-1] == single.labels_[-1]
