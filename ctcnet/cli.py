"""The ``ctcnet`` command: one thin layer of subcommands over the library.

Each subcommand lives in ``ctcnet/commands/<name>.py`` (a ``-`` in its name is a ``_`` there)
and exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Errors
ctcnet explains (bad input, panel mismatch, a subcommand that needs more than the torch-free
base or predict install has) are printed as one line and exit with status 2; the machine's state
(a full or read-only disk, a file-size limit, out of memory) with status 4; anything else is a
bug and keeps its traceback.
Library modules log through ``logging.getLogger(__name__)``; the command shows their warnings by
default, adds progress notes with ``-v`` (debug detail with ``-vv``) and only errors with
``--quiet`` (given before the subcommand: ``ctcnet -v predict ...``; ``-v`` also after it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from ctcnet.commands.arg_types import refuse_empty_paths
from ctcnet.commands.stop_signals import run_module, stop_on_sigterm
from ctcnet.commands.version_action import VersionAction
from ctcnet.core.console_streams import console_kept_going, console_ready, on_null_device
from ctcnet.core.install_hint import install_command
from ctcnet.core.printable import PrintableFormatter, printable
from ctcnet.core.run_log import note_exit
from ctcnet.errors import MACHINE_ERRNOS, CtcnetError, Terminated, is_machine_state, machine_advice
from ctcnet.io.atomic import check_output_path

# The subcommands, in the order --help lists them; each module's HELP is its one line.
SUBCOMMANDS = ("simulate", "train", "predict", "evaluate", "robustness", "export", "benchmark",
               "review", "crops", "finetune", "models", "export-events", "verify", "draws")
# Modules of the `predict` extra (pyproject.toml), and the subcommands it runs without torch.
PREDICT_MODULES = {"scipy", "skimage", "pandas", "pyarrow", "rich", "threadpoolctl"}
PREDICT_COMMANDS = {"predict", "review", "crops", "export-events", "verify", "draws",
                    "evaluate"}  # (evaluate on simulated cartridges and --expected; crops: all)
# Modules of the `all` extra: the base install (ONNX runtime side) lacks them.
FULL_INSTALL_MODULES = PREDICT_MODULES | {"torch", "lightning", "torchmetrics", "jsonargparse",
                                          "albumentations", "onnx", "onnxscript", "sklearn", "cv2"}


# The machine's state, not a bug, each with what to do: a full disk or quota, a file-size
# limit (ulimit -f), a read-only filesystem, a folder the user may not write. Such an ending
# (and running out of memory) exits MACHINE_STATUS, not 2: whoever runs the job frees space or
# memory and reruns, which resumes, where a 2 is an input or an option to correct.
MACHINE_STATUS = 4
# The commands a plain rerun goes on with where a run stopped (predict's journal): the others
# are run again whole (a training resumes only when told, --ckpt_path last).
RESUMING_COMMANDS = {"predict"}
_LOG_HANDLER_NAME = "ctcnet-cli"


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is when a record is logged, not as it was when
    the command set it up: an in-process caller that swaps stderr (a notebook, a test's
    capture) after one command no longer has the next one's log written to a closed stream."""

    @property
    def stream(self):
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler sets it once; the current one is used
        pass


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Route the ``ctcnet`` loggers to stderr at the level the flags ask for.

    Only the ``ctcnet`` logger is configured (not the root), so libraries keep their own
    settings and test log capture still sees every record; but for tifffile's, whose damage
    reports ctcnet gives in its own words.
    """
    level = (logging.ERROR if quiet else logging.DEBUG if verbose > 1 else
             logging.INFO if verbose == 1 else logging.WARNING)
    logger = logging.getLogger("ctcnet")
    logger.setLevel(level)
    for handler in [h for h in logger.handlers if h.get_name() == _LOG_HANDLER_NAME]:
        logger.removeHandler(handler)  # called again (in-process runs): one handler, not two
    handler = _CurrentStderr()
    handler.set_name(_LOG_HANDLER_NAME)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    # tifffile logs the damage it meets (a truncated file's page offsets) as bare lines of its
    # own, past --quiet; ctcnet reads them (ctcnet.io.images) and refuses the file in its own
    # words, so the console shows them with -vv alone, under ctcnet's format.
    tiff = logging.getLogger("tifffile")
    tiff.propagate = False
    for old in [h for h in tiff.handlers if h.get_name() == _LOG_HANDLER_NAME]:
        tiff.removeHandler(old)
    detail = _CurrentStderr() if verbose > 1 else logging.NullHandler()
    detail.set_name(_LOG_HANDLER_NAME)
    detail.setFormatter(handler.formatter)
    tiff.addHandler(detail)


def _load_command(name: str):
    # export-events: export_events.py
    return importlib.import_module(f"ctcnet.commands.{name.replace('-', '_')}")


def _add_verbose(p: argparse.ArgumentParser) -> None:
    """``-v`` on a command's parser and on its own subcommands' (``ctcnet simulate cartridge
    OUT -v``), not where the command hands the rest of its line on (train: LightningCLI's)."""
    if any(a.nargs == argparse.REMAINDER for a in p._actions):
        return
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="log progress notes (-vv: debug detail) to stderr")
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: a required option said missing names the options of the line
    that are none of this command's, with the one meant (``--ot results``: argparse said only
    "required: --out", as if none had been typed)."""

    line: list[str] = []  # the command line being parsed (main sets it)

    def error(self, message: str):
        if message.startswith("the following arguments are required"):
            known = _options_of(self)
            typed = [a.split("=")[0] for a in self.line if a.startswith("--")
                     and a.split("=")[0] not in known]
            if typed:
                message += "; " + ", ".join(
                    f"{t} is no option here" + (f" (did you mean {m}?)" if (
                        m := _option_meant(self, t)) else "") for t in typed)
        super().error(message)


def _options_of(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string ``parser`` takes."""
    return [o for action in parser._actions for o in action.option_strings]


def _option_meant(parser: argparse.ArgumentParser, typed: str) -> str | None:
    """The option of ``parser`` a mistyped ``typed`` (``--ot``, ``--qiet=1``) likely meant."""
    import difflib

    close = difflib.get_close_matches(typed.split("=")[0], _options_of(parser), 1, 0.6)
    return close[0] if close else None


def build_parser() -> argparse.ArgumentParser:
    """The ``ctcnet`` parser: global logging options, a subparser per ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="ctcnet",
        description="Find and type circulating tumour cells in multichannel fluorescence scans.")
    parser.add_argument("--version", action=VersionAction, nargs=0,
                        help="show ctcnet's version, and the commit or build of its code")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress notes (-vv: debug detail) to stderr")
    parser.add_argument("--quiet", dest="log_quiet", action="store_true",
                        help="only errors: no warnings or notes, and none of the "
                             "subcommand's own output lines (those as predict's own --quiet, "
                             "which keeps the warnings; `models`, `review` and `draws` "
                             "without --out still say theirs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in SUBCOMMANDS:
        module = _load_command(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           epilog=getattr(module, "EPILOG", None))
        module.add_arguments(p)
        # -v after the subcommand as before it (``ctcnet predict ... -v``); not where the
        # subcommand hands the rest of its line on (train: LightningCLI's options).
        _add_verbose(p)
        p.set_defaults(_module=module, _name=name, _parser=p)
    return parser


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (its end polls as an error)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


# Commands whose printed lines are the answer asked for (a list of the models, the address
# a review is served at, which --port 0 picks): kept under --quiet, which quiets every
# other command's lines.
ANSWER_COMMANDS = ("models", "review")


class _NoLines:
    """Where a quiet command's own lines go (its errors reach stderr as ever)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _quiet_lines(args: argparse.Namespace):
    """Under ``ctcnet --quiet``: the command's own --quiet set, or, for a command without one,
    a context that keeps its printed lines off stdout (not for ANSWER_COMMANDS)."""
    if args.log_quiet and hasattr(args, "quiet"):  # the command's own lines go quiet too
        args.quiet = True
    elif args.log_quiet and args.command not in ANSWER_COMMANDS:  # a command without one
        return contextlib.redirect_stdout(_NoLines())
    return contextlib.nullcontext()


def _parser_before_work() -> argparse.ArgumentParser:
    """:func:`build_parser`, which imports the commands' modules (a second or so): Ctrl-C
    then ends ctcnet with 130 and a line, as later, not a traceback (nothing to resume)."""
    try:
        return build_parser()
    except KeyboardInterrupt:
        print("ctcnet: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


# The least address space (ulimit -v) ctcnet's libraries load in: they reserve far more than
# they use (numpy's OpenBLAS a buffer per core, onnxruntime's and torch's arenas). Measured on
# a 2-core machine: under 400 MB OpenBLAS retried its allocation for ever as scipy loaded
# (SIGTERM unheard: only SIGKILL stopped it), at 500-850 MB a library failed to load, at
# 700 MB-1 GB and 2 GB (the second of two cartridges) predict ran out of memory, 2.02 GB ran.
MIN_ADDRESS_SPACE = 2 * 1024 ** 3


def address_space_refusal() -> str | None:
    """Why this process's address-space limit (``ulimit -v``, RLIMIT_AS) is too small to run
    in, with what to do instead; None where it is not (or cannot be read)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):  # no such limit here (Windows)
        return None
    if limit == resource.RLIM_INFINITY or limit > MIN_ADDRESS_SPACE:
        return None
    return (f"the address-space limit (ulimit -v) is {limit / 1024 ** 2:.0f} MB: the "
            "libraries ctcnet runs on reserve far more address space than they use, and "
            f"up to {MIN_ADDRESS_SPACE / 1024 ** 3:.0f} GB they fail or hang as they load; "
            "lift it (ulimit -v unlimited) and limit resident memory instead (a cgroup: "
            "systemd-run -p MemoryMax=2G, or a scheduler's memory request)")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), set up logging, run the command: its status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    console_ready()  # closed descriptors on the null device; Müller on an ASCII console
    refusal = address_space_refusal()  # before the libraries load: they hang under it
    if refusal:
        print(f"ctcnet: error: {refusal}", file=sys.stderr)
        return 2
    parser = _parser_before_work()
    _CommandParser.line = argv
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # a misspelt option: refused with its command's usage, not ctcnet's own
        command = getattr(args, "_parser", parser)
        # A folder given bare to a command that takes it by option (`verify results`).
        takes = [o for o in _options_of(command) if o == "--results"]
        folder = next((u for u in unknown if not u.startswith("-") and Path(u).is_dir()), None)
        meant = [m for u in unknown if u.startswith("--") and (m := _option_meant(command, u))]
        command.error(f"unrecognized arguments: {' '.join(unknown)}" + (
            f" (a results folder is given as {takes[0]} {folder})" if takes and folder else "")
            + (f" (did you mean {', '.join(meant)}?)" if meant else ""))
    args._argv = argv  # for a command that runs itself again in child processes
    # Put back once the command ends: a notebook's main(["--quiet", ...]) left ctcnet's
    # warnings silenced (and a handler on stderr) for every later call of its library.
    with _logging_put_back():
        setup_logging(args.verbose, args.log_quiet)
        return _main_after_logging(parser, args)


@contextlib.contextmanager
def _logging_put_back():
    """The ``ctcnet`` and ``tifffile`` loggers' level, handlers and propagation, as
    :func:`setup_logging` finds them, put back once the block ends."""
    ours, tiff = logging.getLogger("ctcnet"), logging.getLogger("tifffile")
    level, handlers, propagate, tiff_handlers = \
        ours.level, list(ours.handlers), tiff.propagate, list(tiff.handlers)
    try:
        yield
    finally:
        ours.setLevel(level)
        ours.handlers[:], tiff.handlers[:], tiff.propagate = handlers, tiff_handlers, propagate


def _main_after_logging(parser, args: argparse.Namespace) -> int:
    """:func:`main` once the command's logging is set up."""
    # torch's own deprecation inside its export and pickling (its LeafSpec, copied by copyreg),
    # about no code of ours: a line of noise in every export and fine-tune.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`",
                            category=FutureWarning)
    lines = _quiet_lines(args)
    if args.command is None:  # no command: a usage error, said as argparse says one
        parser.print_help(sys.stderr)
        print("ctcnet: error: a command is required (the list above)", file=sys.stderr)
        return 2
    previous = stop_on_sigterm()
    # A console that cannot be written (a dead logger's pipe, a full disk under a cron log) does
    # not stop the work; one whose lines are the answer ends with its reader's (141, exit 4).
    answers = args.command in (*ANSWER_COMMANDS, "draws", "verify")
    with console_kept_going(stdout=not (answers or getattr(args, "list_outputs", False))):
        status = _run_command(args, lines, previous)
    note_exit(status, _SAID[-1] if _SAID else None)  # the run's log ends as the console did
    _SAID.clear()
    return status


# The error line the command ended with, for the run's log (:func:`note_exit`).
_SAID: list[str] = []


def _say_error(text: str) -> None:
    """Print the line a command ended with on stderr, kept for its run's log."""
    _SAID[:] = [text]
    print(text, file=sys.stderr)


def _say_stopped(args: argparse.Namespace, how: str) -> None:
    """Say a command stopped (``how``) and how to go on, once: a DDP run's other ranks stop."""
    train = args._name == "train"  # (srun's tasks of another command each run on their own)
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK") + (("SLURM_PROCID",) if train else ())
    sizes = ("WORLD_SIZE",) + (("SLURM_NTASKS",) if train else ())
    several = any(os.environ.get(n, "1") not in ("", "1") for n in sizes)
    parent = os.environ.get("CTCNET_PARENT_PID", "")
    if getattr(args, "process_inputs", None) is not None and parent == str(os.getppid()):
        return  # a --processes share's, its parent alive: the parent says it once
    if not several or all(os.environ.get(n, "0") in ("", "0") for n in ranks):
        _say_error(f"ctcnet {args._name}: {how}{_resume_advice(args)}")


def _resume_advice(args: argparse.Namespace) -> str:
    """What a command stopped by Ctrl-C or a signal leaves, and how to go on."""
    if args._name == "predict" and getattr(args, "overwrite", False):
        # The same command with --overwrite starts every sample afresh, the finished too.
        from ctcnet.commands.predict_index import resume_text

        return f"; {resume_text(True)}"
    return {"predict": "; the same command resumes where it stopped",
            "finetune": "; nothing was written (a model it would replace is kept): the "
                        "same command starts it again",
            "evaluate": "; an earlier report in --out is kept as it was (cartridges: "
                        "the same command resumes each one's run beside it)",
            "robustness": "; an earlier report in --out is kept as it was",
            "train": "; the same command with --ckpt_path last resumes it from its last "
                     "finished epoch (where none finished, no checkpoint was written: "
                     "run the command again as it was)"}.get(args._name, "")


def _run_command(args: argparse.Namespace, lines, previous) -> int:
    """Run the parsed command; its errors as one line and an exit status (main's)."""
    try:
        refuse_empty_paths(args)
        if isinstance(getattr(args, "out", None), str):  # before a log or any work goes there
            check_output_path(args.out)
        with lines:
            return run_module(args)
    except CtcnetError as err:
        _say_error(f"ctcnet {args._name}: error: {printable(str(err))}")
        return 2
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing not in FULL_INSTALL_MODULES:
            raise
        if missing in PREDICT_MODULES and args._name in PREDICT_COMMANDS:
            install = (f": {install_command('predict')} (torch-free; "
                       f"{install_command('all')} for every subcommand)")
        else:
            install = (" (the base and predict installs run ONNX models only): "
                       f"{install_command('all')}")
        print(f"ctcnet {args._name}: needs {missing}, which this install lacks{install}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        stopped = isinstance(err, Terminated)
        _say_stopped(args, f"stopped ({err})" if stopped else "interrupted")
        # 128 + the signal, as a shell reports a process it killed (143 for SIGTERM)
        return 128 + getattr(signal, str(err), signal.SIGTERM) if stopped else 130
    except (MemoryError, RuntimeError) as err:
        # The machine's state (other work beside this run), not the data: outputs are atomic,
        # so a rerun with memory free resumes where this one stopped. (A RuntimeError only
        # where no thread could be started: a memory or task limit.)
        if not is_machine_state(err):
            raise
        what = f"out of memory ({err or 'no detail'})" if isinstance(err, MemoryError) else \
            f"{err} (a limit on memory or threads, ulimit -v or -u)"
        advice = machine_advice(errno.ENOMEM, args._name.split()[0] in RESUMING_COMMANDS,
                                hasattr(args, "workers"))
        _say_error(f"ctcnet {args._name}: error: {what}; nothing was left half written: "
                   f"{advice}")
        return MACHINE_STATUS
    except BrokenPipeError:
        # The reader of the output went away (`ctcnet models | head`): an ending, as for any
        # command-line tool, not a traceback. Only where stdout is the pipe that broke.
        if not _stdout_gone():
            raise
        on_null_device(sys.stdout.fileno())  # for exit's flush
        return 141  # 128 + SIGPIPE, as the shell reports a tool the pipe stopped
    except OSError as err:
        # A full, read-only or forbidden disk is the machine's state, not a bug: one line, not
        # three chained tracebacks. Outputs are atomic, so nothing is half written and a rerun
        # resumes.
        if err.errno not in MACHINE_ERRNOS:
            raise
        return _machine_state_status(err, args)
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _machine_state_status(err: OSError, args: argparse.Namespace) -> int:
    """Say a machine-state ``err`` (:data:`~ctcnet.errors.MACHINE_ERRNOS`) in one line and
    return the exit status: 4, or 2 where it is a file the run reads that this user may not
    read."""
    # No file named (a library's temporary file): where it can be, the temporary folder
    # beside the output (an export's graph is traced under TMPDIR).
    import tempfile

    where = f" ({err.filename})" if err.filename else (
        f" (in the temporary folder {tempfile.gettempdir()}, TMPDIR, or the output's)"
        if err.errno in (errno.ENOSPC, errno.EDQUOT) else "")
    blocker = _unreadable_input(err, getattr(args, "out", None))
    if blocker is not None:
        # A file the run reads (a model, a reference) this user may not read: an input
        # to correct (exit 2), not a folder to make writable.
        from ctcnet.core.file_modes import account_name, owned_by_another, owner_and_mode

        # Another account's (a service account's results read by a reviewer): the
        # shared setup is the cure, not a chmod of each file.
        shared = ("; a results folder several accounts read is shared through a group "
                  "(docs/review.md, \"A results folder several accounts write\")"
                  if owned_by_another(blocker) else "")
        _say_error(f"ctcnet {args._name}: error: {err.strerror or err}{where}: this user "
                   f"({account_name()}) may not read it ({blocker} is "
                   f"{owner_and_mode(blocker)}); give it read access (or use a copy this "
                   f"user can read){shared}")
        return 2
    resumes = args._name.split()[0] in RESUMING_COMMANDS
    advice = machine_advice(err.errno, resumes, hasattr(args, "workers"))
    if _no_inodes(err):
        where += " (no file left to make: its inodes are all used, df -i)"
        advice = ("remove files (or write to another file system) and "
                  + ("rerun to resume" if resumes else "run it again"))
    _say_error(f"ctcnet {args._name}: error: {err.strerror or err}{where}; nothing was left "
               f"half written, {advice}")
    return MACHINE_STATUS


def _no_inodes(err: OSError) -> bool:
    """Whether a full disk is one with space but no file left to make (its inodes, ``df
    -i``): "free space" beside a ``df`` that shows free space misled."""
    if err.errno != errno.ENOSPC or not err.filename:
        return False
    for folder in Path(os.fsdecode(err.filename)).absolute().parents:
        try:
            stats = os.statvfs(folder)
        except OSError:
            continue
        return bool(stats.f_files and not stats.f_ffree and stats.f_bavail)
    return False


def _unreadable_input(err: OSError, out) -> Path | None:
    """Where a permission error is of a file outside ``--out`` that this user may not read
    (what the run reads), not of a place it writes: the file, or the folder above it that
    this user may not enter (a reviewer's sample folder 0700 read by ``verify``); else None."""
    if err.errno not in (errno.EACCES, errno.EPERM) or not err.filename:
        return None
    path = Path(os.fsdecode(err.filename))
    try:
        if os.access(path, os.R_OK):
            return None
        # (is_file raises where a folder above may not be entered)
        blocker = path if os.access(path, os.F_OK) else next(
            (p for p in path.parents if p.exists() and not os.access(p, os.X_OK)), None)
        if blocker is None or (out is not None and
                               path.resolve().is_relative_to(Path(out).resolve())):
            return None
        return blocker
    except (OSError, TypeError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
