"""Where a model's time goes in onnxruntime on the CPU: each operator type's share.

Runs a shipped model's ONNX file (or any ONNX file ctcnet exported) with onnxruntime's own
profiler on synthetic raw-count crops, as predict runs it (one intra-op thread beside the
frame threads, predict's batch size), and adds up the kernel time of each operator type. Then
times the elementwise operators the graph's normalisation uses, each alone on a tensor of the
same size, in nanoseconds a value: what each costs in onnxruntime's CPU kernels (Log, which
the normalisation's asinh needs once a pixel, costs several times what Exp and Tanh do).

    python scripts/onnx_node_profile.py [--model ctcnet-default] [--batch 8] [--runs 200]
        [--threads 1]

Prints two markdown tables. No torch needed.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The elementwise operators the normalisation's graph is made of (asinh written as a log),
# beside Exp and Tanh for comparison.
ELEMENTWISE = ("Abs", "Sqrt", "Log", "Exp", "Tanh", "Div", "Mul", "Add")


def op_shares(path: Path, batch: int, runs: int, threads: int) -> tuple[dict, float]:
    """({op type: share of the kernel time}, ms a crop) of ``runs`` runs of a batch."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        shape = [batch, *feed.shape[1:]]
        crops = np.random.default_rng(0).poisson(200, shape).astype(np.float32)
        session.run(None, {feed.name: crops})  # the first run allocates
        t0 = time.perf_counter()
        for _ in range(runs):
            session.run(None, {feed.name: crops})
        per_crop_ms = (time.perf_counter() - t0) / (runs * batch) * 1e3
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values()) or 1
    return {op: t / total for op, t in by_op.most_common()}, per_crop_ms


def elementwise_ns(shape: list[int], threads: int, repeats: int = 30) -> dict[str, float]:
    """Nanoseconds a value of each of ``ELEMENTWISE`` alone on a float32 tensor of ``shape``
    (the fastest of ``repeats`` runs)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    values = np.random.default_rng(0).uniform(0.1, 50, shape).astype(np.float32)
    result = {}
    for op in ELEMENTWISE:
        inputs = ["x", "x"] if op in ("Div", "Mul", "Add") else ["x"]
        info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")]
        graph = helper.make_graph([helper.make_node(op, inputs, ["y"])], op, [info[0]],
                                  [info[1]])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            session.run(None, {"x": values})
            best = min(best, time.perf_counter() - t0)
        result[op] = best / values.size * 1e9
    return result


def main(argv=None) -> int:
    """Profile the model and the elementwise operators; print both tables."""
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default="ctcnet-default",
                   help="a shipped model's name or an ONNX file")
    p.add_argument("--batch", type=int, default=8, help="crops a run (predict's on a CPU: 8)")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads (predict's beside two frame threads on 2 cores: 1)")
    args = p.parse_args(argv)

    import onnxruntime as ort

    from ctcnet.nn.registry import resolve_model

    path = resolve_model(args.model, "onnx")
    if path.suffix != ".onnx":
        raise SystemExit(f"{path} is not an ONNX file")
    shares, per_crop_ms = op_shares(path, args.batch, args.runs, args.threads)
    print(f"{path.name}, onnxruntime {ort.__version__}, batch {args.batch}, "
          f"{args.threads} thread(s): {per_crop_ms:.3f} ms a crop\n")
    print("| operator | share of kernel time |\n|---|---:|")
    for op, share in shares.items():
        if share >= 0.005:
            print(f"| {op} | {share:.1%} |")
    rest = sum(s for s in shares.values() if s < 0.005)
    print(f"| the rest | {rest:.1%} |\n")
    import onnx

    shape = [args.batch, *[d.dim_value for d in onnx.load(str(path)).graph.input[0].type
                           .tensor_type.shape.dim[1:]]]
    print(f"| operator alone, {'x'.join(map(str, shape))} float32 | ns a value |\n|---|---:|")
    for op, ns in elementwise_ns(shape, args.threads).items():
        print(f"| {op} | {ns:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
