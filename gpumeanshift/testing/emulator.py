"""EmulatedRuntime: the CUDA backend's kernels executed on the CPU.

The same ``kernels/*.cu`` text the GPU runs is compiled by g++ with OpenMP
behind a small CUDA-on-CPU header (see :mod:`._cuda_emu`) and called through
ctypes. Each launch is checked the way CuPy/CUDA would refuse it (unknown
name expression, argument count and types against the kernel's real C++
signature, block and grid limits, dynamic shared memory above 48 KiB) and
counted, as are device-to-host transfers, so tests can bound round trips.

Requires g++ (OpenMP) at run time; nothing else beyond NumPy. The build is
cached on disk under a key made from the source, the flags and the compiler,
so a test session compiles once.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backends.cuda import runtime as _rt
from ._cuda_emu import HEADER

# Passive waiting matters: 128 spinning OpenMP threads on 2 cores run 4-6x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)
MAX_SHARED_NO_OPT_IN = 48 * 1024
INT32_MAX = 2**31 - 1
BLOCK_ORDERS = ("shuffled", "ascending", "descending")

_BASE_FLAGS = ("-std=c++17", "-fopenmp", "-fPIC", "-shared", "-Wno-unknown-pragmas")
_OPT_FLAGS = ("-O2",)
# Floating point as NVRTC builds it: a * b + c contracted into an FMA (NVRTC's
# default --fmad=true), with hardware FMA where the CPU has it. "ieee" builds
# without contraction (and launches without flush to zero), for comparison.
_FP_FLAGS = {"nvrtc": ("-ffp-contract=fast",), "ieee": ("-ffp-contract=off",)}
FP_MODES = tuple(_FP_FLAGS)


def _cpu_has_fma() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "fma" in line.split()
    except OSError:
        pass
    return False
_SANITIZE_FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer",
                   "-fsanitize=address,undefined", "-fno-sanitize-recover=all")

_SCALARS = {
    "i4": (np.int32, ctypes.c_int32),
    "u4": (np.uint32, ctypes.c_uint32),
    "i8": (np.int64, ctypes.c_int64),
    "f4": (np.float32, ctypes.c_float),
    "f8": (np.float64, ctypes.c_double),
}


class EmulatedOutOfMemoryError(MemoryError):
    """Raised by :meth:`EmulatedRuntime.empty` above the configured limit."""


def _env_strict() -> bool:
    return os.environ.get("GPUMEANSHIFT_EMU_STRICT", "") not in ("0", "false", "no", "off")


# Inside a NumPy function dispatched on a device array the implementation's
# own temporaries are host arrays here but device arrays under CuPy (whose
# implementation converts its arguments itself): only the entry is checked.
_DISPATCH = threading.local()


def _host_array(x) -> bool:
    """A host ndarray CuPy refuses next to a device array: 1-D or more
    (0-d arrays and NumPy scalars pass, as CuPy takes scalars)."""
    return isinstance(x, np.ndarray) and not isinstance(x, EmulatedDeviceArray) and x.ndim >= 1


def _mixing_error(op: str, host: np.ndarray) -> TypeError:
    return TypeError(
        f"Unsupported type <class 'numpy.ndarray'>: {op} got a host numpy.ndarray "
        f"(shape {host.shape}) mixed with a device array; CuPy refuses implicit "
        "host/device conversion. Upload it (runtime.asarray / xp.asarray) or download "
        "the device array (.get()) first. (Emulated runtime, strict_arrays=True; "
        "GPUMEANSHIFT_EMU_STRICT=0 turns the check off.)")


def _operands(values, depth: int = 0):
    """Arrays among a NumPy function's arguments, and in sequences of them up
    to two levels deep (``np.concatenate([a, b])``, ``np.lexsort((k1, k2))``)."""
    for v in values:
        if isinstance(v, np.ndarray):
            yield v
        elif isinstance(v, (list, tuple)) and depth < 2:
            yield from _operands(v, depth + 1)


def _check_mixing(op: str, arrays) -> None:
    if getattr(_DISPATCH, "depth", 0):
        return
    arrays = list(arrays)
    devices = [a for a in arrays if isinstance(a, EmulatedDeviceArray)]
    if not devices or not any(d._strict for d in devices):
        return
    for a in arrays:
        if _host_array(a):
            raise _mixing_error(op, a)


def _advanced_key(key) -> bool:
    """Whether CuPy's indexing treats ``key`` as advanced (an integer or
    boolean array index, which CuPy uploads itself when it is a host array or
    a list): every index item but None, Ellipsis, slices and non-boolean
    scalars (``cupy._core._routines_indexing._prepare_slice_list``)."""
    for s in key if isinstance(key, tuple) else (key,):
        if s is None or s is Ellipsis or isinstance(s, slice):
            continue
        if np.isscalar(s) and not isinstance(s, (bool, np.bool_)):
            continue
        return True
    return False


class EmulatedDeviceArray(np.ndarray):
    """A NumPy array tagged as living on one emulated CUDA device
    (:meth:`EmulatedRuntime.to_device`); ``emulated_device`` is its id.

    The runtime's own arrays (``empty``, ``zeros``, ``asarray``) are of this
    type too; :meth:`get` is ``cupy.ndarray.get``, a download counted by the
    runtime that made the array.

    With the runtime's ``strict_arrays`` (the default) it refuses what CuPy
    refuses: a ufunc or NumPy function given a device array and a host
    ndarray of one dimension or more is a TypeError (``dev + host``,
    ``np.where(dev_mask, host, 0)``, ``np.bincount(host, weights=dev)``), and
    so is assigning a host array through a basic index (``dev[:] = host``;
    CuPy's ``fill`` refuses it, a ValueError there). Host index arrays
    (``dev[host_idx]``) and host values through an advanced index
    (``dev[host_idx] = host``) pass: CuPy uploads them."""

    emulated_device: int = 0
    _emulated_runtime: Any = None

    def __array_finalize__(self, obj):
        self.emulated_device = getattr(obj, "emulated_device", 0)
        self._emulated_runtime = getattr(obj, "_emulated_runtime", None)

    @property
    def _strict(self) -> bool:
        rt = self._emulated_runtime
        return rt.strict_arrays if rt is not None else _env_strict()

    def _adopt(self, r):
        """A result of an operation on this array, as a device array like it."""
        if isinstance(r, (np.ndarray, np.generic)) and not isinstance(r, EmulatedDeviceArray):
            r = np.asarray(r).view(EmulatedDeviceArray)
            r.emulated_device = self.emulated_device
            r._emulated_runtime = self._emulated_runtime
        return r

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _check_mixing(f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__,
                      [*inputs, *(out or ()), kwargs.get("where")])

        def plain(x):
            return x.view(np.ndarray) if isinstance(x, EmulatedDeviceArray) else x

        if out is not None:
            kwargs["out"] = tuple(plain(o) for o in out)
        if isinstance(kwargs.get("where"), EmulatedDeviceArray):
            kwargs["where"] = plain(kwargs["where"])
        result = getattr(ufunc, method)(*(plain(x) for x in inputs), **kwargs)
        if method == "at":
            return None
        results = result if isinstance(result, tuple) else (result,)
        outs = out if out is not None else (None,) * len(results)
        first = next((x for x in (*inputs, *(out or ())) if isinstance(x, EmulatedDeviceArray)),
                     self)  # or self, when only ``where`` is on the device
        wrapped = tuple(o if o is not None else first._adopt(r) for r, o in zip(results, outs))
        return wrapped if isinstance(result, tuple) else wrapped[0]

    def __array_function__(self, func, types, args, kwargs):
        _check_mixing(f"numpy.{func.__name__}", _operands((*args, *kwargs.values())))
        _DISPATCH.depth = getattr(_DISPATCH, "depth", 0) + 1
        try:
            result = super().__array_function__(func, types, args, kwargs)
        finally:
            _DISPATCH.depth -= 1
        # CuPy's functions return device arrays; several NumPy ones (np.where,
        # np.flatnonzero, ...) return a plain ndarray even for a subclass.
        if isinstance(result, np.ndarray):
            return self._adopt(result)
        if isinstance(result, (tuple, list)) and any(isinstance(r, np.ndarray) for r in result):
            items = [self._adopt(r) if isinstance(r, np.ndarray) else r for r in result]
            return type(result)(*items) if hasattr(result, "_fields") else type(result)(items)
        return result

    def __repr__(self):
        return repr(self.view(np.ndarray))  # "array(...)", as cupy.ndarray's

    def round(self, decimals=0, out=None):
        # NumPy's C round() multiplies through a temporary of the base class
        _DISPATCH.depth = getattr(_DISPATCH, "depth", 0) + 1
        try:
            result = super().round(decimals, out)
        finally:
            _DISPATCH.depth -= 1
        return result if out is not None else self._adopt(result)

    def __setitem__(self, key, value):
        if (_host_array(value) and self._strict and not getattr(_DISPATCH, "depth", 0)
                and not _advanced_key(key)):
            raise ValueError(
                "non-scalar numpy.ndarray cannot be used for fill (CuPy refuses assigning "
                f"a host array of shape {value.shape} to a device array through a basic "
                "index; upload it first with runtime.asarray / xp.asarray)")
        super().__setitem__(key, value)

    def get(self) -> np.ndarray:
        """A host copy (a plain ndarray), as ``cupy.ndarray.get()``."""
        rt = self._emulated_runtime
        return rt.to_host(self) if rt is not None else np.array(self, copy=True)


class EmulatedArrayModule:
    """NumPy as the emulated runtime's array module (``runtime.xp``, as
    ``cupy`` is :class:`CupyRuntime`'s): every NumPy name, with the functions
    that make a new array from host values (``zeros``, ``arange``,
    ``asarray`` of a host array, ...) returning device arrays of the
    runtime, as CuPy's do. ``asarray`` / ``array`` / ``ascontiguousarray`` of
    anything that is not a device array count as uploads (``h2d_transfers``).

    Examples
    --------
    >>> from gpumeanshift.testing import EmulatedRuntime
    >>> rt = EmulatedRuntime()
    >>> type(rt.xp.zeros(3)).__name__, rt.xp.float32 is np.float32
    ('EmulatedDeviceArray', True)
    """

    _MAKERS = frozenset({"zeros", "ones", "empty", "full", "arange", "linspace", "logspace",
                         "geomspace", "eye", "identity", "tri", "indices"})
    _CONVERTERS = frozenset({"asarray", "asanyarray", "array", "ascontiguousarray",
                             "asfortranarray"})

    def __init__(self, runtime: "EmulatedRuntime"):
        self._runtime = runtime

    def __getattr__(self, name):
        attr = getattr(np, name)
        rt = self._runtime
        if name in self._MAKERS:
            def make(*args, **kwargs):
                return rt._on_device(attr(*args, **kwargs))
            return make
        if name in self._CONVERTERS:
            def convert(a, *args, **kwargs):
                out = attr(a, *args, **kwargs)
                if isinstance(a, EmulatedDeviceArray):
                    return a._adopt(out.view(np.ndarray))
                if isinstance(a, np.ndarray) and np.shares_memory(out, a):
                    out = out.copy(order="K")  # an upload: device memory of its own
                rt.h2d_transfers += 1
                rt.h2d_bytes += out.nbytes
                return rt._on_device(out)
            return convert
        return attr

    def __repr__(self):
        return "<emulated array module (numpy)>"


class LaunchError(RuntimeError):
    """A launch CUDA or CuPy would refuse (bad arguments or geometry)."""


class EmulatedStream:
    """A CUDA stream of the emulated device, for ``EmulatedRuntime(stream=...)``.

    Launches on a stream are deferred: they run when the stream is
    synchronized (:meth:`synchronize`) or a device-to-host copy is made on
    it (:meth:`EmulatedRuntime.to_host`), in launch order. Until then the
    arrays they write hold what they held before, which is what a read on
    another stream (or the host, without a synchronize) sees on a GPU.

    Examples
    --------
    >>> s = EmulatedStream()
    >>> s.synchronize(); s.synchronizations
    1
    """

    def __init__(self):
        self._queue: list = []
        self.synchronizations = 0

    @property
    def pending(self) -> int:
        """Launches queued and not yet run."""
        return len(self._queue)

    def synchronize(self) -> None:
        """Run every queued launch (``cudaStreamSynchronize``)."""
        while self._queue:
            self._queue.pop(0)()
        self.synchronizations += 1


def _cache_root() -> Path:
    env = os.environ.get("GPUMEANSHIFT_EMU_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpumeanshift" / "emu"


def _compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"the emulated runtime needs a C++ compiler with OpenMP; {cxx!r} not found")
    return cxx


def launcher_source(source: str, names: Sequence[str]) -> str:
    """The C++ unit the emulator builds: header, the program CuPy compiles
    (the kernels behind their ``extern "C"`` entry points,
    :func:`~gpumeanshift.backends.runtime.wrapped_source`), one launcher per
    name, calling its entry point."""
    lines = [HEADER, "// ---- kernels ----", _rt.wrapped_source(names, source),
             "// ---- launchers ----"]
    lines += [f"EMU_KERNEL({i}, {_rt.c_symbol(name)})" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


_LIB_LOCK = threading.Lock()
_LIBS: dict[str, ctypes.CDLL] = {}


def build_library(source: str, names: Sequence[str], *, sanitize: bool = False,
                  cache_dir: Path | str | None = None, fp: str = "nvrtc") -> Path:
    """Compile (once per key) and return the path of the shared library."""
    cxx = _compiler()
    flags = _BASE_FLAGS + (_SANITIZE_FLAGS if sanitize else _OPT_FLAGS) + _FP_FLAGS[fp]
    if fp == "nvrtc" and _cpu_has_fma():
        flags += ("-mfma",)
    unit = launcher_source(source, names)
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([unit, " ".join(flags), version]).encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else _cache_root()
    lib = root / f"msemu-{key}.so"
    if lib.exists():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        src = Path(tmp) / "emu.cpp"
        src.write_text(unit)
        out = Path(tmp) / "emu.so"
        proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"emulator build failed:\n{proc.stderr[-8000:]}")
        os.replace(out, lib)  # atomic: concurrent builders agree
    return lib


class EmulatedRuntime:
    """A CPU stand-in for :class:`~gpumeanshift.backends.cuda.runtime.CupyRuntime`.

    Parameters
    ----------
    source : str, optional
        Kernel source text to use instead of the package's ``kernels/*.cu``
        (tests feed deliberately broken copies).
    sanitize : bool, optional
        Build with AddressSanitizer and UBSan (the process must have libasan
        preloaded; see ``ci/sanitize.sh``). Default: true when the environment
        variable ``GPUMEANSHIFT_EMU_SANITIZE=1``.
    memory_limit : int, optional
        Emulated device memory in bytes: an allocation through :meth:`empty` /
        :meth:`zeros` that would take the live total (arrays allocated that way
        and not yet garbage-collected) above it raises
        :class:`EmulatedOutOfMemoryError`, as CuPy raises
        ``cupy.cuda.memory.OutOfMemoryError``. Temporaries of array-module
        expressions are not counted.
    reported_free : int, optional
        What :meth:`free_memory` reports (default: ``memory_limit`` minus the
        live total, or 16 GiB); set it above the truth to force OOM errors.
    multiprocessor_count : int or sequence of int, default=132
        SMs reported to the backend (an H100 by default); a sequence gives
        one count per emulated device (see ``n_devices``).
    n_devices : int, default=1
        Emulated CUDA devices. :meth:`use_device` switches the current one
        (as ``with cupy.cuda.Device(i):``), :meth:`to_device` tags an array
        as living on one; :meth:`asarray` refuses an array of another device
        than the current one, as :class:`CupyRuntime` does. Modules are
        "compiled" per device at their first launch there
        (:attr:`compiled_modules`), as CuPy compiles them.
    stream : EmulatedStream, optional
        Run on this stream (as ``CupyRuntime(stream=...)``): launches are
        queued on it and run at the next :meth:`synchronize` or
        :meth:`to_host`; inside :meth:`activate` (a backend method, whose
        NumPy array operations run at once and must see them, as CuPy's
        would on the same stream) they run at once. None: the null stream,
        launches run at once.
    fp : {"nvrtc", "ieee"}, default="nvrtc"
        Floating point of the build. "nvrtc", as CuPy builds the kernels:
        ``a * b + c`` contracted into FMAs, and launches of float
        instantiations (``<float...>``) run with denormals flushed to zero
        in and out (``-ftz=true``; x86 MXCSR FTZ and DAZ, see
        :attr:`flushes_denormals`). "ieee": no contraction, denormals kept.
        Default: ``$GPUMEANSHIFT_EMU_FP`` if set, else "nvrtc".
    block_order : {"shuffled", "ascending", "descending"}, optional
        The order in which a launch runs its blocks (one after another).
        CUDA promises no order, and on a GPU blocks run concurrently, so a
        kernel whose output depends on it (the order in which blocks win an
        ``atomicAdd``, a block reading what another writes) is wrong there.
        "shuffled" runs them in a different scrambled order at each launch
        (an affine permutation of the block index drawn from ``block_seed``),
        which makes such a dependence show up in results; "ascending" is the
        order of the block index. Default: ``$GPUMEANSHIFT_EMU_BLOCK_ORDER``
        if set, else "shuffled".
    block_seed : int, default=0
        Seed of the "shuffled" orders (reproducible per runtime).
    strict_arrays : bool, optional
        Refuse, as CuPy does, mixing a host ndarray (one dimension or more)
        with a device array in one ufunc or NumPy function (TypeError),
        assigning a host array through a basic index (ValueError), and a host
        array given to a kernel's pointer parameter (TypeError); see
        :class:`EmulatedDeviceArray`. Without it such code passes here and
        fails on a GPU. Host index arrays, and host values through an
        advanced index, pass (CuPy uploads them); so do 0-d arrays and
        scalars. NumPy cannot be made to refuse the other direction
        (``host[device_mask]``, ``np.asarray(device)``: an ndarray subclass is
        used as it is, without ``__array__``). Default:
        ``$GPUMEANSHIFT_EMU_STRICT``, on unless it is ``0``.

    Attributes
    ----------
    launches : collections.Counter
        Launches per kernel name; ``n_launches`` is the total.
    d2h_transfers, d2h_bytes : int
        Device-to-host copies made through :meth:`to_host` (what
        ``cupy.asnumpy`` / ``.get()`` would copy), and their bytes.
    h2d_transfers, h2d_bytes : int
        Host-to-device copies made by :meth:`asarray` of anything that is
        not already an emulated device array (NumPy arrays, lists, scalars),
        and their bytes. The runtime's own arrays (:meth:`empty`,
        :meth:`zeros`, :meth:`asarray`, :meth:`to_device` and what NumPy
        operations derive from them) are :class:`EmulatedDeviceArray`, so
        the CUDA backend's internal arrays are not counted as uploads.
        Scalars the backend reads with ``float()`` / ``int()`` / ``bool()``
        (a few bytes each, a constant number per call) are not counted.
    unsynchronized_exits : int
        Times an :meth:`activate` block (a backend method) ended with work
        on the runtime's stream since its last :meth:`synchronize`: results
        that left the method before the stream finished them.
    compiled_modules : collections.Counter
        ``(module_key, device)`` -> 1 for every module (see
        :func:`gpumeanshift.backends.cuda.runtime.module_key`) a launch needed on
        that device: what CuPy would have compiled; ``compiled_names`` counts
        their instantiations. (The emulator itself builds every
        instantiation once, in one cached library.)
    flushes_denormals : bool
        Whether float launches flush denormals (``fp="nvrtc"`` on an x86 CPU;
        other CPUs have no MXCSR and keep them).

    Examples
    --------
    >>> from gpumeanshift.testing import EmulatedRuntime
    >>> rt = EmulatedRuntime()
    >>> rt.n_launches, rt.d2h_transfers
    (0, 0)
    """

    def __init__(self, *, source: str | None = None, sanitize: bool | None = None,
                 memory_limit: int | None = None, reported_free: int | None = None,
                 multiprocessor_count: int = 132, cache_dir: Path | str | None = None,
                 fp: str | None = None, stream: EmulatedStream | None = None,
                 n_devices: int = 1, block_order: str | None = None, block_seed: int = 0,
                 strict_arrays: bool | None = None):
        self.strict_arrays = _env_strict() if strict_arrays is None else bool(strict_arrays)
        if fp is None:
            fp = os.environ.get("GPUMEANSHIFT_EMU_FP", "") or "nvrtc"
        if fp not in _FP_FLAGS:
            raise ValueError(f"fp must be one of {FP_MODES}, got {fp!r}")
        self.fp = fp
        if block_order is None:
            block_order = os.environ.get("GPUMEANSHIFT_EMU_BLOCK_ORDER", "") or "shuffled"
        if block_order not in BLOCK_ORDERS:
            raise ValueError(f"block_order must be one of {BLOCK_ORDERS}, got {block_order!r}")
        self.block_order = block_order
        self._order_rng = np.random.default_rng(block_seed)
        if stream is not None and not isinstance(stream, EmulatedStream):
            raise TypeError(f"stream must be an EmulatedStream, got {type(stream).__name__}")
        self.stream = stream
        self.unsynchronized_exits = 0
        self._since_sync = 0  # operations on the stream since its last synchronize
        self._active = False  # inside activate()
        self.xp = EmulatedArrayModule(self)
        if int(n_devices) < 1:
            raise ValueError(f"n_devices must be >= 1, got {n_devices}")
        self.n_devices = int(n_devices)
        sms = (multiprocessor_count if isinstance(multiprocessor_count, (list, tuple))
               else [multiprocessor_count] * self.n_devices)
        if len(sms) != self.n_devices:
            raise ValueError(f"{len(sms)} multiprocessor counts for {self.n_devices} devices")
        self._sm_counts = [int(v) for v in sms]
        self.device = 0
        self.compiled_modules: Counter = Counter()
        # as CupyRuntime: a plain MemoryError is what CuPy's Thrust sorts raise
        self.oom_errors = (EmulatedOutOfMemoryError, MemoryError)
        self._sort_faults: list = []
        self.memory_limit = memory_limit
        self.reported_free = reported_free
        self._source = source if source is not None else _rt.kernel_source()
        self._names = _rt.kernel_names()
        self._index = {n: i for i, n in enumerate(self._names)}
        if sanitize is None:
            sanitize = os.environ.get("GPUMEANSHIFT_EMU_SANITIZE", "") not in ("", "0")
        self._sanitize = bool(sanitize)
        self._cache_dir = cache_dir
        self._lib: ctypes.CDLL | None = None
        self._sigs: dict[str, list[str]] = {}
        self.launches: Counter[str] = Counter()
        self.d2h_transfers = 0
        self.d2h_bytes = 0
        self.h2d_transfers = 0
        self.h2d_bytes = 0
        self.allocations = 0
        self.failed_allocations = 0
        self.live_bytes = 0

    def __getstate__(self):
        # The loaded library is process-local; the copy reloads it (from the
        # build cache) on its first launch. Counters travel with the copy.
        if self.stream is not None:
            raise TypeError("an EmulatedRuntime bound to a stream cannot be pickled "
                            "(as a CupyRuntime bound to one)")
        state = self.__dict__.copy()
        state["_lib"] = None
        del state["xp"]  # wraps the numpy module
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.xp = EmulatedArrayModule(self)

    # -- build -------------------------------------------------------------
    def _library(self) -> ctypes.CDLL:
        if self._lib is None:
            path = build_library(self._source, self._names, sanitize=self._sanitize,
                                 cache_dir=self._cache_dir, fp=self.fp)
            with _LIB_LOCK:
                lib = _LIBS.get(str(path))
                if lib is None:
                    lib = ctypes.CDLL(str(path))
                    _LIBS[str(path)] = lib
            self._lib = lib
        return self._lib

    def build(self) -> "EmulatedRuntime":
        """Compile now (otherwise the first launch does)."""
        self._library()
        return self

    def signature(self, name: str) -> list[str]:
        """Parameter type codes of a kernel, from its compiled C++ signature
        (``"*f4"`` pointer to float, ``"i4"`` int, ``"f8"`` double, ...)."""
        if name not in self._sigs:
            fn = getattr(self._library(), f"emu_sig_{self._index[name]}")
            fn.restype = ctypes.c_char_p
            s = fn().decode()
            self._sigs[name] = [] if s == "-" else s.split(",")
        return self._sigs[name]

    @property
    def flushes_denormals(self) -> bool:
        if self.fp != "nvrtc":
            return False
        fn = self._library().emu_has_ftz
        fn.restype = ctypes.c_int
        return bool(fn())

    # -- devices -----------------------------------------------------------
    @property
    def multiprocessor_count(self) -> int:
        """SMs of the current device."""
        return self._sm_counts[self.device]

    def use_device(self, device: int):
        """``with rt.use_device(1):`` -- make emulated device 1 current."""
        import contextlib

        device = int(device)
        if not 0 <= device < self.n_devices:
            raise ValueError(f"device {device} not in [0, {self.n_devices})")

        @contextlib.contextmanager
        def switch():
            saved, self.device = self.device, device
            try:
                yield
            finally:
                self.device = saved

        return switch()

    def to_device(self, a, device: int) -> EmulatedDeviceArray:
        """A copy of ``a`` tagged as living on emulated ``device``."""
        if not 0 <= int(device) < self.n_devices:
            raise ValueError(f"device {device} not in [0, {self.n_devices})")
        out = np.array(a, copy=True).view(EmulatedDeviceArray)
        out.emulated_device = int(device)
        out._emulated_runtime = self
        return out

    @property
    def compiled_names(self) -> int:
        """Instantiations in the modules launched so far (over devices)."""
        return sum(len(_rt.module_names(key)) for key, _dev in self.compiled_modules)

    # -- counters ----------------------------------------------------------
    @property
    def n_launches(self) -> int:
        return sum(self.launches.values())

    def reset_counters(self) -> None:
        self.launches.clear()
        self.d2h_transfers = self.d2h_bytes = self.h2d_transfers = self.h2d_bytes = 0
        self.allocations = self.failed_allocations = 0

    # -- kernels -----------------------------------------------------------
    def launch(self, name: str, grid: Sequence[int], block: Sequence[int],
               args: Sequence[Any], shared_mem: int = 0) -> None:
        if name not in self._index:
            raise LaunchError(f"{name!r} is not a compiled name expression")
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        if any(b < 1 for b in block) or any(b > lim for b, lim in zip(block, MAX_BLOCK_DIMS)):
            raise LaunchError(f"{name}: block {block} outside CUDA limits {MAX_BLOCK_DIMS}")
        threads = block[0] * block[1] * block[2]
        if threads > MAX_THREADS_PER_BLOCK or threads > _rt.BLOCK:
            raise LaunchError(
                f"{name}: {threads} threads per block exceeds the kernel's "
                f"__launch_bounds__({_rt.BLOCK}) / device limit {MAX_THREADS_PER_BLOCK}")
        if any(g < 1 for g in grid) or any(g > lim for g, lim in zip(grid, MAX_GRID_DIMS)):
            raise LaunchError(f"{name}: grid {grid} outside CUDA limits {MAX_GRID_DIMS}")
        # The kernels index threads as int: blockIdx.x * blockDim.x + threadIdx.x
        # must not pass 2^31 - 1 (CUDA would launch it and the index wrap).
        if grid[0] * block[0] > INT32_MAX:
            raise LaunchError(f"{name}: {grid[0]} x {block[0]} threads along x overflow the "
                              "kernels' 32-bit thread index")
        if not 0 <= int(shared_mem) <= MAX_SHARED_NO_OPT_IN:
            raise LaunchError(f"{name}: {shared_mem} bytes of dynamic shared memory "
                              f"(limit without opt-in: {MAX_SHARED_NO_OPT_IN})")
        for a in args:
            if isinstance(a, np.ndarray):
                _rt.check_device(getattr(a, "emulated_device", None), self.device)
        sig = self.signature(name)
        if len(args) != len(sig):
            raise LaunchError(f"{name} takes {len(sig)} arguments, got {len(args)}")
        keep = []
        for i, (code, a) in enumerate(zip(sig, args)):
            if code.startswith("*"):
                want = _SCALARS[code[1:]][0]
                if not isinstance(a, np.ndarray):
                    raise LaunchError(f"{name} argument {i}: expected a device array, "
                                      f"got {type(a).__name__}")
                if self.strict_arrays and not isinstance(a, EmulatedDeviceArray):
                    # cupy/cuda/function.pyx (_pointer): a host array goes by value
                    raise TypeError(
                        f"{name} argument {i}: You are trying to pass a numpy.ndarray of "
                        f"shape {a.shape} as a kernel parameter; a pointer to __global__ "
                        "memory needs a device array (CuPy refuses this; emulated runtime, "
                        "strict_arrays=True)")
                if a.dtype != want or not a.flags.c_contiguous:
                    raise LaunchError(f"{name} argument {i}: expected a C-contiguous "
                                      f"{np.dtype(want)} array, got {a.dtype} "
                                      f"(contiguous={a.flags.c_contiguous})")
                keep.append(ctypes.c_void_p(a.ctypes.data))
            else:
                np_t, c_t = _SCALARS[code]
                if not isinstance(a, np.generic) or a.dtype != np_t:
                    raise LaunchError(
                        f"{name} argument {i}: the kernel takes {np.dtype(np_t)}, got "
                        f"{type(a).__name__} (pass a NumPy scalar of the exact type: "
                        f"CuPy would pass the bytes of its own type)")
                # Every int parameter of the kernels is a count, size or index:
                # a negative one is a value that wrapped in its int32 conversion.
                if code == "i4" and int(a) < 0:
                    raise LaunchError(f"{name} argument {i}: {int(a)} (a count that wrapped "
                                      "around in its 32-bit conversion?)")
                keep.append(c_t(a.item()))
        argv = (ctypes.c_void_p * max(1, len(keep)))(
            *[ctypes.cast(ctypes.pointer(k), ctypes.c_void_p) for k in keep])
        fn = getattr(self._library(), f"emu_launch_{self._index[name]}")
        fn.restype = ctypes.c_int
        fn.argtypes = ([ctypes.c_uint] * 6 + [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
                       + [ctypes.c_ulonglong] * 2)
        first, stride = self._block_permutation(grid[0] * grid[1] * grid[2])
        # -ftz=true concerns float arithmetic: float instantiations run flushed
        # (MXCSR flushes doubles too, so double ones do not).
        ftz = int(self.fp == "nvrtc" and "<float" in name)
        self.compiled_modules[(_rt.module_key(name), self.device)] = 1
        self.launches[name] += 1
        self._since_sync += 1

        def run(keep=keep, argv=argv, args=tuple(args)):  # the buffers stay alive until it runs
            with _LIB_LOCK:  # the emulated device runs one launch at a time
                err = fn(*grid, *block, int(shared_mem), ctypes.cast(argv, ctypes.c_void_p), ftz,
                         first, stride)
            if err:
                raise LaunchError(f"{name}: OpenMP did not provide {threads} threads per block "
                                  "(check OMP_THREAD_LIMIT / OMP_DYNAMIC)")

        if self.stream is not None and not self._active:
            self.stream._queue.append(run)
        else:
            # Inside activate() (a backend method) the array-module operations
            # that follow a launch on the same stream must see its results;
            # here they are NumPy and run at once, so the launch does too.
            if self.stream is not None:
                self._run_queue()
            run()

    def _block_permutation(self, nblocks: int) -> tuple[int, int]:
        """(first, stride) of the order a launch of ``nblocks`` blocks runs
        them in: block ``(first + stride * i) % nblocks`` runs i-th."""
        if self.block_order == "ascending" or nblocks == 1:
            return 0, 1
        if self.block_order == "descending":
            return nblocks - 1, nblocks - 1
        rng = self._order_rng
        while True:  # a stride coprime to the count visits every block once
            stride = int(rng.integers(1, nblocks))
            if math.gcd(stride, nblocks) == 1:
                return int(rng.integers(0, nblocks)), stride

    def synchronize(self) -> None:
        """Wait for the runtime's stream: queued launches run."""
        if self.stream is not None:
            self.stream.synchronize()
        self._since_sync = 0

    # -- sorts -------------------------------------------------------------
    def fail_sorts(self, *errors: BaseException) -> None:
        """Fault injection: the next ``len(errors)`` sorts (:meth:`lexsort`,
        :meth:`argsort`) raise these, in order -- e.g. ``MemoryError()``,
        what CuPy >= 14.1 raises when Thrust cannot allocate its workspace."""
        self._sort_faults.extend(errors)

    def _sort_fault(self):
        if self._sort_faults:
            raise self._sort_faults.pop(0)

    def lexsort(self, keys):
        """``numpy.lexsort`` (Thrust under CuPy), after an injected fault if any."""
        self._sort_fault()
        return np.lexsort(keys)

    def argsort(self, a):
        """Stable ``numpy.argsort`` (Thrust under CuPy), after an injected fault if any."""
        self._sort_fault()
        return np.argsort(a, kind="stable")

    # -- memory ------------------------------------------------------------
    def _release(self, nbytes: int) -> None:
        self.live_bytes -= nbytes

    def _on_device(self, arr) -> EmulatedDeviceArray:
        out = arr.view(EmulatedDeviceArray)
        out.emulated_device = self.device
        out._emulated_runtime = self
        return out

    def _allocate(self, shape, dtype, fill):
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        self.allocations += 1
        if self.memory_limit is not None and self.live_bytes + nbytes > self.memory_limit:
            self.failed_allocations += 1
            raise EmulatedOutOfMemoryError(
                f"emulated out of memory allocating {nbytes} bytes "
                f"({self.live_bytes} of {self.memory_limit} in use)")
        arr = np.zeros(shape, dtype) if fill else np.empty(shape, dtype)
        self.live_bytes += nbytes
        weakref.finalize(arr, self._release, nbytes)
        return self._on_device(arr)

    def empty(self, shape, dtype):
        return self._allocate(shape, dtype, False)

    def zeros(self, shape, dtype):
        return self._allocate(shape, dtype, True)

    def asarray(self, a, dtype=None):
        _rt.check_device(_rt.array_device(a), self.device)
        on_device = isinstance(a, EmulatedDeviceArray)
        out = np.ascontiguousarray(np.asarray(a, dtype=dtype))
        if not on_device:  # host data: an upload of what the device receives
            if isinstance(a, np.ndarray) and np.shares_memory(out, a):
                out = out.copy()  # into device memory of its own, as cudaMemcpy
            self.h2d_transfers += 1
            self.h2d_bytes += out.nbytes
        return self._on_device(out)

    def _run_queue(self) -> None:
        """Run the launches queued on the runtime's stream (what an operation
        on that stream waits for), without synchronizing it."""
        if self.stream is not None:
            while self.stream._queue:
                self.stream._queue.pop(0)()

    def to_host(self, a):
        self._run_queue()  # a copy on the runtime's stream runs after its queue
        self._since_sync += 1  # the backend may queue more work after the copy
        self.d2h_transfers += 1
        out = np.array(a, copy=True)  # a plain ndarray: host memory
        self.d2h_bytes += out.nbytes
        return out

    def free_memory(self) -> int:
        if self.reported_free is not None:
            return int(self.reported_free)
        if self.memory_limit is not None:
            return max(0, int(self.memory_limit) - self.live_bytes)
        return 16 << 30

    def release_memory(self) -> None:
        pass

    def activate(self):
        """``with runtime.activate():`` around a backend method; counts the
        exits that leave work on the stream unsynchronized."""
        import contextlib

        @contextlib.contextmanager
        def block():
            outer = self._active
            self._active = True
            try:
                yield
            finally:
                self._active = outer
            if self._since_sync:
                self.unsynchronized_exits += 1

        return block()
