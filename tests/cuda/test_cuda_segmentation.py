"""mean_shift_filter on the CUDA backend (kernel ms_filter_image) vs the NumPy path.

The kernel repeats the NumPy path's float operations in its order, unfused,
so the results are compared for exact equality, for every dtype; 8-bit
images with round_colors are also checked against OpenCV's
pyrMeanShiftFiltering (maxLevel=0), the independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_testlib import make_runtime, runtime_kind  # noqa: F401
from gpumeanshift.backends.cuda.backend import CudaBackend
from gpumeanshift.segmentation import mean_shift_filter


def _photo(h=36, w=48):
    from sklearn.datasets import load_sample_image

    return np.ascontiguousarray(load_sample_image("china.jpg")[120:120 + 2 * h:2, 200:200 + 2 * w:2])


@pytest.fixture
def backend(runtime_kind):
    return CudaBackend(make_runtime(runtime_kind))


@pytest.mark.parametrize("sp,sr", [(3, 12), (5, 25), (2.5, 17.5)])
def test_uint8_round_colors_equals_numpy_and_opencv(backend, sp, sr):
    cv2 = pytest.importorskip("cv2")
    img = _photo()
    out = mean_shift_filter(img, sp, sr, round_colors=True, backend=backend)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == img.shape
    np.testing.assert_array_equal(out, mean_shift_filter(img, sp, sr, round_colors=True))
    ref = cv2.pyrMeanShiftFiltering(img, sp, sr, maxLevel=0)
    np.testing.assert_array_equal(out.astype(np.uint8), ref)


@pytest.mark.parametrize("max_iter,eps", [(1, 1.0), (5, 1.0), (12, 0.0)])
def test_uint8_unrounded_equals_numpy(backend, max_iter, eps):
    img = _photo()
    kw = dict(max_iter=max_iter, eps=eps)
    np.testing.assert_array_equal(mean_shift_filter(img, 4, 20, backend=backend, **kw),
                                  mean_shift_filter(img, 4, 20, **kw))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16], ids=["f64", "f32", "u16"])
def test_any_dtype_and_channel_count_equals_numpy(backend, dtype, channels):
    rng = np.random.default_rng(channels)
    img = _photo(20, 28).astype(np.float64)
    img = np.concatenate([img, img[..., :1]], axis=2)[..., :channels]
    img = img * 0.73 + rng.normal(0, 2.0, img.shape)  # non-integer colours
    if dtype == np.uint16:
        img = np.clip(img * 40, 0, 65535)
    img = img.astype(dtype)
    sr = 900.0 if dtype == np.uint16 else 22.5
    for rc in (False, True):
        np.testing.assert_array_equal(
            mean_shift_filter(img, 3.5, sr, round_colors=rc, max_iter=7, eps=0.5, backend=backend),
            mean_shift_filter(img, 3.5, sr, round_colors=rc, max_iter=7, eps=0.5))


def test_gray_2d_and_thin_images(backend):
    img = _photo()[..., 0]
    np.testing.assert_array_equal(mean_shift_filter(img, 2, 15, backend=backend),
                                  mean_shift_filter(img, 2, 15))
    for shape in ((1, 17, 3), (13, 1, 3), (1, 1, 3)):
        tiny = _photo()[:shape[0], :shape[1]]
        np.testing.assert_array_equal(mean_shift_filter(tiny, 3, 30, backend=backend),
                                      mean_shift_filter(tiny, 3, 30))


def test_one_launch_per_image():
    from gpumeanshift.testing import emulated_backend

    be = emulated_backend()
    mean_shift_filter(_photo(), 4, 20, backend=be, max_iter=9)
    assert be.runtime.launches["ms_filter_image<float, 3>"] == 1 and be.runtime.n_launches == 1


def test_bad_backend_and_channels(backend):
    img = np.zeros((4, 4, 5))
    with pytest.raises(ValueError, match="1 to 4 channels"):
        mean_shift_filter(img, 2, 10, backend=backend)
    with pytest.raises(TypeError, match="backend must be .auto., a backend name or an object"):
        mean_shift_filter(img[..., :3], 2, 10, backend=object())
    with pytest.raises(ValueError, match="spatial_radius"):  # validated before dispatch
        mean_shift_filter(img[..., :3], 0.5, 10, backend=backend)


@pytest.mark.parametrize("color_space,min_region_size", [("rgb", 0), ("lab", 8)])
def test_segment_image_on_the_cuda_backend_equals_numpy(backend, color_space, min_region_size):
    from gpumeanshift.segmentation import segment_image

    img = _photo()
    kw = dict(color_space=color_space, min_region_size=min_region_size)
    filtered, labels = segment_image(img, 4, 12, backend=backend, **kw)
    ref_filtered, ref_labels = segment_image(img, 4, 12, **kw)
    np.testing.assert_array_equal(filtered, ref_filtered)
    np.testing.assert_array_equal(labels, ref_labels)
    assert labels.max() > 0  # more than one region: the comparison is not vacuous
