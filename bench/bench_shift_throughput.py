"""Case 3 of issue 2: Gaussian shift-step throughput of the NumPy backend.

Pair evaluations per second = points x (steps summed over seeds) / time,
measured on ``NumpyBackend().shift`` directly with ``tol=0`` and a fixed
``max_iter``, so that every seed takes ``max_iter + 1`` steps (``max_iter``
completed and the one that stops it) unless a step leaves it exactly in place
(float32 does that); see ``ThroughputCase.pairs``. The time also covers the
intensity count, which is not counted as pairs. Target: >= 1e9 pairs/s for
d <= 16 (d = 128 is reported without a target).
"""

from __future__ import annotations

import pytest
from _record import best_seconds, check_target, record

import _cases


@pytest.mark.parametrize("dtype", _cases.THROUGHPUT_DTYPES)
@pytest.mark.parametrize("d", _cases.THROUGHPUT_DIMS)
def test_gaussian_shift_throughput(request, benchmark, d, dtype):
    case = _cases.throughput_case(d, dtype)
    benchmark.group = "3. Gaussian shift throughput"
    res = benchmark.pedantic(_cases.run_shift, args=(case,), rounds=3, iterations=1)
    _cases.check_shift(case, res)
    seconds = best_seconds(benchmark)
    pairs = case.pairs(res)
    rate = pairs / seconds if seconds else None
    target = _cases.TARGET_PAIRS_PER_S if d <= 16 else None
    met = rate is not None and (target is None or rate >= target)
    benchmark.extra_info.update(pairs=pairs, pairs_per_s=rate)
    record("3. Gaussian shift throughput", f"d={d:<3} {dtype}", seconds=seconds,
           pairs_per_s=rate, target=f">= {target:.0e} pairs/s" if target else None, met=met)
    if target and rate is not None:
        check_target(request, met, f"d={d} {dtype}: {rate:.3e} pairs/s")
