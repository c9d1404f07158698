"""math-verify's own regression cases, read from the sdist of the installed version.

The cases are not copied into this repository: they are read at test time from the
package's source distribution on PyPI (cached under ``.cache/``), with ``ast`` — the
``(gold, pred, expected)`` tuples of the tests that call math-verify with its default
options (LaTeX + expression extraction, precision 6, strict).
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "math-verify-sdist"
# Tests of test_all.py whose body is `compare_strings(gold, pred, match_types=["latex", "expr"])`.
DEFAULT_OPTION_TESTS = {
    "test_simple_fraction_notation", "test_sets_handling", "test_percent_notation",
    "test_math_extraction_edge_cases", "test_math_extraction_additional_cases",
}


def _sdist_test_file() -> Path:
    ver = version("math-verify")
    target = CACHE / f"math_verify-{ver}" / "tests" / "test_all.py"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"math-verify=={ver}", "-d", str(CACHE)], check=True)
    with tarfile.open(next(CACHE.glob(f"math_verify-{ver}.tar.gz"))) as tar:
        tar.extract(f"math_verify-{ver}/tests/test_all.py", CACHE, filter="data")
    return target


def default_option_cases() -> list[tuple[str, str, int]]:
    tree = ast.parse(_sdist_test_file().read_text())
    cases: list[tuple[str, str, int]] = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name in DEFAULT_OPTION_TESTS):
            continue
        for dec in node.decorator_list:
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize":
                for row in ast.literal_eval(dec.args[1]):
                    gold, pred, expected = row[:3]
                    cases.append((gold, pred, int(expected)))
    return cases
