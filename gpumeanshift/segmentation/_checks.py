"""Checks of the segmentation's arguments: clear errors for bad input."""

from __future__ import annotations

import numbers
import os

import numpy as np

from ._color import COLOR_SPACES


def check_positive(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low:
        raise ValueError(f"{name} must be finite and >= {low}, got {value}")
    return value


def check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_image(image, color_space):
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


def thread_count(n_jobs):
    if n_jobs is None or n_jobs == -1:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    return check_int(n_jobs, "n_jobs", 1)
