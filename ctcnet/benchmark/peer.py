"""The peers predict is measured against in the same run, and the ratios that compare them.

* the classic gate (:mod:`ctcnet.evaluation.classic_gate`): a lab's scikit-image pipeline on
  the same cartridge, with 1 and with 2 worker processes;
* predict in 1 and in 2 processes (``ctcnet predict --processes N``): processes share a job's
  cartridges, not one cartridge's frames, so the cartridge is split into two cartridges of
  half its frames each and both run in one command;
* the ratios the record keeps (:func:`peer_ratios`): predict's wall over the gate's with two
  workers; the work around the network, inline, as a multiple of the network's own; the wall
  over the model floor; and, with a GPU (:func:`gpu_lines`), the wall over the read floor and
  cartridges per hour.

Each run is a process of its own, as every benchmark measurement is.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ctcnet.benchmark.common import stats

# Of predict's inline run, what is not work around the network: the network itself and the
# report (off the critical path; the benchmark shows it apart).
NOT_AROUND_NETWORK = ("classify", "report")
# Worker processes the gate and predict are timed with.
PROCESS_COUNTS = (1, 2)


def worker_peer(cartridge: str, workers: str) -> dict:
    """The classic gate on ``cartridge`` with ``workers`` processes (a benchmark worker: its
    own process, so its peak memory is its own)."""
    from ctcnet.evaluation.classic_gate import gate_cartridge
    from ctcnet.inference.resources import peak_memory_mb

    result = gate_cartridge(cartridge, int(workers))
    return {"seconds": result.seconds, "frames": result.frames, "objects": result.objects,
            "ctcs": result.ctcs, "workers": result.workers, "peak_rss_mb": peak_memory_mb(),
            "worker_peak_rss_mb": result.worker_peak_rss_mb}


def bench_peer(cartridge: Path, run_worker: Callable[[list[str]], dict],
               counts: Sequence[int] = PROCESS_COUNTS, repeats: int = 1) -> dict:
    """The gate's wall time on ``cartridge`` with each count of worker processes, the counts
    taking turns (a change of load hits each alike); ``run_worker`` runs one benchmark worker
    in a process of its own and returns its JSON."""
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for _ in range(max(1, repeats)):
        for n in counts:
            runs[n].append(run_worker(["peer", str(cartridge), str(n)]))
    by_count = {}
    for n, done in runs.items():
        by_count[str(n)] = {
            "wall_s": stats([r["seconds"] for r in done]),
            "process_s": stats([r["process_s"] for r in done]) if "process_s" in done[0]
            else None,
            "frames": done[0]["frames"], "objects": done[0]["objects"],
            "ctcs": done[0]["ctcs"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in done),
            "worker_peak_rss_mb": max((r["worker_peak_rss_mb"] or 0) for r in done) or None}
    return {"by_workers": by_count, "scaling": _scaling(by_count)}


def bench_predict_processes(cartridges: Sequence[Path], model_file: Path, backend: str,
                            workdir: Path, counts: Sequence[int] = PROCESS_COUNTS,
                            repeats: int = 1) -> dict:
    """``ctcnet predict --processes N`` on ``cartridges`` (the middle cartridge split in
    two), each count's wall time from the command's start to its end (start-up, model load
    and the reports included, alike for every count), the counts taking turns."""
    runs: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(max(1, repeats)):
        for n in counts:
            with tempfile.TemporaryDirectory(dir=workdir) as out:
                cmd = [sys.executable, "-m", "ctcnet", "predict", *map(str, cartridges),
                       "--model", str(model_file), "--backend", backend, "--out", out,
                       "--processes", str(n), "--quiet", "--overwrite"]
                t0 = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                seconds = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"predict --processes {n} failed:\n{done.stderr[-2000:]}")
            runs[n].append(seconds)
    by_count = {str(n): {"wall_s": stats(s)} for n, s in runs.items()}
    return {"cartridges": len(cartridges), "by_processes": by_count,
            "scaling": _scaling(by_count)}


def _scaling(by_count: dict) -> float | None:
    """The wall time with one process over that with two (2.0: twice as fast)."""
    one, two = by_count.get("1"), by_count.get("2")
    if not one or not two or not two["wall_s"]["median"]:
        return None
    return one["wall_s"]["median"] / two["wall_s"]["median"]


def around_network(timings: dict | None) -> float | None:
    """Seconds of a predict run's work around the network: its total less the network's and
    the report's (every other stage, named or not: reading, digests, detection, cropping, the
    guard, writing, and what lies between them). Meant for an inline run (``--workers 0``),
    whose stages add up to its total."""
    if not timings or "total" not in timings or "classify" not in timings:
        return None
    return timings["total"] - sum(timings.get(s, 0.0) for s in NOT_AROUND_NETWORK)


def peer_ratios(row: dict, peer: dict | None, processes: dict | None) -> dict:
    """The ratios of one cartridge's row: predict's wall (the defaults) over the gate's with
    two workers and with one; the inline work around the network (``--workers 0``,
    :func:`around_network`) per event as a multiple of the network's own (classify, in the
    same inline run) and of the model floor; the wall over the model floor; the gate's
    and predict's speed-up from one process to two."""
    total = row["total_s"]["median"]
    inline = row.get("stages_inline_s") or {}
    events = row.get("events") or 0
    model_floor = (row.get("floors_s") or {}).get("classify_s")
    around = around_network(inline)
    gate = (peer or {}).get("by_workers", {})

    def over(value, by):
        return value / by if value is not None and by else None

    return {
        "predict_to_peer_2": over(total, (gate.get("2") or {}).get("wall_s", {}).get("median")),
        "predict_to_peer_1": over(total, (gate.get("1") or {}).get("wall_s", {}).get("median")),
        "around_network_to_network": over(around, inline.get("classify")),
        "around_network_to_model_floor": over(around, model_floor),
        "around_network_ms_per_event": over(1e3 * around, events) if around is not None
        else None,
        "total_to_model": over(total, model_floor),
        "peer_scaling": (peer or {}).get("scaling"),
        "predict_processes_scaling": (processes or {}).get("scaling")}


def gpu_lines(row: dict, processes: dict | None, frames: int) -> dict:
    """What a GPU run aims at: predict's wall over the read floor (on a GPU the frames' reading
    is the floor) and cartridges of ``frames`` frames an hour, from one predict run and from
    the fastest ``--processes`` count (its cartridges hold the same frames between them)."""
    total = row["total_s"]["median"]
    read_floor = (row.get("floors_s") or {}).get("read_s")
    best = None
    if processes and processes.get("by_processes"):
        walls = {int(n): v["wall_s"]["median"] for n, v in processes["by_processes"].items()}
        n = min(walls, key=walls.get)
        best = {"processes": n, "cartridges_per_hour": 3600.0 / walls[n]}
    return {"total_to_read_floor": total / read_floor if read_floor else None,
            "cartridges_per_hour": 3600.0 / total if total else None,
            "frames": frames, "best_processes": best}
