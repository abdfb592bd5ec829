"""The training configs ctcnet ships (``configs/*.yaml``, package data of the wheel), found by
the name the docs give them wherever ``ctcnet train`` runs.

The docs write ``--config configs/crops.yaml``: true in a checkout, but a lab that installed
ctcnet (``pip install '.[all]'``) and trains in a folder of its own has no ``configs/`` there,
and LightningCLI answered "File does not exist: '/lab/configs/crops.yaml'". A ``--config``
that names no file here but names a shipped config (``configs/crops.yaml``, ``crops.yaml`` or
``crops``) reads the shipped one; a lab's own file of that path, where it exists, always wins.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ctcnet.errors import InputError

log = logging.getLogger(__name__)

# configs/ is a link to the repository's configs/ folder; the wheel ships the files themselves.
SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def shipped_config_names() -> list[str]:
    """The shipped configs' names (``crops``, ``default``, ...), sorted."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def shipped_config(name: str) -> Path | None:
    """The shipped config a ``--config`` value names (``configs/crops.yaml``, ``crops.yaml``,
    ``crops``), or None: only the last part of the path is read, and only where the rest is
    ``configs`` or nothing (``my/crops.yaml`` is a lab's own path, not ours)."""
    path = Path(name)
    if path.parent not in (Path("."), Path("configs")):
        return None
    stem = path.name[:-len(".yaml")] if path.name.endswith(".yaml") else path.name
    shipped = SHIPPED_CONFIGS / f"{stem}.yaml"
    return shipped if stem and shipped.is_file() else None


def with_shipped_configs(args: list[str]) -> list[str]:
    """``args`` (LightningCLI's) with each ``--config`` that names no file here but a shipped
    config pointing at the shipped file (said in a note); a ``configs/...`` path that names
    neither is refused with the shipped names, rather than LightningCLI's bare "File does not
    exist". Every other argument as given."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in ("--config", "-c") and i + 1 < len(out):  # (-c: LightningCLI's short form)
            at, value, prefix = i + 1, out[i + 1], ""
        elif arg.startswith("--config="):
            at, value, prefix = i, arg[len("--config="):], "--config="
        else:
            continue
        # (a file, not a folder: a lab's crop folder named crops/ is no config)
        if not value or value.lstrip().startswith(("{", "-")) or Path(value).is_file():
            continue  # a file here, an inline YAML, or the next option: LightningCLI's
        shipped = shipped_config(value)
        if shipped is not None:
            log.info("--config %s: no such file here; reading the config ctcnet ships, %s",
                     value, shipped)
            out[at] = prefix + str(shipped)
        elif Path(value).parent == Path("configs"):
            raise InputError(f"--config {value}: no such file here, and ctcnet ships no "
                             f"config of that name; shipped: {', '.join(shipped_config_names())} "
                             "(give one as configs/NAME.yaml, or a path to your own)")
    return out
