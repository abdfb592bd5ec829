"""Lightning's console noise that says nothing about a run, filtered once on import: its
advertising tips ("💡 Tip: For seamless cloud uploads ...", printed by every trainer built). A
lab's fine-tune or training run says what it does, not what to install."""

from __future__ import annotations

import logging


class WithoutTips(logging.Filter):
    """Drops Lightning's advertising tips."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (dropped) for a tip, True for any other record."""
        return not str(record.msg).startswith("💡 Tip")


for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(name).addFilter(WithoutTips())
