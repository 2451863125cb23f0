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

from ._conformance import check_backend
from .emulator import EmulatedOutOfMemoryError, EmulatedRuntime, EmulatedStream, LaunchError


def emulated_backend(**options):
    """The CUDA backend on a fresh :class:`EmulatedRuntime`.

    Keyword arguments go to :class:`~gpumeanshift.backends.cuda.backend.CudaBackend`,
    except ``runtime_options`` (a dict for :class:`EmulatedRuntime`).

    Returns
    -------
    backend : CudaBackend
        A backend that runs ``kernels/*.cu`` on the CPU; the kernels are
        compiled with g++ on first use (about 10 s) and cached.

    Examples
    --------
    The whole GPU code path of :class:`~gpumeanshift.MeanShift`, on the CPU:

    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.testing import emulated_backend
    >>> be = emulated_backend(iters_per_launch=4)
    >>> be.name, be.iters_per_launch, type(be.runtime).__name__
    ('cupy', 4, 'EmulatedRuntime')
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]], dtype=float)
    >>> ms = MeanShift(bandwidth=2, kernel="flat", backend=be).fit(X)
    >>> ms.labels_
    array([1, 1, 1, 0, 0, 0])
    >>> ms.cluster_centers_
    array([[3.33333333, 6.        ],
           [1.33333333, 0.66666667]])
    """
    from ..backends.cuda.backend import CudaBackend

    rt_opts = options.pop("runtime_options", {}) or {}
    return CudaBackend(EmulatedRuntime(**rt_opts), **options)


__all__ = ["check_backend", "EmulatedRuntime", "EmulatedOutOfMemoryError", "EmulatedStream",
           "LaunchError", "emulated_backend"]
