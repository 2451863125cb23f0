"""The speed race: scikit-learn, NumPy brute force, NumPy grid and CUDA on the same data.

    python bench/race.py                       # about a minute on 2 cores
    python bench/race.py --max-n 1e6 --datasets hotspot --plot race.png
    python bench/race.py --help

Every method clusters the same points with the same bandwidth, flat kernel
(scikit-learn's) and the same seeds; the race checks that they found the
same clusters, prints a table of times and speed-ups, fits how time grows
with n for each method, and can plot time against n.

Datasets (each at sizes 1e3, 3e3, 1e4, ... up to ``max_n``; defined, with the
agreement check, in ``_cases.py``, which the rest of bench/ shares):

``hotspot``
    Geographic hotspots: at 1e6 points, 1,000 Gaussian blobs of standard
    deviation 1 scattered uniformly over a 1000 x 1000 square, bandwidth 2;
    smaller n keeps the density (n / 1000 blobs over a square of area
    n / 1e6 of the full one). Every point is a seed.
``blobs-2d``, ``blobs-3d``, ``blobs-5d``, ``blobs-16d``
    5 Gaussian blobs (std 1, centers in [-10, 10]^d), bandwidth
    ``1.5 * sqrt(d)``, bin seeding.
``digits``
    scikit-learn's ``load_digits`` (1,797 images of 8 x 8 pixels, 64-D; it
    ships with scikit-learn), bandwidth ``8 * pi``, every point a seed. One size.
``china-rgb``
    The pixels of scikit-learn's sample image ``china.jpg`` in RGB space
    (273,280 points, 3-D, subsampled for smaller n), bandwidth ``4 * pi``,
    bin seeding.

The data of the two real datasets are integers, so their means are
rationals and the bin seeds multiples of the bandwidth: a bandwidth like
12.5 puts many pairs exactly one bandwidth apart, where the flat kernel's
``<=`` is decided by the last bit of each library's distance arithmetic.
A bandwidth whose square (in floating point) no mean of fewer than 2^23
integer points can equal leaves no exact ties.

Methods: ``sklearn`` (when scikit-learn is installed), ``numpy-brute``,
``numpy-grid`` (datasets of at most :data:`GRID_MAX_RACE_DIM` features; 3^d
cells per seed makes it pointless beyond) and ``cuda`` (when
:func:`gpumeanshift.backends.base.cuda_available`).

Time budget: a run predicted (from the same method's smaller sizes) to take
longer than ``budget`` seconds is skipped. scikit-learn is never skipped but
extrapolated: it is run on the full data with two random subsets of the
seeds (scikit-learn's cost is a fixed part -- tree build, labels -- plus a
part proportional to the number of seeds, each seed climbing on its own),
and its time for all seeds is the straight line through the two timings,
evaluated at the full seed count. Such times are marked ``*``; their
agreement check compares scikit-learn and each other method on the larger
seed subset.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from _cases import DATASETS, Dataset, check_agreement, fit_gpumeanshift, fit_sklearn
from _race_report import Run, fit_exponent, format_exponents, format_table, write_plot

#: The sizes of the ladder (each dataset is run at those <= max_n).
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
DEFAULT_MAX_N = 3_000
DEFAULT_BUDGET = 10.0  # seconds per run
DEFAULT_ATOL = 1e-6  # agreement tolerance on centers, in bandwidths
GRID_MAX_RACE_DIM = 5
METHODS = ("sklearn", "numpy-brute", "numpy-grid", "cuda")
# What the "cuda" method passes as ``backend=`` (a name or a Backend instance).
CUDA_BACKEND = "cupy"
# Seeds of scikit-learn's first (probe) run when it may have to be extrapolated.
SKLEARN_PROBE_SEEDS = 100
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


# ----------------------------------------------------------------- datasets
def sizes_for(ds: Dataset, max_n: int) -> list[int]:
    """The sizes a dataset runs at: the ladder up to ``max_n`` (and its own size).

    Parameters
    ----------
    ds : Dataset
        The dataset.
    max_n : int
        Largest size of the ladder :data:`SIZES` to run.

    Returns
    -------
    sizes : list of int
        The ladder's sizes up to ``max_n`` and below the dataset's own size,
        then that size when ``max_n`` (or the smallest rung) reaches it.

    Examples
    --------
    >>> from race import DATASETS, sizes_for
    >>> sizes_for(DATASETS["hotspot"], 10_000)
    [1000, 3000, 10000]
    >>> sizes_for(DATASETS["digits"], 10_000)
    [1000, 1797]
    """
    out = [n for n in SIZES if n <= max_n and (ds.max_size is None or n < ds.max_size)]
    if ds.max_size is not None and ds.max_size <= max(max_n, SIZES[0]):
        out.append(ds.max_size)
    return out


# -------------------------------------------------------------------- running
def _available_methods(methods):
    from gpumeanshift.backends.base import cuda_available

    out = []
    for m in methods:
        if m == "sklearn":
            try:
                import sklearn  # noqa: F401  (optional peer)
            except ImportError:
                continue
        if m == "cuda" and not cuda_available():
            continue
        out.append(m)
    return out


def _time(fn, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _ours(method, X, h, bin_seeding, seeds=None):
    backend, algorithm = {"numpy-brute": ("numpy", "brute"), "numpy-grid": ("numpy", "grid"),
                          "cuda": (CUDA_BACKEND, "auto")}[method]
    return lambda: fit_gpumeanshift(X, h, bin_seeding=bin_seeding, seeds=seeds, backend=backend,
                                    algorithm=algorithm).cluster_centers_


def _sklearn(X, h, bin_seeding, seeds=None):
    return lambda: fit_sklearn(X, h, bin_seeding=bin_seeding, seeds=seeds).cluster_centers_


def _seed_count(X, h, bin_seeding):
    if not bin_seeding:
        return len(X)
    from gpumeanshift.seeding import get_bin_seeds

    return len(get_bin_seeds(X, h, 1))


def _predict(history, n):
    """Time predicted at n from (n, seconds) of smaller sizes (exponent 2 if unknown)."""
    if not history:
        return 0.0
    ns, ts = zip(*history)
    k = fit_exponent(ns, ts) if len(history) >= 2 else 2.0
    k = 2.0 if not np.isfinite(k) else max(k, 1.0)
    return ts[-1] * (n / ns[-1]) ** k


def run_race(*, max_n=DEFAULT_MAX_N, datasets=None, methods=METHODS, budget=DEFAULT_BUDGET,
             repeat=1, atol=DEFAULT_ATOL, random_state=0, log=None) -> list[Run]:
    """Run every dataset at every size through every available method.

    Parameters
    ----------
    max_n : int, default=3000
        Largest size of the ladder 1e3, 3e3, 1e4, ... (1e6 allowed).
    datasets : list of str, default=None
        Names from :data:`DATASETS`; None runs all (those needing
        scikit-learn only when it is installed).
    methods : sequence of str, default=METHODS
        Among "sklearn", "numpy-brute", "numpy-grid", "cuda"; methods not
        available here are left out.
    budget : float, default=10.0
        Seconds a run may be predicted to take; see the module docstring.
        ``math.inf`` runs everything in full.
    repeat : int, default=1
        Runs per measurement; the fastest counts.
    atol : float, default=1e-6
        Agreement tolerance on centers, in bandwidths.
    random_state : int, default=0
    log : callable, default=None
        Called with a line of progress per run.

    Returns
    -------
    runs : list of Run
        One per dataset, size and method, in that order.

    Examples
    --------
    >>> from race import run_race
    >>> runs = run_race(max_n=1000, datasets=["hotspot"], methods=["numpy-brute", "numpy-grid"])
    >>> [(r.method, r.n, r.agrees) for r in runs]
    [('numpy-brute', 1000, True), ('numpy-grid', 1000, True)]
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    methods = _available_methods(methods)
    have_sklearn = "sklearn" in _available_methods(["sklearn"])
    if datasets is None:
        datasets = [k for k, v in DATASETS.items() if have_sklearn or not v.needs_sklearn]
    for name in datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; choose from {list(DATASETS)}")
        if DATASETS[name].needs_sklearn and not have_sklearn:
            raise ValueError(f"dataset {name!r} ships with scikit-learn, which is not installed")
    if budget is None or budget <= 0:
        budget = math.inf
    runs: list[Run] = []
    for name in datasets:
        ds = DATASETS[name]
        history: dict[str, list] = {m: [] for m in methods}
        for n in sizes_for(ds, max_n):
            X = np.ascontiguousarray(ds.make(n, random_state), dtype=np.float64)
            h = ds.bandwidth
            m_seeds = _seed_count(X, h, ds.bin_seeding)
            here = []
            sub_seeds = None  # scikit-learn's seed subset when extrapolated
            for method in methods:
                run = Run(name, len(X), X.shape[1], m_seeds, method)
                if method == "numpy-grid" and X.shape[1] > GRID_MAX_RACE_DIM:
                    run.skipped = f"n/a (d > {GRID_MAX_RACE_DIM})"
                elif method == "sklearn":
                    sub_seeds = _run_sklearn(run, X, ds, budget, repeat, random_state)
                elif (pred := _predict(history[method], len(X))) > budget:
                    run.skipped = f"skipped (predicted {pred:.0f} s > budget {budget:g} s)"
                else:
                    run.seconds, run.centers = _time(_ours(method, X, h, ds.bin_seeding), repeat)
                if np.isfinite(run.seconds) and not run.extrapolated:
                    history[method].append((len(X), run.seconds))
                if run.centers is not None:
                    run.n_clusters = len(run.centers)
                here.append(run)
                if log is not None:
                    log(_progress_line(run))
            _check(here, X, ds, sub_seeds, atol, log)
            runs.extend(here)
    return runs


def _run_sklearn(run, X, ds, budget, repeat, random_state):
    """Time scikit-learn in full, or extrapolate it from two seed subsets."""
    h = ds.bandwidth
    if ds.bin_seeding:
        from gpumeanshift.seeding import get_bin_seeds

        all_seeds = get_bin_seeds(X, h, 1)
    else:
        all_seeds = X
    m = len(all_seeds)
    if math.isinf(budget) or m <= 2 * SKLEARN_PROBE_SEEDS:
        run.seconds, run.centers = _time(_sklearn(X, h, ds.bin_seeding), repeat)
        return None
    rng = np.random.default_rng(random_state)
    s1 = SKLEARN_PROBE_SEEDS
    seeds1 = all_seeds[np.sort(rng.choice(m, s1, replace=False))]
    t1, _ = _time(_sklearn(X, h, False, seeds1), 1)
    if t1 * m / s1 <= budget:
        run.seconds, run.centers = _time(_sklearn(X, h, ds.bin_seeding), repeat)
        return None
    # Second subset sized to take about half the budget.
    s2 = int(min(m // 2, max(2 * s1, s1 * 0.5 * budget / max(t1, 1e-9))))
    seeds2 = all_seeds[np.sort(rng.choice(m, s2, replace=False))]
    t2, centers = _time(_sklearn(X, h, False, seeds2), repeat)
    slope = max((t2 - t1) / (s2 - s1), 0.0)
    run.seconds = t2 + slope * (m - s2)
    run.extrapolated = True
    run.centers = centers
    run.agreement = f"on {s2} seeds"
    return seeds2


def _check(here, X, ds, sub_seeds, atol, log):
    """Agreement of every method with the reference (scikit-learn, else numpy-brute)."""
    done = [r for r in here if r.centers is not None]
    if not done:
        return
    ref = next((r for r in done if r.method == "sklearn"), None) or next(
        (r for r in done if r.method == "numpy-brute"), done[0])
    tol = atol * ds.bandwidth
    for r in done:
        if r is ref:
            r.agrees, note = True, ""
        elif ref.extrapolated:
            # scikit-learn ran on a seed subset: rerun this method on the same seeds.
            centers = _ours(r.method, X, ds.bandwidth, False, sub_seeds)()
            r.agrees, note = check_agreement(centers, ref.centers, tol)
            note = (f"on {len(sub_seeds)} seeds" if r.agrees
                    else f"{note}, on {len(sub_seeds)} seeds")
        else:
            r.agrees, note = check_agreement(r.centers, ref.centers, tol)
        r.agreement = r.agreement or note
        if not r.agrees and log is not None:
            log(f"  DISAGREES: {r.dataset} n={r.n} {r.method}: {note}")


def _progress_line(r: Run) -> str:
    what = r.skipped or f"{r.seconds:.3f} s" + ("*" if r.extrapolated else "")
    return f"  {r.dataset:<10} n={r.n:<8} {r.method:<12} {what}"


# ------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The race's options (``python bench/race.py --help``).

    Examples
    --------
    >>> import argparse
    >>> from race import add_arguments
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--max-n", "1e4"]).max_n
    10000
    """
    parser.add_argument("--max-n", type=_size, default=DEFAULT_MAX_N, metavar="N",
                        help=f"largest size of the ladder 1e3, 3e3, 1e4, ... 1e6 "
                        f"(default: {DEFAULT_MAX_N}, about a minute)")
    parser.add_argument("--datasets", type=_names(DATASETS), metavar="NAMES",
                        help="comma-separated, from: " + ", ".join(DATASETS) + " (default: all)")
    parser.add_argument("--methods", type=_names(METHODS), default=list(METHODS), metavar="NAMES",
                        help="comma-separated, from: " + ", ".join(METHODS)
                        + " (default: all available here)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help="skip a run predicted to take longer (scikit-learn: extrapolate "
                        f"it from seed subsets); 0 runs everything in full (default: {DEFAULT_BUDGET:g})")
    parser.add_argument("--repeat", type=int, default=1, metavar="K",
                        help="fastest of K runs per measurement (default: 1)")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, metavar="TOL",
                        help=f"agreement tolerance on centers, in bandwidths (default: {DEFAULT_ATOL:g})")
    parser.add_argument("--plot", type=_plot_path, metavar="PATH",
                        help="write time against n (log-log) to PATH (.png, .svg, .pdf; needs matplotlib)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH")


def _size(text: str) -> int:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v >= 1 and v == int(v)):
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(v)


def _plot_path(text: str) -> str:
    if not text.lower().endswith(PLOT_SUFFIXES):
        raise argparse.ArgumentTypeError(
            f"--plot must end in {', '.join(PLOT_SUFFIXES)}, got {text!r}")
    return text


def _names(allowed):
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in names if t not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown name(s) {bad or text!r}; choose from {', '.join(allowed)}")
        return names
    return parse


def run_from_args(args, out=print) -> int:
    """Run the race for parsed options (see :func:`add_arguments`); returns an exit code.

    0 when every method agreed with the reference, 1 when one did not.

    Examples
    --------
    >>> import argparse
    >>> from race import add_arguments, run_from_args
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> args = p.parse_args(["--max-n", "1000", "--datasets", "hotspot",
    ...                      "--methods", "numpy-grid"])
    >>> run_from_args(args, out=lambda *a: None)
    0
    """
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (optional, only for --plot)
        except ImportError:
            raise ValueError("--plot needs matplotlib, which is not installed") from None
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    methods = _available_methods(args.methods)
    out(f"speed race: flat kernel, {cores} CPU cores, methods: {', '.join(methods)}")
    runs = run_race(max_n=args.max_n, datasets=args.datasets, methods=args.methods,
                    budget=args.budget, repeat=args.repeat, atol=args.atol, log=out)
    table = format_table(runs)
    ex = format_exponents(runs)
    out("")
    out(table)
    out("")
    out("time ~ n^k, fitted exponent k per method (least squares on log-log):")
    out(ex)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n\nFitted exponent k of time ~ n^k:\n\n" + ex + "\n")
    if args.plot:
        write_plot(runs, args.plot)
        out(f"plot written to {args.plot}")
    bad = [r for r in runs if r.agrees is False]
    if bad:
        out(f"{len(bad)} run(s) did NOT find the same clusters as the reference")
        return 1
    return 0


def main(argv=None) -> int:
    """``python bench/race.py [options]``; see :func:`add_arguments`.

    Examples
    --------
    >>> from race import main
    >>> main(["--max-n", "1000", "--datasets", "hotspot", "--methods", "numpy-grid"])
    ... # doctest: +ELLIPSIS
    speed race: ...
    0
    """
    parser = argparse.ArgumentParser(
        prog="python bench/race.py", description=__doc__.splitlines()[0],
        epilog="exit status: 0 when every method found the same clusters as the reference, "
        "1 when one did not, 2 on a usage error")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except ValueError as exc:
        print(f"race: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
