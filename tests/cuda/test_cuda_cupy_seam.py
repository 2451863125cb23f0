"""CupyRuntime's host code, run without a GPU against a stand-in ``cupy``.

The stand-in is NumPy plus a ``RawModule`` whose functions launch through the
emulator, so the real CupyRuntime code (module construction from the wrapped
source, lookup of the extern "C" entry points, argument passing, streams,
DLPack / __cuda_array_interface__ routing, memory queries) executes here. What it cannot show -- that CuPy and
the driver behave as the stand-in does -- is left to ci/gpu.sh.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

from cuda_testlib import blobs, ref_nearest, ref_shift
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift.backends.cuda.backend import CudaBackend, make_cupy_backend
from gpumeanshift.testing import EmulatedRuntime


class _Stream:
    def __init__(self, handle=None):
        self.handle, self.entered, self.synchronized = handle, 0, 0

    def synchronize(self):
        self.synchronized += 1

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        return False


_NULL_STREAM = _Stream()


class _Device:
    """cupy.cuda.Device: attributes of device i (default: the current one);
    ``with`` makes it current."""

    def __init__(self, log, sm_counts, i):
        self.log, self.id = log, log["device"] if i is None else int(i)
        self.attributes = {"MultiProcessorCount": sm_counts[self.id]}

    def __enter__(self):
        self.saved, self.log["device"] = self.log["device"], self.id
        return self

    def __exit__(self, *exc):
        self.log["device"] = self.saved
        return False


def _fake_cupy(n_devices=1, sm_counts=(2,), disk=None):
    """``disk``: a dict standing for CuPy's on-disk kernel cache, shared by
    the stand-ins of several processes, used as CuPy 13.x and 14.0 use theirs
    (cupy/cuda/compiler.py, ``_compile_with_cache_cuda``): a compiled module
    is always written under a key made from its code and options, and read
    back only when the RawModule got no ``name_expressions`` ("if
    os.path.exists(path) and not name_expressions")."""
    # the stand-in's arrays are plain NumPy arrays: its kernels take them
    emu = EmulatedRuntime(strict_arrays=False)
    log = {"modules": [], "from_dlpack": 0, "compiled": [], "get_function": [],
           "device": 0, "name_expressions": [], "disk_hits": []}
    by_symbol = {R.c_symbol(n): n for n in R.kernel_names()}

    class RawModule:
        # CuPy compiles a RawModule on each device at its first get_function
        # there. The kernels it can return are the extern "C" entry points
        # defined in its code; log["modules"] holds their name expressions.
        def __init__(self, *, code, options, name_expressions=None):
            log["name_expressions"].append(name_expressions)
            defined = re.findall(r'^extern "C" __global__ void .*\n(\w+)\(', code, re.M)
            names = tuple(by_symbol[sym] for sym in defined)
            log["modules"].append((code, options, names))
            self.cache_key, self.name_expressions = (code, tuple(options)), name_expressions
            self.symbols = set(defined)
            self.names = set(names)
            self.devices = set()

        def get_function(self, symbol):
            assert symbol in self.symbols, symbol
            name = by_symbol[symbol]
            if log["device"] not in self.devices:
                self.devices.add(log["device"])
                if disk is not None and self.name_expressions is None and self.cache_key in disk:
                    log["disk_hits"].append((len(self.names), log["device"]))
                else:
                    log["compiled"].append((len(self.names), log["device"]))
                    if disk is not None:
                        disk[self.cache_key] = True
            log["get_function"].append((name, log["device"]))

            def fn(grid, block, args, shared_mem=0):
                emu.launch(name, grid, block, args, shared_mem)
            return fn

    class OutOfMemoryError(MemoryError):
        pass

    def from_dlpack(a):
        log["from_dlpack"] += 1
        return np.from_dlpack(a)

    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # arange, asarray, ...
    cp.ndarray = np.ndarray
    cp.RawModule = RawModule
    cp.from_dlpack = from_dlpack
    cp.asnumpy = lambda a: np.array(a, copy=True)
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(
        free_bytes=lambda: 0, free_all_blocks=lambda: None)
    cp.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: n_devices,
                                      getDevice=lambda: log["device"],
                                      memGetInfo=lambda: (1 << 30, 1 << 31)),
        Device=lambda i=None: _Device(log, sm_counts, i),
        memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        ExternalStream=_Stream,
        get_current_stream=lambda: _NULL_STREAM,
    )
    return cp, emu, log


@pytest.fixture
def fake_cupy(monkeypatch):
    cp, emu, log = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    R.clear_cupy_caches()
    yield cp, emu, log
    R.clear_cupy_caches()


def test_cupy_runtime_drives_the_kernels(fake_cupy):
    cp, emu, log = fake_cupy
    be = make_cupy_backend(split=False)
    X = blobs(200, 3, seed=21)
    res = be.shift(X, X[::10], bandwidth=1.4, kernel="gaussian", max_iter=300, tol=1e-3)
    ref = ref_shift(X, X[::10], 1.4, "gaussian", 300, 1e-3)
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.n_iter, ref[1])
    lab, _ = be.nearest(X, X[:7])
    np.testing.assert_array_equal(lab, ref_nearest(X, X[:7])[0])
    # one RawModule per kernel family and dtype launched, built from the
    # package's kernel source with that module's entry points only, and no
    # name_expressions (CuPy 13.x / 14.0 would then skip their disk cache)
    keys = {R.module_key(n) for n in emu.launches}
    assert keys == {("ms_shift_fused", "double", False), ("ms_compact", "", False),
                    ("nearest_center", "double", False)}
    assert len(log["modules"]) == len(keys)
    assert log["name_expressions"] == [None] * len(keys)
    for code, options, names in log["modules"]:
        assert code == R.wrapped_source(names) and options == R.NVRTC_OPTIONS
        assert names == R.module_names(R.module_key(names[0]))
    assert emu.launches["ms_shift_fused<double, 3, 0, false>"] >= 1
    # weights: the weighted module of the shift kernel, nothing else new
    res = be.shift(X, X[::10], bandwidth=1.4, kernel="gaussian", max_iter=300, tol=1e-3,
                   weights=np.full(len(X), 2.0))
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.intensity, 2.0 * ref[2])
    assert len(log["modules"]) == len(keys) + 1
    code, options, wnames = log["modules"][-1]
    assert code == R.wrapped_source(wnames) and options == R.NVRTC_OPTIONS
    assert wnames == R.module_names(("ms_shift_fused", "double", True))
    assert emu.launches["ms_shift_fused<double, 3, 0, true>"] >= 1


def test_cupy_runtime_uses_the_stream_passed_in(fake_cupy):
    cp, emu, log = fake_cupy
    be = make_cupy_backend(stream=12345)  # a raw cudaStream_t handle
    stream = be.runtime._stream
    assert isinstance(stream, _Stream) and stream.handle == 12345
    X = blobs(100, 2, seed=22)
    be.count_within(X, X[:5], 1.0)
    be.shift(X, X[:5], bandwidth=1.0, kernel="flat", max_iter=10, tol=1e-3)
    # every launch, copy and allocation ran inside the stream's context
    assert stream.entered >= emu.n_launches >= 2
    # and each method waited for that stream before returning its results
    assert stream.synchronized == 2


def test_dlpack_inputs_are_imported_without_a_host_round_trip(fake_cupy):
    cp, emu, log = fake_cupy

    class DeviceTensor:  # a DLPack producer on a CUDA device (kDLCUDA = 2)
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return (2, 0)

    class HostTensor(DeviceTensor):
        def __dlpack_device__(self):
            return (1, 0)

    rt = make_cupy_backend().runtime
    X = blobs(10, 2)
    assert np.array_equal(rt.asarray(DeviceTensor(X)), X) and log["from_dlpack"] == 1
    assert np.array_equal(rt.asarray(HostTensor(X)), X) and log["from_dlpack"] == 1
    assert rt.asarray(X) is not None and log["from_dlpack"] == 1  # ndarray: plain upload


def test_cupy_runtime_oom_class_is_cupys(fake_cupy):
    cp, emu, log = fake_cupy
    rt = make_cupy_backend().runtime
    # CuPy's pool raises OutOfMemoryError; its Thrust sorts a plain MemoryError
    assert rt.oom_errors == (cp.cuda.memory.OutOfMemoryError, MemoryError)
    assert rt.free_memory() == 1 << 30
    assert isinstance(CudaBackend(rt).runtime, R.CupyRuntime)
