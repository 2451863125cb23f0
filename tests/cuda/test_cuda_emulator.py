"""The emulated runtime: launch checks, bug-catching power, round-trip bounds, OOM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cuda_testlib import blobs, host_result, ref_nearest, ref_shift, to_numpy
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift.backends.cuda.backend import CudaBackend
from gpumeanshift.testing import (EmulatedOutOfMemoryError, EmulatedRuntime, LaunchError,
                                  emulated_backend)


# ----------------------------------------------------------- launch checks
def _nearest_args(X, C, lab, dist, tile=np.int32(128)):
    return (X, np.int32(len(X)), C, np.int32(len(C)), np.int32(X.shape[1]), tile, lab, dist)


def test_signature_comes_from_the_compiled_kernel():
    rt = EmulatedRuntime()
    assert rt.signature("nearest_center<double, 3>") == [
        "*f8", "i4", "*f8", "i4", "i4", "i4", "*i4", "*f8"]
    assert rt.signature("ms_compact") == ["*i4", "*i4", "i4", "*i4", "*i4"]
    assert rt.signature("ms_compact_scan") == ["*i4", "i4", "*i4"]


def test_launch_rejects_what_cuda_or_cupy_would():
    rt = EmulatedRuntime()
    X = np.zeros((4, 3))
    C = np.zeros((2, 3))
    lab, dist = np.zeros(4, np.int32), np.zeros(4)
    name = "nearest_center<double, 3>"
    rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist), 128 * 3 * 8)
    assert rt.launches[name] == 1
    with pytest.raises(LaunchError, match="takes 8 arguments, got 7"):
        rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist)[:-1], 0)
    with pytest.raises(LaunchError, match="argument 5: the kernel takes int32"):
        rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist, tile=128), 0)
    with pytest.raises(LaunchError, match="argument 5: the kernel takes int32"):
        rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist, tile=np.int64(128)), 0)
    with pytest.raises(LaunchError, match="argument 0: expected a C-contiguous float64"):
        rt.launch(name, (1,), (128,), _nearest_args(X.astype(np.float32), C, lab, dist), 0)
    with pytest.raises(LaunchError, match="threads per block"):
        rt.launch(name, (1,), (256,), _nearest_args(X, C, lab, dist), 0)
    with pytest.raises(LaunchError, match="outside CUDA limits"):
        rt.launch(name, (1,), (2048,), _nearest_args(X, C, lab, dist), 0)
    with pytest.raises(LaunchError, match="dynamic shared memory"):
        rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist), 48 * 1024 + 1)
    with pytest.raises(LaunchError, match="not a compiled name expression"):
        rt.launch("nearest_center<double, 7>", (1,), (128,), _nearest_args(X, C, lab, dist), 0)
    assert rt.n_launches == 1


# ------------------------------------------------------ the harness catches bugs
def _parity_ok(rt, kernel="flat", split=False):
    """True when the shift on this runtime matches the float64 reference."""
    X = blobs(300, 3, seed=11)
    seeds = X[::10]
    h = 1.4
    be = CudaBackend(rt, split=split, n_splits=3 if split else None)
    res = host_result(be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=300, tol=1e-3))
    ref = ref_shift(X, seeds, h, kernel, 300, 1e-3)
    return (np.allclose(res.modes, ref[0], rtol=0, atol=1e-8)
            and np.array_equal(res.n_iter, ref[1]) and np.array_equal(res.intensity, ref[2]))


def _broken(old, new, count):
    src = R.kernel_source()
    assert src.count(old) == count, f"pattern {old!r} not found {count} times"
    return src.replace(old, new)


def test_correct_source_passes_parity():
    assert _parity_ok(EmulatedRuntime())
    assert _parity_ok(EmulatedRuntime(), split=True)


def test_missing_syncthreads_is_caught():
    # Drop the barrier between loading a tile and reading it: in ms_for_tiles,
    # the one tile loop of every tiled kernel.
    rt = EmulatedRuntime(source=_broken("__syncthreads();  // tile loaded", ";", 1))
    assert not _parity_ok(rt)
    X = blobs(300, 3, seed=12)
    lab, _ = CudaBackend(rt).nearest(X, X[::3])
    assert not np.array_equal(to_numpy(lab), ref_nearest(X, X[::3])[0])


def test_missing_trailing_syncthreads_is_caught():
    # Drop the barrier that keeps the next tile from overwriting the current one.
    rt = EmulatedRuntime(source=_broken("__syncthreads();  // tile consumed", ";", 1))
    assert not _parity_ok(rt)


def test_off_by_one_tile_count_is_caught():
    # Forget the last, partial tile: (count + tile - 1) / tile -> count / tile.
    rt = EmulatedRuntime(source=_broken("(count + tile - 1) / tile", "count / tile", 1))
    assert not _parity_ok(rt)
    assert not _parity_ok(rt, kernel="gaussian")
    assert not _parity_ok(rt, split=True)


# ----------------------------------------------- bounded launches and transfers
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("max_iter", [1, 5, 40])
def test_launches_and_transfers_are_bounded(split, max_iter):
    """A batch of m seeds makes at most R = ceil((max_iter + 1) / S) rounds; each
    round is 1 device-to-host transfer (the active count) and 4 launches (fused:
    the shift and the three of the ordered compaction) or 2 S + 3 (split),
    whatever m and the data."""
    X = blobs(300, 2, seed=13)
    seeds = X[::2]  # 150 seeds: two blocks
    S = 4
    be = emulated_backend(split=split, n_splits=3, iters_per_launch=S, split_steps=S)
    rt = be.runtime
    res = be.shift(X, seeds, bandwidth=0.05, kernel="gaussian", max_iter=max_iter, tol=0.0)
    R_bound = math.ceil((max_iter + 1) / S)
    per_round = 2 * S + 3 if split else 4
    assert be.last_plan["batch_rows"] == len(seeds)  # one batch
    assert rt.d2h_transfers <= R_bound
    assert rt.n_launches <= per_round * R_bound
    # The bound is reached here (tiny bandwidth, tol=0: seeds run to max_iter),
    # so per-iteration round trips would have exceeded it.
    assert int(res.n_iter.max()) == max_iter
    assert rt.d2h_transfers == R_bound


def test_early_convergence_costs_one_round():
    X = blobs(200, 2, seed=14)
    be = emulated_backend(split=False, iters_per_launch=64)
    be.shift(X, X, bandwidth=2.0, kernel="flat", max_iter=300, tol=1e-3)
    assert be.runtime.d2h_transfers == 1 and be.runtime.n_launches == 4


# --------------------------------------------------------------------- OOM
def _fixed_bytes(n, m, d):
    """Data copy + result buffers of a float64 shift (allocated before batching)."""
    return n * d * 8 + m * d * 8 + 2 * m * 8 + m


def test_oom_halves_the_batch_and_goes_on():
    X = blobs(200, 3, seed=15)
    ref = ref_shift(X, X, 1.4, "flat", 300, 1e-3)
    # Room for the fixed buffers and ~60 seeds (about 44 bytes each), but free
    # memory is over-reported, so the first batch (200 seeds) fails, then 100.
    limit = _fixed_bytes(200, 200, 3) + 3000
    be = emulated_backend(split=False, runtime_options={
        "memory_limit": limit, "reported_free": 1 << 30})
    res = host_result(be.shift(X, X, bandwidth=1.4, kernel="flat", max_iter=300, tol=1e-3))
    rt = be.runtime
    assert rt.failed_allocations >= 2          # 200 -> 100 -> 50
    assert be.last_plan["batch_rows"] == 50
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.n_iter, ref[1])
    np.testing.assert_array_equal(res.intensity, ref[2])


def test_oom_below_one_row_is_a_clear_memory_error():
    X = blobs(100, 3, seed=16)
    limit = _fixed_bytes(100, 10, 3) + 16  # not even one seed's buffers fit
    be = emulated_backend(runtime_options={"memory_limit": limit, "reported_free": 1 << 30})
    with pytest.raises(MemoryError, match=r"even for one row; needed about \d+ bytes"):
        be.shift(X, X[:10], bandwidth=1.0, kernel="flat", max_iter=10, tol=1e-3)
    with pytest.raises(MemoryError, match="out of device memory allocating 2400 bytes"):
        emulated_backend(runtime_options={"memory_limit": 100}).shift(
            X, X[:10], bandwidth=1.0, kernel="flat", max_iter=10, tol=1e-3)


def test_batches_follow_free_memory():
    """A small free-memory report splits the seeds into several batches; the
    results do not depend on the batching."""
    X = blobs(200, 2, seed=17)
    ref = ref_shift(X, X, 1.0, "gaussian", 300, 1e-3)
    be = emulated_backend(split=False, memory_fraction=1.0,
                          runtime_options={"reported_free": 60 * 48})
    res = host_result(be.shift(X, X, bandwidth=1.0, kernel="gaussian", max_iter=300,
                               tol=1e-3))
    assert be.last_plan["batch_rows"] < 200
    assert isinstance(EmulatedOutOfMemoryError("x"), MemoryError)
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.n_iter, ref[1])


def test_block_orders_run_every_block_once():
    """Each launch's order is a permutation of the block index: ascending,
    descending, or scrambled differently from one launch to the next."""
    from gpumeanshift.testing.emulator import BLOCK_ORDERS

    rt = EmulatedRuntime()
    assert rt.block_order == "shuffled" and BLOCK_ORDERS[0] == "shuffled"
    for n in (1, 2, 7, 12, 128, 1000):
        for order in BLOCK_ORDERS:
            rt.block_order = order
            first, stride = rt._block_permutation(n)
            seq = [(first + stride * i) % n for i in range(n)]
            assert sorted(seq) == list(range(n))
            if order == "ascending":
                assert seq == list(range(n))
            elif order == "descending":
                assert seq == list(range(n))[::-1]
    rt.block_order = "shuffled"
    assert len({rt._block_permutation(1000) for _ in range(20)}) > 1
    with pytest.raises(ValueError, match="block_order must be one of"):
        EmulatedRuntime(block_order="random")
