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
from gpumeanshift.backends.cuda_backend import CudaBackend
from gpumeanshift.tracking import mean_shift_track


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
    assert be.runtime.launches["ms_track_windows<int,long long>"] == 2
    assert be.runtime.n_launches == 2


def test_bad_backend(backend):
    with pytest.raises(TypeError, match="track_windows method"):
        mean_shift_track(np.zeros((5, 5)), (0, 0, 2, 2), backend=object())
    with pytest.raises(ValueError, match="non-positive sizes"):  # validated before dispatch
        mean_shift_track(np.zeros((5, 5)), (0, 0, 0, 2), backend=backend)
