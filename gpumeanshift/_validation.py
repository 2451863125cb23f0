"""Input checking: one place for coercion, dtype policy and layout.

The rules (scikit-learn's, with gpumeanshift's dtype policy):

* the input must be a non-empty 2-D array of real numbers, all finite;
* float32 and float64 are kept as they are; integers and booleans become
  float64; anything else (complex, strings, objects) is refused;
* sparse matrices are refused with a message that says so;
* arrays of other libraries are recognised from ``sys.modules`` without
  importing anything: CuPy arrays and objects exposing
  ``__cuda_array_interface__`` are device arrays and are left on the device.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np


def is_device_array(X: Any) -> bool:
    """True for CuPy arrays, anything exposing ``__cuda_array_interface__``,
    DLPack producers on a CUDA device, and the emulated runtime's arrays
    (:class:`gpumeanshift.testing.emulator.EmulatedDeviceArray`)."""
    if isinstance(X, np.ndarray):
        return hasattr(X, "emulated_device")
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(X, cupy.ndarray):
        return True
    if hasattr(X, "__cuda_array_interface__"):
        return True
    dl = getattr(X, "__dlpack_device__", None)
    if dl is not None and not isinstance(X, type):
        try:
            return int(dl()[0]) == 2  # kDLCUDA
        except Exception:
            return False
    return False


def to_numpy(a: Any) -> np.ndarray:
    """Host copy of a backend array (NumPy arrays are returned as they are)."""
    get = getattr(a, "get", None)
    if callable(get) and (not isinstance(a, np.ndarray) or is_device_array(a)):
        return np.asarray(get())
    return np.asarray(a)


def keeps_device(backend: Any, X: Any) -> bool:
    """Whether a call keeps ``X`` on the device: device data (CuPy,
    ``__cuda_array_interface__``, DLPack) and a backend that runs on a
    device (one with a ``runtime``). The NumPy backend gets host arrays."""
    return getattr(backend, "runtime", None) is not None and is_device_array(X)


def weights_beside(w: Any, backend: Any, on_device: bool) -> Any:
    """Validated weights (or None) where a call keeps its data: uploaded
    once to the backend's device when ``on_device`` (see :func:`keeps_device`),
    else a host array."""
    if w is None:
        return None
    return backend.runtime.asarray(w, dtype=np.float64) if on_device else to_numpy(w)


def total_weight(w: Any) -> float:
    """The sum of validated weights: correctly rounded (``math.fsum``) on the
    host; on the device one reduction, so that only the total crosses (equal
    to the exact sum to rounding)."""
    return float(w.sum()) if is_device_array(w) else math.fsum(w)


def feature_names(X: Any):
    """The column names of a DataFrame-like X, as an object array; else None.

    As in scikit-learn, names count only when every column name is a
    string; a mix of strings and other names is a TypeError.
    """
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    is_str = [isinstance(name, str) for name in names]
    if not any(is_str):
        return None
    if not all(is_str):
        kinds = sorted({type(name).__name__ for name in names})
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but the input has {kinds} as column name types. Convert every column name "
            "to a string, e.g. X.columns = X.columns.astype(str).")
    return names


def check_feature_names(fitted, X: Any, estimator: str) -> None:
    """Refuse X whose column names differ from the fit's; warn when one side has none.

    scikit-learn's rule: names are compared in order, a mismatch is a
    ValueError (columns renamed, reordered, added or dropped would otherwise
    be silently paired with the wrong features).
    """
    import warnings

    names = feature_names(X)
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {estimator} was fitted without feature names",
                      UserWarning, stacklevel=3)
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {estimator} was fitted with "
                      "feature names", UserWarning, stacklevel=3)
        return
    if len(names) == len(fitted) and (names == fitted).all():
        return
    unseen = [n for n in names if n not in set(fitted)]
    missing = [n for n in fitted if n not in set(names)]
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + "".join(f"- {n}\n" for n in unseen)
    if missing:
        message += ("Feature names seen at fit time, yet now missing:\n"
                    + "".join(f"- {n}\n" for n in missing))
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def _is_sparse(X: Any) -> bool:
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(X):
        return True
    return type(X).__module__.startswith(("scipy.sparse", "cupyx.scipy.sparse"))


def check_array(X: Any, *, name: str = "X", ensure_min_samples: int = 1,
                keep_device: bool = False) -> Any:
    """Validate an array: 2-D, real, finite, float32 or float64, C-contiguous.

    A device array (:func:`is_device_array`) is copied to the host first,
    unless ``keep_device``: it is then validated on the device (dtype and
    shape from its metadata, finiteness by one reduction whose boolean is
    the only transfer) and returned as a device array (a CuPy array; the
    emulated runtime's own array type), converted only when its dtype or
    layout must change.
    """
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; gpumeanshift needs dense data. "
            "Convert it with X.toarray() if it fits in memory."
        )
    if keep_device and is_device_array(X):
        return _check_device_array(X, name, ensure_min_samples)
    if is_device_array(X):
        # Validated on the host copy: the caller decides where arrays live.
        X = _device_to_host(X)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists, unconvertible objects
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind in "US":
        raise ValueError(f"{name} contains strings (dtype {arr.dtype}); expected numbers")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} has dtype object and could not be converted to float: {exc}") from exc
    arr = _check_values(arr, name, ensure_min_samples, np)
    return np.ascontiguousarray(arr)


def _check_values(arr: Any, name: str, ensure_min_samples: int, xp: Any) -> Any:
    """The checks every array gets, host or device: real dtype, 2-D, not
    empty, finite (one reduction in ``xp``); integers become float64."""
    dtype = check_layout(arr, name=name, ensure_min_samples=ensure_min_samples)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    if not bool(xp.isfinite(arr).all()):
        bad = "NaN" if bool(xp.isnan(arr).any()) else "infinity"
        raise ValueError(f"{name} contains {bad}; all values must be finite")
    return arr


def check_layout(arr: Any, *, name: str = "X", ensure_min_samples: int = 1) -> np.dtype:
    """The checks an array's metadata answer alone (host, device or Dask
    arrays): a real dtype, 2-D, at least one feature and
    ``ensure_min_samples`` rows. Returns the dtype the data are computed in:
    float32 and float64 as they are, other real types float64."""
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has unsupported dtype {arr.dtype}; expected real numbers")
    if arr.ndim != 2:
        if arr.ndim == 1:
            raise ValueError(
                f"Expected a 2-D array for {name}, got a 1-D array of shape {arr.shape}. "
                "Reshape your data either using X.reshape(-1, 1) if it has a single "
                "feature or X.reshape(1, -1) if it contains a single sample."
            )
        raise ValueError(f"Expected a 2-D array for {name}, got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[0] < ensure_min_samples:
        raise ValueError(
            f"Found array with {arr.shape[0]} sample(s) (shape={arr.shape}) while a "
            f"minimum of {ensure_min_samples} is required."
        )
    return arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _to_cupy(cupy: Any, X: Any) -> Any:
    """A CuPy view of a device array (zero copy)."""
    if isinstance(X, cupy.ndarray) or hasattr(X, "__cuda_array_interface__"):
        return cupy.asarray(X)
    return cupy.from_dlpack(X)


def _emulated_module(X: Any):
    """The array module of an emulated runtime's array (its runtime's ``xp``:
    NumPy, making device arrays where CuPy would); NumPy for others."""
    rt = getattr(X, "_emulated_runtime", None)
    return rt.xp if rt is not None else np


def _device_view(X: Any, name: str) -> tuple[Any, Any]:
    """A device array as (array, its array module): CuPy's view of it (zero
    copy), or the emulated runtime's array itself with its runtime's module."""
    if isinstance(X, np.ndarray):  # the emulated runtime's arrays: NumPy keeps the type
        return X, _emulated_module(X)
    cupy = sys.modules.get("cupy")
    if cupy is None:  # pragma: no cover - needs a device array without CuPy
        raise TypeError(f"{name} ({type(X).__name__}) is a CUDA array but CuPy is not "
                        "installed; install gpumeanshift[cuda12] or gpumeanshift[cuda13]")
    return _to_cupy(cupy, X), cupy


def _check_device_array(X: Any, name: str, ensure_min_samples: int) -> Any:
    arr, xp = _device_view(X, name)
    arr = _check_values(arr, name, ensure_min_samples, xp)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def array_module(a: Any):
    """CuPy for a CuPy array, the emulated runtime's module for its arrays
    (NumPy, whose new arrays are device arrays there), else NumPy."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy
    return _emulated_module(a) if is_device_array(a) else np


def _device_to_host(X: Any) -> np.ndarray:
    if isinstance(X, np.ndarray):  # the emulated runtime's arrays
        return X.get()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return cupy.asnumpy(_to_cupy(cupy, X))
    raise TypeError(  # pragma: no cover - needs a device array without CuPy
        f"{type(X).__name__} is a CUDA array but CuPy is not installed; "
        "install gpumeanshift[cuda12] or gpumeanshift[cuda13]"
    )


def check_bandwidth(bandwidth: Any) -> float:
    """A finite positive real number, returned as a Python float."""
    if isinstance(bandwidth, (bool, np.bool_)) or not isinstance(bandwidth, numbers.Real):
        raise TypeError(f"bandwidth must be a positive number, got {bandwidth!r}")
    value = float(bandwidth)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    return value


def check_int(value: Any, name: str, *, low: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_real(value: Any, name: str, *, low: float, low_inclusive: bool = True) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low or (value == low and not low_inclusive):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be finite and {op} {low}, got {value}")
    return value


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as a float64 array of shape (n_samples,), or None.

    Weights are repetition counts in spirit: finite, >= 0 and not all 0 (a
    row of weight 0 takes no part in a fit but is still labelled). A scalar
    applies to every row. Nothing is corrected silently: a wrong shape or
    length, a negative, NaN or infinite weight, or all zeros is a ValueError
    naming the problem.

    Device arrays (:func:`is_device_array`) are checked on the device and
    returned there (a CuPy array; the emulated runtime's own type): shape
    and dtype from their metadata, the values by three reductions whose
    scalars are all that crosses (a few more for the message of a refusal).
    """
    if sample_weight is None:
        return None
    if is_device_array(sample_weight):
        w, xp = _device_view(sample_weight, "sample_weight")
    else:
        if _is_sparse(sample_weight):
            raise TypeError("sample_weight must be a dense 1-D array, got a sparse matrix")
        try:
            w, xp = np.asarray(sample_weight), np
        except Exception as exc:  # ragged lists, objects without __array__
            raise ValueError(f"sample_weight could not be converted to an array: {exc}") from exc
    if w.dtype == object or w.dtype.kind not in "biuf":
        raise ValueError(
            f"sample_weight must hold real numbers, got an array of dtype {w.dtype}")
    if w.ndim == 0:
        w = xp.full(n_samples, float(w))  # on the device: one scalar crosses
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got shape {w.shape}")
    if w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has {w.shape[0]} values but X has {n_samples} rows")
    w = w.astype(np.float64, copy=False)
    w = w if w.flags.c_contiguous else w.copy()  # copy(), not ascontiguousarray: keeps the type
    if not bool(xp.isfinite(w).all()):
        bad = ~xp.isfinite(w)
        i = int(xp.flatnonzero(bad)[0])
        raise ValueError(
            f"sample_weight must be finite: {int(bad.sum())} value(s) are NaN or infinite "
            f"(first at index {i}: {float(w[i])})")
    if bool((w < 0).any()):
        neg = w < 0
        i = int(xp.flatnonzero(neg)[0])
        raise ValueError(
            f"sample_weight must be >= 0: {int(neg.sum())} value(s) are negative "
            f"(first at index {i}: {float(w[i])})")
    # Finite and >= 0: the sum is positive exactly when some weight is, and
    # past float64's range only when the correctly rounded one is too (on the
    # device up to the rounding of its summation order).
    total = total_weight(w)
    if not total > 0:
        raise ValueError(
            "sample_weight is zero for every row: at least one weight must be positive")
    if not math.isfinite(total):
        raise ValueError("sample_weight sums past the largest float64; rescale the weights")
    return w
