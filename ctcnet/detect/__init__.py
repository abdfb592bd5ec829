"""Frames -> events -> crops: find every event in a scanned frame (``detection``), cut crops
around them and bring any crop to model scale (``cropping``: pixel size and crop size, one
function for every path; ``resampling``: the weights it resamples with); labelled crop
folders join here too (``crop_dataset``, their pixel size measured from their nuclei when not
stated: ``pixel_size``). numpy/scipy; torch only for
frames on the model's GPU (``device``) and crops that arrive as tensors."""
