"""Mean-shift window tracking on a probability image, like OpenCV's meanShift and CamShift.

A window moves to the centre of mass of the probability inside it until it
stops moving (``cv2.meanShift``); CamShift then adapts the window's size and
orientation to the second moments of the mass around it (``cv2.CamShift``).
Both follow OpenCV's integer arithmetic step for step, so they return the
same windows and iteration counts.

How many windows are tracked at once
------------------------------------
Every iteration gathers the pixels of all active windows into one
zero-padded block (window x max height x max width, in groups that bound the
memory) and reduces it to the moments at once: the loop runs over
iterations, never over windows. Integer images are summed in int64, exactly,
as OpenCV's integer moment sums are; float images in float64. (Summed-area
tables would cost O(1) per window, but in floating point they lose the small
masses of a blob's tails to cancellation, and OpenCV does not.)
"""

from __future__ import annotations

import numbers

import numpy as np

from ._driver import device_backend, to_numpy

DBL_EPSILON = np.finfo(np.float64).eps
_TOLERANCE = 10  # OpenCV's CamShift grows the window by this much on each side
COUNT, EPS = 1, 2  # cv2.TERM_CRITERIA_COUNT (== MAX_ITER) and cv2.TERM_CRITERIA_EPS


def _parse_criteria(criteria):
    """(max_iter, eps) or OpenCV's (type, max_count, epsilon) -> (n_iter, eps^2 threshold)."""
    if not isinstance(criteria, (tuple, list)) or len(criteria) not in (2, 3):
        raise ValueError(
            "criteria must be (max_iter, eps) or OpenCV's (type, max_count, epsilon), "
            f"got {criteria!r}"
        )
    if len(criteria) == 3:
        kind, count, eps = criteria
        if isinstance(kind, bool) or not isinstance(kind, numbers.Integral):
            raise TypeError(f"criteria type must be an integer of OpenCV flags, got {kind!r}")
        count = count if kind & COUNT else None
        eps = eps if kind & EPS else None
    else:
        count, eps = criteria
    if count is not None and (isinstance(count, bool) or not isinstance(count, numbers.Integral)):
        raise TypeError(f"max_iter must be an integer or None, got {count!r}")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real)
                            or not np.isfinite(eps)):
        raise TypeError(f"eps must be a finite real number or None, got {eps!r}")
    # OpenCV: no count -> 100 iterations; no eps -> 1 pixel; eps compared squared and rounded.
    n_iter = max(int(count), 1) if count is not None else 100
    eps = max(float(eps), 0.0) if eps is not None else 1.0
    return n_iter, float(np.rint(eps * eps))


def _check_prob_image(prob_image):
    p = np.asarray(prob_image)
    if p.ndim != 2:
        raise ValueError(f"prob_image must be a 2-D (single-channel) image, got shape {p.shape}")
    if p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"prob_image is empty (shape {p.shape})")
    if p.dtype == bool:
        p = p.astype(np.uint8)
    if p.dtype.kind not in "iuf":
        raise ValueError(f"prob_image must hold real numbers, got dtype {p.dtype}")
    return p


def _check_windows(window):
    w = np.asarray(window)
    single = w.ndim == 1
    w = np.atleast_2d(w)
    if w.ndim != 2 or w.shape[1] != 4:
        raise ValueError(
            "window must be (x, y, width, height) or an array of shape (k, 4), "
            f"got shape {np.shape(window)}"
        )
    if w.dtype.kind not in "iu":
        if w.dtype.kind != "f" or not np.all(w == np.round(w)):
            raise TypeError(f"window coordinates must be integers, got {window!r}")
    w = w.astype(np.int64)
    if np.any(w[:, 2] <= 0) or np.any(w[:, 3] <= 0):
        raise ValueError("Input window has non-positive sizes (width and height must be > 0)")
    return w, single


class _RectMoments:
    """Raw moments of rectangles of an image, relative to each rectangle's corner.

    The rectangles' pixels are gathered into one zero-padded block per group
    of windows (at most ``block_elements`` pixels per group) and reduced at
    once. Integer images are summed in int64, exactly, like OpenCV's integer
    moment accumulators; float images in float64.
    """

    def __init__(self, p, order, block_elements=1 << 22):
        self.height, self.width = p.shape
        self.dtype = np.int64 if p.dtype.kind in "iu" else np.float64
        self.flat = np.ascontiguousarray(p).ravel()
        self.order = order
        self.block_elements = block_elements

    def __call__(self, x, y, w, h, order=None):
        """float64 arrays m00, m10, m01 (and m20, m11, m02 for order 2), as OpenCV's moments(roi)."""
        order = self.order if order is None else order
        k = len(x)
        n_out = 6 if order == 2 else 3
        out = np.zeros((n_out, k), dtype=self.dtype)
        if k == 0:
            return list(out.astype(np.float64))
        wmax, hmax = int(w.max()), int(h.max())
        per_group = max(1, self.block_elements // (wmax * hmax))
        ox = np.arange(wmax, dtype=self.dtype)
        oy = np.arange(hmax, dtype=self.dtype)
        for s in range(0, k, per_group):
            g = slice(s, min(s + per_group, k))
            inside = (oy[None, :, None] < h[g, None, None]) & (ox[None, None, :] < w[g, None, None])
            idx = (y[g, None, None] + oy[None, :, None].astype(np.int64)) * self.width \
                + (x[g, None, None] + ox[None, None, :].astype(np.int64))
            block = np.where(inside, self.flat[np.where(inside, idx, 0)], 0).astype(self.dtype)
            cols = block.sum(axis=1)  # (group, wmax): mass per column
            rows = block.sum(axis=2)  # (group, hmax): mass per row
            out[0, g] = rows.sum(axis=1)
            out[1, g] = (cols * ox).sum(axis=1)
            out[2, g] = (rows * oy).sum(axis=1)
            if order == 2:
                out[3, g] = (cols * ox * ox).sum(axis=1)
                out[4, g] = ((block * ox).sum(axis=2) * oy).sum(axis=1)
                out[5, g] = (rows * oy * oy).sum(axis=1)
        return list(out.astype(np.float64))


def _split(a):
    t = 134217729.0 * a  # 2**27 + 1: Veltkamp's split into two 26-bit halves
    hi = t - (t - a)
    return hi, a - hi


def _fma(a, b, c):
    """a * b + c with one rounding (a fused multiply-add), from error-free transformations.

    The product is split exactly into ``p + e`` (Dekker), ``p + c`` into
    ``s + t`` (Knuth's TwoSum); ``s + (t + e)`` is then the correctly rounded
    result whenever ``p + c`` cancels (the case that matters here) and within
    an ulp otherwise. Magnitudes must stay below about 1e290.
    """
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    return s + (t + e)


def _cv_round_abs(v):
    """cvRound(fabs(v)); cvRound(NaN) is INT_MIN, which OpenCV's MAX then discards."""
    r = np.rint(np.abs(v))
    return np.where(np.isnan(r), float(np.iinfo(np.int32).min), r)


def _intersect(rect, width, height):
    """OpenCV's ``rect & Rect(0, 0, width, height)``: an empty result is (0, 0, 0, 0)."""
    x0 = np.maximum(rect[:, 0], 0)
    y0 = np.maximum(rect[:, 1], 0)
    x1 = np.minimum(rect[:, 0] + rect[:, 2], width)
    y1 = np.minimum(rect[:, 1] + rect[:, 3], height)
    out = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    out[(out[:, 2] <= 0) | (out[:, 3] <= 0)] = 0
    return out


def _mean_shift(moments, windows, n_iter, eps2):
    width, height = moments.width, moments.height
    cur = windows.copy()
    clipped = _intersect(windows, width, height)
    half_w = clipped[:, 2] * 0.5
    half_h = clipped[:, 3] * 0.5
    iters = np.full(len(cur), n_iter, dtype=np.int64)
    active = np.arange(len(cur))
    for i in range(n_iter):
        if active.size == 0:
            break
        r = _intersect(cur[active], width, height)
        empty = (r == 0).all(axis=1)
        r[empty, 0] = width // 2
        r[empty, 1] = height // 2
        r[:, 2:] = np.maximum(r[:, 2:], 1)
        cur[active] = r
        m00, m10, m01 = moments(r[:, 0], r[:, 1], r[:, 2], r[:, 3], order=1)
        massless = np.abs(m00) < DBL_EPSILON
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = np.rint(m10 / m00 - half_w[active])
            dy = np.rint(m01 / m00 - half_h[active])
        dx = np.where(massless, 0, dx).astype(np.int64)
        dy = np.where(massless, 0, dy).astype(np.int64)
        nx = np.minimum(np.maximum(r[:, 0] + dx, 0), width - r[:, 2])
        ny = np.minimum(np.maximum(r[:, 1] + dy, 0), height - r[:, 3])
        dx, dy = nx - r[:, 0], ny - r[:, 1]
        moving = ~massless
        cur[active[moving], 0] = nx[moving]
        cur[active[moving], 1] = ny[moving]
        stop = massless | (dx * dx + dy * dy < eps2)
        iters[active[stop]] = i
        active = active[~stop]
    return iters, cur


def _track_on_backend(backend, p, windows, n_iter, eps2):
    """_mean_shift on an image backend (its ``track_windows``), as NumPy arrays."""
    iters, out = backend.track_windows(p, windows, n_iter=n_iter, eps2=eps2)
    return to_numpy(iters), to_numpy(out)


def mean_shift_track(prob_image, window, *, criteria=(10, 1.0), backend="auto"):
    """Move windows to the local centre of mass of a probability image (``cv2.meanShift``).

    Each window moves by the rounded offset between its centre and the centre
    of mass of ``prob_image`` inside it, clamped to the image, until the move
    is shorter than ``eps`` or after ``max_iter`` iterations. The arithmetic is
    OpenCV's, so the windows and iteration counts are those of
    ``cv2.meanShift(prob_image, window, criteria)``; many windows are moved
    at once, each on its own.

    Parameters
    ----------
    prob_image : array-like of shape (height, width)
        Back-projection or other non-negative weight image (uint8, other
        integers, float32 or float64).
    window : tuple (x, y, width, height) or array-like of shape (k, 4)
        Initial window(s), integer pixel coordinates, positive sizes.
    criteria : tuple, default=(10, 1.0)
        ``(max_iter, eps)``: stop after ``max_iter`` iterations, or when the
        window moved by less than ``eps`` pixels (``dx^2 + dy^2 <
        round(eps^2)``). None leaves one out, as OpenCV's flags do: no
        ``max_iter`` means 100 iterations, no ``eps`` means 1 pixel. OpenCV's
        own ``(type, max_count, epsilon)`` triple
        (``cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS``, ...) is accepted
        as it is.
    backend : {"auto", "numpy", "cupy"}, a backend object or None, default="auto"
        The values of ``MeanShift(backend=...)``; "auto" takes the GPU when
        there is one. "numpy" (and None): the NumPy path. "cupy" or a backend with the image
        capability (:class:`~gpumeanshift.backends.base.ImageBackend`: the
        :class:`~gpumeanshift.backends.cuda.backend.CudaBackend`, e.g. ``gpumeanshift.testing.emulated_backend()``): all
        windows in one kernel launch, one thread per window, same results.

    Returns
    -------
    iterations : int or ndarray of shape (k,)
        Iterations performed (OpenCV's return value: the iteration that met
        ``eps`` or found no mass is not counted).
    window : tuple or ndarray of shape (k, 4)
        Final window(s), of the form given.

    See Also
    --------
    cam_shift : The adaptive-size, rotated variant.

    Notes
    -----
    Every window moves on its own; the windows share only the image. For
    integer images the moments are exact, so results equal OpenCV's bit for
    bit; float images are summed in float64 in another order than OpenCV's,
    which can differ only where a rounded shift is within an ulp of .5, or
    where a window's whole mass is below about 1e-15 (OpenCV's float moments
    of such windows are not exact: one reads 2x the true sum, past the
    ``DBL_EPSILON`` test that ends the search).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.tracking import mean_shift_track
    >>> prob = np.zeros((60, 80), dtype=np.uint8)
    >>> prob[30:40, 50:60] = 255
    >>> mean_shift_track(prob, (35, 20, 20, 20), criteria=(10, 1))
    (2, (44, 24, 20, 20))
    >>> iters, windows = mean_shift_track(prob, [[35, 20, 20, 20], [0, 0, 10, 10]])
    >>> iters.tolist(), windows.tolist()
    ([2, 0], [[44, 24, 20, 20], [0, 0, 10, 10]])
    """
    p = _check_prob_image(prob_image)
    windows, single = _check_windows(window)
    n_iter, eps2 = _parse_criteria(criteria)
    device = device_backend(backend)
    if device is not None:
        iters, out = _track_on_backend(device, p, windows, n_iter, eps2)
    else:
        iters, out = _mean_shift(_RectMoments(p, 1), windows, n_iter, eps2)
    if single:
        return int(iters[0]), tuple(int(v) for v in out[0])
    return iters, out


def cam_shift(prob_image, window, *, criteria=(10, 1.0), backend="auto"):
    """Continuously adaptive mean shift: track, then fit an oriented box (``cv2.CamShift``).

    Runs :func:`mean_shift_track`, grows each window by 10 pixels on every
    side (clipped to the image), and from the second moments of the mass in
    it computes an oriented box and the window for the next frame, with
    OpenCV's formulas and rounding. The central moments are computed as
    OpenCV's x86-64 wheels compute them (checked on 4.12 and 5.0), with
    fused multiply-adds, emulated exactly: for a round blob the orientation, and with it the next
    window's size, depends on the last bits of ``mu11``.

    Parameters
    ----------
    prob_image : array-like of shape (height, width)
        Back-projection or other non-negative weight image.
    window : tuple (x, y, width, height) or array-like of shape (k, 4)
        Initial window(s).
    criteria : tuple, default=(10, 1.0)
        As for :func:`mean_shift_track`.
    backend : {"auto", "numpy", "cupy"}, a backend object or None, default="auto"
        As for :func:`mean_shift_track`: with a CUDA backend the mean-shift
        stage of all windows runs in one ``track_windows`` launch. The window
        adaptation (moments of the enlarged windows, new size and
        orientation) then runs on the host with the NumPy path's own code, so
        the results are the same as with ``backend=None``.

    Returns
    -------
    box : tuple or ndarray of shape (k, 5), float32
        For one window, ``((cx, cy), (width, height), angle)`` as
        ``cv2.CamShift`` returns it; for several, rows
        ``(cx, cy, width, height, angle)``. A window without mass gives a box
        of zeros (OpenCV's empty ``RotatedRect``).
    window : tuple or ndarray of shape (k, 4)
        The window(s) to start from on the next frame.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.tracking import cam_shift
    >>> yy, xx = np.mgrid[0:80, 0:100]
    >>> prob = (255 * np.exp(-((xx - 60) ** 2 / 200 + (yy - 40) ** 2 / 50))).astype(np.uint8)
    >>> box, window = cam_shift(prob, (40, 25, 20, 20))
    >>> window
    (41, 29, 37, 22)
    >>> [round(v, 1) for v in (*box[0], *box[1], box[2])]
    [59.5, 40.0, 19.7, 34.8, 90.0]
    >>> from gpumeanshift.testing import emulated_backend
    >>> cam_shift(prob, (40, 25, 20, 20), backend=emulated_backend()) == (box, window)
    True
    """
    p = _check_prob_image(prob_image)
    windows, single = _check_windows(window)
    n_iter, eps2 = _parse_criteria(criteria)
    moments = _RectMoments(p, 2)
    width, height = moments.width, moments.height
    device = device_backend(backend)
    if device is not None:
        _, win = _track_on_backend(device, p, windows, n_iter, eps2)
    else:
        _, win = _mean_shift(moments, windows, n_iter, eps2)
    win = np.array(win, dtype=np.int64)
    win[:, 0] = np.maximum(win[:, 0] - _TOLERANCE, 0)
    win[:, 1] = np.maximum(win[:, 1] - _TOLERANCE, 0)
    win[:, 2] += 2 * _TOLERANCE
    win[:, 2] = np.where(win[:, 0] + win[:, 2] > width, width - win[:, 0], win[:, 2])
    win[:, 3] += 2 * _TOLERANCE
    win[:, 3] = np.where(win[:, 1] + win[:, 3] > height, height - win[:, 1], win[:, 3])

    m00, m10, m01, m20, m11, m02 = moments(win[:, 0], win[:, 1], win[:, 2], win[:, 3])
    massless = np.abs(m00) < DBL_EPSILON
    boxes = np.zeros((len(win), 5), dtype=np.float32)
    ok = ~massless
    if ok.any():
        m00, m10, m01, m20, m11, m02 = (v[ok] for v in (m00, m10, m01, m20, m11, m02))
        w = win[ok]
        # Central moments as OpenCV's (FMA-contracted) completeMomentState
        # computes them: bit for bit, because for a round blob the orientation
        # hangs on the last bits of mu11.
        inv = 1.0 / m00
        cx, cy = m10 * inv, m01 * inv
        mu20 = _fma(-m10, cx, m20)
        mu11 = _fma(-m01, cx, m11)
        mu02 = _fma(-m01, cy, m02)
        xc = np.rint(_fma(m10, inv, w[:, 0].astype(np.float64))).astype(np.int64)
        yc = np.rint(_fma(m01, inv, w[:, 1].astype(np.float64))).astype(np.int64)
        a, b, c = mu20 * inv, mu11 * inv, mu02 * inv
        square = np.sqrt(4 * b * b + (a - c) * (a - c))
        theta = np.arctan2(2 * b, a - c + square)
        cs, sn = np.cos(theta), np.sin(theta)
        rotate_a = cs * cs * mu20 + 2 * cs * sn * mu11 + sn * sn * mu02
        rotate_c = sn * sn * mu20 - 2 * cs * sn * mu11 + cs * cs * mu02
        with np.errstate(invalid="ignore"):  # a degenerate blob: NaN, as in OpenCV
            length = np.sqrt(rotate_a * inv) * 4
            bwidth = np.sqrt(rotate_c * inv) * 4
        swap = length < bwidth
        length, bwidth = np.where(swap, bwidth, length), np.where(swap, length, bwidth)
        cs, sn = np.where(swap, sn, cs), np.where(swap, cs, sn)
        theta = np.where(swap, np.pi * 0.5 - theta, theta)
        t0 = np.maximum(_cv_round_abs(length * cs), _cv_round_abs(bwidth * sn)) + 2
        new_w = np.minimum(t0, (width - xc) * 2).astype(np.int64)
        t0 = np.maximum(_cv_round_abs(length * sn), _cv_round_abs(bwidth * cs)) + 2
        new_h = np.minimum(t0, (height - yc) * 2).astype(np.int64)
        # C integer division truncates towards zero.
        new_x = np.maximum(0, xc - np.trunc(new_w / 2).astype(np.int64))
        new_y = np.maximum(0, yc - np.trunc(new_h / 2).astype(np.int64))
        new_w = np.minimum(width - new_x, new_w)
        new_h = np.minimum(height - new_y, new_h)
        win[ok] = np.stack([new_x, new_y, new_w, new_h], axis=1)
        angle = ((np.pi * 0.5 + theta) * 180.0 / np.pi).astype(np.float32)
        angle = np.mod(angle, np.float32(360))  # OpenCV's while loops, in float32
        angle = np.where(angle >= 180, angle - np.float32(180), angle)
        boxes[ok, 0] = new_x.astype(np.float32) + new_w.astype(np.float32) * np.float32(0.5)
        boxes[ok, 1] = new_y.astype(np.float32) + new_h.astype(np.float32) * np.float32(0.5)
        boxes[ok, 2] = bwidth.astype(np.float32)
        boxes[ok, 3] = length.astype(np.float32)
        boxes[ok, 4] = angle
    if single:
        b = [float(v) for v in boxes[0]]
        return ((b[0], b[1]), (b[2], b[3]), b[4]), tuple(int(v) for v in win[0])
    return boxes, win
