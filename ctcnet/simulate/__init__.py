"""The scan simulator: realistic labelled crops and whole cartridges for any panel.

Labelled patient scans are scarce and cannot ship, so the simulator is what the shipped model
learns from and what every test and benchmark runs on. Modules: ``config`` (knobs and named
shifts), ``primitives``, ``cells`` and ``debris`` (biology in µm), ``optics`` (imaging physics),
``scanner`` (per-sample draws), ``crops``, ``cartridge``, ``gallery``, ``export`` (crops as
display exports show them) and ``augment`` (the same variations on any crop: training
augmentation, and the export view that a model reading exports is validated and tested on;
its options in ``augment_options``, its numpy steps in ``augment_steps``).
"""

from ctcnet.simulate.cells import SUBTYPES
from ctcnet.simulate.config import NAMED_SHIFTS, SimConfig
from ctcnet.simulate.crops import CropBatch, simulate_crops, undrawn_classes, write_crop_batch

__all__ = ["SimConfig", "NAMED_SHIFTS", "CropBatch", "simulate_crops", "write_crop_batch",
           "simulate_cartridge", "SUBTYPES", "undrawn_classes"]


def __getattr__(name):
    # The cartridge writer pulls in pandas; import it only when asked for.
    if name == "simulate_cartridge":
        from ctcnet.simulate.cartridge import simulate_cartridge

        return simulate_cartridge
    raise AttributeError(name)
