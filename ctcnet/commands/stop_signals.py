"""How a command stops when asked to: SIGTERM (a scheduler's: cron, SLURM, systemd, ``kill``)
and SIGHUP (a terminal closed) raised as :class:`~ctcnet.errors.Terminated` where the command
runs, so it stops as on Ctrl-C (what is done stays done, said, exit 143 or 129); and a stop
that lands inside another error (an import it interrupted) ending the command as the stop.
"""

from __future__ import annotations

import argparse
import signal
import threading

from ctcnet.errors import Terminated, stop_within


def _raise_terminated(signum, frame):
    raise Terminated(signal.Signals(signum).name)


# SIGHUP too: a terminal closed or an ssh link dropped under a run killed it as SIGKILL would
# (run.json left "running", nothing said); where it is ignored (nohup), it stays ignored.
_STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def stop_on_sigterm() -> dict:
    """Route SIGTERM and SIGHUP to :class:`Terminated` while a command runs; the handlers it
    replaced, by signal (none where signals cannot be set: off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise_terminated) for sig in _STOPPING
            if signal.getsignal(sig) is not signal.SIG_IGN}


def run_module(args: argparse.Namespace) -> int:
    """The command's own run; an error a stop signal caused (a compiled extension's first
    import it interrupted: an ImportError "initialization failed", exit 1, run.json "failed")
    ends it as that signal does (130, 143)."""
    try:
        return int(args._module.run(args) or 0)
    except Exception as err:
        stop = stop_within(err)
        if stop is None:
            raise
        raise stop from err
