"""Fingerprints of crops as a model reads them: which crops of a folder a model learnt from.

A crop is fingerprinted at model scale (brought to the model's channels and pixel size, as
training and evaluation both bring it), so the same cell is recognised under another name, in
another folder (a copy of the training folder) or saved in another dtype holding the same
values; a crop cut again a pixel off, or resampled otherwise, is another crop. Each
fingerprint is 8 bytes of BLAKE2b: a model trained on 20,000 of a lab's crops records them in
about 210 kB of its spec (base64 text), and two different crops share one by chance about
once in 10^19 pairs.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np

DIGEST_BYTES = 8


def crop_fingerprints(crops: np.ndarray) -> np.ndarray:
    """One unsigned 64-bit fingerprint per crop of ``crops`` (N, C, H, W), of its float32
    values at model scale; a chunk at a time, so a memory-mapped set is never read whole."""
    out = np.empty(len(crops), np.uint64)
    for start in range(0, len(crops), 1024):
        chunk = np.ascontiguousarray(crops[start:start + 1024], np.float32)
        for k, crop in enumerate(chunk):
            digest = hashlib.blake2b(crop.data, digest_size=DIGEST_BYTES).digest()
            out[start + k] = np.frombuffer(digest, np.uint64)[0]
    return out


def packed(fingerprints: np.ndarray) -> str:
    """Fingerprints as text for a model's spec: the distinct ones, sorted, in base64."""
    unique = np.unique(np.asarray(fingerprints, np.uint64))
    return base64.b64encode(unique.astype("<u8").tobytes()).decode("ascii")


def unpacked(text: str) -> np.ndarray:
    """:func:`packed`'s text back as fingerprints (sorted); empty for text that holds none."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return np.zeros(0, np.uint64)
    return np.frombuffer(data[:len(data) // 8 * 8], "<u8").astype(np.uint64)


def seen_in(crops: np.ndarray, recorded: list[str]) -> np.ndarray:
    """Bool per crop: its fingerprint is among any of ``recorded`` (:func:`packed` texts);
    the crops are fingerprinted once, whatever the records."""
    known = np.concatenate([unpacked(text) for text in recorded]) if recorded else \
        np.zeros(0, np.uint64)
    if not len(known) or not len(crops):
        return np.zeros(len(crops), bool)
    return np.isin(crop_fingerprints(crops), known)


def merged(*texts: str | None) -> str:
    """Several :func:`packed` texts as one (a fine-tune of a fine-tuned model learnt from
    its own crops and from every earlier model's)."""
    return packed(np.concatenate([unpacked(t) for t in texts if t] or [np.zeros(0, np.uint64)]))
