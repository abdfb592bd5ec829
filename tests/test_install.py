"""The torch-free base install: its commands run without torch, its dependencies leave torch
out."""

import subprocess
import sys
from pathlib import Path

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
            "sys.exit(main(['export', 'm.pt', '--out', 'm.onnx']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "ctcnet-default" in out.stdout
    # predict runs on the torch-free predict extra; export needs everything.
    assert out.stderr.strip().splitlines() == [
        "ctcnet predict: needs pandas, which this install lacks: pip install 'ctcnet[predict]' "
        "(torch-free; 'ctcnet[all]' for every subcommand)",
        "ctcnet export: needs torch, which this install lacks (the base and predict installs "
        "run ONNX models only): pip install 'ctcnet[all]'"]


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
                                 "pip install 'ctcnet[all]'")


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
