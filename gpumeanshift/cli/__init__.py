"""The ``gpumeanshift`` command line (also ``python -m gpumeanshift``)."""

from ._commands import (  # noqa: F401
    MAX_LISTED, SEGMENT_MIN_REGION_SIZE, _cluster_table, build_parser, main,
)
