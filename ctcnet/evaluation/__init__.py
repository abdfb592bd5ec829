"""How good is a model: ``metrics`` (per-class figures, calibration error), ``features`` and
``baselines`` (the marker gate and a feature classifier to beat), ``calibration`` (temperature
and review band), ``evaluate`` (the full report on a labelled crop set), ``held_out`` (the
held-out tests behind a shipped model's card), ``model_card`` + ``card_markdown`` (the card as
JSON and Markdown), ``perturb`` + ``matrix`` (the robustness
matrix), ``counts`` (called versus true counts of cartridges) and ``plots`` (figures)."""
