"""Window tracking: the same windows, boxes and iteration counts as cv2.meanShift / cv2.CamShift."""

import numpy as np
import pytest

from gpumeanshift.tracking import cam_shift, mean_shift_track

H, W = 120, 160
COUNT, EPS = 1, 2  # cv2.TERM_CRITERIA_COUNT, cv2.TERM_CRITERIA_EPS

# (ours, OpenCV's) for the three kinds of termination.
CRITERIA = {
    "count-only": ((2, None), (COUNT, 2, 0.0)),
    "eps-only": ((None, 2.0), (EPS, 0, 2.0)),
    "both": ((6, 1.0), (COUNT | EPS, 6, 1.0)),
    "both-tight": ((30, 0.0), (COUNT | EPS, 30, 0.0)),
}


def _blob(cx, cy, sx, sy, theta, dtype):
    """An elliptic blob of compact support (no far tails), as uint8 or float32."""
    yy, xx = np.mgrid[0:H, 0:W]
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    f = np.clip(1.0 - (u / sx) ** 2 - (v / sy) ** 2, 0.0, None) ** 2
    return (255 * f).astype(np.uint8) if dtype == np.uint8 else f.astype(np.float32)


def _frames(n=25, dtype=np.uint8, speed=3.0, seed=0):
    """A blob moving on a curve and turning; a weak noise floor on some frames."""
    rng = np.random.default_rng(seed)
    for t in range(n):
        cx = 30 + speed * t + 6 * np.sin(t / 3)
        cy = 40 + 1.5 * speed * t * 0.5 + 5 * np.cos(t / 4)
        p = _blob(cx, cy, 18, 9, 0.15 * t, dtype)
        if t % 4 == 1:
            noise = rng.random(p.shape) < 0.01
            p = np.where(noise, p.max() // 3 if dtype == np.uint8 else 0.3, p).astype(dtype)
        yield p


def _assert_boxes_close(ours, ref):
    (cx, cy), (bw, bh), angle = ours
    (rcx, rcy), (rbw, rbh), rangle = ref
    np.testing.assert_allclose([cx, cy, bw, bh], [rcx, rcy, rbw, rbh], rtol=1e-5, atol=1e-4)
    d = abs(angle - rangle) % 180.0
    assert min(d, 180.0 - d) < 1e-3


@pytest.mark.parametrize("criteria", list(CRITERIA))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_mean_shift_sequence_matches_opencv(criteria, dtype):
    cv2 = pytest.importorskip("cv2")
    ours_crit, cv_crit = CRITERIA[criteria]
    win_ours = win_cv = (0, 20, 24, 20)
    iterations = []
    for p in _frames(dtype=dtype):
        it_cv, win_cv = cv2.meanShift(p, win_cv, cv_crit)
        it, win_ours = mean_shift_track(p, win_ours, criteria=ours_crit)
        assert (it, win_ours) == (it_cv, tuple(win_cv))
        iterations.append(it)
    # The sequence exercises the criterion: the blob moves, so windows move.
    assert max(iterations) >= 2
    if criteria == "count-only":
        assert max(iterations) == 2


@pytest.mark.parametrize("criteria", list(CRITERIA))
def test_opencv_criteria_tuple_is_accepted(criteria):
    cv2 = pytest.importorskip("cv2")
    _, cv_crit = CRITERIA[criteria]
    p = _blob(100, 70, 15, 10, 0.3, np.uint8)
    assert mean_shift_track(p, (60, 40, 25, 25), criteria=cv_crit) == \
        (lambda r: (r[0], tuple(r[1])))(cv2.meanShift(p, (60, 40, 25, 25), cv_crit))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_cam_shift_sequence_matches_opencv(dtype):
    cv2 = pytest.importorskip("cv2")
    crit = (COUNT | EPS, 10, 1.0)
    win_ours = win_cv = (10, 25, 30, 24)
    sizes = set()
    for p in _frames(dtype=dtype):
        box_cv, win_cv = cv2.CamShift(p, win_cv, crit)
        box, win_ours = cam_shift(p, win_ours, criteria=crit)
        assert win_ours == tuple(win_cv)
        _assert_boxes_close(box, box_cv)
        sizes.add(win_ours[2:])
    assert len(sizes) > 3  # the window adapts


def test_many_windows_in_one_call_match_one_call_each():
    cv2 = pytest.importorskip("cv2")
    p = np.maximum.reduce([_blob(40, 30, 12, 8, 0.2, np.uint8), _blob(110, 80, 20, 10, 1.0, np.uint8),
                           _blob(130, 20, 9, 9, 0.0, np.uint8)])
    rng = np.random.default_rng(5)
    windows = np.column_stack([rng.integers(-15, W, 40), rng.integers(-15, H, 40),
                               rng.integers(1, 50, 40), rng.integers(1, 50, 40)])
    crit = (COUNT | EPS, 8, 1.0)
    iters, out = mean_shift_track(p, windows, criteria=crit)
    boxes, cam = cam_shift(p, windows, criteria=crit)
    assert out.shape == (40, 4) and boxes.shape == (40, 5) and boxes.dtype == np.float32
    for k, w in enumerate(windows.tolist()):
        it_cv, w_cv = cv2.meanShift(p, tuple(w), crit)
        assert (iters[k], tuple(out[k])) == (it_cv, tuple(w_cv))
        box_cv, c_cv = cv2.CamShift(p, tuple(w), crit)
        assert tuple(cam[k]) == tuple(c_cv)
        b = boxes[k]
        _assert_boxes_close(((b[0], b[1]), (b[2], b[3]), b[4]), box_cv)


@pytest.mark.parametrize(
    "window",
    [
        (-30, -30, 40, 40),  # partly outside
        (150, 110, 40, 40),  # partly outside, bottom right
        (500, 500, 10, 10),  # entirely outside: OpenCV recentres a 1 x 1 window
        (5, 100, 10, 10),  # no mass inside: 0 iterations
        (70, 50, 1, 1),  # a single pixel
        (0, 0, W, H),  # the whole image
    ],
)
def test_edge_windows_match_opencv(window):
    cv2 = pytest.importorskip("cv2")
    p = _blob(80, 50, 14, 9, 0.4, np.uint8)
    for crit in [(COUNT | EPS, 10, 1.0), (COUNT, 3, 0.0)]:
        it_cv, w_cv = cv2.meanShift(p, window, crit)
        assert mean_shift_track(p, window, criteria=crit) == (it_cv, tuple(w_cv))
        box_cv, c_cv = cv2.CamShift(p, window, crit)
        box, c = cam_shift(p, window, criteria=crit)
        assert c == tuple(c_cv)
        _assert_boxes_close(box, box_cv)


def test_random_windows_and_blobs_match_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(11)
    for _ in range(60):
        p = _blob(*rng.uniform([-10, -10, 3, 3, 0], [W + 10, H + 10, 30, 30, np.pi]), np.uint8)
        crit = [(COUNT, int(rng.integers(1, 12)), 0.0), (EPS, 0, float(rng.uniform(0, 3))),
                (COUNT | EPS, int(rng.integers(1, 12)), float(rng.uniform(0, 3)))][int(rng.integers(3))]
        w = (int(rng.integers(-20, W)), int(rng.integers(-20, H)),
             int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        it_cv, w_cv = cv2.meanShift(p, w, crit)
        assert mean_shift_track(p, w, criteria=crit) == (it_cv, tuple(w_cv))
        box_cv, c_cv = cv2.CamShift(p, w, crit)
        box, c = cam_shift(p, w, criteria=crit)
        assert c == tuple(c_cv)
        _assert_boxes_close(box, box_cv)


def test_tracks_the_blob_without_opencv():
    win = (10, 25, 30, 24)
    for t, p in enumerate(_frames(n=10)):
        _, win = mean_shift_track(p, win)
        cx = 30 + 3.0 * t + 6 * np.sin(t / 3)
        assert abs(win[0] + win[2] / 2 - cx) <= 3


def test_iteration_count_semantics():
    p = np.zeros((50, 50), dtype=np.uint8)
    p[30:36, 30:36] = 200
    # No mass in the window: stops at once, 0 iterations, window unchanged.
    assert mean_shift_track(p, (0, 0, 8, 8), criteria=(10, 1.0)) == (0, (0, 0, 8, 8))
    # Count-only stops after exactly max_iter steps while still moving...
    it, _ = mean_shift_track(p, (16, 16, 16, 16), criteria=(1, None))
    assert it == 1
    # ...and at rest the iteration that finds no move is not counted.
    it, win = mean_shift_track(p, (16, 16, 16, 16), criteria=(50, 1.0))
    assert mean_shift_track(p, win, criteria=(50, 1.0)) == (0, win)


@pytest.mark.parametrize(
    "prob, window, criteria, error, match",
    [
        (np.zeros((5, 5)), (0, 0, 0, 3), (5, 1.0), ValueError, "non-positive"),
        (np.zeros((5, 5, 3)), (0, 0, 2, 2), (5, 1.0), ValueError, "single-channel"),
        (np.zeros((5, 5)), (0, 0, 2), (5, 1.0), ValueError, "window"),
        (np.zeros((5, 5)), (0, 0, 2.5, 2), (5, 1.0), TypeError, "integers"),
        (np.zeros((5, 5)), (0, 0, 2, 2), (5,), ValueError, "criteria"),
        (np.zeros((5, 5)), (0, 0, 2, 2), (5.5, 1.0), TypeError, "max_iter"),
        (np.zeros((5, 5)), (0, 0, 2, 2), (5, "1"), TypeError, "eps"),
        (np.array([["a"]]), (0, 0, 1, 1), (5, 1.0), ValueError, "real numbers"),
    ],
)
def test_errors(prob, window, criteria, error, match):
    with pytest.raises(error, match=match):
        mean_shift_track(prob, window, criteria=criteria)
