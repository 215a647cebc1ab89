"""House rule: no function in the core or the pipeline is longer than a screen (70 lines)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 70


@pytest.mark.parametrize("folder", ["bair_world", "training"])
def test_no_function_is_longer_than_a_screen(folder):
    long = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over {} lines: {}".format(MAX_LINES, ", ".join(long))
