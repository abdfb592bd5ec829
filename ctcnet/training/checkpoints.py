"""The checkpoints a training run keeps: the best epochs and, after every epoch, the last
state, read back as the same run from a run folder moved or copied since."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint


class BestAndLastCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose ``last.ckpt`` is always the last epoch's state.

    Lightning (2.6) writes ``last.ckpt`` only in a step that also wrote a best (top-k)
    checkpoint, so an epoch that does not beat the best leaves ``last.ckpt`` at an older epoch:
    ``--ckpt_path last`` then trains again epochs already done, and a run's final weights are
    lost (a 3-epoch run kept its first epoch only, twice). Here the last state is written at
    the end of every epoch whether or not it was the best."""

    def on_validation_end(self, trainer, pl_module) -> None:
        """Save as Lightning does, then ``last.ckpt`` if this validation left it out."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_left_out(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Save as Lightning does, then ``last.ckpt`` if this epoch left it out."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_left_out(trainer)

    def load_state_dict(self, state_dict: dict) -> None:
        """Lightning's, with a run folder moved or copied since the checkpoint was written
        read as the same run: the paths it records are taken under this folder where the
        files are there, so the best score and the checkpoints kept are the run's (Lightning
        forgot them, and a worse epoch was then exported as the best)."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            def here(path):
                try:
                    return str(Path(self.dirpath) / Path(path).relative_to(old))
                except (TypeError, ValueError):
                    return path
            kept = [here(p) for p in (state_dict.get("best_k_models") or {})]
            if all(Path(p).is_file() for p in [here(state_dict.get("best_model_path")), *kept]
                   if p):
                state_dict = {**state_dict, "dirpath": self.dirpath,
                              **{k: here(state_dict.get(k)) for k in (
                                  "best_model_path", "kth_best_model_path", "last_model_path")},
                              "best_k_models": {here(k): v for k, v in
                                                (state_dict.get("best_k_models") or {}).items()}}
        super().load_state_dict(state_dict)

    def _save_last_if_left_out(self, trainer) -> None:
        # Skipped when this step was saved already (the best, with last beside it), in a
        # sanity check, outside fitting or in a fast dev run: Lightning's own rule.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
