"""How a training stops when asked to: Ctrl-C or a scheduler's SIGTERM ends ``trainer.fit``
with one line and the exit status of the signal (130, 143), ``last.ckpt`` kept for a resume
(:func:`fit_or_interrupt`); and under DDP, SIGTERM is noted without the collective Lightning
2.6's own handler starts inside the signal handler (:class:`SigtermWithoutBroadcast`)."""

from __future__ import annotations

import logging
import os
import signal
import threading

from lightning.pytorch.callbacks import Callback

from ctcnet.errors import CtcnetError, Terminated

log = logging.getLogger(__name__)


def fit_or_interrupt(trainer, module, **fit_kwargs) -> None:
    """``trainer.fit``, a Ctrl-C raised as KeyboardInterrupt and a SIGTERM as
    :class:`~ctcnet.errors.Terminated`: Lightning turns either into a graceful stop and
    sys.exit(1), which the CLI would report as a plain failure; as an interrupt it exits 130
    (143 for SIGTERM, so a job wrapper tells a preemption from a person) with one line saying
    so (``last.ckpt`` lets a training resume)."""
    try:
        trainer.fit(module, **fit_kwargs)
    except SystemExit:
        if trainer.interrupted:
            raise (Terminated("SIGTERM") if getattr(trainer, "received_sigterm", False) else
                   KeyboardInterrupt()) from None
        raise
    except CtcnetError:  # refused before it trained (its data): no empty log folder left
        for logger in getattr(trainer, "loggers", None) or []:
            folder = getattr(logger, "log_dir", None)
            if folder and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise


class SigtermWithoutBroadcast(Callback):
    """Lightning 2.6's SIGTERM handler broadcasts over the process group from inside the
    signal handler (a known defect of it): a rank that takes the signal while the others are in
    another collective, or none, waits there for ever. A 2-process DDP run on CPU sent SIGTERM
    sat idle past 10 minutes, stuck in ``gloo::broadcast``, holding its devices. Once the
    trainer's handlers are set, SIGTERM is taken by a handler that does what Lightning's does
    but that broadcast: the launcher's processes are signalled, ``received_sigterm`` set (the
    training loop shares it between the ranks at the next step, outside any handler, and stops
    them all) and the handler before Lightning's (ctcnet's, raising
    :class:`~ctcnet.errors.Terminated`) called. Lightning restores the handlers it replaced when
    the run ends."""

    def on_train_start(self, trainer, pl_module) -> None:
        """Take SIGTERM (on the main thread only: signals are set there)."""
        if threading.current_thread() is not threading.main_thread():
            return
        connector = trainer._signal_connector  # what Lightning's loops read the signal from
        before = connector._original_handlers.get(signal.SIGTERM)

        def on_sigterm(signum, frame) -> None:
            log.info("rank %d: SIGTERM, stopping at the next step", trainer.global_rank)
            launcher = trainer.strategy.launcher
            if not connector.received_sigterm and launcher is not None:
                launcher.kill(signum)
            connector.received_sigterm = True
            if callable(before):
                before(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
