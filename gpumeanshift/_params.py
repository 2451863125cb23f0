"""The estimator's parameters, declared once: defaults, allowed values, checks.

:class:`~gpumeanshift.MeanShift`, :func:`~gpumeanshift.mean_shift`, the Dask
estimator, the command line and :func:`~gpumeanshift.load_model` read this
table; :func:`validate_params` is the one place where a parameter value is
checked. Checks that need the data (``seeds`` against ``X``) stay in the fit.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ._validation import check_bandwidth, check_int, check_real

KERNELS = ("flat", "gaussian")
ALGORITHMS = ("auto", "brute", "grid")
LABEL_ASSIGNMENTS = ("nearest", "basin")
OUTPUT_TYPES = ("input", "numpy", "cupy")
BANDWIDTH_RULES = ("scott", "silverman")


def _choice(allowed: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(name, value):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        return value
    return check


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _bandwidth(name, value):
    if value is None:
        return None
    if isinstance(value, str):
        if value not in BANDWIDTH_RULES:
            raise ValueError(f"{name} must be a positive number, None, or one of "
                             f"{BANDWIDTH_RULES}; got {value!r}")
        return value
    return check_bandwidth(value)


def _integral(name, value, *, low):
    """An integer, or a float with an integral value (``max_memory=1e9``)."""
    if isinstance(value, (float, np.floating)) and not isinstance(value, (bool, np.bool_)):
        if not np.isfinite(value) or value != int(value):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    return check_int(value, name, low=low)


def _max_memory(name, value):
    return None if value is None else _integral(name, value, low=1)


def _n_jobs(name, value):
    if value is None:
        return None
    value = check_int(value, name, low=-1)
    if value == 0:
        raise ValueError(f"{name} must be a positive integer or -1, got 0")
    return value


def _verbose(name, value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int(value, name, low=0)


def _tol(name, value):
    return check_real(value, name, low=0.0)


def _seeds(name, value):
    # Shape, dtype and finiteness are checked against X in the fit.
    return value


def _backend(name, value):
    from .backends.base import Backend, available_backends

    if isinstance(value, str):
        allowed = ("auto",) + available_backends()
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {allowed}")
        return value
    if isinstance(value, Backend):
        return value
    raise TypeError(f"{name} must be 'auto', a backend name or an object implementing "
                    f"gpumeanshift.backends.Backend; got {type(value).__name__}")


def _output_type(name, value):
    value = _choice(OUTPUT_TYPES)(name, value)
    if value == "cupy":
        try:
            import cupy  # noqa: F401  (optional dependency, only for this value)
        except Exception as exc:  # ImportError, or a broken CUDA install
            raise ValueError(
                f"{name}='cupy' needs CuPy, which does not import here ({exc}); install "
                "gpumeanshift[cuda12] or gpumeanshift[cuda13], or use 'numpy'") from None
    return value


#: name -> (default, check). The order is the signature's.
PARAMS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "bandwidth": (None, _bandwidth),
    "kernel": ("flat", _choice(KERNELS)),
    "seeds": (None, _seeds),
    "bin_seeding": (False, _flag),
    "min_bin_freq": (1, lambda n, v: _integral(n, v, low=1)),
    "cluster_all": (True, _flag),
    "max_iter": (300, lambda n, v: _integral(n, v, low=0)),
    "tol": (1e-3, _tol),
    "backend": ("auto", _backend),
    "n_jobs": (None, _n_jobs),
    "max_memory": (None, _max_memory),
    "output_type": ("input", _output_type),
    "algorithm": ("auto", _choice(ALGORITHMS)),
    "label_assignment": ("nearest", _choice(LABEL_ASSIGNMENTS)),
    "verbose": (0, _verbose),
}

DEFAULTS: dict[str, Any] = {name: default for name, (default, _) in PARAMS.items()}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check estimator parameters as ``fit`` does; return them normalised.

    Every name must be a :class:`~gpumeanshift.MeanShift` parameter. Values
    come back as the fit uses them (``max_memory=1e9`` as the int
    ``1000000000``, ``verbose=True`` as ``1``); the mapping given is not
    changed. Parameters not given are not filled in.

    Parameters
    ----------
    params : mapping of str to object
        Parameter names and values.

    Returns
    -------
    checked : dict

    Raises
    ------
    ValueError, TypeError
        The first invalid parameter, named in the message.

    Examples
    --------
    >>> from gpumeanshift._params import validate_params
    >>> validate_params({"kernel": "flat", "max_memory": 1e9, "verbose": True})
    {'kernel': 'flat', 'max_memory': 1000000000, 'verbose': 1}
    >>> validate_params({"kernel": "tophat"})
    Traceback (most recent call last):
    ...
    ValueError: kernel must be one of ('flat', 'gaussian'), got 'tophat'
    """
    checked = {}
    for name, value in params.items():
        if name not in PARAMS:
            raise ValueError(f"{name!r} is not a parameter of MeanShift; valid parameters "
                             f"are {sorted(PARAMS)}")
        checked[name] = PARAMS[name][1](name, value)
    return checked

