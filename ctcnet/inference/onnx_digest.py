"""The digest every ctcnet ONNX file carries (metadata ``ctcnet_digest``): SHA-256 over the
serialized graph and weights and over the other metadata, read by a minimal walk of the
protobuf wire format (no onnx package: the torch-free runtime checks it on loading), so that
a truncated, corrupted or edited file is refused instead of giving wrong answers.
"""

from __future__ import annotations

import hashlib
import json

DIGEST_KEY = "ctcnet_digest"

# ModelProto field 14 is ``metadata_props``; the digest covers every other top-level field.
_METADATA_FIELD = 14


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("varint runs past the end of the file")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _top_level_fields(data: bytes):
    """Yield (field_number, start, end) for each top-level protobuf field of a serialized model.

    A minimal wire-format walk (no onnx package needed): enough to find where a truncated file
    ends early and to hash everything except the metadata.
    """
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if pos > len(data) or field == 0:
            raise ValueError("a field runs past the end of the file")
        yield field, start, pos


def model_digest(model_bytes: bytes, metadata: dict[str, str]) -> str:
    """SHA-256 over the serialized graph + weights and the metadata (without the digest key)."""
    h = hashlib.sha256()
    for field, start, end in _top_level_fields(model_bytes):
        if field != _METADATA_FIELD:
            h.update(model_bytes[start:end])
    rest = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    h.update(json.dumps(rest, sort_keys=True).encode("utf-8"))
    return h.hexdigest()
