"""What a model takes from a notebook's arrays: crops scaled to 0-1 and crops with NaN pixels
are said, a shipped model loads by its name, and a crop of another size is refused where the
network itself is called (its global pooling would read it all the same, and wrongly)."""

import logging
import re

import numpy as np
import pytest
import torch
from conftest import save_tiny_model

from ctcnet.errors import InputError
from ctcnet.inference.backends import TorchBackend
from ctcnet.nn.classifier import load_model
from ctcnet.nn.crop_input import crop_value_warning


def test_float_crops_scaled_to_0_1_are_said_counts_and_integers_are_not():
    counts = np.random.default_rng(0).uniform(90, 3000, (2, 3, 32, 32)).astype(np.float32)
    tops = [4095.0] * 3
    assert "within 0-1" in crop_value_warning(counts / 4095, tops)
    assert crop_value_warning(counts, tops) is None
    assert crop_value_warning(np.zeros((2, 3, 32, 32), np.float32), tops) is None  # blank
    assert crop_value_warning((counts / 4095).astype(np.uint8), tops) is None
    assert crop_value_warning(counts / 4095, [1.0] * 3) is None  # a panel of 0-1 values
    # A batch of a thousand crops is looked at in a sample of them, the scaling seen all the same
    many = np.repeat(counts, 500, axis=0)
    assert "within 0-1" in crop_value_warning(many / 4095, tops)
    assert crop_value_warning(many, tops) is None
    # A background subtracted and clipped at 0 (each crop less its median): said, as an array
    # is read as given (a folder's reading draws it again); its calls had moved without a word.
    subtracted = np.clip(counts - np.median(counts, axis=(2, 3), keepdims=True), 0, None)
    assert "2 of 2 crops looked at read as background subtracted and clipped at 0 in 3 " \
        "channel(s)" in crop_value_warning(subtracted.astype(np.uint16), tops)
    # Judged crop by crop, as a folder's reading judges them: crops clipped past the band
    # beside unclipped ones are not one clipped channel on average.
    mixed = counts.copy()
    mixed[0, 2] = np.where(mixed[0, 2] > np.percentile(mixed[0, 2], 90), mixed[0, 2], 0)
    assert crop_value_warning(mixed.astype(np.uint16), tops) is None
    assert crop_value_warning(subtracted.astype(np.uint8), [255.0] * 3) is None  # a composite
    # Float crops less their median, not clipped (half their pixels under 0, a tenth to a
    # fifth of them at 0 exactly): no clipped background, as a folder's reading finds none.
    centred = counts - np.median(counts, axis=(2, 3), keepdims=True)
    centred[np.abs(centred) < 300] = 0.0
    assert 0.1 < (centred == 0).mean() < 0.3 and (centred < 0).mean() > 0.3
    assert crop_value_warning(centred, tops) is None
    # ... and composites read by a model of counts (ctcnet-core3 on a folder of them): display
    # levels, a display's black at 0; every such folder was warned of as subtracted.
    from ctcnet.nn.crop_input import display_levels

    composite = np.clip(subtracted / 12, 0, 255).astype(np.float32)
    with display_levels():
        assert crop_value_warning(composite, tops) is None
    # Outside, dim counts subtracted and clipped (every value under 256) are still said.
    assert "background subtracted" in crop_value_warning(composite.astype(np.uint16), tops)
    # A model that reads composite exports is handed display levels by its contract, whoever
    # hands them over (its ONNX file's embedder was told to draw a background again).
    from ctcnet.nn.crop_input import say_crop_values

    said: set[str] = set()
    say_crop_values(composite, tops, said, reads_exports=True)
    assert not said
    say_crop_values(composite, tops, said)
    assert said and "background subtracted" in next(iter(said))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_each_crop_with_a_pixel_not_finite_is_named_and_its_row_left_nan(tmp_path, caplog,
                                                                         device):
    save_tiny_model(tmp_path / "model.pt", crop_size=32)
    backend = TorchBackend(tmp_path / "model.pt", device=device, batch_size=4)
    crops = np.random.default_rng(2).uniform(90, 3000, (10, backend.spec.in_chans, 32, 32))
    crops = crops.astype(np.float32)
    crops[1, 0, 5, 5], crops[6, 2, 0, 0], crops[9, 1, 31, 31] = np.nan, np.inf, -np.inf
    with caplog.at_level(logging.WARNING):
        proba = backend.predict_proba(crops)
    assert np.isnan(proba).any(axis=1).nonzero()[0].tolist() == [1, 6, 9]
    assert np.isfinite(np.delete(proba, [1, 6, 9], axis=0)).all()
    assert "3 crop(s) with NaN or infinite pixels" in caplog.text
    assert "indices [1, 6, 9]" in caplog.text


def test_the_torch_backend_says_scaled_crops_once_and_names_nan_crops(tmp_path, caplog):
    save_tiny_model(tmp_path / "model.pt", crop_size=32)
    backend = TorchBackend(tmp_path / "model.pt", device="cpu")
    crops = np.random.default_rng(1).uniform(90, 3000, (3, backend.spec.in_chans, 32, 32))
    scaled = (crops / 4095).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        backend.predict_proba(scaled)
        backend.predict_proba(scaled)
    assert sum("within 0-1" in r.getMessage() for r in caplog.records) == 1
    crops = crops.astype(np.float32)
    crops[1, 0, 5, 5] = np.nan
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        proba = backend.predict_proba(crops)
    assert np.isnan(proba).any(axis=1).tolist() == [False, True, False]
    assert "NaN or infinite pixels" in caplog.text and "indices [1]" in caplog.text


def test_a_shipped_model_loads_by_name_and_refuses_crops_of_another_size():
    model, spec = load_model("ctcnet-default")
    size = spec.crop_size
    with torch.inference_mode():
        assert model.predict_proba(torch.zeros(2, spec.in_chans, size, size)).shape == \
            (2, spec.num_classes)
        with pytest.raises(InputError, match=rf"\(N, {spec.in_chans}, {size}, {size}\)"):
            model.predict_proba(torch.zeros(2, spec.in_chans, size + 20, size + 20))
        # numpy crops: said to be torch's (an AttributeError on '.float' before)
        with pytest.raises(InputError, match=r"takes a torch.Tensor .*load_backend"):
            model.predict_proba(np.zeros((2, spec.in_chans, size, size), np.float32))


def test_float64_crops_are_refused_with_the_conversion_that_keeps_them():
    from ctcnet.nn.crop_input import checked_crops

    with pytest.raises(InputError, match=r"got float64 \(crops.astype\(np.float32\)"):
        checked_crops(np.zeros((1, 3, 8, 8)), ["DAPI", "CK", "CD45"], 8)


def test_a_crops_shape_that_is_almost_right_is_said_with_what_brings_it():
    from ctcnet.nn.crop_input import checked_crops

    names = ["DAPI", "CK", "CD45"]
    cases = {(3, 32, 32): "one crop without its batch axis (crops[None])",
             (5, 32, 32, 3): "channels last, as an image viewer stores them "
                             "(np.moveaxis(crops, -1, -3))",
             (32, 32, 3): "np.moveaxis(crops[None], -1, -3)",
             (5, 3, 48, 48): "crops of 48 px, the model reads 32 px",
             (5, 4, 32, 32): "got shape (5, 4, 32, 32)"}
    for shape, said in cases.items():
        with pytest.raises(InputError, match=re.escape(said)):
            checked_crops(np.zeros(shape, np.uint16), names, 32)
    assert checked_crops(np.zeros((2, 3, 32, 32), np.uint16), names, 32).shape == (2, 3, 32, 32)


def test_crops_that_are_no_array_are_said_so():
    """A generator or None read as "got shape ()"; a list of crops stays welcome."""
    from ctcnet.nn.crop_input import checked_crops

    names, crop = ["DAPI", "CK", "CD45"], np.zeros((3, 8, 8), np.uint16)
    with pytest.raises(InputError, match=r"or a list of crops, got generator: np.stack"):
        checked_crops((c for c in [crop]), names, 8)
    with pytest.raises(InputError, match="or a list of crops, got NoneType$"):
        checked_crops(None, names, 8)
    assert checked_crops([crop, crop], names, 8).shape == (2, 3, 8, 8)


def test_a_list_of_crops_of_different_sizes_is_refused_by_what_it_is():
    """numpy's "setting an array element with a sequence" came through bare."""
    import ctcnet

    backend = ctcnet.load_backend("ctcnet-default")
    c, s = backend.spec.in_chans, backend.spec.crop_size
    crops = [np.zeros((c, s, s), np.float32), np.zeros((c, s - 10, s - 10), np.float32)]
    with pytest.raises(InputError, match=rf"crops of different shapes: each must be \({c}, "):
        backend.predict_proba(crops)
