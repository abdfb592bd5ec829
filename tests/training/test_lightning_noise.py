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


def test_lightnings_advice_on_tensorboard_and_the_ddp_loss_is_kept_off_the_console():
    """Every run with a lab's own config said what to install for TensorBoard, and every DDP
    run asked for the training loss over every process, which is rank 0's by design."""
    import warnings

    from lightning.pytorch.utilities.rank_zero import rank_zero_warn

    from ctcnet.training.lightning_noise import drop_lightning_advice

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # (pytest's own filters, as a scope may reset them)
        drop_lightning_advice()
        rank_zero_warn("It is recommended to use `self.log('train/loss', ..., sync_dist=True)` "
                       "when logging on epoch level in distributed setting")
        rank_zero_warn("Starting from v1.9.0, `tensorboardX` has been removed as a dependency "
                       "of the `lightning.pytorch` package")
        rank_zero_warn("It is recommended to use `self.log('val/other', ..., sync_dist=True)`")
    assert [str(w.message) for w in seen] == [
        "It is recommended to use `self.log('val/other', ..., sync_dist=True)`"]
