"""The ``info`` command: versions, backends, GPUs and whether the CUDA kernels compile."""

from __future__ import annotations

import time

import numpy as np

from ._args import EXIT_OK
from ._output import _first_line, _say


def _version_of(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _gpus() -> tuple[list[tuple[str, int, int]], str]:
    """(name, bytes, compute capability as 80/90/...) of each GPU, and how they were found."""
    try:
        import cupy  # optional dependency

        n = cupy.cuda.runtime.getDeviceCount()
        out = []
        for i in range(n):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            out.append((name, int(props["totalGlobalMem"]), 10 * int(props["major"]) + int(props["minor"])))
        return out, "cupy"
    except Exception as exc:
        cupy_reason = _first_line(exc)
    try:
        from cuda.bindings import driver  # from cuda-bindings, when installed

        (err,) = driver.cuInit(0)
        if err != driver.CUresult.CUDA_SUCCESS:
            return [], f"no CUDA driver ({err.name})"
        err, n = driver.cuDeviceGetCount()
        out = []
        for i in range(n):
            _, dev = driver.cuDeviceGet(i)
            _, raw = driver.cuDeviceGetName(256, dev)
            _, mem = driver.cuDeviceTotalMem(dev)
            attr = driver.CUdevice_attribute
            _, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
            _, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
            out.append((raw.split(b"\0", 1)[0].decode(errors="replace"), int(mem), 10 * major + minor))
        return out, "cuda-bindings"
    except Exception as exc:
        return [], f"cupy: {cupy_reason}; cuda-bindings: {_first_line(exc)}"


def _compile_check(gpus) -> str:
    import importlib.util

    try:
        found = importlib.util.find_spec("cuda.bindings.nvrtc") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return ("not checked: cuda.bindings.nvrtc is not importable "
                "(pip install 'gpumeanshift[kernel-check]')")
    try:
        from ..testing import nvrtc

        archs = nvrtc.ARCHS
        if gpus:
            cc = gpus[0][2]
            arch = max([a for a in archs if a <= cc] or [archs[0]])
        else:
            arch = archs[0]
        t0 = time.perf_counter()
        infos, _ = nvrtc.compile_arch(arch)
        seconds = time.perf_counter() - t0
        major, minor = nvrtc.nvrtc_version()
        return f"yes (NVRTC {major}.{minor}, sm_{arch}, {len(infos)} kernels, {seconds:.1f} s)"
    except Exception as exc:
        return f"no: {_first_line(exc)}"


def _backend_unusable(name: str):
    """Why the registered backend ``name`` cannot run here, or None when it can."""
    if name == "cupy":
        try:
            import cupy  # noqa: F401  (optional dependency)
        except Exception as exc:
            return f"CuPy does not import: {_first_line(exc)}"
        from ..backends.base import cuda_available

        return None if cuda_available() else "no CUDA device"
    try:
        from ..backends.base import resolve_backend

        resolve_backend(name)
    except Exception as exc:
        return _first_line(exc)
    return None


def _cmd_info(args) -> int:
    import platform

    from .. import __version__
    from ..backends.base import available_backends

    _say(
        f"gpumeanshift {__version__}",
        f"python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()})",
        f"numpy {np.__version__}",
        "optional: " + ", ".join(
            f"{d} {_version_of(d)}" for d in ("scikit-learn", "matplotlib", "pyarrow", "tqdm", "cuda-bindings")
        ),
    )
    try:
        import cupy  # optional dependency

        cupy_line = f"yes (cupy {cupy.__version__})"
    except Exception as exc:
        cupy_line = f"no ({_first_line(exc)})"
    usable, unusable = [], []
    for name in available_backends():
        why = _backend_unusable(name)
        (unusable if why else usable).append(f"{name} ({why})" if why else name)
    auto = "cupy" if "cupy" in usable else "numpy"
    _say(f"backends: {', '.join(usable)} (backend='auto' uses {auto})"
         + (f"; cannot run here: {', '.join(unusable)}" if unusable else ""),
         f"cupy imports: {cupy_line}")
    try:
        gpus, how = _gpus()
    except Exception as exc:
        gpus, how = [], _first_line(exc)
    if gpus:
        for i, (name, mem, cc) in enumerate(gpus):
            _say(f"GPU {i}: {name}, {mem / 2**30:.1f} GiB, compute capability {cc // 10}.{cc % 10}")
    else:
        _say(f"GPU: none found ({how})")
    if args.no_compile:
        _say("CUDA kernels compile here: not checked: --no-compile")
    else:
        _say(f"CUDA kernels compile here: {_compile_check(gpus)}")
    return EXIT_OK
