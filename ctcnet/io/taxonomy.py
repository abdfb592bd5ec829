"""The taxonomy: the classes a model tells apart, in output order.

Plain data in JSON or YAML. The smallest accepted form is ``{"classes": ["ctc", "wbc"]}``; a
class may list the simulator subtypes it ``includes`` (e.g. ``debris`` includes ``tdev``). When
a class does not say, a simulator subtype goes to the class named like the subtype, else to the
class named like the subtype's parent (``ctc``, ``wbc``, ``cluster``, ``debris``), so a taxonomy
that adds ``tdev`` or ``bare_nucleus`` as classes of their own works without code changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ctcnet.errors import InputError
from ctcnet.io.panel import read_mapping

_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ClassInfo:
    """One class of the taxonomy: its name, a description and the simulator subtypes it includes."""
    name: str
    description: str = ""
    includes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The class as plain data (``includes`` only when it lists any)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.includes:
            out["includes"] = list(self.includes)
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
                "reported": list(self.reported)}

    @classmethod
    def from_dict(cls, data: Any, source: str | Path | None = None) -> Taxonomy:
        """Build a taxonomy from a mapping or a bare list of classes (names or mappings);
        ``source`` names the file in errors."""
        if isinstance(data, (list, tuple)):
            data = {"classes": list(data)}
        if not isinstance(data, dict) or "classes" not in data:
            raise InputError("a taxonomy is a mapping with a 'classes' list", source)
        classes = []
        for entry in data["classes"]:
            if isinstance(entry, str):
                classes.append(ClassInfo(entry))
            elif isinstance(entry, dict) and "name" in entry:
                classes.append(ClassInfo(str(entry["name"]), str(entry.get("description", "")),
                                         tuple(entry.get("includes", ()))))
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


def load_taxonomy(source: str | Path | dict | list | Taxonomy | None = None) -> Taxonomy:
    """Load a taxonomy from a file, a mapping, a list of names, or the default when None."""
    if isinstance(source, Taxonomy):
        return source
    if source is None:
        return default_taxonomy()
    if isinstance(source, (dict, list, tuple)):
        return Taxonomy.from_dict(source)
    path = Path(source)
    if not path.exists():
        raise InputError("taxonomy file not found", path)
    return Taxonomy.from_dict(read_mapping(path), path)


def default_taxonomy() -> Taxonomy:
    """The taxonomy shipped with ctcnet (``ctcnet/data/default_taxonomy.json``)."""
    text = resources.files("ctcnet.data").joinpath("default_taxonomy.json").read_text()
    return Taxonomy.from_dict(json.loads(text))
