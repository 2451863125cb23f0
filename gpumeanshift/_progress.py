"""Progress of a fit: log lines and an optional tqdm bar, fed by the backend's shift loop.

``verbose=0`` (the default) reports nothing. ``verbose >= 1``:

* logs at INFO level, through the package logger ``"gpumeanshift"``, one
  line when the shift loop starts, one per round of the loop (iteration and
  seeds still moving) and one when the fit ends. The library configures no
  handler: ``logging.basicConfig(level=logging.INFO)`` (or any handler on
  that logger) shows them;
* draws a tqdm progress bar on stderr when tqdm is installed and the shift
  loop has been running for :data:`BAR_DELAY` seconds (short fits never
  show one): iterations out of ``max_iter`` and the seeds still moving.
"""

from __future__ import annotations

import logging
import sys
import time

logger = logging.getLogger("gpumeanshift")

# Seconds a shift loop runs before the progress bar appears.
BAR_DELAY = 2.0


class ShiftProgress:
    """The ``progress(iteration, n_active)`` callback given to ``Backend.shift``."""

    def __init__(self, n_seeds: int, max_iter: int, *, file=None):
        self.n_seeds = int(n_seeds)
        self.max_iter = int(max_iter)
        self.file = file
        self.t0 = time.perf_counter()
        self.bar = None
        self._tqdm_missing = False
        self.last = (0, self.n_seeds)

    def __call__(self, iteration: int, n_active: int) -> None:
        iteration, n_active = int(iteration), int(n_active)
        self.last = (iteration, n_active)
        logger.info("shift: iteration %d of at most %d, %d of %d seeds still moving",
                    iteration, self.max_iter, n_active, self.n_seeds)
        moving = f"{n_active:,} of {self.n_seeds:,} seeds moving"
        done = max(0, min(iteration, self.max_iter))
        if self.bar is not None:
            self.bar.set_postfix_str(moving, refresh=False)
            self.bar.update(done - self.bar.n)  # redraws at most every 0.1 s (tqdm's default)
        elif not self._tqdm_missing and time.perf_counter() - self.t0 >= BAR_DELAY:
            self._open_bar(done, moving)

    def _open_bar(self, done: int, moving: str) -> None:
        try:
            from tqdm import tqdm  # optional dependency
        except ImportError:
            self._tqdm_missing = True
            return
        self.bar = tqdm(total=max(1, self.max_iter), initial=done, postfix=moving,
                        desc="mean shift", unit="it", leave=False, dynamic_ncols=True,
                        file=self.file if self.file is not None else sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
