"""ctcnet.nn.classifier: model files with NaN weights, a zero temperature or broken contents
are refused when loaded, in one line."""


import pytest
import torch
from conftest import assert_one_line_error, predict_args, run_cli

from ctcnet.errors import InputError
from ctcnet.nn.classifier import load_model


def _nan_weight_model(cart_and_model, path):
    """``cart_and_model``'s model with one convolution weight NaN, saved to ``path``."""
    blob = torch.load(cart_and_model / "model.pt", weights_only=True)
    key = next(k for k, v in blob["state_dict"].items() if k.startswith("net.") and v.ndim == 4)
    blob["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(blob, path)
    return path, key


def test_a_model_file_with_nan_weights_is_refused_when_loaded(cart_and_model, cart, crops, capsys):
    nan, key = _nan_weight_model(cart_and_model, cart.parent / "nan.pt")
    with pytest.raises(InputError, match=f"NaN or infinite values \\({key}\\)"):
        load_model(nan)
    argv = predict_args(cart_and_model, cart)
    argv[argv.index("--model") + 1] = nan
    status, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, f"{nan}: weights hold NaN or infinite values")
    assert not (cart.parent / "out" / "S1" / "events.csv").exists()
    status, err = run_cli(capsys, "evaluate", crops, "--model", nan, "--out",
                          cart.parent / "ev", "--no-baselines", "--device", "cpu")
    assert_one_line_error(status, err, f"{nan}: weights hold NaN or infinite values")


def test_a_model_file_with_a_bit_flipped_in_a_weight_is_refused(cart_and_model, tmp_path):
    """torch reads an archive's parts without their CRC-32: a copy with one bit flipped in a
    weight loaded as another model and called (a bias of 0.10 read as 1.64), nothing said."""
    import struct
    import zipfile

    source = cart_and_model / "model.pt"
    with zipfile.ZipFile(source) as archive:
        part = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size)
    data = bytearray(source.read_bytes())
    name, extra = struct.unpack("<HH", data[part.header_offset + 26:part.header_offset + 30])
    data[part.header_offset + 30 + name + extra] ^= 0x02  # the part's first byte (stored)
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    torch.load(flipped, weights_only=True)  # torch itself reads it
    inside = part.filename.split("/", 1)[1]
    with pytest.raises(InputError, match=f"damaged: its part {inside} does not match"):
        load_model(flipped)
    load_model(source)  # the file as saved loads
    # One saved with torch's CRCs turned off (a documented option) records none: it loads.
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(torch.load(source, weights_only=True), tmp_path / "no_crc.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    load_model(tmp_path / "no_crc.pt")


def test_temperature_zero_model_is_refused(cart_and_model, tmp_path, capsys):
    blob = torch.load(cart_and_model / "model.pt", weights_only=True)
    blob["ctcnet_spec"]["temperature"] = 0.0
    torch.save(blob, tmp_path / "t0.pt")
    with pytest.raises(InputError, match="temperature 0.0 must be a positive"):
        load_model(tmp_path / "t0.pt")


def test_an_onnx_export_given_as_a_checkpoint_names_the_checkpoint_to_give(tmp_path):
    """finetune --base model.onnx said export's words ("it is not exported again")."""
    export = tmp_path / "lab.onnx"
    export.write_bytes(b"\x08\x09\x12\x07pytorch")  # (an ONNX protobuf's first bytes)
    with pytest.raises(InputError, match="give the .pt checkpoint it was exported from"):
        load_model(export)


# 9. Crop datasets.

def _edited_model(cart_and_model, tmp_path, edit):
    blob = torch.load(cart_and_model / "model.pt", weights_only=True)
    edit(blob)
    torch.save(blob, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize("edit, match", [
    (lambda b: b["ctcnet_spec"].update(arch="vgg99"), "unknown arch"),
    (lambda b: b["ctcnet_spec"].update(crop_size=0), "crop_size 0"),
    (lambda b: b["state_dict"].update({k: torch.zeros(3, 3) for k in b["state_dict"]
                                       if k.endswith("features.0.0.weight")}), "do not fit"),
])
def test_broken_model_files_give_one_line(cart_and_model, tmp_path, edit, match):
    with pytest.raises(InputError, match=match):
        load_model(_edited_model(cart_and_model, tmp_path, edit))
