"""The network and what travels with it: ``spec`` (the model's self-description, stored in
every checkpoint and ONNX file), ``normalise`` (raw counts -> network input, inside the model),
``nets`` (backbones by name), ``classifier`` (normalisation + backbone, save and load) and
``saliency`` (per-channel Grad-CAM: what the network looked at, for the review gallery)."""
