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

