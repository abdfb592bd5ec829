"""An installation checked against what was shipped: ``ctcnet verify``.

A lab that validates ctcnet (an installation qualification) or an engineer who installs it on a
new server needs to know that this machine's ctcnet makes the calls it was validated with,
before a night's cartridges are counted on it. Two checks:

* **The shipped files** (:func:`check_shipped_files`): every model file and the reference
  below has the SHA-256 ``models/SHA256SUMS`` lists for it.
* **The reference cartridge** (:func:`check_reference`): ``models/reference/cartridge``, three
  simulated five-channel frames, predicted with the default model on the backend and device
  predict would use here, at the balanced prior (the pipeline around the network alone) and at
  the model's cartridge rule (the calls a night counts), and compared event for event with
  ``models/reference/events.parquet`` and ``events_cartridge.parquet``, the events recorded
  for it (:func:`event_differences`: every column; floats within the rounding a float32 graph's
  summation order leaves, every call, flag and count exactly). ``tests/inference/
  test_golden_predict.py`` holds the code to the same reference.

:func:`verify_installation` makes both and the environment into one record (``passed``: every
check passed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.paths import desktop_file
from ctcnet.core.provenance import check_record
from ctcnet.errors import MACHINE_ERRNOS, MODEL_SUFFIXES
from ctcnet.io.digests import file_sha256
from ctcnet.nn.registry import PACKAGE_MODELS

REFERENCE = PACKAGE_MODELS / "reference"
REFERENCE_CARTRIDGE = REFERENCE / "cartridge"
REFERENCE_EVENTS = REFERENCE / "events.parquet"
# The same cartridge at the default model's cartridge rule, as shipped (scripts/
# make_predict_golden.py --cartridge-rule writes it).
REFERENCE_EVENTS_CARTRIDGE = REFERENCE / "events_cartridge.parquet"
CHECKSUMS = PACKAGE_MODELS / "SHA256SUMS"

# Centres are signal-weighted means, intensities means over an object, probabilities come from
# a float32 graph: summation order (batch size, threads, how a crop is resampled) may move them
# in the last float32 digits, nothing more. Measured on the 175-frame benchmark cartridge:
# probabilities moved by at most 3e-5, positions and intensities not at all, and all 49,016
# events kept their class, review and guard flags.
FLOAT_TOLERANCE = {"default": dict(rtol=1e-4, atol=1e-4),
                   "p_": dict(rtol=0, atol=1e-4), "confidence": dict(rtol=0, atol=1e-4)}


def _tolerance(column: str) -> dict:
    for prefix, tolerance in FLOAT_TOLERANCE.items():
        if column.startswith(prefix):
            return tolerance
    return FLOAT_TOLERANCE["default"]


def event_differences(got: pd.DataFrame, want: pd.DataFrame) -> list[str]:
    """How an events table differs from the recorded one, in words (empty: the same, floats
    within :data:`FLOAT_TOLERANCE`): columns missing or added, the row count, and per column
    the rows that differ (the first event ids), with the largest float difference."""
    if list(got.columns) != list(want.columns):
        missing = [c for c in want.columns if c not in got.columns]
        added = [c for c in got.columns if c not in want.columns]
        return [f"columns differ (missing {missing}, added {added})" if missing or added
                else "columns in another order"]
    if len(got) != len(want):
        return [f"{len(got)} events, {len(want)} recorded"]
    said = []
    for column in want.columns:
        a, b = got[column].to_numpy(), want[column].to_numpy()
        if np.issubdtype(b.dtype, np.floating) and np.issubdtype(a.dtype, np.number):
            a = a.astype(np.float64)
            close = np.isclose(a, b, equal_nan=True, **_tolerance(column))
            worst = np.nanmax(np.abs(a - b)) if (~close).any() else 0.0
            extra = f", largest difference {worst:.3g}"
        else:
            close, extra = a == b, ""
        if not close.all():
            rows = np.flatnonzero(~close)
            ids = want["event_id"].to_numpy()[rows[:5]].tolist() if "event_id" in want else \
                rows[:5].tolist()
            said.append(f"{column}: {len(rows)} of {len(want)} events differ (event ids {ids}"
                        f"{' ...' if len(rows) > 5 else ''}){extra}")
    return said


def check_shipped_files(checksums: Path = CHECKSUMS) -> dict:
    """Each file ``checksums`` lists (paths relative to its folder) against its SHA-256, and the
    model files, cards and reference files there it does not list: ``{"files": n, "differ":
    [...], "missing": [...], "unlisted": [...], "passed": bool}``."""
    folder = checksums.parent
    differ, missing, n = [], [], 0
    try:
        listed = checksums.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {"files": 0, "differ": [], "missing": [checksums.name], "passed": False}
    for line in listed:
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        n += 1
        path = folder / name.strip()
        if not path.is_file():
            missing.append(name)
        elif file_sha256(path) != digest:
            differ.append(name)
    named = {line.split(maxsplit=1)[1].strip() for line in listed if line.strip()}
    unlisted = sorted(_unlisted(folder, named))
    return {"files": n, "differ": differ, "missing": missing, "unlisted": unlisted,
            "passed": not differ and not missing and not unlisted}


def _unlisted(folder: Path, named: set[str]) -> list[str]:
    """The model files and cards of the shipped folder, and the reference's files, that its
    list does not name: a lab's model dropped in is offered as a shipped one, and an
    installation qualified so is not the one shipped. Hidden files (a Mac's ``._`` copies,
    ``.DS_Store``) and a desktop's own files are no one's model."""
    found = []
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if not path.is_file() or name in named or path.name.startswith(".") or \
                desktop_file(path.name):
            continue
        model = path.suffix.lower() in MODEL_SUFFIXES or (
            path.suffix.lower() in (".json", ".md") and
            any(path.with_suffix(s).exists() for s in MODEL_SUFFIXES))
        if model or path.relative_to(folder).parts[0] == "reference":
            found.append(name)
    return found


def predict_reference(backend, prior_rule, workers: int = 1,
                      cartridge: Path = REFERENCE_CARTRIDGE) -> pd.DataFrame:
    """The reference cartridge's events as predict makes them with ``backend`` at
    ``prior_rule`` (None: the model's own cartridge rule), its report off: what is recorded
    (``scripts/make_predict_golden.py``) and what :func:`check_reference` compares."""
    from ctcnet.inference.predict import PredictOptions, predict_cartridge

    spec = backend.spec
    if prior_rule is not None:
        backend.spec = spec.replace(decision=prior_rule)
    try:
        with tempfile.TemporaryDirectory(prefix="ctcnet-verify-") as tmp:
            predict_cartridge(cartridge, backend, Path(tmp) / "out",
                              PredictOptions(quiet=True, workers=workers, report=False))
            return pd.read_parquet(Path(tmp) / "out" / "events.parquet")
    finally:
        backend.spec = spec


def check_reference(device: str = "auto", workers: int = 1, backend: str | None = None
                    ) -> dict:
    """The reference cartridge predicted here, as predict would run the default model on
    ``device`` (with ``backend``, ``torch`` or ``onnx``: predict's choice where None), against
    its recorded events, twice: at the balanced prior (the pipeline
    around the network) and at the model's cartridge rule (the calls a night counts):
    ``{"backend", "device", "events", "differences", "passed"}``."""
    from ctcnet.errors import CtcnetError
    from ctcnet.inference.backends import load_backend
    from ctcnet.nn.calls import DecisionRule

    backend = load_backend(None, backend, device=device)
    differences, events = [], 0
    for rule, recorded, said in ((DecisionRule.balanced(), REFERENCE_EVENTS, ""),
                                 (None, REFERENCE_EVENTS_CARTRIDGE, "at the cartridge rule: ")):
        try:
            got = predict_reference(backend, rule, workers)
            differences += [said + d for d in event_differences(got, pd.read_parquet(recorded))]
            events = max(events, len(got))
        except OSError as err:
            # The machine's state (a full or read-only TMPDIR), said so (exit 4), never read
            # as calls that differ from the reference.
            if err.errno in MACHINE_ERRNOS:
                raise OSError(err.errno, f"{err.strerror} where the reference is predicted, "
                              f"the temporary folder {tempfile.gettempdir()} (TMPDIR: it "
                              "needs a few MB)", err.filename) from err
            differences.append(f"{said}the reference cannot be read or predicted ({err})")
        except (CtcnetError, ValueError) as err:  # the reference missing or broken
            differences.append(f"{said}the reference cannot be read or predicted ({err})")
    return {"backend": backend.name, "device": backend.device_name, "events": events,
            "differences": differences, "passed": not differences}


def verify_installation(device: str = "auto", backend: str | None = None) -> dict:
    """Both checks, with the software and machine they ran on, when and by whom: the record
    ``ctcnet verify`` writes, an installation qualification's evidence (``passed``: both
    passed, and ctcnet warned of nothing while they ran: a clean installation says nothing,
    and a shipped export that fails its own check, passed over for the checkpoint, is no
    pass). ``backend``: the one the reference runs with (predict's choice where None)."""
    from ctcnet.core.log_capture import kept_warnings

    with kept_warnings() as warnings:
        files = check_shipped_files()
        reference = check_reference(device, backend=backend)
    return {"passed": files["passed"] and reference["passed"] and not warnings,
            **check_record(), "shipped_files": files, "reference": reference,
            "warnings": list(warnings)}
