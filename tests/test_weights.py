"""sample_weight: a weighted row is that many copies of itself.

Reference for every test: the unweighted fit of ``np.repeat(X, w, axis=0)``
(the repetition semantics), computed by the same library's unweighted path,
which is itself checked against scikit-learn elsewhere; plus an exact
float64 log-sum-exp (math.fsum) and scikit-learn's KernelDensity for the
weighted density.

Data are of two kinds, so that the comparisons are exact and not at the
mercy of rounding near the flat kernel's boundary:

* integer lattices (small integer coordinates, many points exactly one
  bandwidth apart): the flat climb's sums are exact there, so weighted and
  repeated fits agree bit for bit, boundary cases included;
* separated clusters (float coordinates, clusters 10 bandwidths apart, each
  narrower than a bandwidth): no point lies near a boundary.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumeanshift import MeanShift, estimate_bandwidth, get_bin_seeds, mean_shift
from gpumeanshift.bandwidth import rule_of_thumb_bandwidth
from _emulation import emulated_param

settings.register_profile(
    "weights-ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "weights-nightly", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(
    "weights-nightly" if os.environ.get("GPUMEANSHIFT_HYPOTHESIS_PROFILE") == "nightly"
    else "weights-ci")

BACKENDS = ["numpy", emulated_param()]


def _backend(backend):
    if backend == "numpy":
        return "numpy"
    from _emulation import emulated_backend_or_skip
    return emulated_backend_or_skip()


# ------------------------------------------------------------------ data
@st.composite
def lattices(draw, max_n=18):
    """Small integer point sets (many ties at one bandwidth) and weights 0-5."""
    d = draw(st.integers(1, 3))
    n = draw(st.integers(2, max_n))
    X = np.array(draw(st.lists(st.lists(st.integers(0, 6), min_size=d, max_size=d),
                               min_size=n, max_size=n)), dtype=np.float64)
    w = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    if w.sum() == 0:
        w[draw(st.integers(0, n - 1))] = 1
    return X, w


@st.composite
def separated(draw, max_per_cluster=6):
    """Clusters 10 bandwidths apart, each within 0.3 bandwidths of its
    centre (bandwidth 1), float coordinates; weights 0-5."""
    d = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    rows, weights = [], []
    for c in range(k):
        m = draw(st.integers(1, max_per_cluster))
        offsets = draw(st.lists(st.lists(st.floats(-0.3, 0.3), min_size=d, max_size=d),
                                min_size=m, max_size=m))
        rows += [np.full(d, 10.0 * c) + np.array(o) for o in offsets]
        weights += draw(st.lists(st.integers(0, 5), min_size=m, max_size=m))
    X, w = np.array(rows), np.array(weights)
    if w.sum() == 0:
        w[0] = 1
    return X, w


def _fits(X, w, **params):
    """The weighted fit and the unweighted fit of the repeated rows."""
    weighted = MeanShift(**params).fit(X, sample_weight=w)
    repeated = MeanShift(**params).fit(np.repeat(X, w, axis=0))
    return weighted, repeated


def _assert_repetition(weighted, repeated, w, *, atol):
    """Same clustering. ``atol`` bounds the centers' difference: 0 or 1e-9
    for the flat kernel; for the Gaussian the tolerance of the stopping rule
    (seeds that stop within it of one another merge, and which of them
    stands for the center depends on rounding, as between thread counts)."""
    assert weighted.cluster_centers_.shape == repeated.cluster_centers_.shape
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_,
                               rtol=0, atol=atol)
    np.testing.assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_allclose(weighted.center_intensity_, repeated.center_intensity_,
                               rtol=1e-12)
    np.testing.assert_allclose(weighted.cluster_sizes_, repeated.cluster_sizes_, rtol=1e-12)
    assert weighted.bandwidth_ == pytest.approx(repeated.bandwidth_, rel=1e-12)


# ------------------------------------------------------------ repetition
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.filterwarnings("ignore:Binning data failed:UserWarning")  # tiny data: the fallback
@PROFILE
@given(data=lattices(), bandwidth=st.sampled_from([1.0, 1.5, 2.0]))
def test_flat_lattice_weighted_equals_repeated_bit_for_bit(backend, bin_seeding, data, bandwidth):
    X, w = data
    weighted, repeated = _fits(X, w, bandwidth=bandwidth, kernel="flat",
                               bin_seeding=bin_seeding, backend=_backend(backend))
    _assert_repetition(weighted, repeated, w, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("algorithm", ["brute", "auto"])
@PROFILE
@given(data=separated())
def test_separated_weighted_equals_repeated(backend, kernel, algorithm, data):
    X, w = data
    weighted, repeated = _fits(X, w, bandwidth=1.0, kernel=kernel, algorithm=algorithm,
                               backend=_backend(backend))
    _assert_repetition(weighted, repeated, w, atol=1e-9 if kernel == "flat" else 2e-3)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@PROFILE
@given(data=separated())
def test_estimated_bandwidth_weighted_equals_repeated(kernel, data):
    X, w = data
    weighted, repeated = _fits(X, w, kernel=kernel, backend="numpy")
    atol = 1e-9 if kernel == "flat" else 2e-3 * weighted.bandwidth_
    _assert_repetition(weighted, repeated, w, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
@PROFILE
@given(data=lattices(max_n=40), quantile=st.sampled_from([0.05, 0.2, 0.3, 0.5, 1.0]))
def test_estimate_bandwidth_weighted_equals_repeated(backend, data, quantile):
    X, w = data
    be = _backend(backend)
    got = estimate_bandwidth(X, quantile=quantile, sample_weight=w, backend=be)
    want = estimate_bandwidth(np.repeat(X, w, axis=0), quantile=quantile, backend=be)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


@PROFILE
@given(data=lattices(max_n=40), bin_size=st.sampled_from([0.7, 1.0, 2.5]),
       min_bin_freq=st.integers(1, 6))
def test_get_bin_seeds_weighted_equals_repeated(data, bin_size, min_bin_freq):
    X, w = data
    R = np.repeat(X, w, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fallback's warning
        got = get_bin_seeds(X, bin_size, min_bin_freq, sample_weight=w)
        want = get_bin_seeds(R, bin_size, min_bin_freq)
    if want is R or len(want) == len(R):  # the fallback to the points themselves
        np.testing.assert_array_equal(got, X[w > 0])
    else:
        np.testing.assert_array_equal(got, want)


def test_rule_of_thumb_weighted_equals_repeated():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 3))
    w = rng.integers(0, 6, size=50)
    for rule in ("scott", "silverman"):
        assert rule_of_thumb_bandwidth(X, rule, sample_weight=w) == pytest.approx(
            rule_of_thumb_bandwidth(np.repeat(X, w, axis=0), rule), rel=1e-12)


# --------------------------------------------------------------- weights
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_unit_weights_are_no_weights_bit_for_bit(backend, kernel, blobs):
    X = blobs[0][:200]
    be = _backend(backend)
    a = MeanShift(bandwidth=0.8, kernel=kernel, backend=be).fit(X)
    b = MeanShift(bandwidth=0.8, kernel=kernel, backend=be).fit(X, sample_weight=np.ones(200))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.center_intensity_, b.center_intensity_)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("scale", [0.25, 3.0, 1e6])
def test_scaling_all_weights_changes_nothing_but_the_sums(kernel, scale, blobs):
    X = blobs[0][:300]
    w = np.random.default_rng(1).integers(0, 6, size=300).astype(float)
    a = MeanShift(bandwidth=0.8, kernel=kernel, backend="numpy").fit(X, sample_weight=w)
    b = MeanShift(bandwidth=0.8, kernel=kernel, backend="numpy").fit(X, sample_weight=w * scale)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(b.center_intensity_, a.center_intensity_ * scale, rtol=1e-12)
    # The density is normalised by the total weight: unchanged.
    np.testing.assert_allclose(a.score_samples(X[:20]), b.score_samples(X[:20]), rtol=1e-12)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("label_assignment", ["nearest", "basin"])
def test_zero_weight_rows_are_left_out_of_the_fit_but_labelled(kernel, label_assignment, blobs):
    X = blobs[0][:300]
    w = np.random.default_rng(2).integers(0, 4, size=300)
    params = dict(bandwidth=0.8, kernel=kernel, backend="numpy",
                  label_assignment=label_assignment)
    weighted = MeanShift(**params).fit(X, sample_weight=w)
    removed = MeanShift(**params).fit(X[w > 0], sample_weight=w[w > 0])
    np.testing.assert_array_equal(weighted.cluster_centers_, removed.cluster_centers_)
    np.testing.assert_array_equal(weighted.labels_[w > 0], removed.labels_)
    assert weighted.n_iter_ == removed.n_iter_
    # The rows of weight 0 are labelled as any other point would be.
    zero = w == 0
    assert zero.any()
    if label_assignment == "nearest":
        np.testing.assert_array_equal(weighted.labels_[zero], weighted.predict(X[zero]))
    else:
        basin = MeanShift(**params).fit(X, sample_weight=np.where(zero, 1e-300, w))
        np.testing.assert_array_equal(weighted.labels_[zero], basin.labels_[zero])


def test_given_seeds_and_cluster_all_false_follow_the_repetition(blobs):
    X = blobs[0][:200]
    w = np.random.default_rng(3).integers(0, 6, size=200)
    seeds = X[::17]
    params = dict(bandwidth=0.6, kernel="flat", seeds=seeds, cluster_all=False, backend="numpy")
    weighted, repeated = _fits(X, w, **params)
    _assert_repetition(weighted, repeated, w, atol=1e-9)


def test_zero_bandwidth_estimate_counts_weights():
    # Every point has a duplicate and k = int(W * 0.1) <= 2: the estimate is 0.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]), 2, axis=0)
    w = np.array([1, 1, 0, 1, 2, 0])
    weighted, repeated = _fits(X, w, bandwidth=None, backend="numpy")
    assert weighted.bandwidth_ == repeated.bandwidth_ == 0.0
    _assert_repetition(weighted, repeated, w, atol=0)


def test_fit_predict_and_mean_shift_take_weights(blobs):
    X = blobs[0][:200]
    w = np.random.default_rng(5).integers(1, 4, size=200)
    model = MeanShift(bandwidth=0.8, backend="numpy").fit(X, sample_weight=w)
    labels = MeanShift(bandwidth=0.8, backend="numpy").fit_predict(X, sample_weight=w)
    centers, labels2 = mean_shift(X, bandwidth=0.8, backend="numpy", sample_weight=w)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_array_equal(labels2, model.labels_)
    np.testing.assert_array_equal(centers, model.cluster_centers_)


def test_float32_weighted_matches_repeated_to_its_rounding(blobs):
    X = blobs[0][:300].astype(np.float32)
    w = np.random.default_rng(6).integers(0, 6, size=300)
    for kernel in ("flat", "gaussian"):
        weighted, repeated = _fits(X, w, bandwidth=0.8, kernel=kernel, backend="numpy")
        np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_,
                                   atol=1e-3 * 0.8 * 2)  # tol * bandwidth, twice
        np.testing.assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)


# ----------------------------------------------------------------- density
def _exact_log_density(X, w, Q, h, kernel):
    """float64 log density by math.fsum over every term (w_j K_j), exact
    to the last rounding of each term."""
    d = X.shape[1]
    out = []
    for q in Q:
        d2 = ((X - q) ** 2).sum(axis=1)
        if kernel == "gaussian":
            e = -d2 / (2 * h * h) + np.log(np.where(w > 0, w, 1.0))
            e = e[w > 0]
            top = e.max()
            total = math.log(math.fsum(np.exp(e - top))) + top
            log_unit = 0.5 * d * math.log(2 * math.pi)
        else:
            total = math.log(math.fsum(w[d2 <= h * h])) if (w[d2 <= h * h] > 0).any() \
                else -math.inf
            log_unit = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
        out.append(total - math.log(math.fsum(w)) - d * math.log(h) - log_unit)
    return np.array(out)


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_weighted_density_matches_exact_and_kernel_density(kernel):
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 2))
    w = rng.integers(0, 6, size=400).astype(float)
    Q = np.r_[rng.normal(size=(40, 2)), [[3.0, 3.0], [0.0, 6.0]]]
    h = 0.7
    if kernel == "flat":
        # KernelDensity's tophat counts distance < h, ours <= h: keep every
        # query away from that boundary so both count the same points.
        d = np.sqrt(((Q[:, None] - X[None]) ** 2).sum(-1))
        Q = Q[(np.abs(d - h) > 1e-9).all(axis=1)]
    model = MeanShift(bandwidth=h, kernel=kernel, backend="numpy").fit(X, sample_weight=w)
    ours = model.score_samples(Q)
    exact = _exact_log_density(X, w, Q, h, kernel)
    np.testing.assert_allclose(ours, exact, rtol=1e-12)
    kd = KernelDensity(bandwidth=h, kernel="tophat" if kernel == "flat" else "gaussian")
    with warnings.catch_warnings():
        # KernelDensity takes log(0) for its rows of weight 0 (harmless there).
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = kd.fit(X, sample_weight=w).score_samples(Q)
    finite = np.isfinite(exact)
    # Where KernelDensity is accurate (its tree sums agree with the exact sum).
    with np.errstate(invalid="ignore"):  # -inf - -inf where no point is within h
        accurate = finite & (np.abs(theirs - exact) <= 1e-9 * np.abs(exact) + 1e-12)
    assert accurate.sum() > 0.9 * finite.sum()
    np.testing.assert_allclose(ours[accurate], theirs[accurate], rtol=1e-6)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad, message", [
    ([1.0, -1.0, 1.0, 1.0], ">= 0"),
    ([1.0, np.nan, 1.0, 1.0], "finite"),
    ([1.0, np.inf, 1.0, 1.0], "finite"),
    ([1.0, 1.0, 1.0], "3 values but X has 4 rows"),
    ([0.0, 0.0, 0.0, 0.0], "zero for every row"),
    ([[1.0, 1.0, 1.0, 1.0]], "1-D"),
    (["a", "b", "c", "d"], "real numbers"),
])
def test_bad_weights_are_refused_with_the_reason(bad, message):
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    for call in (lambda: MeanShift(bandwidth=1.0, backend="numpy").fit(X, sample_weight=bad),
                 lambda: mean_shift(X, bandwidth=1.0, backend="numpy", sample_weight=bad),
                 lambda: estimate_bandwidth(X, sample_weight=bad),
                 lambda: get_bin_seeds(X, 1.0, sample_weight=bad)):
        with pytest.raises(ValueError, match=message):
            call()


def test_weights_are_not_modified():
    X = np.random.default_rng(8).normal(size=(50, 2))
    w = np.random.default_rng(8).integers(0, 4, size=50).astype(float)
    w[0] = 1
    keep = w.copy()
    MeanShift(bandwidth=0.5, backend="numpy").fit(X, sample_weight=w)
    np.testing.assert_array_equal(w, keep)


def test_find_anomalies_on_a_weighted_fit_follows_the_repetition():
    from gpumeanshift import find_anomalies

    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(0, 0.5, (150, 2)), rng.normal(4, 0.5, (150, 2)),
                        rng.uniform(-6, 10, (20, 2))])
    w = rng.integers(0, 6, size=len(X))
    weighted, repeated = _fits(X, w, bandwidth=0.8, kernel="gaussian", backend="numpy")
    a = find_anomalies(weighted, density_quantile=0.1, max_distance=2.5, min_cluster_size=50)
    b = find_anomalies(repeated, density_quantile=0.1, max_distance=2.5, min_cluster_size=50)
    assert a.density_threshold == pytest.approx(b.density_threshold, rel=1e-12)
    np.testing.assert_array_equal(np.repeat(a.mask, w), b.mask)
    assert a.mask.any()


def test_zero_bandwidth_with_fractional_weights():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]), 2, axis=0)
    # k = 0.3 * W = 0.591: each pair of copies weighs more, so the estimate is 0.
    w = np.array([0.3, 0.35, 0.3, 0.4, 0.32, 0.3])
    weighted = MeanShift(bandwidth=None, backend="numpy").fit(X, sample_weight=w)
    assert weighted.bandwidth_ == 0.0
    np.testing.assert_allclose(np.sort(weighted.center_intensity_), [0.62, 0.65, 0.7])
    assert len(weighted.cluster_centers_) == 3


def test_saved_model_keeps_summed_weights(tmp_path):
    from gpumeanshift import load_model, save_model

    X = np.array([[0.0], [0.1], [5.0]])
    ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X, sample_weight=[0.5, 0.25, 2.0])
    save_model(ms, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz").estimator
    np.testing.assert_array_equal(back.cluster_sizes_, ms.cluster_sizes_)
    assert back.cluster_sizes_.dtype == np.float64
