"""Calendar arithmetic: ages in calendar years, for one date or a column of dates.

The formula is written once, on Python dates (:func:`age_on`), and applied to each
distinct date of a column: a registry of 100,000 patients has at most a few tens of
thousands of distinct birth dates, and one patient has one.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
_EPOCH = date(1970, 1, 1).toordinal()


def _birthday(born: date, year: int) -> date:
    """``born``'s birthday in ``year``; 29 February falls on 1 March in common years."""
    try:
        return born.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def age_on(born: date, on: date) -> float:
    """Age in years at ``on``: completed calendar years plus the elapsed fraction of
    the current year of life.

    Exactly 18.0 on the 18th birthday (a 365.25-day year would give 17.998 and
    wrongly fail "aged ≥ 18").
    """
    years = on.year - born.year - (on < _birthday(born, on.year))
    last = _birthday(born, born.year + years)
    following = _birthday(born, born.year + years + 1)
    return years + (on - last).days / (following - last).days


def calendar_age_years(date_of_birth: ArrayLike, on: date) -> FloatArray:
    """:func:`age_on` of every date of a column (``datetime64[D]``; NaT → NaN)."""
    days = np.atleast_1d(np.asarray(date_of_birth, dtype="datetime64[D]"))
    out = np.full(days.shape, np.nan)
    known = ~np.isnat(days)
    if known.any():
        unique, inverse = np.unique(days[known].astype(np.int64), return_inverse=True)
        ages = [age_on(date.fromordinal(int(d) + _EPOCH), on) for d in unique]
        out[known] = np.asarray(ages)[inverse]
    return out


def months_before(day: date, months: int) -> date:
    """The same day of the month ``months`` calendar months before ``day``.

    A day the earlier month does not have clamps to that month's last day: 6 months
    before 2027-08-31 is 2027-02-28, before 2028-08-31 it is 2028-02-29 (a leap
    year), and 6 months before 2026-12-01 is 2026-06-01.
    """
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + month // 12, month % 12 + 1, 1)
    last_day = (following - date(year, month, 1)).days
    return date(year, month, min(day.day, last_day))


def window_days(day: date, *, days: float = 0, months: int = 0) -> float:
    """The length in days of a look-back of ``months`` calendar months (or of
    ``days`` days) ending on ``day``: 6 months before 2026-12-01 is 183 days."""
    if months:
        return float((day - months_before(day, months)).days)
    return float(days)
