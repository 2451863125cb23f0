"""Kernel loading, the CuPy seam without a GPU, and the NVRTC compile check."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from gpumeanshift.backends.cuda import runtime as R


def test_source_is_assembled_once_with_headers_inlined():
    src = R.kernel_source()
    assert R.kernel_source() is src  # memoized
    assert '#include "common.cuh"' not in src
    assert src.count("#define MS_MAX_BLOCK 128") == 1
    assert f"#define MS_MAX_BLOCK {R.BLOCK}" in src


def test_every_name_expression_names_a_kernel_in_the_source():
    names = R.kernel_names()
    assert len(names) == len(set(names))
    for base in {n.split("<")[0] for n in names}:
        assert f" {base}(" in R.kernel_source() or f"\n{base}(" in R.kernel_source()
    assert R.kernel_name("ms_shift_fused", "float32", 3, "flat") == "ms_shift_fused<float, 3, 1, false>"
    assert R.kernel_dim(3) == 3 and R.kernel_dim(64) == 0


def test_importing_the_cuda_backend_does_not_import_cupy():
    code = ("import sys, gpumeanshift.backends.cuda.backend, gpumeanshift.testing; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cupy_backend_without_device_is_a_clear_error():
    from gpumeanshift.backends.base import cuda_available
    from gpumeanshift.backends.cuda.backend import make_cupy_backend

    if cuda_available():
        pytest.skip("a CUDA device is present: make_cupy_backend succeeds here")
    with pytest.raises(RuntimeError, match="backend='cupy' needs"):
        make_cupy_backend()


def test_nvrtc_compiles_every_instantiation_for_sm_80():
    pytest.importorskip("cuda.bindings.nvrtc",
                        reason="pip install 'cuda-bindings==12.9.*' 'nvidia-cuda-nvrtc-cu12==12.9.86'")
    from gpumeanshift.testing import nvrtc as N

    assert N.nvrtc_version() == N.NVRTC_PIN
    infos, log = N.compile_arch(80)
    assert [k.name for k in infos] == list(R.kernel_names())
    assert all(k.registers > 0 for k in infos)
    spills = [k.name for k in infos if k.spill_stores or k.spill_loads]
    assert not spills, spills
    # the emulator checks dynamic shared memory only: no kernel may use static
    assert all(k.static_smem == 0 for k in infos)
    # every instantiation is an extern "C" kernel under its plain name, which
    # CupyRuntime looks up (no name expressions, no demangling)
    assert [k.symbol for k in infos] == [R.c_symbol(n) for n in R.kernel_names()]
    assert set(re.findall(r"Compiling entry function '([^']+)'", log)) == {k.symbol for k in infos}


def test_cupy_without_a_device_is_a_runtime_error(monkeypatch):
    """CuPy installed but no device (the driver answers 0 or raises)."""
    import types

    from gpumeanshift.backends.cuda.runtime import CupyRuntime

    def fake_cupy(count):
        def get_count():
            if isinstance(count, Exception):
                raise count
            return count
        cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
        return types.SimpleNamespace(cuda=cuda)

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(0))
    with pytest.raises(RuntimeError, match="needs a CUDA device; none is present"):
        CupyRuntime()
    monkeypatch.setitem(sys.modules, "cupy",
                        fake_cupy(OSError("CUDA driver version is insufficient")))
    with pytest.raises(RuntimeError, match="CUDA reports none: CUDA driver version"):
        CupyRuntime()


def test_ptxas_log_parsing_and_occupancy_arithmetic():
    """The report's inputs: a ptxas -v log with a spill, and occupancy from the
    published limits (128-thread blocks)."""
    from gpumeanshift.testing import nvrtc as N

    log = """ptxas info    : Compiling entry function '_Z1kv' for 'sm_80'
ptxas info    : Function properties for _Z1kv
ptxas         .     16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 4096 bytes smem, 400 bytes cmem[0]
"""
    (k,) = N.parse_ptxas_log(log, {"_Z1kv": "k<float>"}, 80)
    assert (k.name, k.registers, k.spill_stores, k.spill_loads, k.stack, k.static_smem) == (
        "k<float>", 64, 8, 12, 16, 4096)
    assert N.occupancy(80, 64, 128, 0) == 0.5     # 65536 / (64 * 128) = 8 blocks of 4 warps
    assert N.occupancy(80, 32, 128, 0) == 1.0     # thread-limited: 16 blocks = 64 warps
    assert N.occupancy(80, 72, 128, 0) == 0.4375  # 72 regs: 7 blocks
    assert N.occupancy(75, 32, 128, 0) == 1.0     # Turing: 32 warps per SM
    assert N.occupancy(90, 32, 128, 40 * 1024) == 5 * 4 / 64  # 228 KiB / 41 KiB: 5 blocks
