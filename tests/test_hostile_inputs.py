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
    from gpumeanshift.backends.cuda import runtime as rt

    assert rt.NVRTC_OPTIONS == ("--std=c++17",)
    assert set(rt.CUPY_APPENDED_OPTIONS) == {"-ftz=true", "--device-as-default-execution-space"}
    import re

    c_types = {"float", "double", "int", "long long", "unsigned char", "unsigned short",
               "unsigned int"}
    for name in rt.kernel_names():
        base, _, params = name.partition("<")
        assert base.isidentifier(), name
        # Arguments as the demangler spells them: ", " between them; the
        # weighted flag written out as true/false; a negative dimension is
        # the bounded path's (rt.shift_dim), one of the declared bounds.
        for p in params.rstrip(">").split(", ") if params else []:
            assert re.fullmatch(r"\d+", p) or p in c_types or p in ("true", "false") or (
                re.fullmatch(r"-\d+", p) and -int(p) in rt.BOUNDED_DIMS), name
    with pytest.raises(KeyError):
        rt.kernel_name("ms_shift_fused", np.float32, 2, "gaussian> -DEVIL <")
    with pytest.raises(TypeError):
        rt.kernel_name("ms_shift_fused", np.float16, 2)
    X, _ = two_blobs()
    with pytest.raises(ValueError, match="kernel must be one of"):
        MeanShift(bandwidth=1.0, kernel="gaussian -DX=1", backend="numpy").fit(X)


# ------------------------------------------------------------ hostile model files
# load_model reads a file it cannot trust: every malformed file is one
# ValueError("<file> is not a valid gpumeanshift model: ..."), it never reads
# a member the format does not define, never reads more than the file holds,
# and never waits on a file that is not a regular file.
import io
import json
import os
import sys
import threading
import tracemalloc
import zipfile

from gpumeanshift.io import load_model, save_model

INVALID = "is not a valid gpumeanshift model: "


@pytest.fixture
def model_file(tmp_path):
    X, _ = two_blobs()
    ms = MeanShift(bandwidth=1.0, kernel="flat", backend="numpy").fit(X)
    assert ms.cluster_centers_.shape == (2, 2)
    path = tmp_path / "model.npz"
    save_model(ms, path)
    return path


def _members(path):
    """(name, raw bytes) of each member, in archive order."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _write_zip(path, members):
    """A ZIP archive of (name, bytes) members, stored as np.savez stores them,
    or (name, bytes, compression) members."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data, *how in members:
                zf.writestr(name, data, compress_type=how[0] if how else zipfile.ZIP_STORED)
    return path


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape, descr="<f8"):
    """The .npy header alone, declaring an array of ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _header_bytes(members):
    return np.load(io.BytesIO(dict(members)["header.npy"])).tobytes()


def _header(members):
    return json.loads(_header_bytes(members))


def _header_member(text):
    return _npy(np.frombuffer(text, dtype=np.uint8))


def _with(members, replace=None, header=None, params=None, drop=(), add=()):
    """Members with some replaced, dropped or added, or the JSON header edited."""
    out = [(n, d) for n, d in members if n not in drop]
    replace = dict(replace or {})
    if header is not None or params is not None:
        h = _header(members)
        h.update(header or {})
        h["params"].update(params or {})
        replace["header.npy"] = _npy(np.frombuffer(json.dumps(h).encode(), dtype=np.uint8))
    out = [(n, replace.get(n, d)) for n, d in out]
    return out + list(add)


def _append_deflated_zeros(path, name, head, mib):
    """Append a deflated member: ``head`` then ``mib`` MiB of zeros (about 1000 times
    smaller in the file)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w", force_zip64=True) as w:
            w.write(head)
            block = bytes(1 << 20)
            for _ in range(mib):
                w.write(block)


def _peak_memory(fn):
    """Peak traced memory (bytes) while ``fn`` runs; ``fn`` asserts what it must."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _declare_size(path, name, size):
    """Rewrite the uncompressed size a member declares (local and central headers)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for sig, field_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(sig)
        while at >= 0:
            if data[at + name_at:at + name_at + len(encoded)] == encoded:
                data[at + field_at:at + field_at + 4] = size.to_bytes(4, "little")
            at = data.find(sig, at + 1)
    path.write_bytes(bytes(data))


@pytest.fixture
def opened_members(monkeypatch):
    """The names of the archive members opened while the test runs."""
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


@pytest.mark.parametrize("how", ["declared-3GiB", "deflated-64MiB"])
def test_model_member_the_format_does_not_define_is_never_read(model_file, how, opened_members):
    """An extra member, however large it says or decompresses to, is skipped unread."""
    ref = load_model(model_file, backend="numpy").estimator.cluster_centers_
    if how == "declared-3GiB":
        head = _npy_header(((3 << 30) // 8,))
        _write_zip(model_file, _members(model_file)
                   + [("extra.npy", head + bytes(64), zipfile.ZIP_DEFLATED)])
        _declare_size(model_file, "extra.npy", 3 << 30)
        with zipfile.ZipFile(model_file) as zf:
            assert zf.getinfo("extra.npy").file_size == 3 << 30
    else:
        _append_deflated_zeros(model_file, "extra.npy", _npy_header((8 << 20,)), 64)
        with zipfile.ZipFile(model_file) as zf:
            assert zf.getinfo("extra.npy").file_size > 64 << 20
    assert model_file.stat().st_size < 1 << 20
    opened_members.clear()
    got = []
    peak = _peak_memory(lambda: got.append(load_model(model_file, backend="numpy")))
    assert "extra.npy" not in opened_members and "header.npy" in opened_members
    assert peak < 4 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"
    np.testing.assert_array_equal(got[0].estimator.cluster_centers_, ref)


def test_model_compressed_bomb_in_a_defined_member_is_refused_unread(model_file):
    """A defined member must be stored as save_model stores it: a deflated one
    (here 64 MiB of zero centers, consistent with the header) is refused
    without being decompressed."""
    k, d = 1 << 20, 8
    members = _with(_members(model_file), header={"n_clusters": k, "n_features": d},
                    drop=("cluster_centers.npy", "cluster_sizes.npy"))
    _write_zip(model_file, members)
    _append_deflated_zeros(model_file, "cluster_centers.npy", _npy_header((k, d)), 8 * d)
    assert model_file.stat().st_size < 1 << 20

    def load():
        with pytest.raises(ValueError, match=INVALID + "member cluster_centers.npy is compressed"):
            load_model(model_file)

    peak = _peak_memory(load)
    assert peak < 4 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"


def _huge_npy_header(members):
    # cluster_centers.npy says (2e12, 2): 4e12 float64 values, with 32 bytes of data.
    return _with(members, replace={"cluster_centers.npy": _npy_header((2 * 10**12, 2))
                                   + bytes(32)})


def _huge_json_shape(members):
    # Both the JSON header and the .npy header say 4e12 values; the data are 32 bytes.
    return _with(_huge_npy_header(members), header={"n_clusters": 2 * 10**12})


def _deep_json(members):
    text = b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return _with(members, replace={"header.npy": _header_member(text)})


def _edit_header_text(old, new):
    def make(members):
        text = _header_bytes(members)
        assert old in text
        return _with(members, replace={"header.npy": _header_member(text.replace(old, new))})
    return make


MALFORMED = {
    # name: (make members from a good file's members, what the message says)
    "raw-bytes-header": (lambda m: _with(m, replace={"header.npy": _header_bytes(m)}),
                         "member header.npy is not a .npy array"),
    "raw-bytes-centers": (lambda m: _with(m, replace={"cluster_centers.npy": b"\0" * 200}),
                          "member cluster_centers.npy is not a .npy array"),
    "object-array-centers": (lambda m: _with(m, replace={
        "cluster_centers.npy": _npy(np.array([[1.0, 2.0], [3.0, None]], dtype=object))}),
        "invalid .npy header"),
    "npy-header-4e12-values": (_huge_npy_header,
                               r"cluster_centers has shape \(2000000000000, 2\), but the header says \(2, 2\)"),
    "json-shape-4e12-values": (_huge_json_shape, r"the header's shape \(2000000000000, 2\) needs"),
    "deeply-nested-json": (_deep_json, "JSON nested too deeply"),
    "json-nan": (_edit_header_text(b'"bandwidth": 1.0', b'"bandwidth": NaN'),
                 "NaN is not a number"),
    "duplicate-json-key": (_edit_header_text(b'"bandwidth": 1.0',
                                             b'"bandwidth": 1.0, "bandwidth": 9.0'),
                           "key 'bandwidth' appears twice"),
    "duplicate-member": (lambda m: m + [("cluster_centers.npy", _npy(np.zeros((2, 2))))],
                         "member cluster_centers.npy appears twice"),
    "member-past-the-end": (lambda m: _with(m, replace={
        "cluster_centers.npy": _npy_header((2, 2)) + bytes(32 + 100)}), "its .npy header"),
    "mean-without-standardized": (lambda m: _with(m, add=[("mean.npy", _npy(np.zeros(2))),
                                                          ("scale.npy", _npy(np.ones(2)))]),
                                  "not standardized"),
    "seeds-wrong-features": (lambda m: _with(m, add=[("seeds.npy", _npy(np.zeros((3, 5))))]),
                             r"seeds has shape \(3, 5\), but the header says \(any, 2\)"),
    "seeds-nan": (lambda m: _with(m, add=[("seeds.npy", _npy(np.full((3, 2), np.nan)))]),
                  "seeds contains NaN"),
    "n-seeds-disagrees": (lambda m: _with(m, header={"n_seeds": 4},
                                          add=[("seeds.npy", _npy(np.zeros((3, 2))))]),
                          r"but the header says \(4, 2\)"),
    "fit-not-an-object": (lambda m: _with(m, header={"fit": [1]}), "fit must hold"),
    "library-version-not-a-string": (lambda m: _with(m, header={"library_version": 3}),
                                     "library_version must be a string"),
    "standardized-not-a-bool": (lambda m: _with(m, header={"standardized": "no"}),
                                "standardized must be true or false"),
    "column-lone-surrogate": (lambda m: _with(m, header={"columns": ["x", "\ud800"]}),
                              "columns must be 2 names"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_model_file_is_one_valueerror(model_file, tmp_path, case):
    make, message = MALFORMED[case]
    bad = _write_zip(tmp_path / "bad.npz", make(_members(model_file)))

    def load():
        with pytest.raises(ValueError, match=INVALID + ".*" + message):
            load_model(bad)

    peak = _peak_memory(load)
    assert peak < 8 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"


# Parameters a fit refuses: the loader refuses them too, naming the parameter.
BAD_PARAMS = [
    ({"max_iter": -1}, "max_iter must be >= 0"),
    ({"max_iter": 2.5}, "max_iter must be an integer"),
    ({"min_bin_freq": 0}, "min_bin_freq must be >= 1"),
    ({"tol": "small"}, "tol must be a real number"),
    ({"tol": -1.0}, "tol must be finite and >= 0"),
    ({"bin_seeding": "yes"}, "bin_seeding must be True or False"),
    ({"cluster_all": 1}, "cluster_all must be True or False"),
    ({"algorithm": "fast"}, "algorithm must be one of"),
    ({"label_assignment": "vote"}, "label_assignment must be one of"),
    ({"output_type": "torch"}, "output_type must be one of"),
    ({"n_jobs": 0}, "n_jobs must be a positive integer or -1"),
    ({"max_memory": 0}, "max_memory must be >= 1"),
    ({"verbose": -1}, "verbose must be >= 0"),
    ({"bandwidth": "wide"}, "bandwidth must be a positive number, None, or one of"),
    ({"bandwidth": -2.0}, "bandwidth must be a positive finite number"),
    ({"kernel": "gaussian"}, "params says kernel='gaussian' but the header says 'flat'"),
    ({"seeds": [[0.0, 0.0]]}, "seeds are stored as the seeds array"),
    ({"bandwith": 1.0}, "'bandwith' is not a parameter of MeanShift"),
]


@pytest.mark.parametrize("params, message", BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_model_parameters_are_checked_at_load_as_fit_checks_them(model_file, tmp_path,
                                                                 params, message):
    bad = _write_zip(tmp_path / "bad.npz", _with(_members(model_file), params=params))
    with pytest.raises(ValueError, match=INVALID + ".*" + message):
        load_model(bad)
    name = next(iter(params))
    if name in MeanShift._get_param_names() and name not in ("kernel", "seeds"):
        # The same value is refused by set_params + fit.
        X, _ = two_blobs()
        with pytest.raises((ValueError, TypeError)):
            MeanShift(bandwidth=1.0, backend="numpy").set_params(**params).fit(X)


def test_model_output_type_cupy_without_cupy_is_refused_at_load(model_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    bad = _write_zip(tmp_path / "bad.npz", _with(_members(model_file),
                                                 params={"output_type": "cupy"}))
    with pytest.raises(ValueError, match=INVALID + r".*output_type='cupy' needs CuPy"):
        load_model(bad)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_model_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    outcome = []

    def run():
        try:
            load_model(fifo)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 -- the outcome is asserted below
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():  # it waits for a writer: give it one, so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(timeout=10)
        pytest.fail("load_model waited on a FIFO")
    assert isinstance(outcome[0], ValueError), outcome
    assert str(outcome[0]).endswith(INVALID + "it is a FIFO, not a regular file")


def test_model_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match=INVALID + "it is a directory, not a regular file"):
        load_model(tmp_path)
