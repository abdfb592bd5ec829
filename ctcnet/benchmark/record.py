"""One benchmark run: the sections asked for, measured one after another, and the record
(``benchmarks.json``) and its table (``benchmarks.md``) rewritten after each, so a run stopped
part-way keeps what it measured. A run of some sections keeps the others from the record it
replaces, each labelled with the run it came from; a section it measures again keeps its
earlier record until the new one is whole (the new one's part beside it, ``unfinished``)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ctcnet.benchmark.cartridges import bench_cartridges
from ctcnet.benchmark.classification import bench_classification
from ctcnet.benchmark.common import BenchSettings, load_average, machine_info
from ctcnet.benchmark.render import command_arguments, render_markdown
from ctcnet.benchmark.training import bench_training
from ctcnet.io.atomic import atomic_write_text

SECTIONS = {"classify": "classification", "cartridge": "cartridges", "train": "training"}
# Sections scripts measure and record (record_script_section), kept by every run.
SCRIPT_SECTIONS = ("report_overlap", "student", "crop_sets")

log = logging.getLogger(__name__)


def earlier_sections(out_dir: Path, sections, quick: bool,
                     model_sha256: str | None = None, say: bool = True) -> tuple[dict, dict]:
    """The sections of the record in ``out_dir`` that this run does not measure (and when they
    were measured, on which machine, of which model; the scripts' sections always); none
    from a quick record into a full one or the other way round (said), and none of another
    model than ``model_sha256`` (a retrained network at the same path read as this one's
    figures), nor of a record that kept no digest (its figures of a network retrained since
    were shown as this one's); each kept one named with the code that measured it. ``say``:
    warn of the sections not kept."""
    try:
        old = json.loads((out_dir / "benchmarks.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    if not isinstance(old, dict):  # no record: replaced, as one unreadable
        return {}, {}
    scripts = {key: old[key] for key in SCRIPT_SECTIONS if old.get(key)}  # dated in themselves
    if bool(quick) != bool(old.get("quick")):  # tiny inputs' figures beside real ones: never
        dropped = [key for name, key in SECTIONS.items() if name not in sections and old.get(key)]
        if dropped and say:
            log.warning("%s: the earlier record's %s were measured %s: not kept beside this "
                        "run's", out_dir / "benchmarks.json", ", ".join(dropped),
                        "in full" if quick else "with --quick (tiny inputs)")
        return scripts, {}
    if model_sha256 and old.get("model_sha256") != model_sha256:
        dropped = [key for name, key in SECTIONS.items() if name not in sections and old.get(key)]
        if dropped and say:
            log.warning("%s: the earlier record's %s were measured with %s (%s): not kept "
                        "beside this run's figures", out_dir / "benchmarks.json",
                        ", ".join(dropped), "a model whose digest it did not record"
                        if old.get("model_sha256") is None else "another model",
                        Path(str(old.get("model"))).name)
        return scripts, {}
    # Where the earlier run was made: a kept section may be of another machine than this run.
    machine = old.get("machine") or {}
    cpu = machine.get("cpu") or "an unrecorded CPU"
    if machine.get("cpu_model"):  # two EPYC generations read alike by name alone
        cpu += f" ({machine['cpu_model']})"
    quick = " --quick" if old.get("quick") else ""
    made = f"{old.get('created')} (`ctcnet benchmark{quick}{command_arguments(old)}`) on " \
        f"{cpu}, {machine.get('cores')} cores" + (
        f", model {Path(str(old['model'])).name}" + ("" if old.get("model_sha256") else
                                                    " (its digest not recorded)")
        if old.get("model") else "") + (f", {old['software']}" if old.get("software") else "")
    kept, when = {}, {}
    for name, key in SECTIONS.items():
        if name not in sections and old.get(key):
            kept[key] = old[key]
            when[key] = (old.get("kept_sections") or {}).get(key, made)
    return {**kept, **scripts}, when


def record_script_section(out_dir: str | Path, key: str, section: dict) -> None:
    """Put a section a script measured (``report_overlap``, ``student``, ``crop_sets``) into
    ``out_dir/benchmarks.json``, which :func:`run_benchmark` keeps, and rewrite its
    ``benchmarks.md``."""
    out_dir = Path(out_dir)
    whole = json.loads((out_dir / "benchmarks.json").read_text(encoding="utf-8"))
    whole[key] = section
    atomic_write_text(out_dir / "benchmarks.json", json.dumps(whole, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "benchmarks.md", render_markdown(whole))


def run_benchmark(model_path: Path, out_dir: Path, settings: BenchSettings,
                  workdir: Path | None = None, sections=("classify", "cartridge", "train"),
                  log: Callable[[str], None] = log.info) -> dict:
    """Measure ``sections`` of the model at ``model_path``; write the record to ``out_dir``."""
    from ctcnet.io.digests import file_sha256
    from ctcnet.nn.classifier import load_model  # torch

    _, spec = load_model(model_path)
    out_dir = Path(out_dir)
    model_sha256 = file_sha256(model_path)
    kept, when = earlier_sections(out_dir, sections, settings.quick, model_sha256)
    from ctcnet.core.provenance import software_record, software_text

    # The build measured and the model, named in the record and its page (one version is
    # every build of a release).
    record = {"created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "machine": machine_info(), "software": software_text(software_record()),
              "load_average": load_average(), "model": str(model_path),
              "model_sha256": model_sha256, "quick": settings.quick,
              "sections": list(sections), "settings": dict(vars(settings)), **kept}
    if when:
        record["kept_sections"] = when
    # The earlier record of each section measured again stays until this run's is whole: a
    # run stopped part-way (after its 10-frame cartridge) wiped an hour's 175- and 1,000-frame
    # figures. Meanwhile this run's part stands beside it, under "unfinished".
    again, again_when = earlier_sections(
        out_dir, [name for name in SECTIONS if name not in sections], settings.quick,
        model_sha256, say=False)
    again = {key: again[key] for key in again_when if key in again}
    if again:
        log("benchmark: the earlier record's " + ", ".join(again) + " stay in "
            f"{out_dir / 'benchmarks.json'} until this run has measured them whole")
        record.update(again)
        record.setdefault("kept_sections", {}).update(again_when)
    own_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ctcnet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def save(whole: bool = True, **update) -> None:
        # Written after every section and cartridge size: a run stopped part-way (a time
        # limit, Ctrl-C) leaves what it measured, marked incomplete (a section's part beside
        # its earlier whole record, where there is one).
        for key, section in update.items():
            if whole or key not in again:
                record[key] = section
                (record.get("kept_sections") or {}).pop(key, None)
                again.pop(key, None)
                (record.get("unfinished") or {}).pop(key, None)
            else:
                record.setdefault("unfinished", {})[key] = section
        for empty in ("kept_sections", "unfinished"):
            if empty in record and not record[empty]:
                del record[empty]
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "benchmarks.json",
                          json.dumps(record, indent=2, default=str) + "\n")
        atomic_write_text(out_dir / "benchmarks.md", render_markdown(record))

    record["complete"] = False
    try:
        if "classify" in sections:
            log("benchmark: classification throughput")
            save(classification=bench_classification(model_path, settings, workdir))
        if "cartridge" in sections:
            log("benchmark: whole cartridges")
            save(cartridges=bench_cartridges(
                model_path, settings, workdir,
                on_progress=lambda part: save(whole=False, cartridges=part)))
        if "train" in sections:
            log("benchmark: training throughput")
            training = bench_training(settings, spec)
            card = Path(model_path).with_suffix(".json")
            if card.exists():
                training["shipped_model"] = json.loads(
                    card.read_text(encoding="utf-8")).get("training")
            record["training"] = training  # (saved whole with the rest, below)
            (record.get("kept_sections") or {}).pop("training", None)
        record["complete"] = True
        save()
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return record
