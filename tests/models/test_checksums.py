"""models/SHA256SUMS: the published checksum of every shipped model file, its card and the
reference ``ctcnet verify`` predicts, kept true.

An embedder compares a file's SHA-256 with this list to know it is the file shipped (the
ONNX files' own digest is a checksum against accidents, which anyone who edits a file can
recompute). A model retrained or re-exported without its line updated fails here."""

import hashlib
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_shipped_model_file_is_listed_with_its_sha256():
    listed = {}
    for line in (MODELS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    # The cards too: a card's panel, reads and decision rule choose the model predict runs,
    # and an edited card passed verify while it changed which model counted a night.
    files = sorted([p.name for p in MODELS.iterdir()
                    if p.suffix in (".pt", ".onnx", ".json", ".md")]
                   + [p.relative_to(MODELS).as_posix()
                      for p in (MODELS / "reference").rglob("*") if p.is_file()])
    assert sorted(listed) == files, ("update models/SHA256SUMS: `sha256sum *.onnx *.pt "
                                     "*.json *.md reference/events.parquet "
                                     "reference/cartridge/*`")
    for name, digest in listed.items():
        assert hashlib.sha256((MODELS / name).read_bytes()).hexdigest() == digest, (
            f"{name} changed: update its line in models/SHA256SUMS (sha256sum {name}, in the "
            "models folder; a card a script refreshed is listed too)")


def test_the_shipped_onnx_files_say_what_predict_does_beside_the_graph_today():
    """Each shipped ONNX file's ``cropping`` metadata is what this code's predict does (the
    port record is built from its constants): a change to it restamps the files
    (``ctcnet.deploy.export.restamp_onnx``) and lists their new SHA-256 here, so an embedder
    never reads an older rule than the one ctcnet applies."""
    import json

    from ctcnet.deploy.port_record import cropping_record
    from ctcnet.inference.onnx_runtime import OnnxClassifier

    for path in sorted(MODELS.glob("*.onnx")):
        assert json.loads(OnnxClassifier(path).metadata["cropping"]) == cropping_record(), \
            f"{path.name}: restamp it (restamp_onnx(onnx, checkpoint, " \
            "file_sha256(checkpoint))) and update SHA256SUMS"


def test_the_shipped_onnx_files_state_their_input_as_predict_reads_it():
    """A model that reads composite exports says so in its ``input_contract`` (display levels,
    planes by name, not raw counts) and carries ``composite_input``, what predict does to a
    composite before the graph, built from the same constants; a scan model states raw counts
    and carries none."""
    import json

    from ctcnet.deploy.port_record import composite_record
    from ctcnet.inference.onnx_runtime import INPUT_CONTRACT, OnnxClassifier, input_contract

    kinds = {}
    for path in sorted(MODELS.glob("*.onnx")):
        model = OnnxClassifier(path)
        reads_exports = model.model_spec.reads_exports
        kinds[path.stem] = reads_exports
        assert model.metadata["input_contract"] == input_contract(reads_exports), path.name
        if reads_exports:
            assert json.loads(model.metadata["composite_input"]) == composite_record(), \
                f"{path.name}: restamp it (restamp_onnx(onnx, checkpoint, " \
                "file_sha256(checkpoint))), update SHA256SUMS"
        else:
            assert "composite_input" not in model.metadata, path.name
            assert model.metadata["input_contract"] == INPUT_CONTRACT
    assert kinds == {"ctcnet-core3": False, "ctcnet-core3-export": True, "ctcnet-default": False}
