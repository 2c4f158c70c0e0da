"""The import code stays readable: no function over 80 lines, none more complex than C901 15, and
no import cycle between its modules (plan → compare → rows, never back).

Read from the source (imports inside functions and under TYPE_CHECKING count too), as
tests/exports/test_code_shape.py does for the exports, so a unit that grows back into a
345-line build_plan fails here rather than in review.
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

PACKAGES = ["capture.imports"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_import_modules_do_not_import_each_other_in_a_cycle(package):
    cycle = import_cycle(package)
    assert cycle is None, (
        f"Import cycle: {' -> '.join(cycle or [])}. Move what both need into a module of its own (as RowPlan went to rows.py, used by both plan.py and compare.py)."
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_function_is_longer_than_80_lines(package):
    long = long_functions(package_path(package))
    assert not long, f"Split these into named steps (≤ {MAX_LINES} lines each): {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_function_is_more_complex_than_15(package):
    report = too_complex(package_path(package))
    assert not report, f"Split these into named steps (complexity ≤ {MAX_COMPLEXITY}):\n{report}"
