"""Image segmentation: mean shift in the joint spatial-range domain.

Every pixel is a point ``(y, x, colour)``. Its mean-shift window is the patch
of the pixel grid within ``spatial_radius`` of its current position (a square,
as in OpenCV), restricted to the pixels whose *original* colour lies within
``range_radius`` of its current colour (Comaniciu and Meer, 2002, with flat
kernels in both domains). The pixel climbs to a mode of the joint density and
takes the mode's colour: that is the filtered image. Region labelling then
joins 4-connected pixels whose filtered colours are close, and regions smaller
than ``min_region_size`` are merged into their closest-coloured neighbour.

How the NumPy path is vectorized
--------------------------------
The loop runs over the window offsets ``(dy, dx)``, never over pixels: for
one offset, one ``np.take`` per channel gathers the source pixel at
``position + offset`` for every active pixel of a chunk at once. The source is
padded by the window radius with a colour beyond the range radius of any
mean, which never passes the colour test, so the image border costs no
bounds check. Positions are integer
(the window is a patch of the grid); a pixel stops when its position does not
move or when ``|dx| + |dy| + |dc|^2 <= eps`` (OpenCV's rule), and stopped
pixels leave the active set. Chunks of pixels are independent and run on a
small thread pool (NumPy releases the GIL in ``take`` and the ufuncs).
"""

from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._driver import device_backend, to_numpy

COLOR_SPACES = ("rgb", "lab")

# sRGB (D65) <-> CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


# ------------------------------------------------------------ colour spaces
def rgb_to_lab(rgb):
    """Convert sRGB to CIE L*a*b* (D65 white).

    Parameters
    ----------
    rgb : array-like of shape (..., 3)
        sRGB colours: ``uint8`` in [0, 255], or floats in [0, 1].

    Returns
    -------
    lab : ndarray of shape (..., 3), float64
        L* in [0, 100], a* and b* roughly in [-128, 127].

    Examples
    --------
    >>> from gpumeanshift.segmentation import rgb_to_lab
    >>> rgb_to_lab([[255, 255, 255], [255, 0, 0]]).round(2) + 0.0
    array([[100.  ,   0.  ,   0.  ],
           [ 53.24,  80.09,  67.2 ]])
    """
    rgb = np.asarray(rgb)
    c = rgb / 255.0 if rgb.dtype.kind in "biu" else rgb.astype(np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    return np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def lab_to_rgb(lab):
    """Convert CIE L*a*b* (D65 white) to sRGB floats in [0, 1] (clipped).

    Parameters
    ----------
    lab : array-like of shape (..., 3)
        L*, a*, b*.

    Returns
    -------
    rgb : ndarray of shape (..., 3), float64

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.segmentation import lab_to_rgb, rgb_to_lab
    >>> rgb = np.array([[12, 200, 90]], dtype=np.uint8)
    >>> np.rint(lab_to_rgb(rgb_to_lab(rgb)) * 255).astype(np.uint8)
    array([[ 12, 200,  90]], dtype=uint8)
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE_D65
    lin = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


# ------------------------------------------------------------------ checks
def _check_positive(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low:
        raise ValueError(f"{name} must be finite and >= {low}, got {value}")
    return value


def _check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_image(image, color_space):
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1 or img.shape[2] < 1:
        raise ValueError(
            f"image must have shape (height, width) or (height, width, channels), got {np.shape(image)}"
        )
    if img.dtype.kind not in "biuf":
        raise ValueError(f"image must hold real numbers, got dtype {img.dtype}")
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise ValueError("image contains NaN or infinity")
    if color_space not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
    if color_space == "lab" and img.shape[2] != 3:
        raise ValueError(f"color_space='lab' needs 3 channels (RGB), got {img.shape[2]}")
    return img


def _n_threads(n_jobs):
    if n_jobs is None or n_jobs == -1:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    return _check_int(n_jobs, "n_jobs", 1)


# --------------------------------------------------------------- filtering
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
    img = _check_image(image, "rgb")
    sp = _check_positive(spatial_radius, "spatial_radius", 1.0)
    sr = _check_positive(range_radius, "range_radius", 0.0)
    max_iter = _check_int(max_iter, "max_iter", 1)
    eps = _check_positive(eps, "eps", 0.0)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    n_threads = _n_threads(n_jobs)
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


# ---------------------------------------------------------------- labelling
def _connected_components(n, u, v):
    """Components of the graph on ``n`` nodes with edges (u, v), labelled by their smallest node.

    Vectorized union-find: every root hooks onto the smallest root it shares an
    edge with, then pointer jumping flattens the trees. Every unfinished root
    either hooks or is hooked onto, so the number of roots per component at
    least halves each round: O(log n) rounds of O(n + edges) work.
    """
    parent = np.arange(n, dtype=np.int64)
    while u.size:
        ru, rv = parent[u], parent[v]
        cross = ru != rv
        if not cross.any():
            break
        u, v, ru, rv = u[cross], v[cross], ru[cross], rv[cross]
        low = np.minimum(ru, rv)
        np.minimum.at(parent, ru, low)
        np.minimum.at(parent, rv, low)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def _grid_edges(h, w):
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return u, v


def _consecutive(roots):
    """Relabel to 0..k-1, numbered in raster order of each region's first pixel."""
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def label_regions(filtered, merge_radius, min_region_size=0):
    """Label 4-connected regions of similar colour, merging the small ones.

    Two 4-neighbours belong to one region when their colours differ by at most
    ``merge_radius`` (Euclidean). Then, while a region has fewer than
    ``min_region_size`` pixels, it joins the adjacent region with the closest
    mean colour (all small regions of a round at once).

    Parameters
    ----------
    filtered : array-like of shape (height, width) or (height, width, channels)
        Usually the output of :func:`mean_shift_filter`.
    merge_radius : float
        Largest colour distance between neighbours of one region.
    min_region_size : int, default=0
        Smallest region kept on its own (in pixels).

    Returns
    -------
    labels : ndarray of shape (height, width), int64
        Region index of each pixel, 0..k-1 in raster order of first pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.segmentation import label_regions
    >>> img = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [0, 5, 9, 9]], dtype=float)
    >>> label_regions(img, 1.0)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 2, 1, 1]])
    >>> label_regions(img, 1.0, min_region_size=2)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 1, 1, 1]])
    """
    img = np.asarray(filtered, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"filtered must be 2-D or 3-D, got shape {img.shape}")
    merge_radius = _check_positive(merge_radius, "merge_radius", 0.0)
    min_region_size = _check_int(min_region_size, "min_region_size", 0)
    h, w, n_ch = img.shape
    flat = img.reshape(-1, n_ch)
    u, v = _grid_edges(h, w)
    close = ((flat[u] - flat[v]) ** 2).sum(axis=1) <= merge_radius**2
    labels = _consecutive(_connected_components(h * w, u[close], v[close]))
    while min_region_size > 1:
        k = int(labels.max()) + 1
        sizes = np.bincount(labels, minlength=k)
        small = sizes < min_region_size
        if k == 1 or not small.any():
            break
        means = np.stack([np.bincount(labels, weights=flat[:, c], minlength=k) for c in range(n_ch)],
                         axis=1) / sizes[:, None]
        lu, lv = labels[u], labels[v]
        diff = lu != lv
        a = np.concatenate([lu[diff], lv[diff]])
        b = np.concatenate([lv[diff], lu[diff]])
        keep = small[a]
        a, b = a[keep], b[keep]
        if a.size == 0:
            break  # small regions without neighbours: nothing to merge into
        dist = ((means[a] - means[b]) ** 2).sum(axis=1)
        # For every small region, its neighbour of closest mean colour (ties: lowest label).
        order = np.lexsort((b, dist, a))
        a, b = a[order], b[order]
        first = np.r_[True, a[1:] != a[:-1]]
        region_root = _connected_components(k, a[first], b[first])
        labels = _consecutive(region_root[labels])
    return labels.reshape(h, w)


# ------------------------------------------------------------ the public API
def segment_image(image, spatial_radius, range_radius, *, color_space="rgb", min_region_size=0,
                  max_iter=5, eps=1.0, merge_radius=None, round_colors=False, n_jobs=None,
                  backend="auto"):
    """Mean-shift segmentation of an image (Comaniciu and Meer, 2002).

    Each pixel climbs the joint spatial-range density: its window is the
    square patch ``(2 * spatial_radius + 1) ** 2`` around its current
    position, and of that patch only the pixels whose colour is within
    ``range_radius`` of its current colour count (flat kernels, the window of
    :func:`cv2.pyrMeanShiftFiltering`). Position and colour move to the mean
    of those pixels, the position rounded to the pixel grid. The filtered
    image holds each pixel's final colour; regions are 4-connected pixels with
    filtered colours within ``merge_radius`` of each other, and regions smaller
    than ``min_region_size`` pixels are merged into their closest-coloured
    neighbour.

    Parameters
    ----------
    image : array-like of shape (height, width, channels) or (height, width)
        The image. For ``color_space="lab"``: sRGB, ``uint8`` in [0, 255] or
        floats in [0, 1].
    spatial_radius : float
        Half-side of the square spatial window, in pixels; at least 1. A
        non-integer radius rounds the window's edges per pixel as OpenCV does.
    range_radius : float
        Colour radius, in the units of the colour space used: 0-255 values
        for "rgb" on a ``uint8`` image, L*a*b* units for "lab" (L* spans
        0-100).
    color_space : {"rgb", "lab"}, default="rgb"
        "rgb" works on the values as given (any number of channels); "lab"
        converts sRGB to CIE L*a*b*, perceptually more uniform, filters
        there and converts the filtered image back to RGB.
    min_region_size : int, default=0
        Regions with fewer pixels are merged into a neighbour.
    max_iter : int, default=5
        Most mean-shift iterations per pixel (OpenCV's default criteria).
    eps : float, default=1.0
        A pixel stops when its position does not move or when
        ``|dx| + |dy| + |colour change|^2 <= eps`` (OpenCV's rule).
    merge_radius : float, default=None
        Largest colour distance between neighbouring pixels of one region;
        None uses ``range_radius / 2``.
    round_colors : bool, default=False
        Round the mean colour to integers at every step, as OpenCV does. With a
        ``uint8`` image, ``color_space="rgb"`` and an integer
        ``spatial_radius`` the filtered image then equals
        ``cv2.pyrMeanShiftFiltering(image, spatial_radius, range_radius,
        maxLevel=0)`` pixel for pixel.
    n_jobs : int, default=None
        Threads; None or -1 uses every available core.
    backend : {"auto", "numpy", "cupy"}, a backend object or None, default="auto"
        Where the filtering step runs, as in :func:`mean_shift_filter`
        (labelling and merging run on the host).

    Returns
    -------
    filtered : ndarray of shape of ``image``
        The mean-shift filtered image, of the input's dtype (integer images are
        rounded and clipped to their range) and colour space.
    labels : ndarray of shape (height, width), int64
        Region index of each pixel, 0..k-1, numbered in raster order.

    See Also
    --------
    mean_shift_filter : The filtering step alone.
    label_regions : The labelling and merging step alone.

    Notes
    -----
    The work is ``O(height * width * (2 * spatial_radius + 1) ** 2)`` per
    iteration. Differences from ``cv2.pyrMeanShiftFiltering(maxLevel=0)``
    come only from the colour rounding of OpenCV (``round_colors=False`` keeps
    the exact mean, which changes which pixels pass the colour test in the
    next steps and which iteration meets ``eps``).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.segmentation import segment_image
    >>> rng = np.random.default_rng(0)
    >>> img = np.zeros((20, 30, 3), dtype=np.uint8)
    >>> img[:, 15:] = (200, 40, 40)
    >>> noisy = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    >>> filtered, labels = segment_image(noisy, 3, 20, min_region_size=10)
    >>> int(labels.max()) + 1
    2
    >>> filtered[10, 25]
    array([198,  39,  40], dtype=uint8)
    """
    img = _check_image(image, color_space)
    sp = _check_positive(spatial_radius, "spatial_radius", 1.0)
    sr = _check_positive(range_radius, "range_radius", 0.0)
    merge = sr / 2.0 if merge_radius is None else _check_positive(merge_radius, "merge_radius", 0.0)
    if color_space == "lab":
        work = rgb_to_lab(img)
        if img.dtype != np.float64:
            work = work.astype(np.float32)
    else:
        work = img
    filtered = mean_shift_filter(work, sp, sr, max_iter=max_iter, eps=eps,
                                 round_colors=round_colors, n_jobs=n_jobs, backend=backend)
    labels = label_regions(filtered, merge, min_region_size)
    if color_space == "lab":
        filtered = lab_to_rgb(filtered)
        if img.dtype.kind in "biu":
            filtered = filtered * 255.0
    out = _to_dtype(filtered, img.dtype)
    return out.reshape(np.shape(image)), labels


def _to_dtype(a, dtype):
    if dtype.kind in "biu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(a), info.min, info.max).astype(dtype)
    return a.astype(dtype, copy=False)
