"""Sample weights on the CUDA backend (the WEIGHTED kernel instantiations).

The reference is repetition: for integer weights every result must equal the
unweighted result on ``np.repeat(X, w, axis=0)`` (seeds unchanged), which
runs the unweighted kernels; non-integer weights are checked against float64
NumPy references. Tolerances: float64 flat modes within 1e-9 bandwidths,
Gaussian 1e-11 (the weighted sums add w K x once where the repeated data add
K x w times: rounding only); float32 modes 2e-4 bandwidths as elsewhere in
this suite. Counts (intensity, count_within) of integer weights are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import make_backend, ref_dist, runtime_kind, to_numpy  # noqa: F401
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift.backends.cuda.backend import CudaBackend
from gpumeanshift.testing import EmulatedRuntime, emulated_backend

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

MODE_TOL = {("flat", np.float64): 1e-9, ("gaussian", np.float64): 1e-11,
            ("flat", np.float32): 2e-4, ("gaussian", np.float32): 2e-4}


def _data(seed, n, d, dtype, centers=3):
    rng = np.random.default_rng(seed)
    C = rng.uniform(-3, 3, (centers, d)) + 5.0
    X = C[rng.integers(0, centers, n)] + rng.normal(0, 0.6, (n, d))
    w = rng.integers(0, 6, n).astype(np.float64)
    if not w.any():
        w[0] = 1.0
    return X.astype(dtype), w


def _shift(be, X, seeds, h, kernel, algorithm, w=None, max_iter=100, tol=1e-4):
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=max_iter, tol=tol,
                   algorithm=algorithm, weights=w)
    return (to_numpy(res.modes), to_numpy(res.n_iter), to_numpy(res.intensity),
            to_numpy(res.converged), res.algorithm)


def _assert_same_shift(a, b, h, kernel, dtype):
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=MODE_TOL[kernel, dtype] * h)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])  # summed integer weights: exact
    np.testing.assert_array_equal(a[3], b[3])
    assert a[4] == b[4]


# ------------------------------------------------------------------ shift
@settings(max_examples=40, deadline=None, database=None)
@given(n=st.integers(1, 70), d=st.sampled_from([1, 2, 3, 5, 7]), seed=st.integers(0, 2**16),
       kernel=st.sampled_from(["flat", "gaussian"]),
       algorithm=st.sampled_from(["brute", "grid", "auto"]),
       dtype=st.sampled_from([np.float64, np.float32]), split=st.booleans())
def test_weighted_shift_equals_shift_of_repeated_rows(n, d, seed, kernel, algorithm, dtype,
                                                       split):
    X, w = _data(seed, n, d, dtype)
    rng = np.random.default_rng(seed + 1)
    seeds = (X[rng.integers(0, n, 6)] + rng.normal(0, 0.3, (6, d))).astype(dtype)
    h = 1.3 * np.sqrt(d)
    be = emulated_backend(split=split, n_splits=3, iters_per_launch=4, split_steps=4)
    got = _shift(be, X, seeds, h, kernel, algorithm, w)
    want = _shift(be, np.repeat(X, w.astype(int), axis=0), seeds, h, kernel, algorithm)
    assert got[2].dtype == np.float64
    if dtype == np.float32:
        # float32 Gaussian sums in another order: the stopping test may pass
        # one step apart (seen in 1 case of 60 for 6 seeds); flat weights
        # are 0 or 1, the sums differ less and no such case was seen.
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=MODE_TOL[kernel, dtype] * h)
        np.testing.assert_array_equal(got[3], want[3])
        same = got[1] == want[1]
        assert np.abs(got[1] - want[1]).max(initial=0) <= (1 if kernel == "gaussian" else 0)
        np.testing.assert_array_equal(got[2][same], want[2][same])
        return
    _assert_same_shift(got, want, h, kernel, dtype)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("algorithm", ["brute", "grid", "auto"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("d", [2, 11, 16])  # 11: the bounded path (registers, run-time d)
def test_fixed_weighted_shift_cases(make_backend, kernel, algorithm, dtype, d):
    X, w = _data(7, 150, d, dtype)
    seeds = X[::10] + dtype(0.05)
    h = 1.2 * np.sqrt(d)
    be = make_backend()
    got = _shift(be, X, seeds, h, kernel, algorithm, w)
    want = _shift(be, np.repeat(X, w.astype(int), axis=0), seeds, h, kernel, algorithm)
    if dtype == np.float32:
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=2e-4 * h)
        np.testing.assert_array_equal(got[2], want[2])
        return
    _assert_same_shift(got, want, h, kernel, dtype)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_weighted_split_scheme_equals_fused(kernel):
    X, w = _data(3, 300, 3, np.float64)
    seeds = X[:5] + 0.1
    fused = _shift(emulated_backend(split=False), X, seeds, 2.0, kernel, "brute", w)
    split = _shift(emulated_backend(split=True, n_splits=4), X, seeds, 2.0, kernel, "brute", w)
    _assert_same_shift(fused, split, 2.0, kernel, np.float64)


def test_integer_lattice_flat_is_bit_identical_to_repeated_rows():
    # integer data under the flat kernel: exact sums both ways
    rng = np.random.default_rng(5)
    X = rng.integers(0, 12, (200, 2)).astype(np.float64)
    w = rng.integers(0, 6, 200).astype(np.float64)
    seeds = X[::7]
    be = emulated_backend()
    for algorithm in ("brute", "grid"):
        got = _shift(be, X, seeds, 2.0, "flat", algorithm, w)
        want = _shift(be, np.repeat(X, w.astype(int), axis=0), seeds, 2.0, "flat", algorithm)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_rows_of_weight_zero_are_the_same_as_removed(kernel, dtype):
    X, w = _data(11, 120, 3, dtype)
    w[::3] = 0.0
    seeds = X[::9] + dtype(0.1)
    be = emulated_backend()
    keep = w > 0
    for algorithm in ("brute", "grid"):
        got = _shift(be, X, seeds, 1.5, kernel, algorithm, w)
        want = _shift(be, X[keep], seeds, 1.5, kernel, algorithm, w[keep])
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_seed_near_only_weight_zero_rows_is_an_orphan():
    X = np.array([[0.0], [0.2], [10.0]])
    w = np.array([0.0, 0.0, 3.0])
    res = emulated_backend().shift(X, np.array([[0.1], [10.0]]), bandwidth=1.0, kernel="flat",
                                   max_iter=50, tol=1e-4, weights=w)
    np.testing.assert_array_equal(to_numpy(res.intensity), [0.0, 3.0])
    np.testing.assert_array_equal(to_numpy(res.n_iter), [0, 0])


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_scaling_every_weight_changes_nothing(kernel, dtype):
    X, w = _data(13, 140, 2, dtype)
    seeds = X[::8] + dtype(0.05)
    be = emulated_backend()
    base = _shift(be, X, seeds, 1.4, kernel, "brute", w)
    # a power of two: bit for bit, intensity scaled exactly
    p2 = _shift(be, X, seeds, 1.4, kernel, "brute", w * 2.0**-40)
    for a, b in zip(base[:2] + base[3:], p2[:2] + p2[3:]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p2[2], base[2] * 2.0**-40)
    # any other constant: to rounding
    c = 0.37
    sc = _shift(be, X, seeds, 1.4, kernel, "brute", w * c)
    np.testing.assert_allclose(sc[0], base[0], rtol=0, atol=MODE_TOL[kernel, dtype] * 1.4)
    np.testing.assert_allclose(sc[2], base[2] * c, rtol=1e-6 if dtype == np.float32 else 1e-13)
    if dtype == np.float64:
        np.testing.assert_array_equal(sc[1], base[1])


def test_unweighted_shift_runs_only_the_unweighted_kernels():
    X, _ = _data(17, 100, 3, np.float64)
    rt = EmulatedRuntime()
    be = CudaBackend(rt, split=False)
    res = be.shift(X, X[::10], bandwidth=1.5, kernel="gaussian", max_iter=50, tol=1e-4)
    assert res.intensity.dtype == np.int64
    assert rt.launches and not any(R.is_weighted(name) for name in rt.launches)
    rt.reset_counters()
    be.shift(X, X[::10], bandwidth=1.5, kernel="gaussian", max_iter=50, tol=1e-4,
             weights=np.ones(len(X)))
    assert rt.launches[R.kernel_name("ms_shift_fused", np.float64, 3, "gaussian", True)] >= 1


def test_weights_of_ones_equal_no_weights():
    X, _ = _data(19, 160, 2, np.float64)
    be = emulated_backend()
    for kernel in ("flat", "gaussian"):
        a = _shift(be, X, X[::9], 1.3, kernel, "brute")
        b = _shift(be, X, X[::9], 1.3, kernel, "brute", np.ones(len(X)))
        _assert_same_shift(b, a, 1.3, kernel, np.float64)


@pytest.mark.parametrize("split", [False, True])
def test_weighted_shift_in_small_batches_and_after_oom(split):
    """Seeds in batches (a small free-memory report), and batches halved after
    out-of-memory errors: the same weighted result as in one batch."""
    X, w = _data(41, 200, 2, np.float64)
    seeds = X[::2] + 0.02
    whole = _shift(emulated_backend(split=split, n_splits=2), X, seeds, 1.0, "gaussian",
                   "brute", w)
    small = emulated_backend(split=split, n_splits=2, memory_fraction=1.0,
                             runtime_options={"reported_free": 30 * 64})
    got = _shift(small, X, seeds, 1.0, "gaussian", "brute", w)
    assert small.last_plan["batch_rows"] < len(seeds)
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a, b)
    # rows [x, w] (200 x 3 doubles) and the results of 100 seeds (modes,
    # n_iter, float64 intensity, converged), then room for about 30 seeds
    fixed = 200 * 3 * 8 + 100 * (2 * 8 + 8 + 8 + 1) + 1500
    oom = emulated_backend(split=split, n_splits=2, runtime_options={
        "memory_limit": fixed, "reported_free": 1 << 30})
    got = _shift(oom, X, seeds, 1.0, "gaussian", "brute", w)
    assert oom.runtime.failed_allocations >= 1
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------- proven Gaussian grid
def _wide(seed, n):
    rng = np.random.default_rng(seed)
    # 16 blobs 40 bandwidths apart: the proven grid's cells pay off
    C = np.array([(a, b) for a in range(4) for b in range(4)], dtype=np.float64) * 40.0
    return C[np.arange(n) % 16] + rng.normal(0, 0.6, (n, 2))


def test_proven_grid_weighted_equals_repeated_rows():
    X = _wide(23, 3200)  # > 2048 rows of positive weight: the proven grid runs
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, len(X)).astype(np.float64)
    seeds = X[::97] + 0.05
    be = emulated_backend()
    got = _shift(be, X, seeds, 1.0, "gaussian", "auto", w)
    assert be.last_plan["proven"]
    want = _shift(be, np.repeat(X, w.astype(int), axis=0), seeds, 1.0, "gaussian", "auto")
    assert be.last_plan["proven"]
    _assert_same_shift(got, want, 1.0, "gaussian", np.float64)


@pytest.mark.parametrize("skew", ["log-uniform", "light-blobs"])
def test_proven_grid_with_skewed_weights_is_brute_force_to_rounding(skew):
    # The bound takes the weight outside reach as (rows outside) x (largest
    # weight): conservative, so a seed whose own neighbourhood is light may
    # not prove its steps; it climbs on with the exact kernel. Either way:
    # brute force's result. "light-blobs": the seeds' blobs weigh 1e-9, the
    # other blobs (40 bandwidths away) 1: no seed can prove a step.
    X = _wide(29, 3200)
    rng = np.random.default_rng(2)
    if skew == "log-uniform":
        w = 10.0 ** rng.uniform(-12, 0, len(X))
    else:
        w = np.ones(len(X))
        w[::2] = 1e-9  # blobs 0, 2, 4, ...: those of the seeds below
    seeds = X[::100] + 0.05
    be = emulated_backend()
    auto = _shift(be, X, seeds, 1.0, "gaussian", "auto", w)
    assert be.last_plan["proven"]
    if skew == "light-blobs":
        assert be.last_plan["unproven"] == len(seeds)
    brute = _shift(be, X, seeds, 1.0, "gaussian", "brute", w)
    np.testing.assert_allclose(auto[0], brute[0], rtol=0, atol=1e-11)
    np.testing.assert_array_equal(auto[1], brute[1])
    np.testing.assert_allclose(auto[2], brute[2], rtol=1e-13)


# ----------------------------------------------- density and neighbours
def _ref_weighted(X, Q, w, h, kernel):
    d2 = ref_dist(X, Q) ** 2
    if kernel == "flat":
        return (d2 <= h * h).astype(np.float64) @ w
    return np.exp(-d2 / (2 * h * h)) @ w


def _ref_weighted_kth(X, Q, w, k):
    D = ref_dist(X, Q)
    order = np.argsort(D, axis=1, kind="stable")
    cum = np.cumsum(w[order], axis=1)
    # k = the total weight: the last row of positive weight, whatever the
    # rounding of the cumulative sum
    first = np.argmax(cum >= np.minimum(k, cum[:, -1:]), axis=1)
    return D[np.arange(len(Q)), order[np.arange(len(Q)), first]]


@settings(max_examples=30, deadline=None, database=None)
@given(n=st.integers(1, 150), m=st.integers(1, 140), d=st.sampled_from([1, 2, 3, 4, 6]),
       seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float64, np.float32]))
def test_weighted_queries_equal_queries_on_repeated_rows(n, m, d, seed, dtype):
    X, w = _data(seed, n, d, dtype)
    Q = _data(seed + 1, m, d, dtype)[0]
    Xr = np.repeat(X, w.astype(int), axis=0)
    be = emulated_backend()
    h = 1.1 * np.sqrt(d)
    cnt = be.count_within(X, Q, h, weights=w)
    assert cnt.dtype == np.float64
    np.testing.assert_array_equal(cnt, be.count_within(Xr, Q, h))
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for kernel in ("flat", "gaussian"):
        np.testing.assert_allclose(be.kernel_sum(X, Q, bandwidth=h, kernel=kernel, weights=w),
                                   be.kernel_sum(Xr, Q, bandwidth=h, kernel=kernel),
                                   rtol=rtol, atol=1e-30)
        got = be.log_kernel_density(X, Q, bandwidth=h, kernel=kernel, weights=w)
        want = be.log_kernel_density(Xr, Q, bandwidth=h, kernel=kernel)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=rtol)
    total = int(w.sum())
    # the same distance arithmetic as the unweighted kernel (bit for bit) where
    # both are compiled for this d; else the generic path's (rounding apart)
    same = R.kernel_dim(d) == R.kernel_dim(d, query=True, weighted=True)
    for k in {1, 1 + seed % total, total}:
        got = be.kth_neighbor_distance(X, Q, k, weights=w)
        want = be.kth_neighbor_distance(Xr, Q, k)
        if same:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("d", [2, 5])
def test_weighted_queries_against_float64_reference(make_backend, d):
    rng = np.random.default_rng(31)
    X = rng.normal(0, 1, (140, d))
    w = rng.uniform(0, 2, 140)
    w[::11] = 0.0
    Q = np.concatenate([X[::7] + 0.01, rng.normal(0, 1, (20, d)), X[:3] + 40.0])
    be = make_backend()
    h = 0.9 * np.sqrt(d)
    np.testing.assert_allclose(to_numpy(be.count_within(X, Q, h, weights=w)),
                               _ref_weighted(X, Q, w, h, "flat"), rtol=1e-13)
    for kernel in ("flat", "gaussian"):
        ref = _ref_weighted(X, Q, w, h, kernel)
        np.testing.assert_allclose(
            to_numpy(be.kernel_sum(X, Q, bandwidth=h, kernel=kernel, weights=w)), ref,
            rtol=1e-12, atol=1e-300)
        got = to_numpy(be.log_kernel_density(X, Q, bandwidth=h, kernel=kernel, weights=w))
        if kernel == "flat":
            with np.errstate(divide="ignore"):
                np.testing.assert_allclose(got, np.log(ref), rtol=1e-12)
        else:
            # the far queries: exp underflows in the plain sum, not in the kernel
            d2 = ref_dist(X, Q) ** 2
            e = -d2 / (2 * h * h) + np.log(np.where(w > 0, w, 1.0))
            e[:, w == 0] = -np.inf
            top = e.max(axis=1)
            lse = top + np.log(np.exp(e - top[:, None]).sum(axis=1))
            np.testing.assert_allclose(got, lse, rtol=1e-12)
            assert np.isfinite(got).all()
    for k in (0.3, 1.0, 7.25, float(w.sum())):
        np.testing.assert_allclose(to_numpy(be.kth_neighbor_distance(X, Q, k, weights=w)),
                                   _ref_weighted_kth(X, Q, w, k), rtol=1e-13)


def test_weighted_kth_rejects_k_outside_the_total_weight():
    X = np.arange(4.0)[:, None]
    w = np.array([0.5, 0.0, 1.0, 0.25])
    be = emulated_backend()
    for k in (0.0, -1.0, 1.8):
        with pytest.raises(ValueError, match="total weight"):
            be.kth_neighbor_distance(X, X, k, weights=w)
    np.testing.assert_array_equal(
        to_numpy(be.kth_neighbor_distance(X, np.array([[0.0]]), 1.75, weights=w)), [3.0])


def test_weights_of_the_wrong_shape_are_a_value_error():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="weights has shape"):
        emulated_backend().count_within(X, X, 1.0, weights=np.ones(4))


# --------------------------------------------------- the NumPy backend
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_weighted_cuda_agrees_with_the_numpy_backend(kernel):
    import inspect

    from gpumeanshift.backends.numpy.backend import NumpyBackend

    npb = NumpyBackend()
    if "weights" not in inspect.signature(npb.shift).parameters:
        pytest.skip("the NumPy backend has no weighted shift in this checkout")
    X, w = _data(37, 200, 3, np.float64)
    seeds = X[::12] + 0.05
    cu = _shift(emulated_backend(), X, seeds, 1.5, kernel, "brute", w)
    res = npb.shift(X, seeds, bandwidth=1.5, kernel=kernel, max_iter=100, tol=1e-4,
                    weights=w)
    np.testing.assert_allclose(cu[0], res.modes, rtol=0, atol=1e-9 * 1.5)
    np.testing.assert_array_equal(cu[1], res.n_iter)
    np.testing.assert_array_equal(cu[2], res.intensity)
    Q = X[::5]
    np.testing.assert_array_equal(
        to_numpy(emulated_backend().count_within(X, Q, 1.5, weights=w)),
        npb.count_within(X, Q, 1.5, weights=w))
    np.testing.assert_allclose(
        to_numpy(emulated_backend().log_kernel_density(X, Q, bandwidth=1.5, kernel=kernel,
                                                       weights=w)),
        npb.log_kernel_density(X, Q, bandwidth=1.5, kernel=kernel, weights=w), rtol=1e-12)
