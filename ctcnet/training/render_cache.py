"""A disk cache of simulated training renders, so that a second training try starts in seconds.

Rendering tens of thousands of cells is most of a short training try on a CPU (and all of its
first minutes on a GPU). A render is fixed by what was asked (panel, taxonomy, crop size,
counts, seed, samples, the simulator's knobs) and by the simulator's own code, so both go into
the key: a change to any file of :mod:`ctcnet.simulate`, or of a ctcnet module it imports,
makes every cached render stale, and it is rendered again rather than trusted.

Each entry is a folder named by its key, holding ``images.npy`` (read back memory-mapped: a
large split is paged in as the loader reads it, not copied) and ``meta.json`` (targets and
sample ids). Entries are mapped copy-on-write: a step that changes crops in place (spillover
compensation) changes the run's copy, never the cache. An entry is written to a temporary
folder and renamed into place, so a killed run never leaves a half-written entry that a later
one would read; a later run removes such a folder once it has been left for hours.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Bumped when the layout of an entry changes (2: meta.json holds the images' digest).
CACHE_FORMAT = 2
# A write's temporary folder (``.<key>.<random>``, beside the entries), and how long one must
# have been left untouched to be taken for a killed run's and removed.
TEMPORARY = re.compile(r"\.[^.]+\.[^.]+")
STALE_WRITE_S = 2 * 3600
# The images' digest reads this many blocks of this size spread over the file: a cached split
# is gigabytes, read lazily, and a whole-file hash would read it all on every run.
DIGEST_BLOCKS, DIGEST_BLOCK_BYTES = 64, 1 << 16


@lru_cache(maxsize=1)
def simulator_fingerprint() -> str:
    """sha256 over the source of every module of :mod:`ctcnet.simulate` and of every ctcnet
    module they import (:func:`simulator_sources`): any change to how cells are drawn changes
    it."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in simulator_sources():
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def simulator_sources() -> list[Path]:
    """The files of :mod:`ctcnet.simulate` and of every ctcnet module they import, directly or
    through another, with the packages holding them (their ``__init__`` runs on import), read
    from the imports in their source. A list kept by hand missed the modules the panel reader
    imports (the marker names whose roles the simulator draws): a change there served the
    renders of the code before it."""
    package = Path(__file__).resolve().parents[1]
    todo = sorted((package / "simulate").rglob("*.py"))
    found = set(todo)
    while todo:
        for name in _ctcnet_imports(todo.pop(), package):
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                path = _module_file(package.parent, parts[:end])
                if path is not None and path not in found:
                    found.add(path)
                    todo.append(path)
    return sorted(found)


def _ctcnet_imports(path: Path, package: Path) -> set[str]:
    """The dotted ctcnet names a module's source imports, anywhere in it (a function's own
    import too); for ``from A import b``, both ``A`` and ``A.b`` (``b`` may be a module)."""
    here = path.relative_to(package.parent).parts[:-1]  # the package it is in
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*here[:len(here) - node.level + 1], node.module or ""]
                            if node.level else [node.module or ""]).strip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == package.name}


def _module_file(root: Path, parts: list[str]) -> Path | None:
    """The source file of the module ``parts`` names under ``root`` (a package's
    ``__init__.py``), None for a name that is no module (a function imported by name)."""
    for path in (root.joinpath(*parts, "__init__.py"), root.joinpath(*parts).with_suffix(".py")):
        if path.is_file():
            return path
    return None


def render_key(**parts) -> str:
    """A stable key for one render: its arguments as canonical JSON, the simulator's code."""
    record = {"format": CACHE_FORMAT, "simulator": simulator_fingerprint(), **parts}
    text = json.dumps(record, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _plain(value):
    """JSON for the values a simulator config holds beyond JSON's own (tuples are lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)


def cached_render(cache_dir: str | Path | None, key: str,
                  render: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``render()``'s (images, targets, sample_ids), from ``cache_dir`` when it holds ``key``;
    rendered and stored there otherwise. ``cache_dir`` None: always rendered, nothing stored.
    An entry that cannot be read (a disk error, a file cut short) is rendered again."""
    if cache_dir is None:
        return render()
    entry = Path(cache_dir) / key
    if entry.parent.is_dir():
        _remove_stale_writes(entry.parent)
    if entry.is_dir():
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
            images = np.load(entry / "images.npy", mmap_mode="c")
            targets = np.asarray(meta["targets"], dtype=np.int64)
            if len(images) != len(targets) or len(meta["sample_ids"]) != len(targets):
                raise ValueError("entry lengths disagree")
            if meta.get("images_digest") != sampled_digest(entry / "images.npy"):
                raise ValueError("images changed since they were stored")
            log.info("render cache: %d crops from %s", len(targets), entry)
            return images, targets, list(meta["sample_ids"])
        except (OSError, ValueError, KeyError, EOFError) as err:  # EOF: a file cut to 0
            log.warning("render cache entry %s unreadable (%s): rendering again", entry, err)
            shutil.rmtree(entry, ignore_errors=True)
    images, targets, sample_ids = render()
    _store(entry, images, targets, sample_ids)
    return images, targets, sample_ids


def _remove_stale_writes(folder: Path) -> None:
    """Remove the temporary folders (:func:`_store`'s) of writes a killed run left unfinished,
    each the size of a split's renders: those untouched for :data:`STALE_WRITE_S`. A writer
    writes into its folder from the moment it makes it until it renames it, so a folder that
    has not changed for hours is no live writer's."""
    now = time.time()
    for path in folder.iterdir():
        if not TEMPORARY.fullmatch(path.name) or not path.is_dir():
            continue
        try:
            touched = max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())])
        except OSError:  # gone meanwhile: renamed by its writer, or removed by another run
            continue
        if now - touched > STALE_WRITE_S:
            log.info("render cache: removing %s, a write left unfinished %.0f h ago", path,
                     (now - touched) / 3600)
            shutil.rmtree(path, ignore_errors=True)


def _store(entry: Path, images: np.ndarray, targets: np.ndarray, sample_ids: list[str]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        np.save(tmp / "images.npy", np.ascontiguousarray(images))
        (tmp / "meta.json").write_text(json.dumps(
            {"targets": np.asarray(targets).tolist(), "sample_ids": list(sample_ids),
             "images_digest": sampled_digest(tmp / "images.npy")}), encoding="utf-8")
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another run stored the same render first: theirs is as good as ours.
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sampled_digest(path: Path) -> str:
    """sha256 over the file's size and :data:`DIGEST_BLOCKS` blocks spread evenly over it
    (the whole file when it is smaller): an entry cut short, or edited in place across its
    crops (a channel zeroed), reads as changed, at the cost of a few megabytes read."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= DIGEST_BLOCKS * DIGEST_BLOCK_BYTES:
            digest.update(fh.read())
        else:
            for k in range(DIGEST_BLOCKS):
                fh.seek(k * (size - DIGEST_BLOCK_BYTES) // (DIGEST_BLOCKS - 1))
                digest.update(fh.read(DIGEST_BLOCK_BYTES))
    return digest.hexdigest()
