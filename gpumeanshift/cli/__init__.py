"""The ``gpumeanshift`` command line (also ``python -m gpumeanshift``).

Commands: ``demo`` (the README's main job on generated blobs), ``info``
(versions, backends, GPU, whether the CUDA kernels compile here),
``cluster FILE``, ``predict MODEL FILE`` and ``segment IMAGE``. ``gpumeanshift COMMAND --help``
describes each.

Exit codes: 0 success, 1 data errors (unreadable or invalid files, data the
estimator refuses, a backend that cannot run here), 2 usage errors (bad
options, an output that would overwrite an input or another output), 141
when the reader of standard output goes away (``| head``, quietly, as
coreutils do), 143 on SIGTERM (after removing any half-written file). Every
error is one line on stderr, without a traceback; set
``GPUMEANSHIFT_DEBUG=1`` to get the traceback instead.

``-`` as the input FILE reads standard input (CSV unless ``--format``), and
``--output -`` writes the labels to standard output as CSV (the summary then
goes to stderr).

matplotlib (``--plot``), CuPy and pyarrow are imported only when used.
"""

from ._args import (
    AUTO_BANDWIDTH_MAX_SAMPLES, EXIT_DATA, EXIT_OK, EXIT_PIPE, EXIT_TERM, EXIT_USAGE, INPUT_FORMATS,
    PLOT_SUFFIXES, SEGMENT_IMAGE_SUFFIXES, SEGMENT_MIN_REGION_SIZE, STDIO, build_parser,
)
from ._commands import DEMO_CENTERS
from ._main import COMMANDS, main
from ._output import MAX_LISTED, MAX_NAMES, PLOT_MAX_POINTS
from ._output import _cluster_table  # noqa: F401  (the summary's table, tested on its own)

__all__ = [
    "main", "build_parser", "COMMANDS",
    "EXIT_OK", "EXIT_DATA", "EXIT_USAGE", "EXIT_PIPE", "EXIT_TERM", "STDIO", "INPUT_FORMATS",
    "AUTO_BANDWIDTH_MAX_SAMPLES", "PLOT_SUFFIXES", "SEGMENT_IMAGE_SUFFIXES",
    "SEGMENT_MIN_REGION_SIZE", "DEMO_CENTERS", "MAX_LISTED", "MAX_NAMES", "PLOT_MAX_POINTS",
]
