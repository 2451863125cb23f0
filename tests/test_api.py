"""Parameters, fitted attributes, dtypes and errors of the public API."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gpumeanshift as gms

X2 = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]], dtype=np.float64)


def test_fitted_attributes(blobs):
    X, _ = blobs
    ms = gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    k = len(ms.cluster_centers_)
    assert ms.cluster_centers_.shape == (k, 2)
    assert ms.labels_.shape == (len(X),) and ms.labels_.dtype == np.int64
    assert ms.n_features_in_ == 2
    assert ms.bandwidth_ == 0.8
    assert ms.backend_ == "numpy"
    assert ms.cluster_sizes_.sum() == len(X)
    np.testing.assert_array_equal(ms.cluster_sizes_, np.bincount(ms.labels_, minlength=k))
    assert isinstance(ms.n_iter_, int) and ms.n_iter_ > 0
    assert np.all(np.diff(ms.center_intensity_) <= 0)  # strongest first


def test_get_set_params_roundtrip():
    ms = gms.MeanShift(bandwidth=2.0, kernel="flat")
    params = ms.get_params()
    assert params["bandwidth"] == 2.0 and params["kernel"] == "flat"
    assert params["backend"] == "auto" and params["tol"] == 1e-3
    clone = gms.MeanShift(**params)
    assert clone.get_params() == params
    assert ms.set_params(max_iter=5) is ms and ms.max_iter == 5
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        ms.set_params(nope=1)


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        gms.MeanShift(2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    ms = gms.MeanShift(bandwidth=2, backend="numpy").fit(X2.astype(dtype))
    assert ms.cluster_centers_.dtype == dtype


@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool])
def test_integers_become_float64(dtype):
    ms = gms.MeanShift(bandwidth=2, backend="numpy").fit(X2.astype(dtype))
    assert ms.cluster_centers_.dtype == np.float64


def test_lists_are_accepted():
    ms = gms.MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X2.tolist())
    np.testing.assert_array_equal(ms.labels_, [1, 1, 1, 0, 0, 0])


def test_fit_predict_equals_labels(blobs):
    X, _ = blobs
    ms = gms.MeanShift(bandwidth=0.8, backend="numpy")
    labels = ms.fit_predict(X)
    np.testing.assert_array_equal(labels, ms.labels_)
    np.testing.assert_array_equal(ms.predict(X), ms.labels_)


def test_predict_outlier_threshold():
    ms = gms.MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X2)
    far = np.array([[100.0, 100.0], [1.2, 0.8]])
    np.testing.assert_array_equal(ms.predict(far), [0, 1])
    np.testing.assert_array_equal(ms.predict(far, outlier_threshold=5.0), [-1, 1])
    np.testing.assert_array_equal(ms.predict(far, outlier_threshold="bandwidth"), [-1, 1])
    with pytest.raises(ValueError, match="outlier_threshold must be"):
        ms.predict(far, outlier_threshold="far")
    with pytest.raises(ValueError, match="outlier_threshold must be finite and >= 0"):
        ms.predict(far, outlier_threshold=-1.0)


def test_cluster_all_false_marks_far_points():
    X = np.vstack([X2, [[50.0, 50.0]]])
    seeds = np.array([[1.0, 1.0], [3.0, 6.0]])
    ms = gms.MeanShift(bandwidth=2, kernel="flat", cluster_all=False, seeds=seeds,
                       backend="numpy").fit(X)
    np.testing.assert_array_equal(ms.labels_, [1, 1, 1, 0, 0, 0, -1])
    assert ms.cluster_sizes_.tolist() == [3, 3]


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_bandwidth_rules(rule, blobs):
    X, _ = blobs
    ms = gms.MeanShift(bandwidth=rule, backend="numpy").fit(X)
    assert ms.bandwidth_ == pytest.approx(gms.rule_of_thumb_bandwidth(X, rule))


def test_rules_match_scipy_gaussian_kde_factors():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(500, 3))
    Z = (Z - Z.mean(0)) / Z.std(0, ddof=1)  # standardized: factor == bandwidth
    kde_scott = stats.gaussian_kde(Z.T, bw_method="scott")
    kde_silv = stats.gaussian_kde(Z.T, bw_method="silverman")
    assert gms.rule_of_thumb_bandwidth(Z, "scott") == pytest.approx(kde_scott.factor, rel=1e-12)
    assert gms.rule_of_thumb_bandwidth(Z, "silverman") == pytest.approx(kde_silv.factor, rel=1e-12)


def test_all_identical_points_give_one_cluster():
    X = np.ones((20, 3))
    ms = gms.MeanShift(backend="numpy").fit(X)
    np.testing.assert_array_equal(ms.cluster_centers_, [[1.0, 1.0, 1.0]])
    assert (ms.labels_ == 0).all()


def test_single_point():
    ms = gms.MeanShift(backend="numpy").fit([[3.0, 4.0]])
    np.testing.assert_array_equal(ms.cluster_centers_, [[3.0, 4.0]])


def test_convergence_warning_when_max_iter_stops_seeds(blobs):
    X, _ = blobs
    with pytest.warns(gms.ConvergenceWarning, match="did not converge within max_iter=1"):
        gms.MeanShift(bandwidth=0.8, max_iter=1, backend="numpy").fit(X)


def test_convergence_warning_is_sklearns_too(blobs):
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    X, _ = blobs
    with pytest.warns(SkConvergenceWarning):
        gms.MeanShift(bandwidth=0.8, max_iter=1, backend="numpy").fit(X)


def test_no_warning_when_converged(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)


def test_pickle_roundtrip(blobs):
    X, _ = blobs
    ms = gms.MeanShift(bandwidth=0.8, backend="numpy").fit(X)
    back = pickle.loads(pickle.dumps(ms))
    np.testing.assert_array_equal(back.predict(X), ms.labels_)
    assert isinstance(back.cluster_centers_, np.ndarray)


@pytest.mark.parametrize("which", ["numpy", "emulated"])
def test_pickle_roundtrip_with_a_backend_object(blobs, which):
    """An estimator given a backend object (not a name) pickles, and the copy
    predicts and refits the same."""
    from _emulation import emulated_backend_or_skip

    from gpumeanshift.backends.numpy.backend import NumpyBackend

    X, _ = blobs
    backend = NumpyBackend(n_threads=1) if which == "numpy" else emulated_backend_or_skip()
    ms = gms.MeanShift(bandwidth=0.8, backend=backend).fit(X)
    back = pickle.loads(pickle.dumps(ms))
    assert type(back.backend) is type(backend)
    np.testing.assert_array_equal(back.predict(X), ms.labels_)
    refit = back.fit(X)
    np.testing.assert_array_equal(refit.labels_, ms.labels_)
    np.testing.assert_allclose(refit.cluster_centers_, ms.cluster_centers_, rtol=0, atol=0)


def test_cupy_runtime_bound_to_a_stream_refuses_to_pickle():
    from gpumeanshift.backends.cuda.runtime import CupyRuntime

    rt = CupyRuntime.__new__(CupyRuntime)  # no device here: only the pickling rule
    rt._stream = object()
    with pytest.raises(TypeError, match="bound to a stream cannot be pickled"):
        pickle.dumps(rt)
    rt._stream = None
    assert rt.__reduce__() == (CupyRuntime, ())


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), ValueError, "contains NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "contains infinity"),
        (np.empty((0, 2)), ValueError, r"0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 1"),
        (np.empty((3, 0)), ValueError, r"0 feature\(s\)"),
        (np.arange(5.0), ValueError, "Expected a 2-D array.*1-D.*Reshape your data"),
        (np.ones((2, 2, 2)), ValueError, "Expected a 2-D array.*3-D"),
        (np.ones((3, 2), dtype=complex), ValueError, "Complex data not supported"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "strings"),
        ([[1.0, 2.0], [3.0]], ValueError, "could not be converted"),
    ],
)
def test_bad_input_is_refused(X, error, match):
    with pytest.raises(error, match=match):
        gms.MeanShift(bandwidth=1.0, backend="numpy").fit(X)


def test_object_array_that_is_not_numeric():
    X = np.array([[1.0, {"a": 1}], [2.0, 3.0]], dtype=object)
    with pytest.raises(TypeError, match="dtype object and could not be converted"):
        gms.MeanShift(bandwidth=1.0, backend="numpy").fit(X)


def test_sparse_input_is_refused():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse matrix.*dense"):
        gms.MeanShift(bandwidth=1.0, backend="numpy").fit(sparse.csr_matrix(X2))


@pytest.mark.parametrize("bandwidth", [0, -1.0, np.inf, np.nan])
def test_bad_bandwidth_value(bandwidth):
    with pytest.raises(ValueError, match="bandwidth must be a positive finite number"):
        gms.MeanShift(bandwidth=bandwidth, backend="numpy").fit(X2)


@pytest.mark.parametrize("bandwidth, match", [("wide", "one of"), (True, "positive number")])
def test_bad_bandwidth_kind(bandwidth, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gms.MeanShift(bandwidth=bandwidth, backend="numpy").fit(X2)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"kernel": "epanechnikov"}, ValueError, "kernel must be one of"),
        ({"max_iter": -1}, ValueError, "max_iter must be >= 0"),
        ({"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
        ({"min_bin_freq": 0}, ValueError, "min_bin_freq must be >= 1"),
        ({"tol": -1.0}, ValueError, "tol must be finite and >= 0"),
        ({"backend": "opencl"}, ValueError, "backend='opencl' is not one of"),
        ({"backend": 3}, TypeError, "backend must be"),
        ({"output_type": "torch"}, ValueError, "output_type must be one of"),
        ({"bin_seeding": "yes"}, TypeError, "bin_seeding must be True or False"),
        ({"seeds": np.ones((2, 3))}, ValueError, "seeds has 3 features but X has 2"),
    ],
)
def test_bad_parameters(params, error, match):
    params = {"bandwidth": 1.0, "backend": "numpy", **params}
    with pytest.raises(error, match=match):
        gms.MeanShift(**params).fit(X2)


def test_predict_before_fit():
    with pytest.raises(gms.NotFittedError, match="not fitted yet"):
        gms.MeanShift().predict(X2)


def test_predict_wrong_feature_count():
    ms = gms.MeanShift(bandwidth=2, backend="numpy").fit(X2)
    with pytest.raises(ValueError, match="X has 3 features, but MeanShift is expecting 2"):
        ms.predict(np.ones((2, 3)))


def test_every_seed_orphaned():
    seeds = np.array([[100.0, 100.0], [-100.0, 50.0]])
    with pytest.raises(ValueError, match="No point was within bandwidth=1.0+ of any seed"):
        gms.MeanShift(bandwidth=1.0, kernel="flat", seeds=seeds, backend="numpy").fit(X2)


def test_estimate_bandwidth_bad_input():
    with pytest.raises(ValueError, match="quantile must be in"):
        gms.estimate_bandwidth(X2, quantile=1.5)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        gms.estimate_bandwidth(X2, n_samples=0)
    with pytest.raises(ValueError, match="random_state must be"):
        gms.estimate_bandwidth(X2, random_state="seed")


def test_import_is_light():
    code = (
        "import sys, gpumeanshift, gpumeanshift.backends.numpy.backend;"
        "heavy = [m for m in ('cupy', 'sklearn', 'matplotlib', 'scipy', 'torch', 'dask')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backend_auto_without_gpu_logs_choice(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="gpumeanshift"):
        ms = gms.MeanShift(bandwidth=2).fit(X2)
    if not gms.backends.base.cuda_available():
        assert ms.backend_ == "numpy"
        assert "backend='auto' chose 'numpy'" in caplog.text
