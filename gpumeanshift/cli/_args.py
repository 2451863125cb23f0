"""Exit codes, the errors that carry them, the option types and the argument parser."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2
# Standard output closed (SIGPIPE), SIGTERM: 128 + the signal, as shells report them.
EXIT_PIPE, EXIT_TERM = 128 + 13, 128 + 15
# FILE and --output: standard input and output.
STDIO = "-"
# "auto" bandwidths estimate on at most this many points: estimate_bandwidth is O(n^2).
AUTO_BANDWIDTH_MAX_SAMPLES = 10_000
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# Filtered images: 8-bit image files through Pillow, any array as .npy.
SEGMENT_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
# segment's default --min-region-size: small regions merged, as EDISON and the
# Orfeo ToolBox do by default (Orfeo's minsize is 100). Without it the README's
# example cut scikit-learn's china.jpg into 70,439 regions; with it, 495.
SEGMENT_MIN_REGION_SIZE = 100
INPUT_FORMATS = ("csv", "tsv", "txt", "npy", "parquet")


class _CLIError(Exception):
    """An error reported as one line on stderr with its exit code."""

    code = EXIT_DATA


class _UsageError(_CLIError):
    code = EXIT_USAGE


class _DataError(_CLIError):
    code = EXIT_DATA


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
    _add_verbose(p)

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
    _add_verbose(p)

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


def _add_verbose(p):
    """--verbose, for the commands that fit."""
    p.add_argument("--verbose", "-v", action="store_true",
                   help="log the fit's progress on stderr (one line per round of the shift loop); "
                   "with or without it, a fit over 2 s shows a progress line when stderr is a terminal")
