"""The speed race: scikit-learn, NumPy brute force, NumPy grid and CUDA on the same data.

    python bench/race.py                       # about a minute on 2 cores
    python bench/race.py --max-n 1e6 --datasets hotspot --plot race.png
    python bench/race.py --help

Every method clusters the same points with the same bandwidth, flat kernel
(scikit-learn's) and the same seeds; the race checks that they found the
same clusters, prints a table of times and speed-ups, fits how time grows
with n for each method, and can plot time against n.

Datasets (each at sizes 1e3, 3e3, 1e4, ... up to ``max_n``):

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
from dataclasses import dataclass, field

import numpy as np

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
def hotspot(n: int, random_state: int = 0) -> np.ndarray:
    """Hotspot data: blobs of std 1 at constant density, 1,000 points per blob.

    Parameters
    ----------
    n : int
        Number of points; ``round(n / 1000)`` blobs (at least 1) over a square
        of side ``1000 * sqrt(n / 1e6)``.
    random_state : int, default=0
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n, 2)

    Examples
    --------
    >>> from race import hotspot
    >>> X = hotspot(4000)
    >>> X.shape, bool(X.min() > -10) and bool(X.max() < 63.3 + 10)
    ((4000, 2), True)
    """
    rng = np.random.default_rng(random_state)
    k = max(1, round(n / 1000))
    side = 1000.0 * math.sqrt(n / 1e6)
    centers = rng.uniform(0.0, side, size=(k, 2))
    return centers[rng.integers(0, k, n)] + rng.standard_normal((n, 2))


def _blobs(d):
    def make(n, random_state=0):
        from gpumeanshift.datasets import make_blobs

        X, _ = make_blobs(n_samples=n, n_features=d, centers=5, cluster_std=1.0,
                          random_state=random_state)
        return X
    return make


def _digits(n, random_state=0):
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    return X[:n]


def _china(n, random_state=0):
    from sklearn.datasets import load_sample_image

    X = load_sample_image("china.jpg").reshape(-1, 3).astype(np.float64)
    if n < len(X):
        X = X[np.sort(np.random.default_rng(random_state).choice(len(X), n, replace=False))]
    return X


@dataclass(frozen=True)
class Dataset:
    """One dataset of the race: how to make it and how to cluster it.

    Attributes
    ----------
    name : str
        Its key in :data:`DATASETS`.
    make : callable
        ``make(n, random_state)`` returns the data, an array of shape (n, d).
    bandwidth : float
        The bandwidth every method uses.
    bin_seeding : bool
        True for bin seeding, False for every point a seed.
    d : int
        Number of features.
    max_size : int or None, default=None
        The dataset's own size, if it has one (a real dataset).
    needs_sklearn : bool, default=False
        True when the data ship with scikit-learn.

    Examples
    --------
    >>> from race import DATASETS
    >>> ds = DATASETS["blobs-3d"]
    >>> ds.make(100, 0).shape, round(ds.bandwidth, 4), ds.bin_seeding
    ((100, 3), 2.5981, True)
    """

    name: str
    make: object  # make(n, random_state) -> X
    bandwidth: float
    bin_seeding: bool
    d: int
    max_size: int | None = None  # the dataset's own size, if it has one
    needs_sklearn: bool = False


DATASETS = {
    "hotspot": Dataset("hotspot", hotspot, 2.0, False, 2),
    **{f"blobs-{d}d": Dataset(f"blobs-{d}d", _blobs(d), 1.5 * math.sqrt(d), True, d)
       for d in (2, 3, 5, 16)},
    "digits": Dataset("digits", _digits, 8 * math.pi, False, 64, max_size=1797, needs_sklearn=True),
    "china-rgb": Dataset("china-rgb", _china, 4 * math.pi, True, 3, max_size=427 * 640,
                         needs_sklearn=True),
}


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


# ------------------------------------------------------------ checks and fits
def match_centers(A, B):
    """Index into ``B`` of the nearest center to each row of ``A`` and that distance.

    Examples
    --------
    >>> import numpy as np
    >>> from race import match_centers
    >>> match_centers(np.array([[0.0], [5.0]]), np.array([[5.1], [0.0]]))
    (array([1, 0]), array([0. , 0.1]))
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    idx = np.empty(len(A), dtype=np.int64)
    dist = np.empty(len(A))
    step = max(1, 2**22 // max(1, len(B) * A.shape[1]))
    for a in range(0, len(A), step):
        diff = A[a:a + step, None, :] - B[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        idx[a:a + step] = np.argmin(d2, axis=1)
        dist[a:a + step] = np.sqrt(d2[np.arange(len(d2)), idx[a:a + step]])
    return idx, dist


def check_agreement(centers, reference, atol: float) -> tuple[bool, str]:
    """Same clusters: as many centers, each matched one-to-one within ``atol``.

    Centers are matched to their nearest reference center (so the order of
    centers of equal intensity does not matter); the match must be a
    bijection and every matched pair within ``atol`` (Euclidean).

    Parameters
    ----------
    centers, reference : array-like of shape (k, d)
    atol : float
        Largest allowed distance between matched centers.

    Returns
    -------
    ok : bool
    detail : str
        "ok (max dev ...)" or what differed.

    Examples
    --------
    >>> import numpy as np
    >>> from race import check_agreement
    >>> check_agreement(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), 1e-9)
    (True, 'ok (max dev 0)')
    >>> check_agreement(np.array([[0.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), 1e-9)
    (False, '1 centers vs 2')
    """
    centers = np.asarray(centers)
    reference = np.asarray(reference)
    if centers.shape != reference.shape:
        return False, f"{len(centers)} centers vs {len(reference)}"
    if len(centers) == 0:
        return True, "ok (no centers)"
    idx, dist = match_centers(centers, reference)
    if len(np.unique(idx)) != len(idx):
        return False, "centers do not match one-to-one"
    worst = float(dist.max())
    if not worst <= atol:
        return False, f"a center is {worst:.3g} away (atol {atol:.3g})"
    return True, f"ok (max dev {worst:.2g})"


def fit_exponent(ns, times) -> float:
    """Exponent k of ``time ~ c * n**k``: least squares on log(time) against log(n).

    Returns NaN with fewer than two distinct sizes.

    Examples
    --------
    >>> from race import fit_exponent
    >>> round(fit_exponent([1e3, 1e4, 1e5], [0.01, 0.1 * 10**0.5, 10.0]), 3)
    1.5
    """
    ns = np.asarray(ns, dtype=np.float64)
    ts = np.asarray(times, dtype=np.float64)
    ok = (ns > 0) & (ts > 0) & np.isfinite(ts)
    if len(np.unique(ns[ok])) < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(ns[ok]), np.log(ts[ok]), 1)
    return float(slope)


# -------------------------------------------------------------------- running
@dataclass
class Run:
    """The record of one method on one dataset at one size.

    Attributes
    ----------
    dataset : str
        The dataset's name.
    n, d : int
        Number of points and of features.
    n_seeds : int
        Number of seeds every method started from.
    method : str
        "sklearn", "numpy-brute", "numpy-grid" or "cuda".
    seconds : float, default=nan
        Time of the fit (the fastest of ``repeat``); NaN when not run.
    n_clusters : int or None, default=None
        Number of centers found.
    extrapolated : bool, default=False
        True when ``seconds`` is scikit-learn's time extrapolated from
        subsets of the seeds.
    skipped : str, default=""
        Why the run was skipped, if it was.
    agreement : str, default=""
        What the agreement check found.
    agrees : bool or None, default=None
        Whether the centers agree with the reference; None when unchecked.
    centers : ndarray or None, default=None
        The centers found (not shown in the repr).

    Examples
    --------
    >>> from race import run_race
    >>> (run,) = run_race(max_n=1000, datasets=["blobs-2d"], methods=["numpy-grid"])
    >>> run.dataset, run.n, run.d, run.n_seeds, run.method, run.n_clusters, run.agrees
    ('blobs-2d', 1000, 2, 37, 'numpy-grid', 4, True)
    >>> run.centers.shape, bool(run.seconds > 0)
    ((4, 2), True)
    """

    dataset: str
    n: int
    d: int
    n_seeds: int
    method: str
    seconds: float = float("nan")
    n_clusters: int | None = None
    extrapolated: bool = False
    skipped: str = ""
    agreement: str = ""
    agrees: bool | None = None
    centers: np.ndarray | None = field(default=None, repr=False)


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
    from gpumeanshift import MeanShift

    backend, algorithm = {"numpy-brute": ("numpy", "brute"), "numpy-grid": ("numpy", "grid"),
                          "cuda": (CUDA_BACKEND, "auto")}[method]
    model = MeanShift(bandwidth=h, kernel="flat", bin_seeding=bin_seeding, seeds=seeds,
                      backend=backend, algorithm=algorithm)
    return lambda: model.fit(X).cluster_centers_


def _sklearn(X, h, bin_seeding, seeds=None):
    from sklearn.cluster import MeanShift

    model = MeanShift(bandwidth=h, bin_seeding=bin_seeding, seeds=seeds)
    return lambda: model.fit(X).cluster_centers_


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


# ------------------------------------------------------------------ reporting
def format_table(runs) -> str:
    """Markdown table: one row per run, speed-ups against scikit-learn and brute force.

    Examples
    --------
    >>> from race import Run, format_table
    >>> runs = [Run("hotspot", 1000, 2, 1000, "sklearn", 2.0, 1),
    ...         Run("hotspot", 1000, 2, 1000, "numpy-grid", 0.1, 1, agrees=True)]
    >>> print(format_table(runs).splitlines()[3])
    | hotspot | 1000 | 2 | 1000 | numpy-grid | 0.100 | 20.0x | - | 1 | yes |
    """
    lines = [
        "| dataset | n | d | seeds | method | time (s) | vs sklearn | vs numpy-brute "
        "| clusters | same clusters |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    by_key: dict = {}
    for r in runs:
        by_key.setdefault((r.dataset, r.n), {})[r.method] = r
    for r in runs:
        peers = by_key[(r.dataset, r.n)]
        if r.skipped:
            t = sk = br = "-"
        else:
            t = f"{r.seconds:.3f}" + ("*" if r.extrapolated else "")
            sk = _ratio(peers.get("sklearn"), r)
            br = _ratio(peers.get("numpy-brute"), r)
        agree = {True: "yes", False: "NO", None: "-"}[r.agrees]
        if r.agrees is False or (r.agrees and "seeds" in r.agreement):
            agree += f" ({r.agreement})"
        lines.append(
            f"| {r.dataset} | {r.n} | {r.d} | {r.n_seeds} | {r.method} | {t or r.skipped} "
            f"| {sk} | {br} | {_clusters(r)} | "
            f"{agree if not r.skipped else r.skipped} |"
        )
    if any(r.extrapolated for r in runs):
        lines.append("")
        lines.append("\\* extrapolated: scikit-learn run on the full data with two random seed "
                     "subsets, time = straight line through both, at the full seed count; "
                     "its clusters are those of the larger subset, on which every other "
                     "method is rerun for the comparison.")
    return "\n".join(lines)


def _clusters(r) -> str:
    if r.n_clusters is None:
        return "-"
    return f"{r.n_clusters}*" if r.extrapolated else str(r.n_clusters)


def _ratio(peer, r) -> str:
    if peer is None or peer is r or peer.skipped or not np.isfinite(peer.seconds) \
            or not r.seconds > 0:
        return "-"
    mark = "*" if peer.extrapolated else ""
    x = peer.seconds / r.seconds
    return (f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2g}") + "x" + mark


def exponents(runs) -> dict:
    """``{(dataset, method): k}``: the fitted exponent of time against n (NaN if < 2 sizes).

    Examples
    --------
    >>> from race import Run, exponents
    >>> runs = [Run("a", n, 2, n, "numpy-grid", n * 1e-6) for n in (1000, 10000)]
    >>> round(exponents(runs)[("a", "numpy-grid")], 6)
    1.0
    """
    pts: dict = {}
    for r in runs:
        if not r.skipped and np.isfinite(r.seconds):
            pts.setdefault((r.dataset, r.method), []).append((r.n, r.seconds))
    return {k: fit_exponent(*zip(*v)) for k, v in pts.items()}


def format_exponents(runs) -> str:
    """Markdown table of the exponents, one row per dataset and a column per method.

    Examples
    --------
    >>> from race import Run, format_exponents
    >>> runs = [Run("a", n, 2, n, "numpy-grid", n * 1e-6) for n in (1000, 10000)]
    >>> print(format_exponents(runs).splitlines()[2])
    | a | 1.00 |
    """
    ex = exponents(runs)
    methods = [m for m in METHODS if any(k[1] == m for k in ex)]
    datasets = list(dict.fromkeys(k[0] for k in ex))
    lines = ["| dataset | " + " | ".join(methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for d in datasets:
        cells = []
        for m in methods:
            k = ex.get((d, m), float("nan"))
            cells.append("-" if not np.isfinite(k) else f"{k:.2f}")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_plot(runs, path) -> None:
    """Time against n, log-log, one panel per dataset with more than one size.

    Needs matplotlib (imported here only).

    Examples
    --------
    >>> import os, tempfile
    >>> from race import Run, write_plot
    >>> runs = [Run("a", n, 2, n, "numpy-grid", n * 1e-6) for n in (1000, 10000)]
    >>> path = os.path.join(tempfile.mkdtemp(), "race.png")
    >>> write_plot(runs, path); os.path.getsize(path) > 0
    True
    """
    from matplotlib.figure import Figure

    pts: dict = {}
    for r in runs:
        if not r.skipped and np.isfinite(r.seconds):
            pts.setdefault(r.dataset, {}).setdefault(r.method, []).append(
                (r.n, r.seconds, r.extrapolated))
    names = [d for d, by in pts.items() if len({n for v in by.values() for n, _, _ in v}) > 1]
    names = names or list(pts)
    cols = min(3, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows), dpi=100)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for method, v in pts[name].items():
            v.sort()
            ns = [a for a, _, _ in v]
            ts = [b for _, b, _ in v]
            line, = ax.loglog(ns, ts, marker="o", label=method)
            ext = [(a, b) for a, b, e in v if e]
            if ext:
                ax.loglog(*zip(*ext), linestyle="none", marker="o", mfc="white",
                          color=line.get_color())
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("n (points)")
        ax.set_ylabel("time (s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


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
