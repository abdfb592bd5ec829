"""ctcnet.training.cli: a resume past max_epochs is refused; Ctrl-C exits 130."""

import pytest
import torch
from conftest import run_cli

from ctcnet.errors import InputError


def test_resume_with_max_epochs_already_reached_is_refused(tmp_path):
    from types import SimpleNamespace

    from ctcnet.training.cli import check_resume

    torch.save({"epoch": 2, "state_dict": {}}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    with pytest.raises(InputError, match="would train nothing"):
        check_resume("last", trainer)
    check_resume("last", SimpleNamespace(max_epochs=4,
                                         checkpoint_callback=trainer.checkpoint_callback))
    with pytest.raises(InputError, match="not found"):
        check_resume(str(tmp_path / "missing.ckpt"), trainer)


def test_ctrl_c_in_training_exits_130(monkeypatch, capsys):
    """Lightning turns Ctrl-C into a graceful stop and sys.exit(1); ctcnet reports it as an
    interrupt (130), like every other subcommand."""
    from types import SimpleNamespace

    import ctcnet.training.cli as T

    def interrupted_fit(*args, **kwargs):
        trainer.interrupted = True
        raise SystemExit(1)

    trainer = SimpleNamespace(interrupted=False, fit=interrupted_fit)
    fake = SimpleNamespace(trainer=trainer, model=None, datamodule=None,
                           config=SimpleNamespace(ckpt_path=None, export=None))
    monkeypatch.setattr(T, "CTCLightningCLI", lambda *a, **k: fake)
    status, err = run_cli(capsys, "train", "--trainer.max_epochs=1")
    assert status == 130 and err == ["ctcnet train: interrupted"]
