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
