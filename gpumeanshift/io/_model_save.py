"""Writing a model file: :func:`save_model`, which refuses what would not load."""

from __future__ import annotations

import json

import numpy as np

from .._params import validate_params
from ._atomic import atomic_write
from ._model_format import FORMAT_NAME, FORMAT_VERSION, MAX_HEADER_BYTES, _check_standardization


def _json_params(model) -> tuple[dict, np.ndarray | None]:
    params = dict(model.get_params())
    seeds = params.pop("seeds", None)
    if not isinstance(params.get("backend"), str):
        params["backend"] = "auto"  # a Backend object cannot be stored
    for key, value in list(params.items()):
        if isinstance(value, np.generic):
            params[key] = value.item()
        try:
            json.dumps(params[key], allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {key}={value!r} cannot be saved in a model file") from None
    # Refused here rather than by load_model later: the file would not load.
    validate_params({k: v for k, v in params.items() if k != "backend"})
    params["seeds"] = None
    if seeds is not None:
        from .._validation import check_array

        seeds = check_array(seeds, name="seeds")
    return params, seeds


def save_model(model, path, *, mean=None, scale=None, columns=None):
    """Save a fitted :class:`~gpumeanshift.MeanShift` to one ``.npz`` file.

    The file holds a JSON header (format and library versions, shapes,
    bandwidth, kernel, every parameter) and uncompressed numeric arrays
    only; it is written atomically and read back by :func:`load_model`
    without pickle.

    Parameters
    ----------
    model : MeanShift
        A fitted estimator (centers on a GPU are copied to the host).
    path : str or path-like
        Where to write; the name is used as given (no suffix is added).
    mean, scale : array-like of shape (n_features,), default=None
        The standardization applied to the data before fitting,
        ``(X - mean) / scale``; give both or neither.
    columns : sequence of str, default=None
        Names of the data columns the model was fitted on (used by
        ``gpumeanshift predict`` to pick the same columns of a new file).

    Raises
    ------
    ValueError
        The model is not fitted, a parameter is invalid or cannot be stored,
        the standardization or the column names do not fit the model. Nothing
        is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpumeanshift import MeanShift
    >>> from gpumeanshift.io import save_model, load_model
    >>> X = [[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]
    >>> ms = MeanShift(bandwidth=2, kernel="flat", backend="numpy").fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save_model(ms, path)
    >>> load_model(path).estimator.predict([[0, 0], [5, 5]])
    array([1, 0])
    """
    from .. import __version__
    from .._driver import to_numpy

    if not hasattr(model, "cluster_centers_"):
        raise ValueError("the model is not fitted: call fit before save_model")
    centers = to_numpy(model.cluster_centers_)
    try:
        params, seeds = _json_params(model)
    except TypeError as exc:
        raise ValueError(f"cannot save the model: {exc}") from None
    n_clusters, n_features = centers.shape
    if (mean is None) != (scale is None):
        raise ValueError("give both mean and scale, or neither")
    if columns is not None and len(columns) != n_features:
        raise ValueError(f"columns has {len(columns)} names but the model has {n_features} features")
    arrays = {"cluster_centers": centers}
    if mean is not None:
        arrays["mean"] = np.asarray(mean, dtype=np.float64)
        arrays["scale"] = np.asarray(scale, dtype=np.float64)
        _check_standardization(arrays["mean"], arrays["scale"], n_features, str(path))
    sizes = getattr(model, "cluster_sizes_", None)
    if sizes is not None:
        sizes = to_numpy(sizes)
        # Summed weights after a weighted fit: kept as float64 unless whole.
        whole = sizes.dtype.kind in "iu" or bool((sizes == np.rint(sizes)).all())
        arrays["cluster_sizes"] = sizes.astype(np.int64 if whole else np.float64)
    if seeds is not None:
        if seeds.shape[1] != n_features:
            raise ValueError(f"seeds has {seeds.shape[1]} features but the model has {n_features}")
        arrays["seeds"] = seeds
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "n_clusters": int(n_clusters),
        "n_features": int(n_features),
        "dtype": str(centers.dtype),
        "bandwidth": float(model.bandwidth_),
        "kernel": str(model.kernel),
        "params": params,
        "standardized": mean is not None,
        "columns": None if columns is None else [str(c) for c in columns],
        "fit": {"backend": str(getattr(model, "backend_", "")), "n_iter": int(getattr(model, "n_iter_", 0))},
    }
    if seeds is not None:
        header["n_seeds"] = int(seeds.shape[0])
    blob = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    if len(blob) > MAX_HEADER_BYTES:
        raise ValueError(f"the model's header would take {len(blob)} bytes, more than the "
                         f"{MAX_HEADER_BYTES} a model file may hold (too many column names?)")
    with atomic_write(path, "wb") as f:
        # Stored, never compressed: load_model reads only what the file holds.
        np.savez(f, header=np.frombuffer(blob, dtype=np.uint8), **arrays)
