"""Reading and writing what ctcnet meets on disk.

``panel`` and ``taxonomy`` (what the channels and classes are), ``images`` (one TIFF/PNG/JPEG
file -> a ``(C, H, W)`` array), ``scan`` (whole cartridges of frames), ``crop_dataset``
(labelled crop folders and manifests), ``input_lists`` (text files naming inputs) and
``atomic`` (every output is written temp + rename).
Nothing here imports torch.
"""
