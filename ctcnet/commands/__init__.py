"""Subcommands of the ``ctcnet`` CLI, one module each (see :mod:`ctcnet.cli`)."""
