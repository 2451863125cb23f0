"""The scikit-learn-compatible estimator and its function form."""

from __future__ import annotations

import inspect

import numpy as np

from . import _driver
from ._validation import check_array, check_real, is_device_array
from .exceptions import not_fitted_error

OUTPUT_TYPES = ("input", "numpy", "cupy")


def _convert_output(a: np.ndarray, output_type: str, input_was_device: bool):
    if output_type == "numpy" or (output_type == "input" and not input_was_device):
        return a
    import cupy  # only reached when a CuPy result was asked for

    return cupy.asarray(a)


class MeanShift:
    """Mean-shift clustering, scikit-learn's algorithm on the CPU or a GPU.

    Every seed climbs the kernel density estimate of the data to a mode; modes
    closer than one bandwidth to a stronger mode are merged; each point is
    labelled by its nearest center. With ``kernel="flat"`` the results equal
    :class:`sklearn.cluster.MeanShift` with the same parameters.

    Parameters
    ----------
    bandwidth : float, {"scott", "silverman"} or None, default=None
        Kernel bandwidth. None estimates it with :func:`estimate_bandwidth`
        (scikit-learn's default, ``quantile=0.3``); "scott" and "silverman"
        use the normal-reference rules of
        :func:`gpumeanshift.bandwidth.rule_of_thumb_bandwidth`.
    kernel : {"gaussian", "flat"}, default="gaussian"
        "gaussian" weighs every point by ``exp(-|x - s|^2 / (2 h^2))``;
        "flat" averages the points within distance h (scikit-learn's kernel).
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
        of the points, never truncating the Gaussian. See ``algorithm_``.
    label_assignment : {"nearest", "basin"}, default="nearest"
        "nearest" labels each point by its nearest center (scikit-learn);
        "basin" by the center its own climb reaches (its basin of attraction;
        with seeds other than the data every point is climbed once more).

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

    Notes
    -----
    When ``bandwidth=None`` and every point is identical, the estimate is 0;
    the fit then uses ``bandwidth_ = 1.0`` (any positive value gives the same
    single cluster).

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
        kernel="gaussian",
        seeds=None,
        bin_seeding=False,
        min_bin_freq=1,
        cluster_all=True,
        max_iter=300,
        tol=1e-3,
        backend="auto",
        n_jobs=None,
        output_type="input",
        algorithm="auto",
        label_assignment="nearest",
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
        self.output_type = output_type
        self.algorithm = algorithm
        self.label_assignment = label_assignment

    # -------------------------------------------------------- params (sklearn)
    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters (scikit-learn protocol); returns self."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.kind == p.KEYWORD_ONLY
        }
        changed = []
        for k in self._get_param_names():
            v = getattr(self, k)
            d = defaults[k]
            if isinstance(v, np.ndarray) or isinstance(d, np.ndarray) or v is not d and v != d:
                changed.append(f"{k}={'array(...)' if isinstance(v, np.ndarray) else repr(v)}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here costs nothing extra.
        from sklearn.utils import Tags, TargetTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            regressor_tags=None,
            classifier_tags=None,
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Perform clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to cluster (NumPy, lists, CuPy or other CUDA arrays).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : MeanShift
            The fitted estimator.
        """
        if self.output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {self.output_type!r}")
        device_input = is_device_array(X)
        result = _driver.fit(
            X,
            bandwidth=self.bandwidth,
            kernel=self.kernel,
            seeds=self.seeds,
            bin_seeding=self.bin_seeding,
            min_bin_freq=self.min_bin_freq,
            cluster_all=self.cluster_all,
            max_iter=self.max_iter,
            tol=self.tol,
            backend=self.backend,
            n_jobs=self.n_jobs,
            algorithm=self.algorithm,
            label_assignment=self.label_assignment,
        )
        self._device_input = device_input
        out = lambda a: _convert_output(a, self.output_type, device_input)  # noqa: E731
        self.cluster_centers_ = out(result.cluster_centers)
        self.labels_ = out(result.labels)
        self.n_iter_ = result.n_iter
        self.n_features_in_ = int(result.cluster_centers.shape[1])
        self.bandwidth_ = result.bandwidth
        self.backend_ = result.backend
        self.algorithm_ = result.algorithm
        self.cluster_sizes_ = out(
            np.bincount(result.labels[result.labels >= 0], minlength=len(result.cluster_centers))
        )
        self.center_intensity_ = out(result.center_intensity)
        self._centers_host = result.cluster_centers
        return self

    def _check_fitted(self):
        if not hasattr(self, "_centers_host"):
            raise not_fitted_error(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator."
            )

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
        >>> X = np.array([[0.0], [0.1], [5.0], [5.1]])
        >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit(X)
        >>> ms.predict([[0.2], [4.9], [20.0]], outlier_threshold="bandwidth")
        array([ 0,  1, -1])
        """
        self._check_fitted()
        from .backends.base import resolve_backend

        device_input = is_device_array(X)
        X = check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        threshold = None
        if outlier_threshold is not None:
            if isinstance(outlier_threshold, str):
                if outlier_threshold != "bandwidth":
                    raise ValueError(
                        f"outlier_threshold must be a number or 'bandwidth', got {outlier_threshold!r}"
                    )
                threshold = self.bandwidth_
            else:
                threshold = check_real(outlier_threshold, "outlier_threshold", low=0.0)
        be = resolve_backend(self.backend)
        centers = self._centers_host.astype(X.dtype, copy=False)
        labels, dist = be.nearest(X, centers)
        labels = _driver.to_numpy(labels).astype(np.int64, copy=False)
        if threshold is not None:
            labels = np.where(_driver.to_numpy(dist) <= threshold, labels, -1)
        return _convert_output(labels, self.output_type, device_input)

    def fit_predict(self, X, y=None):
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to cluster.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster labels.
        """
        return self.fit(X).labels_

    def __getstate__(self):
        # Pickles hold host arrays only, whatever device the fit ran on.
        state = self.__dict__.copy()
        for key, value in state.items():
            if key.endswith("_") and not key.startswith("_") and hasattr(value, "get") and not isinstance(value, (np.ndarray, dict)):
                state[key] = _driver.to_numpy(value)
        return state


def mean_shift(
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
):
    """Mean-shift clustering, the function form of :class:`MeanShift`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Input points.
    bandwidth, kernel, seeds, bin_seeding, min_bin_freq, cluster_all, max_iter, tol, backend, \
n_jobs, algorithm, label_assignment
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
    ).fit(X)
    return model.cluster_centers_, model.labels_
