"""Ablation: which of the marker-fidelity fixes make calls survive leaks and CK+ leukocytes.

    python experiments/ablate_marker_fidelity.py --out runs/ablation  # ~25 min, shared 2-core CPU

Trains the compact CNN briefly (a few thousand crops, a few epochs: a comparison, not a
product) once per variant, switching on one fix at a time against the previous simulator,
normalisation and augmentation:

* ``sim``: the simulator's full bleed matrix (every ordered channel pair), 30x stain range,
  CK+CD45+ leukocytes, granulocyte autofluorescence and autofluorescent debris;
* ``norm``: asinh of the signal in noise units (softness 1) instead of rational at softness 6;
* ``aug``: augmentation with random bleed between any two channels, 25x per-channel gain and
  non-specific CK (CK += a share of the CD45 signal).

Every variant is scored on the same crops: a held-out set from the previous simulator (seed
4243, where the leak table was first measured) unchanged and under that table's
perturbations (signal = the smoothed crop above its per-channel median, camera noise left as it
was), plus a held-out set from the new simulator. Writes ``ablation.json`` and ``ablation.md``
(a table) to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctcnet.io.atomic import atomic_write_text  # noqa: E402

OLD_NORM = {"method": "snr", "softness": 6.0, "compression": "rational", "sample_step": 4,
            "noise_floor": 0.5}
NEW_NORM = {"method": "snr", "softness": 1.0, "compression": "asinh", "sample_step": 4,
            "noise_floor": 0.5}
OLD_AUG = {"bleed_p": 0.0, "nonspecific_ck_p": 0.0, "gain_range": (0.5, 2.0)}
VARIANTS = {  # name -> (new simulator, new normalisation, new augmentation)
    "previous": (False, False, False),
    "+norm": (False, True, False),
    "+sim": (True, False, False),
    "+aug": (False, False, True),
    "+sim+norm": (True, True, False),
    "all": (True, True, True),
}


def previous_simulator():
    """The simulator's earlier defaults (neighbour-only bleed, 4x stain, clean WBCs)."""
    from ctcnet.simulate import SimConfig

    cfg = SimConfig()
    weights = dict(cfg.subtype_weights, autofluorescent=0.0)
    return dataclasses.replace(cfg, bleed_through=(0.0, 0.15), bleed_pairs="neighbours",
                               stain_strength=(0.5, 2.0), nonspecific_ck_rate=(0.0, 0.0),
                               granulocyte_autofluorescence=(0.0, 0.0), subtype_weights=weights)


def signal_of(images: np.ndarray) -> np.ndarray:
    """Smoothed crop above its per-channel median (what the leak table's perturbations move)."""
    from scipy.ndimage import gaussian_filter

    x = images.astype(np.float32)
    smooth = gaussian_filter(x, sigma=(0, 0, 1, 1))
    med = np.median(x.reshape(*x.shape[:2], -1), axis=2)[:, :, None, None]
    return np.maximum(smooth - med, 0.0)


def perturbations(images: np.ndarray, panel) -> dict[str, np.ndarray]:
    """The leak table's failing cases on raw counts (clipped to the 12-bit range)."""
    ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
    cd61, cd66b = panel.index_of_role("platelet"), panel.index_of_role("neutrophil")
    s = signal_of(images)
    x = images.astype(np.float32)
    out = {}
    a = x.copy()
    a[:, cd61] += 0.05 * s[:, ck]
    out["ck_5pct_into_cd61"] = a
    a = x.copy()
    a[:, cd66b] += 0.05 * s[:, ck]
    out["ck_5pct_into_cd66b"] = a
    a = x.copy()
    a[:, ck] += s[:, cd45]
    out["ck_on_leukocytes"] = a
    a = x.copy()
    a[:, ck] += 3.0 * s[:, ck]
    for ch in (cd45, cd61, cd66b):
        a[:, ch] += 0.03 * 4.0 * s[:, ck]
    out["ck_4x_3pct_leaks"] = a
    return {k: np.clip(np.rint(v), 0, 4095) for k, v in out.items()}


def train_variant(images, targets, spec, augment, epochs: int, seed: int,
                  num_workers: int = 0, clip_norm: float | None = None):
    """The recipe's loss and schedule in a plain loop (AdamW, one-cycle, balanced CE); also
    experiments/ablate_recipe.py's, which loads in one worker and clips gradients."""
    from torch.utils.data import DataLoader

    from ctcnet.nn.classifier import CTCClassifier
    from ctcnet.training.splits import CropDataset

    def worker_init(worker_id: int) -> None:  # each worker its own augmentation stream
        info = torch.utils.data.get_worker_info()
        info.dataset.augment.reseed(int(info.seed % 2**32))

    torch.manual_seed(seed)
    model = CTCClassifier(spec)
    loader = DataLoader(CropDataset(images, targets, augment), batch_size=128, shuffle=True,
                        drop_last=True, num_workers=num_workers,
                        worker_init_fn=worker_init if num_workers else None,
                        persistent_workers=num_workers > 0)
    counts = np.bincount(targets, minlength=spec.num_classes)
    weight = torch.tensor(len(targets) / (len(counts) * np.maximum(counts, 1)),
                          dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3,
                                                total_steps=epochs * len(loader), pct_start=0.1)
    model.train()
    for _ in range(epochs):
        for raw, target in loader:
            loss = F.cross_entropy(model(raw), target, weight=weight, label_smoothing=0.02)
            opt.zero_grad()
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            sched.step()
    return model.eval()


def calls(model, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(images[i:i + 256].astype(np.float32)))
                               .argmax(1).numpy() for i in range(0, len(images), 256)])


def score(model, sets: dict, names: list[str]) -> dict:
    from sklearn.metrics import f1_score

    out = {}
    base = calls(model, sets["previous_sim"][0])
    ctc, wbc = names.index("ctc"), names.index("wbc")
    for key, (images, y) in sets.items():
        pred = calls(model, images)
        r = {"macro_f1": float(f1_score(y, pred, average="macro")),
             "accuracy": float((pred == y).mean()),
             "ctc_recall": float((pred[y == ctc] == ctc).mean()),
             "wbc_called_ctc": float((pred[y == wbc] == ctc).mean())}
        if len(images) == len(base) and key != "new_sim":
            r["flips"] = float((pred != base).mean())
        out[key] = r
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "ablation"))
    p.add_argument("--train", type=int, default=3000, help="training crops per variant")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--test-per-class", type=int, default=150)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = p.parse_args(argv)
    torch.set_num_threads(2)

    from ctcnet.io.panel import Panel, default_panel
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.spec import ModelSpec
    from ctcnet.simulate import SimConfig, simulate_crops
    from ctcnet.simulate.augment import build_train_augment

    panel, taxonomy = default_panel(), default_taxonomy()
    names = taxonomy.names
    share = {"ctc": 0.25, "wbc": 0.25, "cluster": 1 / 6, "debris": 1 / 3}
    train_counts = {k: int(round(v * args.train)) for k, v in share.items()}
    old_cfg, new_cfg = previous_simulator(), SimConfig()

    def labelled(batch):
        return batch.images, np.array([taxonomy.index(lab) for lab in batch.labels])

    t0 = time.perf_counter()
    base = simulate_crops(args.test_per_class, panel, taxonomy, crop_size=80, seed=4243,
                          config=old_cfg, num_samples=24)
    sets = {"previous_sim": labelled(base)}
    y = sets["previous_sim"][1]
    sets.update({k: (v, y) for k, v in perturbations(base.images, panel).items()})
    sets["new_sim"] = labelled(simulate_crops(args.test_per_class, panel, taxonomy,
                                              crop_size=80, seed=4244, config=new_cfg,
                                              num_samples=24))
    train = {flag: labelled(simulate_crops(train_counts, panel, taxonomy, crop_size=80, seed=7,
                                           config=cfg, num_samples=48))
             for flag, cfg in ((False, old_cfg), (True, new_cfg))
             if any(VARIANTS[v][0] == flag for v in args.variants)}
    print(f"simulated in {time.perf_counter() - t0:.0f} s", flush=True)

    results = {}
    for name in args.variants:
        new_sim, new_norm, new_aug = VARIANTS[name]
        norm = NEW_NORM if new_norm else OLD_NORM
        vpanel = Panel.from_dict({"name": panel.name, "pixel_size_um": panel.pixel_size_um,
                                  "channels": [{"name": n, "normalisation": norm}
                                               for n in panel.names]})
        spec = ModelSpec(arch="compact", panel=vpanel, taxonomy=taxonomy, crop_size=80)
        augment = build_train_augment(None if new_aug else dict(OLD_AUG), seed=0,
                                      roles=tuple(panel.roles()))
        t0 = time.perf_counter()
        model = train_variant(*train[new_sim], spec, augment, args.epochs, seed=0)
        results[name] = {"new_sim": new_sim, "new_norm": new_norm, "new_aug": new_aug,
                         "train_seconds": round(time.perf_counter() - t0),
                         "scores": score(model, sets, names)}
        print(name, json.dumps(results[name]), flush=True)
        write(Path(args.out), args, results)
    return 0


def write(out: Path, args, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"train_crops": args.train, "epochs": args.epochs,
              "test_per_class": args.test_per_class, "variants": results}
    atomic_write_text(out / "ablation.json", json.dumps(record, indent=2) + "\n")
    keys = ["previous_sim", "ck_5pct_into_cd61", "ck_5pct_into_cd66b", "ck_on_leukocytes",
            "ck_4x_3pct_leaks", "new_sim"]
    lines = [f"Ablation ({args.train} training crops, {args.epochs} epochs each, "
             f"{args.test_per_class} test crops per class). Cells: macro-F1 / flips against the "
             "unperturbed call; CK on leukocytes also WBC->CTC; CK into CD61 also CTC recall.", "",
             "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in results.items():
        cells = []
        for k in keys:
            s = r["scores"][k]
            cell = f"{s['macro_f1']:.3f}"
            if "flips" in s and k != "previous_sim":
                cell += f" / {s['flips']:.3f}"
            if k == "ck_on_leukocytes":
                cell += f" (WBC->CTC {s['wbc_called_ctc']:.2f})"
            if k == "ck_5pct_into_cd61":
                cell += f" (CTC rec {s['ctc_recall']:.2f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
