#!/usr/bin/env python
"""Static quality report of the CUDA kernels (no GPU needed).

For every architecture and instantiation: registers, spill bytes, shared
memory (static + the dynamic tile the backend launches with) and theoretical
occupancy at the backend's 128-thread blocks, computed from the published
per-arch limits as cuda_occupancy.h does. Exits non-zero on any spill, or if
a main kernel (float32 ``ms_shift_fused``, every compile-time d <= 8 and the
generic path; float32 ``ms_shift_grid``, d <= 3) is below 50% theoretical
occupancy on sm_80 or sm_90.

``--memops`` adds, per architecture, static counts of the memory accesses in
the PTX of the shift kernels (``ms_shift_fused`` / ``ms_shift_partial``):
local, global and generic-address loads and stores (nvrtc.ptx_memory_ops).

    python bench/kernel_report.py [--arch 80 ...] [--from-json matrix.json] [--all] [--memops]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpumeanshift.backends.cuda import runtime as R  # noqa: E402
from gpumeanshift.testing import nvrtc as N  # noqa: E402

OCCUPANCY_FLOOR = 0.5
FLOOR_ARCHS = (80, 90)


def is_main(name: str) -> bool:
    """The shift kernels held to the occupancy floor: float32 fused (d <= 8,
    the bounded path for d <= 8 and the generic path) and float32 grid
    (d <= 3), unweighted and weighted."""
    mo = re.match(r"ms_shift_(fused|grid)<float, (-?\d+), \d(, (true|false))?>", name)
    return bool(mo) and abs(int(mo.group(2))) <= 8


# Families listed in full by default (the others: their worst instantiation).
SHOWN = ("ms_shift_fused", "ms_shift_grid", "ms_shift_fused weighted", "ms_shift_grid weighted")


def family(name: str) -> str:
    """``kernel_sum<float, 3, 0, true>`` -> "kernel_sum weighted": sample-weighted
    instantiations form families of their own."""
    return name.split("<")[0] + (" weighted" if R.is_weighted(name) else "")


def _one(arch):
    return arch, [asdict(k) for k in N.compile_arch(arch)[0]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, action="append")
    ap.add_argument("--from-json", help="output of ci/compile_kernels.py --json")
    ap.add_argument("--all", action="store_true", help="one row per instantiation "
                    "(default: every shift kernel, and the worst of each other family)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--memops", action="store_true",
                    help="also count memory accesses in the shift kernels' PTX")
    args = ap.parse_args(argv)
    archs = args.arch or list(N.ARCHS)
    if args.from_json:
        data = {int(a): v for a, v in json.loads(Path(args.from_json).read_text()).items()}
    else:
        with ProcessPoolExecutor(max(1, args.jobs)) as ex:
            data = dict(ex.map(_one, archs))
    problems = []
    print(f"block = {R.BLOCK} threads; occupancy = resident warps / max warps per SM")
    for arch in archs:
        rows = data[arch]
        print(f"\n== sm_{arch} ==")
        print(f"{'instantiation':39s} {'regs':>4s} {'spill st/ld':>11s} {'stack':>5s} "
              f"{'smem B':>7s} {'occup':>6s}")
        shown = set()
        fam_worst = {}
        for k in rows:
            smem = N.shared_bytes(k["name"]) + k["static_smem"]
            occ = N.occupancy(arch, k["registers"], R.BLOCK, smem)
            k["_smem"], k["_occ"] = smem, occ
            if k["spill_stores"] or k["spill_loads"]:
                problems.append(f"sm_{arch} {k['name']}: spills {k['spill_stores']}/"
                                f"{k['spill_loads']} bytes")
            if arch in FLOOR_ARCHS and is_main(k["name"]) and occ < OCCUPANCY_FLOOR:
                problems.append(f"sm_{arch} {k['name']}: occupancy {occ:.0%} < 50%")
            fam = family(k["name"])
            if fam not in fam_worst or occ < fam_worst[fam]["_occ"]:
                fam_worst[fam] = k
        for k in rows:
            fam = family(k["name"])
            if not (args.all or fam in SHOWN or fam_worst[fam] is k
                    or k["spill_stores"] or k["spill_loads"]):
                continue
            if k["name"] in shown:
                continue
            shown.add(k["name"])
            tag = " *main" if is_main(k["name"]) else ""
            if not args.all and fam_worst[fam] is k and fam not in SHOWN:
                tag += " (worst of family)"
            print(f"{k['name']:39s} {k['registers']:4d} "
                  f"{k['spill_stores']:5d}/{k['spill_loads']:<5d} {k['stack']:5d} "
                  f"{k['_smem']:7d} {k['_occ']:6.1%}{tag}")
        n_spill = sum(1 for k in rows if k["spill_stores"] or k["spill_loads"])
        main_occ = [k["_occ"] for k in rows if is_main(k["name"])]
        print(f"sm_{arch}: {len(rows)} kernels, {n_spill} with spills, main kernel "
              f"occupancy min {min(main_occ):.1%} max {max(main_occ):.1%}")
    if args.memops:
        names = [n for n in R.kernel_names()
                 if n.startswith(("ms_shift_fused<", "ms_shift_partial<"))]
        for arch in archs:
            print(f"\n== sm_{arch}: memory accesses in the PTX (static counts) ==")
            print(f"{'instantiation':42s} {'ld/st.local':>11s} {'ld/st.generic':>13s} "
                  f"{'ld/st.global':>12s}")
            for name, c in N.ptx_memory_ops(arch, names).items():
                print(f"{name:42s} {c['ld.local']:5d}/{c['st.local']:<5d} "
                      f"{c['ld.generic']:6d}/{c['st.generic']:<6d} "
                      f"{c['ld.global']:5d}/{c['st.global']:<6d}")
    if problems:
        print("\nFAIL:\n  " + "\n  ".join(problems))
        return 1
    print("\nOK: no spills; main kernel occupancy >= 50% on "
          + ", ".join(f"sm_{a}" for a in FLOOR_ARCHS if a in archs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
