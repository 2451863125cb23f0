"""The machine a benchmark ran on: cores, CPU, versions, speed calibration, pass costs.

Printed beside the figures by report.py, bench_gaussian_grid.py and the
pytest-benchmark summary (conftest.py), so that two reports can be compared.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

import _cases


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

    from gpumeanshift.backends.numpy.backend import (NumpyBackend, _augment_points,
                                                     _augment_queries)

    case = _cases.throughput_case(d, dtype)
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
