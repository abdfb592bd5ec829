"""Running a model: ``backends`` (one interface over torch and ONNX Runtime), ``predict``
(whole cartridges: read, detect, crop, classify, journal, tables) and ``distributed`` (sharding
cartridges across ``torchrun`` processes)."""
