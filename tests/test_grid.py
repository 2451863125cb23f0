"""The cell-list grid against brute force, cell borders, floor binning, basin labels, auto rule.

Flat kernel: grid and brute force must find identical clusters and labels.
Gaussian: the grid truncates the kernel at GAUSSIAN_GRID_RADIUS bandwidths
(largest dropped weight exp(-18), about 1.5e-8 of the weight at distance 0),
so its centers may differ from brute force's by a tiny amount; with
tol=1e-7 both climbs end within ~1e-7 bandwidths of the same mode, and the
test allows GAUSSIAN_ATOL bandwidths.

The data put points exactly on cell borders: the extent is exactly
[-6h, 6h] on every axis and h is a power of two, so the scaled coordinates
are exact, the grid's origin is -6 and the borders are at the integers;
lattice points at multiples of 1.5h (or 3h) then lie on borders, and the data
straddle 0 with negative coordinates.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpumeanshift import MeanShift
from gpumeanshift.backends._spatial import (
    GAUSSIAN_GRID_RADIUS,
    CellIndex,
    coincident_rows,
    make_index,
    resolve_leaders,
)

H = 0.5  # a power of two: X / H is exact
GAUSSIAN_ATOL = 1e-5  # in bandwidths; see the module docstring


def border_data(d: int, seed: int = 0) -> np.ndarray:
    """Blobs around 0 (negative and positive coordinates) plus lattice points on cell borders."""
    rng = np.random.default_rng(seed)
    step = 1.5 if d < 3 else 3.0
    ticks = np.arange(-6.0, 6.0 + step / 2, step)  # -6 ... 6, includes 0 and +-3, +-6
    lattice = np.array(list(itertools.product(ticks, repeat=d))) * H
    centers = rng.uniform(-3.5, 3.5, size=(4, d)) * H
    blobs = centers[rng.integers(0, 4, 300)] + rng.normal(scale=0.3 * H, size=(300, d))
    X = np.concatenate([blobs, lattice])
    # Keep the extent exactly [-6h, 6h] (the lattice's) so the borders are exact.
    X = X[np.all(np.abs(X) <= 6 * H, axis=1)]
    assert X.min() == -6 * H and X.max() == 6 * H
    return X


def fit(X, **kw):
    params = dict(bandwidth=H, backend="numpy", n_jobs=1)
    params.update(kw)
    return MeanShift(**params).fit(X)


# ------------------------------------------------------------- the cell index
@pytest.mark.parametrize("d", [1, 2, 3])
def test_candidates_complete_on_borders(d):
    """Every point within reach of a seed is a candidate, for seeds on and off borders."""
    rng = np.random.default_rng(d)
    Y = border_data(d) / H  # origin -6, borders at the integers
    idx = CellIndex(Y, 1.0)
    assert np.array_equal(idx.origin, np.full(d, -6.0))
    on_border = np.array(list(itertools.product(np.arange(-7.0, 8.0, 1.0), repeat=d)))
    near_border = on_border + rng.choice([-1e-12, 1e-12], size=on_border.shape)
    inside = rng.uniform(-7.5, 7.5, size=(200, d))
    for Q in (on_border, near_border, inside, Y):
        for a in range(0, len(Q), 37):
            q = Q[a:a + 37]
            got = np.zeros(len(Y), dtype=bool)
            got[idx.order[idx.candidates(q, 1.0)]] = True
            d2 = ((q[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
            need = (d2 <= 1.0).any(axis=0)
            assert not (need & ~got).any(), "a point within reach was not visited"


def test_cells_are_floor_binned_around_zero():
    """Cell k holds [origin + k, origin + k + 1): floor, not truncation toward zero.

    With truncation toward zero a point half a cell below the origin would
    land in cell 0, which would then be two cells wide.
    """
    Y = np.array([[-3.0], [-1.0], [0.0], [2.0], [3.0]])
    idx = CellIndex(Y, 1.0)
    q = np.linspace(-5.0, 5.0, 1001)[:, None]  # straddles the origin (-3) and 0
    coords = idx._coords(q)[:, 0]
    np.testing.assert_array_equal(coords, np.floor(q[:, 0] + 3.0).astype(np.int64))
    for k in np.unique(coords):
        members = q[coords == k, 0]
        assert members.max() - members.min() < 1.0, f"cell {k} is wider than one cell"
    # Explicitly: half a cell below the origin is cell -1, half above is cell 0.
    assert idx._coords(np.array([[-3.5], [-2.5]]))[:, 0].tolist() == [-1, 0]
    # The cell holding 0 is [0, 1), not (-1, 1).
    assert idx._coords(np.array([[-0.5], [0.0], [0.5]]))[:, 0].tolist() == [2, 3, 3]


def test_candidates_of_seed_below_origin():
    """A seed just below the data's lowest cell still sees the points within reach."""
    Y = np.array([[0.0], [0.25], [0.5], [1.5], [2.0]])
    idx = CellIndex(Y, 1.0)
    got = np.sort(idx.order[idx.candidates(np.array([[-0.75]]), 1.0)])
    assert {0, 1}.issubset(set(got.tolist()))


# ---------------------------------------------------------- grid against brute
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("label_assignment", ["nearest", "basin"])
def test_flat_grid_identical_to_brute(d, label_assignment):
    X = border_data(d)
    grid = fit(X, kernel="flat", algorithm="grid", label_assignment=label_assignment)
    brute = fit(X, kernel="flat", algorithm="brute", label_assignment=label_assignment)
    assert grid.algorithm_ == "grid" and brute.algorithm_ == "brute"
    assert len(grid.cluster_centers_) >= 2
    np.testing.assert_array_equal(grid.cluster_centers_, brute.cluster_centers_)
    np.testing.assert_array_equal(grid.labels_, brute.labels_)
    assert grid.n_iter_ == brute.n_iter_


@pytest.mark.parametrize("d", [1, 2, 3])
def test_flat_grid_negative_shift_invariant(d):
    """Moving the data by a non-multiple of the cell changes nothing but the coordinates."""
    X = border_data(d)
    offset = -1000.0 - 0.3 * H  # all coordinates negative; exact in float64 at this size
    a = fit(X, kernel="flat", algorithm="grid")
    b = fit(X + offset, kernel="flat", algorithm="grid")
    assert len(a.cluster_centers_) == len(b.cluster_centers_)
    np.testing.assert_allclose(b.cluster_centers_ - offset, a.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(a.labels_, b.labels_)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_gaussian_grid_within_tolerance_of_brute(d):
    X = border_data(d)
    kw = dict(kernel="gaussian", tol=1e-7, max_iter=2000)
    grid = fit(X, algorithm="grid", **kw)
    brute = fit(X, algorithm="brute", **kw)
    assert grid.algorithm_ == "grid"
    assert grid.cluster_centers_.shape == brute.cluster_centers_.shape
    # Modes of equal intensity are ordered by their coordinates, which the
    # truncation may move by ~1e-8: match the centers up before comparing.
    G, B = grid.cluster_centers_, brute.cluster_centers_
    match = np.argmin(((G[:, None, :] - B[None, :, :]) ** 2).sum(-1), axis=1)
    assert len(np.unique(match)) == len(G), "not a one-to-one match"
    np.testing.assert_allclose(G, B[match], rtol=0, atol=GAUSSIAN_ATOL * H)
    np.testing.assert_array_equal(match[grid.labels_], brute.labels_)


@pytest.mark.filterwarnings("ignore:.*did not converge")
def test_gaussian_truncation_drops_only_far_weights():
    """A lone far point (beyond the truncation radius) is ignored by the grid only."""
    far = GAUSSIAN_GRID_RADIUS + 0.5
    X = np.array([[0.0], [0.1], [far]]) * H
    seeds = np.array([[0.0]])
    kw = dict(kernel="gaussian", tol=0.0, max_iter=1, seeds=seeds)
    grid = fit(X, algorithm="grid", **kw).cluster_centers_[0, 0]
    brute = fit(X, algorithm="brute", **kw).cluster_centers_[0, 0]
    assert brute > grid  # brute force still feels the far point, a little
    assert brute - grid < 1e-7 * H


# ------------------------------------------------------------------ basin labels
def climb_reference(X, h, tol=1e-3, max_iter=300):
    """Flat-kernel climb of every point, float64, distances by differences."""
    X = np.asarray(X, dtype=np.float64)
    P = X.copy()
    active = np.ones(len(P), dtype=bool)
    for _ in range(max_iter + 1):
        if not active.any():
            break
        Q = P[active]
        within = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1) <= h * h
        new = (within @ X) / within.sum(1, keepdims=True)
        moved = np.sqrt(((new - Q) ** 2).sum(1))
        P[active] = new
        idx = np.flatnonzero(active)
        active[idx[moved <= tol * h]] = False
    return P


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ["grid", "brute"])
def test_basin_labels_match_reference_climb(d, algorithm):
    X = border_data(d, seed=1)
    model = fit(X, kernel="flat", algorithm=algorithm, label_assignment="basin")
    modes = climb_reference(X, H)
    C = model.cluster_centers_
    expected = np.argmin(((modes[:, None, :] - C[None, :, :]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(model.labels_, expected)


def test_basin_labels_differ_from_nearest_somewhere():
    """Two blobs of very different size: some points nearer the small center climb to the big one."""
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0.0, 0.5, size=(1000, 1)), rng.normal(2.5, 0.05, size=(30, 1))])
    basin = fit(X, kernel="flat", bandwidth=1.0, label_assignment="basin")
    near = fit(X, kernel="flat", bandwidth=1.0, label_assignment="nearest")
    np.testing.assert_array_equal(basin.cluster_centers_, near.cluster_centers_)
    modes = climb_reference(X, 1.0)
    C = basin.cluster_centers_
    expected = np.argmin(np.abs(modes - C[:, 0][None, :]), axis=1)
    np.testing.assert_array_equal(basin.labels_, expected)
    assert len(C) == 2
    assert (basin.labels_ != near.labels_).any()


# ------------------------------------------------------------------- auto rule
def spread_2d(n, extent=100.0, seed=0):
    return np.random.default_rng(seed).uniform(0, extent, size=(n, 2))


@pytest.mark.parametrize("X, h, expected", [
    (spread_2d(4096), 1.0, "grid"),            # low d, bandwidth small against the extent
    (spread_2d(1000), 1.0, "brute"),           # too few points
    (spread_2d(4096, extent=2.0), 1.0, "brute"),  # everything within a few cells
    (np.random.default_rng(0).uniform(0, 100, size=(4096, 4)), 1.0, "brute"),  # d > 3
])
def test_auto_rule_reported_in_algorithm_(X, h, expected):
    model = MeanShift(bandwidth=h, kernel="flat", seeds=X[::64], backend="numpy",
                      algorithm="auto").fit(X)
    assert model.algorithm_ == expected
    index = make_index((X - X.mean(0)) / h, 1.0, "auto")
    assert index.name == expected


def test_auto_gives_same_clusters_as_both():
    X = spread_2d(4096)
    auto = MeanShift(bandwidth=3.0, kernel="flat", bin_seeding=True, backend="numpy").fit(X)
    brute = MeanShift(bandwidth=3.0, kernel="flat", bin_seeding=True, backend="numpy",
                      algorithm="brute").fit(X)
    assert auto.algorithm_ == "grid"
    np.testing.assert_array_equal(auto.cluster_centers_, brute.cluster_centers_)
    np.testing.assert_array_equal(auto.labels_, brute.labels_)


def test_bad_algorithm():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        MeanShift(bandwidth=1.0, algorithm="kdtree").fit(np.zeros((5, 2)))


# ---------------------------------------------------------- coincident seeds
def test_coincident_rows_groups_bitwise_equal_rows():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 3))
    pick = rng.integers(0, 50, 400)
    P = base[pick]
    rep = coincident_rows(P)
    assert np.array_equal(rep[rep], rep)
    np.testing.assert_array_equal(P[rep], P)  # a representative has the same coordinates
    assert len(np.unique(rep)) == len(np.unique(pick))
    # -0.0 and 0.0 differ in bits: not merged (costs work, never correctness).
    assert coincident_rows(np.array([[0.0], [-0.0]])).tolist() == [0, 1]
    assert coincident_rows(np.array([[1.0, 2.0]], dtype=np.float32)).tolist() == [0]


def test_resolve_leaders_follows_chains():
    leader = np.array([0, 0, 1, 2, 4, 4, 3])
    assert resolve_leaders(leader).tolist() == [0, 0, 0, 0, 4, 4, 0]


@pytest.mark.parametrize("d, bits", [(2, 32), (3, 21)])
def test_morton_keys_interleave_bits(d, bits):
    from gpumeanshift.backends._spatial import _morton

    rng = np.random.default_rng(d)
    c = rng.integers(0, 2**bits, size=(500, d))
    c[0] = 0
    ref = np.zeros(len(c), dtype=np.uint64)
    for b in range(bits):
        for j in range(d):
            bit = (c[:, j].astype(np.uint64) >> np.uint64(b)) & np.uint64(1)
            ref |= bit << np.uint64(b * d + j)
    np.testing.assert_array_equal(_morton(c), ref)
    c[1, 0] = 2**bits  # too wide for the key: the caller falls back to row order
    assert _morton(c) is None


def test_tile_order_is_a_permutation_with_negative_cells():
    Y = np.random.default_rng(0).uniform(-50, 50, size=(3000, 2))
    idx = CellIndex(Y, 1.0)
    P = np.concatenate([Y, Y.min(0)[None, :] - [[3.5, 0.0], [0.0, 7.25]]])  # below the origin too
    order = idx.tile_order(P)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(P)))
