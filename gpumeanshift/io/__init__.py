"""Files in and out: saved models (no pickle), point files, label files.

A saved model is one ``.npz`` archive read with ``allow_pickle=False``, so
loading a model never executes code. It holds a UTF-8 JSON header (format
name and version, library version, bandwidth, kernel, estimator parameters)
and plain numeric arrays (cluster centers and sizes, the optional
standardization ``mean``/``scale``, the optional seeds).

Every file written here is written atomically: into a temporary file in the
target's directory, flushed to disk, then renamed over the target with
:func:`os.replace`. A failed or interrupted write leaves no partial file and
never replaces a good file with a bad one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

POINT_SUFFIXES = (".csv", ".tsv", ".txt", ".npy", ".parquet", ".pq")
LABEL_SUFFIXES = (".csv", ".npy")


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file that replaces ``path`` only if the block succeeds.

    The temporary file lives in the directory of ``path`` (so the final
    :func:`os.replace` is an atomic rename on the same file system), is
    flushed and fsynced before the rename, and is removed if the block
    raises; ``path`` is then left exactly as it was.

    Parameters
    ----------
    path : str or path-like
        The file to create or replace.
    mode : {"wb", "w"}, default="wb"
        Binary or text (UTF-8, ``newline=""``) mode.

    Yields
    ------
    file : file object
        The temporary file, open for writing.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpumeanshift.io import atomic_write
    >>> d = tempfile.mkdtemp()
    >>> target = os.path.join(d, "out.txt")
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("hello\\n")
    >>> open(target).read()
    'hello\\n'
    >>> try:
    ...     with atomic_write(target, "w") as f:
    ...         _ = f.write("half a fi")
    ...         raise OSError("disk full")
    ... except OSError:
    ...     pass
    >>> open(target).read(), sorted(os.listdir(d))
    ('hello\\n', ['out.txt'])
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        kwargs = {} if mode == "wb" else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _match_permissions(tmp, path)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        raise
    _fsync_directory(directory)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the user's file) where it named the hidden
    temporary file or no file; an error about another file is left as it is."""
    name = exc.filename
    hidden = name is not None and (Path(os.fsdecode(name)).name.startswith(f".{path.name}.")
                                   and os.fsdecode(name).endswith(".tmp"))
    if exc.errno is None or not (name is None or hidden):
        return exc
    out = type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    out.__traceback__ = exc.__traceback__
    return out


def _match_permissions(tmp: str, path: Path) -> None:
    # mkstemp creates 0600; give the file the mode a plain open() would have.
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- models
# The model file format lives in its own module; this is its public home.
from ._model import (  # noqa: E402
    FORMAT_NAME,
    FORMAT_VERSION,
    SavedModel,
    load_model,
    save_model,
)


# --------------------------------------------------------------------------- points and labels
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


def write_labels(path, labels):
    """Write cluster labels to ``.csv`` (one column, header ``label``) or ``.npy``, atomically.

    Parameters
    ----------
    path : str, path-like or text file object
        Output file; the suffix picks the format. A file object (such as
        ``sys.stdout``) gets the CSV text, written directly.
    labels : array-like of int, shape (n_samples,)
        The labels.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import write_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> write_labels(path, np.array([0, 1, -1]))
    >>> open(path).read().split()
    ['label', '0', '1', '-1']
    """
    labels = np.asarray(labels).astype(np.int64, copy=False).ravel()
    if hasattr(path, "write"):
        _write_labels_csv(path, labels)
        return
    suffix = Path(path).suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise ValueError(f"{path}: labels can be written to {' or '.join(LABEL_SUFFIXES)} files, not {suffix or '(no suffix)'!r}")
    if suffix == ".npy":
        with atomic_write(path, "wb") as f:
            np.save(f, labels, allow_pickle=False)
    else:
        with atomic_write(path, "w") as f:
            _write_labels_csv(f, labels)


def _write_labels_csv(f, labels) -> None:
    f.write("label\n")
    # In blocks: a reader that stops early (``| head``) stops the writing early.
    for a in range(0, labels.size, 65536):
        f.write("".join(f"{v}\n" for v in labels[a:a + 65536].tolist()))


# --------------------------------------------------------------------------- images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Pillow modes kept as they are; others are converted (the note says how).
_KEPT_MODES = {"L", "RGB", "I;16", "I", "F"}


def read_image(path):
    """Read an image file (PNG, JPEG, ... with Pillow) or an image array (``.npy``).

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (read with ``allow_pickle=False``) holding an array
        of shape (height, width) or (height, width, channels), or an image
        file Pillow reads. Grey and RGB images keep their values; an alpha
        channel is dropped and palette, CMYK and other modes are converted
        to RGB, which ``note`` reports.

    Returns
    -------
    image : ndarray of shape (height, width) or (height, width, channels)
    note : str or None
        What was converted, if anything.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import read_image, write_image
    >>> path = os.path.join(tempfile.mkdtemp(), "img.png")
    >>> write_image(path, np.full((4, 5, 3), 200, dtype=np.uint8))
    >>> image, note = read_image(path)
    >>> image.shape, image.dtype, int(image[0, 0, 0]), note
    ((4, 5, 3), dtype('uint8'), 200, None)
    """
    path = Path(path)
    if path.is_dir():
        import errno

        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if path.suffix.lower() == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            raise ValueError(f"{path} is not a readable .npy array: {exc}") from None
        if image.ndim not in (2, 3) or image.dtype.kind not in "biuf":
            raise ValueError(
                f"{path}: an image array must be numeric with shape (height, width) or "
                f"(height, width, channels), got {image.dtype} with shape {image.shape}"
            )
        return image, None
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError(
            f"reading {path.suffix or 'this'} images needs Pillow, which is not installed "
            "(pip install pillow), or give the image as a .npy array"
        ) from None
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            note = None
            if mode not in _KEPT_MODES:
                target = "L" if mode in ("1", "LA", "La") else "RGB"
                note = f"{mode} image converted to {target}" + (
                    " (alpha channel dropped)" if "A" in mode or "transparency" in im.info else "")
                im = im.convert(target)
            image = np.array(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{path} is not an image Pillow can read: {exc}") from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path} is not an image Pillow can read (truncated or corrupted?): {exc}") from None
    return image, note


def write_image(path, image):
    """Write an image atomically: ``.npy`` for any array, PNG/JPEG/... for 8-bit images.

    Parameters
    ----------
    path : str or path-like
        Output file; the suffix picks the format (``.npy``, or one of
        ``.png .jpg .jpeg .bmp .tif .tiff`` through Pillow).
    image : ndarray of shape (height, width) or (height, width, channels)
        For image formats: ``uint8`` with 1, 3 or 4 channels. Other dtypes
        (floats, 16-bit) are refused there rather than rescaled: use ``.npy``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import write_image
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.npy")
    >>> write_image(path, np.zeros((2, 3), dtype=np.int64))
    >>> np.load(path).shape
    (2, 3)
    """
    suffix = Path(path).suffix.lower()
    image = np.asarray(image)
    if suffix == ".npy":
        with atomic_write(path, "wb") as f:
            np.save(f, image, allow_pickle=False)
        return
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"{path}: images can be written to .npy or {', '.join(IMAGE_SUFFIXES)} files, "
            f"not {suffix or '(no suffix)'!r}"
        )
    check_image_writable(image, path)
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, suffix[1:].upper())
    with atomic_write(path, "wb") as f:
        Image.fromarray(image).save(f, format=fmt)


def check_image_writable(image, path) -> None:
    """Raise ValueError unless ``image`` can be written to the image file ``path``.

    Parameters
    ----------
    image : ndarray
        The image to write.
    path : str or path-like
        The output file; its suffix picks the format (``.npy`` takes any array).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.io import check_image_writable
    >>> check_image_writable(np.zeros((2, 2, 3), np.uint8), "out.png")
    >>> check_image_writable(np.zeros((2, 2), np.float32), "out.png")
    Traceback (most recent call last):
    ...
    ValueError: out.png: only uint8 images with 1, 3 or 4 channels can be written as .png (got float32 with shape (2, 2)); write a .npy file instead
    """
    image = np.asarray(image)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    allowed = (1, 3) if suffix in (".jpg", ".jpeg") else (1, 3, 4)
    if image.dtype != np.uint8 or channels not in allowed:
        raise ValueError(
            f"{path}: only uint8 images with {'1 or 3' if len(allowed) == 2 else '1, 3 or 4'} channels can be "
            f"written as {suffix} "
            f"(got {image.dtype} with shape {image.shape}); write a .npy file instead"
        )
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ValueError(f"writing {suffix} images needs Pillow (pip install pillow); "
                         "write a .npy file instead") from None
