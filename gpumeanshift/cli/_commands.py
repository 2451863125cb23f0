"""The ``gpumeanshift`` command line (also ``python -m gpumeanshift``).

Commands: ``demo`` (the README's main job on generated blobs), ``info``
(versions, backends, GPU, whether the CUDA kernels compile here),
``cluster FILE``, ``predict MODEL FILE`` and ``segment IMAGE``. ``gpumeanshift COMMAND --help``
describes each.

Exit codes: 0 success, 1 data errors (unreadable or invalid files, data the
estimator refuses, a backend that cannot run here), 2 usage errors (bad
options, an output that would overwrite an input or another output), 141
when the reader of standard output goes away (``| head``, quietly, as
coreutils do), 143 on SIGTERM (after removing any half-written file). Every
error is one line on stderr, without a traceback; set
``GPUMEANSHIFT_DEBUG=1`` to get the traceback instead.

``-`` as the input FILE reads standard input (CSV unless ``--format``), and
``--output -`` writes the labels to standard output as CSV (the summary then
goes to stderr).

matplotlib (``--plot``), CuPy and pyarrow are imported only when used.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2
# "auto" bandwidths estimate on at most this many points: estimate_bandwidth is O(n^2).
AUTO_BANDWIDTH_MAX_SAMPLES = 10_000
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# Filtered images: 8-bit image files through Pillow, any array as .npy.
SEGMENT_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
# Most points drawn in a scatter plot (a fixed random subsample beyond).
PLOT_MAX_POINTS = 50_000
# Most clusters listed one by one in the printed summary.
MAX_LISTED = 20
DEMO_CENTERS = [[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]
# Most column names echoed in the summary.
MAX_NAMES = 8
# segment's default --min-region-size: small regions merged, as EDISON and the
# Orfeo ToolBox do by default (Orfeo's minsize is 100). Without it the README's
# example cut scikit-learn's china.jpg into 70,439 regions; with it, 495.
SEGMENT_MIN_REGION_SIZE = 100
INPUT_FORMATS = ("csv", "tsv", "txt", "npy", "parquet")
EXIT_PIPE, EXIT_TERM = 128 + 13, 128 + 15
STDIO = "-"


class _CLIError(Exception):
    """An error reported as one line on stderr with its exit code."""

    code = EXIT_DATA


class _UsageError(_CLIError):
    code = EXIT_USAGE


class _DataError(_CLIError):
    code = EXIT_DATA


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that half-written files are removed."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and exits; we want one line and our exit code.
    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- option types
def _bandwidth_spec(text: str):
    """``--bandwidth``: a number, auto, scott, silverman or quantile:Q."""
    value = text.strip().lower()
    if value == "auto":
        return ("quantile", 0.3)
    if value in ("scott", "silverman"):
        return ("rule", value)
    if value.startswith("quantile:"):
        try:
            q = float(value.split(":", 1)[1])
        except ValueError:
            q = math.nan
        if not 0 < q <= 1:
            raise argparse.ArgumentTypeError(f"quantile must be a number in (0, 1], got {text!r}")
        return ("quantile", q)
    try:
        h = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, auto, scott, silverman or quantile:Q, got {text!r}"
        ) from None
    if not (math.isfinite(h) and h > 0):
        raise argparse.ArgumentTypeError(f"bandwidth must be a positive finite number, got {text!r}")
    return ("value", h)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _nonnegative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return n


def _float_at_least(low: float, strict: bool = False):
    def check(text: str) -> float:
        what = f"a number {'>' if strict else '>='} {low:g}"
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(v) or v < low or (strict and v == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return check


def _threshold(text: str):
    if text.strip().lower() == "bandwidth":
        return "bandwidth"
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a distance >= 0 or 'bandwidth', got {text!r}") from None
    if not (math.isfinite(t) and t >= 0):
        raise argparse.ArgumentTypeError(f"expected a distance >= 0 or 'bandwidth', got {text!r}")
    return t


def _suffix_checker(suffixes, what, stdio=False):
    def check(text: str) -> str:
        if stdio and text == STDIO:
            return text
        if Path(text).suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{what} must end in {', '.join(suffixes)}" + (" or be '-'" if stdio else "")
                + f", got {text!r}")
        return text

    return check


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpumeanshift`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        With one sub-parser per command.

    Examples
    --------
    >>> from gpumeanshift.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--n-samples", "300"])
    >>> args.command, args.n_samples, args.kernel
    ('demo', 300, 'flat')
    """
    from .. import __version__
    from ..backends.base import KERNELS, available_backends

    backends = ("auto",) + available_backends()
    exit_codes = ("exit codes: 0 success, 1 data error, 2 usage error, 141 standard output "
                  "closed (| head), 143 SIGTERM")
    parser = _Parser(
        prog="gpumeanshift",
        description="Mean-shift clustering on NVIDIA GPUs and on the CPU.",
        epilog=exit_codes + ". Run 'gpumeanshift COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"gpumeanshift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "demo",
        help="cluster generated blobs and report what ran and how long it took",
        description="Generate 3 Gaussian blobs (scikit-learn's MeanShift example), estimate the "
        "bandwidth (quantile 0.2 on 500 points), fit MeanShift with bin seeding and print "
        "the clusters found, the bandwidth, the backend that ran and the time taken.",
        epilog=exit_codes,
    )
    p.add_argument("--n-samples", type=_positive_int, default=10_000, metavar="N",
                   help="number of points (default: 10000)")
    p.add_argument("--backend", choices=backends, default="auto", help="where to run (default: auto)")
    p.add_argument("--kernel", choices=KERNELS, default="flat",
                   help="kernel (default: flat, scikit-learn's, as in its example)")
    p.add_argument("--random-state", type=int, default=0, metavar="SEED",
                   help="seed of the generated data (default: 0)")
    p.add_argument("--plot", type=_suffix_checker(PLOT_SUFFIXES, "--plot"), metavar="PATH",
                   help="write a scatter plot of the clusters (.png, .svg, .pdf; needs matplotlib)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="log the fit's progress on stderr (one line per round of the shift loop); "
                   "with or without it, a fit over 2 s shows a progress line when stderr is a terminal")

    p = sub.add_parser(
        "info",
        help="versions, backends, GPU and whether the CUDA kernels compile here",
        description="Report the versions of gpumeanshift, NumPy and Python, the backends "
        "available, whether CuPy imports, the GPU name and memory if any, and whether the "
        "CUDA kernels compile here (with NVRTC from cuda-bindings, when installed).",
        epilog=exit_codes,
    )
    p.add_argument("--no-compile", action="store_true",
                   help="skip the kernel compilation check (it takes a few seconds)")

    p = sub.add_parser(
        "cluster",
        help="cluster the points of a file; write labels, the model and a plot",
        description="Cluster the points of FILE (.csv/.tsv/.txt with the header and delimiter "
        "detected, .npy, or .parquet with pyarrow installed). Prints the clusters found; "
        "--output, --model and --plot write files (atomically).",
        epilog=exit_codes,
    )
    p.add_argument("file", metavar="FILE",
                   help="the points, one per row; '-' reads standard input (CSV unless --format)")
    p.add_argument("--format", choices=INPUT_FORMATS,
                   help="read FILE in this format, whatever its suffix (default: from the suffix)")
    p.add_argument("--bandwidth", type=_bandwidth_spec, default=("quantile", 0.3), metavar="BW",
                   help="a positive number; auto (scikit-learn's estimate, quantile 0.3); "
                   "quantile:Q (the same with quantile Q); scott or silverman (normal-reference "
                   f"rules). Estimates use a random subsample of {AUTO_BANDWIDTH_MAX_SAMPLES} "
                   "points for larger files. Default: auto")
    p.add_argument("--kernel", choices=KERNELS, default="flat",
                   help="kernel (default: flat, scikit-learn's)")
    p.add_argument("--bin-seeding", action="store_true",
                   help="seed from the occupied cells of a grid of side bandwidth (much faster)")
    p.add_argument("--backend", choices=backends, default="auto", help="where to run (default: auto)")
    p.add_argument("--standardize", action="store_true",
                   help="scale every column to mean 0 and standard deviation 1 before clustering "
                   "(saved in the model; the bandwidth is then in standardized units)")
    p.add_argument("--columns", metavar="COLS",
                   help="columns to use: comma-separated names (files with a header) or 0-based indices")
    p.add_argument("--weights", metavar="COLUMN",
                   help="weigh each point by this column (a name, or a 0-based index of the file's "
                   "columns), as if the row were repeated that many times; the column is not a "
                   "feature. Weights must be finite and >= 0, not all 0; rows of weight 0 take no "
                   "part in the fit but are labelled. Cluster sizes become summed weights")
    p.add_argument("--output", "-o", type=_suffix_checker((".csv", ".npy"), "--output", stdio=True),
                   metavar="PATH", help="write the label of every point (.csv or .npy; '-': CSV on "
                   "standard output, the summary then on stderr)")
    p.add_argument("--model", type=_suffix_checker((".npz",), "--model"), metavar="PATH",
                   help="save the model (an .npz file, no pickle)")
    p.add_argument("--plot", type=_suffix_checker(PLOT_SUFFIXES, "--plot"), metavar="PATH",
                   help="write a scatter plot (first two principal axes for d > 2; needs matplotlib)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="log the fit's progress on stderr (one line per round of the shift loop); "
                   "with or without it, a fit over 2 s shows a progress line when stderr is a terminal")

    p = sub.add_parser(
        "predict",
        help="label new points with a saved model",
        description="Label the points of FILE with the nearest center of the model saved by "
        "'gpumeanshift cluster --model', applying its standardization. Without --output the "
        "labels are printed, one per line.",
        epilog=exit_codes,
    )
    p.add_argument("model", metavar="MODEL", help="a model file written by 'gpumeanshift cluster --model'")
    p.add_argument("file", metavar="FILE",
                   help="the points (same formats as 'cluster'; '-' reads standard input)")
    p.add_argument("--format", choices=INPUT_FORMATS,
                   help="read FILE in this format, whatever its suffix (default: from the suffix)")
    p.add_argument("--outlier-threshold", type=_threshold, metavar="DIST",
                   help="label -1 the points farther than DIST from every center, in the model's "
                   "(standardized, if it was) units; 'bandwidth' uses the model's bandwidth")
    p.add_argument("--columns", metavar="COLS",
                   help="columns to use (default: the model's columns when the file has them, else all)")
    p.add_argument("--backend", choices=backends, default="auto", help="where to run (default: auto)")
    p.add_argument("--output", "-o", type=_suffix_checker((".csv", ".npy"), "--output", stdio=True),
                   metavar="PATH", help="write the labels (.csv or .npy; '-': CSV with a header on "
                   "standard output) and print a summary instead (on stderr with '-')")

    p = sub.add_parser(
        "segment",
        help="mean-shift segmentation of an image: filtered image, label image, picture",
        description="Segment IMAGE (PNG, JPEG, ... read with Pillow, or a .npy array of shape "
        "(height, width[, channels])) with gpumeanshift.segmentation.segment_image: each pixel "
        "climbs the joint position-colour density (square window of half-side "
        "--spatial-radius, colours within --range-radius), then 4-connected pixels of close "
        "filtered colour form regions. Writes the filtered image (--output), the label image "
        "as .npy (--labels) and, with --plot, the original, filtered and region boundaries "
        "side by side. An alpha channel is dropped (and said so).",
        epilog=exit_codes,
    )
    p.add_argument("image", metavar="IMAGE", help="the image file or .npy array")
    p.add_argument("--spatial-radius", "--sp", type=_float_at_least(1.0), default=8.0, metavar="PX",
                   help="half-side of the spatial window, in pixels, >= 1 (default: 8)")
    p.add_argument("--range-radius", "--sr", type=_float_at_least(0.0), default=16.0,
                   metavar="R", help="colour radius, in the colour space's units: 0-255 for rgb on "
                   "8-bit images, L*a*b* units for lab (default: 16)")
    p.add_argument("--color-space", choices=("rgb", "lab"), default="rgb",
                   help="filter the values as given (rgb, any channels) or in CIE L*a*b* "
                   "(lab, needs 3 channels) (default: rgb)")
    p.add_argument("--min-region-size", type=_nonnegative_int, default=SEGMENT_MIN_REGION_SIZE,
                   metavar="N", help="merge regions of fewer pixels into their closest-coloured "
                   f"neighbour; 0 keeps every region (default: {SEGMENT_MIN_REGION_SIZE})")
    p.add_argument("--max-iter", type=_positive_int, default=5, metavar="N",
                   help="most mean-shift iterations per pixel (default: 5, OpenCV's)")
    p.add_argument("--output", "-o", type=_suffix_checker(SEGMENT_IMAGE_SUFFIXES, "--output"),
                   metavar="PATH", help="the filtered image (default: IMAGE's name + '_filtered', "
                   ".png, or .npy for a .npy input, in the current directory)")
    p.add_argument("--labels", type=_suffix_checker((".npy",), "--labels"), metavar="PATH",
                   help="the label image, int64 (default: IMAGE's name + '_labels.npy' in the "
                   "current directory)")
    p.add_argument("--plot", type=_suffix_checker(PLOT_SUFFIXES, "--plot"), metavar="PATH",
                   help="write original, filtered and region boundaries side by side "
                   "(.png, .svg, .pdf; needs matplotlib)")

    return parser


# --------------------------------------------------------------------------- helpers
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


def _resolve_backend(name: str):
    from ..backends.base import resolve_backend

    try:
        return resolve_backend(name)
    except (ImportError, RuntimeError, OSError) as exc:
        raise _DataError(f"backend {name!r} cannot run here: {exc}") from None


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


def _fit(X, *, bandwidth, kernel, bin_seeding, backend, verbose=False, sample_weight=None):
    from .._estimator import MeanShift

    model = MeanShift(bandwidth=bandwidth, kernel=kernel, bin_seeding=bin_seeding, backend=backend,
                      verbose=int(verbose))
    logging_to_stderr = _log_to_stderr() if verbose else contextlib.nullcontext()
    with logging_to_stderr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            model.fit(X, sample_weight=sample_weight)
        except (ValueError, TypeError) as exc:
            raise _DataError(f"clustering failed: {exc}") from None
        seconds = time.perf_counter() - t0
    for w in caught:
        print(f"gpumeanshift: warning: {w.message}", file=sys.stderr)
    return model, seconds


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


def _estimate(X, quantile: float, backend, *, n_samples=None, sample_weight=None):
    from ..bandwidth import estimate_bandwidth

    if n_samples is None and len(X) > AUTO_BANDWIDTH_MAX_SAMPLES:
        n_samples = AUTO_BANDWIDTH_MAX_SAMPLES
    t0 = time.perf_counter()
    try:
        h = estimate_bandwidth(X, quantile=quantile, n_samples=n_samples, random_state=0,
                               backend=backend, sample_weight=sample_weight)
    except (ValueError, TypeError) as exc:
        raise _DataError(f"bandwidth estimation failed: {exc}") from None
    seconds = time.perf_counter() - t0
    if h == 0.0:
        n = min(len(X), n_samples or len(X))
        raise _DataError(
            f"the estimated bandwidth (quantile {quantile}) is 0: the mean distance of "
            f"{'a sample of ' if n < len(X) else ''}{n:,} points to their "
            f"k = max(1, int({quantile} * {n})) = {max(1, int(quantile * n))} nearest neighbours "
            "(the point itself counted) is 0; give --bandwidth a number or a larger quantile"
        )
    return h, seconds


# --------------------------------------------------------------------------- commands
def _cmd_demo(args) -> int:
    from ..datasets import make_blobs

    if args.plot:
        _require_matplotlib()
        _check_writable(args.plot)
    be = _resolve_backend(args.backend)
    X, _ = make_blobs(n_samples=args.n_samples, centers=DEMO_CENTERS, cluster_std=0.6,
                      random_state=args.random_state)
    _say(f"data: {len(X):,} points in 2-D, 3 generated blobs centered at {DEMO_CENTERS} "
         f"(cluster_std=0.6, random_state={args.random_state})")
    with _progress_line() as progress:
        progress.phase("bandwidth estimate")
        h, t_bw = _estimate(X, 0.2, be, n_samples=500)
        model, seconds = _fit(X, bandwidth=h, kernel=args.kernel, bin_seeding=True,
                              backend=args.backend, verbose=args.verbose)
    _say(
        f"bandwidth: {h:.6g} (estimate_bandwidth, quantile=0.2, n_samples=500; {t_bw:.3f} s)",
        f"fit: MeanShift(kernel={args.kernel!r}, bin_seeding=True) on backend "
        f"{model.backend_!r} in {seconds:.3f} s ({_plural(model.n_iter_, 'iteration')})"
        + (" (a first GPU run includes compiling the kernels)" if model.backend_ != "numpy" else ""),
        f"clusters found: {len(model.cluster_centers_)}",
        *_cluster_table(model.cluster_centers_, model.cluster_sizes_),
    )
    if args.plot:
        _write_plot(args.plot, X, np.asarray(model.labels_), model.cluster_centers_,
                    f"gpumeanshift demo: {_plural(len(model.cluster_centers_), 'cluster')}, "
                    f"bandwidth {h:.3g}")
        _say(f"plot written to {args.plot}")
    return EXIT_OK


def _cmd_cluster(args) -> int:
    from ..io import save_model, write_labels

    _data_on_stdout(args.output == STDIO)
    if args.plot:
        _require_matplotlib()
    _check_distinct("cluster", [("FILE", args.file)],
                    [("--output", args.output), ("--model", args.model), ("--plot", args.plot)])
    _check_writable(args.output, args.model, args.plot)
    be = _resolve_backend(args.backend)
    weights = None
    if args.weights is None:
        X, names = _read(args.file, args.columns, args.format)
    else:
        X, names, weights, weight_name = _read_weighted(args.file, args.columns, args.weights,
                                                        args.format)
    _say(f"data: {X.shape[0]:,} points x {X.shape[1]} features from {_shown(args.file)}"
         + (f" (columns {_fmt_names(names)})" if names else ""))
    if weights is not None:
        _say(f"weights: column {weight_name}, total {math.fsum(weights):.6g}"
             + (f", {_plural(int((weights == 0).sum()), 'row')} of weight 0"
                if (weights == 0).any() else ""))
    mean = scale = None
    Xm = X
    if args.standardize:
        # Weighted: the mean and standard deviation of the repeated rows.
        mean = np.average(X, axis=0, weights=weights).astype(np.float64)
        std = np.sqrt(np.average((X.astype(np.float64) - mean) ** 2, axis=0, weights=weights))
        scale = np.where(std > 0, std, 1.0)  # constant columns stay as they are
        Xm = ((X.astype(np.float64) - mean) / scale).astype(X.dtype, copy=False)
        _say("standardized: every column to mean 0, standard deviation 1")
    kind, value = args.bandwidth
    with _progress_line() as progress:
        if kind == "quantile" and value == 0.3 and len(Xm) <= AUTO_BANDWIDTH_MAX_SAMPLES:
            # The library's own estimate (quantile 0.3 on every point), inside the
            # fit: whatever it does with the data, zero bandwidths included.
            bandwidth, how = None, "estimate_bandwidth, quantile=0.3, within the fit"
            progress.phase("bandwidth estimate")
        elif kind == "quantile":
            progress.phase("bandwidth estimate")
            bandwidth, t_bw = _estimate(Xm, value, be, sample_weight=weights)
            how = f"estimate_bandwidth, quantile={value}"
            if len(Xm) > AUTO_BANDWIDTH_MAX_SAMPLES:
                how += f", n_samples={AUTO_BANDWIDTH_MAX_SAMPLES}"
            if args.kernel == "gaussian":
                # The library's rule for an estimated bandwidth with this kernel.
                from .._driver import gaussian_from_flat

                bandwidth = gaussian_from_flat(bandwidth, Xm.shape[1])
                how += ", / sqrt(d + 2) for the Gaussian kernel"
            how += f"; {t_bw:.3f} s"
        elif kind == "rule":
            bandwidth, how = value, f"{value}'s rule"
        else:
            bandwidth, how = value, "given"
        model, seconds = _fit(Xm, verbose=args.verbose, bandwidth=bandwidth, kernel=args.kernel,
                              bin_seeding=args.bin_seeding, backend=args.backend,
                              sample_weight=weights)
    centers = np.asarray(model.cluster_centers_, dtype=np.float64)
    if mean is not None:
        centers = centers * scale + mean  # report centers in the file's units
    _say(
        f"bandwidth: {model.bandwidth_:.6g} ({how})"
        + (" in standardized units" if mean is not None else ""),
        f"fit: MeanShift(kernel={args.kernel!r}, bin_seeding={args.bin_seeding}) on backend "
        f"{model.backend_!r} in {seconds:.3f} s ({_plural(model.n_iter_, 'iteration')})",
        f"clusters found: {len(centers):,}" + (" (centers in the file's units)" if mean is not None else ""),
        *_cluster_table(centers, model.cluster_sizes_),
    )
    if args.output == STDIO:
        write_labels(sys.stdout, np.asarray(model.labels_))
    elif args.output:
        write_labels(args.output, np.asarray(model.labels_))
        _say(f"labels written to {args.output}")
    if args.model:
        save_model(model, args.model, mean=mean, scale=scale, columns=names)
        _say(f"model written to {args.model}")
    if args.plot:
        # Drawn in the units the bandwidth is in: standardized ones with --standardize.
        std_names = None
        if mean is not None:
            std_names = [f"{n} (standardized)" for n in (names or ["x0", "x1"])]
        name = "stdin" if args.file == STDIO else Path(args.file).name
        _write_plot(args.plot, Xm, np.asarray(model.labels_), model.cluster_centers_,
                    f"{name}: {_plural(len(centers), 'cluster')}, bandwidth {model.bandwidth_:.3g}"
                    + (" (standardized units)" if mean is not None else ""),
                    names=std_names or names)
        _say(f"plot written to {args.plot}")
    return EXIT_OK


def _cmd_predict(args) -> int:
    from ..io import load_model, read_column_names, write_labels

    _data_on_stdout(args.output == STDIO)
    _check_distinct("predict", [("MODEL", args.model), ("FILE", args.file)], [("--output", args.output)])
    _check_writable(args.output)
    _resolve_backend(args.backend)
    try:
        saved = load_model(args.model, backend=args.backend)
    except (ValueError, OSError) as exc:
        raise _DataError(str(exc)) from None
    columns = args.columns
    pick_model_columns = False
    if columns is None and saved.columns:
        if args.file == STDIO:
            pick_model_columns = True  # standard input is read once: choose after reading
        else:
            names = read_column_names(args.file) if args.format in (None, "csv", "tsv", "txt") else None
            if names and all(c in names for c in saved.columns):
                columns = saved.columns
    X, names = _read(args.file, columns, args.format)
    if pick_model_columns and names and all(c in names for c in saved.columns):
        X = np.ascontiguousarray(X[:, [names.index(c) for c in saved.columns]])
    d = saved.estimator.n_features_in_
    if X.shape[1] != d:
        raise _DataError(
            f"{_shown(args.file)} has {X.shape[1]} columns but the model was fitted on {d} features"
            + (f" ({_fmt_names(saved.columns)})" if saved.columns else "")
            + "; choose them with --columns"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = saved.predict(X, outlier_threshold=args.outlier_threshold)
        except (ValueError, TypeError) as exc:
            raise _DataError(f"prediction failed: {exc}") from None
    for w in caught:
        print(f"gpumeanshift: warning: {w.message}", file=sys.stderr)
    if args.output is None:
        out = sys.stdout
        for a in range(0, len(labels), 65536):  # in blocks: '| head' stops it early
            out.write("".join(f"{v}\n" for v in labels[a:a + 65536].tolist()))
        return EXIT_OK
    write_labels(sys.stdout if args.output == STDIO else args.output, labels)
    k = len(saved.estimator.cluster_centers_)
    counts = np.bincount(labels[labels >= 0], minlength=k)
    _say(
        f"predicted: {len(labels):,} points from {_shown(args.file)} with {args.model} "
        f"({_plural(k, 'cluster')}, bandwidth {saved.estimator.bandwidth_:.6g}"
        + (", standardized" if saved.standardized else "") + ")",
        "points per cluster: " + ", ".join(f"{i}: {int(c):,}" for i, c in enumerate(counts[:MAX_LISTED]))
        + (f", ... ({k - MAX_LISTED} more)" if k > MAX_LISTED else ""),
    )
    if args.outlier_threshold is not None:
        _say(f"outliers (-1): {int((labels < 0).sum()):,}")
    if args.output != STDIO:
        _say(f"labels written to {args.output}")
    return EXIT_OK


def _cmd_segment(args) -> int:
    from ..io import check_image_writable, read_image, write_image
    from ..segmentation import segment_image

    src = Path(args.image)
    output = args.output or f"{src.stem}_filtered{'.npy' if src.suffix.lower() == '.npy' else '.png'}"
    labels_path = args.labels or f"{src.stem}_labels.npy"
    if args.plot:
        _require_matplotlib()
    _check_distinct("segment", [("IMAGE", args.image)],
                    [("--output", output), ("--labels", labels_path), ("--plot", args.plot)])
    _check_writable(output, labels_path, args.plot)
    try:
        image, note = read_image(src)
    except FileNotFoundError:
        raise _DataError(f"{src} does not exist") from None
    except IsADirectoryError:
        raise _DataError(f"{src} is a directory, not a file") from None
    except PermissionError:
        raise _DataError(f"{src}: permission denied") from None
    except ValueError as exc:
        raise _DataError(str(exc)) from None
    try:
        # Checked before the work: the filtered image has the input's dtype and shape.
        check_image_writable(image, output)
    except ValueError as exc:
        raise _DataError(str(exc)) from None
    channels = 1 if image.ndim == 2 else image.shape[2]
    _say(f"image: {image.shape[1]} x {image.shape[0]} pixels, {channels} channel(s), {image.dtype} "
         f"from {src}" + (f" ({note})" if note else ""))
    t0 = time.perf_counter()
    try:
        filtered, labels = segment_image(
            image, args.spatial_radius, args.range_radius, color_space=args.color_space,
            min_region_size=args.min_region_size, max_iter=args.max_iter)
    except (ValueError, TypeError) as exc:
        raise _DataError(f"segmentation failed: {exc}") from None
    seconds = time.perf_counter() - t0
    n_regions = int(labels.max()) + 1 if labels.size else 0
    _say(f"segment: spatial radius {args.spatial_radius:g} px, range radius {args.range_radius:g} "
         f"({args.color_space}), min region size {args.min_region_size}, max_iter {args.max_iter} "
         f"in {seconds:.3f} s",
         f"regions found: {n_regions:,}")
    write_image(output, filtered)
    _say(f"filtered image written to {output}")
    write_image(labels_path, labels)
    _say(f"labels written to {labels_path}")
    if args.plot:
        from ..io import atomic_write
        from ..plot import plot_segmentation

        fig = plot_segmentation(image, filtered, labels)
        with atomic_write(args.plot, "wb") as f:
            fig.savefig(f, format=Path(args.plot).suffix.lower().lstrip("."), dpi=100)
        _say(f"plot written to {args.plot}")
    return EXIT_OK


def _read(path, columns, fmt=None):
    from ..io import read_points

    try:
        if path == STDIO:
            return read_points(sys.stdin.buffer, columns=columns, format=fmt)
        return read_points(path, columns=columns, format=fmt)
    except FileNotFoundError:
        raise _DataError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise _DataError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise _DataError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise _DataError(f"{path} is not a UTF-8 text file") from None
    except ValueError as exc:
        raise _DataError(str(exc)) from None


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


def _version_of(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _gpus() -> tuple[list[tuple[str, int, int]], str]:
    """(name, bytes, compute capability as 80/90/...) of each GPU, and how they were found."""
    try:
        import cupy  # optional dependency

        n = cupy.cuda.runtime.getDeviceCount()
        out = []
        for i in range(n):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            out.append((name, int(props["totalGlobalMem"]), 10 * int(props["major"]) + int(props["minor"])))
        return out, "cupy"
    except Exception as exc:
        cupy_reason = _first_line(exc)
    try:
        from cuda.bindings import driver  # from cuda-bindings, when installed

        (err,) = driver.cuInit(0)
        if err != driver.CUresult.CUDA_SUCCESS:
            return [], f"no CUDA driver ({err.name})"
        err, n = driver.cuDeviceGetCount()
        out = []
        for i in range(n):
            _, dev = driver.cuDeviceGet(i)
            _, raw = driver.cuDeviceGetName(256, dev)
            _, mem = driver.cuDeviceTotalMem(dev)
            attr = driver.CUdevice_attribute
            _, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
            _, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
            out.append((raw.split(b"\0", 1)[0].decode(errors="replace"), int(mem), 10 * major + minor))
        return out, "cuda-bindings"
    except Exception as exc:
        return [], f"cupy: {cupy_reason}; cuda-bindings: {_first_line(exc)}"


def _compile_check(gpus) -> str:
    import importlib.util

    try:
        found = importlib.util.find_spec("cuda.bindings.nvrtc") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return ("not checked: cuda.bindings.nvrtc is not importable "
                "(pip install 'gpumeanshift[kernel-check]')")
    try:
        from ..testing import nvrtc

        archs = nvrtc.ARCHS
        if gpus:
            cc = gpus[0][2]
            arch = max([a for a in archs if a <= cc] or [archs[0]])
        else:
            arch = archs[0]
        t0 = time.perf_counter()
        infos, _ = nvrtc.compile_arch(arch)
        seconds = time.perf_counter() - t0
        major, minor = nvrtc.nvrtc_version()
        return f"yes (NVRTC {major}.{minor}, sm_{arch}, {len(infos)} kernels, {seconds:.1f} s)"
    except Exception as exc:
        return f"no: {_first_line(exc)}"


def _backend_unusable(name: str):
    """Why the registered backend ``name`` cannot run here, or None when it can."""
    if name == "cupy":
        try:
            import cupy  # noqa: F401  (optional dependency)
        except Exception as exc:
            return f"CuPy does not import: {_first_line(exc)}"
        from ..backends.base import cuda_available

        return None if cuda_available() else "no CUDA device"
    try:
        from ..backends.base import resolve_backend

        resolve_backend(name)
    except Exception as exc:
        return _first_line(exc)
    return None


def _cmd_info(args) -> int:
    import platform

    from .. import __version__
    from ..backends.base import available_backends

    _say(
        f"gpumeanshift {__version__}",
        f"python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()})",
        f"numpy {np.__version__}",
        "optional: " + ", ".join(
            f"{d} {_version_of(d)}" for d in ("scikit-learn", "matplotlib", "pyarrow", "tqdm", "cuda-bindings")
        ),
    )
    try:
        import cupy  # optional dependency

        cupy_line = f"yes (cupy {cupy.__version__})"
    except Exception as exc:
        cupy_line = f"no ({_first_line(exc)})"
    usable, unusable = [], []
    for name in available_backends():
        why = _backend_unusable(name)
        (unusable if why else usable).append(f"{name} ({why})" if why else name)
    auto = "cupy" if "cupy" in usable else "numpy"
    _say(f"backends: {', '.join(usable)} (backend='auto' uses {auto})"
         + (f"; cannot run here: {', '.join(unusable)}" if unusable else ""),
         f"cupy imports: {cupy_line}")
    try:
        gpus, how = _gpus()
    except Exception as exc:
        gpus, how = [], _first_line(exc)
    if gpus:
        for i, (name, mem, cc) in enumerate(gpus):
            _say(f"GPU {i}: {name}, {mem / 2**30:.1f} GiB, compute capability {cc // 10}.{cc % 10}")
    else:
        _say(f"GPU: none found ({how})")
    if args.no_compile:
        _say("CUDA kernels compile here: not checked: --no-compile")
    else:
        _say(f"CUDA kernels compile here: {_compile_check(gpus)}")
    return EXIT_OK


COMMANDS = {"demo": _cmd_demo, "info": _cmd_info, "cluster": _cmd_cluster, "predict": _cmd_predict,
            "segment": _cmd_segment}



def main(argv=None) -> int:
    """Run the ``gpumeanshift`` command line and return its exit code.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    code : int
        0 success, 1 data error, 2 usage error.

    Examples
    --------
    >>> from gpumeanshift.cli import main
    >>> main(["demo", "--n-samples", "300", "--backend", "numpy"])  # doctest: +ELLIPSIS
    data: 300 points in 2-D, 3 generated blobs ...
    clusters found: 3
    ...
    0
    """
    with _sigterm_raises():
        try:
            return _main(argv)
        finally:
            _data_on_stdout(False)


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises in the main thread, so atomic writes remove their temporary file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv) -> int:
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            raise _UsageError(
                f"gpumeanshift: error: choose a command: {', '.join(COMMANDS)} (see 'gpumeanshift --help')"
            )
        code = COMMANDS[command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader of stdout went away (| head): end quietly, as coreutils do.
        _stdout_gone()
        return EXIT_PIPE
    except _Terminated:
        _error(f"gpumeanshift {command or ''}: terminated".replace("  ", " "))
        return EXIT_TERM
    except SystemExit as exc:  # --help and --version
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_gone()
            return EXIT_PIPE
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except _UsageError as exc:
        _error(str(exc))
        return exc.code
    except _CLIError as exc:
        _error(f"gpumeanshift {command}: error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        _error(f"gpumeanshift {command}: interrupted")
        return 130
    except OSError as exc:  # writing outputs: disk full, permissions, ...
        if os.environ.get("GPUMEANSHIFT_DEBUG"):
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(f"gpumeanshift {command}: error: {where}{exc.strerror or exc}")
        return EXIT_DATA
    except Exception as exc:
        if os.environ.get("GPUMEANSHIFT_DEBUG"):
            raise
        _error(f"gpumeanshift {command}: internal error: {_first_line(exc)} "
               "(set GPUMEANSHIFT_DEBUG=1 for the traceback)")
        return EXIT_DATA


def _stdout_gone() -> None:
    # Later flushes (at exit) go to /dev/null instead of raising again.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _error(message: str) -> None:
    # One line, whatever the message held.
    print(" ".join(message.split()), file=sys.stderr)
