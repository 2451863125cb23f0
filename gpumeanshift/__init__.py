"""gpumeanshift: mean-shift clustering on NVIDIA GPUs and on the CPU.

The public API. Importing this package imports NumPy only: CuPy,
scikit-learn and matplotlib are imported when (and if) they are used.
"""

from ._estimator import MeanShift, mean_shift
from .backends.base import Backend, ShiftResult, available_backends
from .bandwidth import estimate_bandwidth, rule_of_thumb_bandwidth
from .exceptions import ConvergenceWarning, NotFittedError
from .seeding import get_bin_seeds

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "ConvergenceWarning",
    "MeanShift",
    "NotFittedError",
    "ShiftResult",
    "__version__",
    "available_backends",
    "estimate_bandwidth",
    "get_bin_seeds",
    "mean_shift",
    "rule_of_thumb_bandwidth",
]
