"""The emulated CUDA backend for tests outside tests/cuda, and why it may be absent.

``EMULATOR_MISSING`` is None when :mod:`gpumeanshift.testing` provides
``emulated_backend``, else the reason (used to mark parameters skipped).
:func:`emulated_backend_or_skip` builds one and compiles its kernels, and
skips the test, with the reason, where the emulator cannot run (no g++).
"""

from __future__ import annotations

import numpy as np
import pytest


def _emulator_missing():
    try:
        import gpumeanshift.testing as testing
    except Exception as exc:  # broken install
        return f"gpumeanshift.testing does not import: {type(exc).__name__}: {exc}"
    if not hasattr(testing, "emulated_backend"):
        return "gpumeanshift.testing has no emulated_backend()"
    return None


EMULATOR_MISSING = _emulator_missing()


def emulated_param(id="emulated-cuda"):
    """The pytest parameter "emulated", skipped where the emulator is missing."""
    return pytest.param("emulated", id=id, marks=pytest.mark.skipif(
        EMULATOR_MISSING is not None, reason=str(EMULATOR_MISSING)))


def emulated_backend_or_skip(**options):
    """A fresh emulated CUDA backend with its kernels built, or a skip saying why not."""
    if EMULATOR_MISSING is not None:
        pytest.skip(EMULATOR_MISSING)
    from gpumeanshift.testing import emulated_backend

    try:
        be = emulated_backend(**options)
        be.nearest(np.zeros((1, 1)), np.zeros((1, 1)))  # builds the kernels
    except Exception as exc:  # no g++, build failure
        pytest.skip(f"emulated CUDA backend cannot run here: {type(exc).__name__}: {exc}")
    return be
