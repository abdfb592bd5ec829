"""A console whose encoding lacks a character escapes it; the line is written, the console kept."""

import io
import os
import subprocess
import sys

from ctcnet.core.console_streams import KeptGoingStream


def test_a_character_the_console_cannot_encode_is_escaped_not_the_console_lost():
    console = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    kept = KeptGoingStream(console, "stdout")
    kept.write("PAT-M\u00fcller-D0: ok\n")
    kept.write("ZZ-017: ok\n")
    assert kept.lost is None
    assert console.buffer.getvalue() == b"PAT-M\\xfcller-D0: ok\nZZ-017: ok\n"


def test_the_process_own_stdout_escapes_what_its_encoding_lacks():
    code = ("from ctcnet.core.console_streams import escape_unwritable_characters as escape; "
            "escape(); print('M\u00fcller')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert (done.returncode, done.stdout) == (0, b"M\\xfcller\n")
