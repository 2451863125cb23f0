"""Cases 1 and 2 of issue 2: the NumPy backend against scikit-learn, same clusters.

Run with ``python -m pytest bench/bench_numpy_vs_sklearn.py --benchmark-only
-p no:cacheprovider`` (see bench/README.md). scikit-learn runs first in each
case; its fitted estimator is the reference every gpumeanshift variant must
reproduce (centers within 1e-9, identical labels and n_iter_), checked on the
benchmarked result itself.

Variants: ``default`` is what a user gets (``MeanShift(backend="numpy")``,
every core); ``n_jobs=1`` is one worker thread; ``blas=1`` runs the default
under ``threadpoolctl.threadpool_limits(1)`` (OpenBLAS single-threaded), a
diagnostic of thread oversubscription.
"""

from __future__ import annotations

import contextlib

import pytest
from _record import best_seconds, check_target, record, result

import _cases

VARIANTS = {
    "default": {},
    "n_jobs=1": {"n_jobs": 1},
    "blas=1": {"blas_threads": 1},
}


def _blas_limit(n):
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _reference(sklearn_reference, case, X, bandwidth, **kw):
    if case not in sklearn_reference:  # gpumeanshift run on its own: fit once, untimed
        sklearn_reference[case] = _cases.fit_sklearn(X, bandwidth, **kw)
    return sklearn_reference[case]


def _bench_sklearn(benchmark, sklearn_reference, case, X, bandwidth, rounds, **kw):
    benchmark.group = case
    est = benchmark.pedantic(_cases.fit_sklearn, args=(X, bandwidth), kwargs=kw,
                             rounds=rounds, iterations=1)
    sklearn_reference[case] = est
    record(case, "scikit-learn", seconds=best_seconds(benchmark))


def _bench_ours(request, benchmark, sklearn_reference, case, X, bandwidth, variant,
                target, rounds, **kw):
    benchmark.group = case
    opts = dict(VARIANTS[variant])
    blas = opts.pop("blas_threads", None)
    ref = _reference(sklearn_reference, case, X, bandwidth, **kw)

    def run():
        with _blas_limit(blas):
            return _cases.fit_gpumeanshift(X, bandwidth, **opts, **kw)

    ours = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    _cases.assert_same_clusters(ours, ref)
    seconds = best_seconds(benchmark)
    sk = result(case, "scikit-learn")
    ratio = sk["seconds"] / seconds if sk and sk["seconds"] and seconds else None
    met = ratio is not None and ratio >= target
    record(case, f"gpumeanshift ({variant})", seconds=seconds, ratio=ratio,
           target=f">= {target:g}x", met=met)
    if variant == "default" and ratio is not None:
        check_target(request, met, f"{case}: {ratio:.2f}x < {target:g}x")


# --------------------------------------------------------------- case 1
CASE1 = "1. all seeds, 10k x 2-D"


def test_all_seeds_sklearn(benchmark, sklearn_reference, all_seeds_data):
    X, h = all_seeds_data
    _bench_sklearn(benchmark, sklearn_reference, CASE1, X, h, rounds=1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_all_seeds_gpumeanshift(request, benchmark, sklearn_reference, all_seeds_data, variant):
    X, h = all_seeds_data
    _bench_ours(request, benchmark, sklearn_reference, CASE1, X, h, variant,
                _cases.TARGET_ALL_SEEDS, rounds=3)


# --------------------------------------------------------------- case 2
CASE2 = "2. bin seeding, 100k x 2-D"


def test_bin_seeding_sklearn(benchmark, sklearn_reference, bin_seeding_data):
    X, h = bin_seeding_data
    _bench_sklearn(benchmark, sklearn_reference, CASE2, X, h, rounds=3, bin_seeding=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bin_seeding_gpumeanshift(request, benchmark, sklearn_reference, bin_seeding_data,
                                  variant):
    X, h = bin_seeding_data
    _bench_ours(request, benchmark, sklearn_reference, CASE2, X, h, variant,
                _cases.TARGET_BIN_SEEDING, rounds=5, bin_seeding=True)
