"""The CUDA kernels' floating point and the emulated device's limits.

Far seeds (weights that underflow), float32 as NVRTC builds it (flush to
zero, FMA contraction), deferred stream work, 32-bit index limits. Run on
the CPU emulator, which models each of these (see docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from cuda_testlib import host_result
from gpumeanshift.backends.cuda import runtime as _rt
from gpumeanshift.backends.numpy.backend import NumpyBackend
from gpumeanshift.testing import emulated_backend

# dynamic shared memory of the compaction kernels (their block scan)
SCAN_SMEM = _rt.BLOCK * 4

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402

_SHIFT = dict(kernel="gaussian", max_iter=300, tol=1e-3)
_LOG2E_2 = 0.72134752044448170368  # the float32 Gaussian is exp2(-u2 * log2(e) / 2)
_BE = {}


def _backend(split=False, fp="nvrtc"):
    if (split, fp) not in _BE:
        _BE[split, fp] = emulated_backend(split=split, n_splits=2 if split else None,
                                          runtime_options={"fp": fp})
    return _BE[split, fp]


def _both(X, seeds, split=False, h=1.0, fp="nvrtc"):
    gpu = host_result(_backend(split, fp).shift(X, seeds, bandwidth=h, **_SHIFT))
    cpu = NumpyBackend().shift(X, seeds, bandwidth=h, **_SHIFT)
    return gpu, cpu


# --------------------------------------------------------------- far seeds
@pytest.mark.parametrize("split", [False, True])
def test_seed_38_bandwidths_away_float64(split):
    # Every weight is below 2^-1024: 1 / wsum overflowed to +inf (NaN modes).
    X = np.array([[0.0], [0.5]])
    seeds = np.array([[38.6], [38.3]])
    gpu, cpu = _both(X, seeds, split)
    ref = np.array([[0.25006096], [0.25006096]])
    np.testing.assert_allclose(cpu.modes, ref, atol=1e-8)
    np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=1e-12)
    assert gpu.n_iter.tolist() == cpu.n_iter.tolist() == [3, 3]
    assert gpu.intensity.tolist() == cpu.intensity.tolist() == [2, 2]
    assert gpu.converged.all()


def _rows(res, mask):
    return dataclasses.replace(res, modes=res.modes[mask], n_iter=res.n_iter[mask],
                               intensity=res.intensity[mask], converged=res.converged[mask])


def _assert_agree(gpu, cpu, dtype, same_path=True):
    """GPU and NumPy backends agree: same stop, same count, modes to rounding
    (float32: the kernel's exp2f Gaussian is within 2 ulp of NumPy's exp);
    with ``same_path`` also the number of steps (within one for float32)."""
    assert gpu.converged.tolist() == cpu.converged.tolist()
    assert gpu.intensity.tolist() == cpu.intensity.tolist()
    assert np.isfinite(gpu.modes).all()
    if dtype == np.float64:
        assert gpu.n_iter.tolist() == cpu.n_iter.tolist()
        np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=1e-9)
    else:
        if same_path:
            assert np.abs(gpu.n_iter - cpu.n_iter).max(initial=0) <= 1
        np.testing.assert_allclose(gpu.modes, cpu.modes, rtol=0, atol=2e-3)


@settings(max_examples=40, deadline=None, database=None)
@given(dist=st.floats(0.0, 45.0), spread=st.floats(0.05, 1.0),
       dtype=st.sampled_from([np.float32, np.float64]), d=st.sampled_from([1, 2]),
       split=st.booleans(), fp=st.sampled_from(["nvrtc", "ieee"]))
# the bands where the weights are subnormal and 1 / wsum overflowed (float32:
# without flush to zero), and the float32 flush band
@example(dist=38.2, spread=0.5, dtype=np.float64, d=1, split=False, fp="nvrtc")
@example(dist=27.0, spread=0.5, dtype=np.float64, d=2, split=True, fp="nvrtc")
@example(dist=14.1, spread=0.5, dtype=np.float32, d=1, split=False, fp="ieee")
@example(dist=10.0, spread=0.5, dtype=np.float32, d=2, split=True, fp="ieee")
@example(dist=13.8, spread=0.5, dtype=np.float32, d=1, split=True, fp="nvrtc")
@example(dist=13.1875, spread=1.0, dtype=np.float32, d=1, split=False, fp="nvrtc")
# an orphan from the start keeps its position exactly (it used to come back
# through the float32 centring and scaling, 2e-6 off)
@example(dist=32.0, spread=0.759571103339461, dtype=np.float32, d=1, split=False, fp="nvrtc")
def test_far_seeds_agree_with_numpy(dist, spread, dtype, d, split, fp):
    """A seed ``dist`` bandwidths from the nearest of a few points: the CUDA
    kernels and the NumPy backend give the same result, whether the weights
    are normal, subnormal (the scaled reciprocal) or all zero (an orphan),
    but for the documented float32 flush to zero."""
    X = np.zeros((3, d))
    X[:, 0] = [0.0, spread / 2, spread]
    direction = np.ones(d) / np.sqrt(d)
    seeds = np.stack([-dist * direction, X[-1] + dist * direction])
    gpu, cpu = _both(X.astype(dtype), seeds.astype(dtype), split, fp=fp)
    rt = _backend(split, fp).runtime
    if dtype == np.float32 and rt.flushes_denormals:
        # -ftz=true: a float32 weight below 2^-126 is 0 on the device. A seed
        # whose weights all flush is an orphan there, not on the CPU (the
        # documented float32 difference, docs/gpu.md); the others climb to
        # the CPU's mode, along another path when some of their first weights
        # flush. Within 0.05 of the cut, exp2f's rounding decides: not checked.
        e2 = ((seeds[:, None, :] - X[None]) ** 2).sum(-1) * _LOG2E_2
        e = e2.min(axis=1)
        flushed, kept = e > 126.05, e < 125.95
        assert (gpu.intensity[flushed] == 0).all() and not gpu.converged[flushed].any()
        np.testing.assert_array_equal(gpu.modes[flushed], seeds.astype(dtype)[flushed])
        same_path = bool((e2.max(axis=1)[kept] < 125.95).all())
        _assert_agree(_rows(gpu, kept), _rows(cpu, kept), dtype, same_path)
        return
    _assert_agree(gpu, cpu, dtype)


# ------------------------------------------------- floating point as NVRTC
_PROBE = r"""
template <typename T>
__global__ void fp_probe(const T* a, const T* b, const T* c, T* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = a[i] * b[i] + c[i];                       // contracted, as NVRTC does
    out[n + i] = ms_add_rn(ms_mul_rn(a[i], b[i]), c[i]);  // never contracted
    out[2 * n + i] = a[i] * b[i];                      // flushed when subnormal (ftz)
    out[3 * n + i] = c[i] + c[i];                      // subnormal input read as 0 (daz)
}
"""


def _probe_runtime(fp):
    from gpumeanshift.testing import EmulatedRuntime

    src = _rt.kernel_source() + _PROBE
    rt = EmulatedRuntime(source=src, fp=fp)
    rt._names = ("fp_probe<float>", "fp_probe<double>")  # this unit's launchable names
    rt._index = {n: i for i, n in enumerate(rt._names)}
    return rt


def _probe(rt, a, b, c):
    n = a.size
    out = rt.asarray(np.full(4 * n, np.nan, a.dtype))
    name = "fp_probe<float>" if a.dtype == np.float32 else "fp_probe<double>"
    rt.launch(name, (1,), (_rt.BLOCK,), (*(rt.asarray(v) for v in (a, b, c)), out, np.int32(n)))
    return rt.to_host(out).reshape(4, n)


def _operands(dtype, n=_rt.BLOCK):
    """a, b in [1, 2), c in [1, 2): a * b + c is exact in float64 for float32
    operands (48 + 2 bits), so rounding it once is the float32 FMA."""
    rng = np.random.default_rng(1)
    a, b, c = (rng.uniform(1, 2, n).astype(dtype) for _ in range(3))
    return a, b, c


@pytest.mark.parametrize("fp", ["nvrtc", "ieee"])
def test_emulator_contracts_multiply_add_as_nvrtc(fp):
    rt = _probe_runtime(fp)
    a, b, c = _operands(np.float32)
    out = _probe(rt, a, b, c)
    fused = (a.astype(np.float64) * b + c).astype(np.float32)
    separate = (a * b) + c  # NumPy: each operation rounded to float32
    assert (fused != separate).sum() > 10  # the probe can tell them apart
    np.testing.assert_array_equal(out[1], separate)  # explicit _rn: never fused
    np.testing.assert_array_equal(out[0], fused if fp == "nvrtc" else separate)


@pytest.mark.parametrize("fp", ["nvrtc", "ieee"])
def test_emulator_flushes_float32_denormals_only(fp):
    rt = _probe_runtime(fp)
    if fp == "nvrtc" and not rt.flushes_denormals:
        pytest.skip("flush to zero is modelled through the x86 MXCSR only")
    tiny32 = np.float32(2.0**-140)
    a = np.full(4, 2.0**-70, np.float32)
    b = np.full(4, 2.0**-70, np.float32)
    c = np.full(4, tiny32, np.float32)
    out = _probe(rt, a, b, c)
    flush = fp == "nvrtc"
    assert (out[2] == (0 if flush else np.float32(2.0**-140))).all()
    assert (out[3] == (0 if flush else 2 * tiny32)).all()
    # double is never flushed (-ftz concerns float), in either mode
    tiny64 = 2.0**-1070
    out = _probe(rt, np.full(4, 2.0**-535), np.full(4, 2.0**-535), np.full(4, tiny64))
    assert (out[2] == tiny64).all() and (out[3] == 2 * tiny64).all()
    # the launching thread's own mode is restored afterwards
    assert np.float32(2.0**-70) * np.float32(2.0**-70) == np.float32(2.0**-140)


def test_float32_gaussian_weights_below_2_126_flush_on_the_gpu():
    """The decided float32 consequence of -ftz=true: a seed 13.2-14.4
    bandwidths from every point (all weights below 2^-126) is an orphan on
    the GPU; the NumPy backend climbs it; float64 is unaffected."""
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    X = np.array([[0.0], [0.5]])
    seeds = np.array([[0.5 + 13.8]])
    gpu = CudaBackend(EmulatedRuntime(fp="nvrtc"))
    if not gpu.runtime.flushes_denormals:
        pytest.skip("flush to zero is modelled through the x86 MXCSR only")
    ieee = CudaBackend(EmulatedRuntime(fp="ieee"))
    cpu = NumpyBackend()
    r32 = {k: host_result(be.shift(X.astype(np.float32), seeds.astype(np.float32),
                                   bandwidth=1.0, **_SHIFT))
           for k, be in (("gpu", gpu), ("ieee", ieee), ("cpu", cpu))}
    assert r32["gpu"].intensity.tolist() == [0] and not r32["gpu"].converged.any()
    assert r32["gpu"].modes.tolist() == seeds.astype(np.float32).tolist()
    for k in ("ieee", "cpu"):
        assert r32[k].intensity.tolist() == [2] and r32[k].converged.all()
        np.testing.assert_allclose(r32[k].modes, [[0.25006]], atol=1e-4)
    r64 = gpu.shift(X, seeds, bandwidth=1.0, **_SHIFT)
    assert r64.intensity.tolist() == [2] and r64.converged.all()


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("scale", [0, -50, -70])
def test_float32_shift_is_scale_free_under_flush(kernel, scale):
    """Squared distances below 2^-126 would flush, but the shift works in
    bandwidths (the host divides by h in float64): data and bandwidth
    scaled by 2^-50 or 2^-70 give the same modes, in the same units."""
    rng = np.random.default_rng(3)
    X0 = rng.normal(size=(60, 2))
    X = (X0 * 2.0**scale).astype(np.float32)
    be = _backend()
    r = be.shift(X, X[:8], bandwidth=0.8 * 2.0**scale, kernel=kernel, max_iter=300, tol=1e-3)
    ref = be.shift(X0.astype(np.float32), X0[:8].astype(np.float32), bandwidth=0.8,
                   kernel=kernel, max_iter=300, tol=1e-3)
    np.testing.assert_allclose(r.modes.astype(np.float64) / 2.0**scale, ref.modes,
                               rtol=0, atol=1e-5)
    assert r.intensity.tolist() == ref.intensity.tolist()


# ------------------------------------------------------------ 32-bit limits
def test_shift_refuses_2_31_rows_before_touching_them():
    # zero-stride view: 2^31 rows and no memory; a copy would need 16 GiB
    X = np.broadcast_to(np.zeros((1, 1)), (2**31, 1))
    be = _backend()
    be.runtime.reset_counters()
    with pytest.raises(ValueError, match="32-bit row index"):
        be.shift(X, np.zeros((1, 1)), bandwidth=1.0, **_SHIFT)
    assert be.runtime.n_launches == 0 and be.runtime.allocations == 0


def test_batches_stay_below_2_31_rows():
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime

    be = CudaBackend(EmulatedRuntime(reported_free=1 << 40))
    seen = []
    be._batched(2**32 + 5, 1, 0, lambda lo, hi: seen.append((lo, hi)), "test")
    assert seen[0][0] == 0 and seen[-1][1] == 2**32 + 5
    assert all(a[1] == b[0] for a, b in zip(seen, seen[1:]))
    assert max(hi - lo for lo, hi in seen) <= 2**31 - _rt.BLOCK
    # whole blocks of threads over a batch still index as int32
    assert -(-(2**31 - _rt.BLOCK) // _rt.BLOCK) * _rt.BLOCK <= 2**31 - 1


def test_emulated_launch_refuses_32_bit_index_overflow():
    from gpumeanshift.testing import EmulatedRuntime, LaunchError

    rt = EmulatedRuntime()
    state = rt.zeros((4,), np.int32)
    active = rt.asarray(np.arange(4, dtype=np.int32))
    out = rt.asarray(np.full(4, -1, np.int32))
    start = rt.zeros((1,), np.int32)
    args = (state, active, np.int32(4), start, out)
    rt.launch("ms_compact", (1,), (_rt.BLOCK,), args, SCAN_SMEM)  # fine
    assert out.tolist() == [0, 1, 2, 3]
    with pytest.raises(LaunchError, match="32-bit thread index"):
        rt.launch("ms_compact", (2**24,), (_rt.BLOCK,), args, SCAN_SMEM)
    with pytest.raises(LaunchError, match="wrapped"):
        rt.launch("ms_compact", (1,), (_rt.BLOCK,),
                  (state, active, np.int32(-4), start, out), SCAN_SMEM)
    assert rt.launches["ms_compact"] == 1  # the refused ones never ran


# ------------------------------------------------------------------ streams
def _stream_backend(**options):
    from gpumeanshift.backends.cuda.backend import CudaBackend
    from gpumeanshift.testing import EmulatedRuntime, EmulatedStream

    stream = EmulatedStream()
    return CudaBackend(EmulatedRuntime(stream=stream), **options), stream


def test_emulated_stream_defers_launches_until_synchronized():
    be, stream = _stream_backend()
    rt = be.runtime
    state = rt.zeros((4,), np.int32)
    active = rt.asarray(np.arange(4, dtype=np.int32))
    count = rt.zeros((1,), np.int32)
    args = (state, active, np.int32(4), count)
    rt.launch("ms_compact_count", (1,), (_rt.BLOCK,), args, SCAN_SMEM)
    assert stream.pending == 1
    assert count[0] == 0  # another stream's view: as it was
    assert rt.to_host(count)[0] == 4  # a copy on the same stream runs the queue first
    assert stream.pending == 0
    count[0] = 0
    rt.launch("ms_compact_count", (1,), (_rt.BLOCK,), args, SCAN_SMEM)
    assert count[0] == 0
    stream.synchronize()
    assert count[0] == 4 and stream.pending == 0


@pytest.mark.parametrize("split", [False, True])
def test_results_leave_only_after_their_stream_is_synchronized(split):
    be, stream = _stream_backend(split=split, n_splits=2 if split else None)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 2))
    res = be.shift(X, X[:10], bandwidth=1.0, **_SHIFT)
    ref = _backend(split).shift(X, X[:10], bandwidth=1.0, **_SHIFT)
    assert stream.pending == 0 and stream.synchronizations >= 1
    assert be.runtime.unsynchronized_exits == 0
    np.testing.assert_array_equal(res.modes, ref.modes)
    labels, _ = be.nearest(X, res.modes)
    assert be.runtime.unsynchronized_exits == 0 and stream.pending == 0
    np.testing.assert_array_equal(labels, _backend().nearest(X, ref.modes)[0])


def test_float32_count_within_tiny_radius_under_flush():
    """A radius whose square is below float32's normal range: the points are
    rescaled around the radius first, so flushed squares cannot count a
    point outside it."""
    be = _backend()
    if not be.runtime.flushes_denormals:
        pytest.skip("flush to zero is modelled through the x86 MXCSR only")
    base = np.float32(2.0**-45)
    X = np.array([[base], [base + np.float32(2.0**-66)]], np.float32)
    assert X[1, 0] - X[0, 0] == np.float32(2.0**-66)
    # the point 2^-66 away is outside a 2^-67 radius: only the query itself counts
    assert be.count_within(X, X[1:], 2.0**-67).tolist() == [1]


@pytest.mark.parametrize("exponent", [-40, -64, -67, -70])
def test_float32_count_within_tiny_radii_match_a_float64_count(exponent):
    """Points spread over a few radii around 2^-45, radii down to 2^-70
    (2^-40 is a control whose squares stay normal): the counts equal exact
    float64 counts on the same float32 coordinates."""
    be = _backend()
    rng = np.random.default_rng(-exponent)
    r = 2.0**exponent
    X = (2.0**-45 + rng.uniform(-4 * r, 4 * r, (40, 2))).astype(np.float32)
    Q = X[::5].copy()
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    d2 = ((Q64[:, None, :] - X64[None]) ** 2).sum(-1)
    clear = np.abs(d2 - r * r) > 1e-4 * r * r  # no pair within rounding of the boundary
    got = be.count_within(X, Q, r)
    want = (d2 <= r * r).sum(1)
    rows = clear.all(axis=1)
    assert rows.sum() >= 4
    np.testing.assert_array_equal(np.asarray(got)[rows], want[rows])
