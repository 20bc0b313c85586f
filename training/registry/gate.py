"""The checks a model version must pass: to be registered at all, and to be promoted.

Registration (every new version, the first one included) applies absolute criteria
on its held-out patients and requires enough held-out events to measure the review
zone (a zone that cannot be measured is refused, not shipped); promotion applies the
absolute criteria to the challenger and compares its AUROC with the champion's on the
same patients. A metric that could not be computed (NaN) fails its check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from training.config import RegistrationCriteria


@dataclass(frozen=True)
class Check:
    """One criterion: the model's value, the limit, the verdict."""

    name: str
    value: float
    limit: str
    passed: bool

    def __str__(self) -> str:
        mark = "pass" if self.passed else "FAIL"
        return f"[{mark}] {self.name} = {self.value:.4g} (required {self.limit})"


class RegistrationRefusedError(RuntimeError):
    """A model version failed the registration gate: nothing was registered."""

    def __init__(self, checks: tuple[Check, ...], run_id: str = "") -> None:
        self.checks = checks
        self.run_id = run_id
        failed = "; ".join(str(c) for c in checks if not c.passed)
        super().__init__(f"not registered — the registration gate refused: {failed}")


def _check(name: str, value: float, limit: str, passed: bool) -> Check:
    return Check(name, value, limit, bool(passed) and math.isfinite(value))


def absolute_checks(
    metrics: Mapping[str, float], criteria: RegistrationCriteria
) -> tuple[Check, ...]:
    """Calibration slope, |mean predicted − observed|, ICI and the AUROC floor."""
    slope = metrics["cal_slope"]
    citl = abs(metrics["mean_predicted"] - metrics["prevalence"])
    ici = metrics["ici"]
    auroc_low = metrics["auroc_ci_low"]
    return (
        _check(
            "cal_slope",
            slope,
            f"in [{criteria.cal_slope_min}, {criteria.cal_slope_max}]",
            criteria.cal_slope_min <= slope <= criteria.cal_slope_max,
        ),
        _check(
            "abs_mean_predicted_minus_observed",
            citl,
            f"≤ {criteria.max_abs_citl}",
            citl <= criteria.max_abs_citl,
        ),
        _check("ici", ici, f"≤ {criteria.max_ici}", ici <= criteria.max_ici),
        _check(
            "auroc_ci_low",
            auroc_low,
            f"> published baseline {criteria.min_auroc_ci_low}",
            auroc_low > criteria.min_auroc_ci_low,
        ),
    )


def registration_checks(
    metrics: Mapping[str, float], criteria: RegistrationCriteria
) -> tuple[Check, ...]:
    """What a new version must pass to be registered: the absolute criteria, and a
    review zone whose event rates can be measured on the held-out patients."""
    return (
        *absolute_checks(metrics, criteria),
        *_zone_checks(metrics, criteria.min_gate_events),
    )


def _zone_checks(metrics: Mapping[str, float], minimum: int) -> tuple[Check, ...]:
    """The review zone can be measured: enough held-out events among the patients it
    auto-passes and among those it sends to review (NaN: no zone at all)."""
    return tuple(
        _check(
            f"gate_{group}_events",
            metrics.get(f"gate_{group}_events", math.nan),
            f"≥ {minimum} held-out events to measure the zone's {label}",
            metrics.get(f"gate_{group}_events", math.nan) >= minimum,
        )
        for group, label in (("passed", "auto-passed"), ("reviewed", "reviewed"))
    )


def champion_check(
    challenger: Mapping[str, float], champion: Mapping[str, float]
) -> Check:
    """The challenger's AUROC is not below the champion's lower 95 % CI bound."""
    floor = champion["auroc_ci_low"]
    return _check(
        "auroc_vs_champion",
        challenger["auroc"],
        f"≥ champion's lower 95% CI bound {floor:.4f}",
        challenger["auroc"] >= floor and math.isfinite(floor),
    )
