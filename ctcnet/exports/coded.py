"""Exports under a code: a trial's sponsor receives each sample's events under the code the
site gave it, not its sample id (often a patient's name: "Smith_John_1965-03-02"), for a
sample already run and reviewed under that id.

``ctcnet export-events RESULTS --out DIR --codes codes.csv`` reads ``sample_id,code`` rows:
each exported sample needs one, codes are unique and file-name safe. The FCS file and GeoJSON
folder are named by the code, which stands for the sample id in the FCS keywords (``$SRC``,
``$FIL``, ``CTCNET_SAMPLE_ID``) and every GeoJSON feature, whose ids derive from it, not the
cartridge's digest (which would link the copy to a plain export), nor the times a sample's
counts and review were made to the second (they linked it as well: the counts' and the last
decision's are left out, the sign-off's kept as its day); the sign-off keeps its status, not
its reviewer's name; the model is named by its file's name and digest, not its path. What
the exports never held (the scan's path, cartridge.json's keys) stays out.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from pathlib import Path

from ctcnet.core.paths import composed, typed_id
from ctcnet.errors import InputError
from ctcnet.io.metadata_text import read_metadata_text

# A code is a file's name as it stands: letters, digits and . _ + = - (no path, no space).
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


class SampleCodes(dict):
    """``sample_id -> code``, a sample id found in either Unicode form of its accents: a codes
    file typed on a Mac ("Patie\u0308nt") names the sample a run wrote as "Pati\u00ebnt", and the
    refusal named an id that looked the same as the one given."""

    def __setitem__(self, sample, code):
        super().__setitem__(composed(sample), code)

    def __getitem__(self, sample):
        return super().__getitem__(composed(sample))

    def __contains__(self, sample):
        return isinstance(sample, str) and super().__contains__(composed(sample))

    def get(self, sample, default=None):
        """The code of ``sample`` (either form), or ``default``."""
        return super().get(composed(sample), default) if isinstance(sample, str) else default


def read_codes(path: str | Path) -> dict[str, str]:
    """``sample_id -> code`` from a CSV of ``sample_id,code`` rows (a header naming both);
    refused naming the line where a row lacks either, a code is no file name or is given
    twice, or a sample is listed twice."""
    path = Path(path)
    try:
        text = read_metadata_text(path)
    except OSError as err:
        raise InputError(f"--codes: cannot be read: {err.strerror or err}", path) from None
    rows = csv.DictReader(io.StringIO(text))
    if not {"sample_id", "code"} <= set(rows.fieldnames or ()):
        header = ",".join(rows.fieldnames or ())
        raise InputError(f"--codes needs the columns sample_id,code (it has "
                         f"{header or 'none'})" + (
                             ": separated by semicolons, as a spreadsheet in a European locale "
                             "saves CSV; save it with commas" if ";" in header else ""), path)
    codes = SampleCodes()
    for line, row in enumerate(rows, start=2):
        sample, code = (row.get("sample_id") or "").strip(), (row.get("code") or "").strip()
        if not sample or not code:
            raise InputError(f"--codes line {line}: a sample_id and a code are needed", path)
        if not _CODE.match(code):
            raise InputError(f"--codes line {line}: code {code!r} is not a file's name "
                             "(letters, digits and . _ + = -)", path)
        if sample in codes:
            raise InputError(f"--codes line {line}: {sample!r} is listed twice", path)
        if code in codes.values():
            raise InputError(f"--codes line {line}: code {code!r} is given twice", path)
        codes[sample] = code
    return codes


def check_codes(codes: dict[str, str], samples: list[str], out) -> None:
    """Refuse a coded export beside the samples (their folders are named by their ids) or
    one that would leave a sample under its id."""
    if out is None:
        raise InputError("--codes writes a coded copy into --out (beside each sample its "
                         "folder's name is its sample id): give --out")
    missing = [s for s in samples if s not in codes]
    if missing:
        raise InputError(f"--codes gives no code for {len(missing)} sample(s) to export: "
                         f"{', '.join(missing[:5])}; add a row for each", out)
    # A code that is a sample's own id (a codes file shifted by a row): the coded copy would
    # hold a real id, and one sample's events filed under another's name.
    # (every sample the codes file names, not only those exported: one sample exported alone
    # as another's id was a real id in the coded copy; case aside, as a share reads names)
    real = {typed_id(s).casefold() for s in [*samples, *codes]}
    named = sorted(f"{codes[s]} (the code of {s})" for s in samples
                   if typed_id(codes[s]).casefold() in real)
    if named:
        raise InputError(f"--codes gives sample ids as codes: {', '.join(named[:5])}; a coded "
                         "copy holds no sample's id: check the codes file's rows", out)


def coded(summary, signoff: dict | None, code: str):
    """``summary`` and ``signoff`` as a coded export writes them: the code for the sample id,
    no cartridge digest (the GeoJSON features' ids are then the code's), the model file's
    name for its path, the sign-off without its reviewer's name, no time to the second."""
    model = summary.model
    # (the cartridge's digest and the times to the second too: the same in a plain export,
    # they would link the two)
    summary = replace(summary, sample_id=code, cartridge_id=None, counted_at=None,
                      model=replace(model, path=Path(model.path).name if model.path else None),
                      reviewed=summary.reviewed and replace(summary.reviewed, updated=None))
    if isinstance(signoff, dict):
        signoff = {**signoff, "reviewer": "(coded)",
                   "signed_at": str(signoff.get("signed_at") or "")[:10]}
    return summary, signoff
