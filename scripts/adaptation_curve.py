"""What adaptation buys: macro-F1 on a "new scanner" after fine-tuning on N labelled crops.

The new scanner is one instrument simulated outside the shipped model's training ranges
(``NEW_SCANNER``: its own fixed spillover matrix, a sharper PSF, larger cells, a brighter
staining kit, patchier background). Per
seed, a pool of lab crops (``--lab-samples`` cartridges) and a held-out test set (other
samples) are drawn from it; for each N the first N crops per class of the pool are written as
a crop dataset and ``ctcnet finetune``'s recipe (:func:`ctcnet.training.finetune.finetune`,
default options unless given) adapts the base model. N = 0 is the base model as shipped.

Each run also reads the test set as ``ctcnet predict`` does (a labelled crop folder): macro-F1
of its calls, CTC recall, CTC-vs-rest F1 and the review load (share of crops sent to a person),
with the fine-tuned model's own calibration and, for comparison, with the base model's
temperature and review threshold (what a fine-tune kept before it recalibrated on few crops).

``--protocol drawn`` does the same on published-style composites (``scripts/drawn_composites.py``:
hand-drawn RGB cells, no pixel size, read with ``--pixel-size fit``), base
``ctcnet-core3-export``: a pool of drawn cells (seed 100 + seed) and a test set (seed 200 + seed).

Every finished run is appended to ``--out`` (JSON lines), so a stopped run resumes; ``--report``
turns the runs into the table and plot of docs/adapting.md (median over seeds).

    python scripts/adaptation_curve.py --seeds 0 1 2 --ns 0 10 25 50 100 200
    python scripts/adaptation_curve.py --protocol drawn --ns 0 8 --seeds 0 --out runs.jsonl
    python scripts/adaptation_curve.py --report
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctcnet.detect.crop_dataset import write_crop_dataset  # noqa: E402
from ctcnet.evaluation.metrics import macro_f1  # noqa: E402
from ctcnet.io.digests import file_sha256  # noqa: E402
from ctcnet.nn.classifier import load_model  # noqa: E402
from ctcnet.simulate import SimConfig, simulate_crops  # noqa: E402
from ctcnet.training.finetune import (  # noqa: E402
    FinetuneOptions,
    finetune,
    model_logits,
)

# One instrument outside SimConfig()'s training ranges (each range in the comment). Its optics
# are the same on every sample it scans, as a real instrument's are: a filter set with four
# strong spillovers (the training draws at most 10 % for any pair, per sample), a sharper
# objective, a brighter staining kit, patchier background, and a cohort with larger cells. The
# spillover of CK into CD45 is what breaks the base model (a CTC's ghost reads as CD45
# staining, and a CD45-positive event is no CTC); it is fixed by the optics, so a reviewer's
# labels can teach it. The classes stay decidable (fine-tuned models reach 0.97-0.99 on its
# test sets), so the curve measures what a few labelled crops buy, not what the scanner hides;
# docs/adapting.md says why the first protocol (leaks redrawn per sample) did not.
NEW_SCANNER = {
    "instrument_bleed": (("CK", "CD45", 0.30),     # 0-10 %: a CTC's ghost in CD45
                         ("CD45", "CD66b", 0.30),  # every leukocyte lights up CD66b
                         ("DAPI", "CD61", 0.30),   # every nucleus in the platelet channel
                         ("CD61", "CK", 0.20)),    # platelets in CK
    "bleed_through": (0.002, 0.03),         # 0.002-0.10: the rest of the matrix, per sample
    "psf_sigma_um": (0.40, 0.50),           # 0.55-1.3: a sharper objective
    "cell_size_scale": 1.15,                # 1.0: another cohort's larger cells
    "stain_strength": (6.0, 10.0),          # 0.18-5.5: a brighter kit (highlights clip)
    "background_patchiness": (0.30, 0.40),  # 0.03-0.25: patchier background texture
}
RUNS = ROOT / "docs" / "adapting_runs.jsonl"


def new_scanner() -> SimConfig:
    """The simulator settings of the "new scanner" the model is adapted to."""
    return dataclasses.replace(SimConfig(), **NEW_SCANNER, shifts=("new_scanner",))


def scanner_digest() -> str:
    """Short digest of NEW_SCANNER: runs of another protocol are neither skipped nor reported."""
    return hashlib.sha256(json.dumps(NEW_SCANNER, sort_keys=True).encode()).hexdigest()[:12]


def base_digest(path: Path) -> str:
    """Short digest of the base model's file: a retrained base gets its own runs (a curve
    measured on another base is neither reused nor reported)."""
    return file_sha256(path)[:12]


def first_per_class(labels: list[str], n: int) -> np.ndarray:
    """Indices of the first n crops of each class (nested: N=25 holds N=10's crops)."""
    seen: dict[str, int] = {}
    keep = []
    for i, label in enumerate(labels):
        if seen.get(label, 0) < n:
            keep.append(i)
            seen[label] = seen.get(label, 0) + 1
    return np.array(keep, np.int64)


def predicted(model: Path, folder: Path, pixel_size: str | None = None) -> dict:
    """What ``ctcnet predict`` calls on a labelled crop folder: macro-F1 over the labelled
    classes, CTC recall, CTC-vs-rest F1 and the review load (share sent to a person)."""
    import pandas as pd

    from ctcnet.cli import main as ctcnet

    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        argv = ["predict", str(folder), "--out", out, "--quiet", "--no-report", "--model",
                str(model)] + (["--pixel-size", pixel_size] if pixel_size else [])
        if ctcnet(argv) != 0:
            raise RuntimeError(f"ctcnet predict failed on {folder}")
        table = pd.read_parquet(Path(out) / folder.name / "predictions.parquet")
    names = sorted(set(table["label"]))
    index = {n: k for k, n in enumerate(names)}
    truth = table["label"].map(index).to_numpy()
    calls = table["class"].map(lambda c: index.get(c, len(names))).to_numpy()
    ctc_truth, ctc_call = table["label"] == "ctc", table["class"] == "ctc"
    tp = float((ctc_truth & ctc_call).sum())
    # Calls of a class no crop is labelled with are errors (macro_f1 over the labelled ones).
    return {"macro_f1": round(macro_f1(truth, calls, len(names) + 1), 4),
            "ctc_recall": round(tp / max(1, ctc_truth.sum()), 4),
            "ctc_f1": round(2 * tp / max(1, ctc_truth.sum() + ctc_call.sum()), 4),
            "review_load": round(float(table["review"].mean()), 4), "crops": int(len(table))}


def with_base_calibration(model, spec, base_spec, out: Path) -> Path:
    """A copy of a fine-tuned model (``model``, ``spec`` as loaded) with the base model's
    temperature and review threshold: what ``finetune`` wrote when the held-out crops were too
    few to recalibrate."""
    from ctcnet.nn.classifier import save_model

    save_model(out, model, spec.replace(temperature=base_spec.temperature,
                                        review_threshold=base_spec.review_threshold))
    return out


def drawn_pool(root: Path, seed: int, per_kind: int, look: str) -> tuple[Path, list[str]]:
    """A folder of drawn composites (``scripts/drawn_composites.py``) and its crops' labels in
    a shuffled order (so the first N of a class span its kinds)."""
    from drawn_composites import write_drawn_set

    from ctcnet.detect.crop_dataset import read_crop_index

    folder = write_drawn_set(root, per_kind, seed, look=look)
    index = read_crop_index(folder, pixel_size=1.0)
    order = np.random.default_rng(seed).permutation(len(index.labels))
    return folder, [str(Path(index.paths[i]).relative_to(folder)) for i in order], \
        [index.labels[i] for i in order]


def drawn_subset(pool: Path, files: list[str], labels: list[str], n: int, out: Path) -> Path:
    """The first ``n`` crops per class of a drawn pool, copied as a crop folder of its own."""
    from ctcnet.detect.crop_dataset import write_manifest

    rows = []
    for i in first_per_class(labels, n):
        (out / files[i]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pool / files[i], out / files[i])
        rows.append((files[i], labels[i], "", ""))
    shutil.copy(pool / "panel.json", out / "panel.json")
    write_manifest(out, rows)
    return out


def done_runs(path: Path) -> list[dict]:
    """The runs already recorded in the JSON-lines file at ``path`` (none when it does not exist
    yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_curve(args) -> None:
    """Fine-tune the base model on N crops per class of the protocol's look for each seed and
    N, appending each run not yet recorded to ``args.out``."""
    base_path = Path(args.base or (ROOT / "models" / ("ctcnet-core3-export.pt" if
                                                      args.protocol == "drawn" else
                                                      "ctcnet-default.pt")))
    base, spec = load_model(base_path)
    drawn = args.protocol == "drawn"
    pixel_size = "fit" if drawn else None
    options = FinetuneOptions(steps=args.steps, train_blocks=args.train_blocks or None,
                              lr=args.lr,
                              simulated_per_class=args.simulated_per_class,
                              sim_check_per_class=args.sim_check_per_class, device="cpu",
                              pixel_size=pixel_size)
    runs = done_runs(args.out)
    base_sha256 = base_digest(base_path)
    cfg = new_scanner()
    work = Path(tempfile.mkdtemp(prefix="adaptation-"))
    try:
        for seed in args.seeds:
            pool = test = None
            for n in args.ns:
                key = {"scanner": f"drawn-{args.look}" if drawn else scanner_digest(),
                       "base_sha256": base_sha256, "seed": seed, "n": n,
                       "steps": options.steps, "train_blocks": options.train_blocks,
                       "lr": options.lr, "simulated_per_class": options.simulated_per_class}
                # Measured on a test of this size too (a run at 100 a class stood for one at
                # 250, and the table mixed them): its rows record their test's crops.
                tested = args.test_per_class * spec.num_classes
                if any(all(r.get(k) == v for k, v in key.items())
                       and r.get("test_crops", tested) == tested for r in runs):
                    continue
                if pool is None:
                    pool, test, test_labels, test_folder = _draw(args, spec, cfg, seed, work)
                result = _one_run(args, key, base, spec, base_path, options, pool, test,
                                  test_labels, test_folder, work / f"s{seed}-n{n}", pixel_size)
                print(json.dumps(result), flush=True)
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(result) + "\n")
                runs.append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _draw(args, spec, cfg, seed: int, work: Path):
    """(pool, test, test labels or None, test folder) of one seed: simulated batches of the new
    scanner (its test written as a labelled folder), or drawn composite folders."""
    if args.protocol == "drawn":
        per_kind = max(1, -(-max(args.ns) * 2 // 7) + 1)  # 4 CTC kinds, 3 leukocyte kinds
        pool = drawn_pool(work / f"pool{seed}", 100 + seed, per_kind, args.look)
        test_folder, _, _ = drawn_pool(work / f"test{seed}", 200 + seed,
                                       max(1, args.test_per_class // 3), args.look)
        return pool, None, None, test_folder
    pool = simulate_crops(max(args.ns), spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                          seed=10_000 + seed, config=cfg, num_samples=args.lab_samples)
    test = simulate_crops(args.test_per_class, spec.panel, spec.taxonomy,
                          crop_size=spec.crop_size, seed=20_000 + seed, config=cfg,
                          num_samples=8)
    folder = write_crop_dataset(work / f"test{seed}", test.images, test.labels, spec.panel,
                                test.sample_ids)
    return pool, test, np.array([spec.taxonomy.index(k) for k in test.labels]), folder


def _one_run(args, key, base, spec, base_path, options, pool, test, test_labels, test_folder,
             run_dir: Path, pixel_size) -> dict:
    """Fine-tune on the first N crops per class of ``pool`` (N = 0: the base as it is) and
    score the test set (plain macro-F1 of the network, and as predict calls it)."""
    record, model, model_path, tuned_spec = None, base, base_path, spec
    run_dir.mkdir(parents=True)
    cpu = time.process_time()
    if key["n"] > 0:
        data = run_dir / "crops"
        if args.protocol == "drawn":
            folder, files, labels = pool
            drawn_subset(folder, files, labels, key["n"], data)
        else:
            keep = first_per_class(pool.labels, key["n"])
            write_crop_dataset(data, pool.images[keep], [pool.labels[i] for i in keep],
                               spec.panel, [pool.sample_ids[i] for i in keep])
        model_path = run_dir / "model.pt"
        record = finetune(data, model_path, base_path, dataclasses.replace(
            options, seed=key["seed"]))
        model, tuned_spec = load_model(model_path)
    cpu = time.process_time() - cpu
    result = {**key, "test_crops": 0, "base": str(base_path)}
    if test is not None:
        pred = model_logits(model, test.images).argmax(1)
        result.update(macro_f1=macro_f1(test_labels, pred, spec.num_classes),
                      test_crops=int(len(test_labels)))
    result["predict"] = predicted(model_path, test_folder, pixel_size)
    result["test_crops"] = result["test_crops"] or result["predict"]["crops"]
    result.setdefault("macro_f1", result["predict"]["macro_f1"])
    result["seconds"] = record["seconds"]["total"] if record else 0.0
    result["cpu_seconds"] = round(cpu, 1)
    if record:
        kept = with_base_calibration(model, tuned_spec, spec, run_dir / "kept.pt")
        result["predict_base_calibration"] = predicted(kept, test_folder, pixel_size)
        result["calibration"] = {k: record["calibration"].get(k) for k in (
            "method", "lab_crops", "lab_weight", "temperature", "skipped")}
        result["calibration"]["review_threshold"] = tuned_spec.review_threshold
        result["simulated_test"] = {k: v["macro_f1"] for k, v in
                                    record["simulated_test"].items()}
        result["held_out_f1"] = record["held_out"]["finetuned"]["macro_f1"]
        result["leaks"] = record["leaks"]["leaks"]  # the instrument's, from the lab's CTCs
    return result


def report(args) -> None:
    """Table for the given settings; the plot adds a line per other ``train_blocks`` measured
    with the same other settings (which blocks to free is the choice the curve informs)."""
    from ctcnet.evaluation.plots import curve_png

    settings = {"steps": args.steps, "lr": args.lr,
                "simulated_per_class": args.simulated_per_class}
    scanner = scanner_digest()
    base = args.base_digest or base_digest(Path(args.base or ROOT / "models" /
                                                "ctcnet-default.pt"))
    done = done_runs(args.out)
    every = [r for r in done if r.get("scanner") == scanner
             and r.get("base_sha256") == base
             and (r["n"] == 0 or all(r.get(k) == v for k, v in settings.items()))]
    chosen = args.train_blocks or None
    # N = 0 (no fine-tuning) belongs to every setting.
    runs = [r for r in every if r["n"] == 0 or r.get("train_blocks") == chosen]
    if not runs:
        # Runs are kept per base: a base retrained since has none until it is measured.
        held = sorted({r.get("base_sha256") for r in done if r.get("scanner") == scanner})
        raise SystemExit(f"no runs of base {base} in {args.out} (it holds runs of the bases "
                         f"{', '.join(map(str, held)) or 'none'}: --base-digest DIGEST reports "
                         "one of them; a run without --report measures this base)")
    ns = sorted({r["n"] for r in runs})
    rows = ["| N per class | macro-F1 (median) | seeds | per seed | fine-tune time (median) | "
            "original simulator: base -> fine-tuned |", "|---|---|---|---|---|---|"]
    for n in ns:
        sel = [r for r in runs if r["n"] == n]
        f1 = [r["macro_f1"] for r in sel]
        secs = float(np.median([r["seconds"] for r in sel]))
        sim = [r["simulated_test"] for r in sel if "simulated_test" in r]
        sim_text = (f"{np.median([s['base'] for s in sim]):.4f} -> "
                    f"{np.median([s['finetuned'] for s in sim]):.4f}" if sim else "-")
        rows.append(f"| {n} | **{np.median(f1):.4f}** | {len(sel)} | "
                    f"{', '.join(f'{v:.3f}' for v in f1)} | {secs:.0f} s | {sim_text} |")
    series = {}
    for blocks in sorted({r.get("train_blocks") for r in every if r["n"]},
                         key=lambda b: -1 if b is None else b):
        name = "all blocks free" if blocks is None else f"last {blocks} blocks free"
        series[name] = [float(np.median(f1)) if (f1 := [
            r["macro_f1"] for r in every
            if r["n"] == n and (n == 0 or r.get("train_blocks") == blocks)]) else None
            for n in ns]
    low = min(v for ys in series.values() for v in ys if v is not None)
    # The plot beside the runs it draws (docs/adapting.png for the docs' own runs only: a
    # report of another --out replaced the plot the docs show).
    curve_png(ns, series, ROOT / "docs" / "adapting.png" if args.out == RUNS
              else args.out.with_suffix(".png"), "Adapting to a new scanner",
              "labelled crops per class (N)", "macro-F1",
              y_range=(min(0.5, np.floor(low * 10) / 10), 1.0), target=0.97)
    print("\n".join(rows))


def main() -> None:
    """Parse the command line and run the curve."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--base", default=None, help="default: models/ctcnet-default.pt "
                        "(--protocol drawn: models/ctcnet-core3-export.pt)")
    parser.add_argument("--protocol", choices=("new_scanner", "drawn"), default="new_scanner")
    parser.add_argument("--look", default="as_drawn", help="--protocol drawn: the look of "
                        "scripts/drawn_composites.py (LOOKS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ns", type=int, nargs="+", default=[0, 10, 25, 50, 100, 200])
    parser.add_argument("--test-per-class", type=int, default=250)
    parser.add_argument("--lab-samples", type=int, default=4)
    d = FinetuneOptions()
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--train-blocks", type=int, default=d.train_blocks or 0,
                        help="last blocks trained; 0: all")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--simulated-per-class", type=int, default=d.simulated_per_class)
    parser.add_argument("--sim-check-per-class", type=int, default=d.sim_check_per_class)
    parser.add_argument("--out", type=Path, default=RUNS)
    parser.add_argument("--report", action="store_true", help="table + plot from the runs")
    parser.add_argument("--base-digest", help="--report: the runs of the base with this "
                        "digest (the first 12 hex digits of its SHA-256), not --base's")
    args = parser.parse_args()
    if args.report:
        report(args)
    else:
        run_curve(args)


if __name__ == "__main__":
    from ctcnet.errors import run_script

    run_script(main, "adaptation_curve.py")
