"""CupyRuntime's host code, run without a GPU against a stand-in ``cupy``.

The stand-in is NumPy plus a ``RawModule`` whose functions launch through the
emulator, so the real CupyRuntime code (module construction with
name_expressions, argument passing, streams, DLPack / __cuda_array_interface__
routing, memory queries) executes here. What it cannot show -- that CuPy and
the driver behave as the stand-in does -- is left to ci/gpu.sh.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from cuda_testlib import blobs, ref_nearest, ref_shift
from gpumeanshift.backends import runtime as R
from gpumeanshift.backends.cuda_backend import CudaBackend, make_cupy_backend
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


def _fake_cupy():
    emu = EmulatedRuntime()
    log = {"modules": [], "from_dlpack": 0}

    class RawModule:
        def __init__(self, *, code, options, name_expressions):
            log["modules"].append((code, options, tuple(name_expressions)))
            self.names = set(name_expressions)

        def get_function(self, name):
            assert name in self.names

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
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                      memGetInfo=lambda: (1 << 30, 1 << 31)),
        Device=lambda: types.SimpleNamespace(attributes={"MultiProcessorCount": 2}),
        memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        ExternalStream=_Stream,
        get_current_stream=lambda: _NULL_STREAM,
    )
    return cp, emu, log


@pytest.fixture
def fake_cupy(monkeypatch):
    cp, emu, log = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    R._cupy_module.cache_clear()
    yield cp, emu, log
    R._cupy_module.cache_clear()


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
    # one RawModule, built from the package's kernel source with every
    # unweighted name expression: the weighted ones are not compiled unless used
    code, options, names = log["modules"][0]
    assert len(log["modules"]) == 1
    assert code == R.kernel_source() and options == R.NVRTC_OPTIONS
    assert names == tuple(n for n in R.kernel_names() if not R.is_weighted(n))
    assert emu.launches["ms_shift_fused<double,3,0>"] >= 1
    # weights: a second module, with the weighted name expressions
    res = be.shift(X, X[::10], bandwidth=1.4, kernel="gaussian", max_iter=300, tol=1e-3,
                   weights=np.full(len(X), 2.0))
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.intensity, 2.0 * ref[2])
    assert len(log["modules"]) == 2
    code, options, wnames = log["modules"][1]
    assert code == R.kernel_source() and options == R.NVRTC_OPTIONS
    assert wnames and all(R.is_weighted(n) for n in wnames)
    assert set(names) | set(wnames) == set(R.kernel_names())
    assert emu.launches["ms_shift_fused<double,3,0,true>"] >= 1


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
    assert rt.oom_errors == (cp.cuda.memory.OutOfMemoryError,)
    assert rt.free_memory() == 1 << 30
    assert isinstance(CudaBackend(rt).runtime, R.CupyRuntime)
