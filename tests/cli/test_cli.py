"""ctcnet.cli: every subcommand listed with its help; no command writes over the model it reads."""


import pytest
from conftest import digest, one_line_refusal, refused, save_tiny_model

from ctcnet.cli import SUBCOMMANDS, build_parser, main

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


def test_simulate_help_names_every_shift(capsys):
    from ctcnet.simulate import NAMED_SHIFTS

    with pytest.raises(SystemExit):
        main(["simulate", "crops", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in NAMED_SHIFTS:
        assert name in out


SIZE = 32


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


def test_verbose_is_taken_before_or_after_the_subcommand():
    parse = build_parser().parse_args
    assert parse(["models", "-v"]).verbose == 1
    assert parse(["-v", "models"]).verbose == 1
    assert parse(["-vv", "models"]).verbose == 2
    assert parse(["models"]).verbose == 0
    # train hands the rest of its line to LightningCLI as it is
    assert parse(["train", "-v"]).cli_args == ["-v"]
