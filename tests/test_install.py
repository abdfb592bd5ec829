"""The torch-free base install: its commands run without torch, its dependencies leave torch
out."""

import subprocess
import sys
from pathlib import Path

from ctcnet.core.install_hint import install_command

# --- installs -----------------------------------------------------------------------------------

def test_base_install_commands_without_torch():
    """With torch & co. absent (as in the base install), `ctcnet models` works and a command
    that needs them says what to install, in one line, exit 2."""
    code = ("import sys\n"
            "for m in ('torch', 'lightning', 'torchvision', 'pandas', 'scipy'):\n"
            "    sys.modules[m] = None\n"
            "from ctcnet.cli import main\n"
            "assert main(['models']) == 0\n"
            "assert main(['predict', 'scans', '--out', 'out']) == 2\n"
            "assert main(['evaluate', 'results', '--expected', 'e.csv', '--out', 'o']) == 2\n"
            "sys.exit(main(['export', 'm.pt', '--out', 'm.onnx']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "ctcnet-default" in out.stdout
    # predict runs on the torch-free predict extra; export needs everything.
    assert out.stderr.strip().splitlines() == [
        "ctcnet predict: needs pandas, which this install lacks: "
        f"{install_command('predict')} (torch-free; {install_command('all')} for every "
        "subcommand)",
        # evaluate --expected and on simulated cartridges runs on the predict extra too
        f"ctcnet evaluate: needs scipy, which this install lacks: "
        f"{install_command('predict')} (torch-free; {install_command('all')} for every "
        "subcommand)",
        "ctcnet export: needs torch, which this install lacks (the base and predict installs "
        f"run ONNX models only): {install_command('all')}"]


def test_the_package_helps_and_star_imports_without_torch():
    """help(ctcnet) and `from ctcnet import *` on the base install: the names that need torch
    are left out, and asked for by name they say which install gives them."""
    code = ("import sys, pydoc\n"
            "sys.modules['torch'] = None\n"
            "import ctcnet\n"
            "assert 'OnnxClassifier' in pydoc.render_doc(ctcnet)\n"
            "from ctcnet import *\n"
            "assert 'load_model' not in ctcnet.__all__ and 'load_backend' in ctcnet.__all__\n"
            "try:\n"
            "    ctcnet.load_model\n"
            "except ImportError as err:\n"
            "    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ctcnet.load_model needs torch, which this install lacks: "
                                 f"{install_command('all')}")


def test_base_dependencies_leave_torch_out():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml")
                            .read_text())["project"]
    base = {d.split(">")[0].split("=")[0].split("[")[0] for d in project["dependencies"]}
    assert {"numpy", "onnxruntime", "tifffile", "pillow"} <= base
    assert not base & {"torch", "torchvision", "lightning", "scipy", "pandas"}
    assert "ctcnet[all]" in project["optional-dependencies"]["test"]  # ./run test gets it all
    extras = project["optional-dependencies"]
    assert "ctcnet[predict]" in extras["all"]  # all is predict and more
    assert not {d.split(">")[0] for d in extras["predict"]} & {"torch", "torchvision",
                                                                 "lightning"}
    torch_req = next(d for d in project["optional-dependencies"]["all"] if d.startswith("torch"))
    assert torch_req.startswith("torch>=") and "==" not in torch_req


def test_install_hints_name_the_checkout_a_lab_installed_from(tmp_path):
    """A hint to add an extra names where this install came from: a checkout (editable or
    not) by its folder, so that pip does not fetch another package under the name; a wheel
    from an index, a moved checkout or an unreadable record by the distribution's name."""
    from ctcnet.core import install_hint

    checkout = Path(__file__).resolve().parents[1]
    assert install_command("all") == f"pip install -e '{checkout}[all]'"  # runs from here
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'ctcnet'\n")
    folder = tmp_path.as_uri()
    read = install_hint._from_direct_url
    assert read(f'{{"url": "{folder}", "dir_info": {{"editable": true}}}}') == (str(tmp_path),
                                                                                True)
    assert read(f'{{"url": "{folder}", "dir_info": {{}}}}') == (str(tmp_path), False)
    assert read(f'{{"url": "{(tmp_path / "gone").as_uri()}", "dir_info": {{}}}}') is None
    assert read('{"url": "https://example.org/ctcnet-1.0-py3-none-any.whl", '
                '"archive_info": {}}') is None
    assert read("{not json") is None
