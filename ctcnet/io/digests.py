"""The SHA-256 of a file, read in blocks: the one identity a model file has everywhere (run
summaries, the resume journal, exports' source record, fine-tuned cards, models/SHA256SUMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes, as hex (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
