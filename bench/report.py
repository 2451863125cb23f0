"""Run the four speed cases of issue 2 once each and print a markdown table.

    python bench/report.py               # the table for the README
    python bench/report.py --repeat 3    # best of 3 for every in-process timing
    python bench/report.py --diagnostics # also n_jobs=1 and BLAS limited to 1 thread
    python bench/report.py --floor       # also what case 3's passes cost per pair

The cases and their checks are those of the pytest-benchmark suite
(``bench/_cases.py``): the same data, the same fits, the same assertions
(same clusters as scikit-learn), timed here with ``time.perf_counter``.
Times are wall-clock seconds of the fit alone (data generation and the
bandwidth estimate excluded), with the process CPU time of the same fit beside
them (summed over threads; on a shared machine it is far less disturbed than
the wall time); with ``--repeat N`` the fastest of N runs.
scikit-learn runs with its defaults (``n_jobs=None``: one process).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cases  # noqa: E402
import _machine  # noqa: E402


class Timing:
    """Fastest wall time of the runs, and the fastest process CPU time (all threads)."""

    def __init__(self, wall=float("inf"), cpu=float("inf")):
        self.wall, self.cpu = wall, cpu


def _best(fn, repeat):
    best, out = Timing(), None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best.wall = min(best.wall, time.perf_counter() - w0)
        best.cpu = min(best.cpu, time.process_time() - c0)
    return best, out


def _blas_limit(n):
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _fmt_s(s):
    return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def _fmt_t(t):
    return f"{_fmt_s(t.wall)} (CPU {_fmt_s(t.cpu)})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1,
                    help="best of N runs for each in-process timing (default 1)")
    ap.add_argument("--diagnostics", action="store_true",
                    help="also time n_jobs=1 and the default under threadpool_limits(1)")
    ap.add_argument("--skip-memory", action="store_true", help="skip case 4 (1M points)")
    ap.add_argument("--floor", action="store_true",
                    help="also the single-thread cost per pair of case 3's three passes "
                         "and the pairs/s they allow on this machine's cores")
    args = ap.parse_args(argv)
    r = max(1, args.repeat)

    variants = [("", {}, None)]
    if args.diagnostics:
        variants += [(" (n_jobs=1)", {"n_jobs": 1}, None), (" (BLAS 1 thread)", {}, 1)]

    # Warm both libraries (imports, first-call costs) on a small problem.
    Xw, hw = _cases.blobs_and_bandwidth(1000)
    _cases.fit_sklearn(Xw, hw)
    _cases.fit_gpumeanshift(Xw, hw)

    rows = []
    for label, n, bin_seeding, target in (
        ("1. all points as seeds, 10,000 x 2-D, flat", _cases.N_ALL_SEEDS, False,
         _cases.TARGET_ALL_SEEDS),
        ("2. bin seeding, 100,000 x 2-D, flat", _cases.N_BIN_SEEDING, True,
         _cases.TARGET_BIN_SEEDING),
    ):
        X, h = _cases.blobs_and_bandwidth(n)
        t_sk, ref = _best(lambda: _cases.fit_sklearn(X, h, bin_seeding=bin_seeding), r)
        for suffix, opts, blas in variants:
            def run():
                with _blas_limit(blas):
                    return _cases.fit_gpumeanshift(X, h, bin_seeding=bin_seeding, **opts)
            t_ours, ours = _best(run, r)
            _cases.assert_same_clusters(ours, ref)
            ratio = t_sk.wall / t_ours.wall
            rows.append((label + suffix, _fmt_t(t_ours), _fmt_t(t_sk),
                         f"{ratio:.1f}x (CPU {t_sk.cpu / t_ours.cpu:.1f}x)",
                         f">= {target:g}x", "yes" if ratio >= target else "**no**"))
            print(f"# {rows[-1][0]}: {rows[-1][1]} vs {rows[-1][2]}", file=sys.stderr)

    for d in _cases.THROUGHPUT_DIMS:
        for dtype in _cases.THROUGHPUT_DTYPES:
            case = _cases.throughput_case(d, dtype)
            for suffix, opts, blas in variants:
                from gpumeanshift.backends.numpy.backend import NumpyBackend

                be = NumpyBackend(n_threads=opts.get("n_jobs"))

                def run():
                    with _blas_limit(blas):
                        return _cases.run_shift(case, be)
                t, res = _best(run, r)
                _cases.check_shift(case, res)
                rate = case.pairs(res) / t.wall
                target = _cases.TARGET_PAIRS_PER_S if d <= 16 else None
                rows.append((
                    f"3. Gaussian shift step, d={d}, {dtype}{suffix}",
                    f"{_fmt_t(t)}: {rate:.2e} pairs/s", "n/a (no Gaussian kernel)", "n/a",
                    ">= 1e9 pairs/s" if target else "(reported)",
                    ("yes" if rate >= target else "**no**") if target else "-"))
                print(f"# {rows[-1][0]}: {rows[-1][1]}", file=sys.stderr)

    if not args.skip_memory:
        ours = _cases.run_memory_child("gpumeanshift")
        ref = _cases.run_memory_child("sklearn")
        import numpy as np

        np.testing.assert_allclose(ours["centers"], ref["centers"], rtol=0, atol=1e-9)
        peak = ours["peak_rss_bytes"]
        rows.append((
            "4. bin seeding, 1,000,000 x 2-D, flat (fresh process)",
            f"{_fmt_s(ours['seconds'])} (CPU {_fmt_s(ours['cpu_seconds'])}), "
            f"peak RSS {peak / 2**20:.0f} MB",
            f"{_fmt_s(ref['seconds'])} (CPU {_fmt_s(ref['cpu_seconds'])}), "
            f"peak RSS {ref['peak_rss_bytes'] / 2**20:.0f} MB",
            f"{ref['seconds'] / ours['seconds']:.1f}x "
            f"(CPU {ref['cpu_seconds'] / ours['cpu_seconds']:.1f}x)",
            "peak RSS < 2 GB", "yes" if peak < _cases.TARGET_PEAK_BYTES else "**no**"))

    info = _machine.machine_info()
    print(f"Measured on {info['cores']} cores ({info['cpu']}); Python {info['python']}, "
          f"NumPy {info['numpy']}, scikit-learn {info['scikit-learn']}, "
          f"gpumeanshift {info['gpumeanshift']}; BLAS: {info['blas']}; "
          f"load average at the end {info['load average (1/5/15 min)']}. "
          f"Best of {r} run(s) per in-process timing. Times are wall clock; (CPU ...) "
          f"is the process CPU time of the same run summed over its threads, which a "
          f"loaded machine inflates far less than wall time; the CPU ratio credits "
          f"gpumeanshift nothing for using two cores. Peak RSS is the child "
          f"process's ru_maxrss (whole process).")
    print()
    print("Machine speed at the time (single thread): "
          + "; ".join(f"{k} {v}" for k, v in _machine.calibration().items()) + ".")
    print()
    header = ("case", "gpumeanshift (NumPy)", "scikit-learn", "ratio", "target", "met?")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    if args.floor:
        print()
        print("Case 3, one core per pair (ns, best of 20, BLAS 1 thread), and the most "
              f"pairs/s that leaves {info['cores']} cores with nothing else to do:")
        print()
        print("| d, dtype | distances (product) | exp | sums (product) | total "
              "| ceiling, pairs/s |")
        print("|---|---|---|---|---|---|")
        for d in (2, 16):
            for dtype in _cases.THROUGHPUT_DTYPES:
                c = _machine.pass_costs(d, dtype)
                print(f"| {d}, {dtype} | {c['distances']:.2f} | {c['exp']:.2f} | "
                      f"{c['sums']:.2f} | {c['total']:.2f} | "
                      f"{info['cores'] / c['total'] * 1e9:.2e} |")


if __name__ == "__main__":
    main()
