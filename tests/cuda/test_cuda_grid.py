"""algorithm="grid" on the CUDA backend: the cell-list kernel ms_shift_grid.

Checked against the NumPy backend's grid and a float64 per-seed reference
(scikit-learn's loop with the Gaussian truncated at GAUSSIAN_GRID_RADIUS
bandwidths, the grid's documented semantics), in 1, 2 and 3 dimensions, with
negative coordinates and with points exactly on cell borders and at exactly
the kernel's reach from each other (there only against the reference: the
NumPy backend's expanded distance formula rounds a few such pairs out).

Tolerances: float64 modes within 1e-9 bandwidths of the reference, identical
iteration counts and intensities, identical clusters (labels and centers) for
flat through the estimator. float32 as the brute-force parity suite: modes
within 2e-4 bandwidths, counts within 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import (blobs, host_result, make_backend, ref_shift, runtime_kind,  # noqa: F401
                          to_numpy)
from gpumeanshift import MeanShift
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift._spatial import GAUSSIAN_GRID_RADIUS
from gpumeanshift.backends.numpy.backend import NumpyBackend

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-9, np.float32: 2e-4}


def _lattice(d):
    """Points on a 0.5-spaced lattice over [-4, 4]^d (mean exactly 0), thinned
    by a fixed pattern so the density has structure. With bandwidth 1 (flat)
    or 0.5 (Gaussian, cells of 6 bandwidths = 3.0) cell borders fall on lattice
    points and many pairs sit at exactly the kernel's reach."""
    axis = np.arange(-8, 9) * 0.5
    P = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), axis=-1).reshape(-1, d)
    keep = (np.abs(P).sum(axis=1) * 2).astype(int) % 3 != 1
    P = P[keep]
    P = np.concatenate([P, -P])  # symmetric: the mean is exactly 0
    if len(P) > 400:
        P = P[:: len(P) // 400 + 1]
        P = np.concatenate([P, -P])
    return P


def _check(res, ref, dtype, h):
    modes, n_iter, inten = (to_numpy(a) for a in (res.modes, res.n_iter, res.intensity))
    np.testing.assert_allclose(modes, ref[0], rtol=0, atol=TOL[dtype] * h * 10)
    if dtype == np.float64:
        np.testing.assert_array_equal(n_iter, ref[1])
        np.testing.assert_array_equal(inten, ref[2])
    else:
        assert np.abs(n_iter - ref[1]).max() <= 1
        assert np.abs(inten - ref[2]).max() <= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_grid_kernel_on_cell_borders(make_backend, d, kernel, dtype):
    X = _lattice(d).astype(dtype)
    seeds = X[::3]
    h = 1.0 if kernel == "flat" else 0.5
    be = make_backend()
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-3,
                   algorithm="grid")
    assert res.algorithm == "grid"
    assert be.last_plan["grid"] and be.last_plan["n_cells"] > 1
    if hasattr(be.runtime, "launches"):  # the emulator counts launches
        name = R.kernel_name("ms_shift_grid", dtype, d, "flat" if kernel == "flat" else "gaussian_grid")
        assert be.runtime.launches[name] >= 1
    ref = ref_shift(X, seeds, h, kernel, 300, 1e-3,
                    truncate=GAUSSIAN_GRID_RADIUS if kernel == "gaussian" else None)
    # Only the reference here: many pairs lie at exactly the reach, where the
    # NumPy backend's expanded |q|^2 + |x|^2 - 2 q.x distance rounds a few
    # out (its brute force as well); the kernel's direct differences are exact.
    _check(res, ref, dtype, h)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_grid_kernel_negative_coordinates_and_far_seeds(make_backend, d, kernel, dtype):
    """Blobs straddling 0 (negative coordinates), seeds far outside the grid
    (orphans: no cell in reach) and few steps per launch (compaction)."""
    X = (blobs(250, d, spread=3.0, std=0.4, seed=d) - 10.0).astype(dtype)
    far = np.full((3, d), 1e3, dtype)
    far[1] *= -1
    seeds = np.concatenate([X[::5], far]).astype(dtype)
    h = 0.6
    be = make_backend(iters_per_launch=3)
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-3,
                   algorithm="grid")
    ref = ref_shift(X, seeds, h, kernel, 300, 1e-3,
                    truncate=GAUSSIAN_GRID_RADIUS if kernel == "gaussian" else None)
    _check(res, ref, dtype, h)
    assert (to_numpy(res.intensity)[-3:] == 0).all()
    if dtype == np.float32:  # float32 climbs may part at a boundary point: the reference only
        return
    nb = NumpyBackend().shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-3,
                              algorithm="grid")
    assert nb.algorithm == "grid"
    np.testing.assert_allclose(to_numpy(res.modes), nb.modes, rtol=0, atol=TOL[dtype] * h * 10)


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_grid_estimator_same_clusters_as_numpy(runtime_kind, d, kernel):
    from cuda_testlib import make_runtime
    from gpumeanshift.backends.cuda.backend import CudaBackend

    X = blobs(300, d, centers=4, spread=5.0, std=0.5, seed=10 + d) - 10.0
    h = 0.9
    params = dict(bandwidth=h, kernel=kernel, algorithm="grid", bin_seeding=False)
    gpu = MeanShift(backend=CudaBackend(make_runtime(runtime_kind)), **params).fit(X)
    cpu = MeanShift(backend="numpy", **params).fit(X)
    assert gpu.algorithm_ == cpu.algorithm_ == "grid"
    assert len(cpu.cluster_centers_) >= 2
    np.testing.assert_array_equal(to_numpy(gpu.labels_), cpu.labels_)
    atol = 1e-12 if kernel == "flat" else 1e-9 * h
    np.testing.assert_allclose(to_numpy(gpu.cluster_centers_), cpu.cluster_centers_,
                               rtol=0, atol=atol)


def test_grid_above_three_dimensions_keeps_semantics(make_backend):
    """d > 3 has no cell-list kernel: the all-points kernel with the truncated
    Gaussian runs instead, with the same results."""
    X = blobs(150, 5, seed=2)
    seeds = X[::10]
    be = make_backend()
    res = be.shift(X, seeds, bandwidth=1.2, kernel="gaussian", max_iter=300, tol=1e-3,
                   algorithm="grid")
    assert res.algorithm == "grid" and be.last_plan["grid"] is False
    _check(res, ref_shift(X, seeds, 1.2, "gaussian", 300, 1e-3, truncate=GAUSSIAN_GRID_RADIUS),
           np.float64, 1.2)


def test_grid_rounds_and_transfers_are_bounded():
    """One transfer for the grid's shape plus one count per round; rounds
    bounded by ceil((max_iter + 1) / iters_per_launch)."""
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend(iters_per_launch=4)
    X = blobs(200, 2, seed=5)
    be.shift(X, X, bandwidth=0.7, kernel="flat", max_iter=20, tol=0.0, algorithm="grid")
    rounds = be.last_plan["rounds"]
    assert 1 <= rounds <= -(-21 // 4)
    assert be.runtime.d2h_transfers == 1 + rounds
    assert be.runtime.launches[R.kernel_name("ms_shift_grid", np.float64, 2, "flat")] == rounds


def _grid_active_lists(be, X, **fit):
    """The active list each launch of the grid kernel got, and the result."""
    lists = []
    launch = be.runtime.launch

    def recording(name, grid, block, args, shared_mem=0):
        if name.startswith("ms_shift_grid"):
            lists.append(np.array(args[14][: int(args[15])]))
        return launch(name, grid, block, args, shared_mem)

    be.runtime.launch = recording
    try:
        return lists, be.shift(X, X, algorithm="grid", **fit)
    finally:
        be.runtime.launch = launch


def _kept_in_order(lists):
    """Whether each list is the previous one with some seeds taken out, in
    the same order."""
    for prev, cur in zip(lists, lists[1:]):
        pos = {int(s): i for i, s in enumerate(prev)}
        if not (np.diff([pos[int(s)] for s in cur]) > 0).all():
            return False
    return True


GRID_FIT = dict(bandwidth=0.4, kernel="flat", max_iter=60, tol=1e-5)


def test_grid_active_list_keeps_cell_order_between_rounds():
    """The compaction between rounds keeps the order of the active list: each
    round's list is the previous one with the stopped seeds taken out, so the
    seeds stay in cell order (the first round's). The emulator runs each
    launch's blocks in a scrambled order (as a GPU promises none), which is
    what would show an order that depends on the blocks' timing."""
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend(iters_per_launch=2)
    assert be.runtime.block_order == "shuffled"
    X = blobs(1500, 2, seed=6)
    ref = emulated_backend(iters_per_launch=64).shift(X, X, algorithm="grid", **GRID_FIT)
    lists, res = _grid_active_lists(be, X, **GRID_FIT)
    assert len(lists) >= 3 and len(lists[0]) == len(X) and len(lists[-1]) < len(lists[1])
    assert max(-(-len(a) // R.COMPACT_SPAN) for a in lists[1:-1]) >= 2  # several blocks
    assert _kept_in_order(lists)
    np.testing.assert_array_equal(res.modes, ref.modes)
    np.testing.assert_array_equal(res.n_iter, ref.n_iter)


# The compaction as an atomic counter would write it: each block claims its
# output slots with one atomicAdd (span_start[0], 0 after the scan, is the
# counter), so the blocks' outputs land in the order the blocks ran.
_ATOMIC_COMPACTION = (
    """    int out = span_start[blockIdx.x]
              + ms_block_scan(sh, ms_compact_items(state, active, n_active, first), &total);""",
    """    const int mine = ms_block_scan(sh, ms_compact_items(state, active, n_active, first),
                                   &total);
    __shared__ int base;
    if (threadIdx.x == 0) base = atomicAdd(const_cast<int*>(span_start), total);
    __syncthreads();
    int out = base + mine;""")


def test_block_order_shows_a_compaction_that_follows_the_blocks_timing():
    """An atomic-counter compaction keeps the seeds and the results but not
    their order: run in the order of the block index (the emulator's old
    schedule) it looks ordered; in a scrambled order, as a GPU may run the
    blocks, the order test above fails on it."""
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    src = R.kernel_source()
    assert src.count(_ATOMIC_COMPACTION[0]) == 1
    src = src.replace(*_ATOMIC_COMPACTION)
    X = blobs(1500, 2, seed=6)
    ref = NumpyBackend().shift(X, X, algorithm="grid", **GRID_FIT)
    kept = {}
    for order in ("ascending", "shuffled"):
        be = CudaBackend(EmulatedRuntime(source=src, block_order=order), iters_per_launch=2)
        lists, res = _grid_active_lists(be, X, **GRID_FIT)
        kept[order] = _kept_in_order(lists)
        # the same seeds each round and the same results: only the order moved
        for prev, cur in zip(lists, lists[1:]):
            assert set(cur.tolist()) <= set(prev.tolist())
        np.testing.assert_allclose(to_numpy(res.modes), to_numpy(ref.modes), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(to_numpy(res.n_iter), to_numpy(ref.n_iter))
    assert kept == {"ascending": True, "shuffled": False}


def test_ordered_compaction_kernels_match_a_stable_filter():
    """ms_compact_count / _scan / ms_compact against NumPy's boolean filter,
    over several spans and (scan alone) more spans than one pass covers."""
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend()
    rt = be.runtime
    rng = np.random.default_rng(7)
    for n_active in (1, 5, R.COMPACT_SPAN, 3 * R.COMPACT_SPAN + 17):
        m = n_active + 40
        state = rng.integers(0, 4, m).astype(np.int32)  # ACTIVE, CONVERGED, MAXITER, ORPHAN
        active = rng.permutation(m)[:n_active].astype(np.int32)
        out = rt.asarray(np.full(m, -1, np.int32))
        spans = rt.zeros((-(-n_active // R.COMPACT_SPAN),), np.int32)
        got = be._compact(rt.asarray(state), rt.asarray(active), n_active, out, spans,
                          rt.zeros((1,), np.int32))
        want = active[state[active] == R.ACTIVE]
        assert got == len(want)
        out = rt.to_host(out)
        np.testing.assert_array_equal(out[:got], want)
        assert (out[got:] == -1).all()
    counts = rng.integers(0, 1025, 2 * R.COMPACT_SPAN + 300).astype(np.int32)
    spans, total = rt.asarray(counts), rt.zeros((1,), np.int32)
    rt.launch("ms_compact_scan", (1,), (R.BLOCK,), (spans, np.int32(len(spans)), total),
              R.BLOCK * 4)
    np.testing.assert_array_equal(rt.to_host(spans), np.concatenate([[0], np.cumsum(counts)[:-1]]))
    assert int(total[0]) == counts.sum()


def test_grid_rejects_a_grid_too_large(make_backend):
    X = np.array([[0.0, 0.0, 0.0], [1e7, 1e7, 1e7]])
    with pytest.raises(ValueError, match="use algorithm='brute'"):
        make_backend().shift(X, X, bandwidth=1e-2, kernel="flat", max_iter=10, tol=1e-3,
                             algorithm="grid")


def test_harness_catches_a_dropped_cell():
    """A copy of the kernel whose runs stop one cell short along the last axis
    must fail the parity check (the emulator runs the real source)."""
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    src = R.kernel_source()
    good = "base + chi[D - 1] + 1)"
    assert src.count(good) == 1
    rt = EmulatedRuntime(source=src.replace(good, "base + chi[D - 1])"))
    X = blobs(200, 2, seed=8) - 10.0
    seeds = X[::4]
    res = CudaBackend(rt).shift(X, seeds, bandwidth=0.6, kernel="flat", max_iter=300,
                                tol=1e-3, algorithm="grid")
    ref = ref_shift(X, seeds, 0.6, "flat", 300, 1e-3)
    assert not np.array_equal(to_numpy(res.intensity), ref[2])


# --------------------------------------- the Gaussian under "auto": proven grid
ROUNDING_ATOL = 1e-12  # bandwidths: "equal to rounding" in float64


def _holey(d, seed=0):
    """Blobs over ~100 bandwidths a side (bandwidth 1) around an empty ball of
    radius 22, one point repeated 200 times; seeds: a sample of the data,
    seeds in the hole (its cells see little or nothing of the data: they must
    take the exact kernel) and far seeds (orphans)."""
    rng = np.random.default_rng(seed)
    side, hole = (500.0 if d == 1 else 100.0), 22.0
    mid = np.full(d, side / 2)
    centers = rng.uniform(0.0, side, size=(100, d))
    centers = centers[np.linalg.norm(centers - mid, axis=1) > hole + 3.0][:20]
    X = centers[rng.integers(0, len(centers), 2200)] + rng.normal(scale=0.5, size=(2200, d))
    X = X[np.linalg.norm(X - mid, axis=1) > hole]
    X = np.concatenate([X, np.repeat(X[:1], 200, axis=0)])
    direction = rng.normal(size=(6, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    seeds = np.concatenate([X[::40], mid + direction * rng.uniform(0, hole - 9.0, size=(6, 1)),
                            mid + 1e4 * direction[:2]])
    return X, seeds


def _auto_and_brute(be, X, seeds, dtype, tol=1e-7):
    X, seeds = X.astype(dtype), seeds.astype(dtype)
    kw = dict(bandwidth=1.0, kernel="gaussian", max_iter=300, tol=tol)
    auto = be.shift(X, seeds, algorithm="auto", **kw)
    plan = dict(be.last_plan)
    brute = be.shift(X, seeds, algorithm="brute", **kw)
    return auto, plan, brute


@pytest.mark.parametrize("d", [1, 2, 3])
def test_auto_gaussian_proven_grid_equals_brute(make_backend, d):
    X, seeds = _holey(d)
    be = make_backend(iters_per_launch=8)
    auto, plan, brute = _auto_and_brute(be, X, seeds, np.float64)
    assert auto.algorithm == "grid" and plan["proven"] and brute.algorithm == "brute"
    assert plan["unproven"] > 0  # the hole's seeds took the exact kernel
    if hasattr(be.runtime, "launches"):
        assert be.runtime.launches[R.kernel_name("ms_shift_grid", np.float64, d, "gaussian")] >= 1
    modes = [to_numpy(r.modes) for r in (auto, brute)]
    np.testing.assert_allclose(modes[0], modes[1], rtol=0, atol=ROUNDING_ATOL)
    for a, b in ((auto.n_iter, brute.n_iter), (auto.intensity, brute.intensity)):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert (to_numpy(auto.intensity)[-2:] == 0).all()
    # And the NumPy backend's proven grid (its own tiles and rounding).
    nb = NumpyBackend().shift(X, seeds, bandwidth=1.0, kernel="gaussian", max_iter=300,
                              tol=1e-7, algorithm="auto")
    assert nb.algorithm == "grid"
    np.testing.assert_allclose(modes[0], nb.modes, rtol=0, atol=1e-9)


def test_auto_gaussian_proven_grid_float32(make_backend):
    X, seeds = _holey(2, seed=1)
    be = make_backend()
    auto, plan, brute = _auto_and_brute(be, X, seeds, np.float32, tol=1e-3)
    assert auto.algorithm == "grid" and plan["proven"]
    _check(auto, (to_numpy(brute.modes), to_numpy(brute.n_iter), to_numpy(brute.intensity)),
           np.float32, 1.0)


def test_auto_gaussian_few_points_or_narrow_data_stay_brute(make_backend):
    be = make_backend()
    X = blobs(300, 2, seed=3)
    res = be.shift(X, X[::10], bandwidth=1.0, kernel="gaussian", max_iter=50, tol=1e-3,
                   algorithm="auto")
    assert res.algorithm == "brute" and not be.last_plan["proven"]


def test_harness_catches_an_unchecked_truncation():
    """The proven grid kernel with its check switched off (every seed
    trusts its cells) must fail the rounding comparison with brute force."""
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    src = R.kernel_source()
    check = "if (!(bound <= 1.0)) {"
    assert src.count(check) == 1
    be = CudaBackend(EmulatedRuntime(source=src.replace(check, "if (false) {")))
    X, seeds = _holey(2)
    auto, plan, brute = _auto_and_brute(be, X, seeds, np.float64)
    assert plan["proven"] and plan["unproven"] == 0
    assert np.abs(to_numpy(auto.modes) - to_numpy(brute.modes)).max() > 1e3 * ROUNDING_ATOL
