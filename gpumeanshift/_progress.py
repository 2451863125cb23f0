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

The command line shows a :class:`TerminalProgress` line instead (no tqdm
needed) on a terminal, with or without ``--verbose``, while
:func:`terminal_progress` is active: the phase (bandwidth estimate, shift),
and within a round of the shift loop the share of its seeds already
stepped, fed by the backend after each batch of tiles (``tile_done``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

logger = logging.getLogger("gpumeanshift")

# Seconds a shift loop runs before the progress bar appears.
BAR_DELAY = 2.0
# Seconds between redrawings of the terminal line.
REFRESH = 0.2


# The command line's terminal line, while terminal_progress() is active.
_terminal = None


def active() -> bool:
    """Whether a terminal progress line is waiting for a fit's progress."""
    return _terminal is not None


class ShiftProgress:
    """The ``progress(iteration, n_active)`` callback given to ``Backend.shift``.

    ``log=False`` only feeds the terminal line of :func:`terminal_progress`
    (a fit without ``verbose``). A backend may also call
    ``tile_done(k, total)`` from its worker threads: ``k`` more of the
    ``total`` seeds of the current round have been stepped; the bar then
    moves by that share of an iteration, within the round.
    """

    def __init__(self, n_seeds: int, max_iter: int, *, file=None, log=True):
        self.n_seeds = int(n_seeds)
        self.max_iter = int(max_iter)
        self.file = file
        self.log = bool(log)
        self.t0 = time.perf_counter()
        self.bar = None
        # The terminal line supersedes the tqdm bar (one line on stderr, not two).
        self.terminal = _terminal
        self._tqdm_missing = self.terminal is not None or not self.log
        self.last = (0, self.n_seeds)
        self._lock = threading.Lock()
        self._stepped = 0  # seeds of the current round stepped so far
        if self.terminal is not None:
            self.terminal.shift_started(self.n_seeds, self.max_iter)

    def tile_done(self, k: int, total: int) -> None:
        if self.terminal is not None:
            self.terminal.tile_done(k, total)
            return
        if self._tqdm_missing:
            return
        with self._lock:  # called from the backend's worker threads
            self._stepped = min(int(total), self._stepped + int(k))
            done = min(self.last[0] + self._stepped / max(1, int(total)), self.max_iter)
            if self.bar is not None:
                self.bar.update(done - self.bar.n)
            elif time.perf_counter() - self.t0 >= BAR_DELAY:
                self._open_bar(done, f"{self.last[1]:,} of {self.n_seeds:,} seeds moving")

    def __call__(self, iteration: int, n_active: int) -> None:
        iteration, n_active = int(iteration), int(n_active)
        self.last = (iteration, n_active)
        self._stepped = 0
        if self.terminal is not None:
            self.terminal.round_done(iteration, n_active)
        if not self.log:
            return
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


class TerminalProgress:
    """One status line on a terminal, redrawn in place while a command works.

    Nothing is drawn during the first ``delay`` seconds (short runs show
    nothing); then a background thread redraws the line every ``refresh``
    seconds, so it moves even while a long round of the shift loop runs.
    The line names the phase and its elapsed time; in the shift phase, the
    iteration, a bar of the seeds of the current round stepped so far, and
    the seeds still moving.

    Parameters
    ----------
    file : text stream
        Where to draw (the command line's stderr, a terminal).
    delay : float, default=None
        Seconds before the first drawing; None uses :data:`BAR_DELAY`.
    refresh : float, default=None
        Seconds between redrawings; None uses :data:`REFRESH`.
    width : int, default=78
        Most characters in the line.

    Examples
    --------
    >>> import io
    >>> from gpumeanshift._progress import TerminalProgress
    >>> t = TerminalProgress(io.StringIO())
    >>> t.phase("bandwidth estimate")
    >>> t.line(elapsed=3.0)
    'bandwidth estimate: 3 s'
    >>> t.shift_started(1000, 300)
    >>> t.round_done(2, 400)
    >>> t.tile_done(100, 400)
    >>> t.line(elapsed=4.0)
    'shift: iteration 3 (max 300) [####............]  25% of 400 seeds, 4 s'
    >>> t.round_done(9, 0)
    >>> t.line(elapsed=5.0)
    'shift: done after 9 rounds, labelling, 5 s'
    """

    def __init__(self, file, *, delay=None, refresh=None, width=78):
        self.file = file
        self.delay = BAR_DELAY if delay is None else float(delay)
        self.refresh = REFRESH if refresh is None else float(refresh)
        self.width = int(width)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._drawn = 0  # characters on the line now
        self._name = None
        self._t_phase = self._t_start = time.perf_counter()
        self._shift = None  # [iteration, max_iter, round total, round done]

    # ---------------------------------------------------------------- events
    def phase(self, name: str) -> None:
        """Start a phase that reports no more than its name and elapsed time."""
        with self._lock:
            self._name, self._shift = name, None
            self._t_phase = time.perf_counter()

    def shift_started(self, n_seeds: int, max_iter: int) -> None:
        with self._lock:
            self._name = "shift"
            self._shift = [0, int(max_iter), int(n_seeds), 0]
            self._t_phase = time.perf_counter()

    def round_done(self, iteration: int, n_active: int) -> None:
        with self._lock:
            if self._shift is not None:
                self._shift[0] = int(iteration)
                self._shift[2], self._shift[3] = int(n_active), 0

    def tile_done(self, k: int, total: int) -> None:
        # Called from the backend's worker threads.
        with self._lock:
            if self._shift is not None:
                self._shift[2] = int(total)
                self._shift[3] = min(int(total), self._shift[3] + int(k))

    # ---------------------------------------------------------------- drawing
    def line(self, elapsed=None) -> str:
        """The status line as it would be drawn now."""
        with self._lock:
            name, shift = self._name, list(self._shift) if self._shift else None
            if elapsed is None:
                elapsed = time.perf_counter() - self._t_phase
        if name is None:
            return ""
        tail = f"{elapsed:.0f} s"
        if shift is None:
            return f"{name}: {tail}"[: self.width]
        iteration, max_iter, total, done = shift
        if total == 0 and iteration > 0:  # the loop is over: centers and labels
            return f"{name}: done after {iteration} rounds, labelling, {tail}"[: self.width]
        frac = done / total if total else 0.0
        cells = 16
        filled = int(frac * cells)
        bar = "#" * filled + "." * (cells - filled)
        head = f"{name}: iteration {min(iteration + 1, max(max_iter, 1))} (max {max_iter}) "
        body = f"[{bar}] {100 * frac:3.0f}% of {total:,} seeds, "
        if len(head) + len(body) + len(tail) > self.width:
            body = f"[{bar}] {100 * frac:3.0f}%, "
        return (head + body + tail)[: self.width]

    def _draw(self) -> None:
        text = self.line()
        try:
            pad = " " * max(0, self._drawn - len(text))
            self.file.write("\r" + text + pad)
            self.file.flush()
            self._drawn = len(text)
        except (OSError, ValueError):  # a closed terminal: stop drawing
            self._stop.set()

    def clear(self) -> None:
        """Erase the line (before other output to the same terminal)."""
        with self._lock:
            drawn, self._drawn = self._drawn, 0
        if drawn:
            with contextlib.suppress(OSError, ValueError):
                self.file.write("\r" + " " * drawn + "\r")
                self.file.flush()

    def _run(self) -> None:
        if self._stop.wait(max(0.0, self.delay - (time.perf_counter() - self._t_start))):
            return
        while not self._stop.is_set():
            self._draw()
            self._stop.wait(self.refresh)

    def start(self) -> None:
        self._t_start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="gpumeanshift-progress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop redrawing and erase the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.clear()


@contextlib.contextmanager
def terminal_progress(file, *, delay=None):
    """Show a :class:`TerminalProgress` on ``file`` for the fits run in the block.

    Yields the :class:`TerminalProgress` (its ``phase`` names the work done
    outside a fit, such as a bandwidth estimate).
    """
    global _terminal
    display = TerminalProgress(file, delay=delay)
    previous, _terminal = _terminal, display
    display.start()
    try:
        yield display
    finally:
        _terminal = previous
        display.close()
