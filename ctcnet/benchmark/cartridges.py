"""Whole cartridges end to end: ``ctcnet predict`` on simulated cartridges of several sizes
(each run in its own process, so its peak memory is its own), beside the floors measured in the
same run: reading the frames alone, the model alone at its best batch size, and each frame
stage's floor (:mod:`ctcnet.benchmark.floors`). Every stage reads as seconds per event, as a
multiple of its floor and of the model's floor.

Large cartridges are built by hard-linking the frames of one simulated cartridge under new
positions: the pipeline reads, detects and classifies real frames, and the 1,000-frame case
costs no extra simulation or disk.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ctcnet.benchmark.common import STAGES, BenchSettings, load_average, stats
from ctcnet.benchmark.peer import bench_peer, bench_predict_processes, gpu_lines, peer_ratios
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.scan import open_cartridge, serpentine_position, write_cartridge_info


def simulate_base_cartridge(root: Path, frames: int, settings: BenchSettings, seed: int = 11
                            ) -> Path:
    """A simulated cartridge reused across runs (kept under the work folder)."""
    from ctcnet.simulate import simulate_cartridge  # scipy, pandas

    marker, stamp = root / "ground_truth.csv", root / "simulated_with.json"
    # A --workdir kept from a run of other settings (--quick's small frames) holds another
    # cartridge under the same name: drawn again, or its figures would be labelled these.
    asked = {"frames": frames, "frame_shape": list(settings.frame_shape), "seed": seed,
             "events_per_frame": settings.events_per_frame}
    try:
        same = marker.exists() and json.loads(stamp.read_text(encoding="utf-8")) == asked
    except (OSError, ValueError):
        same = False
    if not same:
        if root.exists():
            _own_or_refused(root, stamp.exists())
            _remove(root)
        # Stamped as the benchmark's before it is drawn: a run stopped while drawing it left
        # a folder the next one refused as nobody's.
        root.mkdir(parents=True)
        atomic_write_text(stamp, json.dumps({"being_drawn": asked}) + "\n")
        simulate_cartridge(root, num_frames=frames, frame_shape=settings.frame_shape, seed=seed,
                           events_per_frame=settings.events_per_frame)
        atomic_write_text(stamp, json.dumps(asked) + "\n")
    return root


# Inside a linked cartridge being made: a run stopped while linking left the benchmark's own.
LINKING_MARK = ".ctcnet-bench-linking"


def _remove(folder: Path) -> None:
    """Remove a folder of the benchmark's own, renamed hidden first: removed in place, a stop
    partway could take its mark before its frames, leaving a folder refused as nobody's."""
    gone = folder.with_name(f".{folder.name}.removing-{os.getpid()}")
    folder.rename(gone)
    shutil.rmtree(gone)


def _own_or_refused(folder: Path, ours: bool) -> None:
    """Refuse to replace ``folder`` of the work folder where the benchmark did not make it
    (``ours``: its stamp): a --workdir given by hand may hold a lab's cartridge of the name."""
    if not ours:
        raise InputError("--workdir holds this folder, which the benchmark did not make "
                         "(no stamp of its own) and would replace: move it, or give another "
                         "--workdir", folder)


def linked_cartridge(base: Path, target: Path, frames: int, columns: int = 35, first: int = 0,
                     sample_id: str | None = None) -> Path:
    """A cartridge of ``frames`` frames made of hard links to the base cartridge's frames
    (from its frame ``first`` on, round again as needed), its sample id ``sample_id``
    (default ``bench-<frames>``).

    Its cartridge.json says ``"repeated_frames": true``: predict would otherwise count each
    repeated frame once, as the same tile written under two names (``ctcnet.io.scan``)."""
    info_path = target / "cartridge.json"
    # What it is made of: a --workdir kept between runs of other settings holds a cartridge of
    # this name made of another base's frames (a quick run's small ones), made again then.
    stamp = base / "simulated_with.json"
    made_of = [str(base), stamp.read_text(encoding="utf-8") if stamp.exists() else None]
    if info_path.exists():  # kept from an earlier run, perhaps from before the flag
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("made_of") == made_of:
            if info.get("repeated_frames") is not True:
                atomic_write_text(info_path, json.dumps({**info, "repeated_frames": True},
                                                        indent=2) + "\n")
            return target
        _own_or_refused(target, "made_of" in info)
        _remove(target)
    elif target.exists():  # a run stopped while linking it (marked), or a lab's folder
        _own_or_refused(target, (target / LINKING_MARK).exists())
        _remove(target)
    source = open_cartridge(base)
    target.mkdir(parents=True)
    (target / LINKING_MARK).touch()
    for index in range(frames):
        ref = source.frames[(first + index) % len(source.frames)]
        row, col = serpentine_position(index, columns)
        for path in ref.files:
            suffix = path.name[len(ref.stem):]
            link = target / f"r{row:02d}c{col:02d}{suffix}"
            try:
                os.link(path, link)
            except OSError:  # another file system: copy instead
                link.write_bytes(path.read_bytes())
    rows = (frames + columns - 1) // columns
    info = source.info
    write_cartridge_info(target, source.panel, sample_id or f"bench-{frames}", frames, rows,
                         columns,
                         (int(info.get("frame_height", 0)), int(info.get("frame_width", 0))),
                         extra={"repeated_frames": True, "made_of": made_of})
    (target / LINKING_MARK).unlink()  # (whole: its cartridge.json says what made it)
    return target


def split_cartridge(base: Path, workdir: Path, frames: int, parts: int = 2) -> list[Path]:
    """``frames`` frames of the base cartridge as ``parts`` cartridges of about as many
    frames each, with sample ids of their own (their outputs must not collide)."""
    sizes = [frames // parts + (1 if k < frames % parts else 0) for k in range(parts)]
    starts = [sum(sizes[:k]) for k in range(parts)]
    return [linked_cartridge(base, workdir / f"cartridge-{frames}-part{k + 1}of{parts}", n,
                             first=start, sample_id=f"bench-{frames}-part{k + 1}of{parts}")
            for k, (n, start) in enumerate(zip(sizes, starts)) if n]


def _run_worker(args: list[str]) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON line, plus
    ``process_s``: the process's wall time from start to exit (imports and model load too)."""
    cmd = [sys.executable, "-m", "ctcnet.benchmark", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": seconds}



# The 175-frame cartridge's configurations: (name, extra worker arguments).
CONFIGS = (("defaults", []), ("--workers 0", ["--workers", "0"]),
           ("--frame-pool processes", ["--frame-pool", "processes"]),
           ("--no-report", ["--no-report"]), ("--saliency", ["--saliency"]))
# With a GPU the defaults detect and cut crops on it, in frame threads; these rows are the
# same run with that work in numpy on the CPU, in threads and in frame processes, so the
# benchmark shows what the GPU path gains against the frames' work spread over the cores.
GPU_CONFIGS = (("--frame-device numpy", ["--frame-device", "numpy"]),
               ("--frame-device numpy --frame-pool processes",
                ["--frame-device", "numpy", "--frame-pool", "processes"]))



def _predict_runs(cart: Path, model_file: Path, backend: str, flags: list[str], repeats: int,
                  workdir: Path) -> list[dict]:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(dir=workdir) as out:
            runs.append(_run_worker(["predict", str(cart), str(model_file), out, backend,
                                     *flags]))
    return runs


def _summarise_runs(runs: list[dict]) -> dict:
    """Median run's stages, the spread of wall times and the largest peak RSS."""
    totals = [r["timings_s"]["total"] for r in runs]
    ordered = sorted(range(len(runs)), key=lambda i: totals[i])
    median_run = runs[ordered[len(runs) // 2]]
    floors = [r["write_floor"]["seconds"] for r in runs if r.get("write_floor")]
    return {"total_s": stats(totals), "process_s": stats([r["process_s"] for r in runs]),
            "stages_s": {k: round(v, 3) for k, v in median_run["timings_s"].items()},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "events": runs[0]["events"],
            "runs": len(runs), "saliency": runs[0].get("saliency"),
            "write_floor_s": statistics.median(floors) if floors else None}


def stage_table(events: int, stages: dict, inline: dict | None, floors: dict,
                model_per_event: float | None) -> dict:
    """Per stage: seconds per event in predict (``defaults``: summed over the frame threads;
    ``inline``: with ``--workers 0``, each stage's own time with no thread waiting for a
    core), its floor per event, and the stage (inline where measured) as a multiple of its
    floor and of the model's floor."""
    table = {}
    for stage in STAGES:
        if stage not in stages or not events:
            continue
        own = (inline or stages).get(stage, stages[stage])
        per_event, floor = own / events, floors.get(stage)
        table[stage] = {
            "per_event_ms": 1e3 * stages[stage] / events,
            "inline_per_event_ms": 1e3 * inline[stage] / events if inline and stage in inline
            else None,
            "floor_per_event_ms": 1e3 * floor if floor else None,
            "x_floor": per_event / floor if floor else None,
            "x_model_floor": per_event / model_per_event if model_per_event else None}
    return table


def bench_cartridges(model_path: Path, settings: BenchSettings, workdir: Path,
                     backend: str = "onnx",
                     on_progress: Callable[[dict], None] | None = None) -> dict:
    """End-to-end runs through the product's CPU default: the model's fp32 ONNX export (made
    in ``workdir`` if the classification section has not made it), or torch on CUDA.

    Every size runs with the defaults; the middle size (175 frames) also with ``--workers 0``
    (stages inline, so they add up), ``--no-report``, ``--saliency`` (the gallery's saliency
    maps drawn) and, with a GPU, ``--frame-device numpy``
    (detection and cropping on the CPU, against the defaults' GPU path). Beside the stages
    stand their floors (:mod:`ctcnet.benchmark.floors`), measured in the same run: reading
    and decoding the same frames alone, the frame stages' floors on the simulated frames, the
    model alone at its best batch size and pyarrow writing each run's table once.
    ``on_progress`` gets the section as far as it has come after each cartridge size (so a
    run stopped at the largest size keeps the smaller ones).
    """
    import torch  # whether CUDA is there decides the backend

    gpu_configs = ()
    if torch.cuda.is_available():
        backend, gpu_configs = "torch", GPU_CONFIGS
    model_file = Path(model_path)
    if backend == "onnx":
        # Exported and copied afresh on every run: a --workdir kept between runs holds the
        # cartridges, but its model files may be of another model or an older export.
        from ctcnet.deploy.export import export_onnx  # torch

        model_file = workdir / "model-fp32.onnx"
        export_onnx(model_path, model_file, precision="fp32", overwrite=True)
        # The checkpoint beside its export, as the shipped model lies: the ``--saliency`` run
        # then draws saliency maps (torch) as ``ctcnet predict --saliency`` does.
        shutil.copyfile(model_path, workdir / Path(model_path).name)
    base_frames = min(max(settings.frame_counts), 175)
    base = simulate_base_cartridge(workdir / f"sim-{base_frames}", base_frames, settings)
    # The scan's pixel size (the simulator draws it with the seed): a crop window, so the
    # cost of cropping and of the guard, grows as it falls.
    pixel_size_um = json.loads((base / "panel.json").read_text(encoding="utf-8")).get(
        "pixel_size_um")
    model_floor = _run_worker(["model", str(model_file), backend,
                               str(256 if settings.quick else 4096),
                               str(1 if settings.quick else 3)])
    # The floor is the model's fastest run at its best batch size; predict's own batch stays
    # beside it.
    rate = model_floor.get("floor_crops_per_s") or model_floor["best_crops_per_s"]["median"]
    frame_floors = _run_worker(["floors", str(base), str(model_file), backend,
                                str(settings.floor_frames), str(1 if settings.quick else 3)])
    rows = []
    middle = sorted(settings.frame_counts)[len(settings.frame_counts) // 2]
    for frames in settings.frame_counts:
        cart = linked_cartridge(base, workdir / f"cartridge-{frames}", frames)
        io = [_run_worker(["read", str(cart)]) for _ in range(2 if frames == middle else 1)]
        read_floor = statistics.median(r["read_decode_s"] for r in io)
        # (Beside a GPU the frames are on it, in threads: the processes row is the numpy one.)
        cpu_configs = tuple(c for c in CONFIGS if not gpu_configs or "--frame-pool" not in c[1])
        configs = cpu_configs + gpu_configs if frames == middle else CONFIGS[:1]
        measured = {}
        for name, flags in configs:
            repeats = settings.cartridge_repeats if (frames == middle and name == "defaults") \
                else 1
            measured[name] = _summarise_runs(_predict_runs(cart, model_file, backend, flags,
                                                           repeats, workdir))
        default = measured["defaults"]
        events = default["events"] or 0
        floors = {"read_s": read_floor, "classify_s": events / rate if rate else None}
        stages = default["stages_s"]
        inline = measured.get("--workers 0", {}).get("stages_s")
        per_event = {k: frame_floors["per_event_s"][k] for k in ("detect", "crop", "guard")}
        per_event.update(read=read_floor / events if events else None,
                         classify=1 / rate if rate else None,
                         write=(default["write_floor_s"] / events
                                if events and default["write_floor_s"] else None))
        total = default["total_s"]["median"]
        peer = processes = None
        if frames == middle and settings.peer:
            # The peers on the same frames: the classic gate, and predict in 1 and 2 processes
            # (which share cartridges, not frames: the cartridge split in two halves).
            peer = bench_peer(cart, _run_worker, repeats=settings.peer_repeats)
            processes = bench_predict_processes(
                split_cartridge(base, workdir, frames), model_file, backend, workdir,
                repeats=settings.peer_repeats)
        rows.append({
            "frames": frames, "events": events, "backend": backend,
            "total_s": default["total_s"], "process_s": default["process_s"],
            "stages_s": stages, "stages_inline_s": inline,
            "configs": measured if len(measured) > 1 else None,
            "events_per_s": events / total if events else None,
            "peak_rss_mb": default["peak_rss_mb"], "saliency": default.get("saliency"),
            "floors_s": floors,
            "stage_table": stage_table(events, stages, inline, per_event,
                                       1 / rate if rate else None),
            "ratios_to_floor": {
                "read": stages.get("read", 0) / read_floor if read_floor else None,
                "classify": (stages.get("classify", 0) / floors["classify_s"]
                             if floors["classify_s"] else None),
                "total_to_read": total / read_floor if read_floor else None,
                "total_to_model": total / floors["classify_s"] if floors["classify_s"]
                else None},
            "io_read_bytes_s": stats([r["read_bytes_s"] for r in io]),
            "io_read_decode_s": stats([r["read_decode_s"] for r in io]),
            "bytes": io[0]["bytes"],
            "load_average": load_average(),
            "peer": peer, "predict_processes": processes,
        })
        rows[-1]["peer_ratios"] = peer_ratios(rows[-1], peer, processes)
        if gpu_configs:  # the GPU's aims; on a CPU the model, not the reading, is the floor
            rows[-1]["gpu"] = gpu_lines(rows[-1], processes, frames)
        if on_progress is not None:
            on_progress(_cartridge_section(rows, settings, model_floor, frame_floors,
                                           pixel_size_um))
    return _cartridge_section(rows, settings, model_floor, frame_floors, pixel_size_um)


def _cartridge_section(rows: list[dict], settings: BenchSettings, model_floor: dict,
                       frame_floors: dict | None = None, pixel_size_um: float | None = None
                       ) -> dict:
    first, last = rows[0], rows[-1]
    flatness = None
    if len(rows) >= 2 and first["frames"] and first["events"] and last["events"]:
        flatness = {
            "from_frames": first["frames"], "to_frames": last["frames"],
            "time_per_event": (last["total_s"]["median"] / last["events"])
            / (first["total_s"]["median"] / first["events"]),
            "time_per_event_without_fixed": _marginal_ratio(rows),
            "peak_rss": last["peak_rss_mb"] / first["peak_rss_mb"],
            "peak_rss_max_mb": max(r["peak_rss_mb"] for r in rows)}
    return {"rows": rows, "frame_shape": list(settings.frame_shape),
            "pixel_size_um": pixel_size_um,
            "events_per_frame": settings.events_per_frame, "model_floor": model_floor,
            "frame_floors": frame_floors, "flatness": flatness,
            "device": model_floor.get("device")}


def _marginal_ratio(rows: list[dict]) -> float | None:
    """Time per event of the largest run over that of the middle one, after taking out the
    fixed cost (start, model load, report) that the two smaller sizes share; 1.0 is linear."""
    if len(rows) < 3:
        return None
    (a, b, c) = rows[0], rows[len(rows) // 2], rows[-1]
    ta, tb, tc = (r["total_s"]["median"] for r in (a, b, c))
    ea, eb, ec = (r["events"] for r in (a, b, c))
    if not (eb > ea and ec > eb):
        return None
    per_event_small = (tb - ta) / (eb - ea)
    per_event_large = (tc - tb) / (ec - eb)
    return per_event_large / per_event_small if per_event_small > 0 else None

