"""The ``data.simulate`` settings a training run reads, checked before any crop is drawn: a
key none of them (``--data.simulate.trian 60``) is refused naming the keys there are, the one
meant first, as a misspelt augmentation is; read over, it trained on the default 4 crops a
class and recorded the slip in the model's spec."""

from __future__ import annotations

import difflib

import yaml

from ctcnet.errors import InputError

# What CTCDataModule reads of ``simulate`` (its docstring says what each does).
SIMULATE_KEYS = ("train", "val", "test", "seed", "num_samples", "randomisation", "overrides",
                 "fine")
# Those of them that are numbers (or, for the splits, numbers a class).
NUMBER_KEYS = ("train", "val", "test", "seed", "num_samples")


def simulate_settings(simulate: dict | None) -> dict:
    """``simulate`` as a plain dict, every key one the data module reads; else InputError."""
    settings = dict(simulate or {})
    for key in settings:
        if key not in SIMULATE_KEYS:
            close = difflib.get_close_matches(str(key), SIMULATE_KEYS, n=1, cutoff=0.6)
            raise InputError(f"data.simulate: key {key!r} is not read"
                             + (f"; did you mean {close[0]!r}?" if close else "")
                             + f" (the keys: {', '.join(SIMULATE_KEYS)})")
    # The command line gives a value as text (--data.simulate.train=60 is "60", where a YAML
    # file's train: 60 is a number): read as YAML reads it, so the same crops are one run's
    # data (its identity, the render cache) and the spec records numbers.
    for key in NUMBER_KEYS:
        if isinstance(settings.get(key), str):
            read = yaml.safe_load(settings[key])
            if isinstance(read, (int, float, dict)) and not isinstance(read, bool):
                settings[key] = read
    return settings
