"""The package's layers hold: import-linter's contracts in pyproject.toml (docs/architecture.md,
"Layers"), checked on every import between ctcnet's modules, those inside functions too; and
no module grows past 500 lines."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The test extra installs import-linter; its command lies beside this interpreter.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_no_import_crosses_a_layer_upwards_or_between_independent_packages():
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: pip install -e '.[test]'"
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    # Its report names each import that breaks a contract, with the line it is on.
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_no_module_is_over_500_lines():
    # One purpose a module: past 500 lines a module has grown a second job to split off.
    long = {str(p.relative_to(REPO)): n for p in sorted((REPO / "ctcnet").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_every_text_file_ctcnet_reads_or_writes_names_its_encoding():
    """Path.read_text/write_text without an encoding take the machine's locale's: under a
    Latin-1 or ASCII locale a sign-off by "Zoë" was answered as saved but never reached
    summary.json or index.html. The kernel's own /proc files are the exception."""
    import ast

    unnamed = []
    for path in sorted((REPO / "ctcnet").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("read_text", "write_text")):
                continue
            given = len(node.args) > (0 if node.func.attr == "read_text" else 1) or any(
                k.arg == "encoding" for k in node.keywords)
            if not given and "/proc" not in ast.get_source_segment(source, node.func.value):
                unnamed.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not unnamed, f"text read or written in the locale's encoding: {unnamed}"
