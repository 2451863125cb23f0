"""gpumeanshift: mean-shift clustering on NVIDIA GPUs and on the CPU.

The public API. Importing this package imports NumPy only: CuPy,
scikit-learn and matplotlib are imported when (and if) they are used.
"""

from ._estimator import MeanShift, mean_shift
from .anomaly import Anomalies, find_anomalies
from .backends.base import Backend, ShiftResult, available_backends
from .bandwidth import estimate_bandwidth, rule_of_thumb_bandwidth
from .exceptions import ConvergenceWarning, NotFittedError
from .io import load_model, save_model
from .plot import plot_clusters
from .seeding import get_bin_seeds
from .segmentation import mean_shift_filter, segment_image
from .selection import BandwidthSweep, bandwidth_sweep
from .tracking import cam_shift, mean_shift_track

__version__ = "0.1.0"

__all__ = [
    "Anomalies",
    "Backend",
    "BandwidthSweep",
    "ConvergenceWarning",
    "MeanShift",
    "NotFittedError",
    "ShiftResult",
    "__version__",
    "available_backends",
    "bandwidth_sweep",
    "cam_shift",
    "estimate_bandwidth",
    "find_anomalies",
    "get_bin_seeds",
    "load_model",
    "mean_shift_filter",
    "mean_shift_track",
    "mean_shift",
    "plot_clusters",
    "rule_of_thumb_bandwidth",
    "save_model",
    "segment_image",
]
