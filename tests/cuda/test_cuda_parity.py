"""CudaBackend on each runtime vs float64 NumPy references (the spec's loop).

Tolerances per dtype: float64 results agree with the reference to rounding
(modes within 1e-9 bandwidths, identical iteration counts and intensities).
float32 kernels accumulate in float32: modes within 2e-4 bandwidths; iteration
counts within 1 and intensities within 1 point (a point at the boundary of a
ball may fall on either side in float32), distances within 1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import (blobs, make_backend, ref_count_within,  # noqa: F401 (fixtures)
                          ref_kernel_sum, ref_kth, ref_nearest, ref_shift, runtime_kind,
                          to_numpy)
from gpumeanshift.backends.cuda import runtime as R

DTYPES = [np.float64, np.float32]
DIMS = [1, 2, 3, 5, 16, 64]
# d outside DIMS of the runtime and within a bound: the shift kernels' bounded
# path (seed in registers, run-time d; R.shift_dim(d) < 0), whole chunks (12,
# 32) and a last, partial chunk (6, 17).
BOUNDED = [6, 12, 17, 32]
TOL = {np.float64: 1e-9, np.float32: 2e-4}


def _bandwidth(d, std=0.5):
    return float(1.6 * std * np.sqrt(d))


def _check_shift(res, ref, dtype, h):
    modes, n_iter, inten, conv = (to_numpy(a) for a in (res.modes, res.n_iter,
                                                        res.intensity, res.converged))
    r_modes, r_iter, r_inten, r_conv = ref
    assert modes.dtype == dtype and modes.shape == r_modes.shape
    assert n_iter.dtype == np.int64 and inten.dtype == np.int64 and conv.dtype == bool
    np.testing.assert_allclose(modes, r_modes, rtol=0, atol=TOL[dtype] * h * 10)
    if dtype == np.float64:
        np.testing.assert_array_equal(n_iter, r_iter)
        np.testing.assert_array_equal(inten, r_inten)
        np.testing.assert_array_equal(conv, r_conv)
    else:
        assert np.abs(n_iter - r_iter).max() <= 1
        assert np.abs(inten - r_inten).max() <= 1
        assert (conv == r_conv).mean() >= 0.9


@pytest.mark.parametrize("scheme", ["fused", "split"])
@pytest.mark.parametrize("d", DIMS + BOUNDED)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_shift_parity(make_backend, kernel, dtype, d, scheme):
    n = 300 if d <= 16 else 150
    X = blobs(n, d, dtype=dtype, seed=d)
    seeds = X[::15]                      # 20 (or 10) seeds: less than one block
    h = _bandwidth(d)
    opts = {"split": False} if scheme == "fused" else {"split": True, "n_splits": 3}
    be = make_backend(**opts)
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-3)
    assert be.last_plan["split"] is (scheme == "split")
    assert be.last_plan["dim"] == (d if d in R.DIMS else -min(b for b in R.BOUNDED_DIMS if b >= d)
                                   if d in BOUNDED else 0)
    if scheme == "split":
        assert be.last_plan["n_splits"] >= 2
    _check_shift(res, ref_shift(X, seeds, h, kernel, 300, 1e-3), dtype, h)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_shift_many_seeds_orphans_and_max_iter(make_backend, kernel, dtype):
    """Two blocks of seeds, orphans far from the data, seeds stopped by max_iter,
    a few steps per launch so compaction runs between launches."""
    X = blobs(200, 3, dtype=dtype, seed=7)
    rng = np.random.default_rng(1)
    far = (rng.normal(0, 1, (6, 3)) + 1e4).astype(dtype)  # every weight underflows
    seeds = np.concatenate([X[::1][:190], far, X[190:]]).astype(dtype)  # 200 seeds
    h = _bandwidth(3)
    be = make_backend(split=False, iters_per_launch=2)
    for max_iter, tol in ((300, 1e-3), (2, 0.0)):
        res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=max_iter, tol=tol)
        ref = ref_shift(X, seeds, h, kernel, max_iter, tol)
        _check_shift(res, ref, dtype, h)
        assert (to_numpy(res.intensity)[190:196] == 0).all()
        if max_iter == 2:  # not converged <=> stopped by max_iter after 2 counted steps
            nit, conv = to_numpy(res.n_iter)[:190], to_numpy(res.converged)[:190]
            assert (~conv).sum() > 10 and (nit[~conv] == 2).all() and (nit <= 2).all()


@pytest.mark.parametrize("d", [1, 3, 16, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_nearest_parity_and_ties(make_backend, dtype, d):
    X = blobs(257, d, dtype=dtype, seed=3)
    C = np.concatenate([X[:5], X[:5], X[100:140]]).astype(dtype)  # exact duplicates: ties
    lab, dist = make_backend().nearest(X, C)
    lab, dist = to_numpy(lab), to_numpy(dist)
    r_lab, r_dist = ref_nearest(X, C)
    assert lab.dtype == np.int64 and dist.dtype == dtype
    assert (lab[:5] == np.arange(5)).all()  # tie with the copy at 5..9: lowest index
    if dtype == np.float64:
        np.testing.assert_array_equal(lab, r_lab)
    else:  # a near-tie may flip in float32: the chosen center must be as close
        D = np.sqrt(((X[:, None, :].astype(float) - C[None].astype(float)) ** 2).sum(-1))
        np.testing.assert_allclose(D[np.arange(len(X)), lab], r_dist, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist, r_dist, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("d", [1, 2, 5, 16, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_count_within_parity(make_backend, dtype, d):
    X = blobs(300, d, dtype=dtype, seed=4)
    Q = X[::7]
    r = _bandwidth(d)
    out = to_numpy(make_backend().count_within(X, Q, r))
    ref = ref_count_within(X, Q, r)
    assert out.dtype == np.int64
    if dtype == np.float64:
        np.testing.assert_array_equal(out, ref)
    else:
        assert np.abs(out - ref).max() <= 1


@pytest.mark.parametrize("d", [1, 3, 16, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_kth_neighbor_parity(make_backend, dtype, d):
    X = blobs(260, d, dtype=dtype, seed=5)
    Q = np.concatenate([X[::13], X[:3] + 0.25]).astype(dtype)  # in the data, and not
    be = make_backend()
    for k in (1, 2, 78, 260):  # 78 = 30% of n
        out = to_numpy(be.kth_neighbor_distance(X, Q, k))
        ref = ref_kth(X, Q, k)
        assert out.dtype == dtype
        rtol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * 10)
        if k == 1:
            assert (out[:20] == 0).all()  # a query in the data is its own 1st neighbour


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_kth_neighbor_every_rank_on_a_lattice(make_backend, dtype):
    """Every k from 1 to n, on integer points (exact squared distances, many
    ties): the radix-4 search over the bit pattern lands on each rank."""
    rng = np.random.default_rng(11)
    X = rng.integers(-4, 5, size=(45, 2)).astype(dtype)
    Q = np.r_[X[:6], [[0.5, 0.0], [9.0, -9.0]]].astype(dtype)
    D = np.sqrt(((Q[:, None, :].astype(np.float64) - X[None].astype(np.float64)) ** 2).sum(-1))
    ref = np.sort(D, axis=1)
    be = make_backend()
    for k in range(1, len(X) + 1):
        out = to_numpy(be.kth_neighbor_distance(X, Q, k))
        np.testing.assert_array_equal(out, ref[:, k - 1].astype(dtype), err_msg=f"k={k}")


def test_kth_neighbor_exact_with_duplicates(make_backend):
    X = np.array([[0.0], [1.0], [1.0], [1.0], [3.0]])
    out = to_numpy(make_backend().kth_neighbor_distance(X, np.array([[0.0]]), 3))
    assert out.tolist() == [1.0]
    with pytest.raises(ValueError, match="k must be"):
        make_backend().kth_neighbor_distance(X, X, 6)


@pytest.mark.parametrize("d", [1, 3, 16, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_kernel_sum_parity(make_backend, kernel, dtype, d):
    X = blobs(300, d, dtype=dtype, seed=6)
    Q = np.concatenate([X[::11], X[:2] + 1e3]).astype(dtype)
    h = _bandwidth(d)
    out = to_numpy(make_backend().kernel_sum(X, Q, bandwidth=h, kernel=kernel))
    ref = ref_kernel_sum(X, Q, h, kernel)
    assert out.dtype == dtype
    if kernel == "flat" and dtype == np.float32:
        assert np.abs(out - ref).max() <= 1
    else:
        np.testing.assert_allclose(out, ref, rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-30)
    assert (out[-2:] == 0).all()


def test_auto_split_plan_for_few_seeds(make_backend):
    """'auto' picks the split scheme when the seeds' blocks cannot fill the SMs
    (min_split_rows lowered so a small problem qualifies) and the fused one
    when they can."""
    X = blobs(400, 2, seed=8)
    h = _bandwidth(2)
    be = make_backend(min_split_rows=64, runtime_options={"multiprocessor_count": 2}
                      if make_backend.kind == "emulated" else None)
    res = be.shift(X, X[:10], bandwidth=h, kernel="flat", max_iter=300, tol=1e-3)
    assert be.last_plan["split"] and be.last_plan["n_splits"] >= 2
    _check_shift(res, ref_shift(X, X[:10], h, "flat", 300, 1e-3), np.float64, h)
    if make_backend.kind == "emulated":
        seeds = X[np.arange(1000) % 400]  # 8 blocks = 4 per SM: no split
        be.shift(X, seeds, bandwidth=h, kernel="flat", max_iter=300, tol=1e-3)
        assert not be.last_plan["split"]


@pytest.mark.parametrize("scheme", ["fused", "split"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_shift_grid_semantics(make_backend, kernel, scheme):
    """algorithm="grid": the Gaussian truncated at GRID_RADIUS bandwidths (the
    NumPy grid's semantics), flat unchanged; "auto" runs brute force."""
    from gpumeanshift._spatial import GAUSSIAN_GRID_RADIUS as GRID_RADIUS

    X = blobs(300, 2, seed=9, spread=2.0, std=1.0)
    seeds = X[::15]
    h = 0.3  # blobs several bandwidths wide: truncation changes the modes
    be = make_backend(split=scheme == "split", n_splits=3)
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-4,
                   algorithm="grid")
    assert getattr(res, "algorithm", "grid") == "grid"
    _check_shift(res, ref_shift(X, seeds, h, kernel, 300, 1e-4, truncate=GRID_RADIUS),
                 np.float64, h)
    if kernel == "gaussian":
        full = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-4,
                        algorithm="auto")
        assert getattr(full, "algorithm", "brute") == "brute"
        assert not np.array_equal(to_numpy(full.modes), to_numpy(res.modes))


def test_grid_radius_of_the_kernels_is_the_declared_one():
    from gpumeanshift._spatial import GAUSSIAN_GRID_RADIUS
    from gpumeanshift.backends.cuda.runtime import kernel_source

    assert f"#define MS_GRID_RADIUS2 {int(GAUSSIAN_GRID_RADIUS ** 2)}" in kernel_source()


def test_empty_seeds_and_bad_input(make_backend):
    be = make_backend()
    X = blobs(50, 2)
    res = be.shift(X, X[:0], bandwidth=1.0, kernel="flat", max_iter=10, tol=1e-3)
    assert to_numpy(res.modes).shape == (0, 2)
    with pytest.raises(ValueError, match="kernel"):
        be.shift(X, X, bandwidth=1.0, kernel="epanechnikov", max_iter=10, tol=1e-3)
    with pytest.raises(TypeError, match="float32 and float64"):
        be.nearest(X.astype(np.float16), X.astype(np.float16))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_shift_is_invariant_to_row_order(make_backend, kernel):
    """Rows are summed in a canonical order: permuting the data changes no bit
    of the modes (else a rounding difference can move the stopping iteration)."""
    X = blobs(300, 3, seed=23)
    P = np.random.default_rng(0).permutation(len(X))
    be = make_backend()
    a = be.shift(X, X[:40], bandwidth=1.4, kernel=kernel, max_iter=300, tol=1e-3)
    b = be.shift(X[P], X[:40], bandwidth=1.4, kernel=kernel, max_iter=300, tol=1e-3)
    np.testing.assert_array_equal(to_numpy(a.modes), to_numpy(b.modes))
    np.testing.assert_array_equal(to_numpy(a.n_iter), to_numpy(b.n_iter))


@pytest.mark.parametrize("scheme", ["fused", "split", "grid"])
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("bandwidth", [1.0, 1.5])
def test_integer_lattice_matches_sklearn(make_backend, d, bandwidth, scheme):
    """Integer data put points at exactly one bandwidth from climbing seeds:
    the kernels must take scikit-learn's side of every such boundary (data in
    their own units, sum (x - q)^2 <= h^2, correctly rounded means), the
    all-points kernels (fused, split) and the cell-list kernel alike. Labels
    are compared except where a point's two nearest centers are equally far
    in exact arithmetic (rationals: the centers are means of integers)."""
    from fractions import Fraction

    from sklearn.cluster import MeanShift as SkMeanShift

    import gpumeanshift as gms

    rng = np.random.default_rng(d * 10 + int(bandwidth * 2))
    X = rng.integers(0, 6, size=(300, d)).astype(np.float64)
    opts = {"split": True, "n_splits": 3} if scheme == "split" else {"split": False}
    algorithm = "grid" if scheme == "grid" else "brute"
    for bin_seeding in (False, True):
        ours = gms.MeanShift(bandwidth=bandwidth, kernel="flat", bin_seeding=bin_seeding,
                             algorithm=algorithm, backend=make_backend(**opts)).fit(X)
        assert ours.algorithm_ == algorithm
        ref = SkMeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding).fit(X)
        centers = to_numpy(ours.cluster_centers_)
        assert centers.shape == ref.cluster_centers_.shape
        np.testing.assert_array_equal(centers, ref.cluster_centers_)
        assert ours.n_iter_ == ref.n_iter_
        C = [[Fraction(v).limit_denominator(len(X)) for v in c] for c in ref.cluster_centers_]
        tied = np.array([
            len(C) > 1 and (lambda s: s[0] == s[1])(sorted(
                sum((Fraction(int(a)) - b) ** 2 for a, b in zip(x, c)) for c in C))
            for x in X])
        np.testing.assert_array_equal(to_numpy(ours.labels_)[~tied], ref.labels_[~tied])
