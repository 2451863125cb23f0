"""The cell-list grid against brute force, cell borders, floor binning, basin labels, auto rule.

Flat kernel: grid and brute force must find identical clusters and labels.
Gaussian: the grid truncates the kernel at GAUSSIAN_GRID_RADIUS bandwidths
(largest dropped weight exp(-18), about 1.5e-8 of the weight at distance 0),
so its centers may differ from brute force's by a tiny amount; with
tol=1e-7 both climbs end within ~1e-7 bandwidths of the same mode, and the
test allows GAUSSIAN_ATOL bandwidths. Under "auto" the Gaussian takes the
grid only with a per-seed proof that the dropped terms are below rounding:
its results equal brute force's to ROUNDING_ATOL bandwidths, on data built
to defeat a truncation without the proof (seeds in an empty region, far
seeds, duplicated points).

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
from gpumeanshift.backends.numpy import _climb as numpy_climb
from gpumeanshift._spatial import (
    GAUSSIAN_GRID_RADIUS,
    CellIndex,
    coincident_rows,
    gaussian_proof_radius,
    gaussian_truncation_bound,
    make_index,
    resolve_leaders,
)
from gpumeanshift.backends.numpy.backend import NumpyBackend

H = 0.5  # a power of two: X / H is exact
GAUSSIAN_ATOL = 1e-5  # in bandwidths; see the module docstring
ROUNDING_ATOL = 1e-12  # in bandwidths: "equal to rounding" in float64


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


@pytest.mark.parametrize("d", [1, 2, 3])
def test_candidates_of_compact_and_spread_tiles(d, monkeypatch):
    """Both ways of listing a tile's candidates (the box of cells around a
    compact tile; the merged blocks of a spread one) visit every point
    within reach, each row once and in sorted order, and nothing outside
    the box of cells ``s`` cells around the tile's, which is also every
    candidate of a one-cell tile."""
    rng = np.random.default_rng(10 + d)
    Y = rng.uniform(0.0, 12.0, size=(600, d)) ** 1.3
    boxes = []
    box_candidates = CellIndex._box_candidates
    monkeypatch.setattr(CellIndex, "_box_candidates",
                        lambda self, lo, hi: boxes.append(1) or box_candidates(self, lo, hi))
    for span in (1, 3, 8):
        idx = CellIndex(Y, 8.0 / span, span=span)
        for trial in range(40):
            spread = 0.2 if trial % 2 else 6.0  # compact tiles, then spread ones
            q = rng.uniform(-2.0, 26.0, size=(1, d)) + rng.uniform(0, spread, size=(20, d))
            reach = idx.cell * rng.uniform(0.5, span)
            got = idx.candidates(q, reach)
            assert np.all(np.diff(got) > 0)
            d2 = ((q[:, None, :] - idx.Y[None, :, :]) ** 2).sum(-1)
            assert np.isin(np.flatnonzero((d2 <= reach * reach).any(axis=0)), got).all()
            s, k = idx._cells_for(reach), idx._coords(q)
            kc = idx._coords(idx.Y)
            box = np.all((kc >= k.min(axis=0) - s) & (kc <= k.max(axis=0) + s), axis=1)
            assert box[got].all()
            if (k == k[0]).all():  # one cell: its block, the box, exactly
                np.testing.assert_array_equal(got, np.flatnonzero(box))
    assert 0 < len(boxes) < 120  # both ways were taken


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
    from gpumeanshift._spatial._index import _morton

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


# ------------------------------------------- the Gaussian under auto: proven grid
def holey_data(d: int, seed: int = 0):
    """Blobs over ~120 bandwidths a side (bandwidth 1) around an empty ball of
    radius 25, a point repeated 300 times and 300 duplicated rows; seeds: a
    sample of the data, seeds in the hole (10-25 bandwidths from any point:
    the proof radius's cells see nothing or almost nothing of the data there,
    brute force's 38.6 sees the blobs) and seeds 1e4 bandwidths away."""
    rng = np.random.default_rng(seed)
    side, hole = (600.0 if d == 1 else 120.0), 25.0
    mid = np.full(d, side / 2)
    centers = rng.uniform(0.0, side, size=(200, d))
    centers = centers[np.linalg.norm(centers - mid, axis=1) > hole + 3.0][:30]
    X = centers[rng.integers(0, len(centers), 3000)] + rng.normal(scale=0.5, size=(3000, d))
    X = X[np.linalg.norm(X - mid, axis=1) > hole]
    X = np.concatenate([X, np.repeat(X[:1], 300, axis=0), X[1:301]])
    direction = rng.normal(size=(12, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    in_hole = mid + direction * rng.uniform(0.0, hole - 10.0, size=(12, 1))
    far = mid + 1e4 * direction[:3]
    seeds = np.concatenate([X[::23], in_hole, far])
    return X, seeds


def shift_modes(X, seeds, algorithm, **kw):
    be = NumpyBackend(n_threads=2)
    res = be.shift(X, seeds, bandwidth=1.0, kernel="gaussian", max_iter=500, tol=1e-7,
                   algorithm=algorithm, **kw)
    return res, be


@pytest.mark.parametrize("d", [1, 2, 3])
def test_auto_gaussian_equals_brute_to_rounding(d):
    X, seeds = holey_data(d)
    auto, be = shift_modes(X, seeds, "auto")
    brute, _ = shift_modes(X, seeds, "brute")
    assert auto.algorithm == "grid"
    assert be._exact_steps > 0  # the hole's seeds could not prove their truncation
    np.testing.assert_allclose(auto.modes, brute.modes, rtol=0, atol=ROUNDING_ATOL)
    np.testing.assert_array_equal(auto.n_iter, brute.n_iter)
    np.testing.assert_array_equal(auto.intensity, brute.intensity)
    np.testing.assert_array_equal(auto.converged, brute.converged)
    # Hole seeds reached the data (brute force's reach); the far ones are orphans.
    hole = slice(len(seeds) - 15, len(seeds) - 3)
    assert (auto.intensity[hole] > 0).any() and (auto.intensity[-3:] == 0).all()


@pytest.mark.parametrize("d", [2])
def test_auto_gaussian_estimator_equals_brute(d):
    X, seeds = holey_data(d, seed=1)
    kw = dict(bandwidth=1.0, kernel="gaussian", seeds=seeds, tol=1e-7, max_iter=500,
              backend="numpy", n_jobs=2)
    auto = MeanShift(algorithm="auto", **kw).fit(X)
    brute = MeanShift(algorithm="brute", **kw).fit(X)
    assert auto.algorithm_ == "grid" and brute.algorithm_ == "brute"
    assert len(auto.cluster_centers_) >= 10
    np.testing.assert_allclose(auto.cluster_centers_, brute.cluster_centers_,
                               rtol=0, atol=ROUNDING_ATOL)
    np.testing.assert_array_equal(auto.labels_, brute.labels_)
    assert auto.n_iter_ == brute.n_iter_


def test_proven_float32_tile_split_steps_and_proves_each_half():
    """A float32 tile wider than _MAX_TILE_SPAN is stepped in halves: its
    new positions and weights are those of each seed stepped alone and of a
    float64 step over every point, every seed gets its row of what the step
    left out, and every seed (all among the data) proves its step."""
    from gpumeanshift.backends.numpy._blocks import _MAX_TILE_SPAN
    from gpumeanshift.backends.numpy._climb import Climb

    X, _ = holey_data(2)
    X32 = X.astype(np.float32)
    rows = np.array([0, 1, 2, 3])
    climb = Climb(NumpyBackend(n_threads=1), X32, X32[[0, 5, 50, 500]], bandwidth=1.0,
                  kernel="gaussian", algorithm="auto", weights=None)
    assert climb.proven and climb.dtype == np.float32
    q = climb.pos[rows].astype(np.float64)
    assert (q.max(axis=0) - q.min(axis=0)).max() > _MAX_TILE_SPAN
    new, wsum, left = climb.step(rows)
    for i in rows:
        n1, w1, l1 = climb.step(rows[i:i + 1])
        np.testing.assert_allclose(new[i], n1[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(wsum[i], w1[0], rtol=1e-5)
    assert left.shape == (4, 3) and (left[:, 0] > 0).all()
    assert not climb._unproven(rows, new, wsum, left, climb.reach).any()
    # float64 reference: the Gaussian mean of every point, in the climb's units
    Y = (X - climb.center) * climb.inv_h
    w = np.exp(-0.5 * ((q[:, None, :] - Y[None, :, :]) ** 2).sum(-1))
    ref = (w @ Y) / w.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-4)


def test_truncation_without_the_proof_is_not_exact(monkeypatch):
    """The data above do tell a proven truncation from an unproven one: the
    fixed 6-bandwidth truncation of algorithm="grid", and the proof radius's
    own cells with the check switched off, both move some centers by more
    than ROUNDING_ATOL (so the test above can fail)."""
    X, seeds = holey_data(2)
    brute, _ = shift_modes(X, seeds, "brute")
    fixed, _ = shift_modes(X, seeds, "grid")
    assert np.abs(fixed.modes - brute.modes).max() > 1e3 * ROUNDING_ATOL
    monkeypatch.setattr(numpy_climb, "gaussian_truncation_bound",
                        lambda dtype, n_out, *a: np.zeros(np.shape(n_out) or (1,)))
    unchecked, be = shift_modes(X, seeds, "auto")
    assert unchecked.algorithm == "grid" and be._exact_steps == 0
    assert np.abs(unchecked.modes - brute.modes).max() > 1e3 * ROUNDING_ATOL


@pytest.mark.parametrize("clearance", [2.0, 3.0, 4.5])
def test_truncation_bound_covers_the_dropped_terms(clearance):
    """The bound against the exact effect of dropping every point beyond
    ``clearance`` bandwidths, the sums taken with math.fsum."""
    import math

    rng = np.random.default_rng(int(clearance * 10))
    Y = rng.normal(scale=3.0, size=(400, 2))
    q = np.array([0.3, -0.2])
    r = np.linalg.norm(Y - q, axis=1)
    w = np.exp(-0.5 * r * r)

    def mean(sel):
        W = math.fsum(w[sel])
        return np.array([math.fsum(w[sel] * Y[sel, j]) for j in range(2)]) / W, W

    full, _ = mean(np.ones(len(Y), bool))
    kept = r <= clearance
    trunc, w_in = mean(kept)
    err = np.linalg.norm(full - trunc)
    tau = 0.5 * np.finfo(np.float64).eps
    bound = gaussian_truncation_bound(np.float64, np.count_nonzero(~kept), clearance, w_in,
                                      np.linalg.norm(trunc - q)) * tau
    assert err > 1e3 * tau  # measurable: far above rounding
    assert err <= bound


def test_proof_radius_passes_its_own_bound_and_is_small():
    for dtype, top in ((np.float64, 11.0), (np.float32, 9.0)):
        for n, extent in ((10**3, 10.0), (10**6, 1500.0)):
            r = gaussian_proof_radius(dtype, n, extent)
            assert 1.0 <= r <= top
            assert gaussian_truncation_bound(dtype, n, r, 1.0, extent) <= 1.0
            assert gaussian_truncation_bound(dtype, n, 0.97 * r, 1.0, extent) > 1.0


def test_clearance_bounds_the_distance_to_every_left_out_point():
    rng = np.random.default_rng(5)
    Y = rng.uniform(-20, 20, size=(3000, 2))
    idx = CellIndex(Y, 3.5, span=3)
    Q = np.concatenate([rng.uniform(-30, 30, size=(40, 2)), Y[:20]])
    for i in range(len(Q)):
        got = np.zeros(len(Y), dtype=bool)
        got[idx.order[idx.candidates(Q[i:i + 1], 10.5)]] = True
        c = idx.clearance(Q[i:i + 1], 10.5)[0]
        assert c >= 10.5 * (1 - 1e-9)  # at least the reach the index promises
        if (~got).any():
            assert np.linalg.norm(Y[~got] - Q[i], axis=1).min() > c


def test_basin_labels_climb_with_the_callers_algorithm(monkeypatch):
    """Basin labels for given seeds climb every point again: under "auto" that
    climb is auto's (proven) one, not the explicit grid's truncation."""
    X, seeds = holey_data(2)
    calls = []
    shift = NumpyBackend.shift

    def spy(self, *args, **kw):
        res = shift(self, *args, **kw)
        calls.append((kw["algorithm"], res.algorithm))
        return res

    monkeypatch.setattr(NumpyBackend, "shift", spy)
    MeanShift(bandwidth=1.0, kernel="gaussian", seeds=seeds[:40], label_assignment="basin",
              backend="numpy", n_jobs=1).fit(X)
    assert calls == [("auto", "grid"), ("auto", "grid")]


@pytest.mark.parametrize("d", [1, 2, 3])
def test_proof_shells_count_the_blocks_around_each_seed(d):
    """The cell counts the proof reads (summed-area table, per-cell cache,
    seeds off the grid) against counting the points cell by cell."""
    rng = np.random.default_rng(d)
    Y = rng.normal(scale=5.0, size=(3000, d))
    w = rng.uniform(0.0, 2.0, size=3000)
    idx = CellIndex(Y, 1.3, span=4)
    w_idx = w[idx.order]
    on = rng.normal(scale=3.0, size=(40, d))
    off = np.concatenate([on, rng.normal(scale=80.0, size=(10, d))])  # some off the grid
    cells_y = idx._coords(idx.Y)
    for P in (on, off):
        k = idx._coords(P)
        for s in (0, 2, 5):
            c1, c2, n1, n2 = idx.proof_shells(P, s)
            _, _, w1, w2 = idx.proof_shells(P, s, w_idx)
            for i in range(len(P)):
                cheb = np.abs(cells_y - k[i]).max(axis=1)
                assert n1[i] == np.count_nonzero(cheb <= s)
                assert n2[i] == np.count_nonzero(cheb <= s + 1)
                assert abs(w1[i] - w_idx[cheb <= s].sum()) <= idx.block_total_error(w.sum())
                assert abs(w2[i] - w_idx[cheb <= s + 1].sum()) <= idx.block_total_error(w.sum())
            np.testing.assert_array_equal(c1, idx.clearance(P, 0.0, cells=s))
            np.testing.assert_array_equal(c2, idx.clearance(P, 0.0, cells=s + 1))
            # Every point outside a block is farther than its clearance.
            for i in range(0, len(P), 7):
                cheb = np.abs(cells_y - k[i]).max(axis=1)
                dist = np.linalg.norm(idx.Y - P[i], axis=1)
                assert (dist[cheb > s] > c1[i]).all() and (dist[cheb > s + 1] > c2[i]).all()


@pytest.mark.parametrize("d", [2, 3])
def test_auto_gaussian_weighted_equals_brute_to_rounding(d):
    """Sample weights through the proven grid (the ring of cells and the
    culled corners are counted by weight) against brute force's weighted step."""
    X, seeds = holey_data(d, seed=2)
    w = np.random.default_rng(3).integers(0, 4, size=len(X)).astype(np.float64)
    auto, be = shift_modes(X, seeds, "auto", weights=w)
    brute, _ = shift_modes(X, seeds, "brute", weights=w)
    assert auto.algorithm == "grid" and be._exact_steps > 0
    np.testing.assert_allclose(auto.modes, brute.modes, rtol=0, atol=ROUNDING_ATOL)
    np.testing.assert_array_equal(auto.n_iter, brute.n_iter)
    np.testing.assert_array_equal(auto.converged, brute.converged)
