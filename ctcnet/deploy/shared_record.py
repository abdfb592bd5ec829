"""A model's training record as an ONNX file carries it out of the lab: without the places and
names that can identify a patient. A checkpoint records, for the lab's own audit, the folders
it was trained, fine-tuned and recalibrated on (their absolute paths, where labs name folders by
patient) and the samples it held out or cut from (their ids, often a patient's name or hospital
number). An ONNX file goes into instrument software and to other sites: there each such path
reads ``withheld`` (so does any other absolute path in it), a list of sample ids or of the
making's warnings (which name samples and folders) becomes its length and a table by sample
its totals, and the record lists what was withheld (``withheld``). The crops' fingerprints
(``learnt_from``), counts per class and digests stay: they identify no one, and evaluate still
tells a model's own training crops by them.
"""

from __future__ import annotations

import re
from collections import Counter

WITHHELD = "withheld"
# Keys whose text is a path on the lab's disks: the training folder (``data_dir``, a
# fine-tune's ``path``s: its crops' and its base model's), a recalibration's (``from``), and
# a training config's model and run folders; any other text that is an absolute path too.
PATH_KEYS = frozenset({"data_dir", "path", "from", "init_from", "ckpt_path",
                       "default_root_dir", "dirpath", "save_dir"})
ABSOLUTE_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")
# Keys whose value names samples: a list of sample ids, or a table keyed by them; and lists
# of what a making said in words (its warnings name samples and folders): their length.
SAMPLE_LISTS = frozenset({"samples", "warnings"})
SAMPLE_TABLES = frozenset({"signoff_status", "added_crops"})


def shareable_training(training: dict) -> tuple[dict, list[str]]:
    """``training`` without paths and sample ids, and the dotted keys withheld (in the order
    met); the record itself is not changed."""
    withheld: list[str] = []

    def walk(value, where: str):
        if isinstance(value, dict):
            return {key: leave_out(key, item, f"{where}.{key}" if where else str(key))
                    for key, item in value.items()}
        if isinstance(value, list):
            return [leave_out(None, item, where) for item in value]
        return value

    def leave_out(key, item, where: str):
        if isinstance(item, str) and item and (key in PATH_KEYS or ABSOLUTE_PATH.match(item)):
            withheld.append(where)
            return WITHHELD
        if key in SAMPLE_LISTS and isinstance(item, list):
            withheld.append(where)
            return len(item)
        if key in SAMPLE_TABLES and isinstance(item, dict):
            withheld.append(where)
            return _totals(item)
        return walk(item, where)

    shared = walk(training or {}, "")
    withheld = list(dict.fromkeys(withheld))  # (a list's paths said once)
    if withheld:
        shared[WITHHELD] = withheld
    return shared, withheld


def _totals(table: dict):
    """A table by sample as totals: its numbers summed, its words counted (a sign-off's status
    per sample: how many samples had each)."""
    values = list(table.values())
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return sum(values)
    return dict(Counter(map(str, values)))
