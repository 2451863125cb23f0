"""The four speed cases of issue 2, defined once for the pytest suite and report.py.

Each case is a plain function that does the work and returns what the
benchmark needs to check (fitted estimators, a ShiftResult, a child's
measurements); the timing is left to the caller (pytest-benchmark or the
report script), so both measure exactly the same thing.

Case 4 runs in a fresh interpreter (this file is its entry point, see
``_child``) so that its peak memory is that of one fit alone; the parent
reads the child's peak resident set size from ``os.wait4``, i.e. the kernel's
``ru_maxrss`` for that process, which covers every allocation (NumPy, BLAS,
the interpreter and its imports), not only NumPy's.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
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


# ------------------------------------------------------------------- the fits
def fit_gpumeanshift(X, bandwidth, *, bin_seeding=False, n_jobs=None):
    """The NumPy backend with the flat kernel, i.e. scikit-learn's settings."""
    from gpumeanshift import MeanShift

    return MeanShift(bandwidth=bandwidth, kernel="flat", bin_seeding=bin_seeding,
                     backend="numpy", n_jobs=n_jobs).fit(X)


def fit_sklearn(X, bandwidth, *, bin_seeding=False, n_jobs=None):
    """scikit-learn's MeanShift (flat kernel; n_jobs=None is its default, one process)."""
    from sklearn.cluster import MeanShift

    return MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding, n_jobs=n_jobs).fit(X)


def assert_same_clusters(ours, ref, atol=1e-9):
    """Same clusters as scikit-learn: centers within atol, identical labels."""
    assert ours.cluster_centers_.shape == ref.cluster_centers_.shape, (
        ours.cluster_centers_.shape, ref.cluster_centers_.shape)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=atol)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_, (ours.n_iter_, ref.n_iter_)


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
    from gpumeanshift.backends.numpy_backend import NumpyBackend

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


# ------------------------------------------------------------------ machine info
def machine_info() -> dict:
    """Cores, CPU, library versions and BLAS threading, for the report."""
    import sklearn

    import gpumeanshift

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{p['internal_api']} {p.get('version')} ({p['num_threads']} threads"
            + (f", {p['architecture']}" if p.get("architecture") else "") + ")"
            for p in threadpool_info() if p["user_api"] == "blas"
        ) or "none found"
    except ImportError:
        pass
    try:
        load = "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover
        load = "unknown"
    return {
        "cores": cores,
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "gpumeanshift": gpumeanshift.__version__,
        "blas": blas,
        "load average (1/5/15 min)": load,
    }


def calibration() -> dict:
    """How fast this machine is right now, on three fixed single-thread workloads.

    A shared machine's speed drifts from day to day (seen here: 3x between
    two sessions on the same CPU model). Printed beside the table, these let
    two reports be compared: the ratios to scikit-learn carry over, absolute
    figures such as pairs/s scale with them. Best of 5 runs each.
    """
    def best(fn, reps=5):
        out = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t)
        return out

    def py_loop():
        s = 0
        for i in range(1_000_000):
            s += i
        return s

    a64 = -np.linspace(0.0, 20.0, 1 << 16)
    a32 = a64.astype(np.float32)
    o64, o32 = np.empty_like(a64), np.empty_like(a32)
    return {
        "python loop (1e6 additions)": f"{best(py_loop) * 1e3:.0f} ms",
        "NumPy float64 exp": f"{best(lambda: np.exp(a64, out=o64)) / a64.size * 1e9:.2f} ns/value",
        "NumPy float32 exp": f"{best(lambda: np.exp(a32, out=o32)) / a32.size * 1e9:.2f} ns/value",
    }


def pass_costs(d: int, dtype: str, *, reps: int = 20) -> dict:
    """Single-thread cost per pair of the three passes of a Gaussian step.

    One block as the NumPy backend runs it for case 3 (256 seeds against the
    columns its default tile holds; float64 in the global frame): the
    product giving ``-|q - x|^2 / 2``, ``exp`` in place, and the product
    giving the weighted sums and the weight total. Their sum is what one core
    spends per pair when nothing else costs anything, so ``cores / sum`` is
    the most pairs/s this way of computing the step can give here. Best of
    ``reps`` per pass, BLAS held to one thread.
    """
    from threadpoolctl import threadpool_limits

    from gpumeanshift.backends.numpy_backend import (NumpyBackend, _augment_points,
                                                     _augment_queries)

    case = throughput_case(d, dtype)
    dt = np.dtype(dtype)
    t = NumpyBackend._SEED_TILE
    cols = NumpyBackend().tile_elements * (8 // dt.itemsize) // t
    Y = ((case.X - case.X.mean(axis=0)) / case.bandwidth).astype(dt)
    qa = _augment_queries(Y[:t], dt)
    xa = _augment_points(Y[:cols], dt)
    e = np.empty((t, cols), dt)
    acc = np.empty((t, d + 1), dt)

    def best(fn):
        out = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t0)
        return out / (t * cols) * 1e9

    with threadpool_limits(limits=1, user_api="blas"):
        np.dot(qa, xa.T, out=e)
        x = e.copy()
        costs = {
            "distances": best(lambda: np.dot(qa, xa.T, out=e)),
            "exp": best(lambda: np.exp(x, out=e)),
            "sums": best(lambda: np.dot(e, xa[:, :d + 1], out=acc)),
        }
    return {k: round(v, 3) for k, v in costs.items()} | {"total": round(sum(costs.values()), 3)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "memory-child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python bench/_cases.py memory-child {gpumeanshift,sklearn} N")
