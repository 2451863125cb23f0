"""Kernel density at points: ``MeanShift.score_samples`` vs scikit-learn's KernelDensity.

Run with ``python -m pytest bench/bench_density.py --benchmark-only
-p no:cacheprovider``. Same data, same bandwidth, same queries (the training
points themselves, as in anomaly scoring of the training set). scikit-learn
runs with its defaults (``algorithm="auto"``, ``rtol=0``, ``atol=0``: exact),
which is also the setting our results are checked against on the benchmarked
output itself (Gaussian within 1e-6 relative; flat equal where finite).

Timed: ``score_samples`` only, on both sides. Untimed: scikit-learn's tree
build (``KernelDensity.fit``, milliseconds) and our clustering fit (the
density needs only the data the fit keeps). The summary prints the best
round of each side and the ratio (scikit-learn time / ours; above 1 means
gpumeanshift is faster).
"""

from __future__ import annotations

import numpy as np
import pytest
from _record import best_seconds, record, result

CASES = {
    # name: (n, d, bandwidth, kernel)
    "density gaussian 10k x 2-D": (10_000, 2, 0.3, "gaussian"),
    "density gaussian 4k x 8-D": (4_000, 8, 1.0, "gaussian"),
    "density flat 10k x 2-D": (10_000, 2, 0.3, "flat"),
}
SK_KERNEL = {"gaussian": "gaussian", "flat": "tophat"}


def _data(n, d):
    rng = np.random.default_rng(0)
    centers = rng.uniform(-3, 3, size=(5, d))
    return centers[rng.integers(0, 5, n)] + rng.normal(scale=0.7, size=(n, d))


@pytest.fixture(scope="module")
def outputs():
    return {}


@pytest.mark.parametrize("case", list(CASES))
def test_density_sklearn(benchmark, case, outputs):
    from sklearn.neighbors import KernelDensity

    n, d, h, kernel = CASES[case]
    X = _data(n, d)
    kde = KernelDensity(bandwidth=h, kernel=SK_KERNEL[kernel]).fit(X)
    benchmark.group = case
    outputs[(case, "sklearn")] = benchmark.pedantic(kde.score_samples, args=(X,), rounds=1,
                                                    iterations=1)
    record(case, "scikit-learn KernelDensity", seconds=best_seconds(benchmark))


@pytest.mark.parametrize("case", list(CASES))
def test_density_gpumeanshift(benchmark, case, outputs):
    from gpumeanshift import MeanShift

    n, d, h, kernel = CASES[case]
    X = _data(n, d)
    ms = MeanShift(bandwidth=h, kernel=kernel, backend="numpy", bin_seeding=True,
                   min_bin_freq=5).fit(X)
    benchmark.group = case
    got = benchmark.pedantic(ms.score_samples, args=(X,), rounds=3, iterations=1)
    ref = outputs.get((case, "sklearn"))
    if ref is None:  # run on its own: reference untimed
        from sklearn.neighbors import KernelDensity

        ref = KernelDensity(bandwidth=h, kernel=SK_KERNEL[kernel]).fit(X).score_samples(X)
    if kernel == "gaussian":
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    else:  # training points: every query has itself within h, so all finite
        np.testing.assert_allclose(got, ref, rtol=1e-9)
    seconds = best_seconds(benchmark)
    sk = result(case, "scikit-learn KernelDensity")
    ratio = sk["seconds"] / seconds if sk and sk["seconds"] and seconds else None
    record(case, "gpumeanshift numpy", seconds=seconds, ratio=ratio,
           pairs_per_s=n * n / seconds if seconds else None)
