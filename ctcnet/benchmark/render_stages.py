"""The cartridge section's tables past its runs (for ``docs/benchmarks.md``): each stage
against its floor, the classic gate beside predict, and where the run stands against the pace
it aims for."""

from __future__ import annotations

from ctcnet.benchmark.common import STAGES

# predict's wall on a 175-frame cartridge, the report included, over the model floor measured in
# the same run: the pace aimed for on a CPU (the one figure both of the page's lines state).
WALL_AIM = 1.4


def median_text(s: dict, digits: int = 0) -> str:
    """A measurement's median with its range over the runs: ``12.3 (11.9-13.0)``."""
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def render_peer(k: dict) -> list[str]:
    """The classic gate and predict in 1 and 2 processes beside predict, and the ratios the
    record keeps (``ctcnet.benchmark.peer``), for each cartridge size that has them."""
    lines = []
    for r in k["rows"]:
        peer, procs, q = r.get("peer"), r.get("predict_processes"), r.get("peer_ratios") or {}
        if not peer:
            continue
        lines += ["", f"### Beside a classic gate: {r['frames']} frames", "",
                  "The classic gate a lab writes (`ctcnet.evaluation.classic_gate`: "
                  "scikit-image; per channel a background and noise, a 3-sigma threshold on "
                  "DAPI + CK, a watershed, per-object means by one bincount, CK+ DAPI+ CD45- at "
                  "3 noise sigmas) on the same cartridge, in 1 and 2 worker processes, each "
                  "run its own process; wall from opening the cartridge to the last frame "
                  "gated, workers' start included. `ctcnet predict --processes N` shares a "
                  "job's cartridges, not one cartridge's frames: it runs the same frames split "
                  "into two cartridges, wall of the whole command (start-up, model load and "
                  "reports included).", "",
                  "| run | processes | wall s | peak RSS MB | objects | CTCs |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| ctcnet predict (defaults) | 1 | {median_text(r['total_s'], 1)} | "
                  f"{r['peak_rss_mb']:,.0f} | {r['events']:,} | - |"]
        for n, g in peer["by_workers"].items():
            worker = g.get("worker_peak_rss_mb")
            memory = f"{g['peak_rss_mb']:,.0f}" + (
                f" + {n} x {worker:,.0f}" if worker and n != "1" else "")
            lines.append(f"| classic gate | {n} | {median_text(g['wall_s'], 1)} | {memory} | "
                         f"{g['objects']:,} | {g['ctcs']:,} |")
        for n, v in ((procs or {}).get("by_processes") or {}).items():
            lines.append(f"| ctcnet predict --processes {n}, {procs['cartridges']} "
                         f"cartridges | {n} | {median_text(v['wall_s'], 1)} | - | - | - |")
        lines += ["", "Ratios, with the aims for later work: predict's wall over "
                  f"the gate's with 2 workers {_x(q.get('predict_to_peer_2'))} (aim: 1.00x or "
                  f"less; with 1 worker {_x(q.get('predict_to_peer_1'))}); the work around the "
                  "network inline (`--workers 0`: the total less classify and the report), "
                  f"{_ms(q.get('around_network_ms_per_event'))} ms per event, "
                  f"{_x(q.get('around_network_to_network'))} the network's own time in the same "
                  f"run (aim: 0.60x) and {_x(q.get('around_network_to_model_floor'))} the "
                  f"model floor; the wall {_x(q.get('total_to_model'))} the model floor "
                  f"(aim, the report included, at 175 frames: {WALL_AIM:.2f}x); from 1 to 2 "
                  "processes the gate ran "
                  f"{_x(q.get('peer_scaling'))} as fast, predict (two cartridges) "
                  f"{_x(q.get('predict_processes_scaling'))}."]
        gpu = r.get("gpu")
        if gpu:
            best = gpu.get("best_processes") or {}
            lines += ["", f"On the GPU: the wall {_x(gpu.get('total_to_read_floor'))} the read "
                      f"floor; {gpu.get('cartridges_per_hour') or 0:,.0f} cartridges of "
                      f"{gpu['frames']} frames an hour in one run"
                      + (f", {best['cartridges_per_hour']:,.0f} with --processes "
                         f"{best['processes']} (start-up included)" if best else "") + "."]
    return lines


def _ms(v: float | None, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if v is not None else "-"


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v is not None else "-"


def render_stage_floors(k: dict) -> list[str]:
    """Each stage per event beside its floor, for every cartridge size whose record has them."""
    rows = [r for r in k["rows"] if r.get("stage_table")]
    if not rows:
        return []
    floor = k.get("model_floor") or {}
    best = floor.get("floor_crops_per_s") or (floor.get("best_crops_per_s") or {}).get("median")
    # Records made before the detect floor binned by block sums name none.
    binning = (k.get("frame_floors") or {}).get("detect_floor_binning", "reshape-mean")
    lines = ["", "### Each stage against its floor", "",
             "Milliseconds per event. `predict`: the stage's time in the run with the defaults "
             "(frame stages summed over the frame workers, so on two cores they include time "
             "spent waiting for a core); `inline`: with `--workers 0`, each stage's own time; "
             "`floor`: the least work the stage could do on the same frames, measured in this "
             "run (`ctcnet.benchmark.floors`: read = reading and decoding the frames alone; "
             f"detect = a {binning} binning to detection's grid and one Gaussian of the "
             "binned channels; crop = one numpy gather of the same windows; guard = one "
             "vectorised pass over every crop pixel; classify = the model alone at its best "
             "batch size"
             + (f", {best:,.0f} crops/s at batch "
                f"{floor.get('floor_batch') or floor.get('best_batch')}, its fastest run"
                if best else "")
             + "; write = pyarrow writing the run's events table once; the report has none, it "
             "belongs off the critical path). `x floor` and `x model floor` divide the inline "
             "time where it was measured, else predict's."]
    for r in rows:
        t = r["stage_table"]
        lines += ["", f"{r['frames']} frames ({r['events']:,} events), wall "
                  f"{r['total_s']['median']:.1f} s = "
                  f"{_x((r.get('ratios_to_floor') or {}).get('total_to_model'))} the model "
                  "floor:", "",
                  "| stage | predict ms/event | inline ms/event | floor ms/event | x floor | "
                  "x model floor |", "|---|---:|---:|---:|---:|---:|"]
        for stage in STAGES:
            if stage in t:
                v = t[stage]
                lines.append(f"| {stage} | {_ms(v['per_event_ms'])} | "
                             f"{_ms(v['inline_per_event_ms'])} | "
                             f"{_ms(v['floor_per_event_ms'])} | {_x(v['x_floor'])} | "
                             f"{_x(v['x_model_floor'])} |")
    ff = k.get("frame_floors")
    if ff:
        pe = ff["per_event_s"]
        lines += ["", f"The library's frame stages alone, one at a time on one core, on "
                  f"{ff['frames']} simulated frames ({ff['events']:,} events, "
                  f"{ff['scan_pixel_um']} um/px, {ff['window_px']} px windows), ms per event: "
                  f"detect {_ms(_k(pe, 'detect_alone'))}, crop {_ms(_k(pe, 'crop_alone'))}, "
                  f"guard {_ms(_k(pe, 'guard_alone'))}. Cropping the same events as a 0.45 "
                  f"um/px scan {_ms(_k(pe, 'crop_fine'))} ms against "
                  f"{_ms(_k(pe, 'crop_model_pixel'))} ms at 0.64 um/px: "
                  f"{_x(ff.get('crop_fine_to_model_pixel'))}."]
    lines += render_targets(k)
    lines += ["", "CI keeps the stages where they are: `scripts/stage_check.py` runs a small "
              "cartridge through predict and fails when a stage's time per event, as a multiple "
              "of the model's floor in the same run, grows past 1.5x its record in "
              "`docs/benchmarks-stages.json` (that of a machine of the same CPU, name and "
              "model, else the largest any record of its CPU name measured, else the "
              "largest any recorded machine measured: machines differ in how numpy's speed "
              "compares with onnxruntime's, so each is held to its own CPU's record, which the "
              "file keeps a machine each, dated). It holds two more ratios the same way: the "
              "work around the network over the network's own time (inline: the total less "
              "classify and the report, over classify), and predict's time per event over the "
              "classic "
              "gate's on the same cartridge in the same process."]
    return lines


def _k(per_event_s: dict, key: str) -> float | None:
    """Seconds per event as milliseconds."""
    v = per_event_s.get(key)
    return 1e3 * v if v is not None else None


def render_targets(k: dict) -> list[str]:
    """Where the run stands against the pace it aims for: the middle cartridge within
    ``WALL_AIM`` of the model's floor, peak RSS at most 1 GB and flat with the cartridge's
    size, every stage within 2x its floor, cropping at 0.45 um/px within 1.5x of 0.64 um/px."""
    rows = [r for r in k["rows"] if r.get("stage_table")]
    if not rows:
        return []
    middle = rows[len(rows) // 2]
    whole = (middle.get("ratios_to_floor") or {}).get("total_to_model")
    over = {s: v["x_floor"] for s, v in middle["stage_table"].items()
            if v.get("x_floor") is not None and v["x_floor"] > 2}
    within = [s for s, v in middle["stage_table"].items()
              if v.get("x_floor") is not None and v["x_floor"] <= 2]
    peak = max(r["peak_rss_mb"] for r in k["rows"])
    # The other configurations measured (--frame-pool processes, what auto picks on a machine
    # of 4 cores or more for a long cartridge): the aim holds for them too.
    others: dict[str, float] = {}
    for r in k["rows"]:  # (each configuration's largest, over the sizes it was measured at)
        for name, c in (r.get("configs") or {}).items():
            if c.get("peak_rss_mb"):
                others[name] = max(others.get(name, 0.0), c["peak_rss_mb"])
    most = max(others, key=others.get) if others else None
    flat = (k.get("flatness") or {}).get("peak_rss")
    fine = (k.get("frame_floors") or {}).get("crop_fine_to_model_pixel")
    parts = [f"{middle['frames']} frames at {_x(whole)} the model floor (aim: {WALL_AIM:.1f}x)",
             f"peak RSS at most {peak:,.0f} MB with the defaults"
             + (f" ({others[most]:,.0f} MB with {most})"
                if most and others[most] > peak else "") + " (aim: 1,000 MB)"
             + (f", {flat:.2f}x from the smallest to the largest cartridge" if flat else ""),
             "within 2x of their floors: " + (", ".join(within) or "none")
             + ("; over: " + ", ".join(f"{s} {v:.1f}x" for s, v in over.items())
                if over else ""),
             f"cropping at 0.45 um/px {_x(fine)} that at 0.64 um/px (aim: 1.5x)"]
    return ["", "Against the pace aimed for: " + "; ".join(parts) + "."]
