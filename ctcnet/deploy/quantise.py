"""int8 quantisation of an exported model, and the macro-F1 gate that decides whether to keep it.

Static quantisation (onnxruntime.quantization, QDQ format): weights per output channel in int8,
activations in uint8 with ranges calibrated on real raw crops run through the whole graph.
Only ``Conv``, ``Gemm`` and ``MatMul`` are quantised; the normalisation in front of them (TopK
percentiles, compression) and the softmax stay float32, because a percentile over raw 16-bit counts
loses the background estimate entirely at 8 bits.

An int8 model is only kept when its macro-F1 on labelled crops is less than ``max_drop_points``
(0.5 by default) below the float32 model's on the same crops.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctcnet.errors import CtcnetError, InputError

QUANTISED_OPS = ["Conv", "Gemm", "MatMul"]
MAX_F1_DROP_POINTS = 0.5


@dataclass
class LabelledCrops:
    """Raw crops (N, C, S, S) with class indices (N,), and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def split(self, calibration_count: int, seed: int = 0) -> tuple[LabelledCrops, LabelledCrops]:
        """Disjoint (calibration, evaluation) parts, so the gate is not measured on calib data."""
        order = np.random.default_rng(seed).permutation(len(self.images))
        n_cal = min(calibration_count, max(1, len(order) // 2))
        cal, ev = order[:n_cal], order[n_cal:]
        return (LabelledCrops(self.images[cal], self.labels[cal], self.source),
                LabelledCrops(self.images[ev], self.labels[ev], self.source))


def f1_drop_points(f1_reference: float, f1_candidate: float) -> float:
    """How many percentage points the candidate's macro-F1 lies below the reference's."""
    return 100.0 * (f1_reference - f1_candidate)


def check_f1_gate(f1_fp32: float, f1_int8: float, max_drop_points: float = MAX_F1_DROP_POINTS
                  ) -> None:
    """Refuse an int8 model whose macro-F1 drops by more than ``max_drop_points`` (0: any
    drop at all; it refused even none)."""
    drop = f1_drop_points(f1_fp32, f1_int8)
    if drop > max_drop_points:
        raise CtcnetError(f"int8 model refused: macro-F1 {f1_int8:.4f} vs fp32 "
                          f"{f1_fp32:.4f} is a drop of {drop:.2f} percentage points (limit "
                          f"{max_drop_points}); ship the fp32 (or fp16) model instead")


class _CropReader:
    """onnxruntime CalibrationDataReader over raw crops, in small batches."""

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int = 64):
        self._batches = iter([{input_name: np.ascontiguousarray(images[i:i + batch_size],
                                                                dtype=np.float32)}
                              for i in range(0, len(images), batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # part of the reader protocol; calibration reads the data once
        pass


def quantise_int8(fp32_path: str | Path, out_path: str | Path, calibration_images: np.ndarray,
                  input_name: str = "raw") -> None:
    """Write a static int8 (QDQ) version of an fp32 ONNX model, calibrated on raw crops."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_images) == 0:
        raise InputError("int8 quantisation needs calibration crops, got none")

    class Reader(_CropReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference first: the quantiser needs tensor ranks to quantise per channel.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            prepared, str(out_path), Reader(calibration_images, input_name),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax)
