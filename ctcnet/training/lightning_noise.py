"""Lightning's console noise that says nothing about a run, filtered once on import: its
advertising tips ("💡 Tip: For seamless cloud uploads ...", printed by every trainer built) and
its interrupt line (ctcnet says its own, naming the signal), its advice to install
TensorBoard, its advice to reduce the training loss over DDP's processes (rank 0's by design).
A lab's fine-tune or training run says what it does, not what to install. And Lightning's own
INFO lines kept as quiet as ctcnet's console (:func:`quiet_like_ctcnet`)."""

from __future__ import annotations

import logging
import warnings

from ctcnet.core.log_capture import is_kept_warnings_handler


class WithoutTips(logging.Filter):
    """Drops Lightning's advertising tips, and its "Detected KeyboardInterrupt, attempting
    graceful shutdown" (said of a SIGTERM too, before ctcnet's own line saying which signal
    stopped the run and how it resumes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (dropped) for a tip or the interrupt line, True for any other record."""
        text = str(record.msg).lstrip()
        return not (text.startswith("💡 Tip") or text.startswith("Detected KeyboardInterrupt"))


for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(name).addFilter(WithoutTips())
# Lightning's advice said as a warning, dropped: what to install for TensorBoard (said by
# every run whose config leaves the logger to Lightning, a lab's own; the run's CSVLogger is
# what ctcnet reads), and to reduce ``train/loss`` over DDP's processes (said by every DDP
# run; rank 0's by design, docs/training.md: a reduction at every step would cost each step a
# collective; ``train/acc`` is all processes').
ADVICE = (r"Starting from v1\.9\.0, `tensorboardX` has been removed as a dependency",
          r"It is recommended to use `self\.log\('train/loss'")


def drop_lightning_advice() -> None:
    """Filter :data:`ADVICE` out of the warnings (done on import)."""
    for message in ADVICE:
        warnings.filterwarnings("ignore", message=message)


drop_lightning_advice()


def quiet_like_ctcnet(names=("lightning.pytorch", "lightning.fabric")) -> None:
    """Libraries that say INFO lines on handlers of their own (Lightning: "GPU available",
    "max_steps reached", set up as it is imported, so after the command's logging) follow
    ctcnet's console: where ``--quiet`` raised ctcnet's logger past warnings, theirs is too."""
    ours = logging.getLogger("ctcnet")
    # (inside kept_warnings the logger is open to warnings, its console handler is not)
    console = [h.level for h in ours.handlers if not is_kept_warnings_handler(h)]
    quiet = ours.getEffectiveLevel() > logging.WARNING or any(lv > logging.WARNING
                                                               for lv in console)
    for name in names:  # (Lightning's own level, INFO, where the console is not quiet)
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
