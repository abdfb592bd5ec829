"""Where a run's frame work runs: how many frame threads when not given, and the device for
the frames' dense work (numpy, or a torch device: the model's GPU with ``auto``)."""

from __future__ import annotations

from ctcnet.core.install_hint import install_command
from ctcnet.errors import InputError
from ctcnet.inference.backends import has_torch
from ctcnet.inference.resources import cpu_cores, cpu_frame_workers


def default_workers(backend=None) -> int:
    """Frame threads when not given. On a GPU: enough CPU cores to keep it fed. On a CPU:
    ``cpu_frame_workers`` (two on 2-3 cores, one per four cores on larger machines, whose
    other cores go to the model)."""
    cores = cpu_cores()
    if backend is not None and backend.gpu is not None:
        return max(1, min(8, cores - 1))
    return cpu_frame_workers(cores)


def frame_device_name(device) -> str:
    """What a run records of where its frames' dense work ran: ``numpy``, or the torch device
    (``cpu``, ``cuda:0``)."""
    return "numpy" if device is None else str(device)


def resolve_frame_device(option: str | None, backend=None):
    """The torch device for the frames' dense work (see ``PredictOptions.frame_device``), or
    None for numpy. ``auto`` takes the model's GPU (torch: its device; onnxruntime: its CUDA
    provider's device) when torch can use it, else numpy; a device asked for by name must
    exist."""
    option = (option or "numpy").strip().lower()
    if option == "auto":
        option = _model_gpu(backend)
        if option is None:
            return None
    if option == "numpy":
        return None
    if not has_torch():
        raise InputError(f"frame device {option!r} needs torch, which this install lacks: "
                         f"{install_command('all')} (or --frame-device numpy)")
    try:
        import torch

        device = torch.device(option)
    except (ImportError, RuntimeError) as err:
        raise InputError(f"frame device {option!r}: {err}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"frame device {option!r}: use auto, numpy, cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"frame device {option!r}: no CUDA device is available")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise InputError(f"frame device {option!r}: there are "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", index)  # one name per device: cuda and cuda:0 alike
    return device


def _model_gpu(backend) -> str | None:
    """The GPU a backend runs on (``Backend.gpu``), when torch can use it too; else None."""
    gpu = backend.gpu if backend is not None else None
    if gpu is None:
        return None
    try:
        import torch
    except ImportError:
        return None
    return gpu if torch.cuda.is_available() else None
