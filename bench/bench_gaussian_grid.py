"""The Gaussian kernel on large 2-D data: "auto" (the proven cell grid) against brute force.

    python bench/bench_gaussian_grid.py                  # 100,000 and 1,000,000 points
    python bench/bench_gaussian_grid.py --repeat 3       # fastest of 3 (brute force runs once)
    python bench/bench_gaussian_grid.py --n 30000 --big 0  # a quick look

The race's hotspot data (``_cases.hotspot``, bandwidth 2),
every point a seed, NumPy backend, ``MeanShift(kernel="gaussian")``. At
``--n`` points brute force (``algorithm="brute"``) and ``"auto"`` run side by
side in one process and their results are compared: same number of
clusters, centers within ``--atol`` bandwidths (rounding: 1e-12), identical
labels and ``n_iter_``; a mismatch exits with status 1. At ``--big`` points
(brute force would take hours there) ``"auto"`` with the Gaussian is timed
beside the flat kernel's ``"auto"`` (the grid) on the same data. Times are
wall clock, the process CPU time of the same fit beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cases  # noqa: E402
import _machine  # noqa: E402
from _cases import hotspot  # noqa: E402

BANDWIDTH = _cases.DATASETS["hotspot"].bandwidth  # the race's hotspot bandwidth, 2


def _fit(X, kernel, algorithm):
    from gpumeanshift.backends.numpy.backend import NumpyBackend

    be = NumpyBackend()
    model = _cases.fit_gpumeanshift(X, BANDWIDTH, kernel=kernel, algorithm=algorithm, backend=be)
    return model, getattr(be, "_exact_steps", 0)


def _best(fn, repeat):
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def _fmt(wall, cpu):
    f = (lambda s: f"{s:.2f} s" if s < 10 else f"{s:.1f} s")
    return f"{f(wall)} (CPU {f(cpu)})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="points of the side-by-side case")
    ap.add_argument("--big", type=int, default=1_000_000,
                    help="points of the Gaussian-beside-flat case (0: skip)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="best of N for the fast fits; brute force runs once")
    ap.add_argument("--atol", type=float, default=1e-12,
                    help="agreement of centers, in bandwidths (default 1e-12)")
    args = ap.parse_args(argv)
    _fit(hotspot(3000), "gaussian", "auto")  # imports and first-call costs
    rows, ok = [], True
    X = hotspot(args.n)
    tb, cb, (brute, _) = _best(lambda: _fit(X, "gaussian", "brute"), 1)
    print(f"# brute force, {args.n}: {tb:.1f} s", file=sys.stderr)
    ta, ca, (auto, n_exact) = _best(lambda: _fit(X, "gaussian", "auto"), args.repeat)
    print(f"# auto, {args.n}: {ta:.1f} s", file=sys.stderr)
    cmp = _cases.fit_difference(auto, brute)
    diff = cmp.max_center_diff / BANDWIDTH
    same_labels = cmp.same_labels
    ok &= cmp.same(args.atol * BANDWIDTH)
    k = len(brute.cluster_centers_)
    rows.append((f"{args.n:,}", "Gaussian, brute", _fmt(tb, cb), "1.0x", f"{k}",
                 "-", "-", f"{brute.n_iter_}"))
    rows.append((f"{args.n:,}", f"Gaussian, auto ({auto.algorithm_})", _fmt(ta, ca),
                 f"{tb / ta:.1f}x (CPU {cb / ca:.1f}x)", f"{len(auto.cluster_centers_)}",
                 f"{diff:.1e}", "yes" if same_labels else "**no**",
                 f"{auto.n_iter_} ({n_exact} exact steps)"))
    if args.big:
        Xb = hotspot(args.big)
        tf, cf, (flat, _) = _best(lambda: _fit(Xb, "flat", "auto"), args.repeat)
        print(f"# flat, {args.big}: {tf:.1f} s", file=sys.stderr)
        tg, cg, (gauss, n_exact) = _best(lambda: _fit(Xb, "gaussian", "auto"), args.repeat)
        print(f"# gaussian, {args.big}: {tg:.1f} s", file=sys.stderr)
        rows.append((f"{args.big:,}", f"flat, auto ({flat.algorithm_})", _fmt(tf, cf), "-",
                     f"{len(flat.cluster_centers_)}", "-", "-", f"{flat.n_iter_}"))
        rows.append((f"{args.big:,}", f"Gaussian, auto ({gauss.algorithm_})", _fmt(tg, cg),
                     f"{tg / tf:.1f}x the flat kernel's time", f"{len(gauss.cluster_centers_)}",
                     "-", "-", f"{gauss.n_iter_} ({n_exact} exact steps)"))

    info = _machine.machine_info()
    print(f"Hotspot data, bandwidth {BANDWIDTH:g}, every point a seed, NumPy backend; "
          f"{info['cores']} cores ({info['cpu']}), NumPy {info['numpy']}; load average at "
          f"the end {info['load average (1/5/15 min)']}. Brute force once, the others best "
          f"of {max(1, args.repeat)}. Center differences in bandwidths, against brute force.")
    print()
    header = ("n", "kernel, algorithm", "time", "speed-up", "clusters", "max center diff",
              "same labels", "n_iter_")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not ok:
        print(f"\nauto and brute force DIFFER beyond {args.atol:g} bandwidths", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
