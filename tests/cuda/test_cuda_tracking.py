"""mean_shift_track on the CUDA backend (kernel ms_track_windows): many
windows in one launch, against the NumPy path and cv2.meanShift.

Integer images: windows and iteration counts identical (moments exact in
int64 on both sides). Float images: the moments are summed in another order
than NumPy's, so a rounded shift within an ulp of .5 could differ; on these
images none does and they are compared exactly too.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import make_runtime, runtime_kind  # noqa: F401
from gpumeanshift.backends.cuda.backend import CudaBackend
from gpumeanshift.tracking import cam_shift, mean_shift_track


def _frame(shape=(90, 120), seed=0, blobs=6):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for _ in range(blobs):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        s = rng.uniform(3, 8)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return img / img.max()


def _windows(shape, k=300, seed=1):
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 30, (k, 2))
    x = rng.integers(-20, shape[1] + 5, k)
    y = rng.integers(-20, shape[0] + 5, k)
    return np.stack([x, y, w[:, 0], w[:, 1]], axis=1)


@pytest.fixture
def backend(runtime_kind):
    return CudaBackend(make_runtime(runtime_kind))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32,
                                   np.float64])
@pytest.mark.parametrize("criteria", [(10, 1.0), (3, 0.0), (20, 2.5)])
def test_batched_windows_equal_numpy(backend, dtype, criteria):
    img = _frame()
    if np.dtype(dtype).kind in "iu":
        scale = {np.int64: 2**40, np.int32: 2**20}.get(dtype, np.iinfo(dtype).max)
        img = np.rint(img * scale)
    img = img.astype(dtype)
    win = _windows(img.shape)
    it_gpu, out_gpu = mean_shift_track(img, win, criteria=criteria, backend=backend)
    it_cpu, out_cpu = mean_shift_track(img, win, criteria=criteria)
    assert isinstance(out_gpu, np.ndarray) and out_gpu.dtype == np.int64
    np.testing.assert_array_equal(out_gpu, out_cpu)
    np.testing.assert_array_equal(it_gpu, it_cpu)
    assert (it_cpu > 0).sum() > 50  # the windows do move


def test_moving_blob_sequence_equals_opencv(backend):
    cv2 = pytest.importorskip("cv2")
    yy, xx = np.mgrid[:80, :100]
    windows = np.array([[10, 10, 16, 16], [50, 30, 12, 20], [70, 50, 25, 15]])
    ref = [tuple(w) for w in windows]
    for t in range(6):
        frame = np.zeros((80, 100))
        for cx, cy in ((20 + 3 * t, 18 + t), (58 + 2 * t, 40 - t), (82 - 2 * t, 58)):
            frame += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        prob = np.rint(255 * frame / frame.max()).astype(np.uint8)
        its, windows = mean_shift_track(prob, windows, criteria=(10, 1.0), backend=backend)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 1.0)
        for i, w in enumerate(ref):
            n, w2 = cv2.meanShift(prob, w, crit)
            ref[i] = tuple(int(v) for v in w2)
            assert its[i] == n
        np.testing.assert_array_equal(windows, np.array(ref))


def test_single_window_and_one_launch():
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend()
    img = (_frame() * 255).astype(np.uint8)
    n, w = mean_shift_track(img, (30, 30, 15, 15), backend=be)
    assert (n, w) == mean_shift_track(img, (30, 30, 15, 15))
    mean_shift_track(img, _windows(img.shape, k=1000), backend=be)
    assert be.runtime.launches["ms_track_windows<int, long long>"] == 2
    assert be.runtime.n_launches == 2


def test_bad_backend(backend):
    with pytest.raises(TypeError, match="backend must be .auto., a backend name or an object"):
        mean_shift_track(np.zeros((5, 5)), (0, 0, 2, 2), backend=object())
    with pytest.raises(ValueError, match="non-positive sizes"):  # validated before dispatch
        mean_shift_track(np.zeros((5, 5)), (0, 0, 0, 2), backend=backend)


# ---------------------------------------------------------------- cam_shift
# The mean-shift stage runs batched on the backend; the window adaptation on
# the host with the NumPy code, so boxes and windows must equal NumPy's exactly.


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("criteria", [(10, 1.0), (3, 0.0)])
def test_cam_shift_batched_windows_equal_numpy(backend, dtype, criteria):
    img = _frame(seed=3)
    if np.dtype(dtype).kind in "iu":
        img = np.rint(img * {np.int32: 2**20}.get(dtype, 255))
    img = img.astype(dtype)
    win = _windows(img.shape, seed=4)
    box_gpu, out_gpu = cam_shift(img, win, criteria=criteria, backend=backend)
    box_cpu, out_cpu = cam_shift(img, win, criteria=criteria)
    assert out_gpu.dtype == np.int64 and box_gpu.dtype == np.float32
    assert box_gpu.shape == (len(win), 5)
    np.testing.assert_array_equal(out_gpu, out_cpu)
    np.testing.assert_array_equal(box_gpu, box_cpu)
    # The windows adapt: many change size, and most find mass.
    assert (out_cpu[:, 2:] != win[:, 2:]).any(axis=1).sum() > 100
    assert (box_cpu[:, 2] > 0).sum() > 100


def _blob_frames(n=6):
    yy, xx = np.mgrid[:80, :100]
    for t in range(n):
        frame = np.zeros((80, 100))
        for cx, cy in ((20 + 3 * t, 18 + t), (58 + 2 * t, 40 - t), (82 - 2 * t, 58)):
            frame += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        yield np.rint(255 * frame / frame.max()).astype(np.uint8)


def _rotating_ellipse_frames(n=8):
    """An elliptic blob moving and turning (the NumPy CamShift tests' kind of sequence)."""
    yy, xx = np.mgrid[:90, :120]
    for t in range(n):
        cx, cy, th = 30 + 6 * t, 30 + 3 * t + 4 * np.sin(t / 2), 0.2 * t
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        yield (255 * np.clip(1 - (u / 16) ** 2 - (v / 8) ** 2, 0, None) ** 2).astype(np.uint8)


def _assert_box_close(row, ref):
    (rcx, rcy), (rbw, rbh), rangle = ref
    np.testing.assert_allclose(row[:4], [rcx, rcy, rbw, rbh], rtol=1e-5, atol=1e-4)
    d = abs(float(row[4]) - rangle) % 180.0
    assert min(d, 180.0 - d) < 1e-3


@pytest.mark.parametrize("frames, start", [
    (_blob_frames, [[10, 10, 16, 16], [50, 30, 12, 20], [70, 50, 25, 15]]),
    (_rotating_ellipse_frames, [[15, 20, 30, 24], [20, 15, 20, 30], [60, 70, 10, 10]]),
])
def test_cam_shift_moving_blob_sequence_equals_numpy_and_opencv(backend, frames, start):
    cv2 = pytest.importorskip("cv2")
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 1.0)
    windows = np.array(start)
    ref = [tuple(w) for w in windows]
    sizes = set()
    for prob in frames():
        boxes, new = cam_shift(prob, windows, criteria=crit, backend=backend)
        boxes_np, new_np = cam_shift(prob, windows, criteria=crit)
        np.testing.assert_array_equal(new, new_np)
        np.testing.assert_array_equal(boxes, boxes_np)
        windows = new
        for i, w in enumerate(ref):
            box_cv, w_cv = cv2.CamShift(prob, w, crit)
            ref[i] = tuple(int(v) for v in w_cv)
            _assert_box_close(boxes[i], box_cv)
        np.testing.assert_array_equal(windows, np.array(ref))
        sizes.update(tuple(w[2:]) for w in windows.tolist())
    assert len(sizes) > 3  # the windows adapt


def test_cam_shift_single_window_and_one_launch():
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend()
    img = (_frame() * 255).astype(np.uint8)
    box, w = cam_shift(img, (30, 30, 15, 15), backend=be)
    assert (box, w) == cam_shift(img, (30, 30, 15, 15))
    assert isinstance(w, tuple) and all(type(v) is int for v in w)
    cam_shift(img, _windows(img.shape, k=1000), backend=be)
    assert be.runtime.launches["ms_track_windows<int, long long>"] == 2
    assert be.runtime.n_launches == 2
    assert cam_shift(img, (30, 30, 15, 15), backend="numpy") == (box, w)


def test_cam_shift_bad_backend(backend):
    with pytest.raises(TypeError, match="backend must be .auto., a backend name or an object"):
        cam_shift(np.zeros((5, 5)), (0, 0, 2, 2), backend=object())
    with pytest.raises(ValueError, match="non-positive sizes"):
        cam_shift(np.zeros((5, 5)), (0, 0, 0, 2), backend=backend)
