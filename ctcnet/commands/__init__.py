"""Subcommands of the ``ctcnet`` CLI, one module each (see :mod:`ctcnet.cli`).

``ctcnet`` imports every module here to build its parser, so a module imports at its top only
what is light (the standard library, ``ctcnet.errors``, ``ctcnet.io`` readers, the model
registry); the library that brings numpy, torch, pandas or onnxruntime is imported inside
``run`` (and the helpers it calls): ``ctcnet --help`` stays fast and the torch-free base install
runs ``ctcnet models``.
"""
