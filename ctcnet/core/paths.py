"""The one way a run names a file or folder in what it records: absolute and normalised.

``Path.absolute()`` keeps a ``..`` as given (``/runs/nightly/../scans/S1``), so one folder
named from two working directories reads as two, and a resumed run warned that its scan had
moved. Symbolic links are kept (not resolved): a link is how the lab named the folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def absolute(path: str | os.PathLike) -> str:
    """``path`` absolute, with ``.`` and ``..`` taken out, as text."""
    return os.path.normpath(Path(path).absolute())
