"""Weighted points against the same data repeated: ``sample_weight`` as a speed-up.

Run with ``python -m pytest bench/bench_weights.py --benchmark-only
-p no:cacheprovider``.

The data: 1,000,000 2-D points that take only 20,000 distinct values
(locations drawn from three hotspots; each location's count is 1 plus a
multinomial share of the rest, so counts range from 1 to a few hundred).
Fitted side by side, in one run, on the NumPy backend with the flat kernel
and a given bandwidth, every point a seed:

* ``full``: the 1,000,000 rows, no weights (one round: about a minute);
* ``weighted``: the 20,000 distinct rows with their counts as
  ``sample_weight`` (best of three).

Checked, always (a mismatch fails the benchmark): the same clusters --
centers within 1e-9, the labels of the repeated rows equal to their
location's label, the same ``n_iter_`` and center intensities. The target,
reported as a ratio (``--bench-strict`` fails on a miss): the weighted fit at
least 20x faster.
"""

from __future__ import annotations

import numpy as np
import pytest
from _record import best_seconds, check_target, record, result

N_TOTAL = 1_000_000
N_DISTINCT = 20_000
BANDWIDTH = 0.5
TARGET = 20.0
CASE = f"weights {N_TOTAL // 1000}k rows / {N_DISTINCT // 1000}k distinct"


@pytest.fixture(scope="module")
def data():
    """The distinct locations, their counts, and the repeated rows."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [4.0, 1.0], [1.5, 5.0]])
    locs = centers[rng.integers(0, 3, N_DISTINCT)] + rng.normal(scale=0.8, size=(N_DISTINCT, 2))
    locs = np.unique(np.round(locs, 6), axis=0)
    assert len(locs) == N_DISTINCT  # continuous draws: all distinct
    density = np.exp(-0.5 * ((locs[:, None, :] - centers[None]) ** 2).sum(-1) / 0.64).sum(1)
    counts = 1 + rng.multinomial(N_TOTAL - N_DISTINCT, density / density.sum())
    return locs, counts, np.repeat(locs, counts, axis=0)


@pytest.fixture(scope="module")
def reference():
    return {}


def _fit(X, w=None):
    from gpumeanshift import MeanShift

    return MeanShift(bandwidth=BANDWIDTH, kernel="flat", backend="numpy").fit(X, sample_weight=w)


def test_full_data(benchmark, data, reference):
    benchmark.group = CASE
    reference["full"] = benchmark.pedantic(_fit, args=(data[2],), rounds=1, iterations=1)
    record(CASE, "full data (1,000,000 rows)", seconds=best_seconds(benchmark))


def test_weighted(request, benchmark, data, reference):
    locs, counts, full = data
    benchmark.group = CASE
    ours = benchmark.pedantic(_fit, args=(locs, counts), rounds=3, iterations=1)
    ref = reference.get("full")
    if ref is None:  # run on its own: the full fit once, untimed
        ref = reference["full"] = _fit(full)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.repeat(ours.labels_, counts), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.center_intensity_, ref.center_intensity_, rtol=1e-12)
    seconds = best_seconds(benchmark)
    full = result(CASE, "full data (1,000,000 rows)")
    ratio = full["seconds"] / seconds if full and full["seconds"] and seconds else None
    met = ratio is not None and ratio >= TARGET
    record(CASE, "weighted (20,000 rows)", seconds=seconds, ratio=ratio, peer="full data",
           target=f">= {TARGET:g}x", met=met)
    if ratio is not None:
        check_target(request, met, f"{CASE}: {ratio:.2f}x < {TARGET:g}x")
