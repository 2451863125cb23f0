"""Image segmentation: OpenCV parity, colour conversion, region labelling and merging."""

import subprocess
import sys

import numpy as np
import pytest

from gpumeanshift.segmentation import (
    label_regions,
    lab_to_rgb,
    mean_shift_filter,
    rgb_to_lab,
    segment_image,
)

# Measured on scikit-learn's two sample photographs, downscaled 4x (107 x 160),
# spatial_radius=6, range_radius=25, round_colors=False against
# cv2.pyrMeanShiftFiltering(maxLevel=0): 51.0 dB (china) and 52.7 dB (flower),
# mean absolute differences 0.18 and 0.14 grey levels. The whole difference is
# OpenCV's rounding of the mean colour at every step: it moves a mode by at
# most half a level per channel and step, and now and then flips a pixel of
# the window across the colour radius, so a few pixels settle on a
# neighbouring mode. The threshold sits 3 dB below the measurements and above
# every plausible mistake, measured the same way: max_iter=10 instead of 5
# gives 46.4 / 47.2 dB, max_iter=2 41.2 / 41.7, spatial_radius 5 instead of 6
# 39.9 / 41.3, range_radius 22 instead of 25 39.4 / 41.1.
PSNR_MIN_DB = 48.0
MAD_MAX = 0.3


def _photo(name, step=4):
    from sklearn.datasets import load_sample_image

    return np.ascontiguousarray(load_sample_image(name)[::step, ::step])


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _same_partition(a, b):
    """True when two label images split the pixels into the same regions."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


# ----------------------------------------------------------------- OpenCV parity
@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
@pytest.mark.parametrize("sp, sr", [(5, 20), (2.5, 15)])
def test_round_colors_equals_opencv(name, sp, sr):
    cv2 = pytest.importorskip("cv2")
    img = _photo(name)
    ref = cv2.pyrMeanShiftFiltering(img, sp, sr, maxLevel=0)
    filtered, _ = segment_image(img, sp, sr, round_colors=True)
    np.testing.assert_array_equal(filtered, ref)


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_exact_means_close_to_opencv(name):
    cv2 = pytest.importorskip("cv2")
    img = _photo(name)
    ref = cv2.pyrMeanShiftFiltering(img, 6, 25, maxLevel=0)
    filtered, _ = segment_image(img, 6, 25)
    assert filtered.dtype == np.uint8
    assert _psnr(filtered, ref) >= PSNR_MIN_DB
    assert np.abs(filtered.astype(int) - ref).mean() <= MAD_MAX
    assert not np.array_equal(filtered, ref)  # the rounding does make a difference


def test_opencv_termination_criteria():
    cv2 = pytest.importorskip("cv2")
    img = _photo("flower.jpg", step=6)
    for max_iter, eps in [(1, 1.0), (3, 0.0), (20, 4.0)]:
        crit = (cv2.TERM_CRITERIA_MAX_ITER | cv2.TERM_CRITERIA_EPS, max_iter, eps)
        ref = cv2.pyrMeanShiftFiltering(img, 4, 18, maxLevel=0, termcrit=crit)
        out = mean_shift_filter(img, 4, 18, max_iter=max_iter, eps=eps, round_colors=True)
        np.testing.assert_array_equal(out.astype(np.uint8), ref)


# ------------------------------------------------------------------- filtering
def test_chunks_and_threads_do_not_change_the_result():
    img = _photo("china.jpg", step=8)
    ref = mean_shift_filter(img, 3, 20, n_jobs=1)
    out = mean_shift_filter(img, 3, 20, n_jobs=2, chunk_size=700)
    np.testing.assert_array_equal(out, ref)


def test_constant_image_is_one_region():
    img = np.full((9, 11, 3), 77, dtype=np.uint8)
    filtered, labels = segment_image(img, 2, 10)
    np.testing.assert_array_equal(filtered, img)
    assert (labels == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_and_grayscale_images_keep_shape_and_dtype(dtype):
    rng = np.random.default_rng(1)
    img = (rng.random((12, 15)) > 0.5).astype(dtype) + rng.normal(0, 0.01, (12, 15)).astype(dtype)
    filtered, labels = segment_image(img, 2, 0.2)
    assert filtered.shape == img.shape and filtered.dtype == dtype
    assert labels.shape == img.shape
    # Two grey levels 1 apart, noise 0.01: the filter flattens each level.
    assert np.abs(filtered - np.round(img)).max() < 0.05


def test_non_integer_radius_window_follows_position_parity():
    # sp = 1.5: OpenCV's window edges cvRound(x -/+ 1.5) round half to even, so
    # an even x sees [x-2, x+2] and an odd x sees [x-1, x+1] -- the window depends
    # on the pixel's parity. A single bright column two pixels away reaches even
    # pixels only.
    img = np.zeros((1, 7, 1))
    img[0, 4] = 10.0
    out = mean_shift_filter(img, 1.5, 100, max_iter=1)[0, :, 0]
    # x=1: window [0, 2], no bright pixel; x=2: [0, 4], 5 pixels; x=3: [2, 4], 3 pixels.
    assert out[1] == 0.0
    assert out[2] == pytest.approx(2.0)
    assert out[3] == pytest.approx(10 / 3)


# ------------------------------------------------------------------ colour space
def test_lab_reference_values():
    # Reference values of the CIE formulas (D65, sRGB), e.g. Lindbloom's calculator.
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]], dtype=np.uint8)
    expected = [[53.2408, 80.0925, 67.2032], [87.7347, -86.1827, 83.1793],
                [32.2970, 79.1875, -107.8602], [53.5850, 0.0, 0.0]]
    np.testing.assert_allclose(rgb_to_lab(rgb), expected, atol=2e-3)


def test_lab_roundtrip_and_opencv():
    img = _photo("china.jpg", step=8)
    lab = rgb_to_lab(img)
    np.testing.assert_array_equal(np.rint(lab_to_rgb(lab) * 255).astype(np.uint8), img)
    cv2 = pytest.importorskip("cv2")
    ref = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    # OpenCV's float conversion approximates the sRGB curve with a spline.
    np.testing.assert_allclose(lab, ref, atol=0.5)


def test_lab_segmentation_separates_colours_of_equal_rgb_distance():
    rng = np.random.default_rng(0)
    img = np.zeros((24, 32, 3), dtype=np.uint8)
    img[:, :16] = (60, 120, 60)
    img[:, 16:] = (60, 120, 90)
    noisy = np.clip(img + rng.normal(0, 1.5, img.shape), 0, 255).astype(np.uint8)
    filtered, labels = segment_image(noisy, 3, 6.0, color_space="lab", min_region_size=20)
    assert filtered.dtype == np.uint8 and filtered.shape == img.shape
    assert int(labels.max()) + 1 == 2
    assert (labels[:, :16] == 0).all() and (labels[:, 16:] == 1).all()
    assert np.abs(filtered.astype(int) - img).max() <= 3


# --------------------------------------------------------------- labelling
def test_labels_are_connected_components_of_equal_colour():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 4, size=(30, 40)) * 10.0
    labels = label_regions(levels, 1.0)
    ref = np.zeros(levels.shape, dtype=np.int64)
    offset = 0
    for v in np.unique(levels):
        comp, n = ndimage.label(levels == v)  # 4-connectivity
        ref[comp > 0] = comp[comp > 0] + offset
        offset += n
    assert _same_partition(labels, ref)
    # Numbered 0..k-1 in raster order of each region's first pixel.
    first = [np.flatnonzero(labels.ravel() == k)[0] for k in range(labels.max() + 1)]
    assert first == sorted(first)


def test_gradient_joins_within_merge_radius():
    ramp = np.tile(np.arange(10.0), (3, 1))
    assert label_regions(ramp, 1.0).max() == 0  # steps of 1 chain into one region
    assert label_regions(ramp, 0.5).max() == 9


def test_small_regions_merge_into_closest_colour():
    img = np.zeros((6, 6))
    img[:, 3:] = 100.0
    img[2, 1] = 30.0  # one pixel inside the dark half
    img[2, 4] = 80.0  # one pixel inside the bright half
    img[0, 2] = 60.0  # on the border: closer to 100 than to 0
    labels = label_regions(img, 1.0, min_region_size=2)
    assert int(labels.max()) + 1 == 2
    assert labels[2, 1] == labels[0, 0]
    assert labels[2, 4] == labels[0, 5]
    assert labels[0, 2] == labels[0, 5]


def test_min_region_size_on_a_photo():
    img = _photo("flower.jpg", step=8)
    _, many = segment_image(img, 3, 15)
    _, merged = segment_image(img, 3, 15, min_region_size=25)
    sizes = np.bincount(merged.ravel())
    assert sizes.min() >= 25
    assert merged.max() < many.max()


def test_plot_segmentation_draws_the_boundaries():
    pytest.importorskip("matplotlib")
    from gpumeanshift.plot import plot_segmentation

    img = np.zeros((10, 12, 3), dtype=np.uint8)
    img[:, 6:] = 200
    filtered, labels = segment_image(img, 2, 20)
    fig = plot_segmentation(img, filtered, labels)
    assert [ax.get_title() for ax in fig.axes] == ["original", "filtered", "2 regions"]
    overlay = fig.axes[2].images[0].get_array()
    assert (overlay[:, 6] == (255, 0, 0)).all()  # the boundary column, in red
    assert (overlay[:, :5] == 0).all()
    assert img[0, 6, 0] == 200  # the input is left as it was
    flat = np.full((6, 6, 3), 90, dtype=np.uint8)
    fig = plot_segmentation(flat, *segment_image(flat, 2, 20))
    assert fig.axes[2].get_title() == "1 region"


# ------------------------------------------------------------------ checks
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"color_space": "hsv"}, ValueError, "color_space"),
        ({"spatial_radius": 0.5}, ValueError, "spatial_radius"),
        ({"range_radius": -1}, ValueError, "range_radius"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"min_region_size": -1}, ValueError, "min_region_size"),
        ({"spatial_radius": "3"}, TypeError, "spatial_radius"),
    ],
)
def test_parameter_errors(kwargs, error, match):
    args = {"spatial_radius": 2, "range_radius": 10, **kwargs}
    with pytest.raises(error, match=match):
        segment_image(np.zeros((4, 4, 3), dtype=np.uint8), **args)


def test_image_errors():
    with pytest.raises(ValueError, match="needs 3 channels"):
        segment_image(np.zeros((4, 4)), 2, 10, color_space="lab")
    with pytest.raises(ValueError, match="shape"):
        segment_image(np.zeros((2, 4, 4, 3)), 2, 10)
    with pytest.raises(ValueError, match="NaN"):
        segment_image(np.full((4, 4), np.nan), 2, 10)


def test_new_modules_import_nothing_heavy():
    code = (
        "import sys, gpumeanshift.segmentation, gpumeanshift.tracking, "
        "gpumeanshift.metrics, gpumeanshift.selection; "
        "print(sorted(m for m in ('cv2', 'matplotlib', 'scipy', 'sklearn', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
