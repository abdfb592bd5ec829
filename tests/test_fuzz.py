"""Property-based fuzzing (hypothesis): odd frames, crops and metadata values never crash.

Each property says what must hold for *any* input: either a clean :class:`InputError` naming
the problem, or a result that is right by construction (events inside the frame, finite crops of
the model's size, a positive blood volume, a sample id that cannot leave the output folder).
Frames stay small and ``max_examples`` modest so this runs in seconds.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ctcnet.detect.cropping import extract_crops
from ctcnet.detect.detection import DetectConfig, detect_events
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.scan import open_cartridge, write_cartridge_info

PANEL = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def frames():
    """(3, H, W) frames of every accepted pixel type, tiny to roomy, with any values."""
    dtype = st.sampled_from([np.uint8, np.uint16, np.float32])
    shape = st.tuples(st.just(3), st.integers(1, 70), st.integers(1, 70))
    return dtype.flatmap(lambda dt: hnp.arrays(
        dt, shape, elements=hnp.from_dtype(np.dtype(dt), allow_nan=True, allow_infinity=True)
        if dt == np.float32 else None))


def frames_with_cells():
    """Background noise plus a few bright blobs, so detection finds events to crop."""
    return st.builds(_cell_frame, st.integers(12, 90), st.integers(12, 90),
                     st.integers(0, 2**16 - 1), st.sampled_from([np.uint16, np.float32]),
                     st.floats(1.0, 1e6))


def _cell_frame(h, w, seed, dtype, scale):
    rng = np.random.default_rng(seed)
    frame = rng.normal(100, 5, (3, h, w))
    yy, xx = np.mgrid[:h, :w]
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        frame += 400 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    frame *= scale / 100.0
    info = np.iinfo(dtype) if dtype == np.uint16 else np.finfo(dtype)
    return np.clip(frame, 0, info.max).astype(dtype)


@FUZZ
@given(frames())
def test_detection_either_refuses_or_finds_events_inside_the_frame(frame):
    try:
        events = detect_events(frame, PANEL)
    except InputError:
        return
    _, h, w = frame.shape
    assert np.isfinite(events[["x", "y"]].to_numpy()).all()
    assert ((events["x"] >= 0) & (events["x"] < w) & (events["y"] >= 0) & (events["y"] < h)).all()
    assert (events["area_px"] > 0).all()


@FUZZ
@given(frames_with_cells(), st.sampled_from([16, 33]), st.sampled_from([0.32, 0.64, 1.0]))
def test_crops_have_the_model_size_and_stay_finite(frame, crop, model_px):
    events = detect_events(frame, PANEL, DetectConfig(threshold_snr=4.0))
    crops, padded = extract_crops(frame, events["x"].to_numpy(), events["y"].to_numpy(), crop,
                                  model_px, PANEL.pixel_size_um)
    assert crops.shape == (len(events), 3, crop, crop) and crops.dtype == np.float32
    assert len(padded) == len(events)
    assert np.isfinite(crops).all()
    # Crops are made of frame pixels (resampled, or background filled within the range of the
    # pixels measured): never outside the frame's range.
    if len(crops):
        lo, hi = float(frame.min()), float(frame.max())
        span = max(1.0, hi - lo) * 1e-3
        assert crops.min() >= lo - span and crops.max() <= hi + span


@FUZZ
@given(st.integers(-3, 3), st.integers(-3, 3), st.integers(1, 40), st.integers(1, 40))
def test_crops_anywhere_around_tiny_frames(dy, dx, h, w):
    """Windows far larger than the frame, centred anywhere near it: filled, never a crash."""
    frame = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w)
    crops, padded = extract_crops(frame, np.array([w / 2 + dx * w]), np.array([h / 2 + dy * h]),
                                  24)
    assert crops.shape == (1, 2, 24, 24) and np.isfinite(crops).all()
    if 24 > min(h, w) or dx or dy:  # the window cannot fit: it must be reported as padded
        assert padded[0]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "sample_id": JSON_VALUES | st.sampled_from(["../x", "/abs", "a/b", "..", "ok-1", ""]),
    "columns": JSON_VALUES, "num_frames": JSON_VALUES, "blood_volume_ml": JSON_VALUES}))
def test_cartridge_json_values_are_checked(tmp_path_factory, info):
    root = tmp_path_factory.mktemp("cart")
    write_cartridge_info(root, PANEL, "s", 1, 1, 1, (16, 16))
    (root / "cartridge.json").write_text(json.dumps(info))
    (root / "r00c00.tif").write_bytes(b"")  # indexed only: open_cartridge reads no pixels
    try:
        cart = open_cartridge(root)
    except InputError:
        return
    assert math.isfinite(cart.blood_volume_ml) and cart.blood_volume_ml > 0
    sid = cart.sample_id
    assert sid and "/" not in sid and "\\" not in sid and sid not in (".", "..")
    assert (root / "out" / sid).resolve().parent == (root / "out").resolve()


CHANNEL = st.one_of(
    st.sampled_from(["DAPI", "CK", "CD45", "CD61"]),
    st.fixed_dictionaries({"name": st.sampled_from(["DAPI", "CK", "CD45", "VIM"]) | JSON_VALUES},
                          optional={"value_range": JSON_VALUES, "normalisation": JSON_VALUES |
                                    st.fixed_dictionaries({"method": st.sampled_from(
                                        ["snr", "fixed", "zscore"])}, optional={
                                        "softness": JSON_VALUES, "sample_step": JSON_VALUES,
                                        "compression": JSON_VALUES})}),
    JSON_VALUES)


@FUZZ
@given(st.fixed_dictionaries({"channels": st.lists(CHANNEL, min_size=0, max_size=5) |
                              JSON_VALUES},
                             optional={"pixel_size_um": JSON_VALUES | st.floats(0.01, 10),
                                       "name": JSON_VALUES}))
def test_panel_json_values_are_checked(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("panel") / "panel.json"
    path.write_text(json.dumps(data))
    try:
        panel = load_panel(path)
    except InputError:
        return
    assert 3 <= panel.num_channels <= 6
    assert 0.05 <= panel.pixel_size_um <= 5.0
    for c in panel.channels:
        lo, hi = c.value_range
        assert math.isfinite(lo) and math.isfinite(hi) and hi > lo
        assert isinstance(c.normalisation, dict)


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 3, 500), (3, 400, 5), (3, 1, 1)])
def test_known_odd_frames(shape):
    """Frame shapes that once crashed detection: refused by name or detected."""
    frame = np.random.default_rng(0).integers(90, 110, shape).astype(np.uint16)
    try:
        events = detect_events(frame, PANEL)
    except InputError as err:
        assert "too small" in str(err) and min(shape[1:]) < 12
    else:
        assert min(shape[1:]) >= 12
        assert ((events["x"] < shape[2]) & (events["y"] < shape[1])).all()
