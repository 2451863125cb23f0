"""Lazy per-module compilation, name spelling, per-device caches, device
refusal and the out-of-memory types of the sorts -- all without a GPU (the
real CupyRuntime code against the stand-in ``cupy`` of test_cuda_cupy_seam,
and the emulator's device model and fault injection)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from cuda_testlib import blobs, ref_shift
from gpumeanshift.backends.cuda import runtime as R
from gpumeanshift.backends.cuda.backend import CudaBackend, make_cupy_backend
from gpumeanshift.testing import EmulatedRuntime
from test_cuda_cupy_seam import _fake_cupy


@pytest.fixture
def two_gpus(monkeypatch):
    cp, emu, log = _fake_cupy(n_devices=2, sm_counts=(2, 7))
    monkeypatch.setitem(sys.modules, "cupy", cp)
    R.clear_cupy_caches()
    yield cp, emu, log
    R.clear_cupy_caches()


# ------------------------------------------------------------------ modules
def test_modules_partition_kernel_names():
    seen = [n for key in R.module_keys() for n in R.module_names(key)]
    assert sorted(seen) == sorted(R.kernel_names()) and len(seen) == len(set(seen))
    for key in R.module_keys():
        fam, first, w = key
        names = R.module_names(key)
        assert all(n.startswith(fam + "<") or n == fam
                   or (fam == "ms_compact" and n in R.COMPACT_KERNELS) for n in names)
        assert all(R.is_weighted(n) == w for n in names)
    # the largest module is far below the whole set (what one call used to compile)
    assert max(len(R.module_names(k)) for k in R.module_keys()) <= 33 < len(R.kernel_names()) / 12


def test_flat_float32_fit_compiles_only_the_modules_it_launches(two_gpus):
    cp, emu, log = two_gpus
    be = make_cupy_backend(split=False)
    X = blobs(300, 2, seed=3, dtype=np.float32)
    res = be.shift(X, X[::15], bandwidth=1.0, kernel="flat", max_iter=100, tol=1e-4,
                   algorithm="brute")
    ref = ref_shift(X, X[::15], 1.0, "flat", 100, 1e-4)
    np.testing.assert_allclose(res.modes, ref[0], rtol=0, atol=2e-4)
    built = [names for _code, _opts, names in log["modules"]]
    assert {R.module_key(n[0]) for n in built} == {("ms_shift_fused", "float", False),
                                                   ("ms_compact", "", False)}
    compiled = sum(n for n, _dev in log["compiled"])
    assert compiled == len(R.module_names(("ms_shift_fused", "float", False))) + 3 == 36
    assert set(emu.launches) <= {n for names in built for n in names}
    # a second fit compiles nothing more and loads no function again
    n_get = len(log["get_function"])
    be.shift(X, X[::15], bandwidth=1.0, kernel="flat", max_iter=100, tol=1e-4)
    assert len(log["modules"]) == len(built) and len(log["get_function"]) == n_get


def test_emulator_counts_the_modules_cupy_would_compile():
    rt = EmulatedRuntime()
    be = CudaBackend(rt, split=False)
    X = blobs(200, 2, seed=4, dtype=np.float32)
    be.shift(X, X[::20], bandwidth=1.0, kernel="flat", max_iter=50, tol=1e-4)
    assert set(rt.compiled_modules) == {(("ms_shift_fused", "float", False), 0),
                                        (("ms_compact", "", False), 0)}
    assert rt.compiled_names == 36


# ------------------------------------------------------------------ spelling
def _reference_spelling(base, *args):
    """How c++filt prints a kernel's template arguments: ", "-separated, the
    defaulted WEIGHTED flag written out."""
    return f"{base}<{', '.join(args)}>"


def test_name_spelling_matches_the_demangler_format():
    assert R.kernel_name("ms_shift_fused", "float32", 3, "flat") == \
        _reference_spelling("ms_shift_fused", "float", "3", "1", "false")
    assert R.kernel_name("kth_neighbor", "float64", 2, weighted=True) == \
        _reference_spelling("kth_neighbor", "double", "2", "true")
    assert R.kernel_name("ms_shift_finalize", "float32") == "ms_shift_finalize<float, false>"
    assert R.kernel_name("ms_filter_image", "float32", 3) == "ms_filter_image<float, 3>"
    with pytest.raises(ValueError, match="nearest_center has no sample-weighted"):
        R.kernel_name("nearest_center", "float32", 2, weighted=True)
    for n in R.kernel_names():
        assert not re.search(r",\S", n), n  # never "a,b"
        assert R.module_key(n)[0] in R.WEIGHTED_FAMILIES or not n.endswith(("true>", "false>"))
        if R.module_key(n)[0] in R.WEIGHTED_FAMILIES:
            assert n.endswith((", true>", ", false>")), n


def test_a_new_process_loads_its_modules_from_cupys_disk_cache(monkeypatch):
    """Two processes in a row (fresh stand-in cupy, fresh runtime caches, one
    disk cache used as CuPy 13.x / 14.0 use theirs): the second compiles
    nothing. Modules built with name_expressions (as before the extern "C"
    entry points) would be compiled again in every process."""
    disk = {}
    X = blobs(200, 2, seed=3)
    runs = []
    for _process in range(2):
        cp, emu, log = _fake_cupy(disk=disk)
        monkeypatch.setitem(sys.modules, "cupy", cp)
        R.clear_cupy_caches()
        be = make_cupy_backend(split=False)
        res = be.shift(X, X[::20], bandwidth=1.0, kernel="gaussian", max_iter=100, tol=1e-4)
        be.nearest(X, X[:3])
        runs.append((log, res))
    R.clear_cupy_caches()
    (first, res0), (second, res1) = runs
    assert len(first["compiled"]) == len(first["modules"]) == 3 and not first["disk_hits"]
    assert second["compiled"] == [] and second["disk_hits"] == first["compiled"]
    assert all(ne is None for ne in first["name_expressions"] + second["name_expressions"])
    # the same code both times: the text alone keys the cache
    assert [m[0] for m in first["modules"]] == [m[0] for m in second["modules"]]
    np.testing.assert_array_equal(res0.modes, res1.modes)


def test_module_sources_compile_to_exactly_their_entry_points():
    """NVRTC, given a module's program and no name expressions, emits one
    kernel per instantiation of the module, under its extern "C" name."""
    pytest.importorskip("cuda.bindings.nvrtc",
                        reason="pip install 'cuda-bindings==12.9.*' 'nvidia-cuda-nvrtc-cu12==12.9.86'")
    from gpumeanshift.testing import nvrtc as N

    for key in (("ms_compact", "", False), ("ms_shift_grid", "float", True),
                ("ms_track_windows", "long long", False)):
        names = R.module_names(key)
        assert R.module_source(key) == R.wrapped_source(names)
        infos, log = N.compile_arch(80, names=names)
        entries = set(re.findall(r"Compiling entry function '([^']+)'", log))
        assert entries == {R.c_symbol(n) for n in names}
        assert [k.name for k in infos] == list(names)
        assert all(k.registers > 0 for k in infos)


def test_entry_point_names_are_unique_c_identifiers():
    syms = [R.c_symbol(n) for n in R.kernel_names()]
    assert len(set(syms)) == len(syms)
    assert all(re.fullmatch(r"[A-Za-z_]\w*", s) for s in syms)


def test_wrapper_generator_refuses_what_it_cannot_wrap():
    src = "template <typename T>\n__global__ void __launch_bounds__(128, 1)\nk(const T* T) {}\n"
    with pytest.raises(ValueError, match="parameter named like a template parameter"):
        R.wrapped_source(["k<float>"], src)
    with pytest.raises(ValueError, match="no kernel nope"):
        R.wrapped_source(["nope<float>"])


def test_functions_and_sm_counts_are_per_device(two_gpus):
    cp, emu, log = two_gpus
    be = make_cupy_backend(split=False)
    X = blobs(120, 2, seed=5)
    be.nearest(X, X[:4])
    name = R.kernel_name("nearest_center", "float64", 2)
    assert log["get_function"].count((name, 0)) == 1
    assert be.runtime.multiprocessor_count == 2
    be.nearest(X, X[:4])
    assert log["get_function"].count((name, 0)) == 1  # cached per (name, device)
    with cp.cuda.Device(1):
        assert be.runtime.device == 1 and be.runtime.multiprocessor_count == 7
        be.nearest(X, X[:4])
        be.nearest(X, X[:4])
    assert log["get_function"].count((name, 1)) == 1
    # the module object is shared; it is compiled once on each device
    assert len([m for m in log["modules"] if name in m[2]]) == 1
    assert [dev for _n, dev in log["compiled"] if _n == 8] == [0, 1]
    assert R.cupy_function(name, 1) is R.cupy_function(name, 1)
    with pytest.raises(ValueError, match="not one of runtime.kernel_names"):
        R.cupy_function("nearest_center<float,2>")  # the old spelling


class _OnDevice:
    """A DLPack producer on CUDA device ``dev`` (kDLCUDA = 2)."""

    def __init__(self, a, dev):
        self.a, self.dev = a, dev

    def __dlpack__(self, **kw):
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return (2, self.dev)


def test_cupy_runtime_refuses_an_array_of_another_device(two_gpus):
    cp, emu, log = two_gpus
    be = make_cupy_backend()
    X = blobs(50, 2, seed=6)
    with pytest.raises(ValueError, match="on CUDA device 1, but the current device is 0"):
        be.shift(_OnDevice(X, 1), X[:3], bandwidth=1.0, kernel="flat", max_iter=5, tol=1e-3)
    with pytest.raises(ValueError, match="on CUDA device 1"):
        be.nearest(X, _OnDevice(X[:3], 1))
    assert emu.n_launches == 0 and not log["modules"]
    with cp.cuda.Device(1):  # there it is the current device's array
        lab, _ = be.nearest(_OnDevice(X, 1), X[:3])
    np.testing.assert_array_equal(lab[:3], [0, 1, 2])


def test_emulated_devices_refuse_foreign_arrays_before_any_launch():
    rt = EmulatedRuntime(n_devices=2, multiprocessor_count=(4, 9))
    be = CudaBackend(rt)
    X = blobs(80, 2, seed=7)
    X1 = rt.to_device(X, 1)
    w1 = rt.to_device(np.ones(len(X)), 1)
    for call in (lambda: be.shift(X1, X[:4], bandwidth=1.0, kernel="gaussian", max_iter=5,
                                  tol=1e-3),
                 lambda: be.count_within(X, X[:4], 1.0, weights=w1),
                 lambda: be.kernel_sum(X, rt.to_device(X[:4], 1), bandwidth=1.0,
                                       kernel="flat")):
        with pytest.raises(ValueError, match="input array is on CUDA device 1, but the "
                                             "current device is 0"):
            call()
    assert rt.n_launches == 0
    assert rt.multiprocessor_count == 4
    with rt.use_device(1):
        assert rt.multiprocessor_count == 9
        got = be.count_within(X1, X1[:4], 1.0)
        with pytest.raises(ValueError, match="on CUDA device 0, but the current device is 1"):
            be.count_within(rt.to_device(X, 0), X1[:4], 1.0)
    np.testing.assert_array_equal(got, be.count_within(X, X[:4], 1.0))
    assert {dev for _key, dev in rt.compiled_modules} == {0, 1}


# ------------------------------------------------------------------ out of memory
def test_sort_out_of_memory_inside_a_batch_halves_it():
    """A plain MemoryError from the seeds' cell ordering (CuPy >= 14.1: Thrust's
    workspace) halves the batch; the result is the one-batch result."""
    X = blobs(400, 2, seed=8)
    kw = dict(bandwidth=0.7, kernel="flat", max_iter=100, tol=1e-4, algorithm="grid")
    ref = CudaBackend(EmulatedRuntime()).shift(X, X[::4], **kw)
    rt = EmulatedRuntime()
    be = CudaBackend(rt)
    be.shift(X, X[:2], **kw)  # count the sorts of one call: data, cells, seeds
    calls = []
    orig = rt.argsort

    def failing(a):
        calls.append(len(a))
        if len(calls) == 2:  # the first seed cell ordering, inside the batch
            raise MemoryError("std::bad_alloc: cudaErrorMemoryAllocation: out of memory")
        return orig(a)

    rt.argsort = failing
    res = be.shift(X, X[::4], **kw)
    assert be.last_plan["batch_rows"] < 100  # halved
    np.testing.assert_array_equal(res.modes, ref.modes)
    np.testing.assert_array_equal(res.n_iter, ref.n_iter)


@pytest.mark.parametrize("exc", [MemoryError("std::bad_alloc"),
                                 pytest.param(None, id="pool-oom")])
def test_sort_out_of_memory_outside_a_batch_is_a_clear_memory_error(exc):
    from gpumeanshift.testing import EmulatedOutOfMemoryError

    rt = EmulatedRuntime()
    rt.fail_sorts(exc if exc is not None else EmulatedOutOfMemoryError("pool"))
    X = blobs(60, 2, seed=9)
    with pytest.raises(MemoryError, match="shift: out of device memory in lexsort of 120 keys"):
        CudaBackend(rt).shift(X, X[:3], bandwidth=1.0, kernel="flat", max_iter=5, tol=1e-3)
    assert rt.n_launches == 0


def test_other_sort_errors_are_not_taken_for_out_of_memory():
    rt = EmulatedRuntime()
    rt.fail_sorts(RuntimeError("cudaErrorIllegalAddress: an illegal memory access"))
    X = blobs(60, 2, seed=9)
    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):
        CudaBackend(rt).shift(X, X[:3], bandwidth=1.0, kernel="flat", max_iter=5, tol=1e-3)


def test_cupy_runtime_sorts_go_through_the_runtime(two_gpus):
    cp, emu, log = two_gpus
    calls = []

    def lexsort(keys):
        calls.append("lexsort")
        if len(calls) == 1:
            raise MemoryError("std::bad_alloc")  # what CuPy >= 14.1 raises
        return np.lexsort(keys)

    cp.lexsort = lexsort
    be = make_cupy_backend()
    X = blobs(60, 2, seed=10)
    with pytest.raises(MemoryError, match="out of device memory in lexsort"):
        be.shift(X, X[:3], bandwidth=1.0, kernel="flat", max_iter=5, tol=1e-3)
    res = be.shift(X, X[:3], bandwidth=1.0, kernel="flat", max_iter=5, tol=1e-3)
    assert calls == ["lexsort", "lexsort"] and res.modes.shape == (3, 2)
