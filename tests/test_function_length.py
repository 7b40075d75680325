"""Outside `brushedit_inpaint` (diffusers-style pipelines), no function is over 100 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 100


@pytest.mark.parametrize("package", ["agents", "tools", "graphs", "interfaces", "evals"])
def test_no_function_over_100_lines(package):
    long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > LIMIT:
                    long.append(f"{path.relative_to(ROOT)}:{start} {node.name} "
                                f"({node.end_lineno - start + 1} lines)")
    assert long == []
