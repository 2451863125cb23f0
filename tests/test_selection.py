"""Cluster scores, tiling, and the bandwidth sweep.

Scores are checked against an accurate reference (:mod:`_exact_scores`:
distances by differences, ``math.fsum`` sums) within 1e-12, and against
``sklearn.metrics`` within 1e-7, the accuracy scikit-learn itself meets (its
expanded distances lose digits; 1.9.1's silhouette on the sweep data is
2.4e-9 from the exact value).
"""

import tracemalloc

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from gpumeanshift import MeanShift
from gpumeanshift.metrics import (
    calinski_harabasz_score,
    cluster_scores,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)
from gpumeanshift.plot import plot_bandwidth_sweep
from gpumeanshift.selection import BandwidthSweep, bandwidth_sweep

import _exact_scores as exact

SCORE_FUNCS = [
    (silhouette_score, exact.silhouette_score),
    (davies_bouldin_score, exact.davies_bouldin_score),
    (calinski_harabasz_score, exact.calinski_harabasz_score),
]
SKLEARN = {
    silhouette_score: skm.silhouette_score,
    davies_bouldin_score: skm.davies_bouldin_score,
    calinski_harabasz_score: skm.calinski_harabasz_score,
}


def _close(ours, ref, tol=1e-12):
    # Absolute, relative for the unbounded Calinski-Harabasz index.
    assert abs(ours - ref) <= tol * max(1.0, abs(ref)), (ours, ref)


def _near_sklearn(ours, ref):
    """scikit-learn's definition, at the accuracy scikit-learn meets."""
    _close(ours, ref, tol=1e-7)


def _datasets():
    rng = np.random.default_rng(0)
    X3, y3 = make_blobs(n_samples=600, centers=3, cluster_std=0.8, random_state=0)
    X10, y10 = make_blobs(n_samples=1500, centers=10, n_features=5, random_state=1)
    Xmany, ymany = make_blobs(n_samples=1200, centers=300, n_features=3, random_state=2)
    Xs = rng.normal(size=(200, 4))
    ys = rng.integers(0, 6, 200)
    ys[:3] = [10, 11, 12]  # singletons (silhouette 0) among ordinary clusters
    return {
        "3 blobs": (X3, y3),
        "10 blobs 5-D": (X10, y10),
        "300 clusters": (Xmany, ymany),
        "singletons, labels not 0..k-1": (Xs, ys * 7 - 3),
    }


DATASETS = _datasets()


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("ours, ref", SCORE_FUNCS, ids=["silhouette", "davies_bouldin", "calinski_harabasz"])
def test_scores_equal_the_reference_and_sklearn(name, ours, ref):
    X, y = DATASETS[name]
    _close(ours(X, y), ref(X, y))
    _near_sklearn(ours(X, y), SKLEARN[ours](X, y))


def test_the_reference_itself_against_decimal_arithmetic():
    X, y = make_blobs(n_samples=40, centers=3, cluster_std=0.8, random_state=0)
    X = X + 1e4  # far from the origin, where expanded distances lose digits
    y = y.copy()
    y[0] = 7  # a singleton
    assert abs(exact.silhouette_score(X, y) - float(exact.decimal_silhouette(X, y))) <= 1e-15


@pytest.mark.parametrize("ours, ref", SCORE_FUNCS, ids=["silhouette", "davies_bouldin", "calinski_harabasz"])
def test_scores_keep_their_digits_far_from_the_origin(ours, ref):
    # The scores are translation invariant, so scikit-learn on the centred data
    # is the exact value; on data offset by 1e4 scikit-learn's own expansion
    # |x|^2 - 2 x.y + |y|^2 is off by up to 3e-9 (Davies-Bouldin), ours is not.
    X, y = make_blobs(n_samples=600, centers=3, cluster_std=0.8, random_state=0)
    _close(ours(X + 1e4, y), ref(X + 1e4, y))
    _near_sklearn(ours(X + 1e4, y), SKLEARN[ours](X + 1e4, y))


@pytest.mark.parametrize("block_rows", [1, 7, 256, None])
def test_silhouette_samples_equal_sklearn_whatever_the_block(block_rows):
    X, y = DATASETS["singletons, labels not 0..k-1"]
    ours = silhouette_samples(X, y, block_rows=block_rows)
    np.testing.assert_allclose(ours, exact.silhouette_samples(X, y), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours, skm.silhouette_samples(X, y), rtol=0, atol=1e-7)


def test_davies_bouldin_blocks_and_float32():
    X, y = DATASETS["300 clusters"]
    _close(davies_bouldin_score(X, y, block_rows=13), exact.davies_bouldin_score(X, y))
    X32 = X.astype(np.float32)
    # float32 input is scored in float64, as scikit-learn does.
    for ours, refunc in SCORE_FUNCS:
        _close(ours(X32, y), refunc(X32.astype(np.float64), y))


class _OtherArrayModule:
    """NumPy under another name: drives the code path taken for CuPy arrays."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_the_path_for_other_array_modules(monkeypatch):
    import gpumeanshift.metrics as metrics

    monkeypatch.setattr(metrics, "array_module", lambda X: _OtherArrayModule())
    X, y = DATASETS["singletons, labels not 0..k-1"]
    np.testing.assert_allclose(silhouette_samples(X, y, block_rows=50),
                               exact.silhouette_samples(X, y), rtol=0, atol=1e-12)
    for ours, ref in SCORE_FUNCS:
        _close(ours(X, y), ref(X, y))


def test_degenerate_cases_as_sklearn():
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 5, axis=0)
    y = np.repeat([0, 1], 5)
    assert davies_bouldin_score(X, y) == skm.davies_bouldin_score(X, y) == 0.0
    assert calinski_harabasz_score(X, y) == skm.calinski_harabasz_score(X, y) == 1.0
    _close(silhouette_score(X, y), exact.silhouette_score(X, y))
    _near_sklearn(silhouette_score(X, y), skm.silhouette_score(X, y))


def test_silhouette_never_builds_an_n_by_n_array():
    X, y = make_blobs(n_samples=3000, centers=4, random_state=0)
    n_by_n = 3000 * 3000 * 8  # 72 MB
    tracemalloc.start()
    try:
        score = silhouette_score(X, y, block_rows=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n_by_n / 8  # three 64 x 3000 blocks and O(n) vectors: about 5 MB
    _near_sklearn(score, skm.silhouette_score(X, y))


@pytest.mark.parametrize("labels", [np.zeros(10), np.arange(10)])
def test_number_of_labels_error(labels):
    X = np.arange(20.0).reshape(10, 2)
    for func in (silhouette_score, davies_bouldin_score, calinski_harabasz_score):
        with pytest.raises(ValueError, match="Number of labels is"):
            func(X, labels)
        with pytest.raises(ValueError, match="Number of labels is"):
            skm.silhouette_score(X, labels)
    assert all(np.isnan(v) for v in cluster_scores(X, labels).values())


def test_input_errors():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        silhouette_score(np.zeros((5, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match="2-D"):
        silhouette_score(np.zeros(5), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="NaN"):
        davies_bouldin_score([[0.0], [np.nan], [1.0]], [0, 1, 1])
    with pytest.raises(ValueError, match="block_rows"):
        silhouette_score([[0.0], [1.0], [2.0]], [0, 1, 1], block_rows=0)


# ---------------------------------------------------------------- the sweep
@pytest.fixture(scope="module")
def sweep_data():
    X, _ = make_blobs(n_samples=450, centers=[[0, 0], [4, 0], [0, 4]], cluster_std=0.6,
                      random_state=3)
    return X


BANDWIDTHS = [0.3, 0.8, 1.5, 3.0, 20.0]


@pytest.fixture(scope="module")
def sweep(sweep_data):
    return bandwidth_sweep(sweep_data, BANDWIDTHS, kernel="flat", backend="numpy", bin_seeding=True)


def test_sweep_records_each_fit_and_its_scores(sweep_data, sweep):
    assert isinstance(sweep, BandwidthSweep)
    np.testing.assert_array_equal(sweep.bandwidths, BANDWIDTHS)
    for i, h in enumerate(BANDWIDTHS):
        ms = MeanShift(bandwidth=h, kernel="flat", backend="numpy", bin_seeding=True).fit(sweep_data)
        assert sweep.n_clusters[i] == len(ms.cluster_centers_)
        np.testing.assert_array_equal(sweep.labels[i], ms.labels_)
        if 1 < sweep.n_clusters[i] < len(sweep_data):
            for got, (_, ref) in zip(
                    (sweep.silhouette[i], sweep.davies_bouldin[i], sweep.calinski_harabasz[i]),
                    SCORE_FUNCS):
                _close(got, ref(sweep_data, ms.labels_))
    assert sweep.n_clusters[-1] == 1  # one cluster: no score, never the best
    assert np.isnan([sweep.silhouette[-1], sweep.davies_bouldin[-1], sweep.calinski_harabasz[-1]]).all()
    assert sweep.n_clusters[0] > 3


def test_sweep_picks_by_the_chosen_score(sweep_data, sweep):
    assert sweep.score == "silhouette"
    assert sweep.best_index == int(np.nanargmax(sweep.silhouette))
    assert sweep.best_bandwidth == BANDWIDTHS[sweep.best_index]
    assert sweep.n_clusters[sweep.best_index] == 3
    by_db = bandwidth_sweep(sweep_data, BANDWIDTHS, kernel="flat", backend="numpy",
                            bin_seeding=True, score="davies_bouldin")
    assert by_db.best_index == int(np.nanargmin(by_db.davies_bouldin))
    by_ch = bandwidth_sweep(sweep_data, BANDWIDTHS, kernel="flat", backend="numpy",
                            bin_seeding=True, score="calinski_harabasz")
    assert by_ch.best_index == int(np.nanargmax(by_ch.calinski_harabasz))


def test_sweep_gaussian_kernel_finds_the_three_blobs(sweep_data):
    res = bandwidth_sweep(sweep_data, [0.5, 1.0, 2.0], kernel="gaussian", backend="numpy",
                          bin_seeding=True)
    assert res.n_clusters[res.best_index] == 3


def test_sweep_with_nothing_to_score():
    X = np.random.default_rng(0).normal(size=(60, 2))
    res = bandwidth_sweep(X, [50.0, 100.0], backend="numpy")
    assert res.best_index is None and res.best_bandwidth is None
    assert res.n_clusters.tolist() == [1, 1]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"score": "accuracy"}, ValueError, "score must be one of"),
        ({"bandwidths": []}, ValueError, "non-empty"),
        ({"bandwidths": 1.0}, ValueError, "non-empty"),
        ({"bandwidths": [1.0, -2.0]}, ValueError, "positive"),
    ],
)
def test_sweep_errors(sweep_data, kwargs, error, match):
    args = {"bandwidths": [1.0], **kwargs}
    with pytest.raises(error, match=match):
        bandwidth_sweep(sweep_data, backend="numpy", **args)


def test_plot(sweep):
    pytest.importorskip("matplotlib")
    fig = plot_bandwidth_sweep(sweep)
    assert len(fig.axes) == 4
    ys = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_array_equal(ys, sweep.silhouette)
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert sweep.plot(ax=ax) is ax.figure
    assert len(ax.lines) == 2  # the score and the marker of the best bandwidth
