"""Option value types the commands share: a value out of its range is refused by argparse in
one line naming the option (exit status 2), before any work, not as a traceback from deep in
the run."""

from __future__ import annotations

import argparse


def seed(text: str) -> int:
    """A random seed: a whole number, 0 or more (numpy and torch refuse a negative one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, 0 or more, not "
                                         f"{text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, 0 or more, not {value}")
    return value


def share(text: str) -> float:
    """A share or a probability over 0 and at most 1 (a precision aimed at, a level)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number over 0 and at most 1, not {text!r}") \
            from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a number over 0 and at most 1, not {text}")
    return value


def whole_at_least(least: int):
    """A whole number of ``least`` or more (a count of frames, crops, pixels)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, {least} or more, not "
                                             f"{text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"a whole number, {least} or more, not {value}")
        return value
    parse.__name__ = f"whole number of {least} or more"  # argparse names the type so
    return parse


def not_negative(text: str) -> float:
    """A number of 0 or more (events a frame)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, 0 or more, not {text!r}") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"a number, 0 or more, not {text}")
    return value
