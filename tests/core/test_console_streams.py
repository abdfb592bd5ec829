"""A console whose encoding lacks a character escapes it; the line is written, the console kept;
one closed at start is the null device; an answer that cannot be written ends its command."""

import io
import os
import subprocess
import sys

import pytest

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


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_console_lost_is_said_but_kept_out_of_a_records_warnings(caplog):
    """A fine-tune piped into `head` kept "the console's stderr cannot be written" in its model
    card's "Said while it was made": nobody saw it, and it says nothing of the model."""
    import logging

    from ctcnet.core.log_capture import kept_warnings

    with caplog.at_level(logging.WARNING, logger="ctcnet"), kept_warnings() as said:
        logging.getLogger("ctcnet.test").warning("a class of few crops")
        KeptGoingStream(_ClosedPipe(), "stderr").write("a line\n")
    assert said == ["a class of few crops"]
    assert "the console's stderr cannot be written" in caplog.text


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux's /proc")
def test_a_console_closed_at_start_is_the_null_device_not_a_failed_command(tmp_path):
    """``>&-`` / ``2>&-`` (a cron line's): Python starts with no sys.stdout, and a command's
    first or last line raised (exit 1 after a finished run, or no run at all); a file the run
    opened could take the closed descriptor's number. The descriptors are opened on the null
    device: the command runs, and its output goes nowhere."""
    code = ("import os, sys; from ctcnet.cli import main; status = main(['models']); "
            "open(sys.argv[1], 'w').write(f'{status} {os.readlink(\"/proc/self/fd/1\")} '"
            "f'{os.readlink(\"/proc/self/fd/2\")}')")
    result = tmp_path / "result.txt"
    done = subprocess.run(["bash", "-c", '"$0" -c "$1" "$2" >&- 2>&-', sys.executable, code,
                           str(result)], capture_output=True)
    assert done.returncode == 0, done
    assert result.read_text() == f"0 {os.devnull} {os.devnull}"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_version_that_cannot_be_written_is_one_line_and_exit_4():
    """``ctcnet --version > /dev/full`` ended in a traceback: its line is the answer."""
    done = subprocess.run(f'"{sys.executable}" -m ctcnet --version > /dev/full', shell=True,
                          capture_output=True, text=True)
    assert done.returncode == 4
    assert done.stderr == "ctcnet: error: the version cannot be written to stdout (No space " \
        "left on device)\n"
    shown = subprocess.run([sys.executable, "-m", "ctcnet", "--version"], capture_output=True,
                           text=True)
    assert shown.returncode == 0 and shown.stdout.startswith("ctcnet ")
    # A reader gone (a closed pipe) ends it as it ends any answer: 141, nothing said.
    piped = subprocess.run(["bash", "-c", '"$0" -m ctcnet --version | true; '
                            'echo "${PIPESTATUS[0]}"', sys.executable], capture_output=True,
                           text=True)
    assert piped.stdout.strip() in ("141", "0") and "error" not in piped.stderr
