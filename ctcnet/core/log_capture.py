"""The warnings ctcnet says while a piece of work runs, kept for its record: what a person saw
on the console when a model was made (crops copied twice, a class held out of none, files
left out of a manifest) belongs in the model's card too, where an audit finds it later."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

# Kept for a record: enough to name what went wrong, not a log file.
MAX_KEPT, MAX_CHARS = 30, 500
# A record's attribute (logging's ``extra``) that keeps it out of the kept warnings: a warning
# about the console itself (its pipe closed) was seen by nobody and says nothing of the work.
CONSOLE_ONLY = "ctcnet_console_only"


class _Keep(logging.Handler):
    def __init__(self, kept: list[str], said_from: int, relay: logging.Logger | None = None,
                 says: bool = True):
        super().__init__(logging.WARNING)
        self.kept = kept
        self.said_from = said_from  # the level the logger said records from, before the block
        # Whether this handler sees a record said (not a block inside another: the outer one
        # does, once).
        self.says = says
        # Where the block stopped the logger's records propagating (it opened the logger to
        # warnings it had held back): the ancestor they reach, at the level they reached it
        # (a notebook's basicConfig at WARNING said what the logger was set to quiet).
        self.relay = relay

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, CONSOLE_ONLY, False):
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed call is logging's to report, not the work's to fail
            self.handleError(record)
            return
        # With no handler of the caller's on the way (a script or notebook that set up no
        # logging), logging says a warning through its last resort (stderr); this handler
        # being there would silence it, so it is said through it here.
        if self.says and record.levelno >= self.said_from:
            relayed = self.relay is not None and _handled_from(self.relay, record)
            if not relayed and not _said_elsewhere(record.name) and \
                    logging.lastResort is not None and \
                    record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
        self.keep(text)

    def keep(self, text: str) -> None:
        text = text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 3] + "..."
        if text not in self.kept and len(self.kept) < MAX_KEPT:  # said once, kept once
            self.kept.append(text)


def keep_unsaid(text: str, logger: str = "ctcnet") -> None:
    """Give ``text`` to the record of each :func:`kept_warnings` block open on ``logger``
    without saying it: a warning said once a run, before the block (a crop folder's dropped
    vimentin plane, said as its inputs were checked), was missing from its summary."""
    for handler in logging.getLogger(logger).handlers:
        if isinstance(handler, _Keep):
            handler.keep(text)


@contextlib.contextmanager
def kept_warnings(logger: str = "ctcnet") -> Iterator[list[str]]:
    """The warnings ``logger`` (and its children) say inside the block, each once, in order
    (at most :data:`MAX_KEPT`, each cut to :data:`MAX_CHARS`); they are said as usual too.
    Kept however quiet the console is (``--quiet`` raises the logger past warnings): the
    logger is opened to warnings for the block, and its own handlers keep their threshold."""
    kept: list[str] = []
    target = logging.getLogger(logger)
    outer = next((h for h in target.handlers if isinstance(h, _Keep)), None)
    if outer is not None:
        # Inside another block on the logger: that one opened it and says what the logger's
        # level lets through; this one keeps its warnings and changes nothing (setting the
        # level back as it closed quietened the outer block's rest; each said errors).
        handler = _Keep(kept, outer.said_from, says=False)
        target.addHandler(handler)
        try:
            yield kept
        finally:
            target.removeHandler(handler)
        return
    level = target.getEffectiveLevel()
    opened = level > logging.WARNING
    # Opened to warnings, the logger's records would reach its ancestors' handlers (a
    # notebook's root handler) below the level it was set to: they are passed on from here,
    # at that level alone, instead.
    relay = target.parent if opened and target.propagate else None
    handler = _Keep(kept, level, relay)
    raised = [(h, h.level) for h in target.handlers] if opened else []
    for existing, _ in raised:  # the console says no more than it would have
        existing.setLevel(max(existing.level, level))
    target.addHandler(handler)
    if opened:
        target.setLevel(logging.WARNING)
        target.propagate = relay is None and target.propagate
    try:
        yield kept
    finally:
        target.removeHandler(handler)
        if opened:
            target.setLevel(level)
            target.propagate = target.propagate or relay is not None
        for existing, was in raised:
            existing.setLevel(was)


def _handled_from(logger: logging.Logger, record: logging.LogRecord) -> bool:
    """Give ``record`` to the handlers of ``logger`` and its ancestors, as logging's
    propagation would (each handler's own level, up to a logger that does not propagate);
    whether any handler was met."""
    met = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            met = True
            if record.levelno >= handler.level:
                handler.handle(record)
        current = current.parent if current.propagate else None
    return met


def _said_elsewhere(name: str) -> bool:
    """Whether a record of logger ``name`` reaches a handler other than :func:`kept_warnings`'
    (as logging walks the loggers up to the root, propagation permitting)."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        if any(not isinstance(h, _Keep) for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def is_kept_warnings_handler(handler: logging.Handler) -> bool:
    """Whether ``handler`` is :func:`kept_warnings`' (not the console's)."""
    return isinstance(handler, _Keep)
