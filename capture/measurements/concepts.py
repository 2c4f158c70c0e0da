"""The coded concepts of the measurements Capture reads and computes from, defined once.

Each is (coding scheme designator, code value, code meaning), as TID 1500 measurement groups
carry them and as highdicom / pydicom name them (`pydicom.sr.codedict.codes.SCT.LongAxis`, ...);
tests/measurements/test_compute.py checks them against pydicom's dictionary. Plain tuples, so
that modules that compare codes need not import pydicom (a library kept at its boundary).
"""

from __future__ import annotations

Concept = tuple[str, str, str]

LONG_AXIS: Concept = ("SCT", "103339001", "Long axis")  # codes.SCT.LongAxis
SHORT_AXIS: Concept = ("SCT", "103340004", "Short axis")  # codes.SCT.ShortAxis
VOLUME: Concept = ("SCT", "118565006", "Volume")  # codes.SCT.Volume
# SUVmax: the body-weight SUV (DCM 126401, CID 7180 "Measurement Type", which pydicom's codedict
# does not name) with the derivation Maximum (codes.SCT.Maximum) in the measurement group.
SUV_MAX: Concept = ("DCM", "126401", "SUVbw")
MAXIMUM: Concept = ("SCT", "56851009", "Maximum")  # codes.SCT.Maximum: SUV_MAX's derivation

# Units (UCUM) the response rules read: diameters in millimetres, volumes in cubic millimetres.
MM = "mm"
CM = "cm"
MM3 = "mm3"
CM3 = "cm3"
ML = "mL"


def key(concept: Concept) -> tuple[str, str]:
    """(scheme, code): how stored measurements are matched (the meaning is only a label)."""
    return concept[0], concept[1]
