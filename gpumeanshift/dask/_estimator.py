"""The estimator: :class:`MeanShift` on a Dask array (fit, predict)."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np

import dask.array as da
from distributed import futures_of

from .. import _driver
from .._estimator import MeanShift as _LocalMeanShift
from .._base import convert_output
from .._params import validate_params
from .._progress import ShiftProgress
from .._validation import check_array, check_bandwidth, is_device_array
from ._bandwidth import estimate_bandwidth
from ._cluster import _as_dask_array, _chunk_futures, _gather, _get_client, _label_meta, _workers
from ._passes import _Weights, _as_weights, _basin_labels, _bin_seeds, _finite_and_center, \
    _rule_bandwidth
from ._strategies import _Strategies
from ._tasks import _bincount_block, _label_block

STRATEGIES = ("auto", "seeds", "data")

logger = logging.getLogger("gpumeanshift")

# The smallest max_memory a task takes: a 1024-element block of about 4
# live float64 values per element.
_BYTES_PER_ELEMENT = 32

class MeanShift(_Strategies, _LocalMeanShift):
    """Mean-shift clustering of a Dask array on a Dask cluster.

    The parameters and fitted attributes of :class:`gpumeanshift.MeanShift`,
    and the same result: same centers (to rounding), labels and ``n_iter_``.
    Each worker uses its own backend (``backend="auto"``: the GPU of a
    ``dask_cuda.LocalCUDACluster`` worker, else NumPy); chunks may be NumPy
    or CuPy arrays.

    Parameters
    ----------
    bandwidth, kernel, seeds, bin_seeding, min_bin_freq, cluster_all, max_iter, tol, backend, n_jobs, max_memory, output_type, algorithm, label_assignment, verbose
        As for :class:`gpumeanshift.MeanShift`. ``max_memory`` bounds the
        scratch memory of each task on its worker (the backend's blocks; for
        ``strategy="data"`` the seed x point blocks of every chunk).
        ``verbose`` logs on the client: the fit's start, every round of the
        "data" loop (the "seeds" shards report once, when done) and its end,
        with a tqdm bar after 2 seconds as on one machine. ``bandwidth=None`` estimates
        it from every point (O(n^2), the data copied to every worker); pass a
        number, a rule, or a value from :func:`estimate_bandwidth` with
        ``n_samples`` for large data. ``n_jobs`` is the NumPy backend's
        threads per task (None: the worker's thread count). With
        ``strategy="data"``, ``algorithm`` "auto" and "brute" are the exact
        bounding-box culling and "grid" truncates the Gaussian as the
        single-machine grid does. ``label_assignment="basin"`` climbs every
        point (the client then holds one mode per point).
    strategy : {"auto", "seeds", "data"}, default="auto"
        How the shift loop is distributed (see the module documentation):
        "seeds" copies the data to every worker and shards the seeds; "data"
        keeps the data sharded and reduces per-seed partial sums on the client
        every iteration; "auto" picks "seeds" when the data fit comfortably in
        the smallest worker's memory.
    client : distributed.Client, default=None
        The cluster; None uses the default client.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Coordinates of cluster centers, strongest first.
    labels_ : dask array of shape (n_samples,)
        Cluster index of each point, persisted on the cluster, chunked as X.
    n_iter_ : int
        Largest number of iterations any seed performed.
    n_features_in_ : int
        Number of features seen during fit.
    bandwidth_ : float
        The bandwidth actually used.
    backend_ : str
        Backend(s) the workers used for the shift ("numpy", "cupy", or both
        joined by "+").
    algorithm_ : str
        The neighbourhood search that ran ("brute" or "grid"; both joined by
        "+" when the seed shards differed).
    strategy_ : str
        "seeds" or "data": the strategy the fit used.
    cluster_sizes_ : ndarray of shape (n_clusters,)
        Number of points labelled with each cluster.
    center_intensity_ : ndarray of shape (n_clusters,)
        Points within one bandwidth of each center's last shift step.

    See Also
    --------
    gpumeanshift.MeanShift : The single-machine estimator.
    estimate_bandwidth : Bandwidth estimate of a Dask array.

    Notes
    -----
    distributed starts CPU workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
    which makes the NumPy backend's temporaries page-fault on every use
    (measured 2-7x slower); set
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to None
    in the Dask configuration before the cluster starts.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from distributed import Client
    >>> from gpumeanshift.dask import MeanShift
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1,
    ...                 dashboard_address=":0")
    >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
    ...                   chunks=3)
    >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy", strategy="data").fit(X)
    >>> ms.labels_.compute()
    array([1, 1, 1, 0, 0, 0])
    >>> ms.cluster_centers_
    array([[3.33333333, 6.        ],
           [1.33333333, 0.66666667]])
    >>> ms.predict(da.from_array(np.array([[0, 0], [5, 5]]))).compute()
    array([1, 0])
    >>> client.close()
    """
    def __init__(
        self,
        *,
        bandwidth=None,
        kernel="flat",
        seeds=None,
        bin_seeding=False,
        min_bin_freq=1,
        cluster_all=True,
        max_iter=300,
        tol=1e-3,
        backend="auto",
        n_jobs=None,
        max_memory=None,
        output_type="input",
        algorithm="auto",
        label_assignment="nearest",
        verbose=0,
        strategy="auto",
        client=None,
    ):
        super().__init__(
            bandwidth=bandwidth, kernel=kernel, seeds=seeds, bin_seeding=bin_seeding,
            min_bin_freq=min_bin_freq, cluster_all=cluster_all, max_iter=max_iter, tol=tol,
            backend=backend, n_jobs=n_jobs, max_memory=max_memory, output_type=output_type,
            verbose=verbose,
        )
        self.algorithm = algorithm
        self.label_assignment = label_assignment
        self.strategy = strategy
        self.client = client

    def __getstate__(self):
        state = super().__getstate__()
        state["client"] = None  # a Client does not travel; the default one is used
        return state

    # ------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None):
        """Cluster a Dask array on the cluster.

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features)
            Samples (NumPy or CuPy chunks); other array-likes are wrapped
            with :func:`dask.array.from_array`.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Weight of each row: a row of weight w counts as w copies of
            itself (integer weights give the fit of ``np.repeat(X, w,
            axis=0)``; scaling every weight by one factor changes nothing
            but ``min_bin_freq``'s meaning, which compares summed weights).
            A row of weight 0 takes no part in the fit and is no seed, but
            is labelled. Weights must be finite, >= 0 and not all 0
            (ValueError otherwise; the values of a Dask array are checked in
            the fit's first pass over the data). A Dask array is rechunked
            to X's rows. Intensities become summed weights (float64).

        Returns
        -------
        self : MeanShift
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
        >>> ms.strategy_, ms.cluster_sizes_, ms.n_iter_
        ('seeds', array([3, 3]), 2)
        >>> ms.labels_.compute()
        array([1, 1, 1, 0, 0, 0])
        >>> client.close()
        """
        t0 = time.perf_counter()
        params = self._check_params()
        client = _get_client(self.client)
        X = _as_dask_array(X)
        W = _as_weights(sample_weight, X)
        device_input = is_device_array(X._meta)
        X, futs = _chunk_futures(client, X)
        weights = None
        if W is not None:
            W2, wfuts = _chunk_futures(client, W[:, None])
            W = W2[:, 0]
        center, int_bound, total, common = _finite_and_center(client, X, W)
        if W is not None:
            weights = _Weights(W, wfuts, total, common)
        # Integer data, flat kernel: the "data" loop decides boundary ties
        # exactly, in the data's own units, as the single-machine fit does.
        lattice = int_bound if self.kernel == "flat" else None
        h = self._resolve_bandwidth(client, X, weights, center)

        seeds = self._initial_seeds(client, X, futs, h, params["min_bin_freq"], weights)
        strategy = self._choose_strategy(client, X, seeds)
        fit_id = uuid.uuid4().hex[:8]
        shift_args = dict(bandwidth=h, kernel=self.kernel, max_iter=params["max_iter"],
                          tol=params["tol"])
        t_shift = time.perf_counter()
        n_seeds = X.shape[0] if seeds is None else len(seeds)
        progress = None
        if params["verbose"]:
            logger.info("dask fit: %d points x %d features in %d chunks, %d seeds, "
                        "bandwidth=%g, kernel=%r, strategy=%r, %d workers", X.shape[0],
                        X.shape[1], len(futs), n_seeds, h, self.kernel, strategy,
                        len(_workers(client)))
            progress = ShiftProgress(n_seeds, params["max_iter"])
        # Basin labels with weights: the rows of weight 0 climb too (they are
        # labelled by their modes) but their climbs are no seeds.
        every_row = (seeds is None and h > 0 and weights is not None
                     and self.label_assignment == "basin")
        try:
            if h == 0:
                shifted = self._shift_zero_bandwidth(client, futs, seeds, weights)
            else:
                shifted = self._shift(client, X, futs, seeds, center, fit_id, shift_args,
                                      strategy, progress, lattice=lattice, weights=weights,
                                      all_rows=every_row)
        finally:
            if progress is not None:
                progress.close()
        all_modes = shifted["modes"]
        if every_row:
            live = weights.on_client(client) > 0
            for key in ("modes", "n_iter", "intensity", "converged"):
                shifted[key] = shifted[key][live]
        stats = shifted["stats"]
        stats["shift_seconds"] = time.perf_counter() - t_shift
        # What a round costs beyond its slowest task: submission, scheduling,
        # transfers of seeds and sums, gathering and the client's arithmetic.
        stats["overhead_per_round"] = (
            stats["shift_seconds"] - sum(stats["task_seconds"])) / max(1, stats["rounds"])
        modes, n_iter = shifted["modes"], shifted["n_iter"]

        centers, center_intensity, n_unconverged = _driver.finish(
            modes, n_iter, shifted["intensity"], shifted["converged"], h,
            params["max_iter"], params["tol"], stacklevel=3)
        centers = centers.astype(X.dtype, copy=False)

        if self.label_assignment == "basin":
            if seeds is None and h > 0 and (weights is None or every_row):
                point_modes = all_modes  # every point was a seed: its climb is done
            elif h == 0:  # every point stays where it is
                point_modes = X
            else:
                point_modes = self._shift(client, X, futs, None, center, f"{fit_id}-basin",
                                          shift_args, strategy, lattice=lattice,
                                          weights=weights, all_rows=True)["modes"]
            labels = _basin_labels(X, point_modes, centers, None if self.cluster_all else h)
        else:
            threshold = None if self.cluster_all else h
            labels = X.map_blocks(_label_block, centers, threshold, self.backend, self.n_jobs,
                                  self.max_memory,
                                  drop_axis=1, dtype=np.int64, meta=_label_meta(X))
        labels = client.persist(labels)
        by_key = {f.key: f for f in futures_of(labels)}
        label_futs = [by_key[k] for k in labels.__dask_keys__()]  # chunk order, as the weights
        wparts = [None] * len(label_futs) if weights is None else weights.futs
        sizes = _gather(client, [client.submit(_bincount_block, f, len(centers), w, pure=False)
                                 for f, w in zip(label_futs, wparts)], "labelling")
        size_type = np.int64 if weights is None else np.float64
        sizes = np.sum(sizes, axis=0).astype(size_type) if sizes else np.zeros(len(centers),
                                                                                size_type)

        out = lambda a: convert_output(a, self.output_type, device_input)  # noqa: E731
        self._device_input = device_input
        self.cluster_centers_ = out(centers)
        self.labels_ = labels
        self.n_iter_ = int(n_iter.max()) if n_iter.size else 0
        self.n_features_in_ = int(X.shape[1])
        self.bandwidth_ = h
        self.backend_ = "+".join(sorted(shifted["backends"]))
        self.algorithm_ = "+".join(sorted(shifted["algorithms"]))
        self.strategy_ = strategy
        self.cluster_sizes_ = out(sizes)
        self.center_intensity_ = out(center_intensity)
        self._centers_host = centers
        stats["seconds"] = time.perf_counter() - t0
        stats["n_unconverged"] = n_unconverged
        self._fit_stats = stats
        if params["verbose"]:
            logger.info("dask fit: %d clusters from %d seeds (%d not converged) in %d "
                        "iterations, %.3f s (strategy %r, backend %r)", len(centers), len(modes),
                        n_unconverged, self.n_iter_, stats["seconds"], strategy, self.backend_)
        logger.debug("dask fit: n=%d d=%d seeds=%d centers=%d n_iter=%d strategy=%s %.3fs",
                     X.shape[0], X.shape[1], len(modes), len(centers), self.n_iter_,
                     strategy, stats["seconds"])
        return self

    def _check_params(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        params = self.get_params()
        del params["strategy"], params["client"]
        checked = validate_params(params)
        max_memory = checked["max_memory"]
        if max_memory is not None and max_memory < 1024 * _BYTES_PER_ELEMENT:
            raise ValueError(
                f"max_memory={max_memory} bytes is too small: a task needs at least "
                f"{1024 * _BYTES_PER_ELEMENT} bytes (a 1024-element block)")
        if max_memory is not None and not isinstance(self.backend, str):
            raise ValueError(
                "max_memory applies to a backend given by name ('auto', 'numpy', 'cupy'); "
                "configure a backend object itself")
        return checked

    def _resolve_bandwidth(self, client, X, weights=None, center=None):
        bw = self.bandwidth
        W = None if weights is None else weights.W
        if bw is None:
            h = float(estimate_bandwidth(X, backend=self.backend, n_jobs=self.n_jobs,
                                         client=client, sample_weight=W))
            return _driver.gaussian_from_flat(h, X.shape[1]) if self.kernel == "gaussian" else h
        if isinstance(bw, str):
            if weights is None:
                return _rule_bandwidth(client, X, bw)
            return _rule_bandwidth(client, X, bw, W, weights.total, center)
        return check_bandwidth(bw)

    def _initial_seeds(self, client, X, futs, h, min_bin_freq, weights=None):
        """Seeds as a host array, or None for "every point" (left on the workers;
        with weights, every point of positive weight)."""
        if self.seeds is not None:
            seeds = self.seeds
            if isinstance(seeds, da.Array):
                seeds = client.compute(seeds, sync=True)
            seeds = check_array(seeds, name="seeds")
            if seeds.shape[1] != X.shape[1]:
                raise ValueError(f"seeds has {seeds.shape[1]} features but X has {X.shape[1]}")
            return np.ascontiguousarray(seeds, dtype=X.dtype)
        if self.bin_seeding and h > 0:  # bins of size 0 are the points themselves
            if weights is None:
                return _bin_seeds(client, X, futs, h, min_bin_freq)
            return _bin_seeds(client, X, futs, h, min_bin_freq, weights.futs, weights.total)
        return None

    # ------------------------------------------------------------ predicting
    def predict(self, X, *, outlier_threshold=None):
        """Label each point with its nearest cluster center.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
            New data. A Dask array gives a lazy Dask array of labels (one
            ``map_blocks`` task per chunk); anything else is labelled here,
            as :meth:`gpumeanshift.MeanShift.predict` does.
        outlier_threshold : float or "bandwidth", default=None
            When given, points farther than this from every center are -1.

        Returns
        -------
        labels : dask array or ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
        >>> labels = ms.predict(da.from_array(np.array([[0, 0], [5, 5], [9, 9]]), chunks=2),
        ...                     outlier_threshold="bandwidth")
        >>> labels.chunks, labels.compute()
        (((2, 1),), array([ 1,  0, -1]))
        >>> ms.predict(np.array([[0, 0], [5, 5]]))
        array([1, 0])
        >>> client.close()
        """
        if not isinstance(X, da.Array):
            return super().predict(X, outlier_threshold=outlier_threshold)
        self._check_fitted()
        X = _as_dask_array(X)
        threshold = self._predict_threshold(X, outlier_threshold)
        centers = self._centers_host.astype(X.dtype, copy=False)
        return X.map_blocks(_label_block, centers, threshold, self.backend, self.n_jobs,
                            getattr(self, "max_memory", None),
                            drop_axis=1, dtype=np.int64, meta=_label_meta(X))

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_`` (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features)
            Samples to cluster.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Weights of the rows, as for :meth:`fit`.

        Returns
        -------
        labels : dask array of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np, dask.array as da
        >>> from distributed import Client
        >>> from gpumeanshift.dask import MeanShift
        >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
        ...                 dashboard_address=":0")
        >>> X = da.from_array(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]),
        ...                   chunks=3)
        >>> labels = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit_predict(X)
        >>> labels.chunks, labels.compute()
        (((3, 3),), array([1, 1, 1, 0, 0, 0]))
        >>> client.close()
        """
        return self.fit(X, sample_weight=sample_weight).labels_
