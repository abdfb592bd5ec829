"""A console a run does not depend on: a command's stdout or stderr that cannot be written (a
pipe into a logger that died, ``2>/dev/full``, a full disk under a cron job's log file) is
sent to the null device after the first failed write, said once through logging (to the run's
own log in ``logs/`` where there is one), and the run goes on. Without it the first progress
line raised, and a nightly batch made no output at all, or finished and exited 120 when the
interpreter's last flush failed. A console whose encoding lacks a character (a name's ``ü`` under
an ASCII locale) gets that character escaped, the rest of the line as it is."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from ctcnet.core.log_capture import CONSOLE_ONLY

log = logging.getLogger(__name__)


class KeptGoingStream:
    """A text stream over ``stream`` whose write and flush errors end its output (the
    process's stdout or stderr descriptor pointed at the null device, so the interpreter's
    own last flush succeeds) rather than the run; a stream its owner closed (an in-process
    caller's, written to after the command) is left alone. Every other attribute is the
    stream's."""

    def __init__(self, stream, name: str):
        self._stream = stream
        self._name = name
        self.lost: str | None = None  # why the console was lost, once it was

    def write(self, text: str) -> int:
        """Write and flush ``text``; its length, written or dropped."""
        if self.lost is not None:
            return len(text)
        try:
            try:
                written = self._stream.write(text)
            except UnicodeEncodeError:  # a console whose encoding lacks a character (an ASCII
                # locale, a legacy code page): that character escaped, the line still written
                written = self._stream.write(escaped_for(self._stream, text))
            self._stream.flush()  # a failure shows here, not at a later, unrelated write
            return written
        except ValueError:  # closed by its owner (an in-process caller, after the command)
            self.lost = "closed"
            return len(text)
        except OSError as err:
            self._lose(err)
            return len(text)

    def flush(self) -> None:
        """Flush the stream; a failure ends its output, not the run."""
        if self.lost is not None:
            return
        try:
            self._stream.flush()
        except ValueError:
            self.lost = "closed"
        except OSError as err:
            self._lose(err)

    def _lose(self, err: BaseException) -> None:
        if self.lost is not None:
            return
        self.lost = str(err) or type(err).__name__
        try:  # what the process's stdout or stderr still holds goes to the null device
            descriptor = self._stream.fileno()
            if descriptor in (1, 2):  # never another file an in-process caller gave
                on_null_device(descriptor)
                self._stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
        log.warning("the console's %s cannot be written (%s): its lines are dropped, the "
                    "run goes on (its record: run.json and logs/)", self._name, self.lost,
                    extra={CONSOLE_ONLY: True})

    def __getattr__(self, name):
        return getattr(self._stream, name)


class AnswerStream:
    """A command's stdout whose lines are its answer (``models``, ``--list-outputs``): a write
    that fails still ends the command, its error naming stdout (an error without a file was
    said as the temporary folder's: ``ctcnet models > /dev/full``)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text``; an error names stdout."""
        with _naming_stdout():
            return self._stream.write(text)

    def flush(self) -> None:
        """Flush the stream; an error names stdout."""
        with _naming_stdout():
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextmanager
def _naming_stdout():
    try:
        yield
    except OSError as err:
        if not err.filename:
            err.filename = "stdout, the command's answer"
        raise


def escaped_for(stream, text: str) -> str:
    """``text`` with the characters ``stream``'s encoding cannot write as Python escapes
    (``M\\xfcller``)."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    return text.encode(encoding, "backslashreplace").decode(encoding)


def on_null_device(descriptor: int) -> None:
    """Point ``descriptor`` (0, 1 or 2) at the null device: what is written to it from now on,
    a flush at exit among it, goes nowhere."""
    null = os.open(os.devnull, os.O_RDWR)
    if null != descriptor:  # (a closed one is the lowest free number: the null device's own)
        os.dup2(null, descriptor)
        os.close(null)


def console_ready() -> None:
    """The process's console made safe to run under: a standard descriptor closed at start
    (``>&-``, ``2>&-``: Python then has no ``sys.stdout``, and the run's first line raised, or
    its last flush did after the run) is opened on the null device, so that no file the run
    opens takes its number (a spawned worker's output would go into it); then
    :func:`escape_unwritable_characters`."""
    for descriptor, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(descriptor)
            continue
        except OSError:  # closed
            on_null_device(descriptor)
        if getattr(sys, name) is None:
            setattr(sys, name, open(descriptor, "r" if descriptor == 0 else "w",  # noqa: SIM115
                                    closefd=False, encoding="utf-8", errors="backslashreplace"))
    escape_unwritable_characters()


def escape_unwritable_characters() -> None:
    """The process's own stdout written as Python writes its stderr: a character its encoding
    lacks as an escape (``M\\xfcller`` under an ASCII locale or a legacy code page), where the
    first such name raised in the middle of a command. A caller's own stream is left as
    given."""
    stream = sys.stdout
    if stream is sys.__stdout__ and stream is not None and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # closed, or not a text file of its own
            pass


@contextmanager
def console_kept_going(stdout: bool = True):
    """While the context runs, ``sys.stderr`` (and ``sys.stdout`` where ``stdout``) as
    :class:`KeptGoingStream`, ``sys.stdout`` otherwise as :class:`AnswerStream`; the streams
    they were after it."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stderr, KeptGoingStream):
        sys.stderr = KeptGoingStream(sys.stderr, "stderr")
    if stdout and not isinstance(sys.stdout, KeptGoingStream):
        sys.stdout = KeptGoingStream(sys.stdout, "stdout")
    elif not stdout and not isinstance(sys.stdout, (KeptGoingStream, AnswerStream)):
        sys.stdout = AnswerStream(sys.stdout)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
