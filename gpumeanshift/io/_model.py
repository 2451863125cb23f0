"""Saved models: one ``.npz`` archive, written by us and read trusting nothing in it.

A model file is a ZIP archive (what :func:`numpy.savez` writes) of ``.npy``
members: ``header.npy``, UTF-8 JSON as bytes (format name and version,
library version, shapes, bandwidth, kernel, estimator parameters), and the
numeric arrays ``cluster_centers``, the optional ``cluster_sizes``,
standardization ``mean``/``scale`` and ``seeds``. The public names are
re-exported by :mod:`gpumeanshift.io`.

Reading (:func:`load_model`) never runs code from the file and never
allocates more than the file holds:

* only regular files are opened (a FIFO or a device is refused, not waited on);
* only the members the format defines are ever opened; any other member is
  skipped without being read;
* each array member must be stored uncompressed, as :func:`save_model` writes
  it, so its bytes are in the file; its size, its ``.npy`` header (dtype and
  shape) and the shapes in the JSON header must all agree before its data
  are read, and the ZIP checksum is verified;
* every header field and every estimator parameter is checked as
  ``set_params`` + ``fit`` would check it.

Anything malformed is one ``ValueError("<file> is not a valid gpumeanshift
model: <what>")``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._params import KERNELS, validate_params

FORMAT_NAME = "gpumeanshift-model"
# Bumped only for changes an older reader cannot handle; readers refuse newer.
FORMAT_VERSION = 1

#: Largest JSON header (bytes) a model file may hold; save_model refuses to
#: write a larger one, so every file it writes loads.
MAX_HEADER_BYTES = 4 << 20

# The members the format defines (``<name>.npy``); nothing else is opened.
_MEMBERS = ("header", "cluster_centers", "cluster_sizes", "mean", "scale", "seeds")
# numpy's own default limit on a .npy header (np.save writes about 128 bytes).
_MAX_NPY_HEADER = 10_000
# The simple dtypes a member may have: byte order, kind, item size.
_DESCR = re.compile(r"[<>|=][biuf][1248]")

# Format-1 files name these parameters: every writer has stored all of them.
_PARAMS_V1 = ("algorithm", "backend", "bandwidth", "bin_seeding", "cluster_all", "kernel",
              "label_assignment", "max_iter", "min_bin_freq", "n_jobs", "output_type", "seeds",
              "tol")
# Parameters added after the first format-1 writer, with the value the older
# files were fitted with. A file that lacks one loads with this value, never
# with the library's current default (defaults change: the kernel's did).
_PARAMS_ADDED = {"max_memory": None, "verbose": 0}


class _Malformed(Exception):
    """Internal: what is wrong with the file (load_model adds the file name)."""


class _TooNew(Exception):
    """Internal: a well-formed file of a newer format version."""


# --------------------------------------------------------------------------- the model
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


# --------------------------------------------------------------------------- parameters
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


# --------------------------------------------------------------------------- writing
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
    from . import atomic_write

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


def _check_standardization(mean, scale, d: int, name: str) -> None:
    for label, a in (("mean", mean), ("scale", scale)):
        if a.dtype != np.float64 or a.shape != (d,):
            raise ValueError(
                f"{name}: standardization {label} must be {d} float64 values, "
                f"got {a.dtype} with shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: standardization {label} contains NaN or infinity")
    if (scale <= 0).any():
        raise ValueError(f"{name}: standardization scale must be positive")


# --------------------------------------------------------------------------- reading
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


def _open_regular(path, name: str):
    """Open ``path`` for reading if it is a regular file; never block on it."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"model file {name!r} does not exist", name) from None
    except IsADirectoryError:  # Windows cannot open directories
        raise _Malformed("it is a directory, not a regular file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a file")
            raise _Malformed(f"it is {kind}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_archive(f) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header and the format's arrays, each checked before it is read."""
    size = os.fstat(f.fileno()).st_size
    if f.read(4) != b"PK\x03\x04":
        # Checked first: other files never reach the ZIP reader.
        raise _Malformed("not an .npz archive (a model file is a ZIP archive of .npy arrays)")
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            stem, dot, ext = info.filename.rpartition(".")
            if dot and ext == "npy" and stem in _MEMBERS:
                if stem in members:
                    raise _Malformed(f"member {info.filename} appears twice")
                members[stem] = info
        for stem, info in members.items():
            _check_stored(info, size)
        if "header" not in members:
            raise _Malformed("it has no header (header.npy)")
        blob = _read_member(zf, members["header"], kinds="u", itemsize=1,
                            shape=(None,), max_items=MAX_HEADER_BYTES)
        header = _parse_header(blob)
        k, d = header["n_clusters"], header["n_features"]
        arrays = {}
        # The shape each array must have: from the header, read first.
        specs = {
            "cluster_centers": ("f", np.dtype(header["dtype"]).itemsize, (k, d)),
            "cluster_sizes": ("iuf", None, (k,)),
            "mean": ("f", 8, (d,)),
            "scale": ("f", 8, (d,)),
            "seeds": ("biuf", None, (header.get("n_seeds"), d)),
        }
        for stem, (kinds, itemsize, shape) in specs.items():
            if stem in members:
                arrays[stem] = _read_member(zf, members[stem], kinds=kinds, itemsize=itemsize,
                                            shape=shape)
    return header, arrays


def _check_stored(info: zipfile.ZipInfo, size: int) -> None:
    if info.flag_bits & 0x1:
        raise _Malformed(f"member {info.filename} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Malformed(
            f"member {info.filename} is compressed (ZIP method {info.compress_type}); model "
            "files store their arrays uncompressed, as save_model writes them")
    if info.compress_size != info.file_size or info.header_offset + info.file_size > size:
        raise _Malformed(
            f"member {info.filename} declares {info.file_size} bytes (stored as "
            f"{info.compress_size}) at offset {info.header_offset}, but the file has "
            f"{size} bytes (truncated?)")


def _read_member(zf, info, *, kinds: str, itemsize: int | None, shape: tuple,
                 max_items: int | None = None) -> np.ndarray:
    """One ``.npy`` member: its header read and checked, then exactly its data.

    ``shape`` may hold None for a length the JSON header does not fix.
    """
    fn = info.filename
    known = None not in shape
    if known:
        # Before opening: the member cannot be smaller than the header's shapes
        # say, nor larger by more than a .npy header (the 4e12-element case).
        need = math.prod(shape) * (itemsize or 1)
        most = math.prod(shape) * (itemsize or 8) + 12 + _MAX_NPY_HEADER
        if not need <= info.file_size <= most:
            raise _Malformed(f"member {fn} has {info.file_size} bytes, but the header's shape "
                             f"{_shape(shape)} needs {need}" + (f" to {most}" if need != most else ""))
    if max_items is not None and info.file_size > max_items + 12 + _MAX_NPY_HEADER:
        raise _Malformed(f"member {fn} has {info.file_size} bytes, more than the "
                         f"{max_items} allowed")
    with zf.open(info) as fp:
        dtype, fortran, got, offset = _read_npy_header(fp, fn)
        if dtype.kind not in kinds or (itemsize is not None and dtype.itemsize != itemsize):
            raise _Malformed(f"{fn[:-4]} has dtype {dtype.name}, expected "
                             + _expected_dtype(kinds, itemsize))
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            raise _Malformed(f"{fn[:-4]} has shape {got}, but the header says {_shape(shape)}")
        count = math.prod(got)
        if max_items is not None and count > max_items:
            raise _Malformed(f"{fn[:-4]} has {count} items, more than the {max_items} allowed")
        nbytes = count * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise _Malformed(f"member {fn} has {info.file_size} bytes, but its .npy header "
                             f"({offset} bytes) declares {nbytes} bytes of data")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        pos = 0
        while pos < nbytes:
            chunk = fp.read(min(1 << 20, nbytes - pos))
            if not chunk:
                raise _Malformed(f"member {fn} is truncated")
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if fp.read(1):  # reaching the end also verifies the CRC-32
            raise _Malformed(f"member {fn} has data past its array")
    a = np.frombuffer(buf, dtype=dtype).reshape(got, order="F" if fortran else "C")
    return a.astype(dtype.newbyteorder("="), copy=False)


def _read_npy_header(fp, fn: str):
    magic = fp.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise _Malformed(f"member {fn} is not a .npy array")
    width = 2 if magic[6] == 1 else 4
    raw = fp.read(width)
    if len(raw) != width:
        raise _Malformed(f"member {fn} is truncated")
    length = int.from_bytes(raw, "little")
    if length > _MAX_NPY_HEADER:
        raise _Malformed(f"member {fn} has a .npy header of {length} bytes")
    text = fp.read(length)
    if len(text) != length:
        raise _Malformed(f"member {fn} is truncated")
    try:
        meta = ast.literal_eval(text.decode("utf-8" if magic[6] == 3 else "latin1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _Malformed(f"member {fn} has an unreadable .npy header") from None
    if not (isinstance(meta, dict) and set(meta) == {"descr", "fortran_order", "shape"}
            and isinstance(meta["descr"], str) and _DESCR.fullmatch(meta["descr"])
            and isinstance(meta["fortran_order"], bool) and isinstance(meta["shape"], tuple)
            and all(type(n) is int and n >= 0 for n in meta["shape"])):
        raise _Malformed(f"member {fn} has an invalid .npy header {str(meta)[:200]!r} "
                         "(only plain numeric arrays are read)")
    return np.dtype(meta["descr"]), meta["fortran_order"], meta["shape"], 8 + width + length


def _shape(shape) -> str:
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _expected_dtype(kinds: str, itemsize: int | None) -> str:
    if kinds == "f" and itemsize is not None:
        return f"float{8 * itemsize}"
    return {"f": "a float type", "iu": "an integer type", "u": "uint8"}.get(kinds, "a numeric type")


# --------------------------------------------------------------------------- the header
def _parse_header(blob: np.ndarray) -> dict:
    from .. import __version__

    def no_duplicates(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(f"key {key!r} appears twice")
            obj[key] = value
        return obj

    def no_constant(word):
        raise ValueError(f"{word} is not a number")

    try:
        header = json.loads(blob.tobytes().decode("utf-8"), object_pairs_hook=no_duplicates,
                            parse_constant=no_constant)
    except RecursionError:
        raise _Malformed("bad header (JSON nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Malformed(f"bad header ({exc})") from None
    if not isinstance(header, dict):
        raise _Malformed("bad header (not a JSON object)")
    if header.get("format") != FORMAT_NAME:
        raise _Malformed(f"bad header: format is {_short(header.get('format'))}, "
                         f"not {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not _is_int(version) or version < 1:
        raise _Malformed(f"invalid model format version {_short(version)}")
    library = header.get("library_version")
    if not isinstance(library, str):
        raise _Malformed(f"library_version must be a string, got {_short(library)}")
    if version > FORMAT_VERSION:
        raise _TooNew(
            f"was written by gpumeanshift {library[:50]} in model format version {version}; "
            f"this gpumeanshift {__version__} reads format version {FORMAT_VERSION} at most. "
            "Upgrade gpumeanshift to load it.")
    for key in ("n_clusters", "n_features"):
        if not _is_int(header.get(key)) or header[key] < 1:
            raise _Malformed(f"{key} must be a positive integer, got {_short(header.get(key))}")
    if "n_seeds" in header and (not _is_int(header["n_seeds"]) or header["n_seeds"] < 1):
        raise _Malformed(f"n_seeds must be a positive integer, got {_short(header['n_seeds'])}")
    if header.get("dtype") not in ("float32", "float64"):
        raise _Malformed(f"dtype must be 'float32' or 'float64', got {_short(header.get('dtype'))}")
    return header


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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # lone surrogates, which JSON allows
        return False


def _short(value) -> str:
    """repr of a value from the file, cut short (a hostile file can hold anything)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
