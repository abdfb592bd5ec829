"""Normalisation inside the model: matches its numpy reference, is gain/offset invariant, and
keeps each model's own settings."""

import numpy as np
import pytest
import torch

from ctcnet.errors import InputError
from ctcnet.io.panel import DEFAULT_NORMALISATION, LEGACY_SNR, Panel, default_panel, load_panel
from ctcnet.nn.normalise import Normalise, _asinh, snr_reference


def _crops(rng, n=4, c=5, size=80):
    x = rng.normal(150, 5, (n, c, size, size))
    x[:, :, 30:50, 30:50] += rng.uniform(20, 800, (n, c, 1, 1))  # a cell on the background
    return x.astype(np.float32)


@pytest.mark.parametrize("settings", [
    {"compression": "rational", "softness": 6.0, "sample_step": 4},
    {"compression": "asinh", "softness": 3.0, "sample_step": 2},
    {"compression": "asinh", "softness": 1.0, "sample_step": 4},
])
def test_torch_matches_numpy_reference(rng, settings):
    panel = Panel.from_dict({"channels": [{"name": n, "normalisation": {"method": "snr",
                                                                        **settings}}
                                          for n in default_panel().names]})
    x = _crops(rng)
    got = Normalise(panel)(torch.from_numpy(x)).numpy()
    want = np.stack([snr_reference(c, **settings) for c in x])
    assert np.abs(got - want).max() < 1e-5


def test_asinh_as_exported_matches_torch_asinh_over_the_whole_range():
    # The formula onnxruntime runs fast (log, sqrt and a sign from z / |z|): odd, finite at 0
    # and at counts far below the background, NaN stays NaN.
    z = torch.cat([torch.linspace(-2e5, 2e5, 20001), torch.linspace(-4, 4, 20001),
                   torch.tensor([0.0, -0.0, 1e-35, -1e-35, 1e-3, -1e-3])])
    got = _asinh(z)
    assert torch.isfinite(got).all()
    assert (got - torch.asinh(z)).abs().max() < 2e-6
    assert torch.equal(got, -_asinh(-z))
    assert torch.isnan(_asinh(torch.tensor([float("nan")]))).all()


def test_invariant_to_camera_gain_and_offset(rng):
    norm = Normalise(default_panel())
    x = torch.from_numpy(_crops(rng))
    same = norm(x * 10.0 + 300.0)  # a 10x brighter scanner with another offset
    assert torch.allclose(norm(x), same, atol=1e-4)


def test_missing_keys_mean_the_first_release_settings():
    legacy = Panel.from_dict({"channels": [{"name": n, "normalisation": {"method": "snr"}}
                                           for n in ("DAPI", "CK", "CD45")]})
    norm = Normalise(legacy)
    assert norm.compression == LEGACY_SNR["compression"] and norm.sample_step == 2
    assert Normalise(default_panel()).compression == "asinh"


def test_default_keeps_channel_ratios_over_three_decades(rng):
    # A CK 50x brighter than its leak into CD61 must look so to the network: the input differs
    # by ~log(50) between the two channels, for a dim cell and for a 100x brighter one.
    norm = Normalise(default_panel())
    gaps = []
    for ck_noise_units in (20.0, 2000.0):
        # Averaged over 8 crops: each crop's noise estimate is good to ~8 % per channel.
        x = rng.normal(150, 5, (8, 5, 80, 80)).astype(np.float32)
        x[:, 1, 30:50, 30:50] += ck_noise_units * 5
        x[:, 3, 30:50, 30:50] += ck_noise_units * 5 / 50
        y = norm(torch.from_numpy(x)).numpy()
        gaps.append(y[:, 1, 35:45, 35:45].mean() - y[:, 3, 35:45, 35:45].mean())
    # asinh at softness 1 is log(2z) above a few noise units: log(50) = 3.9.
    assert gaps[1] == pytest.approx(np.log(50), abs=0.15)
    assert gaps[0] > 2.5
    # The old rational default at softness 6 squeezed the bright case to almost nothing.
    old = Panel.from_dict({"channels": [{"name": n, "normalisation": {
        "method": "snr", "compression": "rational", "softness": 6.0, "sample_step": 4}}
        for n in default_panel().names]})
    y = Normalise(old)(torch.from_numpy(x)).numpy()
    assert y[:, 1, 35:45, 35:45].mean() - y[:, 3, 35:45, 35:45].mean() < 0.3


def test_dim_marker_stays_apart_from_none(rng):
    norm = Normalise(default_panel())
    x = _crops(rng, n=1)
    x[0, 1, 30:50, 30:50] = 150 + 4 * 5  # CK four noise units over background
    y = norm(torch.from_numpy(x))[0, 1].numpy()
    assert y[35:45, 35:45].mean() > 1.0 and abs(y[:20, :20].mean()) < 0.2


def test_fixed_method(rng):
    panel = Panel.from_dict({"channels": [{"name": n, "value_range": [0, 1000],
                                           "normalisation": {"method": "fixed"}}
                                          for n in ("DAPI", "CK", "CD45")]})
    x = torch.full((1, 3, 8, 8), 250.0)
    assert torch.allclose(Normalise(panel)(x), torch.full_like(x, 0.25))


@pytest.mark.parametrize("own, complaint", [
    # One channel's softness alone: its other keys the first release's (every 2nd pixel of
    # the whole crop) beside channels read on today's ring: a traceback deep in training.
    ({"method": "snr", "softness": 2.0}, "must share compression, sample_step"),
    ({"method": "snr", "softness": 0.0}, "softness and noise_floor must be over 0"),
    ({"method": "snr", "softness": -1.0}, "softness and noise_floor must be over 0"),
    ({**DEFAULT_NORMALISATION, "noise_floor": 0}, "softness and noise_floor must be over 0"),
])
def test_a_normalisation_no_model_can_read_is_refused_by_channel(own, complaint):
    """Refused where a model is made from the panel (training, a checkpoint); a data folder's
    panel.json, read for its channels alone, is not refused for it."""
    panel = load_panel({"channels": [{"name": "DAPI", "normalisation": own}, "CK", "CD45"]})
    with pytest.raises(InputError, match=complaint) as err:
        Normalise(panel)
    assert "DAPI" in str(err.value)
    # Stated in full on every channel, or alike on each: read (the first release's keys).
    Normalise(load_panel({"channels": [{"name": n, "normalisation": {"method": "snr",
                                                                     "softness": 2.0}}
                                       for n in ("DAPI", "CK", "CD45")]}))
    Normalise(load_panel({"channels": [{"name": "DAPI", "normalisation": {
        **DEFAULT_NORMALISATION, "softness": 2.0}}, "CK", "CD45"]}))
