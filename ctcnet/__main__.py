"""``python -m ctcnet``: the same as the ``ctcnet`` command."""

import sys

from ctcnet.cli import main

sys.exit(main())
