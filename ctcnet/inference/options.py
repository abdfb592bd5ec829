"""What a predict run is asked to do: its options (:class:`PredictOptions`), the report it
hands the drawing to (:class:`RunReport`, a layer above), and the decision rule at the prior
asked for (:func:`spec_at_prior`). Used by the cartridge and crop-set entry points alike
(:mod:`ctcnet.inference.predict`, :mod:`ctcnet.inference.crop_sets`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ctcnet.core.said_once import first_time
from ctcnet.detect.detection import DetectConfig
from ctcnet.detect.pixel_size import pixel_size_option
from ctcnet.errors import InputError, check_whole_number
from ctcnet.io.panel import Panel
from ctcnet.nn.calls import (
    BALANCED_PRIOR,
    CARTRIDGE_PRIOR,
    DecisionRule,
    prior_rule,
)
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # annotations only: pandas and the summary stay out of this import
    import numpy as np
    import pandas as pd

    from ctcnet.inference.summary import CropRunSummary, RunSummary


class RunReport(Protocol):
    """What draws a run's report (``ctcnet.report.run_report`` is one): the gallery pages from the
    journaled crops, then ``index.html`` from the summary once its timings are final; for a
    crop folder, a page of its calls with their crops."""

    def write_gallery(self, out_dir: Path, events: pd.DataFrame, gallery: dict, panel: Panel,
                      spec: ModelSpec, limit: int, explain=None, frame_shape=None) -> dict:
        """Write the gallery pages of ``events`` from the journaled crops (``frame_shape``:
        the frames' (height, width)); returns what the summary records of them."""

    def write_html(self, out_dir: Path, summary: RunSummary) -> None:
        """Write ``index.html`` from the finished summary."""

    def write_crop_set_page(self, out_dir: Path, table: pd.DataFrame, crops: np.ndarray,
                            spec: ModelSpec, summary: CropRunSummary, limit: int) -> dict:
        """Write a crop folder's gallery and ``index.html``: every call with its crop."""


# Where the frame workers run (PredictOptions.frame_pool, ctcnet.inference.frame_workers).
FRAME_POOLS = ("auto", "threads", "processes")

@dataclass
class PredictOptions:
    """How a run behaves; the defaults suit a 2-core CPU and scale up on a GPU node.

    Attributes
    ----------
    batch_size : int or None
        Crops per model call; None: the backend's (by device).
    workers : int or None
        Reader/detector threads; 0 = inline (clean per-stage timings); None = chosen by
        ``default_workers`` (2 on a 2-core CPU, up to 8 threads to feed a GPU).
    frame_pool : str
        Where the frame workers run (``ctcnet.inference.frame_workers``): "processes" (each
        its own interpreter; crops handed over in shared memory), "threads", or "auto"
        (processes for a cartridge of many frames on a machine of many cores; frames on a
        torch device: threads).
    prefetch : int
        Frames prepared ahead of the classifier (bounds memory: ~60 MB a frame of 1384 x 1036
        x 5 channels with its crops); at least one per frame thread.
    frame_device : str
        Where detection's whole-frame work and the cropping run: "auto" (on the model's GPU
        when it runs on one, else numpy), "numpy", or a torch device ("cuda", "cuda:1"; "cpu"
        runs the torch twin on the CPU, which tests use).
    detect : DetectConfig
        Detection's settings.
    overwrite : bool
        Discard an existing journal (an interrupted run's) instead of resuming it.
    quiet : bool
        No progress line; warnings are still logged (silence them through ``logging``).
    gallery_per_frame, gallery_limit : int
        Gallery crops kept per category a frame (so a runaway model cannot fill the disk) and
        in the final gallery.
    report : RunReport or None
        What draws the review gallery and index.html once the tables are written
        (``ctcnet.report.run_report``, as ``ctcnet predict`` passes it; handed in because the
        report is a layer above this one); None: no report.
    saliency : bool
        A per-channel saliency row under each gallery tile. Off by default: it loads torch and
        the checkpoint and runs the network backwards (on a GPU, cuDNN tunes kernels for every
        new batch shape), a fixed cost of seconds per cartridge before its report is done;
        the review server draws the same row on demand.
    report_overlap : bool
        Several cartridges (``predict_inputs``): draw each one's report in a background
        worker while the next one's frames run (``ctcnet.inference.report_overlap``); False:
        one after another. On a 2-core machine about the wall time of one after another
        (1.01x: the frame loop leaves a core little idle time to fill), for ~260 MB in the
        report process (docs/benchmarks.md, "Several cartridges"; ~570 MB more with
        saliency); on a machine with cores to spare the report leaves the next cartridge's
        path.
    edge_cut_as : str or None
        Class for events cut by the frame border (not intact, so never counted as CTCs); None
        keeps the model's call. The model's own call stays in the ``model_class`` column.
    compensate : bool or None
        Take CK's spillover into the other marker channels off every crop before the model
        (the guard and the gallery keep the crops as the scanner wrote them), measured on the
        scan's own events (``ctcnet.inference.spillover``; per cartridge from
        ``SPILLOVER_FRAMES`` frames spread over it, per sample_id on a crop set). None: as the
        model was trained (``spec.compensated_input``).
    prior : str or None
        The class prior the calls are made at (``ctcnet.nn.calls.prior_rule``): None = the
        input's default (cartridges: "cartridge", the model's fitted prevalence rule; crop
        sets: "balanced", the plain most probable class), or "cartridge", "balanced", or
        stated class frequencies "ctc=0.01,cluster=0.005".
    pixel_size : float, str or None
        Crop sets: um per pixel where panel.json does not state it, "auto" (estimated from the
        nuclei, ``ctcnet.detect.pixel_size``) or "fit" (a scale per crop, its cell brought to
        one size); None: panel.json's. Cartridges: not used.
    marker_calls : bool
        Crop sets: the markers take part in the call (``guard.crop_set_calls``: the model's
        marker fusion, or the marker rule; a CD45+ event is never a CTC); False: the
        network's call alone. Cartridges: not used (there the markers flag events for
        review).
    refresh_review : callable or None
        Called with a cartridge's output folder once predict has released it: brings the
        review counts and sign-off of review.csv and signoff.json back into the summary.json
        and index.html predict rewrote (``ctcnet.review_server.refresh.refresh_reviewed``, as
        ``ctcnet predict`` passes it; a layer above this one). None: the review server's next
        start does.
    on_frame_done : callable or None
        Test hook: called with each journaled frame id (e.g. to interrupt a run
        deterministically).
    """

    batch_size: int | None = None
    workers: int | None = None
    frame_pool: str = "auto"
    prefetch: int = 2
    frame_device: str = "auto"
    detect: DetectConfig = field(default_factory=DetectConfig)
    overwrite: bool = False
    quiet: bool = False
    gallery_per_frame: int = 32
    gallery_limit: int = 200
    report: RunReport | None = None
    saliency: bool = False
    report_overlap: bool = True
    edge_cut_as: str | None = "debris"
    compensate: bool | None = None
    prior: str | None = None
    pixel_size: float | str | None = None
    marker_calls: bool = True
    refresh_review: Callable[[Path], None] | None = None
    on_frame_done: Callable[[str], None] | None = None

    def __post_init__(self):
        for name, least, may_be_none in (("batch_size", 1, True), ("workers", 0, True),
                                         ("prefetch", 1, False),
                                         ("gallery_per_frame", 0, False),
                                         ("gallery_limit", 0, False)):
            check_whole_number(getattr(self, name), least, f"PredictOptions.{name}",
                               may_be_none)
        # A string where a switch belongs ("no") is true, and a class name typed otherwise
        # than the model's turned the border rule off: each changed counts unsaid.
        for name, kinds, what in (("compensate", (bool, type(None)), "True, False or None"),
                                  ("marker_calls", (bool,), "True or False"),
                                  ("edge_cut_as", (str, type(None)), "a class name or None")):
            if not isinstance(getattr(self, name), kinds):
                raise InputError(f"PredictOptions.{name} is {what}, got "
                                 f"{getattr(self, name)!r}")
        if self.pixel_size is not None:  # (an impossible 50 um went unsaid on a cartridge)
            try:
                pixel_size_option(self.pixel_size)
            except ValueError as err:
                raise InputError(f"PredictOptions.pixel_size: {err}") from None
        if self.frame_pool not in FRAME_POOLS:
            raise InputError(f"PredictOptions.frame_pool is one of {', '.join(FRAME_POOLS)}, "
                             f"got {self.frame_pool!r}")
        # What draws the report, or is called back: refused here, not once a whole cartridge
        # has run ("html" or True failed at its report, the sample left without a summary).
        if self.report is False:  # (no report, as scripts and verification write it)
            self.report = None
        lacking = [m for m in ("write_gallery", "write_html")
                   if not callable(getattr(self.report, m, None))]
        if self.report is not None and lacking:
            raise InputError(f"PredictOptions.report is a RunReport (ctcnet.report.run_report) "
                             f"or None (or False), got {self.report!r} (without "
                             f"{', '.join(lacking)})")
        for name in ("refresh_review", "on_frame_done"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise InputError(f"PredictOptions.{name} is a function or None, got "
                                 f"{getattr(self, name)!r}")


def as_options(options) -> PredictOptions:
    """``options`` as :class:`PredictOptions`: None is the defaults, a dict its fields (a
    script's ``{"report": None}``); anything else, or a field no option has, is refused by
    name (an AttributeError deep in the run before)."""
    import dataclasses

    if options is None:
        return PredictOptions()
    if isinstance(options, PredictOptions):
        return options
    fields = [f.name for f in dataclasses.fields(PredictOptions)]
    if isinstance(options, dict):
        unknown = sorted(str(k) for k in options if k not in fields)
        if unknown:
            raise InputError(f"options: {', '.join(unknown)} is no field of PredictOptions "
                             f"({', '.join(fields)})")
        return PredictOptions(**options)
    raise InputError(f"options must be a PredictOptions (or a dict of its fields), not "
                     f"{type(options).__name__}")


def spec_at_prior(spec: ModelSpec, prior: str | None, default: str) -> tuple[ModelSpec, str]:
    """The model's spec with the decision rule of ``prior`` (``PredictOptions.prior``; None:
    ``default``, the input's own), and the prior's name for summary.json."""
    rule, name = prior_rule(prior, spec.class_names, spec.decision, default)
    return (spec if rule == spec.decision else spec.replace(decision=rule)), name


def say_if_no_cartridge_rule(spec: ModelSpec, prior: str | None) -> bool:
    """Warn where cartridges are called at ``prior`` (None: the cartridge's own) by a model
    without a decision rule for them, whose calls are then its training prior's (as
    :func:`spec_at_prior` names them: ``balanced``); returns whether it warned."""
    if prior not in (None, CARTRIDGE_PRIOR) or \
            spec_at_prior(spec, prior, CARTRIDGE_PRIOR)[1] != BALANCED_PRIOR:
        return False
    log.warning("the model has no decision rule for cartridges (scripts/fit_decision.py fits "
                "one): its calls are made at its training prior (summary.json: prior "
                "balanced), at which rare classes such as ctc are called far more often than "
                "at a cartridge's prevalence; --prior states one")
    return True


def say_if_a_model_of_exports_reads_scans(spec: ModelSpec) -> bool:
    """Warn where a model trained on 8-bit composite exports alone (``reads_exports``) is given
    cartridges: a scan's 16-bit counts at its own pixel size are not what it learnt, and its
    calls there are not measured; returns whether it warned."""
    if not spec.reads_exports:
        return False
    log.warning("the model reads 8-bit composite exports only (its card: trained and measured "
                "on exported crops, never on scans): its calls on a cartridge are not "
                "measured; use a model for scans (ctcnet-default, ctcnet-core3)")
    return True


def unguarded_classes(spec: ModelSpec) -> list[str]:
    """The classes the model reports that the marker guard checks as neither a CTC nor a
    cluster (the taxonomy's ``guard_kind``: a lab's ``ctc_emt`` that includes ``ctc_dim``, or
    says ``"checked_as": "ctc"``, is checked as a ``ctc``): counted per 7.5 mL, listed on the
    review page, their doubt queued by the review band and their calls held when unlike the
    training data (``unusual``), but their markers (CD45, DNA in the CK area, focus) not
    checked: a CD45+ cell called so is counted."""
    return spec.taxonomy.unchecked_reported()


def say_what_other_reported_classes_lack(spec: ModelSpec) -> list[str]:
    """Warn of the model's :func:`unguarded_classes`; returns them."""
    others = unguarded_classes(spec)
    if others:
        log.warning("the model reports %s, which the marker guard checks as neither a CTC nor "
                    "a cluster: counted per 7.5 mL, listed on the review page as reported "
                    "calls and queued where the network doubts them, but the marker guard "
                    "does not check their markers (a CD45+ cell called so is counted): review "
                    "every such call before reporting it. A class that is a kind of CTC (an "
                    "EMT or CK-dim CTC) says \"checked_as\": \"ctc\" (or \"cluster\") in its "
                    "taxonomy to be checked as one, in a model trained with it; not a class of "
                    "another kind: a tdEV, which has no nucleus, checked as a CTC would have "
                    "every call held",
                    ", ".join(others))
    if unreported := spec.taxonomy.unreported_note():
        log.warning("%s", unreported)
    return others


# Where a model keeps its crop sets' review band (``spec.metrics``): fitted on held-out crops
# read as ``ctcnet predict`` reads a crop folder (scripts/fit_crop_review_band.py).
CROP_REVIEW_BAND = "crop_review_band"


def spec_for_crop_set(spec: ModelSpec, prior: str | None) -> tuple[ModelSpec, str]:
    """:func:`spec_at_prior` for a crop set (default: balanced). At the balanced prior the
    rule carries the model's crop-set review band (``spec.metrics["crop_review_band"]``), if
    it has one: the band was fitted at that prior, and at no other."""
    spec, name = spec_at_prior(spec, prior, BALANCED_PRIOR)
    metrics = spec.metrics if isinstance(spec.metrics, dict) else {}
    record = metrics.get(CROP_REVIEW_BAND)
    if name == BALANCED_PRIOR and isinstance(record, dict) and record.get("band"):
        # A rule of no weights (the balanced calls) that carries the band.
        spec = spec.replace(decision=DecisionRule.prior_shift({}, {}).with_review_band(record))
    return spec, name


def spec_read_as(spec: ModelSpec, data: Panel, wider_only: bool = False) -> ModelSpec:
    """``spec`` with the value ranges the data's panel states (:meth:`Panel.with_value_ranges_of`):
    where the guard reads its pixels as saturated, in the data read, not in the data the
    model was trained on (counts stored x16 in 16-bit files, stated 0-65535, are not
    saturated at 4095); ``spec`` itself where they are its own, as for most data (the
    guard's measurements keep what they made of its panel, and a copy would make them
    again). ``wider_only`` (crop sets) takes only ranges above the model's: an 8-bit
    composite's 0-255 are display levels, a stretch's top, not a camera's saturation."""
    panel = spec.panel.with_value_ranges_of(data, wider_only)
    if [c.value_range for c in panel.channels] == [c.value_range for c in spec.panel.channels]:
        return spec
    return spec.replace(panel=panel)


def edge_cut_class(spec: ModelSpec, options: PredictOptions) -> str | None:
    """The class edge-cut events are filed under, if the option is on and the class exists;
    a class the model lacks is refused, but for the default's (a lab's class set without
    ``debris`` keeps the model's call on a cut cell)."""
    name = options.edge_cut_as
    if name and name not in spec.class_names and name != PredictOptions.edge_cut_as:
        raise InputError(f"PredictOptions.edge_cut_as {name!r} is none of the model's classes "
                         f"({', '.join(spec.class_names)}) nor None")
    return name if name and name in spec.class_names else None


def check_cartridge_options(spec: ModelSpec, options: PredictOptions) -> None:
    """Options a cartridge cannot take, before its folder is touched: an edge-cut class the
    model lacks (refused: :func:`edge_cut_class`); a crop folder's ``pixel_size`` (said once a
    process: a cartridge is read at its panel.json's, and a size given to correct a wrong
    panel.json went unused without a word)."""
    edge_cut_class(spec, options)
    if options.pixel_size is not None and first_time("pixel size unused on cartridges"):
        log.warning("--pixel-size (PredictOptions.pixel_size) is for crop folders; a "
                    "cartridge's pixel size is its panel.json's (each cartridge read at its "
                    "own; what its nuclei read at that size, and the size they suggest where "
                    "they read far out of the band nuclei have: summary.json metadata_check, "
                    "nucleus_median_um)")
