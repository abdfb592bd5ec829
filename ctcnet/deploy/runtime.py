"""The torch-free ONNX runtime under its public name: instrument software imports
``ctcnet.deploy.runtime`` (docs/deploying.md). The code is :mod:`ctcnet.inference.onnx_runtime`,
beside the backends, which run every ONNX model through it; this module only re-exports it and,
like it, never imports torch."""

from ctcnet.inference.onnx_runtime import (  # noqa: F401 (API)
    ACCEPTED_DTYPES,
    BALANCED_PRIOR,
    CARTRIDGE_PRIOR,
    DIGEST_KEY,
    FAILED_CLASS,
    FUSED_OUTPUT,
    INPUT_CONTRACT,
    INPUT_NAME,
    MARKER_OUTPUTS,
    MARKERS_KEY,
    MEASUREMENTS_OUTPUT,
    OUTPUT_NAMES,
    SPEC_FORMAT,
    SPEC_KEY,
    DecisionRule,
    OnnxClassifier,
    calls_from_proba,
    default_batch_size,
    finite_crops,
    model_digest,
    prior_rule,
    select_providers,
)
