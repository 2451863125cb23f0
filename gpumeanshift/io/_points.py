"""Point files: CSV/TSV/text, NPY and Parquet tables read into a float array.

Also the column selection shared by the readers and the command line:
``--columns`` parsed by :func:`_parse_columns` and matched against a file's
header by :func:`_resolve_columns`.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np

POINT_SUFFIXES = (".csv", ".tsv", ".txt", ".npy", ".parquet", ".pq")


# --------------------------------------------------------------------------- columns
def _parse_columns(columns) -> list:
    if columns is None:
        return []
    if isinstance(columns, str):
        items = [c.strip() for c in columns.split(",")]
    else:
        items = [str(c).strip() for c in columns]
    if not items or any(c == "" for c in items):
        raise ValueError(f"columns must be a comma-separated list of names or 0-based indices, got {columns!r}")
    return [int(c) if c.lstrip("-").isdigit() else c for c in items]


def _resolve_columns(wanted: list, names: list[str] | None, n_columns: int, source: str) -> list[int]:
    idx = []
    for c in wanted:
        if isinstance(c, int):
            if not 0 <= c < n_columns:
                raise ValueError(f"{source}: column index {c} is out of range (it has {n_columns} columns, numbered from 0)")
            idx.append(c)
        else:
            if names is None:
                raise ValueError(f"{source}: column {c!r} given by name but the file has no header; use 0-based indices")
            if c not in names:
                raise ValueError(f"{source}: no column named {c!r}; the columns are {', '.join(names)}")
            idx.append(names.index(c))
    return idx


# --------------------------------------------------------------------------- text files
def _looks_numeric(field: str) -> bool:
    try:
        float(field.strip().strip('"').strip("'"))
        return True
    except ValueError:
        return False


def _read_text(path, wanted: list, source: str, suffix: str):
    first, skip = _first_line(path)
    if first is None:
        raise ValueError(f"{source} is empty")
    delimiter, fields, names = _split_header(path, first, suffix)
    has_header = names is not None
    usecols = _resolve_columns(wanted, names, len(fields), source) if wanted else None
    try:
        with warnings.catch_warnings():
            # "input contained no data": reported below as an error instead.
            warnings.simplefilter("ignore", UserWarning)
            X = np.loadtxt(
                path, delimiter=delimiter, skiprows=skip + int(has_header), usecols=usecols,
                ndmin=2, dtype=np.float64, comments="#", encoding="utf-8-sig", quotechar='"',
            )
    except ValueError as exc:
        hint = "" if wanted else " (choose the numeric columns with --columns)"
        raise ValueError(f"{source}: {_loadtxt_message(str(exc), names)}{hint}") from None
    if X.shape[0] == 0:
        raise ValueError(f"{source} has no data rows")
    if names is not None:
        names = [names[i] for i in usecols] if usecols else names
    return X, names


def _loadtxt_message(message: str, names) -> str:
    # np.loadtxt counts data rows from 0 and file columns from 1; say both from 1.
    def fix(mo):
        row, col = int(mo.group(1)) + 1, int(mo.group(2))
        name = f" ({names[col - 1]!r})" if names and 0 < col <= len(names) else ""
        return f"at data row {row}, column {col}{name}"

    return re.sub(r"at row (\d+), column (\d+)", fix, message).rstrip(".")


def read_column_names(path):
    """Column names of a point file: the header of a text file, a Parquet schema.

    Parameters
    ----------
    path : str or path-like
        A file :func:`read_points` reads.

    Returns
    -------
    names : list of str or None
        None for NPY files, text files without a header, unreadable files
        and Parquet files when pyarrow is missing.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpumeanshift.io import read_column_names
    >>> path = os.path.join(tempfile.mkdtemp(), "points.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("x;y\\n1;2\\n")
    >>> read_column_names(path)
    ['x', 'y']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq  # optional dependency

            return list(pq.read_schema(path).names)
        if suffix in (".csv", ".tsv", ".txt"):
            first, _ = _first_line(path)
            if first is not None:
                return _split_header(path, first)[2]
    except Exception:  # a name lookup is only a hint; read_points reports errors
        return None
    return None


def _first_line(path):
    # ``path``: a file, or the lines of a text already read (standard input).
    with (open(path, encoding="utf-8-sig") if isinstance(path, Path)
          else contextlib.nullcontext(path)) as f:
        for skip, line in enumerate(f):
            if line.strip() and not line.lstrip().startswith("#"):
                return line.rstrip("\r\n"), skip
    return None, 0


def _split_header(path, first: str, suffix=None):
    suffix = path.suffix.lower() if suffix is None else suffix
    if suffix == ".tsv" or "\t" in first:
        delimiter = "\t"
    elif "," in first:
        delimiter = ","
    elif ";" in first:
        delimiter = ";"
    else:
        delimiter = None  # runs of whitespace
    fields = first.split(delimiter)
    has_header = not all(_looks_numeric(x) for x in fields)
    names = [x.strip().strip('"').strip("'") for x in fields] if has_header else None
    return delimiter, fields, names


# --------------------------------------------------------------------------- any format
def read_points(path, columns=None, *, format=None):
    """Read a table of points from CSV/TSV/text, NPY or Parquet.

    Text files: the delimiter (tab, comma, semicolon or whitespace) and a
    header line (a first line with any non-numeric field) are detected;
    lines starting with ``#`` are skipped. ``.npy`` files are read with
    ``allow_pickle=False``; a 1-D array is one feature. Parquet needs pyarrow.

    Parameters
    ----------
    path : str, path-like or binary file object
        The file; its suffix picks the reader (.csv, .tsv, .txt, .npy,
        .parquet, .pq) unless ``format`` is given. A file object (such as
        ``sys.stdin.buffer``) is read to its end, as CSV unless ``format``
        says otherwise.
    columns : str or sequence, default=None
        Columns to use: names (files with a header) or 0-based indices, as a
        sequence or one comma-separated string. None uses every column.
    format : {"csv", "tsv", "txt", "npy", "parquet", "pq"}, default=None
        The reader, whatever the suffix.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The points (float64 for text; the stored dtype for NPY/Parquet).
    names : list of str or None
        Column names when the file has them.

    Raises
    ------
    ValueError
        Unsupported suffix, unknown columns, non-numeric, missing or
        non-finite values, empty files.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpumeanshift.io import read_points
    >>> path = os.path.join(tempfile.mkdtemp(), "points.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("id,x,y\\n1,0.5,1.5\\n2,2.0,3.0\\n")
    >>> X, names = read_points(path, columns="x,y")
    >>> X
    array([[0.5, 1.5],
           [2. , 3. ]])
    >>> names
    ['x', 'y']
    """
    if format is not None and "." + str(format).lower() not in POINT_SUFFIXES:
        raise ValueError(f"format must be one of "
                         f"{', '.join(s[1:] for s in POINT_SUFFIXES)}, got {format!r}")
    if hasattr(path, "read"):
        source = str(getattr(path, "name", "the stream"))
        suffix = "." + (format or "csv").lower()
        data = path.read()
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if suffix in (".npy", ".parquet", ".pq"):
            import io

            path = io.BytesIO(data)
        else:
            try:
                path = data.decode("utf-8-sig").splitlines(keepends=True)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{source} is not UTF-8 text ({exc.reason})") from None
    else:
        path = Path(path)
        source = str(path)
        suffix = "." + format.lower() if format else path.suffix.lower()
        if suffix not in POINT_SUFFIXES:
            raise ValueError(
                f"{source}: unsupported file type {suffix or '(no suffix)'!r}; "
                f"use one of {', '.join(POINT_SUFFIXES)}"
            )
        if not path.exists():
            raise FileNotFoundError(f"{source} does not exist")
    wanted = _parse_columns(columns)
    if suffix == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{source} is not a readable .npy file: {exc}") from None
        if X.dtype.names is not None or X.dtype.kind not in "biuf":
            raise ValueError(f"{source}: expected a numeric array, got dtype {X.dtype}")
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            raise ValueError(f"{source}: expected a 2-D array of points, got shape {X.shape}")
        names = None
        if wanted:
            X = X[:, _resolve_columns(wanted, None, X.shape[1], source)]
    elif suffix in (".parquet", ".pq"):
        X, names = _read_parquet(path, wanted, source)
    else:
        X, names = _read_text(path, wanted, source, suffix)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{source} has no data (shape {X.shape})")
    if X.dtype.kind in "biu":
        X = X.astype(np.float64)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(
            f"{source}: data row {row + 1} has a missing or non-finite value "
            f"({X[row].tolist()}); all values must be finite"
        )
    return np.ascontiguousarray(X), names


def _read_parquet(path: Path, wanted: list, source: str):
    try:
        import pyarrow.parquet as pq  # optional dependency
    except ImportError:
        raise ValueError(
            f"{source}: reading Parquet needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        schema_names = list(pq.read_schema(path).names)
        idx = _resolve_columns(wanted, schema_names, len(schema_names), source) if wanted else range(len(schema_names))
        names = [schema_names[i] for i in idx]
        table = pq.read_table(path, columns=names)
        cols = [table.column(n).to_numpy() for n in names]
    except (OSError, ValueError) as exc:
        raise ValueError(f"{source} is not a readable Parquet file: {exc}") from None
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid, ...)
        raise ValueError(f"{source}: {exc}") from None
    for n, c in zip(names, cols):
        if c.dtype.kind not in "biuf":
            raise ValueError(f"{source}: column {n!r} is not numeric ({c.dtype}); choose columns with --columns")
    return np.column_stack(cols), names
