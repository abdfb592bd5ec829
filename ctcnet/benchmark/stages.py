"""The quick stage check: a small simulated cartridge through ``ctcnet predict``, each stage's
time per event as a multiple of the model's own time per crop measured in the same process,
compared with the multiples recorded in ``docs/benchmarks-stages.json``. A stage whose multiple
grows past ``tolerance`` times its recorded one fails the check, so a change that makes a stage
slower is caught when it lands, on any machine: the model floor moves with the machine and its
load as the stages do, and their ratio much less.

Against the noise of a small shared machine: predict runs with its stages inline
(``--workers 0``: no stage waits for a core another stage holds), the first run is a warm-up
(imports, caches), each later run is followed by a timing of the model alone so a change of
load hits both, and each stage's fastest run is compared with the model's fastest: other work
on the machine only ever adds time, so the fastest of several runs is the one it disturbed
least (medians moved by half on two cores shared with a load of ten). A stage cheaper than a
quarter of the model is compared as if it cost ``MIN_RATIO`` of it: reading a small cartridge
from the page cache doubled against the model under such a load, and a stage that small is not
where the time goes. A stage over its allowance is measured once more and fails only when it
is over both times.

Beside the stages stand two ratios that need no model floor: the work around the network
(read, detect, crop, guard and write, per event) over the network's own (classify), and
predict's time per event over the classic gate's on the same cartridge in this process
(:mod:`ctcnet.evaluation.classic_gate`, timed after ``peer_runs`` of the runs: about a second
of CI time). Both are held to their records as the stages are; a record made before them has
none, and nothing is checked for them then.

``scripts/stage_check.py`` runs it (CI); ``--record`` rewrites the recorded multiples.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ctcnet.benchmark.common import STAGES, cpu_model, cpu_name, load_average
from ctcnet.benchmark.peer import around_network
from ctcnet.inference.resources import cpu_cores
from ctcnet.io.atomic import atomic_write_text
from ctcnet.nn.crop_input import synthetic_crops

TOLERANCE = 1.5
MIN_RATIO = 0.25

log = logging.getLogger(__name__)


@dataclass
class StageCheckSettings:
    """The small cartridge and how often it runs (~30 s on two shared cores)."""

    frames: int = 4
    frame_shape: tuple[int, int] = (520, 692)
    events_per_frame: int = 75
    runs: int = 5           # timed runs after the warm-up
    seed: int = 7
    peer_runs: int = 3      # of the timed runs, those the classic gate is timed after


def compare_ratios(measured: dict[str, float], baseline: dict[str, float],
                   tolerance: float = TOLERANCE, min_ratio: float = MIN_RATIO) -> list[str]:
    """What fails: each recorded stage whose measured multiple of the model floor is over
    ``tolerance`` times its recorded one (or ``min_ratio``, whichever is larger); a recorded
    stage that was not measured fails too. Empty: the check passes."""
    failures = []
    for stage, recorded in baseline.items():
        value = measured.get(stage)
        if value is None:
            failures.append(f"{stage}: not measured")
            continue
        allowed = tolerance * max(recorded, min_ratio)
        if value > allowed:
            what = f"({PEER_RATIOS[stage]})" if stage in PEER_RATIOS else \
                "the model floor per event"
            failures.append(f"{stage}: {value:.3f}x {what}, over the {allowed:.3f}x allowed "
                            f"({tolerance}x the recorded {recorded:.3f}x)")
    return failures


def simulate_small_cartridge(root: Path, settings: StageCheckSettings) -> Path:
    """The check's cartridge (CellSearch pixel size, the default panel)."""
    # The simulator (scipy, pandas): only to make the check's input.
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(root, num_frames=settings.frames, frame_shape=settings.frame_shape,
                       seed=settings.seed, events_per_frame=settings.events_per_frame)
    return root


def measure_ratios(model: Path, settings: StageCheckSettings, workdir: Path) -> dict:
    """Run the small cartridge through predict ``settings.runs`` times after a warm-up, each
    run followed by the model alone on as many crops; the fastest per event and the ratios."""
    from ctcnet.evaluation.classic_gate import gate_cartridge
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.report import run_report

    cart = simulate_small_cartridge(workdir / "cartridge", settings)
    engine = load_backend(model, "onnx", device="cpu")
    options = PredictOptions(quiet=True, overwrite=True, report=run_report, workers=0)
    stage_runs: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    model_runs: list[float] = []
    peer_runs: list[float] = []
    around_runs: list[float] = []  # each run's work around the network (its own run's)
    crops = events = None
    for run in range(settings.runs + 1):
        summary = predict_cartridge(cart, engine, workdir / "out", options)
        events = summary.events
        if crops is None:
            crops = synthetic_crops(engine.spec, max(events, 1)).astype(np.float32)
        t0 = time.perf_counter()
        engine.predict_proba(crops)
        model_s = time.perf_counter() - t0
        # The gate after the warm-up (its imports) and the last timed runs: a few runs give
        # its fastest, and each adds about a quarter of a second on two cores.
        if settings.peer_runs and (run == 0 or run > settings.runs - settings.peer_runs):
            peer_s = gate_cartridge(cart, workers=1).seconds
            if run:
                peer_runs.append(peer_s / max(events, 1))
        if run == 0:  # the warm-up: first imports, page cache, the explainer's torch
            continue
        model_runs.append(model_s / len(crops))
        for stage in stage_runs:
            stage_runs[stage].append(summary.timings_s.get(stage, 0.0) / max(events, 1))
        around_runs.append(around_network(summary.timings_s) / max(events, 1))
    model_per_event = min(model_runs)
    per_event = {s: min(v) for s, v in stage_runs.items()}
    ratios = {s: round(v / model_per_event, 4) for s, v in per_event.items()}
    ratios.update(peer_check_ratios(per_event, min(around_runs),
                                    min(peer_runs) if peer_runs else None))
    per_event_ms = {s: round(1e3 * v, 4) for s, v in per_event.items()}
    if peer_runs:
        per_event_ms["peer"] = round(1e3 * min(peer_runs), 4)
    return {"events": events, "model_per_event_ms": round(1e3 * model_per_event, 4),
            "per_event_ms": per_event_ms, "ratios": ratios,
            "batch_size": engine.batch_size, "settings": asdict(settings),
            "machine": {"cpu": cpu_name(), "cpu_model": cpu_model(), "cores": cpu_cores()},
            "load_average": load_average()}


# The ratios beside the stages' (not multiples of the model floor): what each divides.
PEER_RATIOS = {"around_network_x_network": "all but classify and report, over classify",
               "total_x_peer": "predict's total over the classic gate's, per event"}


def peer_check_ratios(per_event: dict[str, float], around: float | None,
                      peer_per_event: float | None) -> dict:
    """The work around the network per event (``around``: the fastest run's,
    :func:`ctcnet.benchmark.peer.around_network`) over the network's (its fastest run), and
    predict's total over the classic gate's (each its fastest run), per event."""
    out = {}
    if per_event.get("classify") and around is not None:
        out["around_network_x_network"] = round(around / per_event["classify"], 4)
    if peer_per_event:
        out["total_x_peer"] = round(per_event["total"] / peer_per_event, 4)
    return out


def report_lines(result: dict, baseline: dict | None) -> list[str]:
    """The measured multiples beside the recorded ones, one line a stage."""
    recorded = recorded_ratios(baseline, result.get("machine") or {}) if baseline else {}
    lines = [f"stage check: {result['events']} events, model floor "
             f"{result['model_per_event_ms']:.3f} ms per crop (batch {result['batch_size']}), "
             f"load average {result['load_average']}",
             f"{'stage':<9}{'ms/event':>10}{'x model':>9}{'recorded':>10}"]
    earlier = set(result.get("earlier_attempt", ()))
    for stage, ratio in result["ratios"].items():
        if stage in PEER_RATIOS:
            continue
        old = recorded.get(stage)
        lines.append(f"{stage:<9}{result['per_event_ms'][stage]:>10.3f}{ratio:>9.3f}"
                     + (f"{old:>10.3f}" if old is not None else f"{'-':>10}")
                     + (" *" if stage in earlier else ""))
    if earlier & set(result["ratios"]) - set(PEER_RATIOS):
        lines.append("* an earlier attempt's measurement, lower: its ms/event against that "
                     "attempt's own model floor, not the one above")
    if "peer" in result["per_event_ms"]:
        lines.append(f"classic gate {result['per_event_ms']['peer']:.3f} ms/event")
    for name, what in PEER_RATIOS.items():
        if name in result["ratios"]:
            old = recorded.get(name)
            lines.append(f"{name} {result['ratios'][name]:.3f} ({what}); recorded "
                         + (f"{old:.3f}" if old is not None else "-"))
    return lines


def with_machine(baseline: dict, result: dict) -> dict:
    """A record of ``result``'s machine beside those of ``baseline`` (``machines``; one of the
    same CPU, name and model, is replaced), its top-level multiples each stage's largest (its
    top-level times per event and model floor stay the machine's just measured: they do not
    divide into those multiples). Machines differ in how numpy's speed compares with
    onnxruntime's: the code of 27 Nov measured the guard at 0.71x the model on an AMD EPYC and
    0.98x on an Intel Xeon of this project's 2-core kind, most stages 1.3-1.7x apart
    (classify and report about 1.1x), and cropping at 0.47x and 0.75-0.81x on two AMD EPYCs,
    so one machine's record fails the other's unchanged code."""
    machines = baseline.get("machines") or [
        {k: baseline[k] for k in ("machine", "measured", "ratios") if k in baseline}]
    machines = [m for m in machines if _cpu(m) != _cpu(result)] + \
        [{k: result[k] for k in ("machine", "measured", "ratios") if k in result}]
    merged = dict(result)
    merged["ratios"] = {stage: max(m["ratios"].get(stage, 0.0) for m in machines)
                        for stage in result["ratios"]}
    merged["machines"] = machines
    return merged


def with_new_ratios(baseline: dict, result: dict) -> dict:
    """``baseline`` with the ratios ``result`` measured that its record of ``result``'s CPU
    lacks (a ratio added to the check) added to that record and to the top-level multiples,
    every recorded ratio left as it was: a new ratio is recorded without moving the stages'
    record. A CPU with no record of its own adds them to the top level only, which every
    CPU not recorded is held to."""
    merged = json.loads(json.dumps(baseline))
    machines = merged.get("machines") or []
    own = next((m for m in machines if _cpu(m) == _cpu(result)), None)
    if own is None:  # a record of one machine, or none of this CPU: the top level
        own = merged
    new = {k: v for k, v in result["ratios"].items() if k not in own["ratios"]}
    own["ratios"].update(new)
    for key in new:
        merged["ratios"][key] = max(m["ratios"][key] for m in [merged, *machines]
                                    if key in m["ratios"])
    return merged


def recorded_ratios(baseline: dict, machine: dict) -> dict:
    """The multiples a ``machine`` (a measurement's ``machine``: CPU name and model) is held
    to: the record of its own CPU when there is one (a slower stage is caught on either
    machine); else each stage's largest over the records of its CPU name (one name covers
    generations that compare numpy with onnxruntime differently, and a record taken before
    models were told apart is older code's); else the largest any machine measured."""
    records = baseline.get("machines", [])
    own = _cpu({"machine": machine})
    for record in records:
        if _cpu(record) == own:
            return record["ratios"]
    same_name = [record["ratios"] for record in records if _cpu(record)[0] == own[0]]
    if same_name:
        stages = {stage for ratios in same_name for stage in ratios}
        return {stage: max(r[stage] for r in same_name if stage in r) for stage in stages}
    return baseline["ratios"]


def _cpu(record: dict) -> tuple[str | None, str | None]:
    """The CPU a measurement or record was made on: its name and model (None where it does
    not say)."""
    machine = record.get("machine") or {}
    return machine.get("cpu"), machine.get("cpu_model")


def _asked(recorded: dict[str, float], settings: StageCheckSettings) -> dict[str, float]:
    """The recorded multiples a check with ``settings`` measures: without peer runs the
    classic gate is not timed, so its ratio is not checked (it failed as "not measured")."""
    if settings.peer_runs or "total_x_peer" not in recorded:
        return recorded
    log.info("stage check: total_x_peer not checked (no peer runs asked)")
    return {k: v for k, v in recorded.items() if k != "total_x_peer"}


def run_check(model: Path, baseline_path: Path, settings: StageCheckSettings | None = None,
              record: bool = False, tolerance: float = TOLERANCE, attempts: int = 2,
              add_machine: bool = False, add_ratios: bool = False) -> int:
    """Measure, compare with the recorded multiples (or, with ``record``, write them); 0 when
    every stage is within ``tolerance`` of its record (:func:`recorded_ratios`), 1 when not.
    ``add_machine`` (with ``record``): keep the machines of other CPUs recorded before
    (:func:`with_machine`); ``add_ratios`` (with ``record``): add only the ratios the record
    of this machine lacks (:func:`with_new_ratios`).

    A stage over its allowance is measured again (up to ``attempts`` measurements in all) and
    fails only if it is over every time: a slower stage stays slower, while a burst of other
    work on a shared machine seldom hits the same stage twice. Each stage keeps its lowest
    multiple over the attempts."""
    settings = settings or StageCheckSettings()
    baseline = json.loads(baseline_path.read_text(encoding="utf-8")) \
        if baseline_path.exists() else None
    if not record and baseline is None:
        log.error("stage check: no record at %s (make one with --record)", baseline_path)
        return 1
    started = time.perf_counter()
    result, failures = None, []
    for attempt in range(1 if record else max(1, attempts)):
        if attempt:
            log.info("stage check: over the allowance (%s); measuring again",
                     ", ".join(f.split(":")[0] for f in failures))
        with tempfile.TemporaryDirectory(prefix="ctcnet-stage-check-") as tmp:
            latest = measure_ratios(model, settings, Path(tmp))
        if result is not None:  # each stage's least disturbed measurement
            # The stages kept from an earlier attempt, marked: their ms/event are at that
            # attempt's model floor.
            earlier = set()
            for stage, ratio in result["ratios"].items():
                if latest["ratios"].get(stage, ratio) > ratio:
                    latest["ratios"][stage] = ratio
                    earlier.add(stage)
                    if stage in result["per_event_ms"]:  # the peer ratios have none
                        latest["per_event_ms"][stage] = result["per_event_ms"][stage]
            latest["earlier_attempt"] = sorted(earlier)
        result = latest
        for line in report_lines(result, baseline):
            log.info("%s", line)
        failures = [] if record else compare_ratios(
            result["ratios"], _asked(recorded_ratios(baseline, result.get("machine") or {}),
                                     settings), tolerance)
        if not failures:
            break
    result["seconds"] = round(time.perf_counter() - started, 1)
    if record:
        result["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if add_ratios and baseline is not None:
            result = with_new_ratios(baseline, result)
        elif add_machine and baseline is not None:
            result = with_machine(baseline, result)
        atomic_write_text(baseline_path, json.dumps(result, indent=2) + "\n")
        log.info("stage check: recorded %s in %.0f s", baseline_path, result["seconds"])
        return 0
    for failure in failures:
        log.error("stage check: %s", failure)
    log.info("stage check: %s in %.0f s", "failed" if failures else "passed", result["seconds"])
    return 1 if failures else 0
