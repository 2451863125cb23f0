"""How the NumPy backend tiles its work: candidates, the density grid, the
tile plan for few seeds, the expansion frame, and the exact column sums.

Each of these changes only which pairs are visited together (or the
rounding of a product); the tests check that the plan covers what it must
and that the results agree with the plain path.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gpumeanshift import get_bin_seeds
from gpumeanshift._spatial import (CellIndex, DensityGrid, SortedIndex, col_max,
                                           col_min)
from gpumeanshift.backends.numpy._blocks import _product, _sequential_sum
from gpumeanshift.backends.numpy.backend import NumpyBackend


def blobs(n, d, seed=0, spread=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-spread, spread, size=(5, d))
    return centers[rng.integers(0, 5, n)] + rng.normal(scale=0.7, size=(n, d))


class FixedTiles(NumpyBackend):
    """Always the many-seeds plan: the index's order in fixed tiles."""

    def _plan_tiles(self, index, P, reach, by_cost=False):
        return index.tile_order(P), self._seed_tiles(len(P), self._SEED_TILE)


class TileFrame(NumpyBackend):
    """Never the global expansion frame: every tile re-centres its candidates."""

    _GLOBAL_FRAME_MAX = -1.0


# ---------------------------------------------------------------- candidates
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("t", [1, 3, 37, 300])
def test_sorted_candidates_cover_every_point_within_reach(d, t):
    """Whether the slab is returned whole (a slice) or culled (indices), every
    point within reach of a seed of the tile is in it."""
    Y = blobs(3000, d, seed=d)
    idx = SortedIndex(Y)
    rng = np.random.default_rng(t)
    kinds = set()
    for _ in range(8):
        q = Y[rng.integers(0, len(Y))] + rng.normal(scale=0.5, size=(t, d))
        sel = idx.candidates(q, 1.0)
        kinds.add(type(sel).__name__)
        got = np.zeros(len(Y), dtype=bool)
        got[idx.order[sel]] = True
        d2 = ((q[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
        assert not ((d2 <= 1.0).any(axis=0) & ~got).any()
    if d > 1 and t == 1:
        assert "ndarray" in kinds  # a lone seed's slab is culled


# --------------------------------------------------------------- density grid
@pytest.mark.parametrize("axes", [[0], [0, 1], [1, 0]])
def test_density_grid_counts_are_exact_over_cells(axes):
    """count() over a cell range equals the points in those cells, and the
    range of a box contains every point of the box."""
    Y = blobs(2000, 3, seed=1)
    lo, hi = col_min(Y), col_max(Y)
    g = DensityGrid(Y, axes, lo, hi, cells=17)
    cell = np.stack([g._cell(Y[:, j], k) for k, j in enumerate(g.axes)], axis=1)
    rng = np.random.default_rng(2)
    P = Y[rng.integers(0, len(Y), 50)] + rng.normal(size=(50, 3))
    i0, i1, j0, j1 = g.boxes(P, 1.3)
    for r in range(len(P)):
        inside = (cell[:, 0] >= i0[r]) & (cell[:, 0] < i1[r])
        if len(axes) == 2:
            inside &= (cell[:, 1] >= j0[r]) & (cell[:, 1] < j1[r])
        assert g.count(i0[r], i1[r], j0[r], j1[r]) == int(inside.sum())
        in_box = np.all(np.abs(Y[:, axes] - P[r, axes]) <= 1.3, axis=1)
        assert not (in_box & ~inside).any()


def test_density_grid_of_constant_axis():
    Y = np.zeros((10, 2))
    Y[:, 0] = np.arange(10.0)
    g = DensityGrid(Y, [0, 1], col_min(Y), col_max(Y), cells=5)
    i0, i1, j0, j1 = g.boxes(Y[:1], 100.0)
    assert g.count(i0[0], i1[0], j0[0], j1[0]) == 10


# ------------------------------------------------------------------ tile plan
INDEXES = {"sorted": SortedIndex, "cells": lambda Y: CellIndex(Y, 1.0)}


def plan(backend, Y, P, reach=1.0, index="sorted"):
    return backend._plan_tiles(INDEXES[index](Y), P, reach)


@pytest.mark.parametrize("index", sorted(INDEXES))
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("m, by_cost", [(1, False), (2, False), (5, False), (44, False),
                                        (300, False), (5, True), (3000, True)])
def test_plan_partitions_the_seeds(n_threads, m, by_cost, index):
    Y = blobs(5000, 2)
    P = Y[np.random.default_rng(m).integers(0, len(Y), m)]
    order, tiles = NumpyBackend(n_threads=n_threads)._plan_tiles(INDEXES[index](Y), P, 1.0,
                                                                 by_cost=by_cost)
    assert sorted(order.tolist()) == list(range(m))
    assert tiles[0][0] == 0 and tiles[-1][1] == m
    cap = NumpyBackend._COST_TILE if by_cost else NumpyBackend._SEED_TILE
    assert all(a < b and b - a <= cap for a, b in tiles)
    assert all(b == a2 for (_, b), (a2, _) in zip(tiles, tiles[1:]))
    assert len(tiles) >= min(n_threads, m)


@pytest.mark.parametrize("index", sorted(INDEXES))
@pytest.mark.parametrize("per_group", [6, 600, 2500])
def test_plan_separates_far_seeds_and_joins_close_ones(index, per_group):
    """Two groups of seeds 40 bandwidths apart: never one tile for both; the
    seeds of each tight group share a tile (600 and 2,500 a group: planned
    by cost, in full tiles)."""
    rng = np.random.default_rng(0)
    Y = np.concatenate([rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2)) + [40.0, 0.0]])
    P = np.concatenate([rng.normal(scale=0.01, size=(per_group, 2)),
                        rng.normal(scale=0.01, size=(per_group, 2)) + [40.0, 0.0]])
    order, tiles = NumpyBackend(n_threads=1)._plan_tiles(INDEXES[index](Y), P, 1.0,
                                                         by_cost=per_group > 6)
    cap = NumpyBackend._COST_TILE if per_group > 6 else NumpyBackend._SEED_TILE
    assert len(tiles) == 2 * -(-per_group // cap)
    for a, b in tiles:
        group = P[order[a:b], 0] > 20.0
        assert group.all() or not group.any()


@pytest.mark.parametrize("n_threads, m, sizes", [
    (2, 600, [150] * 4), (2, 2000, [250] * 8), (3, 2000, [222] * 7 + [223] * 2),
    (1, 600, [200] * 3), (2, 512, [256] * 2)])
def test_many_seeds_get_equal_tiles_in_a_multiple_of_the_threads(n_threads, m, sizes):
    """Many seeds: the index's order in tiles of at most _SEED_TILE, equal to
    one seed, as many as a multiple of the threads (no thread waits on
    another's last tile)."""
    Y = blobs(3000, 2)
    P = Y[np.random.default_rng(0).integers(0, len(Y), m)]
    order, tiles = plan(NumpyBackend(n_threads=n_threads), Y, P)
    assert sorted(b - a for a, b in tiles) == sorted(sizes)


# ------------------------------------------------- results do not depend on it
@pytest.mark.parametrize("algorithm", ["brute", "grid", "auto"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_planned_tiles_give_the_fixed_tiles_result(kernel, d, algorithm):
    # Under "auto", blobs far apart and every fourth point a seed: the
    # proven Gaussian grid (d >= 2), which plans every round by cost.
    auto = algorithm == "auto"
    X = blobs(4000, d, seed=3, spread=200.0 if auto else 6.0)
    seeds = X[::4] if auto else get_bin_seeds(X, 1.5)
    kw = dict(bandwidth=1.5, kernel=kernel, max_iter=300, tol=1e-3, algorithm=algorithm)
    a = NumpyBackend(n_threads=2).shift(X, seeds, **kw)
    b = FixedTiles(n_threads=2).shift(X, seeds, **kw)
    if auto and kernel == "gaussian" and d >= 2:
        assert a.algorithm == "grid"
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    np.testing.assert_allclose(a.modes, b.modes, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_global_frame_agrees_with_tile_frame(kernel):
    X = blobs(3000, 2, seed=4)
    kw = dict(bandwidth=1.0, kernel=kernel, max_iter=300, tol=1e-3)
    a = NumpyBackend().shift(X, X[::7], **kw)
    b = TileFrame().shift(X, X[::7], **kw)
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    np.testing.assert_allclose(a.modes, b.modes, rtol=0, atol=1e-12)


# ----------------------------------------------------------------- exact sums
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 2, 3, 7])
@pytest.mark.parametrize("k", [1, 2, 9, 130, 5000])
def test_sequential_sum_is_bitwise_the_2d_reduction(dtype, d, k):
    rng = np.random.default_rng(k * 10 + d)
    X = (rng.standard_normal((8000, d)) * 1e5 + 3.0).astype(dtype)
    idx = np.sort(rng.choice(len(X), k, replace=False))
    want = np.add.reduce(X[idx], axis=0, dtype=np.float64)
    got = _sequential_sum(X, idx)
    assert got.shape == want.shape
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (1000, 2), (1000, 9), (5, 40)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_col_min_max_equal_axis0(shape, order):
    A = np.asarray(np.random.default_rng(0).normal(size=shape), order=order)
    assert np.array_equal(col_min(A), A.min(axis=0))
    assert np.array_equal(col_max(A), A.max(axis=0))
    assert col_min(A).dtype == A.dtype


def test_col_min_of_empty_raises_like_numpy():
    with pytest.raises(ValueError, match="zero-size"):
        col_min(np.zeros((0, 2)))


# ------------------------------------------------------------------ products
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t, c, k", [(1, 700, 3), (16, 512, 3), (166, 40, 3), (167, 40, 3),
                                     (256, 512, 18), (3, 2, 5)])
def test_product_is_the_matrix_product(dtype, t, c, k):
    """Both routes of ``_product`` (np.dot below 500 output elements, np.matmul
    above) give ``a @ b`` to rounding, on transposed and sliced operands, with
    and without ``out``."""
    rng = np.random.default_rng(t * c + k)
    a = rng.random((t, c)).astype(dtype)
    b = rng.random((k + 2, c)).astype(dtype)[:k].T  # (c, k), not contiguous
    ref = a.astype(np.float64) @ b.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = _product(a, b)
    assert got.dtype == dtype and got.shape == (t, k)
    np.testing.assert_allclose(got, ref, rtol=rtol)
    out = np.full((t, k), np.nan, dtype=dtype)
    assert _product(a, b, out=out) is out
    np.testing.assert_allclose(out, ref, rtol=rtol)


# ------------------------------------------------------------------- threads
POOL_CHECK = """
import numpy as np
import threadpoolctl
from gpumeanshift.backends.numpy.backend import NumpyBackend

def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]

before = blas_threads()
assert before, "no BLAS library found"
be = NumpyBackend(n_threads=2)
with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
    outer = blas_threads()
    for _ in range(2):
        with be._parallel():
            assert blas_threads() == [1] * len(before), blas_threads()
        assert blas_threads() == outer, (blas_threads(), outer)
assert blas_threads() == before
print("ok", len(before))
"""


def test_pool_holds_numpys_blas_to_one_thread_and_restores_it():
    """Inside the backend's pool NumPy's BLAS runs one thread (the tiles are
    the parallelism); on leaving, the previous limit comes back. Twice, since
    the controller that sets it is kept between calls. In a fresh interpreter
    with NumPy's BLAS only: a BLAS loaded later (SciPy's) is not the tiles'
    and is left alone."""
    pytest.importorskip("threadpoolctl")
    out = subprocess.run([sys.executable, "-c", POOL_CHECK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


# ------------------------------------------------------- the benchmark's count
@pytest.mark.parametrize("d, dtype", [(2, np.float64), (3, np.float64), (16, np.float32)])
def test_gaussian_step_weighs_every_point_n_iter_plus_one_times(monkeypatch, d, dtype):
    """Under brute force with nothing culled, each seed's steps (the n_iter it
    completes and the one that stops it) weigh every point once: the pair
    count of bench/ case 3 (points x sum of n_iter + 1). Counted on the
    step's products of a weight block (t x candidates) with the points'
    ``[x, 1]`` rows."""
    from gpumeanshift.backends.numpy import _climb

    weighed = [0]
    product = _climb._product

    def counting(a, b, out=None):
        if b.shape == (a.shape[1], d + 1):
            weighed[0] += a.size
        return product(a, b, out=out)

    monkeypatch.setattr(_climb, "_product", counting)
    rng = np.random.default_rng(d)
    X = rng.normal(size=(3000, d)).astype(dtype)
    bandwidth = float(np.ptp(X, axis=0).max()) / 8.0  # all within the Gaussian's reach
    res = NumpyBackend(n_threads=2).shift(X, X[:300], bandwidth=bandwidth, kernel="gaussian",
                                          max_iter=7, tol=0.0, algorithm="brute")
    steps = int((np.asarray(res.n_iter) + 1).sum())
    assert steps >= 300 * 7
    assert weighed[0] == len(X) * steps
