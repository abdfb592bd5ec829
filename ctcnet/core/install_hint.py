"""The pip command that adds an optional part (an extra) to the install that is running.

A hint reading ``pip install 'ctcnet[all]'`` is right for an install from a package index,
but a lab that installed a checkout (``pip install -e .``, as ``./run`` does) would fetch
whatever an index holds under that name, or nothing, instead of its own checkout's extra.
pip records where it installed from (PEP 610's ``direct_url.json``); where that is a folder
that is still there, the hint names that folder.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

DISTRIBUTION = "ctcnet"


@functools.lru_cache(maxsize=1)
def _installed_from() -> tuple[str, bool] | None:
    """The folder this install came from and whether it runs from that folder (editable);
    None for an install from an index or a wheel file, or when nothing says."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():  # the package runs from its checkout
        return str(checkout), True
    from importlib.metadata import distributions

    for dist in distributions(name=DISTRIBUTION):
        record = dist.read_text("direct_url.json")
        if record:
            return _from_direct_url(record)
    return None


def _from_direct_url(record: str) -> tuple[str, bool] | None:
    """The local folder a PEP 610 record names, where it still holds a project."""
    try:
        direct = json.loads(record)
    except json.JSONDecodeError:
        log.debug("unreadable direct_url.json: %r", record[:200])
        return None
    url = urlparse(str(direct.get("url", "")))
    if url.scheme != "file" or "dir_info" not in direct:  # a wheel, an archive, a VCS URL
        return None
    folder = Path(unquote(url.path))
    if not (folder / "pyproject.toml").is_file():  # the checkout moved or was deleted
        return None
    return str(folder), bool((direct.get("dir_info") or {}).get("editable"))


def install_command(extra: str) -> str:
    """``pip install`` of ``extra`` for this install: from its checkout where it came from
    one, else by the distribution's name."""
    source = _installed_from()
    if source is None:
        return f"pip install '{DISTRIBUTION}[{extra}]'"
    folder, editable = source
    return f"pip install {'-e ' if editable else ''}'{folder}[{extra}]'"
