"""A run's log file: records held until the run begins, written with UTC times whatever the
console's level, and a log that cannot be written costs the log alone, said once."""

import errno
import logging

from ctcnet.core.run_log import run_log


class _FullDisk:
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_records_wait_for_the_run_to_begin_and_a_refused_run_leaves_none(tmp_path):
    logger = logging.getLogger("ctcnet.test_run_log")
    with run_log(tmp_path / "refused", "predict", ["ctcnet", "predict"]) as log:
        logger.warning("before the checks")
    assert not (tmp_path / "refused").exists()
    with run_log(tmp_path / "out", "predict", ["ctcnet", "predict", "x"]) as log:
        logger.warning("before the checks")
        log.open()
        logger.info("after")
        log.ended(0)
    lines = log.path.read_text().splitlines()
    assert "ctcnet predict x" in lines[0] and "before the checks" in lines[1]
    assert "after" in lines[2] and lines[-1].endswith("exit status 0")


def test_a_log_the_disk_cannot_take_is_given_up_with_one_warning(tmp_path, caplog):
    logger = logging.getLogger("ctcnet.test_run_log")
    with caplog.at_level("WARNING", logger="ctcnet"):
        with run_log(tmp_path / "out", "predict", []) as log:
            log.open()
            log._file = _FullDisk()
            for _ in range(5):
                logger.warning("a line the disk has no room for")
            log.ended(0)
    said = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(said) == 1 and "No space left on device" in said[0]
    assert log.path is None


def test_two_runs_started_together_keep_a_log_each(tmp_path):
    """Jobs of an array start in the same second (in containers each is pid 1): the second
    log of one name is another file, never appended to the first."""
    with run_log(tmp_path, "predict", ["first"]) as first:
        first.open()
        first_path = first.path
    with run_log(tmp_path, "predict", ["second"]) as second:
        second.path = first_path  # the same name, as two jobs would make it
        second.open()
    assert second.path != first_path and second.path.name.endswith("-2.log")
    assert "first" in first_path.read_text() and "first" not in second.path.read_text()


def test_a_log_is_no_more_open_than_its_folder(tmp_path):
    """A review started under a umask of 022 wrote its log 0644 into a results folder kept to
    its owner (0700), where every other file ctcnet made was 0600."""
    import os
    import stat

    (tmp_path / "out" / "logs").mkdir(parents=True)
    os.chmod(tmp_path / "out" / "logs", 0o700)
    before = os.umask(0o022)
    try:
        with run_log(tmp_path / "out", "review", ["ctcnet", "review"]) as log:
            log.open()
            log.ended(0)
    finally:
        os.umask(before)
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
