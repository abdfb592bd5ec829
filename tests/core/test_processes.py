"""ctcnet.core.processes: whether the process a record names still runs."""

import os
import socket
import sys

import pytest

from ctcnet.core.processes import process_start, recorded_process_alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_id_used_again_is_not_the_run_that_recorded_it():
    """A run killed outright, its id given since to another process (a node up for months,
    a container): read as a run still writing its folder, and verify said to wait for it."""
    here, me = socket.gethostname(), os.getpid()
    started = process_start(me)
    assert isinstance(started, int) and started == process_start(me)
    assert recorded_process_alive({"host": here, "pid": me, "pid_started": started}) is True
    assert recorded_process_alive({"host": here, "pid": me, "pid_started": started + 1}) is False
    assert recorded_process_alive({"host": here, "pid": me}) is True  # (an older run.json)
    assert recorded_process_alive({"host": "elsewhere", "pid": me}) is None
