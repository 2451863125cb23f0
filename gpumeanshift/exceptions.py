"""Warnings and errors raised by gpumeanshift."""

from __future__ import annotations

import sys
import warnings


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted estimator is called before ``fit``.

    When scikit-learn is imported, the error actually raised is also an
    instance of ``sklearn.exceptions.NotFittedError``.

    Examples
    --------
    >>> from gpumeanshift import MeanShift, NotFittedError
    >>> try:
    ...     MeanShift(backend="numpy").predict([[0.0]])
    ... except NotFittedError as exc:
    ...     print(str(exc)[:40])
    This MeanShift instance is not fitted ye
    """


class ConvergenceWarning(UserWarning):
    """Raised when ``max_iter`` stops seeds that had not converged.

    When scikit-learn is imported, the warning actually emitted is also an
    instance of ``sklearn.exceptions.ConvergenceWarning``, so filters written
    for either class catch it (gpumeanshift never imports scikit-learn itself).

    Examples
    --------
    One shift step is not enough for the seeds of the first cluster:

    >>> import warnings
    >>> import numpy as np
    >>> from gpumeanshift import ConvergenceWarning, MeanShift
    >>> X = np.array([[0.0], [0.5], [1.0], [5.0]])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = MeanShift(bandwidth=1.0, kernel="gaussian", max_iter=1, backend="numpy").fit(X)
    >>> [issubclass(w.category, ConvergenceWarning) for w in caught]
    [True]
    >>> print(str(caught[0].message)[:45])
    2 of 4 seeds did not converge within max_iter
    """


_combined: dict[tuple[type, type], type] = {}


def _with_sklearn_base(ours: type) -> type:
    """``ours``, or a subclass of it and of scikit-learn's class of the same
    name when scikit-learn is already imported (never imported from here)."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return ours
    base = getattr(sk, ours.__name__)
    key = (ours, base)
    if key not in _combined:
        _combined[key] = type(ours.__name__, (ours, base),
                              {"__module__": __name__, "__doc__": ours.__doc__})
    return _combined[key]


def warn_convergence(message: str, stacklevel: int = 3) -> None:
    warnings.warn(message, _with_sklearn_base(ConvergenceWarning), stacklevel=stacklevel)


def not_fitted_error(message: str) -> NotFittedError:
    return _with_sklearn_base(NotFittedError)(message)
