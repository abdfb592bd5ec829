"""``ctcnet --version``: the version and what names the code beside it, as every summary.json
records it (``software``)."""

from __future__ import annotations

import argparse
import sys

from ctcnet import __version__
from ctcnet.core.console_streams import on_null_device


class VersionAction(argparse.Action):
    """``--version``: the version, and what names the code beside it (its commit, or its
    digest where none names it: an installed package, whose version two builds share), as
    every summary.json records it (``software``); read only when asked (git, the files). Its
    line is the command's answer: one that cannot be written (``> /dev/full``) ends it with
    exit 4 and the reason in one line, not a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        """Print the version line and end the command."""
        from ctcnet.core.provenance import software_record, software_text

        try:
            print(software_text(software_record(), __version__))
            sys.stdout.flush()
        except BrokenPipeError:  # its reader went away (`| head -c0`): as any tool, 141
            on_null_device(sys.stdout.fileno())  # (exit's flush)
            parser.exit(141)
        except OSError as err:
            parser.exit(4, f"ctcnet: error: the version cannot be written to stdout "
                           f"({err.strerror or err})\n")
        parser.exit()
