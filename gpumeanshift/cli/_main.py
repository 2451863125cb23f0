"""``main``: parse, run the command, and turn every outcome into an exit code
and at most one line on stderr (closed pipes, SIGTERM and Ctrl-C included)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from ._args import EXIT_DATA, EXIT_OK, EXIT_PIPE, EXIT_TERM, _CLIError, _UsageError, build_parser
from ._commands import _cmd_cluster, _cmd_demo, _cmd_predict, _cmd_segment
from ._info import _cmd_info
from ._output import _data_on_stdout, _first_line


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that half-written files are removed."""


COMMANDS = {"demo": _cmd_demo, "info": _cmd_info, "cluster": _cmd_cluster, "predict": _cmd_predict,
            "segment": _cmd_segment}


def main(argv=None) -> int:
    """Run the ``gpumeanshift`` command line and return its exit code.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    code : int
        0 success, 1 data error, 2 usage error.

    Examples
    --------
    >>> from gpumeanshift.cli import main
    >>> main(["demo", "--n-samples", "300", "--backend", "numpy"])  # doctest: +ELLIPSIS
    data: 300 points in 2-D, 3 generated blobs ...
    clusters found: 3
    ...
    0
    """
    with _sigterm_raises():
        try:
            return _main(argv)
        finally:
            _data_on_stdout(False)


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises in the main thread, so atomic writes remove their temporary file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv) -> int:
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            raise _UsageError(
                f"gpumeanshift: error: choose a command: {', '.join(COMMANDS)} (see 'gpumeanshift --help')"
            )
        code = COMMANDS[command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader of stdout went away (| head): end quietly, as coreutils do.
        _stdout_gone()
        return EXIT_PIPE
    except _Terminated:
        _error(f"gpumeanshift {command or ''}: terminated".replace("  ", " "))
        return EXIT_TERM
    except SystemExit as exc:  # --help and --version
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_gone()
            return EXIT_PIPE
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except _UsageError as exc:
        _error(str(exc))
        return exc.code
    except _CLIError as exc:
        _error(f"gpumeanshift {command}: error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        _error(f"gpumeanshift {command}: interrupted")
        return 130
    except OSError as exc:  # writing outputs: disk full, permissions, ...
        if os.environ.get("GPUMEANSHIFT_DEBUG"):
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(f"gpumeanshift {command}: error: {where}{exc.strerror or exc}")
        return EXIT_DATA
    except Exception as exc:
        if os.environ.get("GPUMEANSHIFT_DEBUG"):
            raise
        _error(f"gpumeanshift {command}: internal error: {_first_line(exc)} "
               "(set GPUMEANSHIFT_DEBUG=1 for the traceback)")
        return EXIT_DATA


def _stdout_gone() -> None:
    # Later flushes (at exit) go to /dev/null instead of raising again.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _error(message: str) -> None:
    # One line, whatever the message held.
    print(" ".join(message.split()), file=sys.stderr)
