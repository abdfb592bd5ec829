"""Running a model: ``backends`` (the one ``Backend`` interface over torch and ONNX Runtime,
used by every path that classifies crops), ``predict`` (whole cartridges: read, detect, crop,
classify, journal, tables), ``summary`` (the typed run summary), ``guard`` (per-event checks of
the calls) and ``distributed`` (sharding cartridges across ``torchrun`` processes)."""
