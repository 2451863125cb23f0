"""Warnings and errors raised by gpumeanshift."""

from __future__ import annotations

import sys
import warnings


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted estimator is called before ``fit``."""


class ConvergenceWarning(UserWarning):
    """Raised when ``max_iter`` stops seeds that had not converged.

    When scikit-learn is imported, the warning actually emitted is also an
    instance of ``sklearn.exceptions.ConvergenceWarning``, so filters written
    for either class catch it (gpumeanshift never imports scikit-learn itself).
    """


_combined: dict[type, type] = {}


def warn_convergence(message: str, stacklevel: int = 3) -> None:
    category: type = ConvergenceWarning
    sk = sys.modules.get("sklearn.exceptions")
    if sk is not None:
        base = sk.ConvergenceWarning
        if base not in _combined:
            _combined[base] = type("ConvergenceWarning", (ConvergenceWarning, base), {
                "__module__": __name__, "__doc__": ConvergenceWarning.__doc__})
        category = _combined[base]
    warnings.warn(message, category, stacklevel=stacklevel)
