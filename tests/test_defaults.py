"""The defaults are scikit-learn's: a user who changes only the import gets its clusters.

Covers the flat default kernel everywhere, the Gaussian's own bandwidth
estimate, and scikit-learn's behaviour when the estimated bandwidth is 0.
"""

import inspect

import numpy as np
import pytest
import sklearn
from packaging.version import Version
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth
from sklearn.cluster import get_bin_seeds as sk_get_bin_seeds
from sklearn.datasets import make_blobs

from gpumeanshift import MeanShift, estimate_bandwidth, get_bin_seeds, mean_shift
from gpumeanshift._params import DEFAULTS
from gpumeanshift.selection import bandwidth_sweep

from _emulation import emulated_backend_or_skip, emulated_param

BACKENDS = ["numpy", emulated_param()]


def make_backend(name):
    return "numpy" if name == "numpy" else emulated_backend_or_skip()


@pytest.fixture(scope="module")
def tutorial():
    """scikit-learn's MeanShift tutorial: 10,000 points in three blobs."""
    X, _ = make_blobs(n_samples=10000, centers=[[1, 1], [-1, -1], [1, -1]], cluster_std=0.6,
                      random_state=0)
    return X


@pytest.fixture(scope="module")
def blobs3d():
    """The KDE explainer's example: 150 points in three 3-D blobs, default MeanShift()."""
    X, _ = make_blobs(n_samples=150, centers=[[2, 2, 2], [7, 7, 7], [5, 13, 13]],
                      cluster_std=0.6, random_state=0)
    return X


def test_every_entry_point_defaults_to_the_flat_kernel():
    from gpumeanshift.dask import MeanShift as DaskMeanShift

    assert DEFAULTS["kernel"] == "flat"
    for fn in (MeanShift.__init__, mean_shift, DaskMeanShift.__init__, bandwidth_sweep):
        assert inspect.signature(fn).parameters["kernel"].default == "flat", fn


def test_the_signature_defaults_are_the_table():
    from gpumeanshift.dask import MeanShift as DaskMeanShift

    for fn in (MeanShift.__init__, mean_shift, DaskMeanShift.__init__):
        sig = inspect.signature(fn).parameters
        for name, default in DEFAULTS.items():
            if fn is mean_shift and name == "output_type":
                continue  # the function form returns what it was given
            assert sig[name].default == default, (fn, name)


def test_tutorial_gives_sklearns_clusters(tutorial):
    X = tutorial
    bw = estimate_bandwidth(X, quantile=0.2, n_samples=500)
    assert bw == sk_estimate_bandwidth(X, quantile=0.2, n_samples=500)
    ours = MeanShift(bandwidth=bw, bin_seeding=True, backend="numpy").fit(X)
    ref = SkMeanShift(bandwidth=bw, bin_seeding=True).fit(X)
    assert len(ours.cluster_centers_) == len(ref.cluster_centers_) == 3
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)


def test_default_estimator_gives_sklearns_clusters(blobs3d):
    ours = MeanShift(backend="numpy").fit(blobs3d)
    ref = SkMeanShift().fit(blobs3d)
    assert len(ours.cluster_centers_) == len(ref.cluster_centers_) == 3
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_


def test_estimate_bandwidth_returns_a_numpy_scalar_as_sklearn(blobs3d):
    ours, ref = estimate_bandwidth(blobs3d), sk_estimate_bandwidth(blobs3d)
    assert type(ours) is type(ref) is np.float64
    assert ours == ref


def test_the_gaussian_estimates_its_own_bandwidth(tutorial, blobs3d):
    for X, bin_seeding in ((tutorial, True), (blobs3d, False)):
        ms = MeanShift(kernel="gaussian", bin_seeding=bin_seeding, backend="numpy").fit(X)
        r = estimate_bandwidth(X)
        assert ms.bandwidth_ == pytest.approx(r / np.sqrt(X.shape[1] + 2), rel=1e-15)
        assert len(ms.cluster_centers_) == 3
    # The flat-kernel radius used as a Gaussian sigma merges the tutorial's blobs.
    r = estimate_bandwidth(tutorial)
    wide = MeanShift(kernel="gaussian", bandwidth=r, bin_seeding=True, backend="numpy")
    assert len(wide.fit(tutorial).cluster_centers_) < 3


# ------------------------------------------------------ a zero estimated bandwidth
def test_get_bin_seeds_of_size_zero_returns_the_data():
    X = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    assert get_bin_seeds(X, 0) is not None
    np.testing.assert_array_equal(get_bin_seeds(X, 0), X)
    np.testing.assert_array_equal(get_bin_seeds(X, 0), sk_get_bin_seeds(X, 0))


ZERO_CASES = {
    "1-D 1,1,1,2,2,2,3,3": np.array([1, 1, 1, 2, 2, 2, 3, 3], dtype=np.float64).reshape(-1, 1),
    "5 points in 50-D": np.random.default_rng(0).normal(size=(5, 50)),
    "3 points x 10": np.array([[3.0, 3.0], [-1.0, 2.0], [0.0, -5.0]])[
        np.random.default_rng(1).permutation(np.repeat([0, 1, 2], 10))],
    "-0.0 and 0.0": np.array([[0.0], [-0.0], [0.0], [1.0], [1.0], [1.0], [2.0], [2.0]]),
}


def _distinct_point_clusters(X):
    """Each distinct point its own cluster, ordered as scikit-learn orders modes:
    by multiplicity, then by coordinates, both descending."""
    uniq, counts = np.unique(X + 0.0, axis=0, return_counts=True)
    order = np.lexsort([uniq[:, j] for j in range(X.shape[1] - 1, -1, -1)] + [counts])[::-1]
    centers = uniq[order]
    labels = np.array([np.flatnonzero((centers == x).all(axis=1))[0] for x in X + 0.0])
    return centers, labels


@pytest.mark.parametrize("case", list(ZERO_CASES))
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_estimated_bandwidth_makes_each_distinct_point_a_cluster(case, bin_seeding,
                                                                      kernel, backend):
    X = ZERO_CASES[case]
    assert estimate_bandwidth(X) == 0.0
    ms = MeanShift(kernel=kernel, bin_seeding=bin_seeding, backend=make_backend(backend)).fit(X)
    centers, labels = _distinct_point_clusters(X)
    assert ms.bandwidth_ == 0.0 and ms.n_iter_ == 0
    np.testing.assert_array_equal(ms.cluster_centers_, centers)
    np.testing.assert_array_equal(ms.labels_, labels)
    np.testing.assert_array_equal(ms.predict(X), labels)
    np.testing.assert_array_equal(ms.cluster_sizes_, np.bincount(labels))
    with pytest.raises(ValueError, match="bandwidth_ is 0"):
        ms.score_samples(X)


@pytest.mark.parametrize("case", ["1-D 1,1,1,2,2,2,3,3", "3 points x 10"])
@pytest.mark.parametrize("bin_seeding", [False, True])
def test_zero_estimated_bandwidth_as_sklearn(case, bin_seeding):
    # Where scikit-learn's own neighbour search is exact (small integers), it
    # is the reference; in 50-D its expanded distances give a 6e-8 "bandwidth".
    X = ZERO_CASES[case]
    ours = MeanShift(bin_seeding=bin_seeding, backend="numpy").fit(X)
    ref = SkMeanShift(bin_seeding=bin_seeding).fit(X)
    np.testing.assert_array_equal(ours.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    if Version(sklearn.__version__) >= Version("1.5"):
        assert ours.n_iter_ == ref.n_iter_
    else:
        # scikit-learn < 1.5 stops on a shift strictly below 1e-3 * bandwidth,
        # which a zero bandwidth never meets, so it runs to max_iter (1.5 made
        # the test <=): only the clusters are comparable there.
        assert ref.n_iter_ == ref.max_iter and ours.n_iter_ == 0


def test_zero_bandwidth_seeds_off_the_data_are_orphans():
    X = ZERO_CASES["1-D 1,1,1,2,2,2,3,3"]
    ms = MeanShift(seeds=[[2.0], [2.5]], backend="numpy").fit(X)
    np.testing.assert_array_equal(ms.cluster_centers_, [[2.0]])
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(seeds=[[2.5]], backend="numpy").fit(X)


def test_zero_estimated_bandwidth_on_dask():
    pytest.importorskip("distributed")
    import dask.array as da
    from distributed import Client

    from gpumeanshift.dask import MeanShift as DaskMeanShift

    X = ZERO_CASES["3 points x 10"]
    centers, labels = _distinct_point_clusters(X)
    with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0"):
        for strategy in ("seeds", "data"):
            for kernel in ("flat", "gaussian"):
                for bin_seeding in (False, True):
                    ms = DaskMeanShift(kernel=kernel, bin_seeding=bin_seeding, backend="numpy",
                                       strategy=strategy).fit(da.from_array(X, chunks=7))
                    assert ms.bandwidth_ == 0.0
                    np.testing.assert_array_equal(ms.cluster_centers_, centers)
                    np.testing.assert_array_equal(ms.labels_.compute(), labels)
