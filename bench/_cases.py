"""The benchmark cases, defined once: data, fits, agreement checks and targets.

Everything in bench/ takes its data, its fits and its "same clusters" checks
from here: the pytest-benchmark files (``bench_*.py``), report.py, the speed
race (race.py), bench_gaussian_grid.py, and ci/gpu_proof.py, which runs from
a checkout. Each case is a plain function that does the work and returns what
the benchmark needs to check (fitted estimators, a ShiftResult, a child's
measurements); the timing is left to the caller (pytest-benchmark, the
report scripts, the race), so all of them measure exactly the same thing.

Case 4 runs in a fresh interpreter (this file is its entry point, see
``_child``) so that its peak memory is that of one fit alone; the parent
reads the child's peak resident set size from ``os.wait4``, i.e. the kernel's
``ru_maxrss`` for that process, which covers every allocation (NumPy, BLAS,
the interpreter and its imports), not only NumPy's.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

CENTERS = [[1, 1], [-1, -1], [1, -1]]

# Targets of issue 2 ("Speed, in bench/").
TARGET_ALL_SEEDS = 30.0  # x faster than scikit-learn
TARGET_BIN_SEEDING = 5.0  # x faster than scikit-learn
TARGET_PAIRS_PER_S = 1e9  # for d <= 16
TARGET_PEAK_BYTES = 2 * 1024**3

N_ALL_SEEDS = 10_000
N_BIN_SEEDING = 100_000
N_MEMORY = 1_000_000

# Shift-step throughput: seeds x points x iterations per second.
THROUGHPUT_N = 20_000
THROUGHPUT_SEEDS = 2_000
THROUGHPUT_ITERS = 10
THROUGHPUT_DIMS = (2, 16, 128)
THROUGHPUT_DTYPES = ("float64", "float32")


# ----------------------------------------------------------------------- data
# The example data of scikit-learn's MeanShift: the four cases of issue 2.
def blobs(n_samples: int) -> np.ndarray:
    """scikit-learn's MeanShift example data: three 2-D blobs, std 0.6."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=n_samples, centers=CENTERS, cluster_std=0.6, random_state=0)
    return X


def blobs_and_bandwidth(n_samples: int) -> tuple[np.ndarray, float]:
    """The blobs and scikit-learn's bandwidth estimate (quantile 0.2, 500 samples)."""
    from sklearn.cluster import estimate_bandwidth

    X = blobs(n_samples)
    return X, float(estimate_bandwidth(X, quantile=0.2, n_samples=500, random_state=0))


# The race's datasets (race.py), also bench_gaussian_grid.py's and ci/gpu_proof.py's.
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
    >>> from _cases import hotspot
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
    >>> from _cases import DATASETS
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


# ------------------------------------------------------------------- the fits
def fit_gpumeanshift(X, bandwidth, *, kernel="flat", bin_seeding=False, seeds=None,
                     backend="numpy", algorithm="auto", n_jobs=None):
    """gpumeanshift's MeanShift; by default the NumPy backend with scikit-learn's settings.

    ``backend`` is a name or a Backend instance (the race's "cuda" method
    passes one; bench_gaussian_grid.py passes a NumpyBackend it then reads).
    """
    from gpumeanshift import MeanShift

    return MeanShift(bandwidth=bandwidth, kernel=kernel, bin_seeding=bin_seeding, seeds=seeds,
                     backend=backend, algorithm=algorithm, n_jobs=n_jobs).fit(X)


def fit_sklearn(X, bandwidth, *, bin_seeding=False, seeds=None, n_jobs=None):
    """scikit-learn's MeanShift (flat kernel; n_jobs=None is its default, one process)."""
    from sklearn.cluster import MeanShift

    return MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding, seeds=seeds,
                     n_jobs=n_jobs).fit(X)


# ------------------------------------------------------------ agreement checks
def match_centers(A, B):
    """Index into ``B`` of the nearest center to each row of ``A`` and that distance.

    Examples
    --------
    >>> import numpy as np
    >>> from _cases import match_centers
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
    >>> from _cases import check_agreement
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


@dataclass(frozen=True)
class FitDifference:
    """How a fitted estimator differs from a reference fit of the same data.

    Attributes
    ----------
    same_count : bool
        As many centers.
    max_center_diff : float
        Largest absolute coordinate difference of the centers taken in order
        (both fits sort them the same way); inf when the counts differ.
    same_labels, same_n_iter : bool
        Identical ``labels_``, equal ``n_iter_``.
    """

    same_count: bool
    max_center_diff: float
    same_labels: bool
    same_n_iter: bool

    def same(self, atol: float) -> bool:
        """Same clusters: every field agrees, centers within ``atol``."""
        return (self.same_count and self.max_center_diff <= atol and self.same_labels
                and self.same_n_iter)


def fit_difference(ours, ref) -> FitDifference:
    """Compare two fitted estimators center by center, label by label.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace as F
    >>> from _cases import fit_difference
    >>> a = F(cluster_centers_=np.array([[0.0], [5.0]]), labels_=np.array([0, 1]), n_iter_=3)
    >>> b = F(cluster_centers_=np.array([[0.0], [5.5]]), labels_=np.array([0, 1]), n_iter_=3)
    >>> d = fit_difference(a, b); d.max_center_diff, d.same(1e-9), d.same(0.5)
    (0.5, False, True)
    """
    A, B = np.asarray(ours.cluster_centers_), np.asarray(ref.cluster_centers_)
    same_count = A.shape == B.shape
    return FitDifference(
        same_count=same_count,
        max_center_diff=float(np.abs(A - B).max(initial=0.0)) if same_count else math.inf,
        same_labels=same_count and np.array_equal(ours.labels_, ref.labels_),
        same_n_iter=ours.n_iter_ == ref.n_iter_,
    )


def assert_same_clusters(ours, ref, atol=1e-9):
    """Same clusters as the reference: centers within atol, identical labels and n_iter_."""
    diff = fit_difference(ours, ref)
    assert diff.same(atol), (diff, np.asarray(ours.cluster_centers_).shape,
                             np.asarray(ref.cluster_centers_).shape)


# ----------------------------------------------------------------- throughput
@dataclass
class ThroughputCase:
    X: np.ndarray
    seeds: np.ndarray
    bandwidth: float
    max_iter: int

    def pairs(self, res) -> int:
        """Gaussian weights evaluated: points x (sum over seeds of n_iter + 1).

        A seed takes ``n_iter + 1`` steps: the ``n_iter`` it completes, then
        the step whose mean stops it (within ``tol``, or at ``max_iter``),
        computed like every other (scikit-learn's rule, which ``n_iter_``
        follows). With ``tol=0`` a seed only stops early when a step leaves it
        exactly where it was (this happens in float32), so nearly every seed
        takes ``max_iter + 1`` steps. Under brute force with nothing culled
        each step weighs every point: tests/test_numpy_tiles.py counts the
        products ``shift`` makes and finds exactly this many pairs. The
        intensity count that ``shift`` also performs (flat comparisons) is in
        the time and not in the count.
        """
        return len(self.X) * int((np.asarray(res.n_iter) + 1).sum())


def throughput_case(d: int, dtype: str, *, n=THROUGHPUT_N, m=THROUGHPUT_SEEDS,
                    max_iter=THROUGHPUT_ITERS) -> ThroughputCase:
    """Gaussian blobs in d dimensions; the first m points are the seeds.

    The bandwidth is chosen so that the data's extent on every axis stays
    inside the Gaussian cutoff of the backend (38 bandwidths): no pair is
    culled, so seeds x points is exactly the work done per iteration.
    """
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=n, n_features=d, centers=3, cluster_std=1.0, random_state=0)
    X = np.ascontiguousarray(X, dtype=dtype)
    bandwidth = float(np.ptp(X, axis=0).max()) / 8.0
    assert np.ptp(X / bandwidth, axis=0).max() < 38.0
    return ThroughputCase(X=X, seeds=np.ascontiguousarray(X[:m]), bandwidth=bandwidth,
                          max_iter=max_iter)


def run_shift(case: ThroughputCase, backend=None):
    """The backend's whole shift loop with tol=0: every seed runs max_iter steps."""
    from gpumeanshift.backends.numpy.backend import NumpyBackend

    be = backend if backend is not None else NumpyBackend()
    extra = {}
    if "algorithm" in inspect.signature(be.shift).parameters:
        # Evaluate every pair: a neighbourhood index that truncates the
        # Gaussian would skip pairs that the count above includes.
        extra["algorithm"] = "brute"
    return be.shift(case.X, case.seeds, bandwidth=case.bandwidth, kernel="gaussian",
                    max_iter=case.max_iter, tol=0.0, **extra)


def check_shift(case: ThroughputCase, res) -> None:
    """Most seeds ran max_iter counted steps, none more, and the modes are finite."""
    n_iter = np.asarray(res.n_iter)
    assert n_iter.max() <= case.max_iter and n_iter.mean() >= 0.5 * case.max_iter, (
        np.unique(n_iter, return_counts=True))
    assert np.isfinite(np.asarray(res.modes)).all()


# ------------------------------------------------------------- peak memory (4)
def run_memory_child(impl: str, n_samples: int = N_MEMORY, timeout: float = 900) -> dict:
    """Fit n_samples 2-D blobs with bin seeding in a fresh interpreter.

    Returns the child's report (fit seconds, clusters, bandwidth) plus
    ``peak_rss_bytes``: the child's ``ru_maxrss`` from ``os.wait4`` (peak
    resident set of the whole process, interpreter and imports included).
    """
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "memory-child",
                             impl, str(n_samples)], stdout=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"memory child ({impl}) exited with {proc.returncode}")
    report = json.loads(out.strip().splitlines()[-1])
    report["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
    report["process_seconds"] = wall
    return report


def _child(impl: str, n_samples: int) -> None:
    X, bandwidth = blobs_and_bandwidth(n_samples)
    fit = fit_gpumeanshift if impl == "gpumeanshift" else fit_sklearn
    t0, c0 = time.perf_counter(), time.process_time()
    est = fit(X, bandwidth, bin_seeding=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"impl": impl, "n_samples": n_samples, "seconds": seconds,
                      "cpu_seconds": cpu,
                      "bandwidth": bandwidth, "n_clusters": int(len(est.cluster_centers_)),
                      "n_iter": int(est.n_iter_),
                      "centers": np.asarray(est.cluster_centers_).tolist()}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "memory-child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python bench/_cases.py memory-child {gpumeanshift,sklearn} N")
