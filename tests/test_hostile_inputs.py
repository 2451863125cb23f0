"""Hostile and extreme inputs, on every backend and both kernels.

Each case must give a finite result that is *correct* -- checked against a
known answer or a float64 reference, not only for finiteness -- or, where the
issue allows it (magnitudes at the edge of the dtype), a ValueError with a
message. NaN or inf in an output is never acceptable. The outcomes are
tabulated in the README ("Hostile inputs").

Backends: NumPy and the CUDA backend on the emulated runtime (skipped, with
the reason, when ``gpumeanshift.testing.emulated_backend`` is missing or
cannot build its kernels). All data are tiny.

Bugs found here and fixed (kept as regression cases): expanded squared
distances overflowing at 1e154 / underflowing at 1e-300 (now scaled by a
power of two), dedup radius squared in raw units, float32 sums of rows near
the dtype's max, centring on a rounded mean, float32 casts of 1/bandwidth,
and a misleading "duplicates" message for n <= 6.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpumeanshift import MeanShift, estimate_bandwidth
from _emulation import EMULATOR_MISSING, emulated_backend_or_skip

KERNELS = ["flat", "gaussian"]


# ------------------------------------------------------------------ backends
BACKEND_NAMES = ["numpy", "emulated"]


def backend_param(name):
    marks = []
    if name == "emulated" and EMULATOR_MISSING is not None:
        marks.append(pytest.mark.skipif(True, reason=EMULATOR_MISSING))
    return pytest.param(name, id="emulated-cuda" if name == "emulated" else name, marks=marks)


_BACKENDS: dict = {}


def get_backend(name):
    if name == "numpy":
        return "numpy"
    if name not in _BACKENDS:
        _BACKENDS[name] = emulated_backend_or_skip()
    return _BACKENDS[name]


def params(cases):
    """(case, backend, kernel) parameters."""
    out = []
    for case in cases:
        for be in BACKEND_NAMES:
            for kernel in KERNELS:
                p = backend_param(be)
                out.append(pytest.param(case, be, kernel, marks=p.marks,
                                        id=f"{case}-{p.id}-{kernel}"))
    return out


# ---------------------------------------------------------------- references
def two_blobs(d=2, per=10, seed=0):
    """Two tight blobs 5 bandwidths apart (bandwidth 1): the answer is known."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], per)
    rng.shuffle(truth)
    X = truth[:, None] * 5.0 + rng.uniform(-0.1, 0.1, (2 * per, d))
    return X, truth


def reference_centers(X64, truth, h, kernel):
    """Known answer on separated data: each cluster's mean (flat) or the
    Gaussian mode reached from it by the float64 fixed-point iteration."""
    centers = []
    for j in np.unique(truth):
        x = X64[truth == j].mean(axis=0)
        if kernel == "gaussian":
            for _ in range(1000):
                w = np.exp(-((X64 - x) ** 2).sum(axis=1) / (2 * h * h))
                new = w @ X64 / w.sum()
                done = np.abs(new - x).max() <= 1e-15 * h
                x = new
                if done:
                    break
        centers.append(x)
    return np.array(centers)


TOL = {np.dtype(np.float64): 1e-8, np.dtype(np.float32): 2e-3}
FIT_TOL = {np.dtype(np.float64): 1e-11, np.dtype(np.float32): 1e-6}


def fit(X, backend, kernel, bandwidth, **kw):
    X_arr = np.asarray(X)
    dtype = X_arr.dtype if X_arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        return MeanShift(bandwidth=bandwidth, kernel=kernel, backend=get_backend(backend),
                         tol=FIT_TOL[dtype], **kw).fit(X)


def assert_finite_output(ms, X):
    C = ms.cluster_centers_
    assert C.dtype == X.dtype
    assert np.isfinite(C).all(), f"non-finite centers:\n{C}"
    assert np.isfinite(ms.bandwidth_) and ms.bandwidth_ >= 0, ms.bandwidth_
    assert ((ms.labels_ >= 0) & (ms.labels_ < len(C))).all(), ms.labels_


def assert_matches(ms, expected, truth, atol):
    C = ms.cluster_centers_.astype(np.float64)
    assert C.shape == expected.shape, f"{len(C)} centers, expected {len(expected)}:\n{C}"
    D = np.abs(expected[:, None, :] - C[None, :, :]).max(axis=2)
    pi = D.argmin(axis=1)
    assert len(set(pi.tolist())) == len(pi), f"centers do not match:\n{C}\n{expected}"
    worst = D[np.arange(len(pi)), pi].max()
    assert worst <= atol, f"centers off by {worst} > {atol}:\n{C}\n{expected}"
    np.testing.assert_array_equal(ms.labels_, pi[truth])


def check_correct_or_valueerror(run, check, X):
    """The issue's contract: a correct finite result, or a clear ValueError
    (one that does not state a false cause)."""
    try:
        ms = run()
    except ValueError as exc:
        assert len(str(exc)) > 20, f"unclear ValueError: {exc!r}"
        if len(np.unique(np.asarray(X), axis=0)) == len(X):
            assert "duplicates" not in str(exc), f"blames duplicates that do not exist: {exc}"
        return None
    check(ms)
    return ms


# ------------------------------------------------------- magnitudes per dtype
MAGNITUDES = {
    "f64-1e154": (np.float64, 1e154),
    "f64-1e-300": (np.float64, 1e-300),
    "f32-1e19": (np.float32, 1e19),
    "f32-1e-38": (np.float32, 1e-38),
    # Controls: small, but every square stays a normal number of the dtype.
    "f64-1e-150": (np.float64, 1e-150),
    "f32-1e-18": (np.float32, 1e-18),
}



@pytest.mark.parametrize("case,backend,kernel", params(MAGNITUDES))
def test_magnitudes_given_bandwidth(case, backend, kernel):
    dtype, s = MAGNITUDES[case]
    U, truth = two_blobs()
    X = (U * s).astype(dtype)
    X64 = X.astype(np.float64)
    expected = reference_centers(X64 / s, truth, 1.0, kernel) * s

    def check(ms):
        assert_finite_output(ms, X)
        assert_matches(ms, expected, truth, TOL[X.dtype] * s)

    check_correct_or_valueerror(lambda: fit(X, backend, kernel, s), check, X)



@pytest.mark.parametrize("case,backend,kernel", params(MAGNITUDES))
def test_magnitudes_estimated_bandwidth(case, backend, kernel):
    """bandwidth=None: the estimate scales with the data, and so does the fit
    (reference: the same data at unit scale, float64, NumPy backend)."""
    dtype, s = MAGNITUDES[case]
    U, _ = two_blobs(per=15)
    X = (U * s).astype(dtype)
    unit = X.astype(np.float64) / s
    h_unit = float(estimate_bandwidth(unit))
    if kernel == "gaussian":  # the Gaussian with the flat ball's variance
        h_unit /= np.sqrt(unit.shape[1] + 2)
    ref = fit(unit, "numpy", kernel, h_unit)

    def check(ms):
        assert_finite_output(ms, X)
        assert ms.bandwidth_ == pytest.approx(h_unit * s, rel=1e-6)
        assert_matches(ms, ref.cluster_centers_ * s, ref.labels_, TOL[X.dtype] * h_unit * s)

    check_correct_or_valueerror(lambda: fit(X, backend, kernel, None), check, X)


RATIOS = {"bandwidth-1e-200x": 1e-200, "bandwidth-1e200x": 1e200}



@pytest.mark.parametrize("case,backend,kernel", params(RATIOS))
def test_extreme_bandwidth_to_data_ratio(case, backend, kernel):
    """Ordinary data, bandwidth 1e-200 or 1e200 times its extent: every point
    its own cluster, or one cluster at the mean."""
    X, _ = two_blobs()
    h = RATIOS[case] * float(np.ptp(X))

    def check(ms):
        assert_finite_output(ms, X)
        if h < 1:
            assert_matches(ms, X, np.arange(len(X)), 4 * np.finfo(X.dtype).eps * np.abs(X).max())
        else:
            assert_matches(ms, X.mean(axis=0, keepdims=True), np.zeros(len(X), int), 1e-12)

    check_correct_or_valueerror(lambda: fit(X, backend, kernel, h), check, X)


# ------------------------------------------------------------------ duplicates
@pytest.mark.parametrize("case,backend,kernel", params(["x3"]))
def test_duplicated_points(case, backend, kernel):
    """Every point three times: same centers as the data once, each copy
    labelled like its original (the estimate is nonzero: k > 3)."""
    U, truth = two_blobs()
    X = np.concatenate([U, U[::-1], U])
    truth3 = np.concatenate([truth, truth[::-1], truth])
    ms = fit(X, backend, kernel, None)
    assert_finite_output(ms, X)
    once = fit(U, backend, kernel, ms.bandwidth_)
    assert_matches(ms, once.cluster_centers_, np.concatenate(
        [once.labels_, once.labels_[::-1], once.labels_]), 1e-9)
    n = len(U)
    np.testing.assert_array_equal(ms.labels_[:n], ms.labels_[2 * n:])
    # and, at the known bandwidth, the known answer
    ms1 = fit(X, backend, kernel, 1.0)
    assert_matches(ms1, reference_centers(U, truth, 1.0, kernel), truth3, 1e-8)


@pytest.mark.parametrize("case,backend,kernel", params(["3-points-x10"]))
def test_mostly_duplicates(case, backend, kernel):
    """Three distinct points, ten copies each: every point's k-th neighbour
    (k = 9) is a copy, so the estimate is 0 and, as in scikit-learn, each
    distinct point is its own cluster; with a bandwidth, the centers are the
    three points as well."""
    P = np.array([[3.0, 3.0], [-1.0, 2.0], [0.0, -5.0]])
    which = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], 10))
    X = P[which]
    for bandwidth in (None, 0.5):
        ms = fit(X, backend, kernel, bandwidth)
        assert_finite_output(ms, X)
        # Equal intensities: ordered by coordinates, descending.
        np.testing.assert_allclose(ms.cluster_centers_, P[[0, 2, 1]], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ms.labels_, np.array([0, 2, 1])[which])
    assert ms.bandwidth_ == 0.5 and fit(X, backend, kernel, None).bandwidth_ == 0.0


IDENTICAL = {
    "f64-7.25": (np.float64, 7.25), "f64-zero": (np.float64, 0.0),
    "f64--1e300": (np.float64, -1e300), "f32-3e38": (np.float32, 3e38),
    "f32-1e-45": (np.float32, 1e-45),
}
IDENTICAL_BANDWIDTHS = [None, 1.0, 1e-300, 1e150]



@pytest.mark.parametrize("case,backend,kernel,bandwidth", [
    pytest.param(case, be, kernel, bw, id=f"{case}-{p.id}-{kernel}-{bw}", marks=p.marks)
    for case in IDENTICAL for be in BACKEND_NAMES for kernel in KERNELS
    for bw in IDENTICAL_BANDWIDTHS
    for p in [backend_param(be)]
])
def test_all_points_identical(case, backend, kernel, bandwidth):
    """One cluster at the point, no error -- for any bandwidth the dtype can
    hold; a bandwidth float32 cannot represent may be a ValueError instead."""
    dtype, v = IDENTICAL[case]
    X = np.full((50, 3), v, dtype=dtype)

    def check(ms):
        assert_finite_output(ms, X)
        assert ms.cluster_centers_.shape == (1, 3)
        # the point itself, up to the rounding of a mean of 50 equal values
        np.testing.assert_allclose(ms.cluster_centers_, X[:1], rtol=4 * np.finfo(dtype).eps,
                                   atol=0)
        np.testing.assert_array_equal(ms.labels_, np.zeros(50, dtype=np.int64))
        np.testing.assert_array_equal(ms.predict(X[:2]), [0, 0])

    representable = bandwidth is None or (
        float(np.finfo(dtype).tiny) <= bandwidth <= float(np.finfo(dtype).max))
    if representable:
        check(fit(X, backend, kernel, bandwidth))
    else:
        check_correct_or_valueerror(lambda: fit(X, backend, kernel, bandwidth), check, X)


@pytest.mark.parametrize("bandwidth", [None, 2.5])
@pytest.mark.parametrize("case,backend,kernel", params(["1x3"]))
def test_single_point(case, backend, kernel, bandwidth):
    X = np.array([[1.5, -2.0, 1e6]])
    ms = fit(X, backend, kernel, bandwidth)
    assert_finite_output(ms, X)
    np.testing.assert_array_equal(ms.cluster_centers_, X)
    np.testing.assert_array_equal(ms.labels_, [0])
    np.testing.assert_array_equal(ms.predict([[0.0, 0.0, 0.0]]), [0])


# --------------------------------------------------------------- d larger than n
@pytest.mark.parametrize("d", [50, 300])
@pytest.mark.parametrize("case,backend,kernel", params(["n6"]))
def test_d_larger_than_n(case, backend, kernel, d):
    rng = np.random.default_rng(d)
    truth = np.array([0, 1, 0, 1, 1, 0])
    base = rng.normal(0, 10, (2, d))
    X = base[truth] + rng.uniform(-0.01, 0.01, (6, d))  # diameter < 0.2 per group
    ms = fit(X, backend, kernel, 1.0)
    assert_finite_output(ms, X)
    assert_matches(ms, reference_centers(X, truth, 1.0, kernel), truth, 1e-8)


@pytest.mark.parametrize("case,backend,kernel", params(["n5-d40"]))
def test_d_larger_than_n_estimated_bandwidth(case, backend, kernel):
    """Five distinct points in 40-D: estimate_bandwidth's k = max(1, int(0.3 * 5))
    = 1 is each point itself, so the estimate is exactly 0 and each point is
    its own cluster (scikit-learn's rule for bandwidth 0); with a bandwidth
    the fit works."""
    X = np.random.default_rng(0).normal(size=(5, 40))
    assert len(np.unique(X, axis=0)) == len(X)  # no duplicates at all
    ms = fit(X, backend, kernel, None)
    assert ms.bandwidth_ == 0.0 and ms.n_iter_ == 0
    assert sorted(map(tuple, ms.cluster_centers_)) == sorted(map(tuple, X))
    np.testing.assert_array_equal(ms.cluster_centers_[ms.labels_], X)
    ms = fit(X, backend, kernel, 1e-3)
    assert_finite_output(ms, X)
    assert len(ms.cluster_centers_) == 5


# --------------------------------------------------------------- mixed scales
@pytest.mark.parametrize("case,backend,kernel", params(["1e-6-vs-1e6"]))
def test_mixed_column_scales(case, backend, kernel):
    U, truth = two_blobs(d=3)
    X = U * np.array([1e-6, 1e6, 1.0])  # column 1 carries the clusters
    ms = fit(X, backend, kernel, 1e6)
    assert_finite_output(ms, X)
    expected = reference_centers(X, truth, 1e6, kernel)
    # Columns are compared each at its own scale.
    C = ms.cluster_centers_
    pi = [int(np.argmin(np.abs(C[:, 1] - e[1]))) for e in expected]
    assert sorted(pi) == [0, 1]
    np.testing.assert_allclose(C[pi], expected, rtol=1e-7, atol=0)
    np.testing.assert_array_equal(ms.labels_, np.array(pi)[truth])


@pytest.mark.parametrize("backend", [backend_param("numpy"), backend_param("emulated")])
def test_mixed_column_scales_flat_matches_sklearn(backend):
    from sklearn.cluster import MeanShift as SkMeanShift

    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(0, 1e-6, 60), rng.normal(0, 1e6, 60),
                         rng.integers(0, 3, 60).astype(float)])
    ref = SkMeanShift().fit(X)
    ms = fit(X, backend, "flat", None)
    assert_finite_output(ms, X)
    np.testing.assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(ms.labels_, ref.labels_)


# -------------------------------------------------------------------- layouts
def _layouts(tmp_path, X):
    wide = np.empty((2 * len(X), 2 * X.shape[1]), X.dtype)
    wide[::2, ::2] = X
    ro = X.copy()
    ro.flags.writeable = False
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return {
        "fortran": np.asfortranarray(X),
        "strided-rows-cols": wide[::2, ::2],
        "negative-stride": X[::-1][::-1],
        "read-only": ro,
        "memmap-r": np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape),
        "memmap-r+": np.memmap(path, dtype=X.dtype, mode="r+", shape=X.shape),
        "list-of-lists": X.tolist(),
    }


LAYOUTS = ["fortran", "strided-rows-cols", "negative-stride", "read-only", "memmap-r",
           "memmap-r+", "list-of-lists"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case,backend,kernel", params(["layout"]))
def test_memory_layouts(case, backend, kernel, layout, dtype, tmp_path):
    """Any layout gives bit for bit the result of a C-contiguous copy, and the
    input is never written to."""
    U, truth = two_blobs(d=3)
    X = U.astype(dtype)
    A = _layouts(tmp_path, X)[layout]
    before = np.array(A, copy=True)
    ref = fit(np.ascontiguousarray(X), backend, kernel, 1.0)
    ms = fit(A, backend, kernel, 1.0)
    if layout == "list-of-lists":
        X = X.astype(np.float64)  # lists of Python floats are float64 data
        ref = fit(np.ascontiguousarray(X), backend, kernel, 1.0)
    assert_finite_output(ms, X)
    assert ms.cluster_centers_.tobytes() == ref.cluster_centers_.tobytes()
    np.testing.assert_array_equal(ms.labels_, ref.labels_)
    assert_matches(ms, reference_centers(X.astype(np.float64), truth, 1.0, kernel), truth,
                   TOL[X.dtype])
    np.testing.assert_array_equal(ms.predict(A), ref.labels_)
    np.testing.assert_array_equal(np.asarray(A), before)


# ---------------------------------------------------------------- non-finite
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("case,backend,kernel", params(["non-finite"]))
def test_non_finite_input_is_a_clear_valueerror(case, backend, kernel, bad):
    X, _ = two_blobs()
    Xb = X.copy()
    Xb[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        fit(Xb, backend, kernel, 1.0)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fit(Xb, backend, kernel, None)
    ms = fit(X, backend, kernel, 1.0)
    with pytest.raises(ValueError, match="NaN|infinity"):
        ms.predict(Xb)


# ------------------------------------------------------- nothing let in (compile)
def test_kernel_compile_options_are_a_fixed_set():
    """NVRTC options and template instantiations come from constants only; a
    user string never reaches the compiler (kernel names are looked up in a
    fixed table, bad values are refused before any launch)."""
    from gpumeanshift.backends import runtime as rt

    assert rt.NVRTC_OPTIONS == ("--std=c++17",)
    assert set(rt.CUPY_APPENDED_OPTIONS) == {"-ftz=true", "--device-as-default-execution-space"}
    import re

    c_types = {"float", "double", "int", "long long", "unsigned char", "unsigned short",
               "unsigned int"}
    for name in rt.kernel_names():
        base, _, params = name.partition("<")
        assert base.isidentifier(), name
        for p in params.rstrip(">").split(",") if params else []:
            assert re.fullmatch(r"\d+", p) or p in c_types, name
    with pytest.raises(KeyError):
        rt.kernel_name("ms_shift_fused", np.float32, 2, "gaussian> -DEVIL <")
    with pytest.raises(TypeError):
        rt.kernel_name("ms_shift_fused", np.float16, 2)
    X, _ = two_blobs()
    with pytest.raises(ValueError, match="kernel must be one of"):
        MeanShift(bandwidth=1.0, kernel="gaussian -DX=1", backend="numpy").fit(X)
