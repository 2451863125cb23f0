"""segment_image: filter, then label regions."""

from __future__ import annotations

import numpy as np

from ._checks import check_image, check_positive
from ._color import lab_to_rgb, rgb_to_lab
from ._filter import mean_shift_filter
from ._regions import label_regions


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
    img = check_image(image, color_space)
    sp = check_positive(spatial_radius, "spatial_radius", 1.0)
    sr = check_positive(range_radius, "range_radius", 0.0)
    merge = sr / 2.0 if merge_radius is None else check_positive(merge_radius, "merge_radius", 0.0)
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
