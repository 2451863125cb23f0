"""The race's records and report: one :class:`Run` per fit, the table of times and speed-ups, the fitted exponents, the plot.

:func:`fit_exponent` is also what ``race.py`` uses to predict a run's time
from the same method's smaller sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


def fit_exponent(ns, times) -> float:
    """Exponent k of ``time ~ c * n**k``: least squares on log(time) against log(n).

    Returns NaN with fewer than two distinct sizes.

    Examples
    --------
    >>> from _race_report import fit_exponent
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


def format_table(runs) -> str:
    """Markdown table: one row per run, speed-ups against scikit-learn and brute force.

    Examples
    --------
    >>> from _race_report import Run, format_table
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
    >>> from _race_report import Run, exponents
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
    >>> from _race_report import Run, format_exponents
    >>> runs = [Run("a", n, 2, n, "numpy-grid", n * 1e-6) for n in (1000, 10000)]
    >>> print(format_exponents(runs).splitlines()[2])
    | a | 1.00 |
    """
    ex = exponents(runs)
    methods = list(dict.fromkeys(k[1] for k in ex))  # in the race's order
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
    >>> from _race_report import Run, write_plot
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
