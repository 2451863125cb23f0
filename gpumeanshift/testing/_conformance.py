"""A conformance suite for backends: every interface method against the float64
NumPy references of :mod:`._reference` (written from the definitions: plain
differences, no expansion of squared distances), on small deterministic data
sets, compared as :mod:`._compare` says."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import ALGORITHMS, KERNELS
from .._spatial import GAUSSIAN_GRID_RADIUS
from .._validation import to_numpy
from ..backends.base import ShiftResult
from ._compare import _Report, _close, _count_bounds, _exact, _in_bounds, _scale
from ._reference import _blobs, _dist_matrix, _lattice, _ref_log_density, _ref_shift, _sqdist

__all__ = ["check_backend"]

#: Tolerances per dtype. ``mode``: positions, in bandwidths; ``dist``:
#: distances, relative to the data's scale; ``sum``: kernel sums, relative;
#: ``log``: log densities, absolute near the data and relative far from it;
#: ``count``: points a count may differ by (a point within rounding of a
#: ball's boundary may fall on either side in float32); ``step``: iterations
#: a climb may differ by (a step within rounding of the tolerance); ``edge``:
#: how near a ball's boundary (relative, on squared distances) a non-integer
#: flat climb may pass and still be compared.
_TOL = {
    np.dtype(np.float64): {"mode": 1e-8, "dist": 1e-12, "sum": 1e-10, "log": 1e-10,
                           "count": 0, "step": 0, "edge": 1e-9},
    np.dtype(np.float32): {"mode": 2e-3, "dist": 2e-6, "sum": 1e-4, "log": 1e-4,
                           "count": 1, "step": 1, "edge": 1e-3},
}
_FAR = 1000.0  # bandwidths from every point: every Gaussian weight underflows to 0


def check_backend(backend: Any, *, kernels=("flat", "gaussian"),
                  dtypes=(np.float32, np.float64), algorithms=("brute", "grid"),
                  quick: bool = False, weights: bool = True) -> None:
    """Check a backend's every interface method against a float64 reference.

    Runs :meth:`~gpumeanshift.backends.Backend.shift`, ``nearest``,
    ``count_within``, ``kth_neighbor_distance``, ``kernel_sum``,
    ``log_kernel_density`` and ``partial_sums`` on small deterministic data sets and compares each
    result with a float64 NumPy reference computed here from the definitions
    (squared distances as plain differences summed feature by feature):

    * ``shift``: scikit-learn's loop -- the flat mean of the points at distance
      <= bandwidth, the Gaussian mean weighted by ``exp(-d^2 / 2h^2)``
      (truncated at :data:`~gpumeanshift._spatial.GAUSSIAN_GRID_RADIUS`
      bandwidths for ``algorithm="grid"``), stopping when a step moves by at
      most ``tol * bandwidth`` or after ``max_iter`` counted iterations --
      on blobs with seeds far from all data (orphans: intensity 0, the mode
      the seed, not converged, 0 iterations), with ``max_iter=2``, and, for
      the flat kernel in float64, on integer lattices where points lie at
      exactly one bandwidth (in, as in scikit-learn: modes, iteration counts
      and intensities must be identical); the modes' dtype and the reported
      algorithm;
    * ``nearest``: labels and distances, exact ties (duplicate centers, and
      points halfway between lattice centers) going to the lowest index;
    * ``count_within``: counts, points at exactly the radius counted;
    * ``kth_neighbor_distance``: for k from 1 to n, the query itself counted
      when it is a data point (k = 1 gives 0), duplicates counted;
    * ``kernel_sum``: Gaussian sums (0 for far queries) and flat counts;
    * ``log_kernel_density``: float64; the Gaussian's log finite far from the
      data (about ``-min d^2 / 2h^2``), the flat one ``log(count)`` and
      ``-inf`` where no point is within reach;
    * ``partial_sums``: one step's sums, weight sums and counts in a frame
      with an origin away from zero (the step ``sums / weight`` to the modes'
      tolerance, the Gaussian truncated for "grid"), zero for far seeds, and
      with ``exact=True`` on integer lattices bit for bit.

    With ``weights`` (the default), every method that takes ``weights=`` is
    checked again with integer weights 0-3 on the blobs and the lattices,
    against the same references computed on the rows repeated that many
    times (a weighted row is that many copies of itself); summed weights
    that are whole numbers must equal the repeated counts.

    Tolerances depend on the dtype: float64 results agree to rounding
    (iteration counts, intensities, counts and labels exactly); float32 ones
    within ``2e-3`` bandwidths for modes, relative ``1e-4`` for sums, and may
    differ by one iteration, or one point for a point within float32 rounding
    of a boundary; a float32 flat climb that passes within ``1e-3 h^2`` (in
    squared distance) of a ball's boundary is not compared, since either side
    is right there. Lattice cases run in float64 only (where exact boundary
    ties are defined).

    Every failure is collected; at the end one :class:`AssertionError` lists
    them all, one line each, as ``method [case]: what differed`` (a method
    that raises is reported the same way).

    Parameters
    ----------
    backend : Backend or str
        An object implementing :class:`gpumeanshift.backends.Backend`, or a
        registered backend name. Results may be NumPy arrays or device arrays
        with a ``get()`` method (CuPy).
    kernels : tuple of str, default=("flat", "gaussian")
        Kernels to check ``shift``, ``kernel_sum`` and ``log_kernel_density`` with.
    dtypes : tuple of dtype, default=(np.float32, np.float64)
        Data dtypes to check.
    algorithms : tuple of str, default=("brute", "grid")
        Values of ``shift``'s ``algorithm`` to check; for "auto" the reference
        follows the algorithm the backend reports.
    quick : bool, default=False
        Fewer, smaller cases (one dimension, fewer values of k): a smoke test.
    weights : bool, default=True
        Also check the ``weights=`` of every method (see above); False for a
        backend without weights.

    Raises
    ------
    AssertionError
        When any method disagrees with the reference; the message lists every
        failure.
    ValueError
        For an unknown kernel, dtype or algorithm.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.testing import check_backend
    >>> check_backend("numpy", dtypes=(np.float64,), quick=True)  # passes: returns None

    A backend whose ``nearest`` breaks ties toward the highest index fails:

    >>> from gpumeanshift.backends.numpy.backend import NumpyBackend
    >>> class HighTies(NumpyBackend):
    ...     def nearest(self, X, centers):
    ...         lab, dist = super().nearest(X, centers[::-1].copy())
    ...         return len(centers) - 1 - lab, dist
    >>> try:
    ...     check_backend(HighTies(), kernels=("flat",), dtypes=(np.float64,), quick=True)
    ... except AssertionError as exc:
    ...     print(str(exc).splitlines()[1][:40])
      - nearest [duplicate centers, float64]
    """
    from ..backends.base import resolve_backend

    for k in kernels:
        if k not in KERNELS:
            raise ValueError(f"kernels: {k!r} is not one of {KERNELS}")
    dts = []
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt not in _TOL:
            raise ValueError(f"dtypes: {dt} is not float32 or float64")
        dts.append(dt)
    for a in algorithms:
        if a not in ALGORITHMS:
            raise ValueError(f"algorithms: {a!r} is not one of {ALGORITHMS}")
    be = resolve_backend(backend)
    report = _Report()
    dims = (2,) if quick else (1, 2, 5)
    n = 30 if quick else 60

    for d in dims:
        X64, h = _blobs(n, d, seed=d)
        for dt in dts:
            X = X64.astype(dt)
            tag = f"blobs d={d}, {dt.name}"
            for kernel in kernels:
                for algorithm in algorithms:
                    for max_iter, orphans in (((300, True),) if quick else
                                              ((300, False), (2, False), (300, True))):
                        case = f"{tag}, {kernel}, {algorithm}, " + (
                            "with 2 orphan seeds" if orphans else f"max_iter={max_iter}")
                        report.run("shift", case,
                                   lambda: _check_shift_blobs(be, X, h, kernel, algorithm,
                                                              max_iter, orphans))
                report.run("kernel_sum", f"{tag}, {kernel}",
                           lambda: _check_kernel_sum(be, X, h, kernel))
                report.run("log_kernel_density", f"{tag}, {kernel}",
                           lambda: _check_log_density(be, X, h, kernel))
                for algorithm in algorithms:
                    report.run("partial_sums", f"{tag}, {kernel}, {algorithm}",
                               lambda: _check_partial_sums(be, X, h, kernel, algorithm))
            report.run("nearest", tag, lambda: _check_nearest(be, X))
            report.run("count_within", tag, lambda: _check_count_within(be, X, h))
            report.run("kth_neighbor_distance", tag, lambda: _check_kth(be, X, quick))

    for dt in dts:
        report.run("nearest", f"duplicate centers, {dt.name}", lambda: _check_nearest_ties(be, dt))
        report.run("kth_neighbor_distance", f"duplicates, {dt.name}",
                   lambda: _check_kth_duplicates(be, dt))

    if np.dtype(np.float64) in dts:
        for d, h in ((2, 1.0),) if quick else ((2, 1.0), (2, 2.0), (3, 1.0)):
            L = _lattice(40 if quick else 80, d, seed=10 * d + int(h))
            tag = f"integer lattice d={d}, h={h:g}, float64"
            if "flat" in kernels:
                for algorithm in algorithms:
                    report.run("shift", f"{tag}, flat, {algorithm}",
                               lambda: _check_shift_lattice(be, L, h, algorithm))
            report.run("count_within", tag, lambda: _check_count_within(be, L, h, lattice=True))
            if "flat" in kernels:
                report.run("partial_sums", f"{tag}, flat, exact",
                           lambda: _check_partial_sums_lattice(be, L, h))
            if "flat" in kernels:
                report.run("kernel_sum", f"{tag}, flat",
                           lambda: _check_kernel_sum(be, L, h, "flat", lattice=True))
                report.run("log_kernel_density", f"{tag}, flat",
                           lambda: _check_log_density(be, L, h, "flat", lattice=True))

    if weights:
        _check_weighted(be, report, kernels, dts, algorithms, quick)

    if report.failures:
        name = getattr(be, "name", type(be).__name__)
        raise AssertionError(f"backend {name!r} failed {len(report.failures)} conformance "
                             "check(s):\n" + "\n".join(f"  - {f}" for f in report.failures))


# ------------------------------------------------------------------ weights
class _AsRepeated:
    """A backend view that answers for ``np.repeat(X, w, axis=0)`` by
    calling the backend on ``X`` with ``weights=w``: every check above then
    compares the weighted results with references on the repeated rows."""

    def __init__(self, be: Any, X: np.ndarray, w: np.ndarray) -> None:
        self.be, self.X, self.w = be, X, w.astype(np.float64)
        self.R = np.repeat(X, w, axis=0)
        self.name = f"{getattr(be, 'name', type(be).__name__)} (weighted)"

    def _base(self, D: np.ndarray) -> np.ndarray:
        if D.shape != self.R.shape or not np.array_equal(D, self.R.astype(D.dtype)):
            raise RuntimeError("conformance: the data are not the repeated rows")  # pragma: no cover
        return np.ascontiguousarray(self.X.astype(D.dtype))

    @staticmethod
    def _whole(a: Any) -> np.ndarray:
        """Summed weights as the counts they must be (left as they are, and
        so reported, when they are not whole numbers)."""
        a = to_numpy(a)
        if np.issubdtype(a.dtype, np.floating) and (a == np.rint(a)).all():
            return a.astype(np.int64)
        return a

    def shift(self, D, seeds, **kw):
        res = self.be.shift(self._base(D), seeds, weights=self.w, **kw)
        return ShiftResult(modes=res.modes, n_iter=res.n_iter,
                           intensity=self._whole(res.intensity), converged=res.converged,
                           algorithm=res.algorithm)

    def nearest(self, D, centers):
        return self.be.nearest(D, centers)

    def count_within(self, D, Q, r):
        return self._whole(self.be.count_within(self._base(D), Q, r, weights=self.w))

    def kth_neighbor_distance(self, D, Q, k):
        return self.be.kth_neighbor_distance(self._base(D), Q, float(k), weights=self.w)

    def kernel_sum(self, D, Q, **kw):
        return self.be.kernel_sum(self._base(D), Q, weights=self.w, **kw)

    def log_kernel_density(self, D, Q, **kw):
        return self.be.log_kernel_density(self._base(D), Q, weights=self.w, **kw)


def _check_weighted(be, report, kernels, dts, algorithms, quick):
    rng = np.random.default_rng(99)
    for d in (2,) if quick else (1, 3):
        X64, h = _blobs(24 if quick else 40, d, seed=20 + d)
        w = rng.integers(0, 4, len(X64))
        for dt in dts:
            view = _AsRepeated(be, X64.astype(dt), w)
            R = view.R
            tag = f"weighted blobs d={d}, {dt.name}"
            for kernel in kernels:
                for algorithm in algorithms:
                    report.run("shift", f"{tag}, {kernel}, {algorithm}, with 2 orphan seeds",
                               lambda: _check_shift_blobs(view, R, h, kernel, algorithm,
                                                          300, True))
                report.run("kernel_sum", f"{tag}, {kernel}",
                           lambda: _check_kernel_sum(view, R, h, kernel))
                report.run("log_kernel_density", f"{tag}, {kernel}",
                           lambda: _check_log_density(view, R, h, kernel))
            report.run("count_within", tag, lambda: _check_count_within(view, R, h))
            report.run("kth_neighbor_distance", tag, lambda: _check_kth(view, R, True))
            for kernel in kernels:
                for algorithm in algorithms:
                    report.run("partial_sums", f"{tag}, {kernel}, {algorithm}",
                               lambda: _check_partial_sums(be, X64.astype(dt), h, kernel,
                                                           algorithm, w.astype(np.float64)))
    if np.dtype(np.float64) in dts:
        L = _lattice(30 if quick else 50, 2, seed=7)
        view = _AsRepeated(be, L, rng.integers(0, 4, len(L)))
        tag = "weighted integer lattice d=2, h=1, float64"
        if "flat" in kernels:
            for algorithm in algorithms:
                report.run("shift", f"{tag}, flat, {algorithm}",
                           lambda: _check_shift_lattice(view, view.R, 1.0, algorithm))
        report.run("count_within", tag,
                   lambda: _check_count_within(view, view.R, 1.0, lattice=True))
        if "flat" in kernels:
            report.run("partial_sums", f"{tag}, flat, exact",
                       lambda: _check_partial_sums_lattice(be, L, 1.0, view.w))


# ------------------------------------------------------------------- checks
def _far_points(X: np.ndarray, h: float, count: int) -> np.ndarray:
    """Points about ``_FAR`` bandwidths from every row of X."""
    top = X.astype(np.float64).max(axis=0)
    out = np.stack([top + (_FAR + 7.0 * i) * h for i in range(count)])
    return out.astype(X.dtype)


def _compare_shift(res, X, seeds, h, kernel, algorithm, max_iter, tol, exact=False):
    problems = []
    modes, n_iter, inten, conv = (to_numpy(getattr(res, a)) for a in
                                  ("modes", "n_iter", "intensity", "converged"))
    ran = getattr(res, "algorithm", None)
    if algorithm in ("brute", "grid") and ran != algorithm:
        problems.append(f"algorithm reported {ran!r}, expected {algorithm!r}")
    truncate = GAUSSIAN_GRID_RADIUS if (ran == "grid" and kernel == "gaussian") else None
    r_modes, r_iter, r_inten, r_conv, margin = _ref_shift(
        X.astype(np.float64), seeds.astype(np.float64), h, kernel, max_iter, tol, truncate)
    dt = np.dtype(X.dtype)
    t = _TOL[dt]
    if kernel == "flat" and not exact:
        # A flat climb that passes within rounding of a ball's boundary may take
        # the other side and end elsewhere: only seeds clear of every boundary
        # (squared distances farther than t["edge"] * h^2 from it) are compared.
        keep = margin > t["edge"]
        if keep.sum() < 0.5 * len(keep):  # pragma: no cover - data guard
            return [f"only {int(keep.sum())} of {len(keep)} seeds clear of the boundaries"]
        modes, n_iter, inten, conv = (a[keep] if a.shape[:1] == keep.shape else a
                                      for a in (modes, n_iter, inten, conv))
        r_modes, r_iter, r_inten, r_conv = (a[keep] for a in (r_modes, r_iter, r_inten, r_conv))
    if modes.dtype != dt:
        problems.append(f"modes have dtype {modes.dtype}, expected {dt}")
    if not (np.issubdtype(n_iter.dtype, np.integer) and np.issubdtype(inten.dtype, np.integer)):
        problems.append(f"n_iter/intensity have dtypes {n_iter.dtype}/{inten.dtype}, "
                        "expected integers")
    if conv.dtype != bool:
        problems.append(f"converged has dtype {conv.dtype}, expected bool")
    if exact:
        problems += _exact("modes", modes, r_modes)
    else:
        problems += _close("modes (in bandwidths)", modes / h, r_modes / h, t["mode"])
    problems += _exact("n_iter", n_iter, r_iter, 0 if exact else t["step"])
    problems += _exact("intensity", inten, r_inten, 0 if exact else t["count"])
    if conv.shape == r_conv.shape and n_iter.shape == r_iter.shape:
        # converged must agree wherever the iteration count does
        same = n_iter == r_iter
        problems += _exact("converged", conv[same], r_conv[same])
    return problems


def _check_shift_blobs(be, X, h, kernel, algorithm, max_iter, orphans=False):
    seeds = X[::3]
    far = _far_points(X, h, 2)
    if orphans:
        seeds = np.concatenate([seeds, far])
    seeds = np.ascontiguousarray(seeds)
    tol = 1e-3
    res = be.shift(X, seeds, bandwidth=h, kernel=kernel, max_iter=max_iter, tol=tol,
                   algorithm=algorithm)
    problems = _compare_shift(res, X, seeds, h, kernel, algorithm, max_iter, tol)
    if orphans and not problems:  # the orphans' contract, stated on its own
        o = slice(len(seeds) - len(far), None)
        t = _TOL[np.dtype(X.dtype)]
        if (to_numpy(res.intensity)[o] != 0).any():
            problems.append("orphan seeds (far from all data) have intensity != 0")
        if not (np.abs(to_numpy(res.modes)[o].astype(np.float64) - far) <= t["mode"] * h).all():
            problems.append("orphan seeds did not stay at the seed")
        if (to_numpy(res.n_iter)[o] != 0).any() or to_numpy(res.converged)[o].any():
            problems.append("orphan seeds have n_iter != 0 or converged")
    if max_iter == 2 and not problems:
        stopped = ~to_numpy(res.converged)
        if not stopped.any() or (to_numpy(res.n_iter)[stopped] != 2).any():
            problems.append("seeds stopped by max_iter=2 do not have n_iter == 2")
    return problems


def _check_shift_lattice(be, L, h, algorithm):
    res = be.shift(L, L, bandwidth=h, kernel="flat", max_iter=300, tol=1e-3,
                   algorithm=algorithm)
    return _compare_shift(res, L, L, h, "flat", algorithm, 300, 1e-3, exact=True)


def _queries(X: np.ndarray, h: float) -> np.ndarray:
    """Data rows, points between them, and two far queries."""
    off = (X[1::5].astype(np.float64) + 0.37 * h).astype(X.dtype)
    return np.ascontiguousarray(np.concatenate([X[::4], off, _far_points(X, h, 2)]))


def _check_nearest(be, X):
    rng = np.random.default_rng(len(X))
    C = np.ascontiguousarray(X[rng.choice(len(X), 7, replace=False)]
                             + rng.normal(0, 0.3, (7, X.shape[1])).astype(X.dtype))
    lab, dist = (to_numpy(a) for a in be.nearest(X, C))
    D = _dist_matrix(C.astype(np.float64), X.astype(np.float64))  # (n, 7)
    r_lab = np.argmin(D, axis=1)
    r_dist = D[np.arange(len(X)), r_lab]
    t = _TOL[np.dtype(X.dtype)]
    problems = []
    if not np.issubdtype(lab.dtype, np.integer):
        return [f"labels have dtype {lab.dtype}, expected integers"]
    if lab.shape != r_lab.shape or lab.min() < 0 or lab.max() >= len(C):
        return [f"labels have shape {lab.shape} or values outside [0, {len(C)})"]
    scale = float(np.abs(X).max())
    if t["count"] == 0:
        problems += _exact("labels", lab, r_lab)
    else:  # float32: a near tie may go either way, but the center must be as near
        problems += _close("distance to the chosen center", D[np.arange(len(X)), lab], r_dist,
                           t["dist"] * scale)
    problems += _close("distances", dist, r_dist, t["dist"] * scale, t["dist"])
    return problems


def _check_nearest_ties(be, dt):
    # Exact ties: duplicate centers (0 and 4, 1 and 6), and points at equal
    # integer distances from distinct centers ((1, 0) and (3, 0)).
    X = np.array([[0, 0], [3, 4], [1, 0], [5, 5], [2, 0], [3, 0]], dtype=dt)
    C = np.array([[2, 0], [0, 0], [3, 4], [9, 9], [2, 0], [4, 0], [0, 0]], dtype=dt)
    lab, dist = (to_numpy(a) for a in be.nearest(X, C))
    D = _dist_matrix(C.astype(np.float64), X.astype(np.float64))
    r_lab = np.argmin(D, axis=1)  # the first of equal minima: the lowest index
    t = _TOL[np.dtype(dt)]
    return _exact("labels (ties to the lowest index)", lab, r_lab) + \
        _close("distances", dist, D[np.arange(len(X)), r_lab], t["dist"], t["dist"])


def _check_count_within(be, X, r, lattice=False):
    Q = X[::3].copy() if lattice else _queries(X, r)
    got = to_numpy(be.count_within(X, Q, r))
    problems = []
    if got.dtype != np.int64:
        problems.append(f"counts have dtype {got.dtype}, expected int64")
    D = _dist_matrix(X.astype(np.float64), Q.astype(np.float64))
    lo, hi = _count_bounds(D, r, _TOL[np.dtype(X.dtype)], _scale(X))
    problems += _in_bounds("counts", got, lo, hi)
    if lattice and not problems and not (D == r).any():  # pragma: no cover - data guard
        problems.append("the lattice case has no point at exactly the radius")
    return problems


def _check_kth(be, X, quick):
    Q = _queries(X, 1.0)[:-2]
    D = np.sort(_dist_matrix(X.astype(np.float64), Q.astype(np.float64)), axis=1)
    t = _TOL[np.dtype(X.dtype)]
    scale = float(np.abs(X).max())
    problems = []
    n = len(X)
    for k in ((1, n // 3, n) if quick else (1, 2, n // 3, n - 1, n)):
        got = to_numpy(be.kth_neighbor_distance(X, Q, k))
        problems += _close(f"distance to the k={k}-th neighbour", got, D[:, k - 1],
                           t["dist"] * scale, t["dist"])
    return problems


def _check_kth_duplicates(be, dt):
    X = np.array([[0.0], [1.0], [1.0], [1.0], [3.0]], dtype=dt)
    Q = np.array([[0.0], [1.0], [3.0]], dtype=dt)
    problems = []
    for k, want in ((1, [0, 0, 0]), (2, [1, 0, 2]), (3, [1, 0, 2]), (4, [1, 1, 2]),
                    (5, [3, 2, 3])):
        got = to_numpy(be.kth_neighbor_distance(X, Q, k))
        problems += _exact(f"distance to the k={k}-th neighbour (the query counted)", got,
                           np.array(want, dtype=np.float64))
    return problems


def _check_kernel_sum(be, X, h, kernel, lattice=False):
    Q = X[::3].copy() if lattice else _queries(X, h)
    got = to_numpy(be.kernel_sum(X, Q, bandwidth=h, kernel=kernel))
    D = _dist_matrix(X.astype(np.float64), Q.astype(np.float64))
    t = _TOL[np.dtype(X.dtype)]
    if kernel == "flat":
        lo, hi = _count_bounds(D, h, t, _scale(X))
        return _in_bounds("flat kernel sums", got, lo, hi)
    ref = np.exp(-(D * D) / (2.0 * h * h)).sum(axis=1)
    return _close("Gaussian kernel sums", got, ref, 1e-300, t["sum"])


def _check_log_density(be, X, h, kernel, lattice=False):
    Q = X[::3].copy() if lattice else _queries(X, h)
    got = to_numpy(be.log_kernel_density(X, Q, bandwidth=h, kernel=kernel))
    problems = []
    if got.dtype != np.float64:
        problems.append(f"log densities have dtype {got.dtype}, expected float64")
    D = _dist_matrix(X.astype(np.float64), Q.astype(np.float64))
    t = _TOL[np.dtype(X.dtype)]
    ref = _ref_log_density(D, h, kernel)
    if kernel == "flat":
        lo, hi = _count_bounds(D, h, t, _scale(X))
        got_count = np.rint(np.exp(got))  # exp(-inf) = 0
        if not lattice and not np.isneginf(got[-2:]).all():
            problems.append(f"far queries give {got[-2:].tolist()}, expected -inf (no point "
                            "within reach)")
        want = np.full(len(got), -np.inf)
        want[got_count > 0] = np.log(got_count[got_count > 0])
        problems += _close("flat log densities (the log of an integer count)", got, want, 1e-12)
        problems += _in_bounds("flat log densities as counts", got_count, lo, hi)
        return problems
    if not np.isfinite(got[-2:]).all():
        problems.append(f"far queries give {got[-2:].tolist()}, expected finite values "
                        f"(about {ref[-2:].tolist()})")
    problems += _close("Gaussian log densities", got, ref, t["log"], t["log"])
    return problems


def _partial_parts(p, dt, weighted):
    """The three results of ``partial_sums`` on the host, and dtype problems."""
    sums, weight, count = (to_numpy(getattr(p, a)) for a in ("sums", "weight", "count"))
    problems = []
    if sums.dtype != dt or weight.dtype != dt:
        problems.append(f"sums/weight have dtypes {sums.dtype}/{weight.dtype}, expected {dt}")
    if not weighted and not np.issubdtype(count.dtype, np.integer):
        problems.append(f"count has dtype {count.dtype}, expected an integer dtype")
    return sums, weight, count, problems


def _check_partial_sums(be, X, h, kernel, algorithm, w=None):
    """One step's sums in the frame (x - origin) / h, against the definition:
    seeds on the data and two far seeds (all sums 0)."""
    dt = np.dtype(X.dtype)
    t = _TOL[dt]
    origin = X.astype(np.float64).mean(axis=0) + 0.25 * h
    Y = (X.astype(np.float64) - origin) / h
    far = (_far_points(X, h, 2).astype(np.float64) - origin) / h
    S = np.ascontiguousarray(np.concatenate([Y[::3], far]).astype(dt))
    p = be.partial_sums(X, S, bandwidth=h, kernel=kernel, origin=origin, algorithm=algorithm,
                        weights=w)
    sums, weight, count, problems = _partial_parts(p, dt, w is not None)
    wr = np.ones(len(X)) if w is None else w
    D = _dist_matrix(Y, S.astype(np.float64))  # in bandwidths
    if kernel == "flat":
        K = (D <= 1.0).astype(np.float64)
    else:
        K = np.exp(-0.5 * D * D)
        if algorithm == "grid":
            K[D > GAUSSIAN_GRID_RADIUS] = 0.0
    r_weight = K @ wr
    r_sums = (K * wr) @ Y
    r_count = (D <= 1.0).astype(np.float64) @ wr
    # A point within rounding of the unit ball's boundary may be on either
    # side in float32: such seeds are compared on their count's bounds only.
    keep = np.abs(D * D - 1.0).min(axis=1) > t["edge"]
    if kernel == "flat" and keep.sum() < 0.5 * len(keep):  # pragma: no cover - data guard
        return problems + ["too few seeds clear of the boundaries"]
    problems += _exact("count", count[keep], r_count[keep])
    slack = t["count"] * (1.0 if w is None else float(wr.max()))
    problems += _exact("count (near the boundary)", count[~keep], r_count[~keep], slack)
    if kernel == "gaussian":
        keep = np.ones(len(S), dtype=bool)
    problems += _close("weight", weight[keep], r_weight[keep], 1e-300, t["sum"])
    live = keep & (r_weight > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        step = sums[live].astype(np.float64) / weight[live, None].astype(np.float64)
    problems += _close("sums / weight (the step, in bandwidths)", step,
                       r_sums[live] / r_weight[live, None], t["mode"])
    if (sums[-2:] != 0).any() or (weight[-2:] != 0).any() or (count[-2:] != 0).any():
        problems.append("far seeds (no data within reach) have nonzero sums")
    return problems


def _check_partial_sums_lattice(be, L, h, w=None):
    """``exact=True`` on integer data: seeds at lattice points and halfway
    between (many points at exactly h); sums and counts equal, bit for bit."""
    k = len(L) // 4
    S = np.ascontiguousarray(np.concatenate([L[::2], (L[1::4][:k] + L[2::4][:k]) / 2]))
    p = be.partial_sums(L, S, bandwidth=h, kernel="flat", exact=True, weights=w)
    sums, weight, count, problems = _partial_parts(p, np.dtype(np.float64), w is not None)
    wr = np.ones(len(L)) if w is None else w
    inside = np.stack([_sqdist(L, s) <= h * h for s in S]).astype(np.float64)
    problems += _exact("count", count, inside @ wr)
    problems += _exact("weight", weight, inside @ wr)
    problems += _exact("sums (integer rows: exact)", sums, (inside * wr) @ L)
    return problems
