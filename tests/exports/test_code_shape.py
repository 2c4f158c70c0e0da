"""The export code stays readable: no import cycles between its modules, no function over 80 lines.

Read from the source (imports inside functions count too), so a cycle hidden in a function body,
as builder.py ↔ imaging.py once was, fails here rather than in review.
"""

from __future__ import annotations

import pytest

from tests.code_shape import (
    MAX_COMPLEXITY,
    MAX_LINES,
    import_cycle,
    long_functions,
    package_path,
    too_complex,
)

PACKAGES = ["capture.exports"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_export_modules_do_not_import_each_other_in_a_cycle(package):
    cycle = import_cycle(package)
    assert cycle is None, (
        f"Import cycle: {' -> '.join(cycle or [])}. Move what both need into a module of its own (as Table went to columns.py and Deidentifier to deidentify.py)."
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_no_export_function_is_longer_than_80_lines(package):
    long = long_functions(package_path(package))
    assert not long, f"Split these into named steps (≤ {MAX_LINES} lines each): {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_export_function_is_more_complex_than_15(package):
    report = too_complex(package_path(package))
    assert not report, f"Split these into named steps (complexity ≤ {MAX_COMPLEXITY}):\n{report}"
