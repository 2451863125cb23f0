"""The algorithm, once: seeds -> shift until converged -> deduplicate -> labels.

Backend-agnostic: every array operation that touches all the data goes
through a :class:`~gpumeanshift.backends.base.Backend`; what runs here on the
host is small (the seeds' results and the centers).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass

import numpy as np

from ._validation import check_array, check_bandwidth, check_int, check_real
from .backends._spatial import ALGORITHMS
from .backends.base import KERNELS, Backend, resolve_backend
from .bandwidth import RULES, estimate_bandwidth, rule_of_thumb_bandwidth
from .dedup import deduplicate
from ._progress import ShiftProgress
from .exceptions import warn_convergence
from .seeding import get_bin_seeds

logger = logging.getLogger("gpumeanshift")

LABEL_ASSIGNMENTS = ("nearest", "basin")


@dataclass
class FitResult:
    cluster_centers: np.ndarray
    labels: np.ndarray
    n_iter: int
    bandwidth: float
    backend: str
    center_intensity: np.ndarray
    n_seeds: int
    n_unconverged: int
    seconds: float
    algorithm: str


def to_numpy(a) -> np.ndarray:
    """Host copy of a backend array (NumPy arrays are returned as they are)."""
    get = getattr(a, "get", None)
    return np.asarray(get()) if callable(get) and not isinstance(a, np.ndarray) else np.asarray(a)


def make_backend(backend, *, n_jobs=None, max_memory=None) -> Backend:
    """The backend instance for ``backend=``, with the options that apply to it.

    ``n_jobs`` (threads) goes only to the NumPy backend, also when "auto"
    resolves to it; ``max_memory`` (bytes of scratch memory per call) to
    either backend chosen by name. A backend object is used as it is, so
    ``max_memory`` with one is refused rather than ignored.
    """
    from .backends.base import available_backends, cuda_available

    options = {}
    if max_memory is not None:
        options["max_memory"] = check_int(max_memory, "max_memory", low=1)
        if not isinstance(backend, str):
            raise ValueError(
                "max_memory applies to a backend given by name ('auto', 'numpy', 'cupy'); "
                f"configure the {type(backend).__name__} object itself instead")
    name = backend
    if backend == "auto":
        name = "cupy" if "cupy" in available_backends() and cuda_available() else "numpy"
        logger.info("backend='auto' chose %r", name)
    if n_jobs is not None and name == "numpy":
        n_jobs = check_int(n_jobs, "n_jobs", low=-1)
        if n_jobs == 0:
            raise ValueError("n_jobs must be a positive integer or -1, got 0")
        if n_jobs > 0:
            options["n_threads"] = n_jobs
    return resolve_backend(name, **options)


def check_scaled_extent(X: np.ndarray, seeds: np.ndarray, h: float) -> None:
    """Refuse a bandwidth so small that the data, in bandwidths, pass the dtype's range.

    The backends work in units of the bandwidth (centred data divided by
    ``h``, in float64 and rounded once to the data's dtype); the span of the
    data and seeds in those units must fit the dtype with room to spare.
    """
    lo = min(float(X.min()), float(seeds.min()) if seeds.size else np.inf)
    hi = max(float(X.max()), float(seeds.max()) if seeds.size else -np.inf)
    with np.errstate(over="ignore"):
        span = (hi * 0.5 - lo * 0.5) / h * 2.0
    limit = float(np.finfo(X.dtype).max) / 16
    if not span <= limit:
        raise ValueError(
            f"bandwidth={h:g} is too small for this data: its coordinates span "
            f"{hi - lo if np.isfinite(hi - lo) else float('inf'):g}, i.e. {span:g} bandwidths, "
            f"more than {X.dtype.name} can represent (about {limit:g}). Pass a larger "
            "bandwidth" + (" or float64 data." if X.dtype == np.float32 else "."))


def resolve_bandwidth(X: np.ndarray, bandwidth, backend: Backend) -> float:
    """The bandwidth a fit uses: given, estimated (None) or by rule ("scott"...)."""
    if bandwidth is None:
        h = estimate_bandwidth(X, backend=backend)
        if h == 0.0:
            if (X.max(axis=0) == X.min(axis=0)).all():
                # All points identical: any bandwidth gives the same single cluster.
                return 1.0
            if int(X.shape[0] * 0.3) < 2:
                raise ValueError(
                    f"The estimated bandwidth is 0: with {X.shape[0]} points, "
                    "estimate_bandwidth's quantile=0.3 selects k = max(1, int(0.3 * n)) = 1, "
                    "and every point's 1st nearest neighbour is the point itself. "
                    "Pass bandwidth explicitly (or give at least 7 points)."
                )
            raise ValueError(
                "The estimated bandwidth is 0: at least 30% of the points are exact "
                "duplicates of their neighbours. Pass bandwidth explicitly."
            )
        return h
    if isinstance(bandwidth, str):
        if bandwidth not in RULES:
            raise ValueError(
                f"bandwidth must be a positive number, None, or one of {RULES}; got {bandwidth!r}"
            )
        return rule_of_thumb_bandwidth(X, bandwidth)
    return check_bandwidth(bandwidth)


def fit(
    X,
    *,
    bandwidth=None,
    kernel="gaussian",
    seeds=None,
    bin_seeding=False,
    min_bin_freq=1,
    cluster_all=True,
    max_iter=300,
    tol=1e-3,
    backend="auto",
    n_jobs=None,
    algorithm="auto",
    label_assignment="nearest",
    verbose=0,
    max_memory=None,
) -> FitResult:
    """Run the whole mean-shift fit; see :class:`gpumeanshift.MeanShift`."""
    t0 = time.perf_counter()
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if label_assignment not in LABEL_ASSIGNMENTS:
        raise ValueError(
            f"label_assignment must be one of {LABEL_ASSIGNMENTS}, got {label_assignment!r}"
        )
    max_iter = check_int(max_iter, "max_iter", low=0)
    min_bin_freq = check_int(min_bin_freq, "min_bin_freq", low=1)
    tol = check_real(tol, "tol", low=0.0)
    verbose = (int(verbose) if isinstance(verbose, (bool, np.bool_))
               else check_int(verbose, "verbose", low=0))
    if not isinstance(bin_seeding, (bool, np.bool_)):
        raise TypeError(f"bin_seeding must be True or False, got {bin_seeding!r}")
    if not isinstance(cluster_all, (bool, np.bool_)):
        raise TypeError(f"cluster_all must be True or False, got {cluster_all!r}")
    be = make_backend(backend, n_jobs=n_jobs, max_memory=max_memory)

    X = check_array(X)
    h = resolve_bandwidth(X, bandwidth, be)

    if seeds is None:
        seeds = get_bin_seeds(X, h, min_bin_freq) if bin_seeding else X
    else:
        seeds = check_array(seeds, name="seeds")
        if seeds.shape[1] != X.shape[1]:
            raise ValueError(
                f"seeds has {seeds.shape[1]} features but X has {X.shape[1]}"
            )
    seeds = np.ascontiguousarray(seeds, dtype=X.dtype)
    check_scaled_extent(X, seeds, h)

    seeds_are_data = seeds is X
    extra = {}
    if verbose:
        logger.info("fit: %d points x %d features, %d seeds, bandwidth=%g, kernel=%r, "
                    "backend=%r", X.shape[0], X.shape[1], len(seeds), h, kernel, be.name)
        try:
            takes_progress = "progress" in inspect.signature(be.shift).parameters
        except (TypeError, ValueError):  # a shift without an inspectable signature
            takes_progress = False
        if takes_progress:
            extra["progress"] = ShiftProgress(len(seeds), max_iter)
    try:
        res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=max_iter, tol=tol,
                       algorithm=algorithm, **extra)
    finally:
        if extra:
            extra["progress"].close()
    modes = to_numpy(res.modes)
    n_iter = to_numpy(res.n_iter)
    intensity = to_numpy(res.intensity)
    converged = to_numpy(res.converged)

    alive = intensity > 0
    if not alive.any():
        raise ValueError(
            f"No point was within bandwidth={h:f} of any seed. "
            "Try a different seeding strategy or increase the bandwidth."
        )
    n_unconverged = int(np.count_nonzero(alive & ~converged))
    if n_unconverged:
        warn_convergence(
            f"{n_unconverged} of {int(alive.sum())} seeds did not converge within "
            f"max_iter={max_iter} iterations (tol={tol} x bandwidth); "
            "increase max_iter or tol."
        )
    centers, center_intensity = deduplicate(modes[alive], intensity[alive], h)
    centers = centers.astype(X.dtype, copy=False)

    if label_assignment == "basin":
        # Each point takes the cluster its own climb reached: the center
        # nearest to the mode of the seed started at that point.
        if seeds_are_data:
            point_modes = modes
        else:
            # The caller's algorithm, not the one "auto" chose: "grid" named
            # explicitly truncates the Gaussian, auto's grid does not.
            point_modes = to_numpy(be.shift(X, X, bandwidth=h, kernel=kernel, max_iter=max_iter,
                                             tol=tol, algorithm=algorithm).modes)
        labels, _ = be.nearest(np.ascontiguousarray(point_modes, dtype=X.dtype), centers)
        labels = to_numpy(labels).astype(np.int64, copy=False)
        if not cluster_all:
            diff = X.astype(np.float64) - centers[labels]
            labels = np.where(np.einsum("ij,ij->i", diff, diff) <= h * h, labels, -1)
    else:
        labels, dist = be.nearest(X, centers)
        labels = to_numpy(labels).astype(np.int64, copy=False)
        if not cluster_all:
            labels = np.where(to_numpy(dist) <= h, labels, -1)

    seconds = time.perf_counter() - t0
    if verbose:
        logger.info("fit: %d clusters from %d seeds (%d not converged) in %d iterations, "
                    "%.3f s on backend %r", len(centers), len(seeds), n_unconverged,
                    int(n_iter.max()) if n_iter.size else 0, seconds, be.name)
    logger.debug(
        "fit: n=%d d=%d seeds=%d centers=%d n_iter=%d backend=%s %.3fs",
        X.shape[0], X.shape[1], len(seeds), len(centers), int(n_iter.max()), be.name, seconds,
    )
    return FitResult(
        cluster_centers=centers,
        labels=labels,
        n_iter=int(n_iter.max()) if n_iter.size else 0,
        bandwidth=h,
        backend=be.name,
        center_intensity=center_intensity,
        n_seeds=len(seeds),
        n_unconverged=n_unconverged,
        seconds=seconds,
        algorithm=res.algorithm,
    )
