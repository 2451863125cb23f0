"""The scikit-learn-compatible estimator and its function form."""

from __future__ import annotations

import numpy as np

from . import _driver
from ._base import EstimatorParams, convert_output
from ._density import DensityMixin
from ._labels import nearest_labels
from ._params import OUTPUT_TYPES, validate_params
from ._validation import (array_module, check_array, check_feature_names, check_real,
                          feature_names, is_device_array)
from .exceptions import not_fitted_error

__all__ = ["MeanShift", "mean_shift", "OUTPUT_TYPES"]


class MeanShift(EstimatorParams, DensityMixin):
    """Mean-shift clustering, scikit-learn's algorithm on the CPU or a GPU.

    Every seed climbs the kernel density estimate of the data to a mode; modes
    closer than one bandwidth to a stronger mode are merged; each point is
    labelled by its nearest center. With ``kernel="flat"`` the results equal
    :class:`sklearn.cluster.MeanShift` with the same parameters.

    Parameters
    ----------
    bandwidth : float, {"scott", "silverman"} or None, default=None
        Kernel bandwidth. None estimates it with :func:`estimate_bandwidth`
        (scikit-learn's default, ``quantile=0.3``); for the Gaussian kernel
        that flat-kernel radius ``r`` becomes ``r / sqrt(n_features + 2)``,
        the Gaussian with the same per-coordinate variance. An estimate of 0
        (every point's neighbours are its duplicates) puts each distinct
        point in its own cluster, as scikit-learn does. "scott" and
        "silverman" use the normal-reference rules of
        :func:`gpumeanshift.bandwidth.rule_of_thumb_bandwidth`.
    kernel : {"flat", "gaussian"}, default="flat"
        "flat" averages the points within distance h (scikit-learn's kernel);
        "gaussian" weighs every point by ``exp(-|x - s|^2 / (2 h^2))``.
    seeds : array-like of shape (n_seeds, n_features), default=None
        Where the climbs start. None uses the bins of ``bin_seeding`` or every point.
    bin_seeding : bool, default=False
        Start from the occupied cells of a grid of side ``bandwidth``
        (see :func:`get_bin_seeds`): far fewer seeds, much faster.
    min_bin_freq : int, default=1
        With ``bin_seeding``, only cells with at least this many points seed.
    cluster_all : bool, default=True
        False labels -1 the points farther than one bandwidth from every center.
    max_iter : int, default=300
        Most shift iterations per seed.
    tol : float, default=1e-3
        A seed stops when a step moves it by at most ``tol * bandwidth``
        (scikit-learn's fixed rule is ``tol=1e-3``).
    backend : {"auto", "numpy", "cupy"} or Backend, default="auto"
        Where the arithmetic runs. "auto" uses the GPU when CuPy and a device
        are present, else NumPy.
    n_jobs : int, default=None
        Threads of the NumPy backend; None or -1 uses every available core.
        Ignored by the CUDA backend (also when "auto" chooses it).
    max_memory : int, default=None
        Bytes of scratch memory one backend call may use (None: the
        backend's default). The NumPy backend sizes its tiles from it (the
        blocks that grow with points x seeds; copies of the inputs come on
        top); the CUDA backend caps its seed batches with it (on top of the
        data and result buffers). A limit too small to make progress is a
        ValueError. Results do not depend on it beyond rounding. Applies to
        a backend given by name; a backend object is configured itself.
        It is a cap on scratch blocks, not on the process: for large n the
        peak is dominated by the copies of the data (sorted, scaled, kept
        for ``score_samples``: several times ``X.nbytes``), which it does not
        bound. A lower value means more, smaller blocks: a slower fit, and
        not a lower peak (2,000,000 x 2 uniform points, bin seeding: peak
        RSS 364 MB by default, 423 MB with ``max_memory=1e6``, measured
        once each). Lower it to share a machine with other work, not to
        shrink a fit that already fits.
    output_type : {"input", "numpy", "cupy"}, default="input"
        Array type of fitted attributes and results: "input" follows the type
        of the data given to ``fit`` (a CuPy array in, CuPy arrays out).
    algorithm : {"auto", "brute", "grid"}, default="auto"
        How each seed finds the points within reach. "brute" scans the data
        sorted along one axis, pruned to each tile's bounding box (exact, any
        dimension). "grid" uses a cell list and visits the 3^d cells around a
        seed: exact for the flat kernel; the Gaussian is truncated at 6
        bandwidths (largest dropped weight exp(-18), about 1.5e-8). "auto"
        takes the grid for at most 3 features when it visits under a quarter
        of the points; for the Gaussian it then uses a reach of about 9-11
        bandwidths and proves, seed by seed and step by step, that the dropped
        weights move the step by less than half a unit of rounding (a seed
        that cannot prove it takes brute force's exact step), so results
        equal brute force's to rounding. See ``algorithm_``.
    label_assignment : {"nearest", "basin"}, default="nearest"
        "nearest" labels each point by its nearest center (scikit-learn);
        "basin" by the center its own climb reaches (its basin of attraction;
        with seeds other than the data every point is climbed once more).
    verbose : int or bool, default=0
        0 reports nothing. 1 (or True) logs the fit's start, every round of
        the shift loop (iteration, seeds still moving) and its end at INFO
        level through the ``"gpumeanshift"`` logger (the library adds no
        handler: ``logging.basicConfig(level=logging.INFO)`` shows them), and
        shows a tqdm progress bar on stderr when tqdm is installed and the
        shift loop runs longer than 2 seconds.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Coordinates of cluster centers, strongest (most points within one
        bandwidth) first; same dtype as the data (integers become float64).
    labels_ : ndarray of shape (n_samples,)
        Cluster index of each point (-1 for outliers when ``cluster_all=False``).
    n_iter_ : int
        Largest number of iterations any seed performed.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X was a DataFrame whose
        column names are all strings. ``predict`` and ``score_samples``
        then refuse data whose columns are named differently or in another
        order (ValueError), and warn when only one side has names.
    bandwidth_ : float
        The bandwidth actually used.
    backend_ : str
        Name of the backend that ran the fit.
    algorithm_ : str
        The neighbourhood search that ran: "brute" or "grid".
    cluster_sizes_ : ndarray of shape (n_clusters,)
        Number of points labelled with each cluster.
    center_intensity_ : ndarray of shape (n_clusters,)
        Points within one bandwidth of each center's last shift step.

    See Also
    --------
    mean_shift : The function form.
    estimate_bandwidth : scikit-learn's bandwidth estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
    >>> ms.labels_
    array([1, 1, 1, 0, 0, 0])
    >>> ms.predict([[0, 0], [5, 5]])
    array([1, 0])
    >>> ms.cluster_centers_
    array([[3.33333333, 6.        ],
           [1.33333333, 0.66666667]])
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
    ):
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.seeds = seeds
        self.bin_seeding = bin_seeding
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.max_iter = max_iter
        self.tol = tol
        self.backend = backend
        self.n_jobs = n_jobs
        self.max_memory = max_memory
        self.output_type = output_type
        self.algorithm = algorithm
        self.label_assignment = label_assignment
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Perform clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to cluster (NumPy, lists, CuPy or other CUDA arrays).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample, as if it were repeated that many times
            (counts per location, histogram bins, multiplicities): for
            integer weights the fit equals the fit of ``np.repeat(X,
            sample_weight, axis=0)``, with each row labelled as its copies.
            Each shift step is the weighted mean of the points in reach;
            ``center_intensity_`` and ``cluster_sizes_`` become summed
            weights; the estimated bandwidth, bin seeding (``min_bin_freq``
            compares summed weight) and ``score_samples`` are weighted too.
            Multiplying every weight by a constant changes nothing but those
            sums (and ``min_bin_freq``'s meaning). Rows of weight 0 take no
            part in the fit but are labelled. Finite values >= 0, not all 0.

        Returns
        -------
        self : MeanShift
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
        >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
        >>> ms.cluster_sizes_, ms.n_iter_, ms.bandwidth_, ms.backend_
        (array([3, 3]), 2, 2.0, 'numpy')
        """
        params = validate_params(self.get_params())
        device_input = is_device_array(X)
        names = feature_names(X)
        result = _driver.fit(X, params, sample_weight)
        weights = result.weights  # validated, where the labels are (host or device)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._device_input = device_input
        out = lambda a: convert_output(a, self.output_type, device_input, X)  # noqa: E731
        self.cluster_centers_ = out(result.cluster_centers)
        self.labels_ = out(result.labels)
        self.n_iter_ = result.n_iter
        self.n_features_in_ = int(result.cluster_centers.shape[1])
        self.bandwidth_ = result.bandwidth
        self.backend_ = result.backend
        self.algorithm_ = result.algorithm
        clustered = result.labels >= 0
        xp = array_module(result.labels)
        self.cluster_sizes_ = out(
            xp.bincount(result.labels[clustered], minlength=len(result.cluster_centers),
                        weights=None if weights is None else weights[clustered])
        )
        self.center_intensity_ = out(result.center_intensity)
        self._centers_host = result.cluster_centers
        # score_samples needs the training data: keep a private copy, on the
        # device when the fit kept the data there, else on the host
        # (n_samples * n_features * itemsize bytes; never an alias of the
        # caller's array, so later changes to it do not change the scores).
        X_fit = result.data if result.data is not None else check_array(X)
        if X_fit is X or (isinstance(X, np.ndarray) and np.may_share_memory(X_fit, X)):
            X_fit = X_fit.copy()
        self._fit_X = X_fit
        self._fit_weight = weights
        return self

    @classmethod
    def _from_centers(cls, centers, bandwidth, params=None, *, backend_name="", n_iter=0,
                      cluster_sizes=None):
        """A fitted estimator from its centers, without running a fit.

        The one supported way to restore fitted state (used by
        :func:`gpumeanshift.load_model`): ``predict`` then works as after
        ``fit``. Attributes that only a fit can produce (``labels_``,
        ``center_intensity_``, ``algorithm_``) are not set, and neither is
        the training data ``score_samples`` needs.

        Parameters
        ----------
        centers : ndarray of shape (n_clusters, n_features), float32 or float64
            The cluster centers, finite.
        bandwidth : float
            The bandwidth the centers were found with, positive.
        params : dict, default=None
            Constructor parameters (``kernel``, ``backend``, ...).
        backend_name : str, default=""
            ``backend_``: the backend that ran the original fit.
        n_iter : int, default=0
            ``n_iter_`` of the original fit.
        cluster_sizes : array-like of shape (n_clusters,), default=None
            ``cluster_sizes_``; not set when None.

        Returns
        -------
        model : MeanShift

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> ms = MeanShift._from_centers(np.array([[0.0], [5.0]]), 1.0, {"backend": "numpy"})
        >>> ms.predict([[0.4], [4.0]])
        array([0, 1])
        """
        model = cls(**(params or {}))
        centers = np.asarray(centers)
        if centers.ndim != 2 or centers.shape[0] < 1 or centers.shape[1] < 1:
            raise ValueError(f"centers must be a non-empty 2-D array, got shape {centers.shape}")
        if centers.dtype not in (np.float32, np.float64):
            raise TypeError(f"centers must be float32 or float64, got {centers.dtype}")
        if not np.isfinite(centers).all():
            raise ValueError("centers contains NaN or infinity")
        bandwidth = check_real(bandwidth, "bandwidth", low=0.0, low_inclusive=False)
        if cluster_sizes is not None:
            cluster_sizes = np.asarray(cluster_sizes)
            if cluster_sizes.shape != (len(centers),) or cluster_sizes.dtype.kind not in "iuf":
                raise ValueError(f"cluster_sizes must be {len(centers)} numbers, got "
                                 f"{cluster_sizes.dtype} with shape {cluster_sizes.shape}")
            # Counts, or summed weights (float64) after a weighted fit.
            model.cluster_sizes_ = cluster_sizes.astype(
                np.int64 if cluster_sizes.dtype.kind in "iu" else np.float64)
        model.cluster_centers_ = centers
        model.n_features_in_ = int(centers.shape[1])
        model.bandwidth_ = bandwidth
        model.backend_ = str(backend_name)
        model.n_iter_ = int(n_iter)
        # predict() reads the host copy of the centers; see fit.
        model._centers_host = centers
        model._device_input = False
        return model

    def _check_fitted(self):
        if not hasattr(self, "_centers_host"):
            raise not_fitted_error(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator."
            )

    def _predict_threshold(self, X, outlier_threshold):
        """Check ``X``'s feature count against the fit; the outlier threshold
        of :meth:`predict` as a distance (None for no threshold)."""
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if outlier_threshold is None:
            return None
        if isinstance(outlier_threshold, str):
            if outlier_threshold != "bandwidth":
                raise ValueError(
                    f"outlier_threshold must be a number or 'bandwidth', got {outlier_threshold!r}"
                )
            return self.bandwidth_
        return check_real(outlier_threshold, "outlier_threshold", low=0.0)

    def predict(self, X, *, outlier_threshold=None):
        """Label each point with its nearest cluster center.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.
        outlier_threshold : float or "bandwidth", default=None
            When given, points farther than this distance from every center
            are labelled -1; "bandwidth" uses ``bandwidth_``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Index of the nearest center, or -1 for outliers.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
        >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X)
        >>> ms.predict([[0.2], [4.9], [20.0]], outlier_threshold="bandwidth")
        array([ 0,  1, -1])
        """
        self._check_fitted()
        device_input = is_device_array(X)
        check_feature_names(getattr(self, "feature_names_in_", None), X, type(self).__name__)
        be = _driver.make_backend(self.backend, n_jobs=getattr(self, "n_jobs", None),
                                  max_memory=getattr(self, "max_memory", None))
        like = X
        on_device = _driver.keeps_device(be, X)
        X = check_array(X, keep_device=on_device)
        threshold = self._predict_threshold(X, outlier_threshold)
        centers = self._centers_host.astype(X.dtype, copy=False)
        labels = nearest_labels(be, X, centers, threshold)
        if not on_device:
            labels = _driver.to_numpy(labels)
        return convert_output(labels, self.output_type, device_input, like)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to cluster.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample; see :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster labels.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
        >>> MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit_predict(X)
        array([1, 1, 1, 0, 0, 0])
        >>> MeanShift(bandwidth=6, kernel="flat", backend="numpy").fit_predict(X)
        array([0, 0, 0, 0, 0, 0])
        """
        return self.fit(X, sample_weight=sample_weight).labels_

    def __getstate__(self):
        # Pickles hold host arrays only, whatever device the fit ran on:
        # fitted attributes, private state and array parameters (seeds) alike.
        state = self.__dict__.copy()
        for key, value in state.items():
            if is_device_array(value):
                state[key] = _driver.to_numpy(value)
        return state


def mean_shift(
    X,
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
    algorithm="auto",
    label_assignment="nearest",
    verbose=0,
    max_memory=None,
    sample_weight=None,
):
    """Mean-shift clustering, the function form of :class:`MeanShift`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Input points.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each point; see :meth:`MeanShift.fit`.
    bandwidth, kernel, seeds, bin_seeding, min_bin_freq, cluster_all, max_iter, tol, backend, \
n_jobs, algorithm, label_assignment, verbose, max_memory
        As for :class:`MeanShift`.

    Returns
    -------
    cluster_centers : ndarray of shape (n_clusters, n_features)
        Coordinates of cluster centers.
    labels : ndarray of shape (n_samples,)
        Cluster labels for each point.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift import mean_shift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> centers, labels = mean_shift(X, bandwidth=2, kernel="flat", backend="numpy")
    >>> labels
    array([1, 1, 1, 0, 0, 0])
    """
    model = MeanShift(
        bandwidth=bandwidth,
        kernel=kernel,
        seeds=seeds,
        bin_seeding=bin_seeding,
        min_bin_freq=min_bin_freq,
        cluster_all=cluster_all,
        max_iter=max_iter,
        tol=tol,
        backend=backend,
        n_jobs=n_jobs,
        algorithm=algorithm,
        label_assignment=label_assignment,
        verbose=verbose,
        max_memory=max_memory,
    ).fit(X, sample_weight=sample_weight)
    return model.cluster_centers_, model.labels_
