"""The model :func:`~gpumeanshift.io.load_model` returns: an estimator and its preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._model_format import FORMAT_VERSION


@dataclass(frozen=True)
class SavedModel:
    """A model read by :func:`load_model`: the estimator and its preprocessing.

    Attributes
    ----------
    estimator : MeanShift
        Fitted for prediction: ``cluster_centers_``, ``cluster_sizes_``,
        ``bandwidth_``, ``n_features_in_``, ``n_iter_`` and ``backend_`` (the
        backend the fit ran on) are set; ``labels_`` is not stored.
    mean, scale : ndarray of shape (n_features,) or None
        The standardization applied before fitting, ``(X - mean) / scale``;
        None when the data were not standardized.
    library_version : str
        The gpumeanshift version that wrote the file.
    format_version : int
        The model file format version of the file.
    columns : list of str or None
        Names of the data columns the model was fitted on, when known.
    header : dict
        The whole JSON header, as read.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.io import save_model, load_model
    >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit([[0.0], [5.0]])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save_model(ms, path, columns=["x"])
    >>> m = load_model(path)
    >>> m.columns, m.standardized, m.predict([[4.5]])
    (['x'], False, array([0]))
    """

    estimator: Any
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    columns: list | None = None
    library_version: str = ""
    format_version: int = FORMAT_VERSION
    header: dict = field(default_factory=dict, repr=False)

    @property
    def standardized(self) -> bool:
        """True when the model was fitted on standardized data."""
        return self.mean is not None

    def transform(self, X):
        """Apply the saved standardization (identity when there is none).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points in the original units.

        Returns
        -------
        X_model : ndarray of shape (n_samples, n_features)
            Points in the model's units, float32 kept as float32.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> from gpumeanshift.io import SavedModel
        >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit([[0.0], [10.0]])
        >>> m = SavedModel(ms, mean=np.array([5.0]), scale=np.array([5.0]))
        >>> m.transform([[0.0], [10.0]]).ravel()
        array([-1.,  1.])
        """
        from .._validation import check_array

        X = check_array(X)
        if X.shape[1] != self.estimator.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model expects "
                f"{self.estimator.n_features_in_}"
            )
        if self.mean is None:
            return X
        return ((X.astype(np.float64) - self.mean) / self.scale).astype(X.dtype, copy=False)

    def predict(self, X, *, outlier_threshold=None):
        """Labels of points given in the original units (standardization applied).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New points, in the units of the data the model was fitted on.
        outlier_threshold : float or "bandwidth", default=None
            Points farther than this from every center (in the model's,
            possibly standardized, units) are labelled -1.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Index of the nearest center, or -1.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift import MeanShift
        >>> from gpumeanshift.io import SavedModel
        >>> ms = MeanShift(bandwidth=0.5, backend="numpy").fit([[-1.0], [1.0]])
        >>> m = SavedModel(ms, mean=np.array([100.0]), scale=np.array([10.0]))
        >>> m.predict([[90.0], [112.0], [300.0]], outlier_threshold="bandwidth")
        array([ 1,  0, -1])
        """
        return self.estimator.predict(self.transform(X), outlier_threshold=outlier_threshold)
