"""Run ``ctcnet ARGS`` the way an install without torch runs it: ``python scripts/no_torch.py
ARGS`` (ctcnet itself must be installed, as in any of its virtual environments).

torch, torchvision and Lightning are made unimportable, as on ``pip install 'ctcnet[predict]'``,
and every attempt to import them is recorded, even one whose ImportError was caught: after the
command, any attempt is named on stderr and the exit status is 70 instead of the command's.
``tests/test_predict_install.py`` and ``.ci/run`` (in a real ``.[predict]`` environment) run
the torch-free subcommands through it.
"""

from __future__ import annotations

import builtins
import runpy
import signal
import sys

BLOCKED = ("torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics")
TRIED_TORCH = 70  # the exit status when ctcnet tried to import one of them


class _Unimportable:
    """A meta path finder for which the blocked packages are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def main(args: list[str]) -> int:
    """Run ``ctcnet`` with ``args``, torch and the other blocked packages unimportable; returns
    its exit status, or ``TRIED_TORCH`` if it tried to import one."""
    # A finder that refuses them, not None in sys.modules: libraries that look for torch by
    # its entry there (scipy's array API check) would take a None for a loaded module.
    sys.meta_path.insert(0, _Unimportable())
    tried: list[str] = []
    real_import = builtins.__import__

    def recording_import(name, *rest, **options):
        if name.split(".")[0] in BLOCKED:
            tried.append(name)
        return real_import(name, *rest, **options)

    builtins.__import__ = recording_import
    # Ctrl-C (SIGINT) stops the command even when a script started it in the background, where
    # the shell leaves SIGINT ignored: `ctcnet review` then ends as it does for a person.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["ctcnet", *args]
    code = 0
    try:
        runpy.run_module("ctcnet", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    finally:
        tried += [n for n in BLOCKED if sys.modules.get(n) is not None]
        if tried:
            print(f"no_torch: ctcnet tried to import {sorted(set(tried))}", file=sys.stderr)
    return TRIED_TORCH if tried else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
