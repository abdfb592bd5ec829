"""The torch twin of detection and cropping (frames on a GPU) against the numpy path, on CPU
tensors (and on CUDA when present): the same events and the same crops up to float rounding."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ctcnet.core.robust import median
from ctcnet.detect import detection as on_host
from ctcnet.detect import device as on_device
from ctcnet.detect.cropping import extract_crops
from ctcnet.detect.detection import DetectConfig, detect_events
from ctcnet.errors import InputError
from ctcnet.inference.backends import OnnxBackend, TorchBackend
from ctcnet.inference.frame_device import resolve_frame_device
from ctcnet.io.panel import load_panel

PANEL = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
CPU = torch.device("cpu")
DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def frame_with_cells(seed=0, shape=(240, 300), cells=14, dtype=np.uint16):
    """(3, H, W) counts: offset, a gradient, Gaussian cells near and on the border, noise."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.empty((3, h, w))
    for c in range(3):
        frame[c] = 100 + 30 * c + 40 * xx / w + 20 * yy / h
    for _ in range(cells):
        x, y = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
        sigma = rng.uniform(2, 7)
        for c in rng.choice(3, size=rng.integers(1, 4), replace=False):
            frame[c] += rng.uniform(80, 900) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2)
                                                      / (2 * sigma ** 2))
    frame = rng.poisson(frame) + rng.normal(0, 3, frame.shape)
    return np.clip(frame, 0, 4095).astype(dtype)


def assert_same_events(a, b):
    assert len(a) == len(b) and len(a) > 0
    assert list(a.columns) == list(b.columns)
    exact = ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area_px", "edge_cut"]
    assert (a[exact].to_numpy() == b[exact].to_numpy()).all()
    np.testing.assert_allclose(b[["x", "y"]], a[["x", "y"]], atol=1e-3)
    np.testing.assert_allclose(b["peak_snr"], a["peak_snr"], rtol=1e-4)
    means = [c for c in a.columns if c.startswith("mean_")]
    np.testing.assert_allclose(b[means], a[means], rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_dense_stages_match_numpy(device):
    frame = frame_with_cells().astype(np.float32)
    t = torch.from_numpy(frame).to(device)
    binned = on_host.bin_frame(frame, 3)
    np.testing.assert_allclose(on_device.bin_frame(t, 3).cpu(), binned, rtol=1e-6)
    smooth = ndimage.gaussian_filter(binned, (0, 1.3, 1.3), mode="nearest", truncate=3.0)
    smooth_t = on_device.gaussian_filter(torch.from_numpy(binned).to(device), 1.3)
    np.testing.assert_allclose(smooth_t.cpu(), smooth, rtol=1e-5)
    background = on_host.background_map(smooth, 12)
    np.testing.assert_allclose(on_device.background_map(torch.from_numpy(smooth).to(device), 12)
                               .cpu(), background, rtol=1e-5)
    residual = smooth - background
    np.testing.assert_allclose(on_device.robust_noise(torch.from_numpy(residual).to(device))
                               .cpu(), on_host.robust_noise(residual), rtol=1e-5)


def test_median_is_numpys_for_odd_and_even_counts(rng):
    for n in (1, 2, 7, 8, 400):
        x = rng.normal(size=(3, n)).astype(np.float32)
        np.testing.assert_allclose(median(torch.from_numpy(x)), np.median(x, axis=-1),
                                   rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_events_as_numpy(seed, device):
    frame = frame_with_cells(seed)
    expected = detect_events(frame, PANEL)
    got = on_device.detect_events(on_device.upload(frame, device), PANEL)
    assert_same_events(expected, got)
    # Without splitting, and at another pixel size (binning 2 instead of 3).
    config = DetectConfig(split_touching=False)
    assert_same_events(detect_events(frame, PANEL, config),
                       on_device.detect_events(on_device.upload(frame, device), PANEL, config))
    fine = PANEL.with_pixel_size(0.45)
    assert_same_events(detect_events(frame, fine),
                       on_device.detect_events(on_device.upload(frame, device), fine))
    # An 8-bit display export: black clipped, read with its noise floor on both paths.
    export = np.clip(frame.astype(np.float64) - 140, 0, 255).astype(np.uint8)
    assert_same_events(detect_events(export, PANEL),
                       on_device.detect_events(on_device.upload(export, device), PANEL))


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("scan_um", [0.64, 0.7808, 0.5])  # as the model, enlarged, shrunk
def test_same_crops_as_numpy(scan_um, device):
    frame = frame_with_cells(3)
    h, w = frame.shape[1:]
    # Centres inside, at the border and on its outer edge (windows filled with background).
    x = np.array([150.0, 3.2, w - 1.0, 40.7, -0.5, w - 0.5])
    y = np.array([120.0, 100.4, 5.0, h - 2.5, -0.5, h - 0.6])
    expected, padded = extract_crops(frame, x, y, 48, 0.64, scan_um)
    got, got_padded = on_device.extract_crops(on_device.upload(frame, device), x, y, 48, 0.64,
                                              scan_um)
    assert got.dtype == np.float32 and got.shape == expected.shape == (6, 3, 48, 48)
    assert (got_padded == padded).all() and padded[1:].all() and not padded[0]
    np.testing.assert_allclose(got[~padded], expected[~padded], rtol=1e-5, atol=1e-2)
    # The background filled past the border: the numpy path rounds it to the frame's integer
    # counts, the device (float32 frame) does not.
    np.testing.assert_allclose(got[padded], expected[padded], rtol=1e-5, atol=0.5)
    with pytest.raises(InputError, match="positions lie off the"):  # as the numpy path
        on_device.extract_crops(on_device.upload(frame, device), x - 2, y, 48, 0.64, scan_um)
    empty, empty_padded = on_device.extract_crops(on_device.upload(frame, device), x[:0], y[:0],
                                                  48, 0.64, scan_um)
    assert empty.shape == (0, 3, 48, 48) and empty_padded.shape == (0,)


@pytest.mark.parametrize("dtype", [np.uint16, ">u2", np.float64, np.uint8, np.int32])
def test_upload_keeps_the_counts_of_any_number_type(dtype):
    frame = frame_with_cells(4, shape=(64, 80)).astype(dtype)
    t = on_device.upload(frame, CPU)
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), frame.astype(np.float32))


def test_bad_frames_get_the_numpy_paths_errors():
    with pytest.raises(InputError, match="channels, height, width"):
        on_device.upload(np.zeros((64, 80), np.uint16), CPU)
    with pytest.raises(InputError, match="must be numbers"):
        on_device.upload(np.zeros((3, 64, 80), dtype="U1"), CPU)
    with pytest.raises(InputError, match="too small"):
        on_device.detect_events(on_device.upload(np.zeros((3, 8, 80), np.uint16), CPU), PANEL)
    frame = frame_with_cells(5, shape=(64, 80)).astype(np.float32)
    frame[1, 10, 10] = np.nan
    with pytest.raises(InputError, match="NaN") as numpy_error:
        detect_events(frame, PANEL)
    with pytest.raises(InputError, match="NaN") as torch_error:
        on_device.detect_events(on_device.upload(frame, CPU), PANEL)
    assert str(numpy_error.value) == str(torch_error.value)


class _Backend:
    def __init__(self, gpu):
        self.gpu = gpu


def _onnx_backend(providers, provider_options):
    """An OnnxBackend around a stand-in for its onnxruntime session (no GPU needed)."""
    session = type("Session", (), {"get_provider_options": lambda _: provider_options})()
    backend = object.__new__(OnnxBackend)
    backend.classifier = type("Classifier", (), {"session": session, "providers": providers})()
    return backend


def test_onnx_backend_names_its_gpu():
    on_gpu = _onnx_backend(["CUDAExecutionProvider", "CPUExecutionProvider"],
                           {"CUDAExecutionProvider": {"device_id": "1"}})
    assert on_gpu.gpu == "cuda:1"
    assert _onnx_backend(["CPUExecutionProvider"], {}).gpu is None


def test_torch_backend_names_its_gpu():
    backend = object.__new__(TorchBackend)
    backend.device = torch.device("cuda", 1)
    assert backend.gpu == "cuda:1"
    backend.device = CPU
    assert backend.gpu is None


def test_frame_device_option():
    assert resolve_frame_device("auto", _Backend(None)) is None
    assert resolve_frame_device("numpy", _Backend("cuda:0")) is None
    assert resolve_frame_device("cpu", _Backend(None)) == CPU
    with pytest.raises(InputError, match="frame device"):
        resolve_frame_device("tpu", _Backend(None))
    onnx_on_gpu = _onnx_backend(["CUDAExecutionProvider", "CPUExecutionProvider"],
                                {"CUDAExecutionProvider": {"device_id": "0"}})
    if not torch.cuda.is_available():
        # "auto" never fails for want of a GPU: the frames stay in numpy.
        assert resolve_frame_device("auto", _Backend("cuda")) is None
        assert resolve_frame_device("auto", onnx_on_gpu) is None
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_frame_device("cuda", _Backend(None))
    else:
        # "cuda" and "cuda:0" are one device (one CUDA stream per frame thread, not two).
        for backend in (_Backend("cuda"), _Backend("cuda:0"), onnx_on_gpu):
            assert resolve_frame_device("auto", backend) == torch.device("cuda", 0)
        with pytest.raises(InputError, match="CUDA device"):
            resolve_frame_device(f"cuda:{torch.cuda.device_count()}", _Backend(None))
