"""The record and audit code stays readable (issue 18, "Small units"): no import cycles between
their modules, no function over 80 lines, none more complex than McCabe 15 (ruff's C901).

The same checks as tests/exports/test_code_shape.py, over capture/records and capture/audit:
save_record (128 lines), validation._clean_scalar (complexity 26), bulk.write_records and
audit.append_events were split into named steps; this keeps them so.
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

PACKAGES = ["capture.audit", "capture.records"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_modules_do_not_import_each_other_in_a_cycle(package):
    cycle = import_cycle(package)
    assert cycle is None, (
        f"Import cycle: {' -> '.join(cycle or [])}. Move what both need into a module of its own."
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_longer_than_80_lines(package):
    long = long_functions(package_path(package))
    assert not long, f"Split these into named steps (≤ {MAX_LINES} lines each): {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_more_complex_than_15(package):
    report = too_complex(package_path(package))
    assert not report, f"Split these into named steps (complexity ≤ {MAX_COMPLEXITY}):\n{report}"
