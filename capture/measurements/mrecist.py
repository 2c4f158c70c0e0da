"""Modified RECIST of patient-derived xenograft (PDX) trials, from a tumour volume series.

Source: Gao H, Korn JM, Ferretti S, et al. High-throughput screening using patient-derived tumor
xenografts to predict clinical trial drug response. Nat Med 2015;21(11):1318-1325 (methods).

- Volume change at day t: dVol_t = (V_t - V_initial) / V_initial x 100 %, V_initial the volume at
  the first measurement (day 0, start of treatment).
- BestResponse: the minimum dVol_t over measurements with t >= 10 days.
- BestAvgResponse: the minimum, over t >= 10 days, of the mean of dVol from the first measurement
  up to t (the mean over the measurements taken, each counting once).
- Category (tested in this order, every comparison strict): mCR when BestResponse < -95 % and
  BestAvgResponse < -40 %; mPR when BestResponse < -50 % and BestAvgResponse < -20 %; mSD when
  BestResponse < 35 % and BestAvgResponse < 30 %; mPD otherwise.

Verification: the formulas and the 10-day minimum were checked against the documentation and
source of the Xeva package (bhklab, R/mRECIST.R), which implements Gao et al. The thresholds were
checked against a second, independent public R implementation of the same criteria (its
NPDXEResponseLevel: BestResponse bands -95 / -50 / +35 %, BestAvgResponse bands -40 / -20 / +30 %,
and of the two levels the worse one), which gives the same category as the tests-in-order rule
above for every pair of values (taking the worse level of two ordered bandings is the same as
requiring both values under a category's pair). Only exact boundary values differ in principle
(that implementation's bands are closed; here every comparison is strict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

MIN_DAY = 10


class MRecist(StrEnum):
    """mRECIST categories of Gao et al. 2015."""

    MCR = "mCR"
    MPR = "mPR"
    MSD = "mSD"
    MPD = "mPD"


# (category, BestResponse must be below, BestAvgResponse must be below), tested in order.
THRESHOLDS = (
    (MRecist.MCR, Decimal(-95), Decimal(-40)),
    (MRecist.MPR, Decimal(-50), Decimal(-20)),
    (MRecist.MSD, Decimal(35), Decimal(30)),
)


@dataclass(frozen=True)
class MRecistResult:
    """Best response, best average response (percent) and the category they give."""

    best_response_pct: float
    best_average_response_pct: float
    category: MRecist


def volume_changes(volumes: Sequence[float]) -> list[Decimal]:
    """dVol_t in percent of the first volume, for every measurement."""
    if not volumes or volumes[0] <= 0:
        raise ValueError("The volume series needs a first (day 0) volume above zero.")
    initial = Decimal(str(volumes[0]))
    return [(Decimal(str(volume)) - initial) / initial * 100 for volume in volumes]


def categorise(best_response: Decimal, best_average: Decimal) -> MRecist:
    """The mRECIST category of a (BestResponse, BestAvgResponse) pair."""
    for category, response_below, average_below in THRESHOLDS:
        if best_response < response_below and best_average < average_below:
            return category
    return MRecist.MPD


def mrecist(days: Sequence[int], volumes: Sequence[float], min_day: int = MIN_DAY) -> MRecistResult:
    """mRECIST of one animal from its measurement days (day 0 first, increasing) and volumes."""
    if len(days) != len(volumes):
        raise ValueError("Give one volume for every measurement day.")
    if any(later <= earlier for earlier, later in zip(days, days[1:], strict=False)):
        raise ValueError("Measurement days must increase strictly; sort the series first.")
    changes = volume_changes(volumes)
    averages = [sum(changes[: index + 1], Decimal(0)) / (index + 1) for index in range(len(changes))]
    eligible = [index for index, day in enumerate(days) if day - days[0] >= min_day]
    if not eligible:
        raise ValueError(f"No measurement at least {min_day} days after the first one.")
    best = min(changes[index] for index in eligible)
    best_average = min(averages[index] for index in eligible)
    return MRecistResult(float(best), float(best_average), categorise(best, best_average))
