"""The performance record: ``ctcnet benchmark`` measures the product on the machine it runs on.

Sections (each a plain function returning rows of plain data):

* :mod:`~ctcnet.benchmark.classification`: crops/s of the inference backends at several batch
  sizes, as ratios to torch eager in the same run;
* :mod:`~ctcnet.benchmark.cartridges`: whole cartridges end to end at 10, 175 and 1,000 frames
  (each run in its own process, :mod:`~ctcnet.benchmark.workers`), every stage per event beside
  its floor measured in the same run (:mod:`~ctcnet.benchmark.floors`), peak RSS and how both
  grow with the cartridge; beside the middle size its peers (:mod:`~ctcnet.benchmark.peer`):
  the classic gate in 1 and 2 worker processes and predict in 1 and 2 processes, and the ratios
  that compare them;
* :mod:`~ctcnet.benchmark.training`: training throughput.

:mod:`~ctcnet.benchmark.record` runs them and writes ``docs/benchmarks.md`` (table,
:mod:`~ctcnet.benchmark.render`) and ``docs/benchmarks.json`` (record). Every timing is a
median over repeated runs with the spread (min-max) shown. ``--quick`` runs every section on
tiny inputs, to check the benchmark still works (CI); its numbers mean nothing.

:mod:`~ctcnet.benchmark.stages` is the quick stage check CI runs: a small cartridge through
predict, each stage per event as a multiple of the model's floor, against recorded multiples,
with the work around the network over the network's and predict over the classic gate.
"""

from ctcnet.benchmark.cartridges import bench_cartridges, linked_cartridge
from ctcnet.benchmark.common import BenchSettings, machine_info, stats
from ctcnet.benchmark.record import run_benchmark
from ctcnet.benchmark.render import render_cartridges, render_markdown
from ctcnet.benchmark.training import training_throughput

__all__ = ["BenchSettings", "bench_cartridges", "linked_cartridge", "machine_info",
           "render_cartridges", "render_markdown", "run_benchmark", "stats",
           "training_throughput"]
