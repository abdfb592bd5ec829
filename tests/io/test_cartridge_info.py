"""ctcnet.io.cartridge_info: cartridge.json read in any encoding an editor saves, and a sample id
that can name a folder, from cartridge.json or from the cartridge's own name."""

import json
import os
import shutil

import pytest
from conftest import predict

from ctcnet.errors import InputError
from ctcnet.io.cartridge_info import read_cartridge_info, safe_sample_id
from ctcnet.io.scan import open_cartridge


def _without_sample_id(folder):
    info = json.loads((folder / "cartridge.json").read_text())
    info.pop("sample_id")
    (folder / "cartridge.json").write_text(json.dumps(info))


def test_a_folder_name_that_is_not_utf8_gives_a_readable_sample_id(clean_run, cart, caplog):
    """A cartridge folder named b'cart\\xe9' (a Latin-1 system's "carté") and no sample_id:
    the id is read as Windows-1252, said once; predict writes its outputs under it (the
    journal and the summary once raised UnicodeEncodeError: surrogates not allowed)."""
    _without_sample_id(cart)
    odd = os.fsdecode(os.fsencode(cart.parent) + b"/cart\xe9")
    shutil.move(cart, odd)
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        opened = open_cartridge(odd)
        open_cartridge(odd)
    assert opened.sample_id == "carté"
    said = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert len(said) == 1 and "'carté'" in said[0] and "sample_id" in said[0]
    summary = predict(clean_run, odd, out=cart.parent / "out")
    assert summary.status == "ok" and summary.sample_id == "carté"
    assert summary.input == str(odd)
    written = json.loads((cart.parent / "out" / "summary.json").read_text())
    assert written["input"] == odd  # the path itself, as a reader of the JSON gets it back


def test_a_sample_id_of_lone_surrogates_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match="lone surrogates"):
        safe_sample_id(json.loads('"cart\\udce9"'), tmp_path)


def test_a_latin1_cartridge_json_is_read_with_a_warning(tmp_path, caplog):
    (tmp_path / "cartridge.json").write_bytes(
        json.dumps({"sample_id": "Genève-3", "blood_volume_ml": 7.5}, ensure_ascii=False)
        .encode("latin-1"))
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        assert read_cartridge_info(tmp_path)["sample_id"] == "Genève-3"
    assert "not UTF-8" in caplog.text and "cartridge.json" in caplog.text
