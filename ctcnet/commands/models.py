"""``ctcnet models``: the shipped models, with panel, classes, pixel size, size and card figures."""

from __future__ import annotations

import argparse

from ctcnet.nn.registry import get_model, list_models, model_dirs
from ctcnet.nn.spec import SYMMETRIES

HELP = "List the shipped models: panel, classes, pixel size, size on disk, card figures."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet models`` to its subparser."""
    parser.add_argument("name", nargs="?", help="show one model's card (Markdown) instead: a "
                        "shipped model's name, or a model file (.pt, .ckpt, .onnx; one "
                        "without a card, such as ctcnet train's, shows the spec it carries)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")


def say_model(given: str | None, name: str | None = None, spec=None,
              calibrated_from: str | None = None) -> None:
    """The console's model line (stderr): a model given with --model, as given (a lab's
    fine-tune, where ``spec`` says, of which model; ``calibrated_from``: the model given,
    where ``given`` is its calibration made here), or the shipped model ``name`` chosen for
    the data's channels. Two evaluations' logs side by side then say which model each read."""
    import os
    import sys

    if given is None:
        print(f"model: {name} ({get_model(name).origin}; fits the data's channels)",
              file=sys.stderr)
        return
    base = ((getattr(spec, "training", None) or {}).get("finetune") or {}).get("base") or {}
    of = f"; a fine-tune of {os.path.basename(base['path'])}" if base.get("path") else ""
    if calibrated_from:
        print(f"model: {given} (calibrated here from {calibrated_from})", file=sys.stderr)
        return
    print(f"model: {given} (given{of})", file=sys.stderr)


def _line(info) -> str:
    sizes, absent = info.test_sizes(), info.test_absent_classes()

    def figure(k: str, v: float) -> str:  # with the crops it was measured on, and what they lack
        about = ([f"{sizes[k]:,} crops"] if k in sizes else []) + (
            [f"no {', '.join(absent[k])}"] if k in absent else [])
        return f"{k.removeprefix('test_')} {v:.3f}" + (f" ({'; '.join(about)})" if about else "")

    figures = ", ".join(figure(k, v) for k, v in info.figures().items())
    files = ", ".join(p.name for p in (info.checkpoint, info.onnx) if p is not None)
    return (f"{info.name}\n  channels {', '.join(info.channels)} at {info.panel.pixel_size_um:g} "
            f"um/px, {info.crop_size} px crops\n  classes {', '.join(info.classes)}\n"
            f"  {info.size_bytes / 1e6:.2f} MB on disk ({files})"
            + ("\n  reads 8-bit composite exports only (chosen first for RGB composite crops, "
               "never for scans)" if info.reads_exports else "")
            + (f"\n  test-time symmetry {info.symmetry} ({SYMMETRIES[info.symmetry]} views per "
               "crop)" if SYMMETRIES.get(info.symmetry, 1) > 1 else "")
            + (f"\n  held-out macro-F1: {figures}" if figures else "")
            + "".join(f"\n  on simulated cartridges: {line}" for line in info.cartridge_figures())
            + "".join(f"\n  WARNING: {problem}" for problem in _problems(info)))


def _problems(info) -> list[str]:
    """What keeps a listed model from running as its card says: a checkpoint of another size
    than its card records (cut short, replaced), or a network no architecture of this install
    builds where no ONNX export stands in (a lab's own, its package not installed here)."""
    problems = []
    checkpoint = info.checkpoint
    unlike = info.unlike_its_card()
    if unlike:
        problems.append(unlike)
    arch = info.card.get("arch")
    if info.onnx is None and checkpoint is not None and isinstance(arch, str):
        try:
            from ctcnet.nn.nets import list_architectures  # torch: only for such a model
        except ImportError:
            return problems
        if arch not in list_architectures():
            problems.append(f"its network {arch!r} is none this install builds "
                            f"({', '.join(list_architectures())}): it runs where its package "
                            "(a ctcnet.architectures entry point) is installed, or as its ONNX "
                            "export (ctcnet export)")
    return problems


def _carried_spec(path):
    """The spec a model file carries (a checkpoint's or an ONNX file's metadata), for a file
    without a card beside it."""
    if path.suffix == ".onnx":
        from ctcnet.inference.onnx_runtime import OnnxClassifier
        from ctcnet.nn.spec import ModelSpec

        return ModelSpec.from_dict(OnnxClassifier(path).spec, str(path))
    from ctcnet.nn.classifier import load_model  # torch: only for a checkpoint

    return load_model(path)[1]


def _spec_text(path, spec) -> str:
    """What a card-less model file's spec says: what it reads, what it calls, how it decides
    (its Markdown card first where an earlier ctcnet wrote that alone beside it)."""
    ranges = ", ".join(f"{c.name} [{c.value_range[0]:g}, {c.value_range[1]:g}]"
                       for c in spec.panel.channels)
    rule = spec.decision.to_dict() if spec.decision is not None else {}
    weights = rule.get("log_weights") or {}
    training = spec.training or {}
    splits = ((training.get("data") or {}).get("splits") or {})
    # (a checkpoint keeps the best epoch's weights: its card's epoch count is the run's)
    resumed = training.get("resumed") or []
    trained = ", ".join(([f"the weights after epoch {training['epochs_completed']}"
                          + "".join(f" (resumed after epoch {r['epoch_index'] + 1})"
                                    for r in resumed)]
                         if "epochs_completed" in training else []) +
                        [f"{split} {record['crops']:,} crops" for split, record in splits.items()
                         if isinstance(record, dict) and "crops" in record])
    adapted = _adapted_text(training, spec.metrics or {})
    card = path.with_suffix(".md")
    header = (card.read_text(encoding="utf-8") + f"\n{path} (its card above, without the JSON "
              "card ctcnet reads figures from: the spec the file carries)\n"
              if card.is_file() else f"{path} (no card beside it: the spec the file carries)\n")
    return (header +
            f"  channels {ranges} at {spec.pixel_size_um:g} um/px, {spec.crop_size} px crops\n"
            f"  classes {', '.join(spec.class_names)}; counted "
            f"{', '.join(spec.taxonomy.reported_classes()) or 'none'}\n"
            f"  network {spec.arch}, temperature {spec.temperature:g}, review threshold "
            f"{spec.review_threshold:g}, test-time symmetry {spec.symmetry}\n"
            + ("  decision rule at cartridge prevalence: log weights "
               + ", ".join(f"{k} {v:g}" for k, v in weights.items()) if weights else
               "  no decision rule for cartridges (calls at the balanced training prior: "
               "predict says so, and --prior states one)")
            + (f"\n  trained: {trained}" if trained else "")
            + "".join(f"\n  {line}" for line in adapted)
            + f"\n  ctcnet {spec.version}")


def _export_text(path) -> str:
    """What an ONNX file's export record says of it: its precision, the checkpoint it came
    from, and an int8 file's gate (the macro-F1 it kept); "" for a checkpoint."""
    if path.suffix != ".onnx":
        return ""
    import json

    from ctcnet.inference.onnx_runtime import OnnxClassifier

    meta = OnnxClassifier(path).metadata
    try:
        export = json.loads(meta.get("ctcnet_export") or "{}")
    except ValueError:
        export = {}
    text = (f"\n  ONNX {meta.get('precision', 'fp32')}, exported {export.get('exported_at', '?')} "
            f"from {export.get('source', '?')} (SHA-256 "
            f"{str(export.get('source_sha256', '?'))[:12]}...); its digest "
            f"{str(meta.get('ctcnet_digest', '?'))[:12]}...")
    gate = export.get("int8") or {}
    if gate.get("macro_f1_int8") is not None:
        text += (f"\n  int8 gate: macro-F1 {gate['macro_f1_int8']:.4f} against fp32 "
                 f"{gate['macro_f1_fp32']:.4f} on {gate.get('eval_crops', '?')} crops of "
                 f"{gate.get('source', '?')}")
    return text


def _adapted_text(training: dict, metrics: dict) -> list[str]:
    """What was done to the trained network since, as the spec records it: a fine-tune on a
    lab's crops, a recalibration on them (``evaluate --save-model``). Without these lines a
    lab's recalibrated file read as the shipped model it came from."""
    lines = []
    tuned = training.get("finetune") or {}
    if tuned:
        data = tuned.get("data") or {}
        crops = sum((data.get("per_class") or {}).values())
        folder = data.get("path", "?")  # (an ONNX file's withheld: a lab's folder)
        lines.append(f"fine-tuned on {crops:,} crops of "
                     + ("a lab's folder (its path withheld from this file)"
                        if folder == "withheld" else folder)
                     + f" ({(tuned.get('options') or {}).get('steps', '?')} steps)")
    calibration = metrics.get("calibration") or {}
    # A fine-tune's calibration is said with it; a recalibration made after it is its own.
    recalibrated = training.get("recalibration") or {}
    after = bool(recalibrated) and str(recalibrated.get("at") or "") > str(tuned.get("at") or "")
    if calibration.get("method") in ("lab", "pooled") and (not tuned or after):
        lines.append(f"recalibrated on {calibration.get('lab_crops', '?')} lab crops" +
                     (" pooled with simulated crops" if calibration["method"] == "pooled"
                      else ""))
    return lines


def _card_of(path):
    """The registry's record of a model file with its JSON card beside it, None where it has
    none the registry reads (a Lightning .ckpt beside a .json, a .json that is no card: the
    file was refused as "no shipped model called ...", not shown as the spec it carries)."""
    from ctcnet.errors import InputError
    from ctcnet.nn.registry import WEIGHT_SUFFIXES

    if path.suffix not in WEIGHT_SUFFIXES or not path.with_suffix(".json").is_file():
        return None
    try:
        return get_model(str(path))
    except InputError:
        return None


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet models``: list the shipped models, or show one's card; returns the exit
    status."""
    import json

    if args.name:
        from pathlib import Path

        path = Path(args.name)
        model_file = path.is_file() and path.suffix in (".pt", ".ckpt", ".onnx")
        info = _card_of(path) if model_file else get_model(args.name)
        if info is None:  # a model file without a card ctcnet reads: the spec it carries
            spec = _carried_spec(path)
            print(json.dumps(spec.to_dict()) if args.json else
                  _spec_text(path, spec) + _export_text(path))
            return 0
        if args.json:
            print(json.dumps(info.to_dict()))
            return 0
        card = info.folder / f"{info.name}.md"
        # A model file given by its path: its card, then what its JSON card says it reads and
        # calls (a lab's fine-tuned file's card names neither its channels nor its classes:
        # a plane it dropped showed only among the warnings said as it was made).
        print(card.read_text(encoding="utf-8") + (f"\n{_line(info)}" if path.is_file() else "")
              if card.is_file() else _line(info))
        return 0
    models = list_models()
    if args.json:
        for info in models:
            print(json.dumps(info.to_dict()))
        return 0
    if not models:
        print(f"no shipped models found in {[str(d) for d in model_dirs()]}")
        return 0
    print("\n".join(_line(m) for m in models))
    return 0
