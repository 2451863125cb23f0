"""The algorithm, once: seeds -> shift until converged -> deduplicate -> labels.

Backend-agnostic: every array operation that touches all the data goes
through a :class:`~gpumeanshift.backends.base.Backend`; what runs here on the
host is small (the seeds' results and the centers).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from ._params import DEFAULTS, validate_params
from ._labels import nearest_labels, outside_reach
from ._validation import (array_module, check_array, check_bandwidth, check_sample_weight,
                          is_device_array, keeps_device, to_numpy, weights_beside)
from .backends.base import Backend, ShiftResult, resolve_backend
from .bandwidth import estimate_bandwidth, rule_of_thumb_bandwidth
from .dedup import deduplicate
from ._progress import ShiftProgress
from ._progress import active as progress_active
from .exceptions import warn_convergence
from .seeding import device_bin_seeds, get_bin_seeds

logger = logging.getLogger("gpumeanshift")


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
    # The validated data of the fit: a device array when the fit kept the
    # caller's device data on the device (see keeps_device), else host.
    data: object = None
    # The validated sample weights (float64, one per row; None without), where
    # the fit used them: on the device with ``data`` on the device, else host.
    weights: object = None


def make_backend(backend, *, n_jobs=None, max_memory=None) -> Backend:
    """The backend instance for ``backend=``, with the options that apply to it.

    ``n_jobs`` (threads) goes only to the NumPy backend, also when "auto"
    resolves to it; ``max_memory`` (bytes of scratch memory per call) to
    either backend chosen by name. A backend object is used as it is, so
    ``max_memory`` with one is refused rather than ignored.
    """
    from .backends.base import auto_choice

    checked = validate_params({"backend": backend, "n_jobs": n_jobs, "max_memory": max_memory})
    n_jobs, max_memory = checked["n_jobs"], checked["max_memory"]
    options = {}
    if max_memory is not None:
        options["max_memory"] = max_memory
        if not isinstance(backend, str):
            raise ValueError(
                "max_memory applies to a backend given by name ('auto', 'numpy', 'cupy'); "
                f"configure the {type(backend).__name__} object itself instead")
    name = backend
    if backend == "auto":
        name = auto_choice()
        logger.info("backend='auto' chose %r", name)
    if n_jobs is not None and n_jobs > 0 and name == "numpy":
        options["n_threads"] = n_jobs
    return resolve_backend(name, **options)


def device_backend(backend):
    """The backend of an image or tracking call, or None for the NumPy path.

    Takes every value ``MeanShift(backend=...)`` takes (None as "numpy"):
    a backend with the image capability (:class:`~gpumeanshift.backends.base.
    ImageBackend`, the CUDA backend) runs the call; any other (the NumPy
    backend, a backend without images) means the host path.
    """
    from .backends.base import ImageBackend

    if backend is None:
        return None
    be = make_backend(backend)
    return be if isinstance(be, ImageBackend) else None


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


def gaussian_from_flat(radius: float, n_features: int) -> float:
    """The Gaussian bandwidth with the per-coordinate variance of a flat ball.

    :func:`~gpumeanshift.estimate_bandwidth` describes a flat kernel: a ball
    of radius ``r``. Points uniform in that ball have per-coordinate variance
    ``r**2 / (d + 2)``; the Gaussian with the same variance has
    ``sigma = r / sqrt(d + 2)``.
    """
    return float(radius) / math.sqrt(n_features + 2)


def resolve_bandwidth(X: np.ndarray, bandwidth, backend: Backend, kernel: str = "flat",
                      sample_weight=None) -> float:
    """The bandwidth a fit uses: given, estimated (None) or by rule ("scott"...).

    None estimates it as scikit-learn does; for the Gaussian kernel the
    estimate is converted with :func:`gaussian_from_flat`. An estimate of 0
    (every point's k-th neighbour is a duplicate) is returned as 0.0: the fit
    then puts each distinct point in its own cluster, as scikit-learn does.
    """
    if bandwidth is None:
        h = float(estimate_bandwidth(X, backend=backend, sample_weight=sample_weight))
        return gaussian_from_flat(h, X.shape[1]) if kernel == "gaussian" else h
    if isinstance(bandwidth, str):
        return rule_of_thumb_bandwidth(X, bandwidth, sample_weight=sample_weight)
    return check_bandwidth(bandwidth)


def _host_row_key(rows: np.ndarray) -> np.ndarray:
    # -0.0 and 0.0 are one point (distance 0), as for scikit-learn's neighbours.
    return np.ascontiguousarray(rows + rows.dtype.type(0))


def distinct_rows(X: np.ndarray, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of X and how often each occurs (with ``weights``,
    the distinct rows of positive weight and their summed weight)."""
    if weights is None:
        uniq, counts = np.unique(_host_row_key(X), axis=0, return_counts=True)
        return uniq, counts.astype(np.int64)
    keep = weights > 0
    uniq, inverse = np.unique(_host_row_key(X[keep]), axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=weights[keep], minlength=len(uniq))


def shift_weights(weights):
    """What a backend's shift needs of the sample weights: ``(weights, scale)``.

    Equal weights change no step of the climb, only the intensities (which
    scale with them): they run the unweighted arithmetic, bit for bit, and
    the intensities are multiplied by ``scale``. Otherwise ``scale`` is None.
    """
    if weights is None:
        return None, None
    if (weights == weights[0]).all():
        return None, float(weights[0])
    return weights, None


def run_shift(be: Backend, X, seeds, weights, **kwargs) -> ShiftResult:
    """``be.shift`` with the sample weights (see :func:`shift_weights`)."""
    w, scale = shift_weights(weights)
    if w is not None:
        kwargs["weights"] = w
    res = be.shift(X, seeds, **kwargs)
    if scale is None:
        return res
    # scaled where it is (device intensities stay on the device)
    intensity = array_module(res.intensity).asarray(res.intensity)
    return ShiftResult(modes=res.modes, n_iter=res.n_iter,
                       intensity=intensity.astype(np.float64) * scale,
                       converged=res.converged, algorithm=res.algorithm)


class StepLoop:
    """The shift loop of seeds whose every step's sums are computed elsewhere.

    The Dask fit's "data" strategy asks each chunk of the data for its
    :meth:`~gpumeanshift.backends.base.Backend.partial_sums` at the
    :meth:`queries` and hands them to :meth:`step`, which adds them (in the
    order given: a fixed summation order), moves the seeds and applies the
    stopping rule of :class:`~gpumeanshift.backends.base.ShiftResult`: a seed
    stops when its step moved it by at most ``tol`` bandwidths (orphan: no
    weight within reach) or after ``max_iter`` counted steps; ``n_iter``
    does not count the stopping step and the intensity is the count of the
    last step.

    ``positions`` are the seeds in the frame of the sums, in the data's
    dtype; ``exact`` (the frame is the data's own units, see
    ``partial_sums(exact=True)``) compares the step with ``tol * bandwidth``
    by its square root, as scikit-learn does, else its square with ``tol**2``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.backends.base import resolve_backend
    >>> X = np.array([[0.0], [1.0], [5.0]])
    >>> # seeds at 0 and 18, in the frame x / bandwidth
    >>> loop = StepLoop(np.array([[0.0], [9.0]]), bandwidth=2.0, max_iter=300, tol=1e-3)
    >>> be = resolve_backend("numpy")
    >>> while loop.active.size:
    ...     loop.step([be.partial_sums(X, loop.queries(), bandwidth=2.0, kernel="flat")])
    >>> (loop.positions.ravel() * 2.0).tolist(), loop.n_iter.tolist(), loop.intensity.tolist()
    ([0.5, 18.0], [1, 0], [2, 0])
    """

    def __init__(self, positions, *, bandwidth: float, max_iter: int, tol: float,
                 exact: bool = False, weighted: bool = False):
        self.positions = np.array(positions)
        m = len(self.positions)
        self.n_iter = np.zeros(m, dtype=np.int64)
        self.intensity = np.zeros(m, dtype=np.float64 if weighted else np.int64)
        self.converged = np.zeros(m, dtype=bool)
        self.orphaned = np.zeros(m, dtype=bool)
        self.active = np.arange(m)
        self.iteration = 0
        self._max_iter = max_iter
        self._exact = exact
        self._limit = float(tol) * bandwidth if exact else float(tol) * float(tol)  # inf past 1e154

    def queries(self) -> np.ndarray:
        """The positions of the seeds still moving (C-contiguous)."""
        return np.ascontiguousarray(self.positions[self.active])

    def step(self, parts) -> None:
        """One step of the active seeds from their partial sums (any number
        of :class:`~gpumeanshift.backends.base.PartialSums`, host or device
        arrays, each for the seeds of :meth:`queries`)."""
        parts = list(parts)
        sums = to_numpy(parts[0].sums).copy()
        weight = to_numpy(parts[0].weight).copy()
        count = to_numpy(parts[0].count).copy()
        for p in parts[1:]:  # in the order given: a fixed summation order
            sums += to_numpy(p.sums)
            weight += to_numpy(p.weight)
            count += to_numpy(p.count)
        active = self.active
        old = self.positions[active]
        ok = weight > 0
        new = old.copy()
        new[ok] = sums[ok] / weight[ok, None]
        orphan = ~ok
        moved2 = np.einsum("ij,ij->i", new - old, new - old)
        if self._exact:
            done_tol = (np.sqrt(moved2) <= self._limit) & ~orphan
        else:
            done_tol = (moved2 <= self._limit) & ~orphan
        stop = orphan | done_tol | (self.iteration >= self._max_iter)
        self.intensity[active] = count  # from where this step started
        self.positions[active[ok]] = new[ok]
        self.converged[active[done_tol]] = True
        self.orphaned[active[orphan]] = True
        self.n_iter[active[~stop]] += 1
        self.active = active[~stop]
        self.iteration += 1
        if not self.active.size:
            self.intensity[self.orphaned] = 0


def zero_bandwidth_shift(uniq: np.ndarray, counts: np.ndarray, seeds: np.ndarray) -> ShiftResult:
    """What the shift loop gives with bandwidth 0, without running it.

    Only a seed's exact duplicates lie within distance 0, so every seed
    stays where it is after 0 iterations; its intensity is the number of data
    rows equal to it (0, an orphan, when it is not a data point). This is
    scikit-learn's result for ``bandwidth=0``.
    """
    seeds = _host_row_key(seeds)
    both = np.concatenate([uniq, seeds.astype(uniq.dtype, copy=False)])
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    count_of = np.zeros(int(inverse.max()) + 1 if inverse.size else 0, dtype=counts.dtype)
    count_of[inverse[:len(uniq)]] = counts
    m = len(seeds)
    return ShiftResult(modes=seeds, n_iter=np.zeros(m, np.int64),
                       intensity=count_of[inverse[len(uniq):]],
                       converged=np.ones(m, dtype=bool), algorithm="brute")


def finish(modes, n_iter, intensity, converged, h, max_iter, tol, *, stacklevel=4):
    """Drop orphan seeds, warn about unconverged ones, merge the modes.

    Returns the centers (strongest first), their intensities and the number
    of seeds stopped by ``max_iter``.
    """
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
            "increase max_iter or tol.",
            stacklevel=stacklevel,
        )
    centers, center_intensity = deduplicate(modes[alive], intensity[alive], h)
    return centers, center_intensity, n_unconverged


def fit(X, params, sample_weight=None) -> FitResult:
    """Run the whole mean-shift fit; see :class:`gpumeanshift.MeanShift`.

    ``params`` maps parameter names (see :mod:`gpumeanshift._params`) to
    values; names not given take their defaults. ``sample_weight`` weighs
    each row as that many copies of it (see ``MeanShift.fit``).
    """
    t0 = time.perf_counter()
    p = dict(DEFAULTS)
    p.update(validate_params(params))
    kernel, max_iter, tol, verbose = p["kernel"], p["max_iter"], p["tol"], p["verbose"]
    be = make_backend(p["backend"], n_jobs=p["n_jobs"], max_memory=p["max_memory"])

    # Device data stay on the device (validated there) for the backend's
    # calls, and so do the sample weights (uploaded once when given on the
    # host), bin seeding and the labels; only per-seed results, the seeds of
    # bin seeding and the centers come to the host. A zero bandwidth takes
    # one host copy.
    on_device = keeps_device(be, X)
    X = check_array(X, keep_device=on_device)
    w = check_sample_weight(sample_weight, X.shape[0])
    w = weights_beside(w, be, on_device)
    h = resolve_bandwidth(X, p["bandwidth"], be, kernel, w)
    if on_device and h == 0:  # each distinct row its own cluster: found on the host
        X, on_device = to_numpy(X), False
        w = None if w is None else to_numpy(w)
    # Rows of weight 0 take no part in the fit (they are labelled at the end).
    all_positive = w is None or bool((w > 0).all())
    X_fit = X if all_positive else X[w > 0]

    seeds = p["seeds"]
    if seeds is None:
        if p["bin_seeding"] and on_device:
            seeds = device_bin_seeds(X_fit, h, p["min_bin_freq"], be,
                                     sample_weight=None if w is None else w[w > 0])
        elif p["bin_seeding"]:
            seeds = get_bin_seeds(X_fit, h, p["min_bin_freq"],
                                  sample_weight=None if w is None else w[w > 0])
        else:
            seeds = X_fit
    else:
        seeds = check_array(seeds, name="seeds", keep_device=on_device)
        if seeds.shape[1] != X.shape[1]:
            raise ValueError(
                f"seeds has {seeds.shape[1]} features but X has {X.shape[1]}"
            )
    if on_device:
        seeds = seeds if seeds.dtype == X.dtype else seeds.astype(X.dtype)
    else:
        seeds = np.ascontiguousarray(to_numpy(seeds) if is_device_array(seeds) else seeds,
                                     dtype=X.dtype)
    if h > 0:
        check_scaled_extent(X, seeds, h)

    seeds_are_data = seeds is X_fit
    extra = {}
    if verbose:
        logger.info("fit: %d points x %d features, %d seeds, bandwidth=%g, kernel=%r, "
                    "backend=%r", X.shape[0], X.shape[1], len(seeds), h, kernel, be.name)
    if verbose or progress_active():  # progress_active: the command line's terminal line
        extra["progress"] = ShiftProgress(len(seeds), max_iter, log=bool(verbose))
    try:
        if h == 0:
            uniq, counts = distinct_rows(X, w)
            res = zero_bandwidth_shift(uniq, counts, seeds)
        else:
            res = run_shift(be, X, seeds, w, bandwidth=h, kernel=kernel, max_iter=max_iter,
                            tol=tol, algorithm=p["algorithm"], **extra)
    finally:
        if extra:
            extra["progress"].close()
    modes = to_numpy(res.modes)
    n_iter = to_numpy(res.n_iter)
    intensity = to_numpy(res.intensity)
    converged = to_numpy(res.converged)

    centers, center_intensity, n_unconverged = finish(
        modes, n_iter, intensity, converged, h, max_iter, tol)
    centers = centers.astype(X.dtype, copy=False)

    here = (lambda a: a) if on_device else to_numpy  # where the labels are made
    if p["label_assignment"] == "basin":
        # Each point takes the cluster its own climb reached: the center
        # nearest to the mode of the seed started at that point.
        if seeds_are_data and X_fit is X:
            point_modes = here(res.modes)
        elif h == 0:
            point_modes = X
        else:
            # The caller's algorithm, not the one "auto" chose: "grid" named
            # explicitly truncates the Gaussian, auto's grid does not.
            climb = dict(bandwidth=h, kernel=kernel, max_iter=max_iter, tol=tol,
                         algorithm=p["algorithm"])
            if seeds_are_data:  # the rows of weight 0 climb too, for their labels
                zero = w == 0
                point_modes = be.runtime.empty(X.shape, X.dtype) if on_device else np.empty_like(X)
                point_modes[~zero] = here(res.modes)
                point_modes[zero] = here(run_shift(be, X, X[zero], w, **climb).modes)
            else:
                point_modes = here(run_shift(be, X, X, w, **climb).modes)
        labels = here(nearest_labels(be, point_modes.astype(X.dtype, copy=False), centers))
        if not p["cluster_all"]:
            labels = outside_reach(X, labels, centers, h)
    else:
        labels = here(nearest_labels(be, X, centers, None if p["cluster_all"] else h))

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
        data=X,
        weights=w,
    )
