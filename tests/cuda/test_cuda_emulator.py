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
    X = rt.zeros((4, 3), np.float64)
    C = rt.zeros((2, 3), np.float64)
    lab, dist = rt.zeros((4,), np.int32), rt.zeros((4,), np.float64)
    name = "nearest_center<double, 3>"
    rt.launch(name, (1,), (128,), _nearest_args(X, C, lab, dist), 128 * 3 * 8)
    assert rt.launches[name] == 1
    with pytest.raises(TypeError, match="argument 6: You are trying to pass a numpy.ndarray"):
        rt.launch(name, (1,), (128,), _nearest_args(X, C, np.zeros(4, np.int32), dist), 0)
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


# ------------------------------------------------------- host/device mixing
# CuPy refuses an operation that mixes a cupy.ndarray with a host
# numpy.ndarray (no implicit conversion); the strict emulator does too, so
# such code fails here as it would on a GPU.
_MIXES = {
    "dev + host": lambda d, h: d + h,
    "host + dev": lambda d, h: h + d,
    "host < dev": lambda d, h: h < d,
    "dev += host": lambda d, h: d.__iadd__(h),
    "np.add(dev, 1, out=host)": lambda d, h: np.add(d, 1, out=h),
    "np.where(dev > 1, host, 0)": lambda d, h: np.where(d > 1, h, 0),
    "np.bincount(host int, weights=dev)": lambda d, h: np.bincount(h.astype(np.int64),
                                                                   weights=d),
    "np.concatenate([dev, host])": lambda d, h: np.concatenate([d, h]),
    "np.allclose(dev, host)": lambda d, h: np.allclose(d, h),
    "np.maximum.reduceat(dev, host)": lambda d, h: np.maximum.reduceat(d, h.astype(np.intp)),
}


@pytest.mark.parametrize("op", list(_MIXES))
def test_strict_emulator_refuses_mixing_host_and_device_arrays(op):
    rt = EmulatedRuntime()
    assert rt.strict_arrays
    dev, host = rt.asarray(np.arange(4.0)), np.arange(4.0)
    with pytest.raises(TypeError, match=r"Unsupported type <class 'numpy.ndarray'>: .* host "
                                        r"numpy.ndarray \(shape \(4,\)\) mixed with a device"):
        _MIXES[op](dev, host)


def test_strict_emulator_refuses_a_host_array_through_a_basic_index():
    # CuPy's __setitem__ without an array index goes to fill(), which takes
    # a scalar only (cupy/_core/_routines_indexing.pyx, _scatter_op)
    rt = EmulatedRuntime()
    dev = rt.zeros((4,), np.float64)
    for key in (slice(None), Ellipsis, slice(1, 3), (slice(None),)):
        with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
            dev[key] = np.ones(4)[:2] if key == slice(1, 3) else np.ones(4)
    dev2 = rt.zeros((2, 3), np.float64)
    with pytest.raises(ValueError, match="cannot be used for fill"):
        dev2[0] = np.ones(3)  # an integer index is a basic one
    assert not dev.any() and not dev2.any()


def test_strict_emulator_allows_what_cupy_allows():
    rt = EmulatedRuntime()
    dev = rt.asarray(np.arange(5.0))
    # scalars, NumPy scalars and 0-d arrays
    assert (dev + 1).tolist() == (dev + np.float64(1)).tolist() == (dev + np.array(1.0)).tolist()
    # host index arrays (CuPy uploads them), integer and boolean
    assert dev[np.array([4, 0])].tolist() == [4.0, 0.0]
    assert dev[np.arange(5) > 2].tolist() == [3.0, 4.0]
    assert dev[[1, 2]].tolist() == [1.0, 2.0]
    # a host value through an advanced index (uploaded), and scalars through any index
    dev[np.array([0, 1])] = np.array([10.0, 11.0])
    dev[dev > 10] = np.array([-1.0])
    dev[2:4] = 7.0
    dev[...] = dev.copy()  # a device value through a basic index
    assert dev.tolist() == [10.0, -1.0, 7.0, 7.0, 4.0]
    dev[1:] = np.array(2.0)  # a 0-d host array: fill takes it
    assert dev.tolist() == [10.0, 2.0, 2.0, 2.0, 2.0]
    # arrays the array module makes are device arrays, as CuPy's
    xp = rt.xp
    for made in (xp.zeros(5), xp.arange(5), xp.ones(5), xp.full(5, 2.0), xp.linspace(0, 1, 5),
                 xp.asarray(np.arange(5.0)), xp.ascontiguousarray(np.arange(5.0)), xp.empty(5)):
        assert type(made).__name__ == "EmulatedDeviceArray" and made._emulated_runtime is rt
        assert (made + dev).shape == (5,)
    # and so are the results of NumPy functions on device arrays (np.where
    # gives a plain ndarray for a subclass)
    for out in (np.where(dev > 5, dev, 0.0), np.flatnonzero(dev), np.nonzero(dev)[0],
                np.unique(dev, return_inverse=True)[1]):
        assert type(out).__name__ == "EmulatedDeviceArray", out
    dev[:] = np.where(dev > 5, dev, 0.0)  # a device result through a basic index
    # NumPy methods whose C code makes temporaries of the base class
    assert dev.round(1).tolist() == np.round(dev, 1).tolist() == [10.0, 0.0, 0.0, 0.0, 0.0]
    assert type(dev.round(2)).__name__ == "EmulatedDeviceArray"


def test_array_module_counts_uploads():
    rt = EmulatedRuntime()
    d = rt.xp.asarray(np.arange(6.0))
    assert (rt.h2d_transfers, rt.h2d_bytes) == (1, 48)
    rt.xp.asarray(d)
    rt.xp.ascontiguousarray(d[::2])
    rt.xp.zeros(100)
    assert (rt.h2d_transfers, rt.h2d_bytes) == (1, 48)  # device data and new arrays: none


def test_strict_arrays_can_be_turned_off(monkeypatch):
    loose = EmulatedRuntime(strict_arrays=False)
    dev, host = loose.asarray(np.arange(4.0)), np.arange(4.0)
    assert (dev + host).tolist() == [0.0, 2.0, 4.0, 6.0]
    dev[:] = host
    monkeypatch.setenv("GPUMEANSHIFT_EMU_STRICT", "0")
    assert not EmulatedRuntime().strict_arrays
    monkeypatch.setenv("GPUMEANSHIFT_EMU_STRICT", "1")
    rt = EmulatedRuntime()
    assert rt.strict_arrays
    with pytest.raises(TypeError, match="mixed with a device array"):
        rt.asarray(host) * host


def test_strict_emulator_survives_pickling():
    import pickle

    rt = pickle.loads(pickle.dumps(EmulatedRuntime()))
    assert type(rt.xp.zeros(2)).__name__ == "EmulatedDeviceArray"
    with pytest.raises(TypeError, match="mixed with a device array"):
        rt.xp.zeros(2) - np.ones(2)


def test_device_fit_with_host_weights_sizes_its_clusters_on_the_device():
    """The estimator once counted the cluster sizes from host weights indexed
    by the device labels' mask, which CuPy refuses (np.bincount of device
    labels with host weights); the strict emulator shows it."""
    from gpumeanshift import MeanShift

    X = blobs(120, 2, seed=21)
    w = np.random.default_rng(21).integers(1, 4, len(X))
    be = emulated_backend()
    dev = MeanShift(bandwidth=1.2, backend=be).fit(be.runtime.asarray(X),
                                                    sample_weight=w.astype(np.float64))
    ref = MeanShift(bandwidth=1.2, backend="numpy").fit(np.repeat(X, w, axis=0))
    assert type(dev.cluster_sizes_).__name__ == "EmulatedDeviceArray"
    np.testing.assert_allclose(to_numpy(dev.cluster_centers_), ref.cluster_centers_,
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(to_numpy(dev.cluster_sizes_), ref.cluster_sizes_)
