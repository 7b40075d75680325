"""The layers and the no-circle rule are import-linter contracts (pyproject.toml), checked here.

`brushedit_inpaint < tools < agents < graphs < interfaces < evals`, each importing only those
below it; no two modules of a package import each other in a circle, at any depth; the servers
share only `interfaces.common`. Imports inside functions count: a lazy import is still a
dependency.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_project_keeps_its_import_contracts():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "Layers" in result.stdout


def test_a_circle_through_an_import_inside_a_function_breaks_the_contract(tmp_path):
    """What the contract would say of `graphs/cli.py` and `graphs/commands.py` before #20."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("import pkg.commands\n")
    (package / "commands.py").write_text("def message():\n    from pkg import cli\n")
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""\
        [importlinter]
        root_package = pkg

        [importlinter:contract:circles]
        name = No circles
        type = acyclic_siblings
        ancestors = pkg
    """))
    result = lint_imports(cwd=tmp_path)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout
    assert ".cli -> .commands" in result.stdout or ".commands -> .cli" in result.stdout
