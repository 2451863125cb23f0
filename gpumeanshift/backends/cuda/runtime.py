"""The kernel loader and the runtimes the CUDA backend launches kernels on.

A *runtime* is the seam between the CUDA backend's host logic and a device:
an array module (``xp``), memory helpers, and ``launch(name, grid, block,
args, shared_mem)``. Two implementations exist:

* :class:`CupyRuntime` (here) -- CuPy arrays and ``cupy.RawModule`` kernels
  compiled by NVRTC at run time (and cached by CuPy itself);
* :class:`gpumeanshift.testing.EmulatedRuntime` -- NumPy arrays and the same
  kernel source compiled by g++ with OpenMP, for machines without a GPU.

The kernel source (``kernels/*.cu``) is read once per process; every template
instantiation the backend may launch is listed by :func:`kernel_names`, the
single list used by CuPy, the emulator and the CI compile matrix. Each is
compiled as a plain ``extern "C"`` entry point (:func:`wrapped_source`,
:func:`c_symbol`; no ``name_expressions``, so CuPy's disk cache works on every
version). CuPy compiles them as one small module per kernel family, dtype and
weighted flag (:func:`module_key`), each at its first launch on a device; the
loaded functions are kept per (name, device). CuPy is imported only inside
functions.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

# Kernel translation units, in include order. common.cuh is pulled in by them.
KERNEL_FILES = ("meanshift.cu", "neighbors.cu", "grid.cu", "density.cu", "segment.cu",
                "track.cu")
# Compile-time dimensions; 0 is the generic run-time-d path.
DIMS = (1, 2, 3, 4, 5, 8, 16)
# Bounds of the shift kernels' bounded path (template D = -bound): a d not in
# DIMS and <= a bound runs with the seed and its sums in registers of that
# extent (kernels/common.cuh, ms_for_dims); above the largest, the generic path.
BOUNDED_DIMS = (8, 16, 32)
# Compile-time dimensions of the weighted density / neighbour kernels
# (count_within, kernel_sum, log_kernel_density, kth_neighbor): fewer than
# DIMS to keep the compile matrix in check (they are not the hot loop);
# other d take the generic path. The weighted shift kernels have all DIMS.
WEIGHTED_QUERY_DIMS = (1, 2, 3)
# Dimensions of the cell-list kernel (ms_shift_grid); no generic path.
GRID_DIMS = (1, 2, 3)
# Channel counts of the image filter kernel (ms_filter_image).
FILTER_CHANNELS = (1, 2, 3, 4)
# (pixel type, accumulator type) of the window tracking kernel (ms_track_windows).
TRACK_TYPES = (("int", "long long"), ("long long", "long long"), ("double", "double"))
# Block size every kernel is written for (its __launch_bounds__).
BLOCK = 128
# Active-list slots per block of the compaction kernels (MS_COMPACT_SPAN).
COMPACT_SPAN = BLOCK * 8
# The compaction's three kernels, one module (meanshift.cu).
COMPACT_KERNELS = ("ms_compact_count", "ms_compact_scan", "ms_compact")
# NVRTC options CupyRuntime passes to RawModule.
NVRTC_OPTIONS = ("--std=c++17",)
# Options CuPy appends itself to every RawModule compile (cupy/cuda/compiler.py:
# "-ftz=true" always, "--device-as-default-execution-space" with NVRTC >= 12).
# The offline compile matrix adds them so it builds what the GPU will run.
CUPY_APPENDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
# Kernels with the WEIGHTED template flag (last parameter, default false).
WEIGHTED_FAMILIES = frozenset({"ms_shift_fused", "ms_shift_partial", "ms_shift_finalize",
                               "ms_shift_grid", "kernel_sum", "log_kernel_density",
                               "count_within", "kth_neighbor"})
# Between template arguments of a name expression: what the demangler
# (cu++filt, c++filt) prints, "ms_shift_fused<float, 3, 0>".
NAME_SEPARATOR = ", "
# Seed state codes, as in kernels/common.cuh.
ACTIVE, CONVERGED, MAXITER, ORPHAN = 0, 1, 2, 3
UNPROVEN = 4  # the proven Gaussian grid could not prove a step (grid.cu)
KERNEL_IDS = {"gaussian": 0, "flat": 1, "gaussian_grid": 2}

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def ctype(dtype: Any) -> str:
    """C type name of a floating dtype (``float32 -> "float"``)."""
    try:
        return _CTYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"CUDA kernels support float32 and float64, not {dtype}") from None


def kernel_name(base: str, dtype: Any = None, dim: int | None = None,
                kernel: str | None = None, weighted: bool = False) -> str:
    """The name expression of one instantiation, e.g. ``ms_shift_fused<float, 3, 0>``.

    ``weighted=True`` names the instantiation with sample weights (the
    kernels' last template parameter, ``WEIGHTED``, of the
    :data:`WEIGHTED_FAMILIES`), e.g. ``ms_shift_fused<float, 3, 0, true>``.

    Spelled as the demangler prints the kernel's symbol: ``", "`` between
    template arguments (:data:`NAME_SEPARATOR`) and the defaulted ``WEIGHTED``
    flag written out (``false``); the name is also the call its ``extern "C"``
    wrapper makes (:func:`wrapped_source`).

    >>> kernel_name("ms_shift_fused", "float32", 3, "flat")
    'ms_shift_fused<float, 3, 1, false>'
    >>> kernel_name("nearest_center", "float64", 2)
    'nearest_center<double, 2>'
    """
    params = []
    if dtype is not None:
        params.append(ctype(dtype))
    if dim is not None:
        params.append(str(dim))
    if kernel is not None:
        params.append(str(KERNEL_IDS[kernel]))
    if base in WEIGHTED_FAMILIES:
        params.append("true" if weighted else "false")
    elif weighted:
        raise ValueError(f"{base} has no sample-weighted instantiation")
    return f"{base}<{NAME_SEPARATOR.join(params)}>" if params else base


def is_weighted(name: str) -> bool:
    """Whether a name expression is a sample-weighted instantiation."""
    return name.endswith(f"{NAME_SEPARATOR}true>")


def kernel_family(name: str) -> str:
    """The kernel a name expression instantiates (``ms_shift_fused<...>`` ->
    ``ms_shift_fused``)."""
    return name.split("<", 1)[0]


def module_key(name: str) -> tuple[str, str, bool]:
    """The module an instantiation is compiled in: ``(family, first template
    argument, weighted)``, e.g. ``("ms_shift_fused", "float", False)``.

    One module per kernel family, dtype (the first template argument; the
    pixel type of ``ms_track_windows``) and weighted flag: a call compiles
    only the modules of the kernels it launches, at their first launch.
    """
    family, _, rest = name.partition("<")
    first = rest.split(NAME_SEPARATOR, 1)[0].rstrip(">") if rest else ""
    if family in COMPACT_KERNELS:  # launched together: one module
        family = COMPACT_KERNELS[-1]
    return family, first, is_weighted(name)


@functools.lru_cache(maxsize=None)
def module_names(key: tuple[str, str, bool]) -> tuple[str, ...]:
    """The name expressions of one module (:func:`module_key`), in
    :func:`kernel_names` order."""
    return tuple(n for n in kernel_names() if module_key(n) == key)


@functools.lru_cache(maxsize=None)
def module_keys() -> tuple[tuple[str, str, bool], ...]:
    """Every module, in :func:`kernel_names` order."""
    return tuple(dict.fromkeys(module_key(n) for n in kernel_names()))


def kernel_dim(d: int, query: bool = False, weighted: bool = False) -> int:
    """Template dimension used for data of ``d`` columns (0: generic path).

    ``query=True, weighted=True``: that of a weighted density / neighbour
    kernel (count_within, kernel_sum, log_kernel_density, kth_neighbor),
    compiled for fewer dimensions (:data:`WEIGHTED_QUERY_DIMS`)."""
    dims = WEIGHTED_QUERY_DIMS if (query and weighted) else DIMS
    return d if d in dims else 0


def shift_dim(d: int) -> int:
    """Template dimension of the shift kernels (``ms_shift_fused``,
    ``ms_shift_partial``) for data of ``d`` columns: ``d`` in :data:`DIMS`,
    else ``-bound`` for the smallest of :data:`BOUNDED_DIMS` >= ``d`` (the
    bounded path), else 0 (the generic path).

    >>> shift_dim(3), shift_dim(6), shift_dim(20), shift_dim(40)
    (3, -8, -32, 0)
    """
    if d in DIMS:
        return d
    return next((-b for b in BOUNDED_DIMS if d <= b), 0)


@functools.lru_cache(maxsize=None)
def kernel_names() -> tuple[str, ...]:
    """Every instantiation the CUDA backend may launch:
    the unweighted ones, then those with sample weights (:func:`is_weighted`;
    :data:`WEIGHTED_QUERY_DIMS` for the density and neighbour kernels). The
    one list of the CI compile matrix, the emulator and CuPy, which compiles
    it as many small modules (:func:`module_key`), each at its first use."""
    names = []
    for W in (False, True):
        for T in ("float32", "float64"):
            for D in DIMS + tuple(-b for b in BOUNDED_DIMS) + (0,):
                for K in ("gaussian", "flat", "gaussian_grid"):
                    if W and K == "gaussian_grid" and D in GRID_DIMS:
                        continue  # "grid" with d <= 3 always takes the cell list
                    names.append(kernel_name("ms_shift_fused", T, D, K, W))
                    names.append(kernel_name("ms_shift_partial", T, D, K, W))
            for D in (DIMS if not W else WEIGHTED_QUERY_DIMS) + (0,):
                for K in ("gaussian", "flat"):
                    names.append(kernel_name("kernel_sum", T, D, K, W))
                    names.append(kernel_name("log_kernel_density", T, D, K, W))
                if not W:
                    names.append(kernel_name("nearest_center", T, D))
                names.append(kernel_name("count_within", T, D, None, W))
                names.append(kernel_name("kth_neighbor", T, D, None, W))
            names.append(kernel_name("ms_shift_finalize", T, None, None, W))
            for D in GRID_DIMS:
                for K in ("flat", "gaussian_grid", "gaussian"):  # gaussian: the proven grid
                    names.append(kernel_name("ms_shift_grid", T, D, K, W))
            if not W:
                for CH in FILTER_CHANNELS:
                    names.append(kernel_name("ms_filter_image", T, CH))
    names += COMPACT_KERNELS
    names.append("ms_segment_sum")
    names += [f"ms_track_windows<{P}{NAME_SEPARATOR}{A}>" for P, A in TRACK_TYPES]
    return tuple(names)


def kernel_dir() -> Path:
    """Directory holding the ``.cu`` files.

    ``$GPUMEANSHIFT_KERNEL_DIR`` wins; then ``gpumeanshift/kernels`` (where a
    wheel ships them); then ``kernels/`` at the repository root.
    """
    env = os.environ.get("GPUMEANSHIFT_KERNEL_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    for cand in (here / "kernels", here.parent / "kernels"):
        if (cand / KERNEL_FILES[0]).is_file():
            return cand
    raise FileNotFoundError(
        f"gpumeanshift kernel sources not found (looked in {here / 'kernels'} and "
        f"{here.parent / 'kernels'}); set GPUMEANSHIFT_KERNEL_DIR"
    )


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.M)


def assemble_source(directory: Path | str | None = None) -> str:
    """One self-contained translation unit from the kernel files.

    Local ``#include "x"`` lines are inlined (once each) so that the text alone
    keys CuPy's compile cache: editing a header changes the key.
    """
    directory = Path(directory) if directory is not None else kernel_dir()
    seen: set[str] = set()

    def expand(name: str) -> str:
        if name in seen:
            return ""
        seen.add(name)
        text = (directory / name).read_text()
        return _INCLUDE.sub(lambda mo: expand(mo.group(1)), text)

    return "\n".join(expand(f) for f in KERNEL_FILES)


@functools.lru_cache(maxsize=None)
def kernel_source() -> str:
    """The assembled kernel source, read once per process."""
    return assemble_source()


# A kernel definition in the assembled source: template header (optional),
# "__global__ void", "__launch_bounds__(...)" (optional), name, parameters,
# opening brace.
_KERNEL_DEF = re.compile(
    r"(?:template\s*<(?P<tparams>[^<>{;]*)>\s*)?"
    r"__global__\s+void\s+(?:__launch_bounds__\((?P<bounds>(?:[^()]|\([^()]*\))*)\)\s*)?"
    r"(?P<name>\w+)\s*\((?P<params>[^{;]*?)\)\s*\{")


def _split_top(text: str) -> list[str]:
    """Comma-separated items of ``text`` at bracket depth 0."""
    items, depth, cur = [], 0, ""
    for c in text:
        if c in "<([":
            depth += 1
        elif c in ">)]":
            depth -= 1
        if c == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        items.append(cur.strip())
    return items


def c_symbol(name: str) -> str:
    """The ``extern "C"`` entry point of one instantiation (no C++ mangling).

    >>> c_symbol("ms_shift_fused<float, -16, 0, false>")
    'gms_ms_shift_fused__float_m16_0_false'
    >>> c_symbol("ms_track_windows<long long, long long>"), c_symbol("ms_compact")
    ('gms_ms_track_windows__longlong_longlong', 'gms_ms_compact')
    """
    family, _, rest = name.partition("<")
    if not rest:
        return f"gms_{family}"
    args = [a.replace(" ", "").replace("-", "m") for a in rest[:-1].split(NAME_SEPARATOR)]
    return f"gms_{family}__" + "_".join(args)


@functools.lru_cache(maxsize=8)
def _kernel_defs(source: str) -> tuple[str, dict[str, tuple[list[tuple[str, str | None]], str, list[str]]]]:
    """The source with every kernel turned into a ``__device__`` function, and
    per kernel: its template parameters (name, default), its launch bounds
    and its parameter declarations."""
    defs = {}

    def device(mo):
        tparams = []
        for item in _split_top(mo.group("tparams") or ""):
            decl, _, default = item.partition("=")
            tparams.append((decl.split()[-1], default.strip() or None))
        params = _split_top(mo.group("params"))
        clash = {p.split()[-1] for p in params} & {t for t, _ in tparams}
        if clash:
            raise ValueError(f"kernel {mo.group('name')}: parameter named like a template "
                             f"parameter ({sorted(clash)}); the wrapper generator needs them apart")
        defs[mo.group("name")] = (tparams, mo.group("bounds"), params)
        head = f"template <{mo.group('tparams')}>\n" if mo.group("tparams") is not None else ""
        return f"{head}__device__ __forceinline__ void {mo.group('name')}({mo.group('params')}) {{"

    return _KERNEL_DEF.sub(device, source), defs


def _wrapper(name: str, defs) -> str:
    family, _, rest = name.partition("<")
    if family not in defs:
        raise ValueError(f"{name!r}: no kernel {family} in the source")
    tparams, bounds, params = defs[family]
    args = rest[:-1].split(NAME_SEPARATOR) if rest else []
    if len(args) > len(tparams) or any(d is None for _, d in tparams[len(args):]):
        raise ValueError(f"{name!r}: {len(args)} template arguments for {len(tparams)} parameters")
    binding = {t: (a if i < len(args) else d) for i, ((t, d), a)
               in enumerate(zip(tparams, args + [None] * len(tparams)))}

    def bind(text):
        for t, a in binding.items():
            text = re.sub(rf"\b{t}\b", f"({a})" if a.startswith("-") else a, text)
        return text

    call = f"{family}<{NAME_SEPARATOR.join(args)}>" if args else family
    names = ", ".join(p.split()[-1] for p in params)
    launch_bounds = f"__launch_bounds__({bind(bounds)})" if bounds is not None else ""
    return (f'extern "C" __global__ void {launch_bounds}\n'
            f"{c_symbol(name)}({bind(', '.join(params))}) {{ {call}({names}); }}")


def wrapped_source(names: Sequence[str], source: str | None = None) -> str:
    """The program that defines the instantiations ``names`` as plain
    ``extern "C"`` kernels (:func:`c_symbol`), what CuPy, the CI compile
    matrix and the emulator compile.

    The kernels of ``source`` (default: :func:`kernel_source`) become
    ``__device__ __forceinline__`` functions; each name gets a ``__global__``
    wrapper with the kernel's launch bounds and parameters (template
    parameters bound) that calls it. No name expressions: CuPy keys its disk
    cache on the text and options alone, and every version it supports reads
    that cache back (13.x and 14.0 skip it whenever ``name_expressions`` is
    given; 14.1 reuses such a module only where the driver can enumerate its
    functions)."""
    body, defs = _kernel_defs(kernel_source() if source is None else source)
    wrappers = [_wrapper(n, defs) for n in names]
    return "\n".join([body, "// ---- extern \"C\" entry points ----", *wrappers]) + "\n"


@functools.lru_cache(maxsize=None)
def module_source(key: tuple[str, str, bool]) -> str:
    """The program of one :func:`module_key`: :func:`wrapped_source` of its names."""
    return wrapped_source(module_names(key))


class Runtime(Protocol):
    """What the CUDA backend needs from a device."""

    xp: Any                         #: array module (cupy or numpy)
    multiprocessor_count: int       #: SMs, to size grids
    oom_errors: tuple[type[BaseException], ...]  #: what allocation failure raises

    def launch(self, name: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence[Any], shared_mem: int = 0) -> None:
        """Launch the instantiation ``name`` (one of :func:`kernel_names`)."""

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Device array viewing/holding ``a`` (host input is uploaded)."""

    def to_host(self, a: Any) -> np.ndarray:
        """Copy a device array to a NumPy array (a device-to-host transfer)."""

    def empty(self, shape: Any, dtype: Any) -> Any:
        """Allocate a device array (may raise one of ``oom_errors``)."""

    def zeros(self, shape: Any, dtype: Any) -> Any:
        """Allocate a zero-filled device array."""

    def free_memory(self) -> int:
        """Bytes that can still be allocated."""

    def release_memory(self) -> None:
        """Return cached blocks to the device after an out-of-memory error."""

    def activate(self) -> Any:
        """Context manager making the runtime's stream current (array-module
        operations of the backend then run on it too)."""

    def synchronize(self) -> None:
        """Wait until the work queued on the runtime's stream is done."""


def _is_cupy_array(a: Any) -> bool:
    import sys

    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(a, cp.ndarray)


class CupyRuntime:
    """Kernels on a CUDA device through CuPy.

    Parameters
    ----------
    stream : cupy.cuda.Stream, int or None
        Stream to run on. None uses the caller's current stream (read at each
        call, so ``with stream:`` around a fit works); an ``int`` is taken as a
        raw ``cudaStream_t`` handle (e.g. ``torch.cuda.current_stream().cuda_stream``).

    Raises
    ------
    RuntimeError
        When CuPy is not installed or no CUDA device is visible.
    """

    def __init__(self, stream: Any = None):
        try:
            import cupy
        except Exception as exc:  # ImportError or a broken install
            raise RuntimeError(
                "backend='cupy' needs CuPy (pip install cupy-cuda12x); "
                f"importing it failed: {exc}"
            ) from exc
        try:
            n_dev = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver: CUDARuntimeError
            raise RuntimeError(
                f"backend='cupy' needs a CUDA device, but CUDA reports none: {exc}"
            ) from exc
        if n_dev < 1:
            raise RuntimeError("backend='cupy' needs a CUDA device; none is present")
        self._cp = cupy
        self.xp = cupy
        if isinstance(stream, int):
            stream = cupy.cuda.ExternalStream(stream)
        self._stream = stream
        # Allocation failure, as CuPy raises it: OutOfMemoryError (a
        # MemoryError) from its memory pool, and -- from CuPy 14.1 on -- a
        # plain MemoryError out of the Thrust sorts (lexsort, argsort) when
        # their workspace cannot be allocated (std::bad_alloc through the
        # wrapper's ``except +``; see docs/gpu.md, "Out of memory").
        self.oom_errors = (cupy.cuda.memory.OutOfMemoryError, MemoryError)

    @property
    def device(self) -> int:
        """The current CUDA device (the one a call runs on), read at each call."""
        return int(self._cp.cuda.runtime.getDevice())

    @property
    def multiprocessor_count(self) -> int:
        """SMs of the current device (read once per device)."""
        return _multiprocessor_count(self._cp, self.device)

    def __reduce__(self):
        # A runtime pickles as "the current device's default stream" and is
        # rebuilt on loading (which then needs CuPy and a device). A stream
        # belongs to one process: a runtime bound to one does not pickle.
        if self._stream is not None:
            raise TypeError(
                "a CupyRuntime bound to a stream cannot be pickled (streams belong to "
                "one process); pickle an estimator with backend='cupy' instead")
        return (type(self), ())

    # -- streams -----------------------------------------------------------
    def _stream_ctx(self):
        import contextlib

        return self._stream if self._stream is not None else contextlib.nullcontext()

    def activate(self):
        """``with runtime.activate():`` -- the stream passed in, else the
        caller's current stream (nothing to switch)."""
        return self._stream_ctx()

    def synchronize(self):
        """Wait for the stream passed in, else for the caller's current stream."""
        stream = self._stream if self._stream is not None else self._cp.cuda.get_current_stream()
        stream.synchronize()

    # -- kernels -----------------------------------------------------------
    def launch(self, name, grid, block, args, shared_mem=0):
        fn = cupy_function(name, self.device)
        with self._stream_ctx():
            fn(tuple(grid), tuple(block), tuple(args), shared_mem=int(shared_mem))

    # -- memory ------------------------------------------------------------
    def asarray(self, a, dtype=None):
        """Device array for ``a``, without a copy when it is already on the device.

        CuPy arrays and ``__cuda_array_interface__`` objects (Numba, PyTorch
        CUDA tensors) are viewed in place; other DLPack producers on a CUDA
        device are imported with ``cupy.from_dlpack`` (zero copy); host data
        (NumPy, lists, CPU DLPack tensors) is uploaded on the runtime's stream.
        A copy is made only to change dtype or to make the array C-contiguous.

        Raises ValueError for an array on a CUDA device other than the current
        one (:func:`array_device`): the call would launch on the current
        device with a pointer into another's memory.
        """
        cp = self._cp
        check_device(array_device(a), self.device)
        with self._stream_ctx():
            if not (_is_cupy_array(a) or isinstance(a, np.ndarray)
                    or hasattr(a, "__cuda_array_interface__")) and hasattr(a, "__dlpack__"):
                dev = getattr(a, "__dlpack_device__", lambda: (2, 0))()
                a = np.from_dlpack(a) if int(dev[0]) == 1 else cp.from_dlpack(a)  # 1: kDLCPU
            out = cp.asarray(a, dtype=dtype)
            return cp.ascontiguousarray(out)

    def to_host(self, a):
        with self._stream_ctx():
            return self._cp.asnumpy(a)

    def empty(self, shape, dtype):
        with self._stream_ctx():
            return self._cp.empty(shape, dtype)

    def zeros(self, shape, dtype):
        with self._stream_ctx():
            return self._cp.zeros(shape, dtype)

    def lexsort(self, keys):
        """``cupy.lexsort`` (Thrust)."""
        with self._stream_ctx():
            return self._cp.lexsort(keys)

    def argsort(self, a):
        """Stable ``cupy.argsort`` (Thrust)."""
        with self._stream_ctx():
            return self._cp.argsort(a, kind="stable")

    def free_memory(self):
        cp = self._cp
        free, _total = cp.cuda.runtime.memGetInfo()
        return int(free + cp.get_default_memory_pool().free_bytes())

    def release_memory(self):
        self._cp.get_default_memory_pool().free_all_blocks()


def array_device(a: Any) -> int | None:
    """The CUDA device holding ``a``'s memory, or None (host memory, or not
    known): CuPy arrays (``a.device.id``), DLPack producers on a CUDA device
    (``__dlpack_device__() == (kDLCUDA, id)``, e.g. PyTorch CUDA tensors) and
    ``__cuda_array_interface__`` objects (the pointer's device, asked of the
    driver)."""
    if isinstance(a, np.ndarray):
        return getattr(a, "emulated_device", None)  # EmulatedRuntime's model
    if _is_cupy_array(a):
        return int(a.device.id)
    dl = getattr(a, "__dlpack_device__", None)
    if dl is not None:
        try:
            kind, dev = dl()
        except Exception:  # not a DLPack producer after all
            kind, dev = None, None
        if kind is not None:
            return int(dev) if int(kind) == 2 else None  # kDLCUDA
    cai = getattr(a, "__cuda_array_interface__", None)
    if cai is not None:
        import sys

        cp = sys.modules.get("cupy")
        ptr = cai.get("data", (0,))[0]
        if cp is not None and ptr:
            try:
                attrs = cp.cuda.runtime.pointerGetAttributes(ptr)
            except Exception:
                return None
            if int(getattr(attrs, "type", 0)) == 2:  # cudaMemoryTypeDevice (not managed)
                return int(attrs.device)
    return None


def check_device(held_on: int | None, current: int) -> None:
    """ValueError when an input lives on a CUDA device other than the current
    one (kernels launch on the current device, so they would read another
    device's pointer)."""
    if held_on is not None and int(held_on) != int(current):
        raise ValueError(
            f"input array is on CUDA device {held_on}, but the current device is {current}: "
            f"call under `with cupy.cuda.Device({held_on}):` or copy the array to device "
            f"{current} first")


_SM_COUNTS: dict[int, int] = {}


def _multiprocessor_count(cupy: Any, device: int) -> int:
    count = _SM_COUNTS.get(device)
    if count is None:
        count = int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])
        _SM_COUNTS[device] = count
    return count


@functools.lru_cache(maxsize=None)
def _cupy_module(key: tuple[str, str, bool]):
    """The RawModule of one :func:`module_key`: one kernel family, one dtype,
    weighted or not. Constructing it compiles nothing; CuPy compiles it on
    each device at the first ``get_function`` there, and only then."""
    import cupy

    # Plain extern "C" names, no name_expressions: CuPy reads its disk cache
    # back on every version (see wrapped_source).
    return cupy.RawModule(code=module_source(key), options=NVRTC_OPTIONS)


# Loaded kernels by (name expression, device): a launch costs a dict lookup,
# not a RawModule.get_function (a cuModuleGetFunction and a new object).
_FUNCTIONS: dict[tuple[str, int], Any] = {}


def cupy_function(name: str, device: int | None = None) -> Any:
    """The ``cupy.RawKernel``-like function of ``name`` on ``device`` (default:
    the current one), its module compiled there at the first request."""
    import cupy

    if device is None:
        device = int(cupy.cuda.runtime.getDevice())
    fn = _FUNCTIONS.get((name, device))
    if fn is None:
        key = module_key(name)
        if name not in module_names(key):
            raise ValueError(f"{name!r} is not one of runtime.kernel_names()")
        with cupy.cuda.Device(device):
            fn = _cupy_module(key).get_function(c_symbol(name))
        _FUNCTIONS[(name, device)] = fn
    return fn


def clear_cupy_caches() -> None:
    """Forget the modules, loaded functions and SM counts (tests; CuPy's own
    caches, in memory and on disk, are left alone)."""
    _cupy_module.cache_clear()
    module_source.cache_clear()
    _FUNCTIONS.clear()
    _SM_COUNTS.clear()
