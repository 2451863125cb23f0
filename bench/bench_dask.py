"""gpumeanshift.dask: fit time against the number of worker processes, both strategies.

A script, not a pytest benchmark (pytest collects nothing here)::

    python bench/bench_dask.py                       # 1 and 2 workers, ~2 min on 2 cores
    python bench/bench_dask.py --n 400000 --workers 1 2 4 --repeat 3

For each worker count a ``distributed.LocalCluster`` of that many processes
(1 thread each, NumPy backend) fits the same data with ``strategy="seeds"``
and ``strategy="data"``; the single-machine ``MeanShift(n_jobs=workers)`` is
timed beside it, with BLAS on one thread as in the Dask workers. Every
distributed result is checked against the single-machine one (centers within
1e-9, identical labels and ``n_iter_``).

``--unset-malloc-trim`` starts the workers without the
``MALLOC_TRIM_THRESHOLD_=65536`` that distributed's nannies set by default:
with it, glibc serves every allocation over 128 KiB with a fresh ``mmap`` and
the NumPy backend's per-tile temporaries page-fault on every use; the same
``backend.shift`` call was measured 2-7x slower in a worker than in the client
process on this 2-core machine, and as fast once the variable is unset.

Columns: ``fit`` is the whole ``fit`` (best of ``--repeat``), ``shift`` its
shift phase; ``rounds`` is the number of client round trips of the shift (1
for "seeds", one per iteration for "data"); ``tasks`` is the sum over rounds
of the slowest task of the round (one task per worker and round: the work
on the critical path);
``overhead/round`` is ``(shift - tasks) / rounds``: what one round costs
beyond its computation (submitting, scheduling, sending the seeds, gathering
the sums, the client's arithmetic). A second table gives that overhead alone,
measured with tiny data where the tasks take almost no time.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time

import numpy as np


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    return centers[rng.integers(0, 3, n)] + 0.4 * rng.standard_normal((n, 2))


def _check(ours, ref):
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_, (ours.n_iter_, ref.n_iter_)


def _best(fn, repeat):
    """Fastest of ``repeat`` calls, with what that call returned (and, for a
    distributed fit, a copy of its statistics: the estimator is refitted)."""
    best, out, stats = float("inf"), None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        if seconds < best:
            best, stats = seconds, dict(getattr(out, "_fit_stats", {}))
    return best, out, stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="points (2-D, three blobs)")
    ap.add_argument("--chunks", type=int, default=8, help="row chunks of the Dask array")
    ap.add_argument("--bandwidth", type=float, default=0.5)
    ap.add_argument("--kernel", default="gaussian", choices=["gaussian", "flat"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--unset-malloc-trim", action="store_true",
                    help="start the workers without distributed's MALLOC_TRIM_THRESHOLD_=65536")
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    import distributed
    from distributed import Client, LocalCluster

    import gpumeanshift.dask as gdask
    from gpumeanshift import MeanShift

    if args.unset_malloc_trim:
        # None removes the variable from the workers' environment.
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    trim = dask.config.get("distributed.nanny.pre-spawn-environ").get("MALLOC_TRIM_THRESHOLD_")

    X = _blobs(args.n)
    params = dict(bandwidth=args.bandwidth, kernel=args.kernel, bin_seeding=True)
    rows = []
    overhead_rows = []
    tiny = _blobs(2000, seed=1)
    for w in args.workers:
        # Dask workers run BLAS on one thread (distributed sets OMP/OPENBLAS_NUM_THREADS=1);
        # the single-machine baseline gets the same, so the columns compare like with like.
        def single():
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                return MeanShift(backend="numpy", n_jobs=w, **params).fit(X)
            with threadpool_limits(limits=1, user_api="blas"):
                return MeanShift(backend="numpy", n_jobs=w, **params).fit(X)

        single_s, ref, _ = _best(single, args.repeat)
        tiny_ref = MeanShift(backend="numpy", **params).fit(tiny)
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
                Client(lc) as client:
            Xd = client.persist(da.from_array(X, chunks=-(-args.n // args.chunks)))
            distributed.wait(Xd)
            tiny_d = client.persist(da.from_array(tiny, chunks=500))
            for strategy in ("seeds", "data"):
                model = gdask.MeanShift(backend="numpy", strategy=strategy, **params)
                model.fit(Xd)  # warm-up: imports and first-use costs on the workers
                fit_s, model, st = _best(lambda: model.fit(Xd), args.repeat)
                _check(model, ref)
                rows.append((w, strategy, fit_s, st["shift_seconds"], st["rounds"],
                             sum(st["task_seconds"]), st["overhead_per_round"], single_s,
                             model.n_iter_, len(model.cluster_centers_)))
            tiny_model = gdask.MeanShift(backend="numpy", strategy="data", **params)
            tiny_model.fit(tiny_d)
            runs = []
            for _ in range(max(3, args.repeat)):
                tiny_model.fit(tiny_d)
                st = tiny_model._fit_stats
                runs.append((st["shift_seconds"] / st["rounds"], st["overhead_per_round"],
                             st["rounds"]))
            _check(tiny_model, tiny_ref)
            per, ovh, rounds = min(runs)
            overhead_rows.append((w, 4, rounds, per, ovh))

    print(f"\n# gpumeanshift.dask, {args.n} x 2 points, {args.chunks} chunks, kernel={args.kernel}, "
          f"bin_seeding, bandwidth={args.bandwidth}")
    print(f"# {os.cpu_count()} cores, {platform.python_version()}, numpy {np.__version__}, "
          f"dask {dask.__version__}, distributed {distributed.__version__}; "
          f"workers' MALLOC_TRIM_THRESHOLD_={trim}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\n| workers | strategy | fit (s) | shift (s) | rounds | tasks (s) | overhead/round (ms)"
          " | single machine, n_jobs=workers, BLAS 1 thread (s) | n_iter | clusters |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, s, fit_s, shift_s, rounds, tasks, ovh, single_s, n_iter, k in rows:
        print(f"| {w} | {s} | {fit_s:.3f} | {shift_s:.3f} | {rounds} | {tasks:.3f} | "
              f"{1e3 * ovh:.1f} | {single_s:.3f} | {n_iter} | {k} |")
    print("\n# Scheduler overhead per iteration of strategy='data' (2,000 points, 4 chunks: "
          "tasks take ~1 ms)")
    print("\n| workers | chunks | rounds | wall per round (ms) | overhead/round (ms) |")
    print("|---|---|---|---|---|")
    for w, c, rounds, per, ovh in overhead_rows:
        print(f"| {w} | {c} | {rounds} | {1e3 * per:.1f} | {1e3 * ovh:.1f} |")


if __name__ == "__main__":
    main()
