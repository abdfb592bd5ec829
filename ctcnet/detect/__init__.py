"""Frames -> events -> crops: find every event in a scanned frame (``detection``), cut crops
around them and bring any crop to model scale (``cropping``: pixel size and crop size, one
function for every path). numpy/scipy; torch only to resample crops of another pixel size."""
