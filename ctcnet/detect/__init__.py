"""Frames -> events -> crops: find every event in a scanned frame (``detection``) and cut
model-sized crops around them (``cropping``). Pure numpy/scipy; nothing here imports torch."""
