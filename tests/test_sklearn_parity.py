"""kernel="flat" gives scikit-learn's MeanShift results exactly (float64)."""

import numpy as np
import pytest
from sklearn import cluster as skc
from sklearn import datasets
from sklearn.preprocessing import StandardScaler

import gpumeanshift as gms
from conftest import assert_same_clustering


def _both(X, **params):
    ours = gms.MeanShift(kernel="flat", backend="numpy", **params).fit(X)
    ref = skc.MeanShift(**params).fit(X)
    return ours, ref


@pytest.mark.parametrize("n_features", [1, 2, 3, 10])
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("cluster_all", [True, False])
def test_blobs_match_sklearn(n_features, bin_seeding, cluster_all):
    X, _ = datasets.make_blobs(n_samples=400, n_features=n_features, centers=4,
                               cluster_std=1.0, random_state=n_features)
    bandwidth = skc.estimate_bandwidth(X, quantile=0.2)
    ours, ref = _both(X, bandwidth=bandwidth, bin_seeding=bin_seeding, cluster_all=cluster_all)
    assert_same_clustering(ours, ref)
    if not cluster_all:
        assert (ours.labels_ == -1).any() == (ref.labels_ == -1).any()


@pytest.mark.parametrize("n_features", [1, 2, 3])
@pytest.mark.parametrize("bandwidth", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("algorithm", ["brute", "grid"])
def test_integer_lattice_matches_sklearn(n_features, bandwidth, bin_seeding, algorithm):
    """Integer data put many points at exactly one bandwidth from a climbing
    seed (at 1.0 and 2.0 from integer positions, at 1.5 from bin seeds on
    half-integers, and at non-integer means such as (1.6, 1, 0.2) from
    (1, 1, 1), where only the squared distance, summed as scikit-learn does,
    decides). Every climb must take scikit-learn's side of each boundary.

    Labels are compared except for points whose two nearest centers are at
    the same distance in exact arithmetic (there the choice is rounding's,
    and scikit-learn's comes from its own expansion): such points are found
    with rational arithmetic on the data (integers) and the centers (means of
    integers: rationals recovered from the intensities)."""
    from fractions import Fraction

    rng = np.random.default_rng(n_features * 10 + int(bandwidth * 2))
    X = rng.integers(0, 6, size=(300, n_features)).astype(float)
    ours = gms.MeanShift(kernel="flat", backend="numpy", bandwidth=bandwidth,
                         bin_seeding=bin_seeding, algorithm=algorithm).fit(X)
    ref = skc.MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding).fit(X)
    assert ours.algorithm_ == algorithm
    assert ours.cluster_centers_.shape == ref.cluster_centers_.shape
    np.testing.assert_array_equal(ours.cluster_centers_, ref.cluster_centers_)
    assert ours.n_iter_ == ref.n_iter_
    C = [[Fraction(v).limit_denominator(len(X)) for v in c] for c in ref.cluster_centers_]
    tied = np.zeros(len(X), dtype=bool)
    for i, x in enumerate(X):
        d2 = sorted(sum((Fraction(int(a)) - b) ** 2 for a, b in zip(x, c)) for c in C)
        tied[i] = len(d2) > 1 and d2[0] == d2[1]
    np.testing.assert_array_equal(ours.labels_[~tied], ref.labels_[~tied])


@pytest.mark.parametrize("loader", [datasets.load_iris, datasets.load_wine, datasets.load_digits])
@pytest.mark.parametrize("bin_seeding", [False, True])
def test_real_datasets_match_sklearn(loader, bin_seeding):
    X = StandardScaler().fit_transform(loader().data)
    bandwidth = skc.estimate_bandwidth(X, quantile=0.3)
    ours, ref = _both(X, bandwidth=bandwidth, bin_seeding=bin_seeding)
    assert_same_clustering(ours, ref)


def test_estimated_bandwidth_and_default_params_match_sklearn(blobs):
    X, _ = blobs
    ours, ref = _both(X)
    assert ours.bandwidth_ == pytest.approx(skc.estimate_bandwidth(X), rel=1e-12)
    assert_same_clustering(ours, ref)


def test_min_bin_freq_and_max_iter_match_sklearn(blobs):
    X, _ = blobs
    for params in ({"bin_seeding": True, "min_bin_freq": 5, "bandwidth": 0.6},
                   {"max_iter": 3, "bandwidth": 0.6}):
        ours, ref = _both(X, **params)
        assert_same_clustering(ours, ref)


def test_explicit_seeds_match_sklearn(blobs):
    X, _ = blobs
    seeds = X[::7] + 0.05
    ours, ref = _both(X, bandwidth=0.7, seeds=seeds)
    assert_same_clustering(ours, ref)


def test_function_form_matches_sklearn(blobs):
    X, _ = blobs
    c1, l1 = gms.mean_shift(X, bandwidth=0.8, kernel="flat", backend="numpy")
    c2, l2 = skc.mean_shift(X, bandwidth=0.8)
    np.testing.assert_allclose(c1, c2, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(l1, l2)


@pytest.mark.parametrize("quantile", [0.05, 0.3, 0.9])
@pytest.mark.parametrize("n_samples", [None, 50])
def test_estimate_bandwidth_matches_sklearn(blobs, quantile, n_samples):
    X, _ = blobs
    for random_state in (0, 7):
        ours = gms.estimate_bandwidth(X, quantile=quantile, n_samples=n_samples,
                                      random_state=random_state)
        ref = skc.estimate_bandwidth(X, quantile=quantile, n_samples=n_samples,
                                     random_state=random_state)
        assert ours == pytest.approx(ref, rel=1e-12, abs=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("min_bin_freq", [1, 3])
def test_get_bin_seeds_matches_sklearn(blobs, dtype, min_bin_freq):
    X = blobs[0].astype(dtype)
    ours = gms.get_bin_seeds(X, 0.5, min_bin_freq)
    ref = skc.get_bin_seeds(X, 0.5, min_bin_freq)
    assert ours.dtype == dtype  # scikit-learn returns float32 whatever the input
    # Same cells in the same order; scikit-learn's values went through float32.
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)


def test_get_bin_seeds_falls_back_to_data_like_sklearn():
    X = np.arange(10.0).reshape(5, 2)
    with pytest.warns(UserWarning, match="Binning data failed"):
        seeds = gms.get_bin_seeds(X, 0.1)
    assert seeds is X or np.array_equal(seeds, X)
    assert np.array_equal(gms.get_bin_seeds(X, 0), X)


def test_bin_rounding_is_half_to_even_like_sklearn():
    X = np.array([[0.5], [1.5], [2.5], [-0.5], [-1.5]])
    np.testing.assert_array_equal(gms.get_bin_seeds(X, 1.0, 1).ravel(),
                                  skc.get_bin_seeds(X, 1.0, 1).ravel())
