"""The estimator protocol shared by the estimators: scikit-learn's parameter
methods (without importing scikit-learn) and the conversion of results to
the array type ``output_type`` asks for."""

from __future__ import annotations

import inspect

import numpy as np

from ._validation import is_device_array, to_numpy

__all__ = ["EstimatorParams", "convert_output"]


def convert_output(a, output_type: str, input_was_device: bool, like=None):
    """``a`` (host or device) as ``output_type`` asks: "numpy" (and "input"
    for host input) a NumPy array; "cupy" (and "input" for device input) a
    device array, ``a`` itself when it is one. ``like``: the input, whose
    array type a device result takes (the emulated runtime's arrays)."""
    if output_type == "numpy" or (output_type == "input" and not input_was_device):
        return to_numpy(a) if is_device_array(a) else a
    if is_device_array(a):
        return a
    if output_type == "input" and isinstance(like, np.ndarray):  # an emulated device array
        out = np.array(a).view(type(like))
        out.__array_finalize__(like)
        return out
    import cupy  # only reached when a CuPy result was asked for

    return cupy.asarray(a)


class EstimatorParams:
    """``get_params`` / ``set_params`` / ``repr`` / tags, as scikit-learn's
    ``BaseEstimator`` gives them: the parameters are the keyword-only
    arguments of ``__init__``, stored under their own names."""

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict (scikit-learn protocol).

        Parameters
        ----------
        deep : bool, default=True
            Ignored: no parameter is itself an estimator.

        Returns
        -------
        params : dict
            Each ``__init__`` parameter name mapped to its current value.

        Examples
        --------
        >>> from gpumeanshift import MeanShift
        >>> params = MeanShift(bandwidth=2, kernel="flat").get_params()
        >>> params["bandwidth"], params["kernel"], params["max_iter"]
        (2, 'flat', 300)
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters (scikit-learn protocol); returns self.

        Parameters
        ----------
        **params
            New values of ``__init__`` parameters, by name.

        Returns
        -------
        self : MeanShift
            The estimator, with its parameters changed.

        Raises
        ------
        ValueError
            A name is not a parameter of the estimator.

        Examples
        --------
        >>> from gpumeanshift import MeanShift
        >>> MeanShift().set_params(bandwidth=6, kernel="gaussian", backend="numpy")
        MeanShift(backend='numpy', bandwidth=6, kernel='gaussian')
        >>> MeanShift().set_params(bandwith=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Invalid parameter 'bandwith' for estimator MeanShift. ...
        """
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
