"""Saved models: one ``.npz`` archive, written by us and read trusting nothing in it.

A model file is a ZIP archive (what :func:`numpy.savez` writes) of ``.npy``
members: ``header.npy``, UTF-8 JSON as bytes (format name and version,
library version, shapes, bandwidth, kernel, estimator parameters), and the
numeric arrays ``cluster_centers``, the optional ``cluster_sizes``,
standardization ``mean``/``scale`` and ``seeds``. This module holds the
format's constants and the checks shared by the writer and the reader; the
public names are re-exported by :mod:`gpumeanshift.io`.

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

import json
import re

import numpy as np

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


# --------------------------------------------------------------------------- values from the file
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
