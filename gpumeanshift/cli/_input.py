"""Reading the points of FILE (or standard input) and the --weights column."""

from __future__ import annotations

import contextlib
import io
import sys

import numpy as np

from ._args import STDIO, _DataError, _UsageError


@contextlib.contextmanager
def reading(path, text=True):
    """Errors of reading the input file ``path`` as the command line's data
    errors (exit status 1, one line naming the file and what is wrong);
    ``text``: the file is read as text (a decoding error names UTF-8)."""
    try:
        yield
    except FileNotFoundError:
        raise _DataError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise _DataError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise _DataError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise _DataError(f"{path} is not a UTF-8 text file" if text else str(exc)) from None
    except ValueError as exc:
        raise _DataError(str(exc)) from None


def _read(path, columns, fmt=None):
    from ..io import read_points

    with reading(path):
        if path == STDIO:
            return read_points(sys.stdin.buffer, columns=columns, format=fmt)
        return read_points(path, columns=columns, format=fmt)


def _read_weighted(path, columns, weights, fmt=None):
    """The features and the weights column of a table: ``(X, names, w, label)``.

    The weights column (a name or a 0-based index of the file's columns) is
    read on its own first, so that its errors name it; the features are
    ``columns``, or every other column.
    """
    from ..io import _parse_columns

    if path == STDIO:  # read once, parsed twice
        data = sys.stdin.buffer.read()

        class _Stdin(io.BytesIO):
            name = "<stdin>"

        source = lambda: _Stdin(data)  # noqa: E731
    else:
        source = lambda: path  # noqa: E731
    try:
        spec = _parse_columns(weights)
    except ValueError:
        spec = []
    if len(spec) != 1:
        raise _UsageError(f"gpumeanshift cluster: error: --weights takes one column (a name or a "
                          f"0-based index), got {weights!r}")
    label = repr(spec[0]) if isinstance(spec[0], str) else f"{spec[0]}"
    try:
        w, wnames = _read(source(), [spec[0]], fmt)
    except _DataError as exc:
        raise _DataError(f"--weights column {label}: {exc}") from None
    w = np.ascontiguousarray(w[:, 0], dtype=np.float64)
    if wnames:
        label = repr(wnames[0])
    negative = np.flatnonzero(w < 0)
    if negative.size:
        i = int(negative[0])
        raise _DataError(f"--weights column {label}: data row {i + 1} has a negative weight "
                         f"({w[i]:g}); weights must be >= 0"
                         + (f" ({negative.size} negative values)" if negative.size > 1 else ""))
    if not (w > 0).any():
        raise _DataError(f"--weights column {label}: every weight is 0; at least one must be "
                         "positive")
    X, names = _read(source(), columns, fmt)
    if columns is None:
        # Every column but the weights: find the weights' index among them.
        from ..io import _resolve_columns

        try:
            (idx,) = _resolve_columns([spec[0]], names, X.shape[1], str(path))
        except ValueError as exc:
            raise _DataError(str(exc)) from None
        keep = [j for j in range(X.shape[1]) if j != idx]
        if not keep:
            raise _DataError(f"--weights column {label} is the only column: no features left; "
                             "the weights are not a feature")
        X = np.ascontiguousarray(X[:, keep])
        names = None if names is None else [names[j] for j in keep]
    else:
        wanted = _parse_columns(columns)
        if spec[0] in wanted or (wnames and names and wnames[0] in names):
            raise _UsageError(f"gpumeanshift cluster: error: --weights column {label} is also in "
                              "--columns; the weights are not a feature")
    if len(w) != len(X):  # cannot happen for one table; guards the two reads
        raise _DataError(f"--weights column {label} has {len(w)} values but the file has "
                         f"{len(X)} rows")
    return X, names, w, label
