"""The taxonomy: the classes a model tells apart, in output order.

Plain data in JSON or YAML. The smallest accepted form is ``{"classes": ["ctc", "wbc"]}``; a
class may list the simulator subtypes it ``includes`` (e.g. ``debris`` includes ``tdev``). When
a class does not say, a simulator subtype goes to the class named like the subtype, else to the
class named like the subtype's parent (``ctc``, ``wbc``, ``cluster``, ``debris``), so a taxonomy
that adds ``tdev`` or ``bare_nucleus`` as classes of their own works without code changes.

The marker guard knows four kinds of call (:data:`GUARD_KINDS`): a class is checked as the kind
it says (``checked_as``), else as the kind it is named, else as the one parent every subtype it
``includes`` shares (``ctc_emt`` including ``ctc_dim``: a ``ctc``), else not at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ctcnet.errors import InputError
from ctcnet.io.metadata_text import read_mapping

_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# The classes the marker guard checks calls as (``ctcnet.inference.guard``): a CTC's markers
# (CD45 negative, a nucleus in its CK area, in focus), a cluster's (more than one cell), and
# the leukocyte and debris calls it may find a missed CTC among.
GUARD_KINDS = ("ctc", "wbc", "cluster", "debris")
# The simulator's subtypes and the class each is drawn as (its parent); the simulator's
# catalogue (``ctcnet.simulate.cells``) draws exactly these.
SUBTYPE_PARENTS: dict[str, str] = {
    "ctc_bright": "ctc", "ctc_dim": "ctc", "ctc_apoptotic": "ctc",
    "lymphocyte": "wbc", "neutrophil": "wbc", "monocyte": "wbc",
    "ctc_neutrophil": "cluster", "ctc_platelet": "cluster", "ctc_doublet": "cluster",
    "tdev": "debris", "bare_nucleus": "debris", "fragment": "debris", "aggregate": "debris",
    "blob": "debris", "fibre": "debris", "edge_cut": "debris", "autofluorescent": "debris",
}


@dataclass(frozen=True)
class ClassInfo:
    """One class of the taxonomy: its name, a description, the simulator subtypes it includes
    and the kind of call the marker guard checks it as (``checked_as``, one of
    :data:`GUARD_KINDS`; '' where the name or the subtypes say it)."""
    name: str
    description: str = ""
    includes: tuple[str, ...] = ()
    checked_as: str = ""

    def to_dict(self) -> dict:
        """The class as plain data (``includes`` and ``checked_as`` only when set)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.includes:
            out["includes"] = list(self.includes)
        if self.checked_as:
            out["checked_as"] = self.checked_as
        return out


@dataclass(frozen=True)
class Taxonomy:
    """The classes a model tells apart, in output order, and which of them the summary reports."""
    classes: tuple[ClassInfo, ...]
    name: str = "custom"
    # Classes whose calls a person reviews and that the summary counts per 7.5 mL.
    reported: tuple[str, ...] = field(default=("ctc", "cluster"))

    def __post_init__(self):
        if len(self.classes) < 2:
            raise InputError(f"a taxonomy needs at least 2 classes, got {self.names}")
        if len(set(self.names)) != len(self.names):
            raise InputError(f"taxonomy class names must be unique, got {self.names}")
        for n in self.names:
            if not _CLASS_NAME.match(n):
                raise InputError(f"class name {n!r} must be lower case letters, digits and _")
        # A subtype is drawn as one class: listed under two, the first would take every cell.
        owners: dict[str, str] = {}
        for c in self.classes:
            for subtype in c.includes:
                if subtype in owners:
                    raise InputError(f"subtype {subtype!r} is in the 'includes' of both "
                                     f"{owners[subtype]!r} and {c.name!r}: a simulated cell is "
                                     "drawn as one class; list it under one")
                owners[subtype] = c.name
            if c.checked_as and c.checked_as not in GUARD_KINDS:
                raise InputError(f"class {c.name!r}: checked_as {c.checked_as!r} is none of the "
                                 f"kinds the marker guard checks ({', '.join(GUARD_KINDS)})")

    @property
    def names(self) -> list[str]:
        """The class names, in output order."""
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """How many classes the model outputs."""
        return len(self.classes)

    def index(self, name: str) -> int:
        """Output index of the class ``name``; an ``InputError`` names the classes when it is not
        one."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"class {name!r} is not in the taxonomy {self.names}") from None

    def reported_classes(self) -> list[str]:
        """The reported classes this taxonomy has (those a person reviews and the summary
        counts)."""
        return [n for n in self.reported if n in self.names]

    def guard_kind(self, name: str) -> str:
        """The kind of call (:data:`GUARD_KINDS`) the marker guard checks a call of class
        ``name`` as: the class's ``checked_as``; else its name, where it is a kind; else the
        parent every subtype it includes shares (or its own name's, where it is named like a
        subtype: a ``tdev`` class is debris); else '' (not checked)."""
        info = self.classes[self.index(name)]
        if info.checked_as or name in GUARD_KINDS:
            return info.checked_as or name
        parents = {SUBTYPE_PARENTS.get(s, "") for s in (info.includes or (name,))}
        return parents.pop() if len(parents) == 1 else ""

    def guard_kinds(self) -> list[str]:
        """:meth:`guard_kind` of every class, in output order."""
        return [self.guard_kind(n) for n in self.names]

    def of_kind(self, kind: str) -> list[str]:
        """The classes the marker guard checks as ``kind`` (:meth:`guard_kind`)."""
        return [n for n in self.names if self.guard_kind(n) == kind]

    def unchecked_reported(self) -> list[str]:
        """The reported classes the marker guard checks as neither a CTC nor a cluster: their
        calls are counted whatever their markers read."""
        return [c for c in self.reported_classes() if self.guard_kind(c) not in ("ctc", "cluster")]

    def unreported_ctc_like(self) -> list[str]:
        """The classes named as a kind of CTC (a ``ctc`` word: ``emt_ctc``, ``ctc_emt``) that
        the taxonomy does not report: neither counted per 7.5 mL nor listed for review."""
        reported = set(self.reported_classes())
        return [c for c in self.names
                if c not in reported and "ctc" in c.lower().split("_")]

    def checking_notes(self) -> list[str]:
        """What a person should know of how this taxonomy's classes are counted and checked:
        reported classes the marker guard checks as neither a CTC nor a cluster, and classes
        named as CTCs that are not reported (:meth:`unreported_note`)."""
        notes = []
        if unchecked := self.unchecked_reported():
            notes.append(f"the taxonomy reports {', '.join(unchecked)}, which the marker guard "
                         "checks as neither a CTC nor a cluster (counted whatever the markers "
                         "read); a class that is a kind of CTC says so by \"checked_as\" or "
                         "\"includes\" (not a tdEV: it has no nucleus)")
        return notes + [n for n in (self.unreported_note(),) if n]

    def unreported_note(self) -> str | None:
        """What :meth:`unreported_ctc_like` means (a lab's EMT class dropped out of the counts
        and the guard unsaid), or that the taxonomy reports no class at all (a lab's own
        classes under the default "reported", ctc and cluster, which it has not: a model that
        counts nothing, unsaid), or None."""
        if not self.reported_classes():
            return (f"the taxonomy reports none of its classes ({', '.join(self.names)}; "
                    "\"reported\" names none of them, by default ctc and cluster): predict "
                    "counts nothing per 7.5 mL (a sample's figure is n/a); name the classes "
                    "to count in \"reported\", with \"checked_as\": \"ctc\" for a kind of CTC "
                    "(docs/data-formats.md)")
        unreported = self.unreported_ctc_like()
        if not unreported:
            return None
        return (f"the taxonomy's {', '.join(unreported)}, named as a kind of CTC, "
                f"{'is' if len(unreported) == 1 else 'are'} not reported (reported: "
                f"{', '.join(self.reported_classes())}): neither counted per 7.5 mL nor listed "
                "for review; list it in \"reported\" with \"checked_as\": \"ctc\" to count it, "
                "checked as a CTC (docs/data-formats.md)")

    def class_for_subtype(self, subtype: str, parent: str) -> str:
        """Map a simulator subtype (with its coarse parent class) onto this taxonomy."""
        for c in self.classes:
            if subtype in c.includes:
                return c.name
        if subtype in self.names:
            return subtype
        if parent in self.names:
            return parent
        raise InputError(f"taxonomy {self.names} has no class for simulated subtype "
                         f"{subtype!r} (parent {parent!r}); add it to a class's 'includes'")

    def to_dict(self) -> dict:
        """The taxonomy as plain data, as it is written to JSON and into the model spec."""
        return {"name": self.name, "classes": [c.to_dict() for c in self.classes],
                # the reported classes it has: a class set without clusters reports ctc
                # alone, and reads back as it was written
                "reported": self.reported_classes()}

    @classmethod
    def from_dict(cls, data: Any, source: str | Path | None = None, *,
                  stored: bool = False) -> Taxonomy:
        """Build a taxonomy from a mapping or a bare list of classes (names or mappings);
        ``source`` names the file in errors. ``stored``: a model's own (its spec), checked
        when it was trained: an ``includes`` subtype it lists is kept as it is."""
        if isinstance(data, (list, tuple)):
            data = {"classes": list(data)}
        if not isinstance(data, dict) or "classes" not in data:
            raise InputError("a taxonomy is a mapping with a 'classes' list", source)
        _refuse_misspelt(data, _TAXONOMY_KEYS, "taxonomy", source)
        classes = []
        for entry in data["classes"]:
            if isinstance(entry, str):
                classes.append(ClassInfo(entry))
            elif isinstance(entry, dict) and "name" in entry:
                _refuse_misspelt(entry, _CLASS_KEYS, f"class {entry['name']!r}", source)
                classes.append(ClassInfo(str(entry["name"]), str(entry.get("description", "")),
                                         (tuple(entry.get("includes", ())) if stored
                                          else _subtypes(entry, source)),
                                         str(entry.get("checked_as", "") or "")))
            else:
                raise InputError(f"taxonomy entry {entry!r} is neither a name nor a mapping "
                                 "with 'name'", source)
        reported = data.get("reported", ("ctc", "cluster"))
        names = [c.name for c in classes]
        if "reported" in data and (not isinstance(reported, (list, tuple)) or
                                   [r for r in reported if r not in names]):
            # A class named so by mistake ("ctc-emt") would lose its rate per 7.5 mL silently.
            raise InputError(f"taxonomy 'reported' {reported!r} names classes it does not have "
                             f"(its classes: {', '.join(names)})", source)
        try:
            return cls(tuple(classes), str(data.get("name", "custom")), tuple(reported))
        except InputError as err:
            raise InputError(str(err), source) from None


# The keys a taxonomy and each of its classes are read by.
_TAXONOMY_KEYS = ("name", "classes", "reported")
_CLASS_KEYS = ("name", "description", "includes", "checked_as")


def _refuse_misspelt(data: dict, keys: tuple[str, ...], where: str, source) -> None:
    """Refuse a key of ``data`` that is none of ``keys`` but looks like one (``cheked_as``):
    its value would be passed over, and a model keeps the taxonomy it was trained with. Other
    keys (a comment) are let be."""
    import difflib

    for key in data:
        close = difflib.get_close_matches(str(key).lower(), keys, n=1, cutoff=0.75)
        if key not in keys and close:
            raise InputError(f"{where}: key {key!r} is not read; did you mean {close[0]!r}?",
                             source)


def _subtypes(entry: dict, source) -> tuple[str, ...]:
    """A class's ``includes``: a list of the simulator's subtypes (:data:`SUBTYPE_PARENTS`),
    refused otherwise: a string would be read letter by letter, and a misspelt subtype
    (``ctc_apoptotc``) would draw those cells as another class, read no truth as it and take
    the guard's checks off a class whose other subtypes say how to check it."""
    import difflib

    includes = entry.get("includes", ())
    where = f"class {entry['name']!r}"
    if isinstance(includes, str) or not isinstance(includes, (list, tuple)):
        raise InputError(f"{where}: includes is a list of subtypes, e.g. "
                         f"[{json.dumps(str(includes))}], not {includes!r}", source)
    for subtype in includes:
        if subtype not in SUBTYPE_PARENTS:
            close = difflib.get_close_matches(str(subtype), list(SUBTYPE_PARENTS), n=1)
            raise InputError(f"{where}: {subtype!r} is none of the simulator's subtypes"
                             + (f"; did you mean {close[0]!r}?" if close else
                                f" ({', '.join(SUBTYPE_PARENTS)})"), source)
    return tuple(includes)


def load_taxonomy(source: str | Path | dict | list | Taxonomy | None = None, *,
                  stored: bool = False) -> Taxonomy:
    """Load a taxonomy from a file, a mapping, a list of names, or the default when None;
    ``stored``: a model's own, read as it was trained (:meth:`Taxonomy.from_dict`)."""
    if isinstance(source, Taxonomy):
        return source
    if source is None:
        return default_taxonomy()
    if isinstance(source, (dict, list, tuple)):
        return Taxonomy.from_dict(source, stored=stored)
    path = Path(source)
    if not path.exists():
        raise InputError("taxonomy file not found", path)
    return Taxonomy.from_dict(read_mapping(path), path)


def default_taxonomy() -> Taxonomy:
    """The taxonomy shipped with ctcnet (``ctcnet/data/default_taxonomy.json``)."""
    text = resources.files("ctcnet.data").joinpath("default_taxonomy.json").read_text("utf-8")
    return Taxonomy.from_dict(json.loads(text))


def class_words(label: str) -> list[str]:
    """A label's words, lower case: folders and spreadsheets part them by -, _, . or spaces."""
    return [w for w in re.split(r"[-_.\s]+", label.strip().lower()) if w]


def as_class_name(label: str, names) -> str:
    """``label`` as the class of ``names`` it names but for its case and separators
    (``EMT-CTC`` -> ``emt_ctc``); itself where it names none."""
    name = "_".join(class_words(label))
    return name if label not in names and name in names else label
