"""Atomic writes: a file is replaced whole or not at all.

Every file :mod:`gpumeanshift.io` writes goes through :func:`atomic_write`:
into a temporary file in the target's directory, flushed to disk, then
renamed over the target with :func:`os.replace`. A failed or interrupted
write leaves no partial file and never replaces a good file with a bad one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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
