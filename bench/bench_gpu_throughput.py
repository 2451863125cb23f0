"""The Gaussian shift step on the GPU, side by side with the NumPy backend.

Skipped (visibly) without CuPy and a CUDA device. Run on a GPU machine with::

    python -m pytest bench/bench_gpu_throughput.py --benchmark-only -p no:cacheprovider

Pair evaluations per second (seeds x points x counted iterations / time) are
measured through ``backend.shift(..., tol=0)`` exactly as case 3 of
``bench_shift_throughput.py`` does, on two sizes:

* ``small``: case 3's data (20,000 points, 2,000 seeds), the CUDA backend and
  the NumPy backend on the same input: the ratio is GPU over CPU;
* ``large``: 1,000,000 points and 100,000 seeds (2-D) or 200,000 points and
  20,000 seeds (16-D), the CUDA backend only: the size at which a GPU is busy.

``test_gpu_weighted_shift_throughput`` times the sample-weighted kernels on
the large case beside the unweighted ones (their ratio).

Each figure is also given as a fraction of the speed limit stated in the
README (about 4.2e12 pair evaluations per second on an H100 for d <= 3, where
the step is bound by ``exp``: one MUFU.EX2 per pair at 16 per SM per clock,
132 SMs, 1.98 GHz). GPU speed stays unmeasured until this has run on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from _record import best_seconds, record

import _cases

H100_EXP_LIMIT = 4.2e12  # pairs/s for d <= 3, see the module docstring


def _cuda_backend():
    from gpumeanshift.backends.base import cuda_available, resolve_backend

    if not cuda_available():
        pytest.skip("no CUDA device (CuPy and a GPU are needed): GPU speed unmeasured")
    return resolve_backend("cupy")


def _large_case(d: int, dtype: str) -> _cases.ThroughputCase:
    n, m = (1_000_000, 100_000) if d <= 3 else (200_000, 20_000)
    return _cases.throughput_case(d, dtype, n=n, m=m)


def _host(res):
    """The fields ``_cases`` reads, as NumPy arrays (``np.asarray`` refuses
    CuPy arrays: CuPy forbids implicit device-to-host conversion)."""
    import types

    import cupy

    return types.SimpleNamespace(n_iter=cupy.asnumpy(res.n_iter), modes=cupy.asnumpy(res.modes))


def _run_synchronized(case, backend):
    res = _cases.run_shift(case, backend)
    import cupy

    cupy.cuda.Device().synchronize()
    return res


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [2, 16])
@pytest.mark.parametrize("size", ["small", "large"])
def test_gpu_shift_throughput(benchmark, size, d, dtype):
    be = _cuda_backend()
    case = _cases.throughput_case(d, dtype) if size == "small" else _large_case(d, dtype)
    import cupy

    dev_case = _cases.ThroughputCase(X=cupy.asarray(case.X), seeds=cupy.asarray(case.seeds),
                                     bandwidth=case.bandwidth, max_iter=case.max_iter)
    _run_synchronized(dev_case, be)  # compile and warm up outside the timing
    benchmark.group = f"GPU Gaussian shift throughput ({size})"
    res = _host(benchmark.pedantic(_run_synchronized, args=(dev_case, be), rounds=3,
                                   iterations=1))
    _cases.check_shift(case, res)
    seconds = best_seconds(benchmark)
    rate = case.pairs(res) / seconds if seconds else None
    info = {"pairs_per_s": rate}
    if rate is not None and d <= 3:
        info["fraction_of_h100_exp_limit"] = rate / H100_EXP_LIMIT
    benchmark.extra_info.update(info)
    record(f"GPU throughput {size}", f"cuda d={d} {dtype}", seconds=seconds, **info)
    if size == "small":
        # The NumPy backend on the same input, for the GPU / CPU ratio.
        t_cpu = _best_cpu(case)
        benchmark.extra_info["numpy_seconds"] = t_cpu
        if seconds:
            benchmark.extra_info["gpu_over_cpu_speedup"] = t_cpu / seconds
            record(f"GPU throughput {size}", f"numpy d={d} {dtype}", seconds=t_cpu,
                   ratio=t_cpu / seconds)


def _best_cpu(case, rounds: int = 2) -> float:
    import time

    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        _cases.run_shift(case)
        best = min(best, time.perf_counter() - t0)
    return float(best)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [2, 16])
def test_gpu_weighted_shift_throughput(benchmark, d, dtype):
    """The sample-weighted kernels (rows [x, w]: one more column per point and
    one more multiply per pair) beside the unweighted ones, on the large case
    with integer weights 1..5; records both times and their ratio."""
    be = _cuda_backend()
    case = _large_case(d, dtype)
    import time

    import cupy

    X, S = cupy.asarray(case.X), cupy.asarray(case.seeds)
    w = cupy.asarray(np.random.default_rng(0).integers(1, 6, len(case.X)).astype(np.float64))

    def run(weights):
        res = be.shift(X, S, bandwidth=case.bandwidth, kernel="gaussian",
                       max_iter=case.max_iter, tol=0.0, algorithm="brute", weights=weights)
        cupy.cuda.Device().synchronize()
        return res

    run(None)  # compile both modules and warm up outside the timing
    run(w)
    benchmark.group = "GPU Gaussian shift throughput, weighted"
    res = _host(benchmark.pedantic(run, args=(w,), rounds=3, iterations=1))
    _cases.check_shift(case, res)
    seconds = best_seconds(benchmark)
    t_unw = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        run(None)
        t_unw = min(t_unw, time.perf_counter() - t0)
    info = {"pairs_per_s": case.pairs(res) / seconds if seconds else None,
            "unweighted_seconds": float(t_unw),
            "weighted_over_unweighted_time": seconds / t_unw if seconds else None}
    benchmark.extra_info.update(info)
    record("GPU throughput weighted", f"cuda d={d} {dtype}", seconds=seconds, **info)
