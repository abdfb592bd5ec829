"""Train a ctcnet classifier: ``python train.py --config configs/default.yaml [--a.b=value ...]``.

The same as ``ctcnet train`` (:func:`ctcnet.cli.main`): one-line errors and exit statuses, a
Ctrl-C reported as an interrupt (130).
"""

import sys

from ctcnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
