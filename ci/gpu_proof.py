#!/usr/bin/env python
"""One-shot proof of the GPU path, writing a JSON + Markdown report as it goes.

    python ci/gpu_proof.py [--emulated] [--out DIR] [--budget SECONDS]

Six steps, each appended to ``DIR/report.json`` and ``DIR/report.md`` when it
finishes (so a run cut short still leaves every finished step on disk):

1. install and compile: the install time (measured by ``ci/gpu.sh``), the time
   of the first call in two fresh processes (cold, then warm compile cache),
   per-kernel registers / local memory / max threads of the loaded functions;
2. the ``tests/cuda`` suite on real CuPy;
3. ``compute-sanitizer`` memcheck, racecheck, synccheck and initcheck on a
   driver that launches every kernel family once (when the tool is installed);
4. streams and determinism: one fit on several streams, twice each, bit-identical;
5. limits and numerics: the far-seed cases against the NumPy backend (a known
   defect: reported, not failed) and a count over 2**31 - 1 rows;
6. speed: pairs per second of the fused, grid and split kernels beside the
   NumPy backend, and two whole fits against scikit-learn.

``--emulated`` runs every step on the CPU emulator at tiny sizes, so that the
script itself is tested in CI; checks that need real hardware are recorded as
"n/a on the emulator" instead of being run. The exit status is 1 when a check
failed (a "differs" result of a known defect does not count), else 0.

Internal entry points (run in child processes): ``--probe-compile``,
``--driver``, ``--probe-fit``, ``--probe-count``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # bench/_cases.py; appended: it has a conftest.py
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

NA = "n/a on the emulator"
H100_LIMIT = 4.2e12  # README: pair evaluations per second for d <= 2 on an H100-class GPU
N_LIMIT = 2**31 - 1
# Check statuses, in the summary's column order.
ORDER = ("ok", "n/a", "skipped", "differs", "fail")
# A step takes the worst status of its checks; "n/a" only when nothing else ran.
RANK = {"n/a": 0, "ok": 1, "skipped": 2, "differs": 3, "fail": 4}

# Problem sizes: (GPU, emulator).
SIZES = {
    "gpu": dict(fit_n=20_000, fused_n=1_000_000, fused_m=100_000, fused_n_hi=200_000,
                fused_m_hi=20_000, numpy_m=100, grid_n=1_000_000, grid_m=100_000,
                split_n=1_000_000, hot_n=1_000_000, sk_seeds=300, all_seeds_n=10_000,
                count_check_n=N_LIMIT, iters=10, rounds=2),
    "emulated": dict(fit_n=300, fused_n=1_000, fused_m=128, fused_n_hi=500, fused_m_hi=64,
                     numpy_m=16, grid_n=1_000, grid_m=128, split_n=2_048, hot_n=1_000,
                     sk_seeds=20, all_seeds_n=200, count_check_n=2**12 + 1, iters=2, rounds=1),
}


# ------------------------------------------------------------------ backends
def make_backend(emulated: bool, **options):
    """The CUDA backend on the emulator or on the current GPU."""
    if emulated:
        from gpumeanshift.testing import emulated_backend

        options.pop("stream", None)
        return emulated_backend(**options)
    from gpumeanshift.backends.cuda.backend import make_cupy_backend

    return make_cupy_backend(**options)


def sync(emulated: bool) -> None:
    if not emulated:
        import cupy

        cupy.cuda.Device().synchronize()


def host(a) -> np.ndarray:
    get = getattr(a, "get", None)
    return np.asarray(get() if callable(get) and not isinstance(a, np.ndarray) else a)


def fit_digest(model) -> str:
    """sha256 of the fitted centers, labels and iteration count (bit-exact)."""
    h = hashlib.sha256()
    for a in (host(model.cluster_centers_), host(model.labels_), np.int64(model.n_iter_)):
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _fit_case(n: int):
    rng = np.random.default_rng(0)
    C = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    X = (C[rng.integers(0, 3, n)] + rng.normal(0, 0.7, (n, 3))).astype(np.float32)
    return X, 1.5


def determinism_fit(backend, n: int):
    from gpumeanshift import MeanShift

    X, h = _fit_case(n)
    return MeanShift(bandwidth=h, kernel="gaussian", backend=backend).fit(X)


# ------------------------------------------------------------------ report
class Report:
    """report.json (rewritten atomically after every step) and report.md (appended)."""

    def __init__(self, out: Path, emulated: bool):
        self.dir = out
        out.mkdir(parents=True, exist_ok=True)
        self.json_path = out / "report.json"
        self.md_path = out / "report.md"
        self.data = {"mode": "emulated" if emulated else "gpu",
                     "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "python": sys.version.split()[0], "platform": platform.platform(),
                     "steps": [], "running": None, "finished": False}
        self._write_json()
        self.md_path.write_text(
            f"# GPU proof run ({self.data['mode']})\n\nStarted {self.data['started_utc']} "
            f"on {platform.node()} ({self.data['platform']}, Python {self.data['python']}).\n")

    def _write_json(self) -> None:
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        os.replace(tmp, self.json_path)

    def start(self, number: int, title: str) -> None:
        self.data["running"] = {"step": number, "title": title,
                                "since_utc": time.strftime("%H:%M:%SZ", time.gmtime())}
        self._write_json()
        print(f"== step {number}: {title}", flush=True)

    def add(self, section: dict) -> None:
        self.data["steps"].append(section)
        self.data["running"] = None
        self._write_json()
        lines = [f"\n## {section['step']}. {section['title']}: **{section['status']}** "
                 f"({section['seconds']:.1f} s)\n"]
        if section.get("error"):
            lines.append(f"\n```\n{section['error'][-3000:]}\n```\n")
        rows = section.get("checks", [])
        if rows:
            lines.append("\n| check | status | result |\n|---|---|---|\n")
            for r in rows:
                lines.append(f"| {r['check']} | {r['status']} | {_md(r.get('detail', ''))} |\n")
        for name, table in section.get("tables", {}).items():
            if not table:
                continue
            cols = list(table[0])
            lines.append(f"\n{name}:\n\n| " + " | ".join(cols) + " |\n|"
                         + "---|" * len(cols) + "\n")
            for row in table:
                lines.append("| " + " | ".join(_md(_fmt(row.get(c, ""))) for c in cols) + " |\n")
        with self.md_path.open("a") as f:
            f.writelines(lines)
        for r in rows:
            print(f"   [{r['status']}] {r['check']}: {r.get('detail', '')}", flush=True)

    def finish(self, seconds: float) -> str:
        self.data["finished"] = True
        self.data["seconds"] = seconds
        self._write_json()
        table = summary_table(self.data["steps"])
        with self.md_path.open("a") as f:
            f.write(f"\n## Summary ({seconds:.0f} s)\n\n{table}\n")
        return table


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def summary_table(steps) -> str:
    out = ["| step | status | s | checks ok / n/a / skipped / differs / fail |",
           "|---|---|---|---|"]
    for s in steps:
        c = {k: 0 for k in ORDER}
        for r in s.get("checks", []):
            c[r["status"]] += 1
        out.append(f"| {s['step']}. {s['title']} | {s['status']} | {s['seconds']:.1f} | "
                   + " / ".join(str(c[k]) for k in ORDER) + " |")
    return "\n".join(out)


class Step:
    """Checks of one step: ``check(name, status, detail, **data)``."""

    def __init__(self, number, title):
        self.number, self.title = number, title
        self.checks: list[dict] = []
        self.tables: dict[str, list] = {}

    def check(self, name, status, detail="", **data):
        assert status in ORDER, status
        self.checks.append({"check": name, "status": status, "detail": detail, **data})

    def status(self) -> str:
        if not self.checks:
            return "fail"  # a step that checked nothing proves nothing
        return max((c["status"] for c in self.checks), key=RANK.__getitem__)


def run_child(args, *, timeout, env=None, cwd=ROOT):
    """(returncode or None on timeout, combined output)."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})}, cwd=cwd)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out


def last_json(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in the child's output:\n{text[-2000:]}")


def self_cmd(emulated, *extra):
    return [sys.executable, str(Path(__file__).resolve()), *extra] + (
        ["--emulated"] if emulated else [])


# ------------------------------------------------------------------ step 1
def step_install_compile(st: Step, ctx):
    emu = ctx.emulated
    if emu:
        st.check("pip install .[test,cuda12]", "n/a", NA + " (the CI environment has .[test])")
    else:
        t, rc = os.environ.get("GPU_PROOF_INSTALL_S"), os.environ.get("GPU_PROOF_INSTALL_RC")
        if t is None:
            st.check("pip install .[test,cuda12]", "skipped", "not run by ci/gpu.sh (--no-install)")
        else:
            st.check("pip install .[test,cuda12]", "ok" if rc == "0" else "fail",
                     f"{float(t):.1f} s, exit {rc}", seconds=float(t))
        import cupy

        p = cupy.cuda.runtime.getDeviceProperties(0)
        ctx.device = {"name": p["name"].decode(), "sm": f"{p['major']}{p['minor']}",
                      "cupy": cupy.__version__,
                      "runtime": cupy.cuda.runtime.runtimeGetVersion(),
                      "driver": cupy.cuda.runtime.driverGetVersion(),
                      "memory_bytes": int(p["totalGlobalMem"])}
        ok = p["major"] >= 7
        st.check("device", "ok" if ok else "fail",
                 f"{ctx.device['name']} sm_{ctx.device['sm']}, CuPy {cupy.__version__}, "
                 f"runtime {ctx.device['runtime']}, driver {ctx.device['driver']}", **ctx.device)
    # First call in two fresh processes sharing one (initially empty) compile cache.
    labels = (("cold cache", "warm cache") if not ctx.reuse_cache else
              ("first process (cache reused: not a cold compile)", "second process"))
    for label in labels:
        rc, out = run_child(self_cmd(emu, "--probe-compile"), timeout=ctx.left(180, reserve=250))
        if rc != 0:
            st.check(f"first call, fresh process, {label}", "fail", f"exit {rc}: {out[-800:]}")
            continue
        r = last_json(out)
        st.check(f"first call, fresh process, {label}", "ok",
                 f"import {r['import_s']:.2f} s, first call {r['first_call_s']:.2f} s, "
                 f"second call {r['second_call_s']:.3f} s", **r)
    from gpumeanshift.backends.cuda import runtime as R

    names = R.kernel_names()
    if emu:
        from gpumeanshift.testing import EmulatedRuntime

        rt = EmulatedRuntime()
        missing = [n for n in names if not isinstance(rt.signature(n), list)]
        st.check("every instantiation resolves in the loaded library",
                 "ok" if not missing else "fail", f"{len(names)} names, missing {missing[:5]}")
        st.check("registers / local memory / max threads per kernel", "n/a",
                 NA + " (bench/kernel_report.py gives NVRTC's static figures)")
        return
    rows = []
    for n in names:
        f = R.cupy_function(n)
        rows.append({"kernel": n, "registers": func_attr(f, "num_regs", 4),
                     "local_bytes": func_attr(f, "local_size_bytes", 3),
                     "max_threads": func_attr(f, "max_threads_per_block", 0),
                     "static_shared": func_attr(f, "shared_size_bytes", 1)})
    ctx.kernel_attrs = rows
    low = [r["kernel"] for r in rows if r["max_threads"] < R.BLOCK]
    st.check(f"max threads per block >= {R.BLOCK} (the launch block)",
             "ok" if not low else "fail", f"{len(rows)} kernels; below: {low[:5]}")
    local = [f"{r['kernel']} ({r['local_bytes']} B)" for r in rows if r["local_bytes"]]
    st.check("local memory per thread", "ok",
             f"{len(local)} of {len(rows)} kernels use local memory: {', '.join(local[:6])}")
    fams: dict[str, dict] = {}
    for r in rows:
        fam = r["kernel"].split("<")[0]
        w = fams.setdefault(fam, {"family": fam, "kernels": 0, "max registers": 0,
                                  "max local B": 0, "min max threads": 1 << 30})
        w["kernels"] += 1
        w["max registers"] = max(w["max registers"], r["registers"])
        w["max local B"] = max(w["max local B"], r["local_bytes"])
        w["min max threads"] = min(w["min max threads"], r["max_threads"])
    st.tables["per family (every instantiation in report.json)"] = list(fams.values())
    st.tables["_all_kernels"] = rows


def func_attr(f, name: str, cu_attribute: int) -> int:
    """An attribute of a loaded function: CuPy's property, else cuFuncGetAttribute."""
    v = getattr(f, name, None)
    if v is None:
        import cupy

        v = cupy.cuda.driver.funcGetAttribute(cu_attribute, f.ptr)
    return int(v)


def probe_compile(emulated: bool) -> None:
    t0 = time.perf_counter()
    be = make_backend(emulated)
    t1 = time.perf_counter()
    X = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    kw = dict(bandwidth=1.0, kernel="gaussian", max_iter=5, tol=1e-3)
    be.shift(X, X[:32], **kw)
    sync(emulated)
    t2 = time.perf_counter()
    be.shift(X, X[:32], **kw)
    sync(emulated)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "second_call_s": t3 - t2}))


# ------------------------------------------------------------------ step 2
# The emulated run checks the plumbing on a few fast tests; CI's own pytest
# run covers the emulated suite in full.
EMULATED_SUITE = ["tests/cuda/test_cuda_runtime.py", "-k",
                  "assembled or name_expression or ptxas", "-m", "not gpu"]


def step_suite(st: Step, ctx):
    junit = ctx.out / "tests-cuda.xml"
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
            "-rs", "-q", f"--junitxml={junit}"]
    args += EMULATED_SUITE if ctx.emulated else ["tests/cuda", "-m", "gpu"]
    rc, out = run_child(args, timeout=ctx.left(240, reserve=200))
    (ctx.out / "tests-cuda.log").write_text(out)
    what = "tests/cuda (a few emulated tests)" if ctx.emulated else "tests/cuda -m gpu (CupyRuntime)"
    if rc is None:
        st.check(what, "fail", f"timed out; log in tests-cuda.log: {out[-300:]}")
        return
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    try:
        root = ET.parse(junit).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        for s in suites:
            for k in counts:
                counts[k] += int(s.get(k, 0))
    except (OSError, ET.ParseError) as exc:
        st.check(what, "fail", f"exit {rc}, no JUnit report ({exc}): {out[-300:]}")
        return
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = rc == 0 and passed > 0 and not counts["failures"] and not counts["errors"]
    st.check(what, "ok" if ok else "fail",
             f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
             f"{counts['skipped']} skipped (exit {rc})", **counts)
    if not ctx.emulated:
        st.check("no CupyRuntime case skipped", "ok" if counts["skipped"] == 0 else "fail",
                 f"{counts['skipped']} skipped")
    else:
        st.check("CupyRuntime cases", "n/a", NA + " (deselected with -m 'not gpu')")


# ------------------------------------------------------------------ step 3
def families() -> set[str]:
    from gpumeanshift.backends.cuda import runtime as R

    return {n.split("<")[0] for n in R.kernel_names()}


def driver(emulated: bool) -> None:
    """Launch every kernel family once on small inputs; print the families launched."""
    from gpumeanshift.backends.cuda.backend import CudaBackend

    be = make_backend(emulated)
    rt = be.runtime
    launched: set[str] = set()
    orig = rt.launch

    def counting(name, *a, **k):
        launched.add(name)
        return orig(name, *a, **k)

    rt.launch = counting
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    kw = dict(kernel="gaussian", max_iter=10, tol=1e-3)
    be.shift(X, X[:40], bandwidth=0.8, **kw)                                  # fused, compact
    CudaBackend(rt, split=True, n_splits=3).shift(X, X[:40], bandwidth=0.8, **kw)  # split
    be.shift(X, X[:40], bandwidth=0.8, kernel="flat", max_iter=10, tol=1e-3,
             algorithm="grid")                                                # cell list
    be.shift(X.astype(np.float64), X[:8].astype(np.float64), bandwidth=0.8, **kw)
    X6 = rng.normal(size=(200, 6)).astype(np.float32)
    be.shift(X6, X6[:20], bandwidth=1.5, **kw)                # bounded path (d = 6 <= 8)
    be.nearest(X, X[:5])
    be.count_within(X, X[:7], 0.5)
    be.kth_neighbor_distance(X, X[:7], 3)
    be.segment_sums(np.arange(10.0), np.array([0, 4]))
    be.kernel_sum(X, X[:7], bandwidth=0.8, kernel="gaussian")
    be.log_kernel_density(X, X[:7], bandwidth=0.8, kernel="gaussian")
    img = rng.integers(0, 256, size=(12, 10, 3)).astype(np.uint8)
    be.filter_image(rt.asarray(img), 2, 16.0, max_iter=3)
    prob = rng.integers(0, 256, size=(24, 20)).astype(np.uint8)
    be.track_windows(rt.asarray(prob), rt.asarray(np.array([[3, 4, 8, 6]], np.int32)),
                     n_iter=5, eps2=1.0)
    sync(emulated)
    print(json.dumps({"launched": sorted(launched)}))


SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")


def find_sanitizer():
    for cand in (shutil.which("compute-sanitizer"),
                 os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin",
                              "compute-sanitizer"),
                 "/usr/local/cuda/bin/compute-sanitizer"):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def step_sanitizer(st: Step, ctx):
    rc, out = run_child(self_cmd(ctx.emulated, "--driver"), timeout=ctx.left(120, reserve=100))
    if rc != 0:
        st.check("driver: every kernel family once", "fail", f"exit {rc}: {out[-800:]}")
        return
    fams = {n.split("<")[0] for n in last_json(out)["launched"]}
    missing = sorted(families() - fams)
    st.check("driver: every kernel family once", "ok" if not missing else "fail",
             f"{len(fams)} families launched" + (f"; never launched: {missing}" if missing else ""))
    if ctx.emulated:
        for tool in SANITIZER_TOOLS:
            st.check(f"compute-sanitizer --tool {tool}", "n/a",
                     NA + " (ci/sanitize.sh runs the emulated kernels under ASan and UBSan)")
        return
    tool_path = find_sanitizer()
    if tool_path is None:
        for tool in SANITIZER_TOOLS:
            st.check(f"compute-sanitizer --tool {tool}", "skipped",
                     "compute-sanitizer not installed (looked in PATH, $CUDA_HOME/bin, "
                     "/usr/local/cuda/bin)")
        return
    # The four tools run side by side (independent processes on one GPU).
    timeout = ctx.left(150, reserve=100)
    procs = {}
    for tool in SANITIZER_TOOLS:
        log = open(ctx.out / f"sanitizer-{tool}.log", "w")
        procs[tool] = (subprocess.Popen(
            [tool_path, "--tool", tool, "--error-exitcode", "99", "--print-limit", "20",
             *self_cmd(False, "--driver")], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log)
    t0 = time.monotonic()
    for tool, (p, log) in procs.items():
        try:
            rc = p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        log.close()
        text = (ctx.out / f"sanitizer-{tool}.log").read_text(errors="replace")
        summary = next((ln.strip() for ln in reversed(text.splitlines())
                        if "ERROR SUMMARY" in ln), "no ERROR SUMMARY line")
        status = "ok" if rc == 0 and "ERROR SUMMARY: 0 errors" in text else "fail"
        st.check(f"compute-sanitizer --tool {tool}", status,
                 f"{'timed out' if rc is None else f'exit {rc}'}; {summary} "
                 f"(log: sanitizer-{tool}.log)")


# ------------------------------------------------------------------ step 4
def probe_fit(emulated: bool, n: int) -> None:
    digests = [fit_digest(determinism_fit(make_backend(emulated), n)) for _ in range(2)]
    print(json.dumps({"digests": digests,
                      "ptds": os.environ.get("CUPY_CUDA_PER_THREAD_DEFAULT_STREAM", "")}))


def step_streams(st: Step, ctx):
    n = ctx.sizes["fit_n"]
    emu = ctx.emulated
    variants = {}
    if emu:
        variants["default"] = lambda: make_backend(True)
    else:
        import cupy

        nb = cupy.cuda.Stream(non_blocking=True)
        raw = cupy.cuda.Stream(non_blocking=True)
        variants["default stream"] = lambda: make_backend(False)
        variants["non-blocking stream"] = lambda: make_backend(False, stream=nb)
        variants["raw cudaStream_t handle"] = lambda: make_backend(False, stream=int(raw.ptr))
    digests = {}
    for name, mk in variants.items():
        ds = [fit_digest(determinism_fit(mk(), n)) for _ in range(2)]
        sync(emu)
        digests[name] = ds
        st.check(f"{name}: twice", "ok" if ds[0] == ds[1] else "fail", " / ".join(ds))
    env = {} if emu else {"CUPY_CUDA_PER_THREAD_DEFAULT_STREAM": "1"}
    label = "fresh process" if emu else "per-thread default stream (fresh process)"
    rc, out = run_child(self_cmd(emu, "--probe-fit", "--n", str(n)), timeout=ctx.left(120),
                        env=env)
    if rc != 0:
        st.check(label, "fail", f"exit {rc}: {out[-800:]}")
    else:
        ds = last_json(out)["digests"]
        digests[label] = ds
        st.check(f"{label}: twice", "ok" if ds[0] == ds[1] else "fail", " / ".join(ds))
    ref = next(iter(digests.values()))[0]
    same = all(d == ref for ds in digests.values() for d in ds)
    st.check("bit-identical across all of them", "ok" if same else "fail",
             f"{sum(len(v) for v in digests.values())} fits, n={n}, 3-D float32 Gaussian",
             digests=digests)
    if emu:
        for what in ("non-blocking stream", "raw cudaStream_t handle",
                     "per-thread default stream"):
            st.check(what, "n/a", NA + " (no streams)")


# ------------------------------------------------------------------ step 5
def step_limits(st: Step, ctx):
    from gpumeanshift.backends.numpy.backend import NumpyBackend

    be = make_backend(ctx.emulated)
    for dt in (np.float32, np.float64):
        X = np.array([[0.0], [0.5]], dt)
        S = np.array([[38.6], [38.3]], dt)
        kw = dict(bandwidth=1.0, kernel="gaussian", max_iter=300, tol=1e-3)
        g = be.shift(be.runtime.asarray(X), be.runtime.asarray(S), **kw)
        c = NumpyBackend().shift(X, S, **kw)
        got = {k: host(getattr(g, k)).tolist() for k in ("modes", "n_iter", "intensity",
                                                          "converged")}
        ref = {k: np.asarray(getattr(c, k)).tolist() for k in got}
        same = (np.allclose(host(g.modes), np.asarray(c.modes), rtol=0, atol=1e-6, equal_nan=False)
                and all(got[k] == ref[k] for k in ("n_iter", "intensity", "converged")))
        st.check(f"far seeds, {np.dtype(dt).name}", "ok" if same else "differs",
                 ("same as NumPy" if same else "differs from NumPy (known defect)")
                 + f": cuda modes {np.ravel(got['modes'])}, n_iter {got['n_iter']}, "
                 f"converged {got['converged']}; numpy modes {np.ravel(ref['modes'])}, "
                 f"n_iter {ref['n_iter']}, converged {ref['converged']}", cuda=got, numpy=ref)
    n = ctx.sizes["count_check_n"]
    if ctx.emulated:
        st.check(f"count over n = 2^31 - 1 = {N_LIMIT} rows", "n/a",
                 NA + f" (the same check runs at n = {n} below)")
    # A child process: a kernel that loops forever on 2^31 rows must not take
    # the rest of the run with it, and its 26 GB go back to the device on exit.
    what = f"count_within over n = {n} rows (x = i mod 2, float32)"
    rc, out = run_child(self_cmd(ctx.emulated, "--probe-count", "--n", str(n)),
                        timeout=ctx.left(120, reserve=60))
    if rc != 0:
        st.check(what, "fail", ("timed out" if rc is None else f"exit {rc}") + f": {out[-800:]}")
        return
    r = last_json(out)
    if "skipped" in r:
        st.check(what, "skipped", r["skipped"])
        return
    st.check(what, "ok" if r["counts"] == r["want"] else "fail",
             f"{r['counts']} (want {r['want']}), {r['seconds']:.1f} s", **r)


def probe_count(emulated: bool, n: int) -> None:
    be = make_backend(emulated)
    need = 3 * 4 * n  # X, the int32 ramp that fills it, the |X| temporary
    free = be.runtime.free_memory()
    if free < need:
        print(json.dumps({"skipped": f"needs about {need / 2**30:.1f} GiB of device memory, "
                                     f"{free / 2**30:.1f} GiB free"}))
        return
    t0 = time.perf_counter()
    X = count_data(be, n)
    Q = np.array([[0.0], [1.0], [0.5], [3.0]], np.float32)
    got = host(be.count_within(X, be.runtime.asarray(Q), 0.6)).tolist()
    sync(emulated)
    print(json.dumps({"counts": got, "want": [(n + 1) // 2, n // 2, n, 0],
                      "seconds": time.perf_counter() - t0, "n": n}))


def count_data(be, n):
    xp = be.runtime.xp
    X = be.runtime.empty((n, 1), np.float32)
    X[:, 0] = xp.arange(n, dtype=np.int32) & 1  # 0, 1, 0, ...: n - 1 < 2^31 fits int32
    return X


# ------------------------------------------------------------------ step 6
def timed(fn, emulated, rounds=2):
    best, res = float("inf"), None
    for _ in range(rounds):
        sync(emulated)
        t0 = time.perf_counter()
        res = fn()
        sync(emulated)
        best = min(best, time.perf_counter() - t0)
    return best, res


def step_speed(st: Step, ctx):
    import _cases
    from _cases import check_agreement, fit_gpumeanshift, fit_sklearn, hotspot
    from gpumeanshift.backends.numpy.backend import NumpyBackend

    emu, S = ctx.emulated, ctx.sizes
    be = make_backend(emu)
    dev = be.runtime.asarray
    rows = []

    def numpy_rate(case, m):
        sub = _cases.ThroughputCase(X=case.X, seeds=case.seeds[:m], bandwidth=case.bandwidth,
                                    max_iter=case.max_iter)
        t, res = timed(lambda: _cases.run_shift(sub, NumpyBackend()), True, rounds=1)
        return sub.pairs(res) / t

    def shift_row(label, case, backend, d, weights=None, **extra):
        dcase = _cases.ThroughputCase(X=dev(case.X), seeds=dev(case.seeds),
                                      bandwidth=case.bandwidth, max_iter=case.max_iter)
        backend.shift(dcase.X, dcase.seeds[:64], bandwidth=case.bandwidth, kernel="gaussian",
                      max_iter=1, tol=0.0, algorithm="brute",
                      weights=weights)  # warm up (and compile) outside the timing
        if weights is None:
            def run():
                return _cases.run_shift(dcase, backend)
        else:  # the sample-weighted kernels, as run_shift runs the unweighted ones
            def run():
                return backend.shift(dcase.X, dcase.seeds, bandwidth=case.bandwidth,
                                     kernel="gaussian", max_iter=case.max_iter, tol=0.0,
                                     algorithm="brute", weights=weights)
        t, res = timed(run, emu, S["rounds"])
        res = type(res)(*(host(getattr(res, k)) for k in ("modes", "n_iter", "intensity",
                                                          "converged")))
        _cases.check_shift(case, res)
        rate = case.pairs(res) / t
        cpu = numpy_rate(case, S["numpy_m"])
        rows.append({"case": label, "n": len(case.X), "seeds": len(case.seeds), "s": t,
                     "pairs/s": rate, "numpy pairs/s": cpu, "x numpy": rate / cpu,
                     "of 4.2e12": "-" if emu or d > 2 else rate / H100_LIMIT})

    for d in (2, 3, 8, 16):
        n, m = (S["fused_n"], S["fused_m"]) if d <= 3 else (S["fused_n_hi"], S["fused_m_hi"])
        case = _cases.throughput_case(d, "float32", n=n, m=m, max_iter=S["iters"])
        shift_row(f"fused, float32, d={d}", case, make_backend(emu, split=False), d)
        if d == 2:  # the same with integer sample weights 1..5 (rows [x, w])
            w = np.random.default_rng(0).integers(1, 6, len(case.X)).astype(np.float64)
            shift_row("fused, float32, d=2, weighted", case, make_backend(emu, split=False), d,
                      weights=w)
    case = _cases.throughput_case(2, "float32", n=S["split_n"], m=1000, max_iter=S["iters"])
    shift_row("split, float32, d=2, 1,000 seeds", case, make_backend(emu, split=True), 2)

    # Grid kernel: flat, hotspot data, real convergence. Pairs are counted two ways:
    # points within the window (the useful work) and brute-force equivalent (n per step).
    Xh = hotspot(S["grid_n"]).astype(np.float32)
    seeds = Xh[:: max(1, len(Xh) // S["grid_m"])][: S["grid_m"]]
    dX, dS = dev(Xh), dev(seeds)
    gkw = dict(bandwidth=2.0, kernel="flat", max_iter=300, tol=1e-3, algorithm="grid")
    be.shift(dX, dS[:64], **gkw)
    t, res = timed(lambda: be.shift(dX, dS, **gkw), emu, S["rounds"])
    steps = host(res.n_iter).astype(np.int64) + 1
    window = float((steps * host(res.intensity)).sum())
    tc, rc_ = timed(lambda: NumpyBackend().shift(Xh, seeds[: S["numpy_m"]], **gkw), True, 1)
    cpu_window = float(((np.asarray(rc_.n_iter) + 1) * np.asarray(rc_.intensity)).sum()) / tc
    rows.append({"case": "grid, float32, d=2, flat (pairs in window)", "n": len(Xh),
                 "seeds": len(seeds), "s": t, "pairs/s": window / t, "numpy pairs/s": cpu_window,
                 "x numpy": window / t / cpu_window, "of 4.2e12": "-"})
    rows.append({"case": "grid, same run (brute-force-equivalent pairs)", "n": len(Xh),
                 "seeds": len(seeds), "s": t, "pairs/s": len(Xh) * float(steps.sum()) / t,
                 "numpy pairs/s": "-", "x numpy": "-",
                 "of 4.2e12": "-" if emu else len(Xh) * float(steps.sum()) / t / H100_LIMIT})
    st.tables["pairs per second"] = rows
    st.check("kernel throughput", "ok", f"{len(rows)} rows; fused d=2 {rows[0]['pairs/s']:.3g} "
             f"pairs/s = {rows[0]['x numpy']:.3g} x NumPy; weighted "
             f"{rows[1]['pairs/s'] / rows[0]['pairs/s']:.3g} x unweighted", rows=rows)
    if emu:
        st.check("fraction of the 4.2e12 pairs/s limit", "n/a",
                 NA + " (emulated figures measure the CPU, not a GPU)")

    # Whole fits against scikit-learn (the fits of bench/_cases.py, flat kernel).
    fits = []
    jobs = None if emu else -1  # joblib's process start costs more than tiny fits
    Xh = hotspot(S["hot_n"])
    t_ours, model = timed(lambda: fit_gpumeanshift(Xh, 2.0, backend=be), emu, rounds=1)
    sub = Xh[:: max(1, len(Xh) // S["sk_seeds"])][: S["sk_seeds"]]
    t_sk, sk = timed(lambda: fit_sklearn(Xh, 2.0, seeds=sub, n_jobs=jobs), True, 1)
    ours_sub = fit_gpumeanshift(Xh, 2.0, seeds=sub, backend=be)
    agree, note = check_agreement(host(ours_sub.cluster_centers_), sk.cluster_centers_, 2e-6)
    fits.append({"fit": f"hotspot, all {len(Xh)} points seeds, flat h=2", "ours s": t_ours,
                 "clusters": len(host(model.cluster_centers_)),
                 "scikit-learn": f"{len(sub)} seeds: {t_sk:.3g} s", "agreement": note})
    st.check(f"hotspot {len(Xh)} fit", "ok" if agree else "fail",
             f"{t_ours:.3g} s, {len(host(model.cluster_centers_))} clusters; same "
             f"{len(sub)} seeds as scikit-learn: {note}")
    Xb, h = _cases.blobs_and_bandwidth(S["all_seeds_n"])
    t_ours, ours = timed(lambda: fit_gpumeanshift(Xb, h, backend=be), emu, 1)
    t_sk, sk = timed(lambda: fit_sklearn(Xb, h, n_jobs=jobs), True, 1)
    agree, note = check_agreement(host(ours.cluster_centers_), sk.cluster_centers_, 1e-9)
    same_labels = bool(np.array_equal(host(ours.labels_), sk.labels_))
    fits.append({"fit": f"{len(Xb)} blobs, all seeds, flat", "ours s": t_ours,
                 "clusters": len(host(ours.cluster_centers_)),
                 "scikit-learn": f"{t_sk:.3g} s, n_jobs={jobs} ({t_sk / t_ours:.3g} x ours)",
                 "agreement": f"{note}; labels {'equal' if same_labels else 'DIFFER'}"})
    st.check(f"{len(Xb)} all-seeds fit against scikit-learn",
             "ok" if agree and same_labels else "fail",
             f"ours {t_ours:.3g} s, scikit-learn {t_sk:.3g} s; {fits[-1]['agreement']}")
    st.tables["whole fits"] = fits


# ------------------------------------------------------------------ main
STEPS = (
    (1, "install, compile, kernel attributes", step_install_compile, 60),
    (2, "tests/cuda suite", step_suite, 30),
    (3, "compute-sanitizer on every kernel family", step_sanitizer, 30),
    (4, "streams and determinism", step_streams, 20),
    (5, "limits and numerics", step_limits, 20),
    (6, "speed", step_speed, 60),
)


class Context:
    def __init__(self, args):
        self.emulated = args.emulated
        self.sizes = SIZES["emulated" if args.emulated else "gpu"]
        self.out = Path(args.out)
        self.deadline = time.monotonic() + args.budget
        self.reuse_cache = args.reuse_cache

    def left(self, cap: float, reserve: float = 0.0) -> float:
        """Seconds a child may run: at most ``cap``, leaving ``reserve`` for later steps."""
        return max(1.0, min(cap, self.deadline - time.monotonic() - reserve))


def default_out() -> str:
    return os.environ.get("GPU_REPORT_DIR") or os.environ.get("OUT") or "gpu-report"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emulated", action="store_true", help="CPU emulator, tiny sizes")
    ap.add_argument("--out", default=None, help="report folder (default: $GPU_REPORT_DIR, "
                    "else $OUT, else ./gpu-report)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds for all steps; a step that no longer fits is skipped")
    ap.add_argument("--steps", default="1,2,3,4,5,6", help="comma-separated step numbers")
    ap.add_argument("--reuse-cache", action="store_true",
                    help="use the compile caches of the environment instead of a fresh, "
                    "empty one (step 1 then does not time a cold compile)")
    ap.add_argument("--probe-compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probe-fit", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probe-count", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=300, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe_compile:
        return probe_compile(args.emulated) or 0
    if args.driver:
        return driver(args.emulated) or 0
    if args.probe_fit:
        return probe_fit(args.emulated, args.n) or 0
    if args.probe_count:
        return probe_count(args.emulated, args.n) or 0
    if args.budget <= 0:
        ap.error(f"--budget must be positive, got {args.budget}")
    try:
        wanted = {int(s) for s in args.steps.split(",") if s.strip()}
    except ValueError:
        ap.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if not wanted <= {s[0] for s in STEPS}:
        ap.error(f"--steps must be among 1..6, got {args.steps!r}")
    args.out = args.out or default_out()
    # One compile cache for this run: the first probe process finds it empty.
    cache = Path(tempfile.mkdtemp(prefix="gpu-proof-cache-"))
    saved_env = {k: os.environ.get(k) for k in ("CUPY_CACHE_DIR", "GPUMEANSHIFT_EMU_CACHE")}
    if not args.reuse_cache:
        os.environ["CUPY_CACHE_DIR"] = str(cache / "cupy")
        os.environ["GPUMEANSHIFT_EMU_CACHE"] = str(cache / "emu")
    ctx = Context(args)
    # ci/gpu.sh's time limit sends SIGTERM: unwind (children killed, cache
    # removed); report.json then names the step that was running.
    saved_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    t_start = time.monotonic()
    try:
        report = Report(ctx.out, ctx.emulated)
        for number, title, fn, minimum in STEPS:
            if number not in wanted:
                continue
            st = Step(number, title)
            report.start(number, title)
            t0 = time.monotonic()
            error = None
            if ctx.deadline - t0 < minimum:
                st.check("step", "skipped", f"out of time: {ctx.deadline - t0:.0f} s left of "
                         f"the budget, the step needs about {minimum} s")
            else:
                try:
                    fn(st, ctx)
                except Exception as exc:  # the step fails; the run goes on to the next
                    error = traceback.format_exc()
                    st.check("step raised", "fail", f"{type(exc).__name__}: {exc}")
            tables = {k: v for k, v in st.tables.items() if not k.startswith("_")}
            section = {"step": number, "title": title, "status": st.status(),
                       "seconds": time.monotonic() - t0, "checks": st.checks, "tables": tables,
                       "error": error}
            for k, v in st.tables.items():
                if k.startswith("_"):
                    section[k[1:]] = v
            report.add(section)
    finally:
        signal.signal(signal.SIGTERM, saved_term)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cache, ignore_errors=True)
    table = report.finish(time.monotonic() - t_start)
    print("\n" + table)
    print(f"\nreport: {ctx.out / 'report.md'} and {ctx.out / 'report.json'}")
    failed = [s for s in report.data["steps"] if s["status"] == "fail"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
