"""The shipped models by name, in the spirit of timm's ``list_models`` / ``create_model``.

A shipped model is ``NAME.json`` (its card: panel, classes, crop and pixel size, held-out
figures) beside ``NAME.pt`` and/or ``NAME.onnx`` in a models folder. Folders searched:

1. ``ctcnet/models`` inside the installed package (package data of the wheel; in a source
   checkout a link to the repository's ``models/``): its names are its own;
2. ``$CTCNET_MODELS`` (one or more folders, ``os.pathsep``-separated): a site's own models
   join them, the first folder's where two hold one name. A card there named like a model
   found before is skipped, said once: a lab's fine-tune saved as ``ctcnet-default`` took the
   shipped model's place by name and in predict's choice, unasked.

Everything here reads JSON only: listing and choosing models needs neither torch nor
onnxruntime. ``resolve_model`` turns ``--model`` (a registry name or a file path) into a file;
``choose_model`` picks the shipped model whose channels the data has, by name, and that reads
the data's kind: a model trained on 8-bit composite exports only (its card's ``"reads":
"exports"``) is chosen for RGB composite data first and never for scans.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ctcnet.core.printable import stated_percent
from ctcnet.core.said_once import first_time
from ctcnet.errors import MODEL_SUFFIXES, InputError, PanelMismatchError
from ctcnet.io.panel import Panel
from ctcnet.nn.decision_rule import DecisionRule

log = logging.getLogger(__name__)

MODELS_ENV = "CTCNET_MODELS"
DEFAULT_MODEL_NAME = "ctcnet-default"
PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "models"
WEIGHT_SUFFIXES = (".pt", ".onnx")


@dataclass(frozen=True)
class ModelInfo:
    """One shipped model: its files and what its card says."""

    name: str
    folder: Path
    panel: Panel
    classes: list[str]
    crop_size: int
    card: dict = field(repr=False, default_factory=dict)

    @property
    def checkpoint(self) -> Path | None:
        """The model's ``.pt`` file, or None when it is not shipped."""
        path = self.folder / f"{self.name}.pt"
        return path if path.is_file() else None

    @property
    def onnx(self) -> Path | None:
        """The model's ONNX export, or None when it is not shipped."""
        path = self.folder / f"{self.name}.onnx"
        return path if path.is_file() else None

    @property
    def shipped(self) -> bool:
        """The model ships with ctcnet (the package's models folder), not a folder of
        ``$CTCNET_MODELS``."""
        return self.folder.resolve() == PACKAGE_MODELS.resolve()

    @property
    def origin(self) -> str:
        """Where the model comes from, as a run says it: ``shipped`` or the folder it is in."""
        return "shipped" if self.shipped else f"from {self.folder}"

    @property
    def channels(self) -> list[str]:
        """The channel names the model reads, in order."""
        return self.panel.names

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the weight files (checkpoint and ONNX export)."""
        return sum(p.stat().st_size for p in (self.checkpoint, self.onnx) if p is not None)

    def unlike_its_card(self) -> str | None:
        """Where the file a card names is not the one it describes (the SHA-256 a lab card
        records, else its size: cut short or replaced), what differs, in words; else None. A
        shipped model's are checked by ``ctcnet verify``."""
        from ctcnet.io.digests import file_sha256

        named = [f for f in (self.checkpoint, self.onnx)
                 if f is not None and self.card.get("file") == f.name]
        if not named:
            return None
        pt = named[0]  # (the file the card describes: its .pt, or an ONNX-only model's .onnx)
        recorded, size = self.card.get("sha256"), self.card.get("size_bytes")
        if isinstance(recorded, str) and file_sha256(pt) != recorded:
            return (f"{pt.name}'s SHA-256 is not the one its card records ({recorded[:12]}...): "
                    "replaced? The card's figures are not this file's")
        if isinstance(size, int) and pt.stat().st_size != size:
            return (f"{pt.name} is {pt.stat().st_size:,} bytes, its card records {size:,}: cut "
                    "short or replaced?")
        return None

    @property
    def reads_exports(self) -> bool:
        """Trained on 8-bit composite exports only (``ModelSpec.reads_exports``)."""
        return self.card.get("reads") == "exports"

    @property
    def has_cartridge_rule(self) -> bool:
        """A decision rule fitted at cartridge prevalence (``scripts/fit_decision.py``) is in
        the card: without one, calls on a cartridge's tens of thousands of events are made at
        the balanced training prior, and rare classes are over-called. (The card's rule is
        the spec's, with per-crop figures beside it.)"""
        try:
            rule = DecisionRule.from_dict(self.card.get("decision"), self.classes)
        except InputError:  # a rule no model could apply: none
            return False
        return bool(rule.log_weights)

    @property
    def symmetry(self) -> str:
        """The test-time symmetry (``ctcnet.nn.symmetry``); cards made before it: none."""
        return str(self.card.get("symmetry", "none"))

    def figures(self) -> dict[str, float]:
        """Held-out macro-F1 per test set of the card (keys starting with ``test``), and the
        worst macro-F1 over its robustness shifts."""
        out = {name: float(value["macro_f1"]) for name, value in self._tests().items()}
        shifts = [v["macro_f1"] for v in (self.card.get("robustness") or {}).values()
                  if isinstance(v, dict) and "macro_f1" in v]
        if shifts:
            out["robustness_min"] = float(min(shifts))
        return out

    def cartridge_figures(self) -> list[str]:
        """What the card says of whole simulated cartridges, the scan path labs run (empty
        for a model without a cartridge rule): the rule's automatic CTC count where it was
        fitted, and the review band's stated miss rate with what it showed."""
        decision = self.card.get("decision") if self.has_cartridge_rule else None
        fitted = (decision or {}).get("fitted") or {}
        ctc = (fitted.get("at_fit") or {}).get("ctc") or {}
        lines = []
        if "recall" in ctc and "false_per_1000_events" in ctc:
            lines.append(f"CTCs counted {ctc['recall']:.3f} at {ctc['false_per_1000_events']:.3f} "
                         f"false CTC calls per 1,000 events ({fitted.get('cartridges', '?')} "
                         f"cartridges of {fitted.get('frames', '?')} frames, the cartridge "
                         "rule's fit)")
        band = (decision or {}).get("review_band") or {}
        fresh = band.get("fresh_family") or {}
        if "level" in band and "misses" in fresh:
            lines.append(f"CTCs and clusters neither counted nor shown at most "
                         f"{stated_percent(band['level'])} "
                         f"({stated_percent(band['confidence'])} confidence; fresh family "
                         f"{fresh['misses']} of {fresh['cells']:,}, "
                         f"{fresh['shown']:.1%} of its CTC-rich events shown)")
        if lines and ("fitted_for" in band or "finetune" in self.card):
            # A fine-tune or a recalibration keeps its base's rule and band: the figures are
            # the base network's, which this one's calls need not share.
            lines = [f"{line} [the base model's, not measured on this model]" for line in lines]
        return lines

    def test_sizes(self) -> dict[str, int]:
        """The crops each held-out figure of :meth:`figures` was measured on (where the card
        says): a fine-tune's 1.000 on 4 crops is no 0.976 on 1,200."""
        return {name: int(value["n"]) for name, value in self._tests().items()
                if isinstance(value.get("n"), int)}

    def test_absent_classes(self) -> dict[str, list[str]]:
        """The classes each held-out figure's crops lacked (where the card says)."""
        return {name: list(value["absent_classes"]) for name, value in self._tests().items()
                if value.get("absent_classes")}

    def _tests(self) -> dict[str, dict]:
        # A test made on exports (an export model's card) is named for what it read.
        return {("test_tight_exports" if value.get("export") else key): value
                for key, value in self.card.items()
                if key.startswith("test") and isinstance(value, dict) and "macro_f1" in value}

    def file(self, backend: str | None = None) -> Path:
        """The weight file for a backend: ``onnx`` -> the export, else the checkpoint (or the
        export when only that is shipped)."""
        path = self.onnx if backend == "onnx" else (self.checkpoint or
                                                    (self.onnx if backend is None else None))
        if path is None:
            kind = "ONNX export" if backend == "onnx" else "checkpoint"
            raise InputError(f"{'shipped ' if self.shipped else ''}model {self.name} has no "
                             f"{kind} in {self.folder}")
        return path

    def to_dict(self) -> dict:
        """The model as ``ctcnet models --json`` prints it."""
        return {"name": self.name, "channels": self.channels, "classes": self.classes,
                "pixel_size_um": self.panel.pixel_size_um, "crop_size": self.crop_size,
                "size_bytes": self.size_bytes, "symmetry": self.symmetry,
                "reads": "exports" if self.reads_exports else "scans",
                "figures": self.figures(),
                # (what the listing says of simulated cartridges: its --json left them out)
                "cartridge_figures": self.cartridge_figures(),
                "files": [str(p) for p in (self.checkpoint, self.onnx) if p is not None]}


def _warn_once(path: Path, message: str) -> None:
    """Log a warning about ``path`` once per process: models are listed several times a run."""
    if first_time(__name__, path, message):
        log.warning("%s: %s", path, message)


def is_shipped_file(path: Path) -> bool:
    """Whether ``path`` is one of the shipped models' files (listed in their SHA256SUMS,
    which ``ctcnet verify`` checks them against)."""
    if path.resolve().parent != PACKAGE_MODELS.resolve():
        return False
    try:
        listed = (PACKAGE_MODELS / "SHA256SUMS").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return path.name in listed


def model_dirs() -> list[Path]:
    """Folders searched for models, in order: the package's, then ``$CTCNET_MODELS``'s (a
    name is the first folder's: :func:`list_models`).

    An entry of ``$CTCNET_MODELS`` that is a file (a model file, say) is refused: models
    looked up by name would silently come from elsewhere. One that does not exist (a cache not
    made yet) is searched as empty, with a warning once.
    """
    dirs = [Path(p).expanduser() for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    for folder in dirs:
        if folder.exists() and not folder.is_dir():
            raise InputError(f"named in ${MODELS_ENV} but not a folder; set it to the "
                             "folder(s) holding NAME.json with NAME.pt or NAME.onnx "
                             f"(several: separated by {os.pathsep!r})", folder)
        if not folder.exists():
            _warn_once(folder, f"in ${MODELS_ENV} but not found; no models from it")
    return [PACKAGE_MODELS, *dirs]


def _read_card(path: Path) -> ModelInfo | None:
    """A model's card as ModelInfo, or None (logged) when it is no model card.

    A FIFO, socket or device named like a card or a weight file is never opened (opening a
    FIFO waits for a writer, forever): it is skipped with a warning.
    """
    name = path.stem
    odd = [p for p in [path] + [path.parent / f"{name}{s}" for s in WEIGHT_SUFFIXES]
           if p.exists() and not p.is_file()]
    for p in odd:
        _warn_once(p, "not a regular file (a FIFO, device or folder?), skipped")
    if path in odd or not path.exists() or \
            not any((path.parent / f"{name}{s}").is_file() for s in WEIGHT_SUFFIXES):
        return None  # no card (a model file of a lab's own): nothing to warn of
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        panel = Panel.from_dict(card["panel"], path)
        return ModelInfo(name, path.parent, panel, [str(c) for c in card["classes"]],
                         int(card["crop_size"]), card)
    except (OSError, ValueError, KeyError, TypeError, InputError) as err:
        log.warning("%s: not a usable model card, skipped: %s", path, err)
        return None


def _is_orphan_card(path: Path) -> bool:
    """Whether ``path`` is a model's card (its panel and classes) without its weights."""
    if any(path.with_suffix(s).exists() for s in WEIGHT_SUFFIXES) or not path.is_file():
        return False
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and "panel" in card and "classes" in card


def list_models() -> list[ModelInfo]:
    """Every shipped model, the default first, then by name."""
    found: dict[str, ModelInfo] = {}
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for card in sorted(folder.glob("*.json")):
            info = _read_card(card)
            if info is None:
                if _is_orphan_card(card):  # (a shipped one's: this installation is damaged)
                    _warn_once(card.resolve(), f"a model card with no {card.stem}.pt or "
                               f"{card.stem}.onnx beside it, so no model by name (its weights "
                               "moved or deleted?" + (" ctcnet verify names the shipped files "
                                                      "missing)" if is_shipped_file(card)
                                                      else ")"))
                continue
            if card.stem in found:
                if found[card.stem].folder.resolve() != folder.resolve():
                    _warn_once(card, f"named like the model {card.stem!r} of "
                               f"{found[card.stem].folder}, which keeps the name: this one is "
                               "not offered by name; rename its card and files (NAME.json, "
                               "NAME.pt, NAME.onnx) to offer it")
                continue
            found[card.stem] = info
        if folder != PACKAGE_MODELS:
            # A model file without its card (``ctcnet train``'s model.pt copied in) is no
            # model by name: said, rather than left out without a word.
            for model in sorted(f for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES):
                if not model.with_suffix(".json").exists():
                    _warn_once(model, f"has no card ({model.stem}.json) beside it, so it is not "
                               "offered by name: scripts/train_default_model.py, ctcnet "
                               "finetune and ctcnet evaluate --save-model write one; --model "
                               "takes the file itself")
    return sorted(found.values(), key=lambda m: (m.name != DEFAULT_MODEL_NAME, m.name))


def get_model(name: str) -> ModelInfo:
    """The shipped model called ``name``, or the model file ``name`` names with its card
    beside it (``finetune`` writes one); an unknown name lists the known ones."""
    path = Path(name)
    if path.suffix in WEIGHT_SUFFIXES and path.is_file():
        info = _read_card(path.with_suffix(".json"))
        if info is None:
            raise InputError(f"has no card ({path.stem}.json) beside it: ctcnet finetune, "
                             "evaluate --save-model and scripts/train_default_model.py write "
                             "one, ctcnet train does not "
                             "(its run folder's checkpoints hold the model's spec); predict "
                             "and evaluate take the file itself with --model", path)
        return info
    for info in list_models():
        if info.name == name:
            return info
    names = [m.name for m in list_models()]
    orphans = [d for d in model_dirs() if d.is_dir() and _is_orphan_card(d / f"{name}.json")]
    if orphans:
        raise InputError(f"the model {name!r} has its card but not its weights ({name}.pt, "
                         f"{name}.onnx) in {orphans[0]}: moved or deleted?"
                         + (" (ctcnet verify names the shipped files missing)"
                            if is_shipped_file(orphans[0] / f"{name}.json") else ""))
    cardless = [d / f"{name}{suffix}" for d in model_dirs() if d.is_dir()
                for suffix in WEIGHT_SUFFIXES if (d / f"{name}{suffix}").is_file()]
    if cardless:  # (it read "no shipped model", the folder named in $CTCNET_MODELS searched)
        raise InputError(f"{cardless[0]} has no card ({name}.json) beside it, so it is not "
                         f"offered by name: pass the file with --model {cardless[0]}, or give it "
                         "a card (ctcnet finetune and evaluate --save-model write one)")
    raise InputError(f"no shipped model called {name!r} (shipped: {names or 'none'}; "
                     f"folders searched: {[str(d) for d in model_dirs()]}); a model of your "
                     f"own is passed as its file, or by name with its folder in ${MODELS_ENV}")


def resolve_model(model: str | Path | None, backend: str | None = None) -> Path:
    """``--model`` as a file: an existing path is used as given, else a registry name (None is
    the default model)."""
    # (a model file's suffix: a path mistyped is a file not found, never a name unknown)
    if model is not None and (Path(model).exists() or
                              Path(model).suffix.lower() in MODEL_SUFFIXES):
        return Path(model)
    return get_model(str(model or DEFAULT_MODEL_NAME)).file(backend)


def is_registry_name(model: str | Path | None) -> bool:
    """Whether ``model`` names a shipped model (None: the default) rather than a file."""
    return model is None or (not Path(model).exists() and Path(model).suffix.lower() not in
                             MODEL_SUFFIXES and any(m.name == str(model)
                                                    for m in list_models()))


def missing_channels(model: Panel, data: Panel) -> list[str]:
    """Channels the model needs that the data lacks (by name or alias), [] if it fits."""
    indices, _ = model.match_channels(data)
    return [c.name for c, i in zip(model.channels, indices) if i is None]


def _alike_planes(panels: Sequence[Panel]) -> str:
    """The planes of ``panels`` read as one marker (CK-PE and CK-FITC both as CK), said
    before the advice to rename: a model reading that marker cannot tell which is its own."""
    from ctcnet.io.panel import marker_role

    said = []
    for panel in panels:
        by_role: dict[str, list[str]] = {}
        for name in panel.names:
            by_role.setdefault(marker_role(name), []).append(name)
        said += [f"{' and '.join(names)} {'both' if len(names) == 2 else 'all'} read as one "
                 f"marker ({role})"
                 for role, names in by_role.items() if role != "unknown" and len(names) > 1]
    return f"{'; '.join(dict.fromkeys(said))}: name each plane by what it holds. " \
        if said else ""


def choose_model(panels: Sequence[Panel], what: str = "the data",
                 cartridges: bool = False, scan_scale: bool = False) -> ModelInfo:
    """The shipped model whose channels every one of ``panels`` has (by name).

    A model that reads exports only is never chosen for scans (any panel not an RGB
    composite); for composite data it comes first, unless ``scan_scale``: composites at a
    scanner's own pixel size (a gallery's thumbnails of its events), which a model that reads
    scans reads better (:data:`ctcnet.inference.model_choice.SCAN_PIXEL_UM`). ``cartridges`` (the
    data holds whole cartridges, not only crop folders): a model with a cartridge decision
    rule comes before one without, whose calls would be made at the balanced training prior.
    Of the models left that fit, the one that uses the most of the data's channels (on a
    tie, a model shipped with ctcnet before one of ``$CTCNET_MODELS``, whose folder may hold a
    lab's trial fine-tunes, then the default model); none fitting is a
    :class:`PanelMismatchError` that says what each model needs.
    """
    models = list_models()
    if not models:
        raise InputError(f"no shipped models found (folders searched: "
                         f"{[str(d) for d in model_dirs()]}); pass --model")
    fitting = [m for m in models if not any(missing_channels(m.panel, p) for p in panels)]
    if not fitting:
        have = sorted({n for p in panels for n in p.names})
        needs = "; ".join(f"{m.name} needs {m.channels} (missing "
                          f"{sorted({c for p in panels for c in missing_channels(m.panel, p)})})"
                          for m in models)
        # Planes read as one marker lead: that, not a missing channel, is then the fix
        # (PTPRC and CD45RA led with "missing CD45", the cause said after every model's needs).
        alike = _alike_planes(panels)
        raise PanelMismatchError(
            f"no shipped model fits {what} (channels {have}): " +
            (f"{alike}Each model's needs: {needs}; or train a model for this panel (see "
             "README) and pass --model" if alike else
             f"{needs}. Where a channel is one of those under another name (a lab's own word "
             "for CK), name it so in panel.json; else train a model for this panel (see "
             "README) and pass --model"))
    composite = bool(panels) and all(p.composite for p in panels)
    if not composite:
        fitting = [m for m in fitting if not m.reads_exports]
        if not fitting:
            raise PanelMismatchError(f"no shipped model for scans fits {what}: the models with "
                                     "its channels read composite exports only; pass --model")
    best = max(fitting, key=lambda m: (cartridges and m.has_cartridge_rule,
                                       m.reads_exports != scan_scale,
                                       m.panel.num_channels, m.shipped,
                                       m.name == DEFAULT_MODEL_NAME))
    more = [m.name for m in fitting if cartridges and not m.has_cartridge_rule
            and m.panel.num_channels > best.panel.num_channels]
    if more:  # a lab's model of more of the data's channels, without a cartridge rule
        log.warning("%s reads more of %s's channels than %s, but has no cartridge decision "
                    "rule (scripts/fit_decision.py fits one; until then its calls on a "
                    "cartridge are at the balanced training prior): %s is used; pass --model "
                    "to use it as it is", ", ".join(more), what, best.name, best.name)
    log.info("model %s chosen for %s (channels %s)", best.name, what, best.channels)
    return best
