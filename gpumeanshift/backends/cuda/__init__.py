"""The CUDA backend: the kernels of ``kernels/`` launched through a runtime.

:mod:`.runtime` loads the kernel source and launches it through CuPy
(:class:`~.runtime.CupyRuntime`); the emulated runtime in
:mod:`gpumeanshift.testing` runs the same source on the CPU. Importing this
package does not import CuPy.
"""

from .backend import CudaBackend, make_cupy_backend

__all__ = ["CudaBackend", "make_cupy_backend"]
