"""Testing helpers: run the CUDA backend's real kernels on a CPU.

:class:`EmulatedRuntime` compiles ``kernels/*.cu`` with g++ and OpenMP and
executes them through ctypes, so a pipeline that uses the GPU path can be
tested on a CPU-only machine (needs g++). :func:`emulated_backend` is the CUDA
backend on that runtime.

Examples
--------
>>> import numpy as np
>>> from gpumeanshift.testing import emulated_backend
>>> be = emulated_backend()
>>> X = np.array([[0.0], [0.1], [5.0]])
>>> res = be.shift(X, X[:1], bandwidth=1.0, kernel="flat", max_iter=300, tol=1e-3)
>>> np.round(res.modes, 3).tolist(), res.intensity.tolist()
([[0.05]], [2])
"""

from .emulator import EmulatedOutOfMemoryError, EmulatedRuntime, LaunchError


def emulated_backend(**options):
    """The CUDA backend on a fresh :class:`EmulatedRuntime`.

    Keyword arguments go to :class:`~gpumeanshift.backends.cuda_backend.CudaBackend`,
    except ``runtime_options`` (a dict for :class:`EmulatedRuntime`).
    """
    from ..backends.cuda_backend import CudaBackend

    rt_opts = options.pop("runtime_options", {}) or {}
    return CudaBackend(EmulatedRuntime(**rt_opts), **options)


__all__ = ["EmulatedRuntime", "EmulatedOutOfMemoryError", "LaunchError", "emulated_backend"]
