#!/usr/bin/env python
"""Compile matrix: every kernel instantiation, every supported architecture.

Compiles the assembled ``kernels/*.cu`` with NVRTC 12.9 (pip wheels, no GPU
needed) for sm_70 ... sm_120, with the options NVRTC gets at run time (the
runtime's ``NVRTC_OPTIONS`` plus the ``CUPY_APPENDED_OPTIONS`` CuPy adds) and every name expression
the backend may launch, down to a cubin (so ptxas runs too). Exits non-zero
on any failure.

``--modules`` compiles each of the runtime's modules on its own instead (one
per kernel family, dtype and weighted flag: what CuPy compiles at a first
launch) and prints their compile times, the first-call cost on a GPU.

    pip install "cuda-bindings==12.9.*" "nvidia-cuda-nvrtc-cu12==12.9.86"
    python ci/compile_kernels.py [--arch 80 ...] [--json out.json] [--jobs 2] [--modules]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpumeanshift.backends.cuda import runtime as R  # noqa: E402
from gpumeanshift.testing import nvrtc as N  # noqa: E402


def _one(arch: int):
    t0 = time.perf_counter()
    infos, _log = N.compile_arch(arch)
    return arch, [asdict(k) for k in infos], time.perf_counter() - t0


def _modules(arch: int):
    """Per module: (key, instantiations, wall seconds, CPU seconds of this
    process). NVRTC compiles in the calling thread, so the CPU time is the
    compile's own work even on a loaded machine."""
    rows = []
    for key in R.module_keys():
        names = R.module_names(key)
        t0, c0 = time.perf_counter(), time.process_time()
        N.compile_arch(arch, names=names)
        rows.append((key, len(names), time.perf_counter() - t0, time.process_time() - c0))
    return arch, rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, action="append", help="default: all supported")
    ap.add_argument("--json", help="write per-kernel resource usage here")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--modules", action="store_true",
                    help="compile module by module (as CuPy does at run time); print their times")
    args = ap.parse_args(argv)
    archs = args.arch or list(N.ARCHS)
    if args.modules:
        with ProcessPoolExecutor(max(1, args.jobs)) as ex:
            for arch, rows in ex.map(_modules, archs):
                for (fam, first, w), n, dt, cpu in rows:
                    print(f"sm_{arch}: {fam}<{first}>{' weighted' if w else ''}: "
                          f"{n} instantiations, {dt:.2f} s (CPU {cpu:.2f} s)")
                print(f"sm_{arch}: {len(rows)} modules, {sum(r[1] for r in rows)} "
                      f"instantiations, {sum(r[2] for r in rows):.1f} s in all "
                      f"(CPU {sum(r[3] for r in rows):.1f} s), largest "
                      f"{max(r[2] for r in rows):.2f} s (CPU {max(r[3] for r in rows):.2f} s)")
        return 0
    print(f"NVRTC {'.'.join(map(str, N.nvrtc_version()))} from {N._load_nvrtc()[1]}")
    print(f"options {' '.join(R.NVRTC_OPTIONS + R.CUPY_APPENDED_OPTIONS)} --gpu-architecture=sm_XX "
          f"--ptxas-options=-v; {len(R.kernel_names())} instantiations "
          f"({sum(map(R.is_weighted, R.kernel_names()))} with sample weights) x "
          f"{len(archs)} architectures")
    results, failed = {}, []
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        futs = {a: ex.submit(_one, a) for a in archs}
        for a, f in futs.items():
            try:
                arch, infos, dt = f.result()
            except Exception as exc:  # report every arch, then fail
                failed.append(a)
                print(f"sm_{a}: FAILED\n{exc}")
                continue
            results[str(arch)] = infos
            print(f"sm_{arch}: {len(infos)} kernels compiled in {dt:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if failed:
        print(f"compile matrix FAILED for {['sm_%d' % a for a in failed]}")
        return 1
    print(f"compile matrix OK: {len(R.kernel_names())} x {len(archs)} = "
          f"{len(R.kernel_names()) * len(archs)} kernel builds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
