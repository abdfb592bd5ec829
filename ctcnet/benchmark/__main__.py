"""``python -m ctcnet.benchmark KIND ...``: one benchmark measurement in a process of its own
(:mod:`ctcnet.benchmark.workers`); ``ctcnet benchmark`` starts these."""

import sys

from ctcnet.benchmark.workers import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
