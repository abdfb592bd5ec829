"""Reading and writing what ctcnet meets on disk.

``panel`` and ``taxonomy`` (what the channels and classes are), ``images`` (one TIFF/PNG/JPEG
file -> a ``(C, H, W)`` array), ``scan`` (whole cartridges of frames), ``input_lists`` (text
files naming inputs) and ``atomic`` (every output is written temp + rename). The bottom layer:
it imports no other ctcnet package but ``ctcnet.errors`` (labelled crop folders, read at model
scale, are ``ctcnet.detect.crop_dataset``).
Nothing here imports torch.
"""
