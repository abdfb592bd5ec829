"""ctcnet.training.cli: a resume past max_epochs is refused; Ctrl-C exits 130."""

import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from ctcnet.errors import InputError


def test_resume_with_max_epochs_already_reached_is_refused(tmp_path):
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    torch.save({"epoch": 2, "state_dict": {}}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    with pytest.raises(InputError, match="would train nothing"):
        check_resume("last", trainer)
    check_resume("last", SimpleNamespace(max_epochs=4,
                                         checkpoint_callback=trainer.checkpoint_callback))
    with pytest.raises(InputError, match="not found"):
        check_resume(str(tmp_path / "missing.ckpt"), trainer)
    # `last` of a run stopped before its first epoch ended: none saved, and what to do.
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match="none was saved .* without --ckpt_path"):
        check_resume("last", SimpleNamespace(max_epochs=4, checkpoint_callback=SimpleNamespace(
            dirpath=str(tmp_path / "none"))))


def test_a_finished_run_stopped_before_its_model_file_resumes_to_write_it(tmp_path):
    """SIGTERM as the last epoch's model file was written: the advised resume was refused as
    training nothing, and a rerun as a folder holding checkpoints; it now writes the file."""
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    torch.save({"epoch": 2, "state_dict": {}}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    assert check_resume("last", trainer, model_file_missing=True) == tmp_path / "last.ckpt"
    with pytest.raises(InputError, match="would train nothing"):  # fewer epochs: not that run
        check_resume("last", SimpleNamespace(max_epochs=2, checkpoint_callback=SimpleNamespace(
            dirpath=str(tmp_path))), model_file_missing=True)


def test_resume_with_max_steps_already_reached_is_refused(tmp_path):
    """A run limited by steps (max_epochs -1, as configs/finetune.yaml) that has finished,
    resumed: it trained nothing and wrote its model file again. Refused; stopped as it wrote
    that file, it resumes to write it; more steps than it took go on."""
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    torch.save({"epoch": 1, "global_step": 4, "state_dict": {}}, tmp_path / "last.ckpt")
    folder = SimpleNamespace(dirpath=str(tmp_path))
    trainer = SimpleNamespace(max_epochs=-1, max_steps=4, checkpoint_callback=folder)
    with pytest.raises(InputError, match=r"has trained 4 step\(s\); trainer.max_steps=4 would "
                                         r"train nothing: .*--model.init_from="):
        check_resume("last", trainer)
    assert check_resume("last", trainer, model_file_missing=True) == tmp_path / "last.ckpt"
    with pytest.raises(InputError, match="max_steps=3 would train nothing"):
        check_resume("last", SimpleNamespace(max_epochs=-1, max_steps=3,
                                             checkpoint_callback=folder),
                     model_file_missing=True)
    assert check_resume("last", SimpleNamespace(max_epochs=-1, max_steps=6,
                                                checkpoint_callback=folder))


def test_a_resume_with_other_model_settings_is_refused_by_name(tmp_path):
    """A new learning rate had no effect (the optimiser is restored) while the model file
    recorded it; another loss changed the run midway; the classes in another order trained
    the head on other labels; another width ended in a traceback."""
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    settings = {"lr": 0.003, "loss": "focal", "arch_kwargs": {"width": 8},
                "taxonomy": {"classes": [{"name": n} for n in ("ctc", "wbc", "debris")]},
                "channels_last": True, "_instantiator": "x"}
    torch.save({"epoch": 0, "state_dict": {}, "hyper_parameters": settings},
               tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    assert check_resume("last", trainer, model_settings=dict(settings)) == \
        tmp_path / "last.ckpt"
    # (how the weights lie in memory may change)
    assert check_resume("last", trainer, model_settings={**settings, "channels_last": False})
    for changed, said in (({"lr": 0.1}, r"\(lr 0.003 -> 0.1\)"),
                          ({"loss": "ce"}, r'\(loss "focal" -> "ce"\)'),
                          ({"arch_kwargs": {"width": 16}},
                           r'\(arch_kwargs \{"width": 8\} -> \{"width": 16\}\)'),
                          ({"taxonomy": {"classes": [{"name": n}
                                                     for n in ("wbc", "ctc", "debris")]}},
                           r"\(taxonomy\)")):
        with pytest.raises(InputError, match=r"run was made with other model settings "
                                             + said + ".*--model.init_from="):
            check_resume("last", trainer, model_settings={**settings, **changed})
    # A setting an earlier ctcnet's checkpoint lacks, at its default: the run went on as it.
    from ctcnet.training.lit import CTCLitModule
    from ctcnet.training.resume import setting_defaults

    defaults = setting_defaults(CTCLitModule)
    added = {**settings, "symmetry": defaults["symmetry"]}
    assert check_resume("last", trainer, model_settings=added, setting_defaults=defaults)
    with pytest.raises(InputError, match=r"symmetry null -> \"rot4\""):
        check_resume("last", trainer, model_settings={**added, "symmetry": "rot4"},
                     setting_defaults=defaults)


def test_a_diverged_run_is_said_so_not_sent_to_an_earlier_checkpoint(tmp_path):
    from types import SimpleNamespace

    from conftest import save_tiny_model

    from ctcnet.training.cli import export_best

    save_tiny_model(tmp_path / "best.ckpt", width=4)
    blob = torch.load(tmp_path / "best.ckpt", weights_only=True)
    first = next(k for k, v in blob["state_dict"].items() if v.is_floating_point())
    blob["state_dict"][first] = torch.full_like(blob["state_dict"][first], float("nan"))
    torch.save(blob, tmp_path / "best.ckpt")
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path),
                              checkpoint_callback=SimpleNamespace(
                                  best_model_path=str(tmp_path / "best.ckpt")))
    with pytest.raises(InputError, match=r"the training diverged .* lower --model.lr"):
        export_best(trainer, "model.pt")


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_resume_that_would_outrun_its_learning_rate_schedule_is_refused(tmp_path, schedule):
    """A run planned over 3 epochs of 8 steps, stopped after 2: resumed with its own limits it
    goes on; with max_epochs raised, one-cycle would fail past its end and cosine restart its
    warm-up, so it is refused in one line that says how to train on."""
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    if schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=24)
    else:
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
            torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, total_iters=2),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 22)], milestones=[2])
    torch.save({"epoch": 1, "global_step": 16, "state_dict": {},
                "lr_schedulers": [scheduler.state_dict()]}, tmp_path / "last.ckpt")
    folder = SimpleNamespace(dirpath=str(tmp_path))
    same = SimpleNamespace(max_epochs=3, max_steps=-1, checkpoint_callback=folder)
    assert check_resume("last", same) == tmp_path / "last.ckpt"
    for longer in (SimpleNamespace(max_epochs=5, max_steps=-1, checkpoint_callback=folder),
                   SimpleNamespace(max_epochs=3, max_steps=20, checkpoint_callback=folder)):
        with pytest.raises(InputError, match=r"planned over 24 steps and this run asks for "
                                             r"(40|20).*--model.init_from="):
            check_resume("last", longer)


def test_resume_from_last_checks_the_file_lightning_resumes(tmp_path):
    """A second run into the same folder writes last-v1.ckpt beside the first run's finished
    last.ckpt: "last" is the newest of them, the one checked and resumed."""
    import os
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume

    torch.save({"epoch": 2, "state_dict": {}}, tmp_path / "last.ckpt")  # finished: 3 of 3
    torch.save({"epoch": 0, "state_dict": {}}, tmp_path / "last-v1.ckpt")  # stopped after 1
    os.utime(tmp_path / "last.ckpt", ns=(1_000_000_000, 1_000_000_000))
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    assert check_resume("last", trainer) == tmp_path / "last-v1.ckpt"
    assert check_resume(None, trainer) is None


def test_ctrl_c_in_training_exits_130(monkeypatch, capsys, tmp_path):
    """Lightning turns Ctrl-C into a graceful stop and sys.exit(1); ctcnet reports it as an
    interrupt (130), like every other subcommand, and says how the run resumes."""
    from types import SimpleNamespace

    import ctcnet.training.cli as T

    def interrupted_fit(*args, **kwargs):
        trainer.interrupted = True
        raise SystemExit(1)

    trainer = SimpleNamespace(interrupted=False, fit=interrupted_fit, callbacks=[],
                              world_size=1, accumulate_grad_batches=1, is_global_zero=True,
                              default_root_dir=str(tmp_path))
    from ctcnet.io.panel import default_panel

    model = SimpleNamespace(spec=SimpleNamespace(class_names=["ctc", "wbc"],
                                                 panel=default_panel()), hparams={})
    fake = SimpleNamespace(trainer=trainer, model=model, datamodule=None,
                           config=SimpleNamespace(ckpt_path=None, export=None, overwrite=False))
    monkeypatch.setattr(T, "CTCLightningCLI", lambda *a, **k: fake)
    status, err = run_cli(capsys, "train", "--trainer.max_epochs=1")
    assert status == 130 and err == ["ctcnet train: interrupted; the same command with "
                                     "--ckpt_path last resumes it from its last finished epoch "
                                     "(where none finished, no checkpoint was written: run the "
                                     "command again as it was)"]
    # A DDP run's other processes stop with its first, which says it once.
    monkeypatch.setenv("LOCAL_RANK", "1")
    status, err = run_cli(capsys, "train", "--trainer.max_epochs=1")
    assert status == 130 and len(err) == 1  # a rank left from elsewhere, a world of one
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, err = run_cli(capsys, "train", "--trainer.max_epochs=1")
    assert status == 130 and err == []
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("SLURM_PROCID", "1")  # srun's second task
    assert run_cli(capsys, "train", "--trainer.max_epochs=1")[1] == []
    # srun's tasks of another command each run on their own: each says it stopped.
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("WORLD_SIZE", "1")
    from ctcnet.cli import _say_stopped

    _say_stopped(SimpleNamespace(_name="predict", overwrite=False), "interrupted")
    assert "ctcnet predict: interrupted" in capsys.readouterr().err


def test_fit_or_interrupt_tells_a_ctrl_c_from_a_sigterm_and_a_failure():
    """Both training commands (train, finetune) fit through it: Lightning's sys.exit(1) after a
    Ctrl-C is an interrupt (130), after a scheduler's SIGTERM a termination (143: a job
    wrapper tells a preemption from a person); any other exit stays what it was."""
    from types import SimpleNamespace

    from ctcnet.errors import Terminated
    from ctcnet.training.interrupts import fit_or_interrupt

    def stopping(interrupted, sigterm=False):
        def fit(*args, **kwargs):
            trainer.interrupted = interrupted
            raise SystemExit(1)
        trainer = SimpleNamespace(interrupted=False, received_sigterm=sigterm, fit=fit)
        return trainer

    with pytest.raises(KeyboardInterrupt) as stopped:
        fit_or_interrupt(stopping(True), None)
    assert not isinstance(stopped.value, Terminated)
    with pytest.raises(Terminated):
        fit_or_interrupt(stopping(True, sigterm=True), None)
    with pytest.raises(SystemExit):
        fit_or_interrupt(stopping(False), None)


def test_sigterm_under_the_trainer_is_noted_without_a_collective_and_passed_on(monkeypatch):
    """Lightning 2.6's handler broadcast over the process group inside the signal handler (a
    DDP run hung there); ours signals the launcher's processes, sets the flag the loop shares
    between ranks at its next step, and calls the handler before Lightning's."""
    import signal
    from types import SimpleNamespace

    from ctcnet.training.interrupts import SigtermWithoutBroadcast

    seen, killed = [], []
    connector = SimpleNamespace(received_sigterm=False,
                                _original_handlers={signal.SIGTERM: lambda n, f: seen.append(n)})
    launcher = SimpleNamespace(kill=killed.append)
    trainer = SimpleNamespace(_signal_connector=connector, global_rank=1,
                              strategy=SimpleNamespace(launcher=launcher))
    installed = {}
    monkeypatch.setattr(signal, "signal", lambda signum, fn: installed.setdefault(signum, fn))
    SigtermWithoutBroadcast().on_train_start(trainer, None)
    installed[signal.SIGTERM](signal.SIGTERM, None)
    installed[signal.SIGTERM](signal.SIGTERM, None)
    assert connector.received_sigterm and killed == [signal.SIGTERM]  # the launcher once
    assert seen == [signal.SIGTERM, signal.SIGTERM]


def test_a_mistyped_option_is_one_line_and_zero_epochs_are_refused(capsys, tmp_path):
    """An unknown option gets its error and the tip to run --help, not the usage of every
    option first; --trainer.max_epochs=0 would train nothing and write no model: refused."""
    from pathlib import Path

    smoke = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
    from ctcnet.cli import main

    with pytest.raises(SystemExit) as stop:  # the option parser exits by itself
        main(["train", "--config", smoke, "--data.bogus=1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(err) == 2, err
    assert "unrecognized arguments: --data.bogus=1" in err[-1] and "--help" in err[0]
    # A config file's typo gets the option meant, as ctcnet's own refusals do.
    typo = tmp_path / "typo.yaml"
    typo.write_text(Path(smoke).read_text().replace("\ntrainer:\n",
                                                    "\ntrainer:\n  max_epoch: 2\n", 1))
    with pytest.raises(SystemExit):
        main(["train", "--config", str(typo)])
    err = capsys.readouterr().err
    assert "does not accept option 'max_epoch' (did you mean trainer.max_epochs?" in err, err
    # A group's own name mistyped: the option meant, too.
    typo.write_text(Path(smoke).read_text().replace("\ndata:\n", "\ndat:\n", 1))
    with pytest.raises(SystemExit):
        main(["train", "--config", str(typo)])
    err = capsys.readouterr().err
    assert "Option 'dat." in err and "is not accepted (did you mean data." in err, err
    typo.unlink()  # (the folder must hold nothing a refused run wrote, below)
    status, err = run_cli(capsys, "train", "--config", smoke, "--trainer.max_epochs=0",
                          f"--trainer.default_root_dir={tmp_path}")
    assert status == 2 and "max_epochs=0 trains nothing" in err[-1]
    assert not any(tmp_path.iterdir())
    if not torch.cuda.is_available():  # a GPU asked for where none is: one line, not a trace
        status, err = run_cli(capsys, "train", "--config", smoke, "--trainer.accelerator=gpu",
                              f"--trainer.default_root_dir={tmp_path}")
        assert status == 2 and len(err) == 1 and "no CUDA device; --trainer.accelerator " \
            "cpu" in err[0], err
    # Another trainer mistake: its own fix, not the device's (every one read "no CUDA").
    status, err = run_cli(capsys, "train", "--config", smoke,
                          "--trainer.enable_checkpointing=false",
                          f"--trainer.default_root_dir={tmp_path}")
    assert status == 2 and "leave --trainer.enable_checkpointing on" in err[-1] and \
        "CUDA" not in err[-1], err
    # Shares and a focal gamma out of range: one line, before any work (2 was a traceback at
    # the first batch; -1 trained).
    for option in ("--model.label_smoothing=2", "--model.label_smoothing=-1",
                   "--model.focal_gamma=-1", "--model.warmup_fraction=2"):
        status, err = run_cli(capsys, "train", "--config", smoke, option,
                              f"--trainer.default_root_dir={tmp_path}")
        assert status == 2 and "are shares, 0 up to 1" in err[-1], (option, err)


def test_a_resume_of_another_shape_is_refused(tmp_path):
    """A checkpoint of a run on 2 processes resumed on 1 (or with another batch size): its
    epochs had other steps, and the learning-rate schedule restored with it would end early
    or fail past its end. Refused in one line; the same shape resumes; an older checkpoint
    without the record is judged by its steps alone, as before."""
    from types import SimpleNamespace

    from ctcnet.training.cli import RUN_SHAPE, check_resume

    shape = {"processes": 2, "batch_size": 2, "accumulate_grad_batches": 1,
             "limit_train_batches": "1.0"}
    torch.save({"epoch": 1, "state_dict": {}, RUN_SHAPE: shape}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=6, max_steps=-1,
                              checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)))
    assert check_resume("last", trainer, shape) == tmp_path / "last.ckpt"
    with pytest.raises(InputError, match=r"another shape \(processes 2 -> 1.*trainer.devices"):
        check_resume("last", trainer, {**shape, "processes": 1})
    with pytest.raises(InputError, match=r"batch_size 2 -> 1"):
        check_resume("last", trainer, {**shape, "batch_size": 1})
    torch.save({"epoch": 1, "state_dict": {}}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, {**shape, "processes": 1}) == tmp_path / "last.ckpt"


def test_a_resume_with_another_limit_of_batches_an_epoch_is_refused(tmp_path):
    """A run of one batch an epoch (trainer.limit_train_batches 1) resumed with two: its
    epochs had other steps, and one-cycle failed past its end after an epoch of compute (the
    checkpoint it then wrote never resumed again); cosine restarted. Refused in one line; the
    count 1 is not the share 1.0 (every batch); a checkpoint of an earlier ctcnet, which
    recorded no limit, ran on every batch."""
    from types import SimpleNamespace

    from ctcnet.training.resume import RUN_SHAPE, check_resume, run_shape

    def shape(limit):
        return run_shape(SimpleNamespace(world_size=1, accumulate_grad_batches=1,
                                         limit_train_batches=limit),
                         SimpleNamespace(batch_size=4))

    torch.save({"epoch": 1, "state_dict": {}, RUN_SHAPE: shape(1)}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=4, max_steps=-1,
                              checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)))
    assert check_resume("last", trainer, shape(1)) == tmp_path / "last.ckpt"
    for other in (2, 1.0):
        with pytest.raises(InputError, match=rf"another shape \(limit_train_batches 1 -> "
                                             rf"{other};.*trainer.limit_train_batches"):
            check_resume("last", trainer, shape(other))
    older = {k: v for k, v in shape(1.0).items() if k != "limit_train_batches"}
    torch.save({"epoch": 1, "state_dict": {}, RUN_SHAPE: older}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, shape(1.0)) == tmp_path / "last.ckpt"
    with pytest.raises(InputError, match=r"limit_train_batches 1.0 -> 2"):
        check_resume("last", trainer, shape(2))


def test_a_resume_that_trains_otherwise_is_refused_by_name(tmp_path):
    """Resumed with the crops compensated, another seed, gradient clip, precision or best
    model's monitor, a run went on otherwise and its model file recorded the change as the
    whole run's (its spec still said no compensation): refused naming each; the same recipe
    resumes, and a checkpoint that recorded none (an earlier ctcnet's) as before. Settings
    that act alike are alike: a seed drawn anew (true), a precision chosen for the machine,
    the augmentation's defaults given or not, no clip as 0 or none."""
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume
    from ctcnet.training.run_identity import RUN_RECIPE, run_recipe

    def recipe(seed=0, compensate=False, clip=None, monitor="val/macro_f1", precision=None,
               resolved="32-true", augment=True, algorithm="norm", mode="max"):
        trainer = SimpleNamespace(gradient_clip_val=clip, gradient_clip_algorithm=algorithm,
                                  precision=resolved, checkpoint_callback=SimpleNamespace(
                                      monitor=monitor, mode=mode))
        data = SimpleNamespace(hparams={"augment": augment, "compensate": compensate,
                                        "compensate_share": 1.0})
        return run_recipe({"seed_everything": seed, "trainer.precision": precision}, trainer,
                          data)

    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: recipe()}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=6, max_steps=-1,
                              checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)))
    assert check_resume("last", trainer, recipe=recipe()) == tmp_path / "last.ckpt"
    for alike in ({"resolved": "bf16-mixed"}, {"augment": {"flips": True}}, {"clip": 0},
                  {"algorithm": None}):
        assert check_resume("last", trainer, recipe=recipe(**alike)), alike
    for changed, said in (({"compensate": True},
                           "data.compensate false -> true, data.compensate_share null -> 1.0"),
                          ({"seed": 5}, "seed_everything 0 -> 5"),
                          ({"clip": 0.5}, 'trainer.gradient_clip_algorithm null -> "norm", '
                                          "trainer.gradient_clip_val null -> 0.5"),

                          ({"augment": False}, "data.augment true -> false"),
                          ({"augment": {"blur_p": 0.5}}, "data.augment.blur_p 0.25 -> 0.5"),
                          ({"monitor": "val/loss"},
                           'checkpoint.monitor "val/macro_f1" -> "val/loss"')):
        with pytest.raises(InputError, match=r"run was trained otherwise \(" + re.escape(said)
                                             + r".*--model.init_from="):
            check_resume("last", trainer, recipe=recipe(**changed))
    # A loss monitored under mode max (an earlier ctcnet's, which kept its highest) resumes
    # under min, the mode a loss now reads as: refused, no setting given could resume it.
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: recipe(monitor="val/loss")},
               tmp_path / "last.ckpt")
    assert check_resume("last", trainer, recipe=recipe(monitor="val/loss", mode="min"))
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: recipe()}, tmp_path / "last.ckpt")
    # A precision asked on one side only may be the one the machine chose on the other.
    assert check_resume("last", trainer, recipe=recipe(precision="16-mixed",
                                                       resolved="16-mixed"))
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: recipe(precision="bf16-mixed",
                                                                 resolved="bf16-mixed")},
               tmp_path / "last.ckpt")
    with pytest.raises(InputError, match=r'trainer.precision "bf16-mixed" -> "16-mixed"'):
        check_resume("last", trainer, recipe=recipe(precision="16-mixed", resolved="16-mixed"))
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: recipe(seed=True)},
               tmp_path / "last.ckpt")
    assert check_resume("last", trainer, recipe=recipe(seed=True))  # a seed drawn anew
    # ... also named as drawn: the run's saved config.yaml holds the seed Lightning drew.
    assert check_resume("last", trainer, recipe=recipe(seed=1234))
    # A recipe of another form (recorded while it was settled) is not compared; an option
    # one side has not (a later ctcnet's) is passed over.
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: {"data.augment": True,
                                                            "seed_everything": 1234}},
               tmp_path / "last.ckpt")
    assert check_resume("last", trainer, recipe=recipe(seed=5))
    newer = recipe()
    newer["data.augment"] = {**newer["data.augment"], "a_later_option": 0.3}
    torch.save({"epoch": 1, "state_dict": {}, RUN_RECIPE: newer}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, recipe=recipe())
    torch.save({"epoch": 1, "state_dict": {}}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, recipe=recipe(seed=5)) == tmp_path / "last.ckpt"


def test_the_monitorable_metrics_are_those_the_run_logs():
    """What the check lets through is what training logs (lit's training and validation
    steps: the losses, the training accuracy, the macro-F1 and the per-class figures and
    confusion cells, a learning-rate monitor's names), and what it refuses the run never logs
    (val/acc, train/macro_f1)."""
    from types import SimpleNamespace

    from ctcnet.errors import InputError
    from ctcnet.training.cli import check_monitored, logged_metrics

    logged = logged_metrics(["ctc", "wbc"])
    assert {"val/loss", "train/loss_epoch", "val/confusion/ctc_as_wbc", "val/f1_wbc"} <= logged
    assert not {"val/acc", "train/macro_f1"} & logged

    def trainer(monitor):
        return SimpleNamespace(callbacks=[SimpleNamespace(monitor=monitor)])

    for fine in ("val/confusion/wbc_as_ctc", "lr-AdamW/pg1", "train/acc"):
        check_monitored(trainer(fine), ["ctc", "wbc"])
    # Validation's figure is the one meant (val/f1_ctc was offered for val/acc, and the same
    # name of training's is the most overfit pick).
    for wrong, meant in (("val/acc", r"'val/macro_f1'\?; train/acc is training's"),
                         ("train/macro_f1", r"'val/macro_f1'\?\)")):
        with pytest.raises(InputError, match=f"which the run does not log \\(did you mean "
                                             f"{meant}"):
            check_monitored(trainer(wrong), ["ctc", "wbc"])


def test_a_mistyped_monitor_and_a_second_run_into_one_folder_are_refused_up_front(capsys,
                                                                                  tmp_path):
    """A checkpoint monitoring a metric the run never logs fails after the first epoch, as a
    traceback: refused before any, with the name meant. A new run into a folder holding
    another run's checkpoints would write its model.pt over and mix the two: refused, unless
    --overwrite. The run's checkpoints record its shape."""
    from pathlib import Path

    smoke = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
    root = f"--trainer.default_root_dir={tmp_path / 'run'}"
    status, err = run_cli(capsys, "train", "--config", smoke, root,
                          "--checkpoint.monitor=val/macro-f1")
    assert status == 2 and "does not log (did you mean 'val/macro_f1'?)" in err[-1], err
    assert not (tmp_path / "run" / "checkpoints").exists()
    from ctcnet.cli import main

    status = main(["train", "--config", smoke, root])
    said = capsys.readouterr()
    assert status == 0, said.err
    # The model written, with the figure it was chosen by.
    assert re.search(r"best model: \S+ \(val/\S+ \d\.\d{4} on the validation crops\)",
                     said.out), said.out
    # The model file alone says how it was made: the run's whole configuration and software.
    exported = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["ctcnet_spec"]
    assert exported["training"]["config"]["seed_everything"] == 0
    assert exported["training"]["config"]["trainer"]["max_epochs"] >= 1
    assert exported["training"]["config"]["data"]["batch_size"] == 8
    assert exported["training"]["software"]["ctcnet"]
    saved = torch.load(next((tmp_path / "run" / "checkpoints").glob("last*.ckpt")),
                       weights_only=True)
    assert saved["ctcnet_run_shape"] == {"processes": 1, "batch_size": 8,
                                         "accumulate_grad_batches": 1,
                                         "limit_train_batches": "2"}
    status, err = run_cli(capsys, "train", "--config", smoke, root, "--model.lr=0.01")
    assert status == 2 and "holds another training run's checkpoints" in err[-1], err
    assert "or --overwrite=true (" in err[-1]  # the form the parser takes, as it is given
    (tmp_path / "run" / "model.onnx").write_bytes(b"the earlier run's export")
    status, err = run_cli(capsys, "train", "--config", smoke, root, "--model.lr=0.01",
                          "--overwrite=true")
    assert status == 0, err
    assert len(list((tmp_path / "run" / "checkpoints").glob("best*.ckpt"))) == 1
    # The earlier model's export goes with it: beside the new model.pt it would read as its;
    # so do its logs (its metrics.csv as version_0 beside the new run's version_1).
    assert not (tmp_path / "run" / "model.onnx").exists()
    assert [p.name for p in (tmp_path / "run" / "lightning_logs").iterdir()] == ["version_0"]


def test_a_partial_batch_is_kept_where_it_is_a_processs_only_one(monkeypatch):
    """64 crops in batches of 48 on one process: the partial batch of 16 is dropped (a batch
    of one crop would break BatchNorm); on 2 processes each has 32, its only batch, kept: the
    run trained nothing before."""
    from ctcnet.training.splits import crop_loader

    crops = list(range(64))
    assert len(crop_loader(crops, 48, 0, train=True)) == 1
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    assert crop_loader(crops, 48, 0, train=True).drop_last is False
    assert crop_loader(list(range(200)), 48, 0, train=True).drop_last is True


def test_fewer_validation_crops_than_processes_are_refused_in_one_line(monkeypatch):
    """One validation crop on 2 processes: Lightning's sampler asserted on the process with
    none, and the other died waiting on it (two tracebacks). Refused, naming what to change;
    one crop a process is scored."""
    from ctcnet.training.splits import crop_loader

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    with pytest.raises(InputError, match=r"1 validation crop\(s\) for 2 processes: .*"
                                         r"data.val_fraction.*trainer.devices"):
        crop_loader([0], 4, 0, train=False)
    assert [list(batch) for batch in crop_loader([0, 1], 4, 0, train=False)] == [[1]]
    assert len(crop_loader([0], 4, 0, train=True)) == 1  # (training's loader: Lightning's)


def test_a_run_that_learnt_nothing_is_said_to_be_no_better_than_guessing(caplog):
    from ctcnet.training.cli import say_if_no_better_than_guessing

    with caplog.at_level("WARNING", logger="ctcnet.training"):
        say_if_no_better_than_guessing(0.0797, 5)
        say_if_no_better_than_guessing(0.65, 5)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "0.080 is no better than guessing among 5 classes" in said[0]
    # Two classes in the validation crops, every one called ctc: 0.341 was over a quarter's
    # guess for the taxonomy's four classes, and said nothing.
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.training"):
        say_if_no_better_than_guessing(0.341, 4, [[14, 0, 0, 0], [13, 0, 0, 0], [0] * 4,
                                                  [0] * 4], ["ctc", "wbc", "cluster", "debris"])
    assert "calls every validation crop ctc" in caplog.text


def test_a_resume_on_other_crops_is_refused(tmp_path, crops):
    """Resumed on a crop folder a patient's crops were added to (or another folder), a run
    went on over other steps and validation crops, and its model named the crops of its
    start: evaluate then missed the crops it had trained on."""
    import shutil
    from types import SimpleNamespace

    from ctcnet.training.resume import check_resume
    from ctcnet.training.run_identity import RUN_DATA, data_identity

    def identity(folder):
        return data_identity(SimpleNamespace(hparams={"data_dir": str(folder), "crop_size": 32,
                                                      "val_fraction": 0.2}))

    before = identity(crops)
    assert identity(crops) == before and before["crops"] == 4
    torch.save({"epoch": 0, "state_dict": {}, RUN_DATA: before}, tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    assert check_resume("last", trainer, data=before) == tmp_path / "last.ckpt"
    grown = tmp_path / "grown"
    shutil.copytree(crops, grown)
    first = sorted(grown.rglob("*.tif"))[0]
    shutil.copy(first, first.with_name("P009_" + first.name))
    (grown / "manifest.csv").unlink(missing_ok=True)
    with pytest.raises(InputError, match=r"trained on other crops \(data.data_dir .*--model."
                                         r"init_from="):
        check_resume("last", trainer, data=identity(grown))
    torch.save({"epoch": 0, "state_dict": {}, RUN_DATA: identity(grown)}, tmp_path / "last.ckpt")
    shutil.copy(first, first.with_name("P010_" + first.name))
    with pytest.raises(InputError, match=r"the crop folder's crops changed since"):
        check_resume("last", trainer, data=identity(grown))
    # A checkpoint of a run that recorded none (an earlier ctcnet's) is resumed as before.
    torch.save({"epoch": 0, "state_dict": {}}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, data=identity(grown)) == tmp_path / "last.ckpt"
    # A manifest's patient column added since splits the crops otherwise: refused too (the
    # resume ran on other validation crops, its checkpoint naming the earlier split).
    from ctcnet.detect.crop_dataset import read_crop_index

    index = read_crop_index(grown)
    torch.save({"epoch": 0, "state_dict": {}, RUN_DATA: identity(grown)}, tmp_path / "last.ckpt")
    rows = [f"{Path(p).relative_to(grown).as_posix()},{label},{sample},,P{k % 2}"
            for k, (p, label, sample) in enumerate(zip(index.paths, index.labels,
                                                       index.sample_ids))]
    (grown / "manifest.csv").write_text("path,label,sample_id,split,patient_id\n"
                                        + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"the manifest's patient ids changed since"):
        check_resume("last", trainer, data=identity(grown))
    # A checkpoint of a run begun before patients were recorded (no such key), on a folder that
    # had the column all along: resumed as before, not refused as crops changed.
    older = {k: v for k, v in identity(grown).items() if k != "patients_sha256"}
    torch.save({"epoch": 0, "state_dict": {}, RUN_DATA: older}, tmp_path / "last.ckpt")
    assert check_resume("last", trainer, data=identity(grown)) == tmp_path / "last.ckpt"


def test_a_resume_under_a_simulator_that_draws_otherwise_is_refused(tmp_path, monkeypatch):
    """Simulated crops are their settings and the simulator's code: a run stopped under one
    ctcnet and resumed under another whose simulator draws otherwise went on on other crops
    unsaid. Refused in one line; a checkpoint that recorded no fingerprint (an earlier
    ctcnet's) resumes as before."""
    from types import SimpleNamespace

    from ctcnet.training import run_identity
    from ctcnet.training.resume import check_resume

    module = SimpleNamespace(hparams={"crop_size": 32, "simulate": {"train": 4, "val": 2}})
    before = run_identity.data_identity(module)
    assert before["simulator"] and run_identity.data_identity(module) == before
    torch.save({"epoch": 0, "state_dict": {}, run_identity.RUN_DATA: before},
               tmp_path / "last.ckpt")
    trainer = SimpleNamespace(max_epochs=3, checkpoint_callback=SimpleNamespace(
        dirpath=str(tmp_path)))
    assert check_resume("last", trainer, data=before) == tmp_path / "last.ckpt"
    monkeypatch.setattr(run_identity, "simulator_fingerprint", lambda: "another simulator")
    now = run_identity.data_identity(module)
    with pytest.raises(InputError, match=r"trained on other crops \(the simulator's code "
                                         r"changed since.*--model.init_from="):
        check_resume("last", trainer, data=now)
    older = {k: v for k, v in before.items() if k != "simulator"}
    torch.save({"epoch": 0, "state_dict": {}, run_identity.RUN_DATA: older},
               tmp_path / "last.ckpt")
    assert check_resume("last", trainer, data=now) == tmp_path / "last.ckpt"
    # A crop folder alone records none: no simulator draws its crops.
    assert "simulator" not in run_identity.data_identity(SimpleNamespace(hparams={}))


def test_a_run_refused_before_it_trained_leaves_no_empty_log_folder(tmp_path):
    """A class the taxonomy lacks, refused as the data were set up, left lightning_logs/
    version_0 empty beside the run's other folders."""
    from types import SimpleNamespace

    from ctcnet.training.interrupts import fit_or_interrupt

    version = tmp_path / "lightning_logs" / "version_0"

    def refused(*args, **kwargs):
        version.mkdir(parents=True)
        raise InputError("classes ['apoptotic'] are not in the taxonomy")

    trainer = SimpleNamespace(fit=refused, interrupted=False,
                              loggers=[SimpleNamespace(log_dir=str(version))])
    with pytest.raises(InputError, match="apoptotic"):
        fit_or_interrupt(trainer, None)
    assert not version.exists()


def test_a_run_folder_moved_or_copied_resumes_as_the_same_run(tmp_path):
    """A run folder moved (or copied) since its checkpoint: its best score and kept
    checkpoints are read under the new folder where the files are there (Lightning forgot
    them and exported a worse epoch as the best); "last" is the furthest-trained last*.ckpt,
    not the newest file (a copy's file times say nothing)."""
    import os

    from ctcnet.training.checkpoints import BestAndLastCheckpoint
    from ctcnet.training.resume import _trained_steps

    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    new.mkdir(parents=True)
    (new / "best-epoch=002.ckpt").write_bytes(b"kept")
    best = str(old / "best-epoch=002.ckpt")
    state = {"monitor": "val/macro_f1", "best_model_score": torch.tensor(0.99),
             "best_model_path": best, "current_score": None, "dirpath": str(old),
             "best_k_models": {best: torch.tensor(0.99)}, "kth_best_model_path": best,
             "kth_value": torch.tensor(0.99), "last_model_path": str(old / "last.ckpt")}
    callback = BestAndLastCheckpoint(dirpath=str(new), monitor="val/macro_f1", mode="max",
                                     save_last=True)
    callback.load_state_dict(state)
    assert float(callback.best_model_score) == pytest.approx(0.99)
    assert callback.best_model_path == str(new / "best-epoch=002.ckpt")
    assert list(callback.best_k_models) == [str(new / "best-epoch=002.ckpt")]
    torch.save({"global_step": 16, "epoch": 1}, new / "last.ckpt")
    torch.save({"global_step": 8, "epoch": 0}, new / "last-v1.ckpt")
    os.utime(new / "last.ckpt", (1, 1))  # the furthest-trained, with the older file time
    assert max([new / "last-v1.ckpt", new / "last.ckpt"], key=_trained_steps).name == \
        "last.ckpt"


def test_a_shipped_config_is_found_by_its_docs_name_outside_a_checkout(capsys, tmp_path,
                                                                          monkeypatch):
    """A lab that installed ctcnet trains in a folder of its own: the docs' --config
    configs/smoke.yaml read "File does not exist" there; it reads the shipped config, a lab's
    own file of that path wins, and a name ctcnet does not ship is refused with those it
    does."""
    from ctcnet.training.shipped_configs import SHIPPED_CONFIGS, with_shipped_configs

    monkeypatch.chdir(tmp_path)
    shipped = str(SHIPPED_CONFIGS / "smoke.yaml")
    for given in (["--config", "configs/smoke.yaml"], ["--config", "smoke"],
                  ["--config=smoke.yaml"], ["-c", "configs/smoke.yaml"]):
        assert shipped in " ".join(with_shipped_configs(given + ["--trainer.max_epochs=1"]))
    # Not ours: a lab's own path elsewhere, an inline YAML, a following option.
    for given in (["--config", "mine/smoke.yaml"], ["--config", "{trainer: {}}"],
                  ["--config", "--print_config"]):
        assert with_shipped_configs(given) == given
    # The whole command: the shipped config read (the zero epochs refused, not the file).
    status, err = run_cli(capsys, "train", "--config", "configs/smoke.yaml",
                          "--trainer.max_epochs=0", f"--trainer.default_root_dir={tmp_path}")
    assert status == 2 and "max_epochs=0 trains nothing" in err[-1], err
    status, err = run_cli(capsys, "train", "--config", "configs/smoke-typo.yaml")
    assert status == 2 and len(err) == 1 and "ships no config of that name" in err[0] and \
        "smoke" in err[0], err
    # A folder of that name here (a lab's crop folder called smoke/) is no config: the
    # shipped one is read.
    (tmp_path / "smoke").mkdir()
    assert with_shipped_configs(["--config", "smoke"]) == ["--config", shipped]
    # A lab's own configs/smoke.yaml is the one read.
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "smoke.yaml").write_text("trainer:\n  max_epoch: 2\n")
    with pytest.raises(SystemExit):
        run_cli(capsys, "train", "--config", "configs/smoke.yaml")
    assert "max_epoch" in capsys.readouterr().err


def test_a_loss_monitored_keeps_its_lowest_epoch(tmp_path, capsys):
    """--checkpoint.monitor val/loss under the default mode (max, macro-F1's) kept and exported
    the epoch of the highest validation loss as the best model."""
    from pathlib import Path

    from ctcnet.cli import main

    smoke = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
    status = main(["train", "--config", smoke, f"--trainer.default_root_dir={tmp_path}",
                   "--checkpoint.monitor=val/loss", "--trainer.max_epochs=2"])
    assert status == 0, capsys.readouterr().err
    saved = torch.load(next((tmp_path / "checkpoints").glob("last*.ckpt")), weights_only=True)
    ((key, state),) = [(k, v) for k, v in saved["callbacks"].items() if "'monitor'" in k]
    assert "'mode': 'min'" in key
    import pandas as pd

    logged = pd.read_csv(next(tmp_path.glob("lightning_logs/*/metrics.csv")))["val/loss"]
    assert float(state["best_model_score"]) == pytest.approx(logged.min(), rel=1e-5)


def test_a_panel_channels_own_normalisation_leaving_keys_out_is_said(caplog):
    """Every channel given {method: snr, softness: 2}: trained on the first release's
    sampling and background (its keys left out), not today's, without a word."""
    import logging

    from ctcnet.io.panel import load_panel
    from ctcnet.training.cli import _say_normalisation_left_out

    own = load_panel({"channels": [{"name": n, "normalisation": {"method": "snr",
                                                                 "softness": 2.0}}
                                   for n in ("DAPI", "CK", "CD45")]})
    with caplog.at_level(logging.WARNING, logger="ctcnet"):
        _say_normalisation_left_out(load_panel(None))
        assert not caplog.records
        _say_normalisation_left_out(own)
    said = caplog.records[0].getMessage()
    assert "DAPI, CK, CD45 leaves out" in said and "sample_step" in said
    assert "background_from crop" in said and "background_from ring" in said
