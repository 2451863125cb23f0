"""Edges of the public API: DataFrames, extreme parameters, checks made before any
work, the backend values every public function takes, data near float64's maximum."""

import warnings

import numpy as np
import pandas as pd
import pytest

from gpumeanshift import (MeanShift, cam_shift, mean_shift_filter, mean_shift_track,
                          segment_image)
from gpumeanshift.backends.numpy.backend import NumpyBackend

RNG = np.random.default_rng(7)
X = np.concatenate([RNG.normal(c, 0.4, size=(60, 3)) for c in ([0, 0, 0], [4, 4, 0])])


# ------------------------------------------------------------------ DataFrames
def _frame(A, names=("a", "b", "c")):
    return pd.DataFrame(A, columns=list(names))


def test_dataframe_feature_names_are_kept():
    ms = MeanShift(bandwidth=1.5, backend="numpy").fit(_frame(X))
    np.testing.assert_array_equal(ms.feature_names_in_, ["a", "b", "c"])
    assert ms.feature_names_in_.dtype == object
    np.testing.assert_array_equal(ms.predict(_frame(X)), ms.labels_)
    # a refit on plain arrays forgets them
    assert not hasattr(MeanShift(bandwidth=1.5, backend="numpy").fit(X), "feature_names_in_")
    assert not hasattr(ms.fit(X), "feature_names_in_")


@pytest.mark.parametrize("names, match", [
    (("a", "c", "b"), "same order"),
    (("a", "b", "z"), "unseen at fit time:\n- z"),
])
def test_predict_refuses_renamed_or_reordered_columns(names, match):
    ms = MeanShift(bandwidth=1.5, backend="numpy").fit(_frame(X))
    with pytest.raises(ValueError, match=match):
        ms.predict(_frame(X, names))
    with pytest.raises(ValueError, match=match):
        ms.score_samples(_frame(X, names))


def test_predict_warns_when_only_one_side_has_names():
    named = MeanShift(bandwidth=1.5, backend="numpy").fit(_frame(X))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        named.predict(X)
    plain = MeanShift(bandwidth=1.5, backend="numpy").fit(X)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.predict(_frame(X))


def test_mixed_column_name_types_are_refused():
    with pytest.raises(TypeError, match="all input features have string names"):
        MeanShift(bandwidth=1.5, backend="numpy").fit(pd.DataFrame(X, columns=["a", 1, "c"]))


def test_integer_column_names_are_not_feature_names():
    ms = MeanShift(bandwidth=1.5, backend="numpy").fit(pd.DataFrame(X))
    assert not hasattr(ms, "feature_names_in_")


# ----------------------------------------------------------- extreme parameters
def test_a_huge_tol_stops_every_seed_after_one_step():
    ms = MeanShift(bandwidth=1.5, tol=1e300, backend="numpy").fit(X)
    assert ms.n_iter_ == 0
    # one step, like max_iter=0, but converged (no warning)
    with pytest.warns(Warning, match="did not converge"):
        one = MeanShift(bandwidth=1.5, max_iter=0, backend="numpy").fit(X)
    np.testing.assert_array_equal(ms.cluster_centers_, one.cluster_centers_)
    np.testing.assert_array_equal(ms.labels_, one.labels_)
    g = MeanShift(bandwidth=1.5, tol=1e300, kernel="gaussian", backend="numpy").fit(X)
    assert g.n_iter_ == 0


def test_max_memory_takes_an_integral_float():
    a = MeanShift(bandwidth=1.5, max_memory=1e9, backend="numpy").fit(X)
    b = MeanShift(bandwidth=1.5, max_memory=10**9, backend="numpy").fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    with pytest.raises(TypeError, match="max_memory must be an integer"):
        MeanShift(bandwidth=1.5, max_memory=1e9 + 0.5, backend="numpy").fit(X)


def test_output_type_cupy_without_cupy_is_refused_before_any_work(monkeypatch):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy imports here: output_type='cupy' is valid")
    except Exception:
        pass
    from gpumeanshift import _driver

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran before the parameters were checked")

    monkeypatch.setattr(_driver, "fit", no_fit)
    with pytest.raises(ValueError, match="output_type='cupy' needs CuPy"):
        MeanShift(bandwidth=1.5, output_type="cupy", backend="numpy").fit(X)


@pytest.mark.parametrize("param, value, error", [
    ("kernel", "tophat", ValueError), ("tol", -1.0, ValueError), ("tol", np.inf, ValueError),
    ("max_iter", 2.5, TypeError), ("bin_seeding", "yes", TypeError),
    ("n_jobs", 0, ValueError), ("algorithm", "kd_tree", ValueError),
    ("bandwidth", "normal", ValueError), ("backend", "gpu", ValueError),
])
def test_bad_parameters_are_refused_before_any_work(monkeypatch, param, value, error):
    from gpumeanshift import _driver

    monkeypatch.setattr(_driver, "fit", lambda *a, **k: pytest.fail("fit ran"))
    with pytest.raises(error, match=param):
        MeanShift(**{param: value}).fit(X)


# ------------------------------------------- every public function takes "auto"
def _image():
    img = np.zeros((12, 16, 3))
    img[:, 8:] = 120.0
    img[3, 3] = 30.0
    return img


@pytest.mark.parametrize("backend", ["auto", "numpy", None, NumpyBackend()],
                         ids=["auto", "numpy", "None", "object"])
def test_image_and_tracking_take_the_estimators_backend_values(backend):
    img = _image()
    ref_filter = mean_shift_filter(img, 2, 20, backend="numpy")
    np.testing.assert_array_equal(mean_shift_filter(img, 2, 20, backend=backend), ref_filter)
    _, labels = segment_image(img, 2, 20, backend=backend)
    np.testing.assert_array_equal(labels, segment_image(img, 2, 20, backend="numpy")[1])
    prob = np.zeros((40, 40))
    prob[10:20, 12:22] = 1.0
    assert mean_shift_track(prob, (5, 5, 10, 10), backend=backend) == \
        mean_shift_track(prob, (5, 5, 10, 10), backend="numpy")
    assert cam_shift(prob, (5, 5, 10, 10), backend=backend) == \
        cam_shift(prob, (5, 5, 10, 10), backend="numpy")


def test_image_functions_refuse_an_unknown_backend():
    with pytest.raises(ValueError, match="backend='gpu' is not one of"):
        mean_shift_filter(_image(), 2, 20, backend="gpu")
    with pytest.raises(ValueError, match="backend='gpu' is not one of"):
        cam_shift(np.ones((10, 10)), (1, 1, 3, 3), backend="gpu")


# -------------------------------------------------- finite data near float64's max
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_data_near_the_float64_maximum(kernel):
    # 2**1020 is exact, so the fit of U * 2**1020 is the fit of U, scaled; sums
    # of such rows pass float64's range and must not turn into inf or warnings.
    U = np.concatenate([RNG.uniform(-1, -0.8, size=(30, 2)), RNG.uniform(0.8, 1, size=(30, 2))])
    scale = 2.0 ** 1020
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = MeanShift(kernel=kernel, backend="numpy").fit(U * scale)
    ref = MeanShift(kernel=kernel, backend="numpy").fit(U)
    assert big.bandwidth_ == pytest.approx(ref.bandwidth_ * scale, rel=1e-12)
    assert np.isfinite(big.cluster_centers_).all()
    np.testing.assert_allclose(big.cluster_centers_ / scale, ref.cluster_centers_,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(big.labels_, ref.labels_)
