"""The codebook: one row per exported column, saying what it holds and where it comes from.

Every export carries it (codebook.csv in the bundle, a sheet in the workbook). The numeric
codes statistical formats use for coded values are defined here (`stat_codes`) so the
writers and the codebook can never disagree.
"""

from __future__ import annotations

from .columns import Column
from .naming import CODEBOOK_FIELD, STAT_FORMATS, short_names

# `column` is the full name (CSV, XLSX, Parquet); stata_name, spss_name and sas_name are the names
# the statistical formats of the export write (naming.py), blank for formats not in the export.
CODEBOOK_FIELDS = [
    "table",
    "column",
    "stata_name",
    "spss_name",
    "sas_name",
    "label",
    "datatype",
    "form",
    "form_version",
    "event",
    "instance",
    "item",
    "item_group",
    "group_row",
    "option",
    "element_public_id",
    "element_version",
    "element_long_name",
    "question",
    "element_datatype",
    "unit",
    "permissible_values",
    "concept_codes",
    "stat_values",
    "missing_codes",
    "note",
]

# Statistical formats cannot hold a text code with a value label; coded columns become numbers.
# Codes that are whole numbers keep their number; other code lists are numbered 1..n in order.


def stat_codes(col: Column) -> dict[str, int]:
    codes = [code for code, _, _ in col.codes]
    try:
        numbers = [int(code) for code in codes]
    except ValueError:
        return {code: n for n, code in enumerate(codes, start=1)}
    if len(set(numbers)) != len(numbers) or any(str(n) != c for n, c in zip(numbers, codes, strict=True)):
        return {code: n for n, code in enumerate(codes, start=1)}
    return dict(zip(codes, numbers, strict=True))


def _values(col: Column) -> str:
    parts = []
    for code, meaning, concept in col.codes:
        parts.append(f"{code} = {meaning}" + (f" [{concept}]" if concept else ""))
    return "; ".join(parts)


def _concepts(col: Column) -> str:
    if col.option is not None:  # a checkbox option carries the concept of its permissible value
        return "".join(c for code, _, c in col.item.element.codes if code == col.option)  # type: ignore[union-attr]  # an option column has its item
    return "; ".join(c for _, _, c in col.codes if c)


def rows_for(
    table_name: str,
    columns: list[Column],
    missing_codes: list[dict],
    formats: list[str] = (),  # type: ignore[assignment]  # read only
) -> list[dict]:
    rows = []
    missing = "; ".join(f"{c['code']} = {c['meaning']}" for c in missing_codes)
    stat_names = {
        CODEBOOK_FIELD[fmt]: short_names(columns, fmt) if fmt in formats else [""] * len(columns)
        for fmt in STAT_FORMATS
    }
    for n, col in enumerate(columns):
        item = col.item
        element = item.element if item else None
        mapping = stat_codes(col) if col.datatype == "code" else {}
        stat_values = (
            "; ".join(f"{number} = {code}" for code, number in mapping.items())
            if any(str(number) != code for code, number in mapping.items())
            else ""
        )
        rows.append(
            {
                "table": table_name,
                "column": col.name,
                **{field: names[n] for field, names in stat_names.items()},
                "label": col.label,
                "datatype": col.datatype,
                "form": col.form or "",
                "form_version": item.form_version if item else "",
                "event": col.event or "",
                "instance": col.instance or "",
                "item": item.name if item else col.key,
                "item_group": (item.group or "") if item else "",
                "group_row": col.row or "",
                "option": col.option or "",
                "element_public_id": element.public_id if element else "",
                "element_version": element.version if element else "",
                "element_long_name": element.long_name if element else "",
                "question": element.question if element else "",
                "element_datatype": element.datatype if element else "",
                "unit": element.unit if element else "",
                "permissible_values": _values(col),
                "concept_codes": _concepts(col),
                "stat_values": stat_values,
                "missing_codes": missing if col.source == "record" else "",
                "note": col.note,
            }
        )
    return rows
