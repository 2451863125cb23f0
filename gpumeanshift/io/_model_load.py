"""Loading a model file: :func:`load_model` and the checks of what the file holds."""

from __future__ import annotations

import math
import os
import struct
import zipfile

import numpy as np

from .._params import KERNELS, validate_params
from ._model_archive import _open_regular, _read_archive
from ._model_format import (
    _PARAMS_ADDED,
    _PARAMS_V1,
    _check_standardization,
    _is_int,
    _is_real,
    _Malformed,
    _short,
    _TooNew,
    _utf8,
)
from ._saved_model import SavedModel


def load_model(path, *, backend="auto"):
    """Read a model written by :func:`save_model`, checking everything in it.

    The file is not trusted: no code from it runs (no pickle), only the
    members the format defines are read, each after its declared size has
    been checked against the header's shapes (so loading never takes more
    memory than the file's size), and every value is validated, the
    estimator parameters as ``set_params`` followed by ``fit`` would. Files
    written by a newer, incompatible format version are refused with a
    message that says which gpumeanshift wrote them.

    Parameters
    ----------
    path : str or path-like
        The model file (a regular file: FIFOs and devices are refused).
    backend : str or Backend, default="auto"
        Backend of the returned estimator's ``predict`` (a model fitted on a
        GPU can be used where there is none); the backend the fit ran on is
        kept in ``estimator.backend_``.

    Returns
    -------
    model : SavedModel
        The fitted estimator and its standardization.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        ``"<path> is not a valid gpumeanshift model: <what>"`` when the file
        is not a valid model file (not a regular file, truncated, corrupted,
        another kind of file, inconsistent content, a parameter ``fit`` would
        refuse); a different message for a newer format version or an
        invalid ``backend``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.io import save_model, load_model
    >>> ms = MeanShift(bandwidth=1.0, backend="numpy").fit([[0.0, 0.0], [5.0, 5.0]])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save_model(ms, path, mean=[1.0, 1.0], scale=[2.0, 2.0])
    >>> m = load_model(path)
    >>> m.estimator.bandwidth_, m.standardized, m.format_version
    (1.0, True, 1)
    >>> os.truncate(path, 100)
    >>> load_model(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... is not a valid gpumeanshift model: unreadable archive ...
    """
    from .._estimator import MeanShift

    name = os.fspath(path)
    name = name if isinstance(name, str) else os.fsdecode(name)
    # The caller's argument, not the file's content: its own error.
    backend = validate_params({"backend": backend})["backend"]
    try:
        with _open_regular(path, name) as f:
            try:
                header, arrays = _read_archive(f)
            except (_Malformed, _TooNew):
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                    struct.error, OverflowError, NotImplementedError, RuntimeError) as exc:
                raise _Malformed("unreadable archive (truncated, corrupted or another kind "
                                 f"of file): {exc}") from None
        mean, scale, columns, kwargs, fit = _check_content(header, arrays, backend)
        try:
            est = MeanShift._from_centers(
                arrays["cluster_centers"], float(header["bandwidth"]), kwargs,
                backend_name=fit["backend"], n_iter=fit["n_iter"],
                cluster_sizes=arrays.get("cluster_sizes"),
            )
        except (TypeError, ValueError) as exc:  # re-checked there; already checked here
            raise _Malformed(str(exc)) from None
    except _Malformed as exc:
        raise ValueError(f"{name} is not a valid gpumeanshift model: {exc}") from None
    except _TooNew as exc:
        raise ValueError(f"{name} {exc}") from None
    return SavedModel(
        estimator=est,
        mean=mean,
        scale=scale,
        columns=columns,
        library_version=header["library_version"],
        format_version=header["format_version"],
        header=header,
    )


def _check_content(header: dict, arrays: dict, backend):
    """Check everything but the archive's structure; returns what the model needs."""
    from .._validation import check_array

    k, d = header["n_clusters"], header["n_features"]
    centers = arrays.get("cluster_centers")
    if centers is None:
        raise _Malformed("no cluster_centers")
    if not np.isfinite(centers).all():
        raise _Malformed("cluster_centers contains NaN or infinity")
    bandwidth = header.get("bandwidth")
    if not _is_real(bandwidth) or not (math.isfinite(bandwidth) and bandwidth > 0):
        raise _Malformed(f"bandwidth must be a positive finite number, got {_short(bandwidth)}")
    if "kernel" not in header:
        # Every writer has stored the kernel; without it the file is ambiguous
        # (the library's default kernel is not the one older fits used).
        raise _Malformed("the header names no kernel")
    kernel = header["kernel"]
    if kernel not in KERNELS:
        raise _Malformed(f"kernel must be one of {KERNELS}, got {_short(kernel)}")
    standardized = header.get("standardized")
    if not isinstance(standardized, bool):
        raise _Malformed(f"standardized must be true or false, got {_short(standardized)}")
    mean, scale = arrays.get("mean"), arrays.get("scale")
    if standardized:
        if mean is None or scale is None:
            raise _Malformed("standardized, but mean or scale is missing")
        try:
            _check_standardization(mean, scale, d, "standardization")
        except ValueError as exc:
            raise _Malformed(str(exc)) from None
    elif mean is not None or scale is not None:
        raise _Malformed("it holds a mean or scale, but the header says it is not standardized")
    sizes = arrays.get("cluster_sizes")
    if sizes is not None and not (np.isfinite(sizes) & (sizes >= 0)).all():
        raise _Malformed(f"cluster_sizes must be {k} finite non-negative numbers")
    columns = header.get("columns")
    if columns is not None and (not isinstance(columns, list) or len(columns) != d
                                or not all(isinstance(c, str) and _utf8(c) for c in columns)):
        raise _Malformed(f"columns must be {d} names")
    fit = header.get("fit", {"backend": "", "n_iter": 0})
    if not (isinstance(fit, dict) and isinstance(fit.get("backend", ""), str)
            and _is_int(fit.get("n_iter", 0)) and fit.get("n_iter", 0) >= 0):
        raise _Malformed(f"fit must hold the backend name and n_iter >= 0, got {_short(fit)}")
    fit = {"backend": fit.get("backend", ""), "n_iter": fit.get("n_iter", 0)}

    params = header.get("params")
    if not isinstance(params, dict):
        raise _Malformed("params is not a JSON object")
    missing = [p for p in _PARAMS_V1 if p not in params]
    if missing:
        raise _Malformed(f"params lacks {', '.join(missing)}")
    if params["kernel"] != kernel:
        raise _Malformed(f"params says kernel={_short(params['kernel'])} but the header "
                         f"says {kernel!r}")
    if params["seeds"] is not None:
        raise _Malformed("params holds seeds; seeds are stored as the seeds array")
    if not isinstance(params["backend"], str):
        raise _Malformed(f"params backend must be a name, got {_short(params['backend'])}")
    kwargs = {**_PARAMS_ADDED, **params}
    # The backend saved is where the fit ran; the caller chooses where predict runs.
    kwargs["backend"] = backend
    try:
        kwargs.update(validate_params({k: v for k, v in kwargs.items() if k != "backend"}))
    except (TypeError, ValueError) as exc:
        raise _Malformed(f"invalid parameter: {exc}") from None
    seeds = arrays.get("seeds")
    if seeds is not None:
        try:
            kwargs["seeds"] = check_array(seeds, name="seeds")
        except (TypeError, ValueError) as exc:
            raise _Malformed(str(exc)) from None
    return mean, scale, columns, kwargs, fit
