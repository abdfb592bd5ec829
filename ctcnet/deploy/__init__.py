"""Shipping a model to instrument software: ``export`` (checkpoint -> ONNX with its spec
embedded, verified against torch), ``quantise`` (fp16 / int8 variants) and ``runtime`` (the
numpy + onnxruntime wrapper's public name; its code is ``ctcnet.inference.onnx_runtime``, which
the backends use too; importing it, or this package, never imports torch)."""
