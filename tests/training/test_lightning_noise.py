"""ctcnet.training.lightning_noise: Lightning's console kept as quiet as ctcnet's."""

import logging

from ctcnet.core.log_capture import kept_warnings


def test_lightnings_own_lines_follow_a_quiet_console():
    from ctcnet.cli import setup_logging
    from ctcnet.training.lightning_noise import quiet_like_ctcnet

    try:
        setup_logging(quiet=True)
        with kept_warnings():  # (the logger opened to warnings, the console still quiet)
            quiet_like_ctcnet()
        assert logging.getLogger("lightning.pytorch").level == logging.WARNING
        setup_logging()
        quiet_like_ctcnet()
        assert logging.getLogger("lightning.pytorch").level == logging.INFO
    finally:
        setup_logging()


def test_lightnings_interrupt_line_and_tips_are_dropped_its_other_lines_kept():
    """A SIGTERM printed "Detected KeyboardInterrupt, attempting graceful shutdown" before
    ctcnet's own line naming the signal."""
    from ctcnet.training.lightning_noise import WithoutTips

    def record(text):
        return logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "",
                                 0, text, None, None)

    keep = WithoutTips().filter
    assert not keep(record("\nDetected KeyboardInterrupt, attempting graceful shutdown ..."))
    assert not keep(record("💡 Tip: For seamless cloud uploads"))
    assert keep(record("GPU available: False, used: False"))
