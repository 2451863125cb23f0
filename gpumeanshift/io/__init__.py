"""Files in and out: saved models (no pickle), point files, label files, images.

A saved model is one ``.npz`` archive read with ``allow_pickle=False``, so
loading a model never executes code. It holds a UTF-8 JSON header (format
name and version, library version, bandwidth, kernel, estimator parameters)
and plain numeric arrays (cluster centers and sizes, the optional
standardization ``mean``/``scale``, the optional seeds).

Every file written here is written atomically: into a temporary file in the
target's directory, flushed to disk, then renamed over the target with
:func:`os.replace`. A failed or interrupted write leaves no partial file and
never replaces a good file with a bad one.

One job per module:

* ``_atomic``: :func:`atomic_write`, the one way files are written;
* ``_points``: :func:`read_points`, :func:`read_column_names` and column selection;
* ``_labels``: :func:`write_labels`;
* ``_images``: :func:`read_image`, :func:`write_image`, :func:`check_image_writable`;
* ``_model_format``: the model file format's constants and shared checks;
  ``_model_save``: :func:`save_model`; ``_model_archive``: reading the
  archive; ``_model_load``: :func:`load_model`; ``_saved_model``:
  :class:`SavedModel`.
"""

from ._atomic import atomic_write
from ._images import IMAGE_SUFFIXES, check_image_writable, read_image, write_image
from ._labels import LABEL_SUFFIXES, write_labels
from ._model_format import FORMAT_NAME, FORMAT_VERSION
from ._model_load import load_model
from ._model_save import save_model
from ._points import POINT_SUFFIXES, read_column_names, read_points
from ._points import _parse_columns, _resolve_columns  # noqa: F401  (the command line uses them)
from ._saved_model import SavedModel

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "POINT_SUFFIXES",
    "SavedModel",
    "atomic_write",
    "check_image_writable",
    "load_model",
    "read_column_names",
    "read_image",
    "read_points",
    "save_model",
    "write_image",
    "write_labels",
]
