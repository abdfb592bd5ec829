"""ctcnet.cli: every subcommand listed with its help; no command writes over the model it reads."""

import hashlib

import pytest
from conftest import save_tiny_model

from ctcnet.cli import SUBCOMMANDS, main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import load_panel

# --- CLI ----------------------------------------------------------------------------------------

def test_cli_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_has_help(capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ctcnet " + name in capsys.readouterr().out


SIZE = 32


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, path, args) -> None:
    """The command exits 2, naming ``path`` and --overwrite."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--overwrite" in err, err


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from ctcnet.simulate import simulate_crops

    base = tmp_path_factory.mktemp("lab")
    save_tiny_model(base / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(4, load_panel(None), crop_size=SIZE, seed=3, num_samples=2)
    write_crop_dataset(base / "crops", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    return base


def one_line_refusal(capsys, args, match) -> str:
    """The command exits 2 with one line holding ``match``; returns that line."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and match in err[0], err
    return err[0]


def test_no_command_writes_over_the_model_it_reads(lab, tmp_path, capsys):
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    before = digest(model)
    crops = lab / "crops"
    again = tmp_path / "sub" / ".." / "m.pt"  # the same file, spelt otherwise
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.pt").symlink_to(model)
    evaluate = ["evaluate", crops, "--model", model, "--out", tmp_path / "ev", "--no-baselines",
                "--device", "cpu", "--calibrate-on", crops, "--save-model"]
    for target in (model, again, tmp_path / "link.pt"):
        for more in ([], ["--overwrite"]):
            line = one_line_refusal(capsys, evaluate + [target] + more,
                                    "is the model this command reads")
            assert "choose another path for --save-model" in line and str(target) in line
    refused(capsys, lab / "base.pt", [str(a) for a in evaluate + [lab / "base.pt"]])
    one_line_refusal(capsys, ["finetune", crops, "--base", model, "--out", again,
                              "--overwrite", "--steps", "1", "--device", "cpu"],
                     "is the model this command reads")
    one_line_refusal(capsys, ["export", model, "--out", model, "--overwrite"],
                     "is the model this command reads")
    assert digest(model) == before and not (tmp_path / "ev").exists()
