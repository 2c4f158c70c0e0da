"""The measurements a sheet may name, and the UCUM units each may be written in.

A measurement sheet names its measurement in words ("long axis", "SUVmax") or by code
("SCT:103339001"); each becomes the coded concept a TID 1500 report would carry (DICOM CID 7470
linear, 7471 area, 7472 volume; SUVbw with its derivation as TID 1419 has it), so a sheet's
measurements and an SR's are one kind of row. Units are UCUM codes (case-sensitive: "mm", "cm3",
"mL"); a unit must also fit the measurement's dimension (a diameter in mm or cm, a volume in mm3,
cm3 or mL, an SUV as 1 or g/mL). If you add a measurement here, add it to docs/imports.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import concepts
from .store import Coded

LENGTH, AREA, VOLUME, SUV = "length", "area", "volume", "SUV"

UNITS = {
    LENGTH: ("mm", "cm"),
    AREA: ("mm2", "cm2"),
    VOLUME: ("mm3", "cm3", "mL", "ml"),
    SUV: ("1", "g/mL", "g/ml", "{SUVbw}g/mL", "{SUVbw}g/ml"),
}
UCUM = frozenset(unit for units in UNITS.values() for unit in units)

# Spellings people use that are not UCUM, with the UCUM code to write instead.
NOT_UCUM = {
    "cc": "cm3",
    "mm^3": "mm3",
    "mm³": "mm3",
    "cm^3": "cm3",
    "cm³": "cm3",
    "mm^2": "mm2",
    "mm²": "mm2",
    "cm^2": "cm2",
    "cm²": "cm2",
    "MM": "mm",
    "CM": "cm",
    "ML": "mL",
    "millimetre": "mm",
    "millimeter": "mm",
    "millimetres": "mm",
    "millimeters": "mm",
    "centimetre": "cm",
    "centimeter": "cm",
    "suv": "1",
    "SUV": "1",
    "g/cc": "g/mL",
    "none": "1",
    "unitless": "1",
}


@dataclass(frozen=True)
class MeasurementKind:
    """A measurement a sheet may name: its concept, derivation and dimension."""

    concept: Coded
    dimension: str
    derivation: str = ""
    names: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return (
            f"{self.derivation} {self.concept.meaning}".strip() if self.derivation else self.concept.meaning
        )


SUVBW = Coded(*concepts.SUV_MAX)  # one concept, three derivations (Maximum, Mean, Peak)
KINDS = (
    MeasurementKind(Coded(*concepts.LONG_AXIS), LENGTH, names=("long axis", "longest diameter", "ld")),
    MeasurementKind(Coded(*concepts.SHORT_AXIS), LENGTH, names=("short axis", "short axis diameter", "sad")),
    MeasurementKind(Coded("SCT", "81827009", "Diameter"), LENGTH, names=("diameter",)),
    MeasurementKind(Coded("SCT", "42798000", "Area"), AREA, names=("area",)),
    MeasurementKind(Coded(*concepts.VOLUME), VOLUME, names=("volume", "tumor volume", "tumour volume")),
    MeasurementKind(SUVBW, SUV, "Maximum", names=("suvmax", "suv max", "maximum suv", "suvbw max")),
    MeasurementKind(SUVBW, SUV, "Mean", names=("suvmean", "suv mean", "mean suv")),
    MeasurementKind(SUVBW, SUV, "Peak", names=("suvpeak", "suv peak", "peak suv")),
)


def _folded(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


_BY_NAME = {_folded(name): kind for kind in KINDS for name in (*kind.names, kind.title)}
# A code names the measurement when the concept has one derivation only (SUVbw has three).
_BY_CODE = {
    f"{kind.concept.scheme}:{kind.concept.code}".lower(): kind
    for kind in KINDS
    if sum(k.concept == kind.concept for k in KINDS) == 1
}


def measurement_kind(text: str) -> MeasurementKind | None:
    """The measurement a sheet's cell names ("long axis", "SUVmax", "SCT:103339001"), or None."""
    folded = _folded(text)
    if folded in _BY_NAME:
        return _BY_NAME[folded]
    code = folded.replace(" ", "")
    return _BY_CODE.get(code) or next(
        (kind for key, kind in _BY_CODE.items() if key.split(":")[1] == code), None
    )


def known_names() -> str:
    return ", ".join(kind.names[0] for kind in KINDS)


def unit_problem(unit: str, kind: MeasurementKind | None) -> str:
    """Why `unit` cannot carry `kind` (not UCUM, or another dimension), or '' when it can."""
    if not unit:
        return "The unit is blank; write the UCUM unit (mm, cm, mm3, mL, g/mL, 1)."
    if unit not in UCUM:
        hint = NOT_UCUM.get(unit) or NOT_UCUM.get(unit.lower())
        if hint:
            return f"{unit!r} is not a UCUM unit; write {hint!r}."
        return f"{unit!r} is not a UCUM unit Capture knows for measurements; use one of {', '.join(sorted(UCUM))}."
    if kind is None:
        return ""
    allowed = UNITS[kind.dimension]
    if unit in allowed:
        return ""
    dimension = next(d for d, units in UNITS.items() if unit in units)
    return (
        f"{unit!r} is a unit of {dimension}; {kind.title} is a {kind.dimension}: use {' or '.join(allowed)}."
    )
