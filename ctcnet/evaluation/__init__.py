"""How good is a model: ``metrics`` (per-class figures, calibration error), ``features`` and
``baselines`` (the marker gate and a feature classifier to beat), ``calibration`` (temperature
and review band), ``evaluate`` (the full report on a labelled crop set), ``model_card`` (the
held-out tests behind a shipped model's card), ``perturb`` + ``matrix`` (the robustness
matrix), ``counts`` (called versus true counts of cartridges) and ``plots`` (figures)."""
