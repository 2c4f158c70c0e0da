"""No function in capture/ is longer than 80 lines (issue 18: small units a newcomer can read).

Complexity has its own ceiling in ruff's C901 rule (pyproject.toml); this counts lines, which ruff
does not. Migrations are generated code and left out."""

from __future__ import annotations

from pathlib import Path

from tests.code_shape import MAX_LINES as LIMIT
from tests.code_shape import long_functions

CAPTURE = Path(__file__).resolve().parents[1] / "capture"


def test_no_function_in_capture_is_longer_than_80_lines():
    assert long_functions(CAPTURE) == []


def test_the_length_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{n} = {n}" for n in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def too_long():\n{body}\n")
    assert long_functions(tmp_path) == [f"{tmp_path.name}/long.py:1 too_long (81 lines)"]
