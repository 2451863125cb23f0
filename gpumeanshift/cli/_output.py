"""What the command says and writes: the summary stream, formatting, checks on
output paths before the work, plots, the progress line and --verbose logging."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._args import STDIO, _DataError, _UsageError

# Most points drawn in a scatter plot (a fixed random subsample beyond).
PLOT_MAX_POINTS = 50_000
# Most clusters listed one by one in the printed summary.
MAX_LISTED = 20
# Most column names echoed in the summary.
MAX_NAMES = 8


# Where the summary goes: stdout, or stderr when stdout carries data (--output -).
_summary = {"stream": None}


def _say(*lines: str) -> None:
    stream = _summary["stream"] or sys.stdout
    for line in lines:
        print(line, file=stream)


def _data_on_stdout(flag: bool) -> None:
    _summary["stream"] = sys.stderr if flag else None


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _fmt_names(names, limit: int = MAX_NAMES) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} columns)" if len(names) > limit else "")


def _shown(path) -> str:
    return "standard input" if path == STDIO else str(path)


def _fmt_vec(v, limit: int = 6) -> str:
    items = [f"{x:.4g}" for x in np.asarray(v, dtype=np.float64)[:limit]]
    if len(v) > limit:
        items.append(f"... ({len(v)} values)")
    return "[" + ", ".join(items) + "]"


def _fmt_size(size) -> str:
    # Counts, or summed weights (fractional ones as such).
    size = float(size)
    return f"{int(size):>9,}" if size == int(size) else f"{size:>9.6g}"


def _cluster_table(centers, sizes) -> list[str]:
    lines = [f"  {'cluster':>7}  {'size':>9}  center"]
    for i in range(min(len(centers), MAX_LISTED)):
        lines.append(f"  {i:>7}  {_fmt_size(sizes[i])}  {_fmt_vec(centers[i])}")
    if len(centers) > MAX_LISTED:
        lines.append(f"  ... and {_plural(len(centers) - MAX_LISTED, 'more cluster')}")
    return lines


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401  (optional dependency, imported only for --plot)
    except ImportError:
        raise _DataError(
            "--plot needs matplotlib, which is not installed: pip install 'gpumeanshift[plot]'"
        ) from None


def _check_writable(*paths) -> None:
    """Every output's directory exists and takes a new file: found before the work."""
    for path in paths:
        if path is None or path == STDIO:
            continue
        target = Path(path)
        parent = target.parent
        if not parent.is_dir():
            raise _DataError(f"cannot write {path}: directory {str(parent)!r} does not exist")
        if target.is_dir():
            raise _DataError(f"cannot write {path}: it is a directory")
        # A real probe, as the final write makes its temporary file: permission
        # bits say nothing for root, read-only mounts or a full disk.
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise _DataError(f"cannot write {path}: directory {str(parent)!r}: "
                             f"{exc.strerror or exc}") from None


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links: the same inode
    except OSError:
        return False


def _check_distinct(command: str, inputs, outputs) -> None:
    """Refuse, before any work, an output that is an input or another output.

    ``inputs`` and ``outputs`` are ``(what, path)`` pairs; None and ``-``
    (standard input/output) are skipped.
    """
    seen = [(f"the input {what}", path) for what, path in inputs if path not in (None, STDIO)]
    for what, path in outputs:
        if path in (None, STDIO):
            continue
        for other, other_path in seen:
            if _same_file(path, other_path):
                same = "" if path == other_path else f" ({other_path})"
                raise _UsageError(
                    f"gpumeanshift {command}: error: {what} {path} is {other}{same}; "
                    "refusing to overwrite it: choose another path")
        seen.append((f"also {what}", path))


def _write_plot(path, X, labels, centers, title: str, names=None) -> None:
    from ..io import atomic_write
    from ..plot import plot_clusters

    if len(X) > PLOT_MAX_POINTS:
        title += f" ({PLOT_MAX_POINTS:,} points shown)"
    fig = plot_clusters(X, labels, centers, title=title, axis_names=names,
                        max_points=PLOT_MAX_POINTS)
    fmt = Path(path).suffix.lower().lstrip(".")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=100)


@contextlib.contextmanager
def _progress_line():
    """A progress line on stderr when it is a terminal (fits over 2 s), else nothing."""
    from .. import _progress

    isatty = getattr(sys.stderr, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except (OSError, ValueError):
        tty = False
    if not tty:
        yield _progress.TerminalProgress(None)  # its phase() is called, never drawn
        return
    with _progress.terminal_progress(sys.stderr) as line:
        yield line


@contextlib.contextmanager
def _log_to_stderr():
    """--verbose: the application (not the library) gives the package logger a
    handler for the duration of the fit."""
    import logging

    from .. import _progress

    class Handler(logging.StreamHandler):
        def emit(self, record):
            if _progress._terminal is not None:  # the log line replaces the progress line
                _progress._terminal.clear()
            super().emit(record)

    logger = logging.getLogger("gpumeanshift")
    handler = Handler(sys.stderr)
    handler.setFormatter(logging.Formatter("gpumeanshift: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
