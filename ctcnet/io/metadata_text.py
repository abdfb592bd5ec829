"""Reading the small metadata files a user writes by hand (panel.json, cartridge.json, list
files, taxonomies): UTF-8 or, from older editors, UTF-16 or Windows-1252 / Latin-1; JSON or
YAML; each refused by name when it is no such file (a FIFO, a device, megabytes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ctcnet.errors import InputError, check_regular_file
from ctcnet.io.hand_edits import json_error_text

log = logging.getLogger(__name__)

# What a metadata file that is not UTF-8 is read as: Windows' Western code page (Latin-1 with
# printable characters where Latin-1 has control codes), then Latin-1 itself, which decodes any
# bytes (cp1252 leaves five of them undefined).
LEGACY_ENCODINGS = ("cp1252", "latin-1")
_LEGACY_SAID: set[tuple[str, int]] = set()  # (file, its size): said once, however often read


MAX_METADATA_BYTES = 16 * 2**20


def read_metadata_text(path: str | Path) -> str:
    """The text of a small metadata file (panel.json, cartridge.json, a list file): UTF-8 (a
    byte-order mark dropped), UTF-16 where its byte-order mark says so, else, with a warning
    naming the file, Windows-1252 / Latin-1. An older editor saves an accented channel or
    panel name ("Müller") in Latin-1; every other byte of such a file is ASCII, so reading it
    as Latin-1 gives what its author typed."""
    # A FIFO would block the run, a device (a link to /dev/zero) fill its memory, and no
    # panel or cartridge record comes near this size: each is refused before it is read.
    path = check_regular_file(path, "a metadata file")
    try:
        size = path.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise InputError(f"{size / 2**20:.0f} MB is no panel or cartridge record (they are "
                             f"a few kB; at most {MAX_METADATA_BYTES // 2**20} MB is read)",
                             path)
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", path) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Notepad's "Unicode": UTF-16, marked
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        at = err.start
    for encoding in LEGACY_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if (str(path), len(data)) not in _LEGACY_SAID:  # a run opens a cartridge several times
            _LEGACY_SAID.add((str(path), len(data)))
            log.warning("%s: not UTF-8 (byte 0x%02x at offset %d); read as %s: save it as "
                        "UTF-8", path, data[at], at,
                        "Windows-1252 (Latin-1)" if encoding == "cp1252" else "Latin-1")
        return text
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def read_mapping(path: str | Path) -> Any:
    """Read JSON or YAML into Python data (panels, taxonomies, configs), with a clear error on
    failure."""
    path = Path(path)
    text = read_metadata_text(path)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as err:  # json/yaml both raise their own error types
        raise InputError(f"not valid {path.suffix.lstrip('.').upper() or 'JSON'}: "
                         f"{json_error_text(err, text)}", path) from None
