"""Backends by name: suffixes choose the backend, one batch-size table serves torch and ONNX."""

import subprocess
import sys

import pytest

from ctcnet.errors import InputError
from ctcnet.inference import backends
from ctcnet.inference.backend_registry import (
    backend_for_path,
    default_batch_size,
    get_backend,
    list_backends,
    opener,
)


def test_the_two_backends_are_registered_with_their_classes():
    assert list_backends() == ["torch", "onnx"]
    assert opener("torch") is backends.TorchBackend and backends.TorchBackend.name == "torch"
    assert opener("onnx") is backends.OnnxBackend and backends.OnnxBackend.name == "onnx"


@pytest.mark.parametrize("path, name", [("m.onnx", "onnx"), ("M.ONNX", "onnx"), ("m.pt", "torch"),
                                        ("m.ckpt", "torch"), ("weights.bin", "torch")])
def test_the_suffix_chooses_the_backend(path, name):
    assert backend_for_path(path).name == name


@pytest.mark.parametrize("backend, device, size", [("onnx", "cpu", 8), ("onnx", "cuda", 1024),
                                                   ("torch", "cpu", 64),
                                                   ("torch", "cuda", 1024),
                                                   ("torch", "mps", 64)])
def test_default_batch_size_per_backend_and_device(backend, device, size):
    assert default_batch_size(backend, device) == size
    assert get_backend(backend).batch_size(device) == size


def test_an_unknown_backend_lists_the_registered_ones():
    with pytest.raises(InputError, match="unknown backend 'tensorrt'.*torch, onnx"):
        backends.load_backend("model.pt", backend="tensorrt")


@pytest.mark.parametrize("path, backend, message", [
    ("model.onnx", "torch", "models run with --backend onnx"),
    ("model.pt", "onnx", "needs an exported .onnx model"),
])
def test_a_backend_that_cannot_open_the_file_is_refused(path, backend, message):
    with pytest.raises(InputError, match=message):
        backends.load_backend(path, backend=backend)


def test_the_registry_imports_neither_torch_nor_onnxruntime():
    code = ("import sys, ctcnet.inference.backend_registry; "
            "heavy = [m for m in ('torch', 'onnxruntime') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_model_file_not_there_is_said_so_before_its_backend_is_opened(tmp_path, monkeypatch):
    """A predict install (no torch) said of a missing .pt that torch models need torch."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.inference import backends

    monkeypatch.setattr(backends, "has_torch", lambda: False)
    for name in ("nope.pt", "nope.onnx"):
        with pytest.raises(InputError, match="model file not found"):
            backends.load_backend(tmp_path / name)
