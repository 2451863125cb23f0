"""Soak test: many fits and predictions in one process, memory must not grow.

Marked ``soak`` and so excluded from the default run (``-m "not soak"`` in
the project's addopts); run it with ``pytest -m soak tests/test_soak.py``.

Each backend fits and predicts the same small data set repeatedly, for at
most ``MAX_ROUNDS`` rounds or ``MAX_SECONDS`` seconds. After ``WARMUP``
rounds (caches, thread pools, compiled kernels settle) two things are
sampled every round: the Python heap traced by ``tracemalloc`` (NumPy
reports its array buffers to it) and the process's resident set size (which
also sees C/C++ allocations, e.g. the emulated runtime's). Both must stay
flat: the growth from the end of warm-up to the end must be below a bound
far smaller than what one leaked copy of the data per round would cost, and
the second half of the run must not grow faster than 128 bytes per round
(the first few hundred rounds fill small caches -- ctypes' and
threadpoolctl's -- by ~20-30 KiB in all, then the heap stays flat; one leaked
copy of the data would cost ~10 KiB per round).
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
import pytest

from gpumeanshift import MeanShift
from _emulation import emulated_backend_or_skip, emulated_param

pytestmark = pytest.mark.soak

MAX_ROUNDS = 400
MAX_SECONDS = 120.0
WARMUP = 100




def _make(name):
    if name == "numpy":
        return "numpy"
    return emulated_backend_or_skip()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("backend_name", [
    pytest.param("numpy", id="numpy"),
    emulated_param(),
])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_repeated_fit_predict_does_not_grow_memory(backend_name, kernel):
    backend = _make(backend_name)
    rng = np.random.default_rng(0)
    n = 400 if backend_name == "numpy" else 150
    X = np.concatenate([rng.normal(c, 0.4, (n // 3, 3)) for c in (0.0, 4.0, 8.0)])
    Q = rng.uniform(-1, 9, (100, 3))
    data_bytes = X.nbytes

    first = MeanShift(bandwidth=1.0, kernel=kernel, backend=backend).fit(X)
    # Samples go to preallocated arrays: appending to lists would itself grow
    # the traced heap by ~100 bytes per round.
    heap = np.zeros(MAX_ROUNDS)
    rss = np.zeros(MAX_ROUNDS)
    k = 0
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        rounds = 0
        while rounds < MAX_ROUNDS and time.perf_counter() - t0 < MAX_SECONDS:
            ms = MeanShift(bandwidth=1.0, kernel=kernel, backend=backend).fit(X)
            labels = ms.predict(Q)
            # Every round gives the same answer: a leak must not hide a drift.
            np.testing.assert_array_equal(ms.labels_, first.labels_)
            assert labels.shape == (len(Q),)
            del ms, labels
            rounds += 1
            if rounds >= WARMUP:
                gc.collect()
                heap[k] = tracemalloc.get_traced_memory()[0]
                rss[k] = _rss_bytes()
                k += 1
    finally:
        tracemalloc.stop()

    assert rounds >= WARMUP + 40, f"only {rounds} rounds in {MAX_SECONDS} s: too slow to judge"
    heap, rss = heap[:k], rss[:k]
    heap_growth = heap[-5:].mean() - heap[:5].mean()
    rss_growth = rss[-5:].max() - rss[:5].max()
    # Slope over the second half, bytes per round (least squares).
    half = np.arange(k // 2, k)
    heap_slope = np.polyfit(half, heap[k // 2:], 1)[0]
    print(f"{backend_name}/{kernel}: {rounds} rounds, heap growth {heap_growth / 1024:.1f} KiB "
          f"(slope {heap_slope:.0f} B/round), RSS growth {rss_growth / 2**20:.2f} MiB")
    # One leaked copy of X per round would add data_bytes * rounds.
    assert heap_growth < max(256 * 1024, 0.05 * data_bytes * rounds), heap_growth
    assert heap_slope < 128, f"traced heap grows {heap_slope:.0f} bytes per round"
    assert rss_growth < 16 * 2**20, f"RSS grew {rss_growth / 2**20:.1f} MiB"
