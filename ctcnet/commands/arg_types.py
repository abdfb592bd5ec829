"""Option value types the commands share: a value out of its range is refused by argparse in
one line naming the option (exit status 2), before any work, not as a traceback from deep in
the run."""

from __future__ import annotations

import argparse

from ctcnet.core.decimal_comma import meant_by_comma


def _not_a_number(text: str, what: str) -> argparse.ArgumentTypeError:
    """The refusal of ``text`` that reads as no number: a decimal comma ("4,5", a European
    keyboard's) said as one, with the number meant (argparse said "invalid float value")."""
    meant = meant_by_comma(text)
    return argparse.ArgumentTypeError(f"{what}, not {text!r}" + (
        f": a decimal comma? write {meant}" if meant else ""))


def decimal(text: str) -> float:
    """A number (its range checked where it is used)."""
    try:
        return float(text)
    except ValueError:
        raise _not_a_number(text, "a number") from None


def share(text: str) -> float:
    """A share or a probability over 0 and at most 1 (a precision aimed at, a level)."""
    try:
        value = float(text)
    except ValueError:
        raise _not_a_number(text, "a number over 0 and at most 1") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a number over 0 and at most 1, not {text}")
    return value


def whole_at_least(least: int, what: str = "a whole number", most: int | None = None):
    """A whole number of ``least`` or more (a count of frames, crops, pixels), and at most
    ``most`` where given (a count past any machine's memory: refused before the work, not
    killed midway); anything else refused as "``what``, ``least`` or more, not ..."."""
    bounds = f"{least} or more" if most is None else f"{least} to {most:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}, {bounds}, not {text!r}") from None
        if value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{what}, {bounds}, not {value}")
        return value
    parse.__name__ = f"whole number of {least} or more"  # argparse names the type so
    return parse


# A random seed: numpy and torch refuse a negative one.
seed = whole_at_least(0, "a seed is a whole number")


def not_negative(text: str) -> float:
    """A finite number of 0 or more (events a frame)."""
    try:
        value = float(text)
    except ValueError:
        raise _not_a_number(text, "a number, 0 or more") from None
    if not 0 <= value < float("inf"):  # NaN and infinity too
        raise argparse.ArgumentTypeError(f"a finite number, 0 or more, not {text}")
    return value


def positive(text: str) -> float:
    """A finite number over 0 (a cut-off per 7.5 mL)."""
    try:
        value = float(text)
    except ValueError:
        raise _not_a_number(text, "a number over 0") from None
    if not 0.0 < value < float("inf"):  # NaN and infinity too
        raise argparse.ArgumentTypeError(f"a number over 0, not {text}")
    return value


def pixel_size_um(text: str) -> float:
    """A plausible pixel size in um (panel.json's bounds): 0 read as "not given" wrote a
    crop set at the panel's size nobody asked for."""
    from ctcnet.detect.pixel_size import PIXEL_SIZE_AUTO, PIXEL_SIZE_FIT, pixel_size_option

    try:
        value = pixel_size_option(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value in (PIXEL_SIZE_AUTO, PIXEL_SIZE_FIT):
        raise argparse.ArgumentTypeError(f"a number of um, not {text!r}")
    return float(value)


# The paths a command reads or writes: an empty one ('' from a script's unset variable) was
# read as the working folder (predict ran every scan there; --out wrote into it), and
# --int8 '' exported fp32.
# (dest -> as the command line names it; a model '' fell back to the shipped one unsaid)
PATH_ARGUMENTS = {"inputs": "INPUT", "results": "RESULTS", "samples": "SAMPLE",
                  "data": "DATA", "checkpoint": "CHECKPOINT", "out": "--out",
                  "out_option": "--out", "scans": "--scans", "calibrate_on": "--calibrate-on",
                  "save_model": "--save-model", "expected": "--expected", "int8": "--int8",
                  "model": "--model", "base": "--base"}


def refuse_empty_paths(args: argparse.Namespace) -> None:
    """Refuse (InputError) a path given as an empty name, naming the argument."""
    from ctcnet.errors import InputError

    for name, said in PATH_ARGUMENTS.items():
        value = getattr(args, name, None)
        if any(isinstance(v, str) and not v.strip()
               for v in (value if isinstance(value, list) else [value])):
            raise InputError(f"{said}: an empty name (an unset variable in a script?): give "
                             "the path")
