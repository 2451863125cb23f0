"""The mean-shift filter of an image: the NumPy path, vectorized over window
offsets, and the hand-off to an image backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._driver import device_backend, to_numpy
from ._checks import check_image, check_int, check_positive, thread_count


def _window_bounds(pos, sp32):
    """Window [lo, hi] relative to ``pos``: OpenCV's ``cvRound(pos -/+ sp)`` in float32."""
    p = pos.astype(np.float32)
    lo = np.rint(p - sp32).astype(np.int64) - pos
    hi = np.rint(p + sp32).astype(np.int64) - pos
    return lo, hi


def _filter_chunk(src, width_p, pad, y, x, colour, *, sp, threshold, max_iter, eps, round_colors):
    """Mean-shift filter one chunk of pixels in place; see the module docstring.

    ``src`` holds the padded channels, shape (C, padded pixels); ``y``, ``x``
    (int64) and ``colour`` (float64, shape (C, m)) are updated in place.
    """
    n_ch = src.shape[0]
    wdt = src.dtype
    sp32 = np.float32(sp)
    active = np.arange(y.shape[0])
    for _ in range(max_iter):
        if active.size == 0:
            break
        ya, xa = y[active], x[active]
        ca = colour[:, active]
        c_w = ca.astype(wdt)
        m = active.size
        lo_x, hi_x = _window_bounds(xa, sp32)
        lo_y, hi_y = _window_bounds(ya, sp32)
        r = int(max(-lo_x.min(), hi_x.max(), -lo_y.min(), hi_y.max()))
        base = (ya + pad) * width_p + (xa + pad)
        # Accumulated in the working dtype (see mean_shift_filter): sums of
        # source values and pixel counts per row and per column offset.
        sums = np.zeros((n_ch, m), dtype=wdt)
        col_cnt = np.zeros((2 * r + 1, m), dtype=wdt)
        row_cnt = np.empty(m, dtype=wdt)
        cnt = np.zeros(m, dtype=wdt)
        sdy = np.zeros(m, dtype=wdt)
        idx = np.empty(m, dtype=np.int64)
        t = np.empty((n_ch, m), dtype=wdt)
        d2 = np.empty(m, dtype=wdt)
        tmp = np.empty(m, dtype=wdt)
        inc = np.empty(m, dtype=bool)
        incf = np.empty(m, dtype=wdt)
        # Offsets inside every pixel's window need no mask (non-integer radii
        # make the outermost ring depend on the position's parity, as in OpenCV).
        x_masks = {d: (lo_x <= d) & (d <= hi_x) for d in range(-r, r + 1)
                   if not ((lo_x <= d).all() and (d <= hi_x).all())}
        y_masks = {d: (lo_y <= d) & (d <= hi_y) for d in range(-r, r + 1)
                   if not ((lo_y <= d).all() and (d <= hi_y).all())}
        for dy in range(-r, r + 1):
            row_cnt.fill(0.0)
            my = y_masks.get(dy)
            for dx in range(-r, r + 1):
                np.add(base, dy * width_p + dx, out=idx)
                for ch in range(n_ch):
                    # Indices are always in range (padded source); mode="wrap" skips
                    # the buffering of mode="raise" and measured fastest.
                    np.take(src[ch], idx, out=t[ch], mode="wrap")
                    np.subtract(t[ch], c_w[ch], out=tmp)
                    if ch == 0:
                        np.multiply(tmp, tmp, out=d2)
                    else:
                        np.multiply(tmp, tmp, out=tmp)
                        d2 += tmp
                np.less_equal(d2, threshold, out=inc)
                mx = x_masks.get(dx)
                if mx is not None:
                    inc &= mx
                if my is not None:
                    inc &= my
                # Multiplying by a 0/1 weight runs at full SIMD speed; a masked
                # add (where=inc) is 30x slower on a mixed mask.
                np.copyto(incf, inc)
                for ch in range(n_ch):
                    np.multiply(t[ch], incf, out=tmp)
                    sums[ch] += tmp
                row_cnt += incf
                col_cnt[dx + r] += incf
            cnt += row_cnt
            sdy += dy * row_cnt
        sdx = np.arange(-r, r + 1, dtype=np.float64) @ col_cnt.astype(np.float64)
        sums, sdy, cnt = (a.astype(np.float64) for a in (sums, sdy, cnt))
        alive = cnt > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / cnt
        # OpenCV: x1 = cvRound(sx * (1. / count)) with sx the absolute sum.
        x1 = np.rint((cnt * xa + sdx) * inv)
        y1 = np.rint((cnt * ya + sdy) * inv)
        c1 = sums * inv
        if round_colors:
            c1 = np.rint(c1)
        with np.errstate(invalid="ignore"):
            moved = np.abs(x1 - xa) + np.abs(y1 - ya) + ((c1 - ca) ** 2).sum(axis=0)
            stop = ((x1 == xa) & (y1 == ya)) | (moved <= eps) | ~alive
        upd = active[alive]
        y[upd] = y1[alive].astype(np.int64)
        x[upd] = x1[alive].astype(np.int64)
        colour[:, upd] = c1[:, alive]
        active = active[~stop]


def mean_shift_filter(image, spatial_radius, range_radius, *, max_iter=5, eps=1.0,
                      round_colors=False, n_jobs=None, chunk_size=32768, backend="auto"):
    """Mean-shift filtering of an image in its own colour values (no conversion).

    The filtering step of :func:`segment_image`, on the colour values as
    given.

    Parameters
    ----------
    image : array-like of shape (height, width, channels) or (height, width)
        The image, any number of channels.
    spatial_radius, range_radius, max_iter, eps, round_colors, n_jobs
        As for :func:`segment_image`.
    chunk_size : int, default=32768
        Pixels per unit of work (one thread works on one chunk at a time);
        the working memory is about ``(200 + 8 * spatial_radius) * chunk_size``
        bytes per thread.
    backend : {"auto", "numpy", "cupy"}, a backend object or None, default="auto"
        The values of ``MeanShift(backend=...)``; "auto" takes the GPU when
        there is one. "numpy" (and None): the NumPy path here. "cupy" or a backend with the image
        capability (:class:`~gpumeanshift.backends.base.ImageBackend`: the
        :class:`~gpumeanshift.backends.cuda.backend.CudaBackend`, e.g. ``gpumeanshift.testing.emulated_backend()``): the
        CUDA kernel, one thread per pixel, same results (1 to 4 channels).
        ``n_jobs`` and ``chunk_size`` apply to the NumPy path only.

    Returns
    -------
    filtered : ndarray of shape (height, width, channels), float64
        The colour of the mode each pixel climbed to (unrounded unless
        ``round_colors``).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.segmentation import mean_shift_filter
    >>> img = np.zeros((4, 6, 1))
    >>> img[:, 3:] = 100.0
    >>> img[0, 0] = 4.0
    >>> mean_shift_filter(img, 1, 10)[..., 0].round(2)
    array([[  1.  ,   0.67,   0.  , 100.  , 100.  , 100.  ],
           [  0.67,   0.44,   0.  , 100.  , 100.  , 100.  ],
           [  0.  ,   0.  ,   0.  , 100.  , 100.  , 100.  ],
           [  0.  ,   0.  ,   0.  , 100.  , 100.  , 100.  ]])
    """
    img = check_image(image, "rgb")
    sp = check_positive(spatial_radius, "spatial_radius", 1.0)
    sr = check_positive(range_radius, "range_radius", 0.0)
    max_iter = check_int(max_iter, "max_iter", 1)
    eps = check_positive(eps, "eps", 0.0)
    chunk_size = check_int(chunk_size, "chunk_size", 1)
    n_threads = thread_count(n_jobs)
    device = device_backend(backend)
    if device is not None:
        return _filter_on_backend(device, img, sp, sr, max_iter, eps, round_colors)
    h, w, n_ch = img.shape
    # float32 halves the memory traffic and holds 8-bit colours, and the sums of
    # up to (2 * 128 + 1)**2 of them, exactly; wider integers and float64 data
    # are worked on in float64.
    narrow = img.dtype == np.float32 or (img.dtype.kind in "biu" and img.dtype.itemsize == 1)
    wdt = np.float32 if narrow else np.float64
    pad = int(np.ceil(sp)) + 1
    # The border: a colour farther than range_radius from every colour a mean
    # can take (finite, so that a 0 weight times it is 0).
    outside = float(img.max()) + 2.0 * sr + 1.0 if img.size else 0.0
    padded = np.full((n_ch, h + 2 * pad, w + 2 * pad), outside, dtype=wdt)
    padded[:, pad:pad + h, pad:pad + w] = np.moveaxis(img, 2, 0)
    src = padded.reshape(n_ch, -1)
    width_p = w + 2 * pad
    threshold = float(np.rint(sr * sr)) if round_colors else sr * sr
    yy, xx = np.divmod(np.arange(h * w, dtype=np.int64), w)
    colour = np.moveaxis(img, 2, 0).reshape(n_ch, -1).astype(np.float64)

    def run(start):
        sl = slice(start, min(start + chunk_size, h * w))
        y_c, x_c, c_c = yy[sl].copy(), xx[sl].copy(), colour[:, sl].copy()
        _filter_chunk(src, width_p, pad, y_c, x_c, c_c, sp=sp, threshold=threshold,
                      max_iter=max_iter, eps=eps, round_colors=round_colors)
        colour[:, sl] = c_c

    starts = range(0, h * w, chunk_size)
    if n_threads == 1 or len(starts) == 1:
        for s in starts:
            run(s)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(run, starts))
    return np.moveaxis(colour.reshape(n_ch, h, w), 0, 2)


def _filter_on_backend(backend, img, sp, sr, max_iter, eps, round_colors):
    """mean_shift_filter on an image backend (its ``filter_image``), as NumPy."""
    out = backend.filter_image(img, sp, sr, max_iter=max_iter, eps=eps,
                               round_colors=bool(round_colors))
    return to_numpy(out)
