"""ctcnet.core.log_capture: the warnings said during a piece of work kept for its record,
each once, however quiet the console is, and the logger as it was afterwards."""

import logging

from ctcnet.core.log_capture import kept_warnings


def test_warnings_are_kept_once_even_when_the_console_is_quiet(capsys):
    from ctcnet.cli import setup_logging

    log = logging.getLogger("ctcnet.training.example")
    setup_logging(quiet=True)
    try:
        with kept_warnings() as said:
            log.warning("%d crops are copies", 3)
            log.warning("%d crops are copies", 3)
            log.info("not kept")
            log.error("kept too")
        assert said == ["3 crops are copies", "kept too"]
        err = capsys.readouterr().err
        assert "copies" not in err and "kept too" in err  # the console as quiet as asked
        assert logging.getLogger("ctcnet").level == logging.ERROR
        with kept_warnings() as said:
            pass
        assert said == [] and not any(type(h).__name__ == "_Keep"
                                      for h in logging.getLogger("ctcnet").handlers)
    finally:
        setup_logging()



def test_a_script_without_logging_set_up_still_sees_the_warnings():
    """Logging's last resort says a warning where no handler of the caller's is set up (a
    notebook); keeping the warnings for a record must not silence it."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from ctcnet.core.log_capture import kept_warnings\n"
            "with kept_warnings() as said:\n"
            "    logging.getLogger('ctcnet.detect.example').warning('1 of 200 crops saturated')\n"
            "    logging.getLogger('ctcnet.detect.example').info('not said')\n"
            "assert said == ['1 of 200 crops saturated']\n"
            "logging.getLogger('ctcnet').setLevel(logging.ERROR)\n"
            "with kept_warnings() as said:\n"  # a quietened logger stays quiet
            "    logging.getLogger('ctcnet.detect.example').warning('kept, not said')\n"
            "assert said == ['kept, not said']\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["1 of 200 crops saturated"]


def test_a_quietened_logger_stays_quiet_under_a_callers_own_logging():
    """docs/python.md's ``logging.getLogger("ctcnet").setLevel(logging.ERROR)`` beside a
    notebook's ``basicConfig``: opening the logger to keep warnings sent them to the root's
    handler (a crop folder's saturation warning said); errors still reach it, once, and
    a block inside another keeps what it is given without saying it."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from ctcnet.core.log_capture import kept_warnings\n"
            "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
            "logging.getLogger('ctcnet').setLevel(logging.ERROR)\n"
            "log = logging.getLogger('ctcnet.detect.example')\n"
            "with kept_warnings() as said:\n"
            "    log.warning('kept, not said')\n"
            "    with kept_warnings() as inner:\n"
            "        log.warning('inner, not said')\n"
            "        log.error('an inner error, said once')\n"
            "    log.warning('after the inner block, kept')\n"
            "    log.error('an error, said')\n"
            "assert said == ['kept, not said', 'inner, not said', 'an inner error, said once', "
            "'after the inner block, kept', 'an error, said'], said\n"
            "assert inner == ['inner, not said', 'an inner error, said once'], inner\n"
            "root = logging.getLogger('ctcnet')\n"
            "assert root.level == logging.ERROR and root.propagate and not root.handlers\n"
            "log.warning('after: not said')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["an inner error, said once", "an error, said"]
