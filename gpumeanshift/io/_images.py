"""Images: image files through Pillow, image arrays as NPY."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._atomic import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Pillow modes kept as they are; others are converted (the note says how).
_KEPT_MODES = {"L", "RGB", "I;16", "I", "F"}


def read_image(path):
    """Read an image file (PNG, JPEG, ... with Pillow) or an image array (``.npy``).

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (read with ``allow_pickle=False``) holding an array
        of shape (height, width) or (height, width, channels), or an image
        file Pillow reads. Grey and RGB images keep their values; an alpha
        channel is dropped and palette, CMYK and other modes are converted
        to RGB, which ``note`` reports.

    Returns
    -------
    image : ndarray of shape (height, width) or (height, width, channels)
    note : str or None
        What was converted, if anything.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import read_image, write_image
    >>> path = os.path.join(tempfile.mkdtemp(), "img.png")
    >>> write_image(path, np.full((4, 5, 3), 200, dtype=np.uint8))
    >>> image, note = read_image(path)
    >>> image.shape, image.dtype, int(image[0, 0, 0]), note
    ((4, 5, 3), dtype('uint8'), 200, None)
    """
    path = Path(path)
    if path.is_dir():
        import errno

        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if path.suffix.lower() == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            raise ValueError(f"{path} is not a readable .npy array: {exc}") from None
        if image.ndim not in (2, 3) or image.dtype.kind not in "biuf":
            raise ValueError(
                f"{path}: an image array must be numeric with shape (height, width) or "
                f"(height, width, channels), got {image.dtype} with shape {image.shape}"
            )
        return image, None
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError(
            f"reading {path.suffix or 'this'} images needs Pillow, which is not installed "
            "(pip install pillow), or give the image as a .npy array"
        ) from None
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            note = None
            if mode not in _KEPT_MODES:
                target = "L" if mode in ("1", "LA", "La") else "RGB"
                note = f"{mode} image converted to {target}" + (
                    " (alpha channel dropped)" if "A" in mode or "transparency" in im.info else "")
                im = im.convert(target)
            image = np.array(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{path} is not an image Pillow can read: {exc}") from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path} is not an image Pillow can read (truncated or corrupted?): {exc}") from None
    return image, note


def write_image(path, image):
    """Write an image atomically: ``.npy`` for any array, PNG/JPEG/... for 8-bit images.

    Parameters
    ----------
    path : str or path-like
        Output file; the suffix picks the format (``.npy``, or one of
        ``.png .jpg .jpeg .bmp .tif .tiff`` through Pillow).
    image : ndarray of shape (height, width) or (height, width, channels)
        For image formats: ``uint8`` with 1, 3 or 4 channels. Other dtypes
        (floats, 16-bit) are refused there rather than rescaled: use ``.npy``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from gpumeanshift.io import write_image
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.npy")
    >>> write_image(path, np.zeros((2, 3), dtype=np.int64))
    >>> np.load(path).shape
    (2, 3)
    """
    suffix = Path(path).suffix.lower()
    image = np.asarray(image)
    if suffix == ".npy":
        with atomic_write(path, "wb") as f:
            np.save(f, image, allow_pickle=False)
        return
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"{path}: images can be written to .npy or {', '.join(IMAGE_SUFFIXES)} files, "
            f"not {suffix or '(no suffix)'!r}"
        )
    check_image_writable(image, path)
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, suffix[1:].upper())
    with atomic_write(path, "wb") as f:
        Image.fromarray(image).save(f, format=fmt)


def check_image_writable(image, path) -> None:
    """Raise ValueError unless ``image`` can be written to the image file ``path``.

    Parameters
    ----------
    image : ndarray
        The image to write.
    path : str or path-like
        The output file; its suffix picks the format (``.npy`` takes any array).

    Examples
    --------
    >>> import numpy as np
    >>> from gpumeanshift.io import check_image_writable
    >>> check_image_writable(np.zeros((2, 2, 3), np.uint8), "out.png")
    >>> check_image_writable(np.zeros((2, 2), np.float32), "out.png")
    Traceback (most recent call last):
    ...
    ValueError: out.png: only uint8 images with 1, 3 or 4 channels can be written as .png (got float32 with shape (2, 2)); write a .npy file instead
    """
    image = np.asarray(image)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    allowed = (1, 3) if suffix in (".jpg", ".jpeg") else (1, 3, 4)
    if image.dtype != np.uint8 or channels not in allowed:
        raise ValueError(
            f"{path}: only uint8 images with {'1 or 3' if len(allowed) == 2 else '1, 3 or 4'} channels can be "
            f"written as {suffix} "
            f"(got {image.dtype} with shape {image.shape}); write a .npy file instead"
        )
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ValueError(f"writing {suffix} images needs Pillow (pip install pillow); "
                         "write a .npy file instead") from None
