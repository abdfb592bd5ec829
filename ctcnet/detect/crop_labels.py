"""A crop folder's labels against a model's classes: a label naming a class but for its case
and separators read as that class (a lab's folders ``CTC``, ``EMT-CTC`` for ``ctc``,
``emt_ctc``), and the refusal of labels that name none, with the class meant where one is
misspelt, a labels file ctcnet does not read where one lies beside the crops, and a folder
laid out sample/class where ctcnet reads class/sample."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from ctcnet.core.said_once import first_time
from ctcnet.errors import InputError
from ctcnet.io.taxonomy import as_class_name, class_words

log = logging.getLogger("ctcnet.detect.crop_dataset")  # said as the folder's other notes are


def as_class_names(labels: list[str], names: list[str], root: Path) -> list[str]:
    """``labels`` with each that names a class of ``names`` but for its case and separators
    (class names are lower case with _) read as that class, said once; the others as they
    are."""
    read_as = {}
    for label in set(labels) - set(names):
        if as_class_name(label, names) in names:
            read_as[label] = as_class_name(label, names)
    # once a folder (a run reads it more than once)
    if read_as and first_time(__name__, str(root), tuple(sorted(read_as.items()))):
        log.warning("%s: labels read as the model's class names: %s", root,
                    ", ".join(f"{k} as {v}" for k, v in sorted(read_as.items())))
    return [read_as.get(label, label) for label in labels]


def unknown_labels_error(unknown: list[str], names: list[str], root: Path) -> InputError:
    """The refusal of labels no class of ``names`` is: the class meant where a one-word label
    is misspelt (CTC, wcb; EMT-CTC is a class of its own, not ctc misspelt), and a CSV beside
    the crops that is not manifest.csv (a lab's labels.csv, which was passed over unsaid and
    its crops' folder read as a class)."""
    meant = ", ".join(f"{name} -> {match}" for name in unknown
                      for match in [class_meant(name, names)] if match)
    tables = sorted(p.name for p in Path(root).glob("*.csv") if p.name != "manifest.csv")
    unread = (f"; {', '.join(tables)} beside the crops is not read: labels come from class "
              "folders or from manifest.csv (columns path,label[,sample_id][,split], paths "
              "relative to the crop folder): rename it so, with those columns" if tables
              else "")
    flipped = sample_class_layout(unknown, names, Path(root))
    if flipped:  # the folders are patients, their subfolders classes: not a class to rename
        return InputError(
            f"classes {unknown} are not in the taxonomy {names}: the folder is laid out "
            f"sample/class ({flipped}), but a crop folder's first level names the class and "
            "its subfolders the samples (ctc/P017/cell_12.tif): swap the two levels, or list "
            "the crops in manifest.csv (path,label,sample_id; docs/data-formats.md)", root)
    return InputError(f"classes {unknown} are not in the taxonomy {names}"
                      + (f" (did you mean {meant}?)" if meant else "") + ": rename those class "
                      "folders (or manifest.csv labels) to the taxonomy's names where they are "
                      "the same class; a class set that holds them is given by a taxonomy file "
                      "(training: `--data.taxonomy FILE.json`, docs/training.md; a model "
                      "trained so reads them elsewhere, and `ctcnet finetune --base` that "
                      f"model fine-tunes it on them){unread}", root)


# What labs call the default classes, where the word is none of their names misspelt
# (leukocytes is no misspelling of wbc).
_OTHER_WORDS = {"wbc": {"leukocyte", "leucocyte", "white blood cell", "lymphocyte", "cd45"},
                "ctc": {"tumour cell", "tumor cell", "cancer cell", "ck"},
                "debris": {"artefact", "artifact", "junk", "dirt"},
                "cluster": {"ctc cluster", "aggregate", "clump"}}


def _lab_word_class(label: str, names: list[str]) -> str | None:
    """The class of ``names`` a lab's word for it (plural or not) names; None where none."""
    words = " ".join(class_words(label))
    for name, others in _OTHER_WORDS.items():
        if name in names and (words in others or words.removesuffix("s") in others):
            return name
    return None


def class_meant(label: str, names: list[str]) -> str | None:
    """The class of ``names`` a one-word ``label`` misspells, or that a lab's word for it
    (plural or not) names; None where neither."""
    if (named := _lab_word_class(label, names)) is not None:
        return named
    match = difflib.get_close_matches(label.lower(), names, 1)
    # A slip of the keys: letters swapped (wcb) or one more or fewer (debri, clusters); not
    # one letter for another, which names other cells (rbc, cec: red and endothelial cells).
    return match[0] if match and len(class_words(label)) == 1 and \
        _one_slip(label.lower(), match[0]) else None


def _one_slip(typed: str, meant: str) -> bool:
    """Whether ``typed`` is ``meant`` with its letters in another order, or one letter added
    or left out."""
    if len(typed) == len(meant):
        return sorted(typed) == sorted(meant)
    short, long = sorted((typed, meant), key=len)
    return len(long) - len(short) == 1 and any(long[:k] + long[k + 1:] == short
                                               for k in range(len(long)))


def names_a_class(label: str, names: list[str]) -> bool:
    """Whether a folder's name reads as a class of ``names``: as one but for case and
    separators (``CTC``), or in a lab's word for it (``Leukocytes``), as a crop folder's class
    folders are named. Not a look-alike: scans are named ``CTC1`` or ``WBC01`` too."""
    return as_class_name(label, names) in names or _lab_word_class(label, names) is not None


def sample_class_layout(unknown: list[str], names: list[str], root: Path) -> str | None:
    """A folder of ``unknown`` whose subfolders name classes of ``names`` (read as the model's
    names are, :func:`class_words`), as ``P017/ctc``: a layout of samples above classes, where
    ctcnet reads classes above samples; None where no such folder is."""
    for label in sorted(unknown):
        folder = root / label
        if not folder.is_dir():
            continue
        inside = sorted(p.name for p in folder.iterdir() if p.is_dir()
                        and as_class_name(p.name, names) in names)
        if inside:
            return f"{label}/{inside[0]}/..."
    return None
