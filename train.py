"""Train a ctcnet classifier: ``python train.py --config configs/default.yaml [--a.b=value ...]``.

A shim over :func:`ctcnet.training.cli.main` (the same as ``ctcnet train``).
"""

import sys

from ctcnet.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
