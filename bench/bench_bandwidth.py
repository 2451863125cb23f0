"""estimate_bandwidth and MeanShift() with bandwidth=None against scikit-learn.

Run with ``python -m pytest bench/bench_bandwidth.py --benchmark-only
-p no:cacheprovider``. scikit-learn runs first in each case (one round: its
50,000-point estimates take minutes); gpumeanshift's best of three rounds
follows, on the same data, and is checked against scikit-learn's result:
the same estimate to 1e-12 (scikit-learn's expanded squared distances are
exact only to about sqrt(eps) * |X| per distance; their mean over the points
agrees far closer), and for ``MeanShift().fit`` the same clusters (centers
within 1e-9, identical labels and ``n_iter_``).

Cases:

* ``estimate_bandwidth(X, quantile=q)`` for the three 2-D blobs of
  scikit-learn's example, 10,000 and 50,000 points, q = 0.2 and 0.3 (every
  point sampled: k = q * n neighbours of each), target >= 10x;
* ``MeanShift().fit(X)``, every parameter at its default on both sides
  (scikit-learn's flat kernel, the bandwidth estimated, every point a seed),
  10,000 points, target >= 30x.
"""

from __future__ import annotations

import pytest
from _record import best_seconds, check_target, record, result

import _cases

TARGET_ESTIMATE = 10.0
TARGET_DEFAULT_FIT = 30.0
ESTIMATE_CASES = [(10_000, 0.2), (10_000, 0.3), (50_000, 0.2), (50_000, 0.3)]
N_DEFAULT_FIT = 10_000


@pytest.fixture(scope="module")
def data():
    return {n: _cases.blobs(n) for n in {n for n, _ in ESTIMATE_CASES} | {N_DEFAULT_FIT}}


@pytest.fixture(scope="module")
def reference():
    """scikit-learn's result per case, filled by its benchmark (or lazily)."""
    return {}


def _estimate_case(n, q):
    return f"estimate_bandwidth {n // 1000}k q={q}"


def _sk_estimate(X, q):
    from sklearn.cluster import estimate_bandwidth

    return float(estimate_bandwidth(X, quantile=q))


def _our_estimate(X, q):
    from gpumeanshift import estimate_bandwidth

    return float(estimate_bandwidth(X, quantile=q, backend="numpy"))


def _ratio(case, seconds):
    sk = result(case, "scikit-learn")
    return sk["seconds"] / seconds if sk and sk["seconds"] and seconds else None


@pytest.mark.parametrize("n,q", ESTIMATE_CASES)
def test_estimate_sklearn(benchmark, data, reference, n, q):
    case = _estimate_case(n, q)
    benchmark.group = case
    reference[case] = benchmark.pedantic(_sk_estimate, args=(data[n], q), rounds=1,
                                         iterations=1)
    record(case, "scikit-learn", seconds=best_seconds(benchmark))


@pytest.mark.parametrize("n,q", ESTIMATE_CASES)
def test_estimate_gpumeanshift(request, benchmark, data, reference, n, q):
    case = _estimate_case(n, q)
    benchmark.group = case
    ours = benchmark.pedantic(_our_estimate, args=(data[n], q), rounds=3, iterations=1)
    ref = reference.get(case)
    if ref is None:  # run on its own: scikit-learn once, untimed
        ref = reference[case] = _sk_estimate(data[n], q)
    assert ours == pytest.approx(ref, rel=1e-12, abs=0), (ours, ref)
    _record_ours(request, benchmark, case, TARGET_ESTIMATE)


def _record_ours(request, benchmark, case, target):
    """Record gpumeanshift's best round, its ratio to scikit-learn's and the target."""
    seconds = best_seconds(benchmark)
    ratio = _ratio(case, seconds)
    met = ratio is not None and ratio >= target
    record(case, "gpumeanshift", seconds=seconds, ratio=ratio, target=f">= {target:g}x", met=met)
    if ratio is not None:
        check_target(request, met, f"{case}: {ratio:.2f}x < {target:g}x")


CASE_FIT = f"MeanShift().fit {N_DEFAULT_FIT // 1000}k (defaults)"


def _sk_fit(X):
    from sklearn.cluster import MeanShift

    return MeanShift().fit(X)


def _our_fit(X):
    from gpumeanshift import MeanShift

    return MeanShift(backend="numpy").fit(X)


def test_default_fit_sklearn(benchmark, data, reference):
    benchmark.group = CASE_FIT
    reference[CASE_FIT] = benchmark.pedantic(_sk_fit, args=(data[N_DEFAULT_FIT],), rounds=1,
                                             iterations=1)
    record(CASE_FIT, "scikit-learn", seconds=best_seconds(benchmark))


def test_default_fit_gpumeanshift(request, benchmark, data, reference):
    X = data[N_DEFAULT_FIT]
    benchmark.group = CASE_FIT
    ours = benchmark.pedantic(_our_fit, args=(X,), rounds=3, iterations=1)
    ref = reference.get(CASE_FIT)
    if ref is None:
        ref = reference[CASE_FIT] = _sk_fit(X)
    # scikit-learn keeps its estimate to itself: recomputed here, untimed.
    assert ours.bandwidth_ == pytest.approx(_sk_estimate(X, 0.3), rel=1e-12, abs=0)
    _cases.assert_same_clusters(ours, ref)
    _record_ours(request, benchmark, CASE_FIT, TARGET_DEFAULT_FIT)
