"""The density an estimator's fit climbs: ``score_samples`` and the log
density the anomaly scores read."""

from __future__ import annotations

import math

import numpy as np

from . import _driver
from ._base import convert_output
from ._validation import check_array, check_feature_names, is_device_array, total_weight

__all__ = ["DensityMixin"]


class DensityMixin:
    """The kernel density estimate of a fitted estimator's training data
    (``_fit_X``, ``_fit_weight``, ``bandwidth_``, ``kernel``, ``backend``)."""

    def score_samples(self, X):
        """Log of the kernel density estimate of the training data at each point.

        The density is the one the fit climbs, under ``bandwidth_`` and
        ``kernel``, normalized to integrate to 1 exactly as
        :class:`sklearn.neighbors.KernelDensity` does (``kernel="flat"`` is
        its ``"tophat"``; a fit with ``sample_weight`` gives the weighted
        density, each term times its weight and ``n`` the total weight, as
        ``KernelDensity().fit(X, sample_weight=w)``)::

            gaussian: log sum_j exp(-|x - x_j|^2 / (2 h^2)) - log(n) - d log(h) - d/2 log(2 pi)
            flat:     log #{j : |x - x_j| <= h} - log(n) - log(V_d h^d),
                      V_d = pi^(d/2) / Gamma(d/2 + 1)   (volume of the unit d-ball)

        The sum runs on the backend (every query against every training
        point, tiled; nothing of size n_queries x n_samples is kept).

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Points at which to evaluate the density.

        Returns
        -------
        log_density : ndarray of shape (n_queries,)
            float64. Gaussian: always finite (a point far from the data gets a
            very negative value, as with scikit-learn). Flat: -inf where no
            training point lies within ``bandwidth_``.

        Notes
        -----
        ``fit`` keeps a private host copy of the training data for this
        method: ``n_samples * n_features * itemsize`` bytes for the life of
        the estimator (and in its pickles). Models read by
        :func:`gpumeanshift.load_model` hold only the centers and cannot
        score. The flat kernel counts points at distance <= h, scikit-learn's
        tophat those at distance < h: they differ only for points exactly on
        the boundary. Queries and training data are compared in the wider of
        their two dtypes.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> X = np.array([[0.0], [0.1], [5.0], [5.1]])
        >>> ms = MeanShift(bandwidth=1.0, kernel="gaussian", backend="numpy").fit(X)
        >>> ms.score_samples([[0.05], [20.0]]).round(3)
        array([  -1.613, -113.108])
        """
        device_input = is_device_array(X)
        scores = self._log_density(X)
        return convert_output(scores, self.output_type, device_input, X)

    def _log_density(self, X):
        """score_samples: validated X -> float64 array, on the device when X
        is device data and the backend runs on a device, else NumPy."""
        self._check_fitted()
        if not hasattr(self, "_fit_X"):
            raise ValueError(
                "This model holds no training data (models read by load_model keep "
                "only the centers); fit it again to use score_samples."
            )
        check_feature_names(getattr(self, "feature_names_in_", None), X, type(self).__name__)
        be = _driver.make_backend(self.backend, n_jobs=getattr(self, "n_jobs", None),
                                  max_memory=getattr(self, "max_memory", None))
        on_device = _driver.keeps_device(be, X)
        X = check_array(X, keep_device=on_device)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if not self.bandwidth_ > 0:
            raise ValueError(
                "score_samples needs a positive bandwidth; this model's bandwidth_ is 0 "
                "(the estimate of data whose neighbours are all duplicates), for which "
                "the density is not defined. Fit with an explicit bandwidth.")
        dtype = np.result_type(X.dtype, self._fit_X.dtype)
        data = self._fit_X.astype(dtype, copy=False)
        X = X.astype(dtype, copy=False)
        n, d = data.shape
        h = float(self.bandwidth_)
        weights = getattr(self, "_fit_weight", None)
        extra = {} if weights is None else {"weights": weights}
        log_sum = be.log_kernel_density(data, X, bandwidth=h, kernel=self.kernel, **extra)
        if not on_device:
            log_sum = _driver.to_numpy(log_sum)
        log_sum = log_sum.astype(np.float64, copy=False)
        log_n = math.log(n) if weights is None else math.log(total_weight(weights))
        if self.kernel == "flat":
            log_unit_volume = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
        else:
            log_unit_volume = 0.5 * d * math.log(2.0 * math.pi)
        return log_sum - (log_n + d * math.log(h) + log_unit_volume)

