"""The backend interface, the registry of backends and ``backend="auto"`` resolution.

A backend holds only arithmetic. The algorithm (seeding, convergence rule,
mode deduplication, labelling) lives once in :mod:`gpumeanshift._driver`; every
backend answers the same seven questions about a point set:

* :meth:`Backend.shift` -- climb every seed to a mode (the whole shift loop,
  so a device backend can iterate without a host round trip per step);
* :meth:`Backend.nearest` -- nearest center of every point (labels, predict);
* :meth:`Backend.count_within` -- points within a radius of each query
  (mode intensity);
* :meth:`Backend.kth_neighbor_distance` -- distance to the k-th nearest data
  point, the query itself counted when it is in the data (bandwidth estimation);
* :meth:`Backend.kernel_sum` -- sum of kernel weights at each query (density);
* :meth:`Backend.log_kernel_density` -- the log of that sum, computed stably
  (``score_samples``, anomaly detection);
* :meth:`Backend.partial_sums` -- one shift step's sums over a chunk of the
  data (the Dask fit adds them up over the chunks and takes the step).

Arrays passed in are already validated by the driver: two-dimensional,
C-contiguous, finite, of one floating dtype (float32 or float64). A backend
returns arrays of its own array library (NumPy for the NumPy backend, CuPy
for the CUDA backend); the driver converts at the edges.

Weights
-------
Every method that sums over the data takes ``weights=None``: a float64
array of shape (n,) of finite values >= 0 with a positive sum (checked by
the driver, see :func:`gpumeanshift._validation.check_sample_weight`), one
per row of X, or None for all ones. A weighted row counts as that many
copies of itself: for integer weights every result equals the unweighted
result on ``np.repeat(X, weights, axis=0)`` (to rounding where the sums are
not exact). With weights, counts become summed weights (float64) and the
k of :meth:`Backend.kth_neighbor_distance` is an amount of weight. None must
cost nothing: the unweighted arithmetic is unchanged.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from .._params import KERNELS

logger = logging.getLogger("gpumeanshift")

__all__ = ["KERNELS", "Backend", "ImageBackend", "PartialSums", "ShiftResult", "available_backends", "register_backend",
           "resolve_backend", "cuda_available"]


@dataclass(frozen=True)
class ShiftResult:
    """What :meth:`Backend.shift` returns, one row per seed.

    Attributes
    ----------
    modes : array of shape (m, d)
        Final position of each seed, in the data's coordinates and dtype.
    n_iter : int array of shape (m,)
        Completed shift iterations per seed, counted as scikit-learn does:
        the step that meets the stopping rule is not counted, so a seed that
        does not move has 0 and a seed stopped by ``max_iter`` has ``max_iter``.
    intensity : int array of shape (m,), float64 with weights
        Number of data points within one bandwidth (distance <= bandwidth) of
        the position the last step started from (their summed weight when
        the shift was weighted). 0 marks an orphan seed (no data, or only
        rows of weight 0, within reach), which the driver discards.
    converged : bool array of shape (m,)
        False for seeds stopped by ``max_iter`` before meeting the tolerance.
    algorithm : str
        The neighbourhood search that ran: "brute" or "grid".

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.backends.base import resolve_backend
    >>> X = np.array([[0.0], [0.1], [5.0]])
    >>> res = resolve_backend("numpy").shift(X, np.array([[0.0], [5.0], [20.0]]), bandwidth=1.0,
    ...                                      kernel="flat", max_iter=300, tol=1e-3)
    >>> res.modes.ravel().round(3).tolist(), res.n_iter.tolist()
    ([0.05, 5.0, 20.0], [1, 0, 0])
    >>> res.intensity.tolist(), res.algorithm
    ([2, 1, 0], 'brute')
    """

    modes: Any
    n_iter: Any
    intensity: Any
    converged: Any
    algorithm: str = "brute"


@dataclass(frozen=True)
class PartialSums:
    """What :meth:`Backend.partial_sums` returns, one row per seed.

    Attributes
    ----------
    sums : array of shape (m, d)
        ``sum_i w_i K_i y_i`` over the chunk's rows, ``y_i`` the row in the
        frame of the call (see :meth:`Backend.partial_sums`).
    weight : array of shape (m,)
        ``sum_i w_i K_i``: the step's denominator.
    count : int64 array of shape (m,), float64 with weights
        Rows at distance <= bandwidth of the seed (their summed weight with
        weights): the chunk's share of the intensity.

    Summed over the chunks of a data set (in a fixed order), ``sums / weight``
    is the seed's next position in the frame, ``weight == 0`` marks an orphan
    and ``count`` is the intensity of :class:`ShiftResult`.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.backends.base import resolve_backend
    >>> X = np.array([[0.0], [1.0], [5.0]])
    >>> p = resolve_backend("numpy").partial_sums(X, np.array([[0.0], [9.0]]), bandwidth=2.0,
    ...                                           kernel="flat")
    >>> p.sums.ravel().tolist(), p.weight.tolist(), p.count.tolist()
    ([0.5, 0.0], [2.0, 0.0], [2, 0])
    """

    sums: Any
    weight: Any
    count: Any


@runtime_checkable
class Backend(Protocol):
    """The operations the driver needs, and nothing else.

    ``bandwidth`` is always a positive Python float; ``kernel`` is one of
    :data:`KERNELS`. The stopping rule of :meth:`shift` is scikit-learn's:
    a seed stops when its last step moved it by at most ``tol * bandwidth``
    (Euclidean) or after ``max_iter`` counted iterations.
    """

    name: str

    def shift(
        self,
        X: Any,
        seeds: Any,
        *,
        bandwidth: float,
        kernel: str,
        max_iter: int,
        tol: float,
        algorithm: str = "brute",
        weights: Any = None,
        progress: Any = None,
    ) -> ShiftResult:
        """Run the mean-shift iteration for every seed until it stops.

        Each step moves a seed to ``sum_i w_i K_i x_i / sum_i w_i K_i`` over
        the data rows ``x_i`` (``w_i = 1`` when ``weights`` is None).

        ``algorithm`` is "brute", "grid" or "auto" (the backend decides and
        reports its choice in :attr:`ShiftResult.algorithm`); see
        :mod:`gpumeanshift._spatial` for their exact semantics.

        ``progress`` is None or a callable the loop calls as
        ``progress(iteration, n_active)`` after each round of steps
        (one step on the NumPy backend, several per launch on the GPU), with
        the steps run so far (at most ``max_iter``; it restarts for each
        batch of seeds when a backend splits the seeds into batches) and the
        number of seeds still moving, which never increases (unless a batch
        is rerun smaller after a device out-of-memory error). The driver
        passes it when a fit is verbose or the command line shows progress.
        """
        ...

    def nearest(self, X: Any, centers: Any) -> tuple[Any, Any]:
        """Index of the nearest center of each row of X, and the distance to it.

        Ties go to the lowest center index.
        """
        ...

    def count_within(self, X: Any, queries: Any, radius: float, *, weights: Any = None) -> Any:
        """Number of rows of X at distance <= radius of each query (int64);
        with ``weights``, their summed weight (float64)."""
        ...

    def kth_neighbor_distance(self, X: Any, queries: Any, k: Any, *,
                              weights: Any = None) -> Any:
        """Distance from each query to its k-th nearest row of X (1-based k).

        With ``weights``, ``k`` is a positive amount of weight (a float) and
        the answer is the smallest distance r at which the rows within r
        weigh at least k in total: for integer weights and integer k, the
        k-th neighbour among the repeated rows.
        """
        ...

    def kernel_sum(self, X: Any, queries: Any, *, bandwidth: float, kernel: str,
                   weights: Any = None) -> Any:
        """Sum over rows x of X of w(x) K(|q - x| / bandwidth) for each query q.

        K is exp(-u**2 / 2) for "gaussian" and 1[u <= 1] for "flat"
        (unnormalised; the caller applies the normalising constant); w is 1
        when ``weights`` is None.
        """
        ...

    def log_kernel_density(self, X: Any, queries: Any, *, bandwidth: float, kernel: str,
                           weights: Any = None) -> Any:
        """log of sum over rows x of X of w(x) K((q - x) / bandwidth), for each query q.

        Unnormalised, float64, one value per query. For "gaussian",
        K(u) = exp(-|u|**2 / 2) and the sum is taken as a stable
        log-sum-exp (the largest term factored out), so a query far from
        every point gets a finite, very negative value (about
        ``-min_j |q - x_j|**2 / (2 bandwidth**2)``), never -inf (short of
        ``|q - x|**2`` overflowing the dtype, as in scikit-learn). For "flat",
        the log of the number of rows at distance <= bandwidth, and -inf
        where there is none. With ``weights`` the terms are multiplied by
        the rows' weights (a query whose only near rows weigh 0 gets -inf
        for "flat"; for "gaussian" rows of weight 0 drop out of the sum).
        """
        ...

    def partial_sums(self, X: Any, seeds: Any, *, bandwidth: float, kernel: str,
                     origin: Any = None, exact: bool = False, algorithm: str = "brute",
                     weights: Any = None) -> PartialSums:
        """One shift step's sums over the rows of X (one chunk of the data).

        The positions in and the sums out are in a frame shared by every
        chunk of a data set, so that the chunks' sums add up: ``y = (x -
        origin) / bandwidth`` (``origin`` a float64 vector, None for zeros).
        ``seeds`` are positions in that frame, in X's dtype; for each seed
        ``s`` the result (:class:`PartialSums`) holds ``sum_i w_i K_i y_i``,
        ``sum_i w_i K_i`` and the count of rows within one bandwidth, with
        ``K_i`` the kernel at ``|s - y_i|`` (1[u <= 1] or exp(-u**2 / 2)) and
        ``w_i`` the row's weight (1 when ``weights`` is None). The data are
        put in the frame in float64 and rounded once to their dtype, as
        :meth:`shift` does; the sums are in X's dtype.

        ``exact=True`` (flat kernel, integer-valued float64 data, ``origin``
        None): the frame is the data's own units (``y = x``, the radius is
        ``bandwidth``) and every pair within rounding of the boundary is
        decided by ``sum_j (y_j - s_j)**2 <= bandwidth**2`` summed in feature
        order, the side :meth:`shift` and scikit-learn take; the sums of
        integer rows (and integer weights) are then exact, in any order.

        ``algorithm="grid"`` truncates the Gaussian at
        :data:`~gpumeanshift._spatial.GAUSSIAN_GRID_RADIUS`
        bandwidths, as :meth:`shift` does; "brute" (and "auto") do not.
        """
        ...


@runtime_checkable
class ImageBackend(Protocol):
    """The optional image capability: a backend that also filters images and
    tracks windows on its own device (the CUDA backend does). The NumPy
    path of :mod:`gpumeanshift.segmentation` and :mod:`gpumeanshift.tracking`
    serves every other backend; results are the same either way."""

    def filter_image(self, image: Any, spatial_radius: float, range_radius: float, *,
                     max_iter: int = 5, eps: float = 1.0, round_colors: bool = False) -> Any:
        """:func:`gpumeanshift.segmentation.mean_shift_filter` on validated
        inputs: the filtered image, (height, width, channels)."""
        ...

    def track_windows(self, prob_image: Any, windows: Any, *, n_iter: int,
                      eps2: float) -> tuple[Any, Any]:
        """Batched ``cv2.meanShift`` on validated inputs: (iterations, windows)."""
        ...


# name -> (module, factory attribute); factories are imported only when used so
# that ``import gpumeanshift`` never imports CuPy.
_REGISTRY: dict[str, tuple[str, str]] = {
    "numpy": ("gpumeanshift.backends.numpy.backend", "NumpyBackend"),
    "cupy": ("gpumeanshift.backends.cuda.backend", "make_cupy_backend"),
}


def register_backend(name: str, module: str, factory: str) -> None:
    """Make a backend available by name (used by plug-ins and tests)."""
    _REGISTRY[name] = (module, factory)


def available_backends() -> tuple[str, ...]:
    """Names accepted by ``backend=`` besides "auto".

    Returns
    -------
    names : tuple of str
        The registered backend names: "numpy" and "cupy" always (CuPy is
        imported only when "cupy" is used), then any added by
        :func:`register_backend`.

    Examples
    --------
    >>> from gpumeanshift import available_backends
    >>> from gpumeanshift.backends.base import resolve_backend
    >>> available_backends()[:2]
    ('numpy', 'cupy')
    >>> resolve_backend(available_backends()[0]).name
    'numpy'
    """
    return tuple(_REGISTRY)


def _factory(name: str) -> Callable[..., Backend]:
    module, attr = _REGISTRY[name]
    return getattr(importlib.import_module(module), attr)


def cuda_available() -> bool:
    """True when CuPy imports and reports at least one CUDA device."""
    try:
        import cupy  # noqa: F401  (optional dependency)

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError without a driver, ...
        return False


def auto_choice() -> str:
    """The backend ``backend="auto"`` means here: "cupy" when CuPy imports and a
    CUDA device is present, else "numpy". The one place "auto" is decided."""
    return "cupy" if "cupy" in _REGISTRY and cuda_available() else "numpy"


def resolve_backend(backend: Any, **options: Any) -> Backend:
    """Turn the ``backend=`` parameter into a backend instance.

    ``backend`` is "auto", a registered name, or an object that implements
    :class:`Backend` (used as it is). "auto" picks "cupy" when CuPy imports and
    a CUDA device is present, else "numpy", and logs the choice at INFO level.
    """
    if isinstance(backend, str):
        if backend == "auto":
            name = auto_choice()
            logger.info("backend='auto' chose %r", name)
            return _factory(name)(**options)
        if backend not in _REGISTRY:
            raise ValueError(
                f"backend={backend!r} is not one of "
                f"{('auto',) + available_backends()}"
            )
        return _factory(backend)(**options)
    if isinstance(backend, Backend):
        return backend
    raise TypeError(
        "backend must be 'auto', a backend name or an object implementing "
        f"gpumeanshift.backends.Backend; got {type(backend).__name__}"
    )
