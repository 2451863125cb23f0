"""Colour spaces of the segmentation: sRGB and CIE L*a*b* (D65), as OpenCV converts."""

from __future__ import annotations

import numpy as np


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
