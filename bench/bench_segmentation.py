"""Image segmentation: gpumeanshift's NumPy path against cv2.pyrMeanShiftFiltering, side by side.

Run with ``python -m pytest bench/bench_segmentation.py --benchmark-only
-p no:cacheprovider``. Needs ``opencv-python-headless`` (skipped without it).
On a shared, loaded machine add ``--benchmark-timer time.process_time``: the
CPU time of the process (all its threads) is far steadier than wall time.

Per case (one of scikit-learn's sample photographs, the same radii for both):

* ``cv2.pyrMeanShiftFiltering(img, sp, sr, maxLevel=0)``, the reference;
* ``mean_shift_filter(..., round_colors=True)``: OpenCV's arithmetic, checked
  equal to the reference pixel for pixel on the benchmarked result;
* ``mean_shift_filter(...)``: exact mean colours (the default), its PSNR
  against the reference recorded;
* ``segment_image(..., min_region_size=20)``: filtering, labelling and merging.

The best round of each is recorded; at the end of the module the ratio of
each gpumeanshift variant's time to OpenCV's is printed (above 1: slower
than OpenCV).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from _record import best_seconds, record, result

cv2 = pytest.importorskip("cv2")

from gpumeanshift.segmentation import mean_shift_filter, segment_image  # noqa: E402

CASES = {
    "china 214x320 sp=10 sr=20": ("china.jpg", 2, 10, 20),
    "flower 427x640 sp=5 sr=15": ("flower.jpg", 1, 5, 15),
}
REFERENCE = "cv2.pyrMeanShiftFiltering"
ROUNDS = 3


def _image(name, step):
    from sklearn.datasets import load_sample_image

    return np.ascontiguousarray(load_sample_image(name)[::step, ::step])


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def references():
    return {}


@pytest.fixture(scope="module", autouse=True)
def ratio_summary(request):
    yield
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    lines = []
    for case in CASES:
        ref = result(case, REFERENCE)
        if not ref or not ref.get("seconds"):
            continue
        for impl in ("round_colors=True", "exact means", "segment_image"):
            ours = result(case, f"gpumeanshift {impl}")
            if ours and ours.get("seconds"):
                extra = f"  PSNR {ours['psnr']:.2f} dB" if "psnr" in ours else ""
                lines.append(f"{case:<28} gpumeanshift {impl:<18} {ours['seconds']:8.3f} s  "
                             f"{ours['seconds'] / ref['seconds']:6.2f}x OpenCV's time{extra}")
    if lines:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            tr.write_sep("=", "segmentation: gpumeanshift (NumPy) vs cv2.pyrMeanShiftFiltering")
            for line in lines:
                tr.write_line(line)


@pytest.mark.parametrize("case", list(CASES))
def test_opencv(benchmark, references, case):
    name, step, sp, sr = CASES[case]
    img = _image(name, step)
    benchmark.group = f"segmentation {case}"
    out = benchmark.pedantic(cv2.pyrMeanShiftFiltering, args=(img, sp, sr),
                             kwargs={"maxLevel": 0}, rounds=ROUNDS, iterations=1)
    references[case] = out
    record(case, REFERENCE, seconds=best_seconds(benchmark))


def _reference(references, case, img, sp, sr):
    if case not in references:
        references[case] = cv2.pyrMeanShiftFiltering(img, sp, sr, maxLevel=0)
    return references[case]


@pytest.mark.parametrize("case", list(CASES))
def test_round_colors(benchmark, references, case):
    name, step, sp, sr = CASES[case]
    img = _image(name, step)
    benchmark.group = f"segmentation {case}"
    out = benchmark.pedantic(mean_shift_filter, args=(img, sp, sr), kwargs={"round_colors": True},
                             rounds=ROUNDS, iterations=1)
    np.testing.assert_array_equal(out.astype(np.uint8), _reference(references, case, img, sp, sr))
    record(case, "gpumeanshift round_colors=True", seconds=best_seconds(benchmark))


@pytest.mark.parametrize("case", list(CASES))
def test_exact_means(benchmark, references, case):
    name, step, sp, sr = CASES[case]
    img = _image(name, step)
    benchmark.group = f"segmentation {case}"
    out = benchmark.pedantic(mean_shift_filter, args=(img, sp, sr), rounds=ROUNDS, iterations=1)
    psnr = _psnr(np.clip(np.rint(out), 0, 255), _reference(references, case, img, sp, sr))
    assert psnr >= 45.0
    record(case, "gpumeanshift exact means", seconds=best_seconds(benchmark), psnr=psnr)


@pytest.mark.parametrize("case", list(CASES))
def test_segment_image(benchmark, case):
    name, step, sp, sr = CASES[case]
    img = _image(name, step)
    benchmark.group = f"segmentation {case}"
    filtered, labels = benchmark.pedantic(segment_image, args=(img, sp, sr),
                                          kwargs={"min_region_size": 20}, rounds=ROUNDS, iterations=1)
    assert np.bincount(labels.ravel()).min() >= 20
    record(case, "gpumeanshift segment_image", seconds=best_seconds(benchmark))
