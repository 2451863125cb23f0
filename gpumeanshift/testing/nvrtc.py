"""Offline NVRTC compilation of the kernels, and a register/occupancy report.

Used by ``ci/compile_kernels.py``, ``bench/kernel_report.py`` and the tests;
needs no GPU, only the pip packages ``cuda-bindings==12.9.*`` and
``nvidia-cuda-nvrtc-cu12==12.9.86`` (NVRTC 12.9 compiles sm_70 ... sm_120; 13.x
drops sm_70). The NVRTC library is loaded from that wheel explicitly, so a
system CUDA toolkit of another version cannot slip in.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
from dataclasses import dataclass
from typing import Sequence

from ..backends.cuda import runtime as _rt

ARCHS = (70, 75, 80, 86, 89, 90, 100, 120)
NVRTC_PIN = (12, 9)

# Published per-SM limits (CUDA C++ Programming Guide, "Technical
# Specifications per Compute Capability"; shared memory = the largest carveout).
# arch: (max threads/SM, max blocks/SM, shared bytes/SM, reserved shared/block)
SM_LIMITS = {
    70: (2048, 32, 96 * 1024, 0),
    75: (1024, 16, 64 * 1024, 0),
    80: (2048, 32, 164 * 1024, 1024),
    86: (1536, 16, 100 * 1024, 1024),
    89: (1536, 24, 100 * 1024, 1024),
    90: (2048, 32, 228 * 1024, 1024),
    100: (2048, 32, 228 * 1024, 1024),
    120: (1536, 32, 100 * 1024, 1024),
}
REGS_PER_SM = 65536
REG_ALLOC_UNIT = 256      # registers, per warp
SMEM_ALLOC_UNIT = 128     # bytes


def _load_nvrtc():
    """Preload libnvrtc from the nvidia-cuda-nvrtc-cu12 wheel, then import the bindings."""
    try:
        import nvidia.cuda_nvrtc as pkg  # the wheel's namespace package
    except ImportError as exc:
        raise ImportError("pip install 'nvidia-cuda-nvrtc-cu12==12.9.86'") from exc
    libs = []
    for root in pkg.__path__:
        libs += sorted(glob.glob(os.path.join(root, "lib", "libnvrtc.so.12")))
    if not libs:
        raise ImportError(f"libnvrtc.so.12 not found in {list(pkg.__path__)}")
    ctypes.CDLL(libs[0], mode=ctypes.RTLD_GLOBAL)
    from cuda.bindings import nvrtc  # noqa: E402  (after the preload)

    return nvrtc, libs[0]


def _check(nvrtc, res, prog=None):
    err = res[0] if isinstance(res, tuple) else res
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = ""
        if prog is not None:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            buf = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, buf)
            log = buf.decode(errors="replace")
        raise RuntimeError(f"NVRTC error {err}: {log}")
    return res[1:] if isinstance(res, tuple) and len(res) > 2 else (res[1] if isinstance(res, tuple) and len(res) == 2 else None)


def nvrtc_version() -> tuple[int, int]:
    nvrtc, _ = _load_nvrtc()
    err, major, minor = nvrtc.nvrtcVersion()
    return int(major), int(minor)


@dataclass
class KernelInfo:
    name: str          # name expression
    arch: int
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    static_smem: int
    symbol: str = ""   # its extern "C" entry point (runtime.c_symbol)


def compile_arch(arch: int, source: str | None = None,
                 names: Sequence[str] | None = None,
                 options: Sequence[str] | None = None) -> tuple[list[KernelInfo], str]:
    """Compile every name expression for ``sm_<arch>`` to a cubin with
    ``-Xptxas -v``; return per-kernel resource usage and the raw log.

    The program is what CuPy compiles at run time: the kernel source
    (``source``, default the package's) wrapped as ``extern "C"`` entry points
    of ``names`` (:func:`~gpumeanshift.backends.runtime.wrapped_source`), no
    name expressions. ``options`` default to what NVRTC receives from CuPy:
    the runtime's own options plus those CuPy appends."""
    if options is None:
        options = _rt.NVRTC_OPTIONS + _rt.CUPY_APPENDED_OPTIONS
    nvrtc, _ = _load_nvrtc()
    names = list(_rt.kernel_names() if names is None else names)
    program = _rt.wrapped_source(names, source)
    err, prog = nvrtc.nvrtcCreateProgram(program.encode(), b"gpumeanshift.cu", 0, [], [])
    _check(nvrtc, err)
    opts = [o.encode() for o in options] + [f"--gpu-architecture=sm_{arch}".encode(),
                                            b"--ptxas-options=-v"]
    res = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    buf = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, buf)
    log = buf.decode(errors="replace")
    if res[0] != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"sm_{arch}: compilation failed ({res[0]}):\n{log}")
    lowered = {_rt.c_symbol(n): n for n in names}
    err, csize = nvrtc.nvrtcGetCUBINSize(prog)
    _check(nvrtc, err)
    if csize == 0:
        raise RuntimeError(f"sm_{arch}: empty cubin")
    nvrtc.nvrtcDestroyProgram(prog)
    return parse_ptxas_log(log, lowered, arch), log


_PTX_OPS = {"ld.local": r"\bld\.local\b", "st.local": r"\bst\.local\b",
            "ld.global": r"\bld\.global\b", "st.global": r"\bst\.global\b",
            # generic address (local or global, decided at run time)
            "ld.generic": r"\bld\.(?!global|local|shared|param|const)",
            "st.generic": r"\bst\.(?!global|local|shared|param|const)"}


def ptx_memory_ops(arch: int, names: Sequence[str],
                   options: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """Static counts of local- and global-memory loads and stores in the PTX
    of each name expression (``compute_<arch>``, the runtime's options): a
    per-query vector kept in memory instead of registers shows up here as
    ``ld.local`` / ``st.local`` (a local array), as generic-address accesses
    (a pointer to either a local array or global memory) or as extra global
    accesses."""
    if options is None:
        options = _rt.NVRTC_OPTIONS + _rt.CUPY_APPENDED_OPTIONS
    nvrtc, _ = _load_nvrtc()
    program = _rt.wrapped_source(names)
    err, prog = nvrtc.nvrtcCreateProgram(program.encode(), b"gpumeanshift.cu", 0, [], [])
    _check(nvrtc, err)
    opts = [o.encode() for o in options] + [f"--gpu-architecture=compute_{arch}".encode()]
    _check(nvrtc, nvrtc.nvrtcCompileProgram(prog, len(opts), opts), prog)
    lowered = {_rt.c_symbol(n): n for n in names}
    err, size = nvrtc.nvrtcGetPTXSize(prog)
    _check(nvrtc, err)
    buf = b" " * size
    nvrtc.nvrtcGetPTX(prog, buf)
    nvrtc.nvrtcDestroyProgram(prog)
    ptx = buf.decode(errors="replace")
    out = {}
    for part in re.split(r"(?=\.(?:visible|weak) \.entry )", ptx)[1:]:
        symbol = re.match(r"\.\w+ \.entry (\S+)\(", part).group(1)
        if symbol in lowered:
            out[lowered[symbol]] = {k: len(re.findall(rx, part)) for k, rx in _PTX_OPS.items()}
    return out


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\d+)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_log(log: str, lowered: dict[str, str], arch: int) -> list[KernelInfo]:
    infos: dict[str, KernelInfo] = {}
    current = None
    for line in log.splitlines():
        mo = _ENTRY.search(line)
        if mo:
            current = mo.group(1)
            infos[current] = KernelInfo(lowered.get(current, current), arch, -1, 0, 0, 0, 0)
            continue
        if current is None:
            continue
        k = infos[current]
        mo = _PROPS.search(line)
        if mo:
            k.stack, k.spill_stores, k.spill_loads = map(int, mo.groups())
        mo = _USED.search(line)
        if mo:
            k.registers = int(mo.group(1))
            mo2 = _SMEM.search(line)
            k.static_smem = int(mo2.group(1)) if mo2 else 0
    missing = set(lowered) - set(infos)
    if missing:
        raise RuntimeError(f"sm_{arch}: no ptxas info for {sorted(missing)[:3]} ...")
    out = [infos[low] for low in lowered]
    for low, k in zip(lowered, out):
        k.symbol = low
    return out


def occupancy(arch: int, registers: int, block: int, smem_per_block: int) -> float:
    """Theoretical occupancy (resident warps / max warps), computed like
    cuda_occupancy.h from the published per-arch limits."""
    max_threads, max_blocks, smem_sm, reserved = SM_LIMITS[arch]
    warps_per_block = -(-block // 32)
    max_warps = max_threads // 32
    by_threads = max_warps // warps_per_block
    regs_per_warp = -(-max(registers, 1) * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    warps_per_partition = (REGS_PER_SM // 4) // regs_per_warp
    by_regs = (warps_per_partition * 4) // warps_per_block
    smem = -(-(smem_per_block + reserved) // SMEM_ALLOC_UNIT) * SMEM_ALLOC_UNIT
    by_smem = smem_sm // smem if smem else max_blocks
    blocks = min(max_blocks, by_threads, by_regs, by_smem)
    return blocks * warps_per_block / max_warps


def shared_bytes(name: str) -> int:
    """Dynamic shared memory the CUDA backend launches ``name`` with (its
    largest tile: the dimension's full row at the default tile)."""
    from ..backends.cuda.backend import _SHARED_BUDGET

    if name in _rt.COMPACT_KERNELS:
        return _rt.BLOCK * 4  # the block scan
    mo = re.match(r"(\w+)<(\w+)(?:,\s*(-?\d+))?", name)
    extra = 1 if _rt.is_weighted(name) else 0  # weighted: rows [x, w]
    if mo is None or mo.group(1) in ("ms_shift_finalize", "ms_shift_grid", "ms_filter_image",
                                     "ms_track_windows"):
        return 0  # no dynamic shared memory
    itemsize = 4 if mo.group(2) == "float" else 8
    dim = abs(int(mo.group(3))) if mo.group(3) else 0  # bounded (< 0): its largest d
    if dim == 0:
        return _SHARED_BUDGET  # generic path: the tile is sized to this budget
    cols = dim + extra
    tile = max(1, min(_rt.BLOCK, _SHARED_BUDGET // (cols * itemsize)))
    return tile * cols * itemsize
