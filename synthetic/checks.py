"""The synthetic cohort against its literature targets (clinical.md §8).

:func:`check_cohort` measures a cohort from :func:`synthetic.generator.generate_cohort`
on every quantity §8 names — incidence and the true-risk distribution (§8.1),
marginals of the predictors (§8.3, with the published anchors of §4), correlations
made by the latent activity factor (§8.3), missingness (§8.6) and the prevalence of
the trial exclusions (§8.2) — and says whether each lies in its accepted band.

The targets are data (``targets.yaml`` beside this module): each names its band, its
anchor and one measurement of :data:`MEASUREMENTS` with arguments, checked when the
file is loaded. The exclusion prevalences are read from the trial's criteria file
through :func:`eligibility.screen_frame`, the same reading that screens patients.
The bands hold for the default 20,000-patient cohort; much smaller cohorts add
sampling noise that no band here allows for.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sklearn.metrics import roc_auc_score

from data_schema import OUTCOME_COLUMN, TRUE_RISK_COLUMN, field_specs
from eligibility import TrialCriteria, load_criteria, screen_frame
from eligibility.population import KIDNEY_INVOLVEMENT, group_verdicts
from synthetic.generator import REFERENCE_DATE

GROUPS: tuple[str, ...] = (
    "incidence",
    "marginal",
    "correlation",
    "missingness",
    "exclusion",
)
"""Groups of :func:`check_cohort` rows, in order."""

TARGETS_PATH = Path(__file__).with_name("targets.yaml")
"""The literature targets of clinical.md §8."""

#: The incidence a target written as ``target: incidence`` follows.
INCIDENCE = "incidence"


class TargetsError(ValueError):
    """A targets file is invalid; the message names the target id."""


# --- the cohort as the measurements see it --------------------------------------------
@cache
def _trial_criteria() -> TrialCriteria:
    """The registry's criteria file, read once (it ships with the package)."""
    return load_criteria()


def kidney_involvement_met(
    df: pd.DataFrame, screening_date: date | None = None
) -> np.ndarray:
    """Patients with prior kidney involvement by the criteria file's definition."""
    day = screening_date or df.attrs.get("dgp_reference_date") or REFERENCE_DATE
    verdicts = group_verdicts(df, _trial_criteria(), KIDNEY_INVOLVEMENT, day)
    return verdicts["met"].to_numpy(dtype=bool)


def exclusions_met(
    df: pd.DataFrame,
    screening_date: date | None = None,
    criteria: TrialCriteria | None = None,
) -> pd.DataFrame:
    """Which patients meet each exclusion criterion of the trial's criteria file.

    Every row is screened with :func:`eligibility.screen_frame` as if above the risk
    gate, so each criterion is read on the recorded values. A criterion whose datum
    is missing (``unknown``) or that asks for the investigator (``needs_judgment``)
    is not met here.

    Args:
        df: a cohort table (``PatientRecord`` columns).
        screening_date: day 0 of the criteria's windows and ages; default the
            cohort's ``reference_date`` (``df.attrs``), else the generator's default.
        criteria: default the registry's criteria (``eligibility.load_criteria()``).

    Returns:
        Same index as ``df``; one bool column per exclusion criterion id, in the
        file's order (True = the patient has the excluding condition).
    """
    criteria = _trial_criteria() if criteria is None else criteria
    if screening_date is None:
        screening_date = date.fromisoformat(
            df.attrs.get("dgp_reference_date", REFERENCE_DATE.isoformat())
        )
    verdicts = screen_frame(df, np.ones(len(df)), screening_date, criteria)
    ids = [c.id for c in criteria.criteria if c.kind == "exclusion"]
    met = verdicts[ids] == "met"
    met.index = df.index
    return met


@dataclass
class CohortView:
    """What a measurement sees: a cohort table, and its exclusions read once.

    Attributes:
        table: a cohort table (``PatientRecord`` columns, outcome, true risk).
        screening_date: day 0 of the criteria (see :func:`exclusions_met`).
    """

    table: pd.DataFrame
    screening_date: date | None = None

    @cached_property
    def exclusions(self) -> pd.DataFrame:
        """:func:`exclusions_met` of the table, computed on first use."""
        return exclusions_met(self.table, self.screening_date)

    @cached_property
    def kidney_free(self) -> CohortView:
        """The patients without prior kidney involvement (the criteria file's
        ``kidney-involvement`` group): the population of a new-onset LN model."""
        involved = kidney_involvement_met(self.table, self.screening_date)
        return CohortView(
            self.table[~involved].reset_index(drop=True), self.screening_date
        )


# --- named measurements ---------------------------------------------------------------
# Cuts a target may put on a recorded value. The criteria's rule language is
# eligibility's own; targets need only these four comparisons.
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TRANSFORMS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "identity": lambda v: v,
    "log": np.log,
    "log10": np.log10,
}


def _column_arg(value: Any) -> str:
    known = {*field_specs(), OUTCOME_COLUMN, TRUE_RISK_COLUMN}
    if value not in known:
        raise ValueError(f"{value!r} is not a record field, outcome or true risk")
    return value


def _one_of(choices: Mapping[str, Any]) -> Callable[[Any], str]:
    """A check that a value is one of the names of ``choices``."""

    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {sorted(choices)}")
        return value

    return check


def _number_arg(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not finite")
    return float(value)


def _probability_arg(value: Any) -> float:
    number = _number_arg(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{value!r} is not in [0, 1]")
    return number


def _text_arg(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _exclusions_arg(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of criterion ids")
    criteria = _trial_criteria().criteria
    exclusions = {c.id for c in criteria if c.kind == "exclusion"}
    unknown = [v for v in value if v not in exclusions]
    if unknown:
        raise ValueError(f"{unknown} are not exclusion criteria of the trial file")
    return tuple(value)


@dataclass(frozen=True)
class Measurement:
    """A named way of measuring a cohort, with a check for each argument.

    Attributes:
        name: the name targets use.
        function: ``function(cohort, **args) -> float``.
        arguments: argument name → check that returns the value to use or raises
            ``ValueError``.
    """

    name: str
    function: Callable[..., float]
    arguments: Mapping[str, Callable[[Any], Any]]

    def bind(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Checked arguments; raises ``ValueError`` naming the bad argument."""
        unknown = sorted(set(args) - set(self.arguments))
        if unknown:
            raise ValueError(f"{self.name}: unknown arguments {unknown}")
        parameters = inspect.signature(self.function).parameters
        missing = [
            name
            for name in self.arguments
            if name not in args and parameters[name].default is inspect.Parameter.empty
        ]
        if missing:
            raise ValueError(f"{self.name}: missing arguments {missing}")
        bound = {}
        for name, value in args.items():
            try:
                bound[name] = self.arguments[name](value)
            except ValueError as exc:
                raise ValueError(f"{self.name}: argument {name}: {exc}") from None
        return bound


MEASUREMENTS: dict[str, Measurement] = {}
"""Every measurement a target can name, by name."""


def _measurement(
    name: str, **arguments: Callable[[Any], Any]
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``function`` under ``name``; every argument needs a check."""

    def register(function: Callable[..., float]) -> Callable[..., float]:
        parameters = list(inspect.signature(function).parameters)[1:]
        if parameters != list(arguments):
            raise TypeError(f"{name}: checks {list(arguments)} != {parameters}")
        MEASUREMENTS[name] = Measurement(name, function, arguments)
        return function

    return register


def _recorded(cohort: CohortView, column: str) -> pd.Series:
    return cohort.table[column].dropna()


@_measurement("mean", column=_column_arg)
def _mean(cohort: CohortView, column: str) -> float:
    """Mean of the recorded values."""
    return float(cohort.table[column].astype(float).mean())


@_measurement("median", column=_column_arg)
def _median(cohort: CohortView, column: str) -> float:
    """Median of the recorded values."""
    return float(cohort.table[column].astype(float).median())


@_measurement("quantile", column=_column_arg, q=_probability_arg)
def _quantile(cohort: CohortView, column: str, q: float) -> float:
    """Quantile ``q`` (0–1) of the recorded values, linear interpolation."""
    return float(cohort.table[column].astype(float).quantile(q))


@_measurement("share_flag", column=_column_arg)
def _share_flag(cohort: CohortView, column: str) -> float:
    """Share of the recorded values of a yes/no field that are yes."""
    return float((_recorded(cohort, column).astype(float) == 1.0).mean())


@_measurement("share_category", column=_column_arg, category=_text_arg)
def _share_category(cohort: CohortView, column: str, category: str) -> float:
    """Share of the recorded values equal to ``category``."""
    return float((_recorded(cohort, column) == category).mean())


@_measurement("share_cut", column=_column_arg, op=_one_of(_OPS), cut=_number_arg)
def _share_cut(cohort: CohortView, column: str, op: str, cut: float) -> float:
    """Share of the recorded values with ``value op cut``."""
    return float(_OPS[op](_recorded(cohort, column).astype(float), cut).mean())


@_measurement("share_recorded", column=_column_arg)
def _share_recorded(cohort: CohortView, column: str) -> float:
    """Share of patients with the field recorded."""
    return float(cohort.table[column].notna().mean())


@_measurement(
    "correlation",
    x=_column_arg,
    y=_column_arg,
    x_transform=_one_of(_TRANSFORMS),
    y_transform=_one_of(_TRANSFORMS),
)
def _correlation(
    cohort: CohortView,
    x: str,
    y: str,
    x_transform: str = "identity",
    y_transform: str = "identity",
) -> float:
    """Pearson r of two (transformed) fields over the patients with both recorded."""
    df = cohort.table
    pair = pd.DataFrame(
        {
            "x": _TRANSFORMS[x_transform](df[x].astype(float)),
            "y": _TRANSFORMS[y_transform](df[y].astype(float)),
        }
    ).dropna()
    return float(pair["x"].corr(pair["y"]))


@_measurement("mean_risk_where", column=_column_arg, op=_one_of(_OPS), cut=_number_arg)
def _mean_risk_where(cohort: CohortView, column: str, op: str, cut: float) -> float:
    """Mean true 2-year risk of the patients with ``column op cut`` recorded."""
    df = cohort.table
    return float(
        df.loc[_OPS[op](df[column].astype(float), cut), TRUE_RISK_COLUMN].mean()
    )


@_measurement("true_auroc")
def _true_auroc(cohort: CohortView) -> float:
    """AUROC of the true 2-year risk for the 2-year outcome."""
    df = cohort.table
    return float(roc_auc_score(df[OUTCOME_COLUMN].astype(int), df[TRUE_RISK_COLUMN]))


@_measurement("share_excluded", criteria=_exclusions_arg)
def _share_excluded(cohort: CohortView, criteria: Sequence[str]) -> float:
    """Share of patients meeting any of these exclusion criteria.

    Read by :func:`exclusions_met`: a criterion that cannot be decided is not met.
    """
    return float(cohort.exclusions[list(criteria)].any(axis=1).mean())


# --- targets --------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One quantity of the cohort, its target and the band it must lie in.

    Attributes:
        id: stable identifier from the targets file.
        group: one of :data:`GROUPS`.
        quantity: what is measured, with its unit.
        target: the value §8 aims for.
        low: lowest accepted value.
        high: highest accepted value.
        anchor: where the target comes from (clinical.md section, publication).
        measurement: the name of a measurement of :data:`MEASUREMENTS`.
        args: its checked arguments.
    """

    id: str
    group: str
    quantity: str
    target: float
    low: float
    high: float
    anchor: str
    measurement: str
    args: Mapping[str, Any]
    population: str = "all"

    def measure(self, cohort: pd.DataFrame | CohortView) -> float:
        """The quantity in a cohort table (or in its kidney-free part)."""
        if isinstance(cohort, pd.DataFrame):
            cohort = CohortView(cohort)
        if self.population == "kidney-free":
            cohort = cohort.kidney_free
        return MEASUREMENTS[self.measurement].function(cohort, **self.args)


class _TargetEntry(BaseModel):
    """One target as written in the file (before the incidence is known)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    group: str
    quantity: str = Field(min_length=1)
    target: float | str
    range: tuple[float, float] | None = None
    tolerance: float | None = Field(default=None, gt=0)
    anchor: str = Field(min_length=1)
    measure: str
    args: dict[str, Any] = Field(default_factory=dict)
    population: Literal["all", "kidney-free"] = "all"

    @model_validator(mode="after")
    def _band(self) -> _TargetEntry:
        if self.group not in GROUPS:
            raise ValueError(f"group {self.group!r} is not one of {list(GROUPS)}")
        if isinstance(self.target, str) and self.target != INCIDENCE:
            raise ValueError(f"target must be a number or {INCIDENCE!r}")
        if (self.range is None) == (self.tolerance is None):
            raise ValueError("give either range or tolerance")
        if self.target == INCIDENCE and self.tolerance is None:
            raise ValueError(f"a target of {INCIDENCE!r} needs a tolerance")
        if self.range is not None and not (
            self.range[0] <= self.target <= self.range[1]
        ):
            raise ValueError(f"target {self.target} outside its range {self.range}")
        return self


def _band(entry: _TargetEntry, incidence: float) -> tuple[float, float, float]:
    """(target, low, high) of an entry once the cohort's incidence is known."""
    value = incidence if entry.target == INCIDENCE else float(entry.target)
    if entry.tolerance is not None:
        return value, value - entry.tolerance, value + entry.tolerance
    low, high = entry.range
    return value, low, high


def parse_targets(
    document: Any, incidence: float = 0.10, source: str = "<targets>"
) -> tuple[Target, ...]:
    """Validate a targets document (see ``targets.yaml``) and build its targets.

    Args:
        document: the parsed YAML, a mapping with a ``targets`` list.
        incidence: the incidence the cohort was generated for (0–1, exclusive).
        source: names the document in error messages.

    Raises:
        TargetsError: the document is invalid; the message names the target id.
    """
    if not 0.0 < incidence < 1.0:
        raise ValueError(f"incidence must lie in (0, 1), got {incidence}")
    if not isinstance(document, dict) or not isinstance(document.get("targets"), list):
        raise TargetsError(f"{source}: expected a mapping with a 'targets' list")
    targets: list[Target] = []
    for i, raw in enumerate(document["targets"]):
        where = raw.get("id") if isinstance(raw, dict) else None
        where = f"{source}: target {where or f'#{i}'}"
        try:
            entry = _TargetEntry.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
                for e in exc.errors()
            )
            raise TargetsError(f"{where}: {problems}") from None
        if entry.id in {t.id for t in targets}:
            raise TargetsError(f"{where}: duplicate id")
        if entry.measure not in MEASUREMENTS:
            raise TargetsError(
                f"{where}: unknown measurement {entry.measure!r}; "
                f"known: {sorted(MEASUREMENTS)}"
            )
        try:
            args = MEASUREMENTS[entry.measure].bind(entry.args)
        except ValueError as exc:
            raise TargetsError(f"{where}: {exc}") from None
        value, low, high = _band(entry, incidence)
        targets.append(
            Target(
                entry.id,
                entry.group,
                entry.quantity,
                value,
                low,
                high,
                entry.anchor,
                entry.measure,
                args,
                entry.population,
            )
        )
    return tuple(targets)


def cohort_targets(
    incidence: float = 0.10, path: str | Path = TARGETS_PATH
) -> tuple[Target, ...]:
    """Every target of clinical.md §8 that a cohort table can show.

    Args:
        incidence: the 2-year incidence the cohort was generated for (§8.1 base
            case 0.10); the incidence targets follow it, the others assume 0.10.
        path: the targets file (default ``targets.yaml`` of this package).

    Raises:
        TargetsError: the file is invalid; the message names the target id.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TargetsError(f"{path}: not valid YAML: {exc}") from None
    return parse_targets(document, incidence, str(path))


def check_cohort(
    df: pd.DataFrame,
    incidence: float | None = None,
    screening_date: date | None = None,
) -> pd.DataFrame:
    """Measure a synthetic cohort on every target of :func:`cohort_targets`.

    Args:
        df: a table from :func:`synthetic.generator.generate_cohort` (it needs the
            ``true_risk_2y`` column).
        incidence: the incidence it was generated for; default the one the
            generator recorded in ``df.attrs`` (else 0.10).
        screening_date: day 0 of the trial's criteria; default the cohort's
            reference date (see :func:`exclusions_met`).

    Returns:
        One row per target, grouped as :data:`GROUPS`: group, quantity, value,
        target, low, high, ok (value within [low, high]) and anchor.

    Raises:
        KeyError: a column the checks need is missing.
    """
    if incidence is None:
        incidence = float(df.attrs.get("dgp_incidence_base", 0.10))
    cohort = CohortView(df, screening_date)
    rows = []
    for t in cohort_targets(incidence):
        value = t.measure(cohort)
        rows.append(
            {
                "group": t.group,
                "quantity": t.quantity,
                "value": value,
                "target": t.target,
                "low": t.low,
                "high": t.high,
                "ok": bool(t.low <= value <= t.high),
                "anchor": t.anchor,
            }
        )
    return pd.DataFrame(rows)


def missingness_table(
    df: pd.DataFrame, columns: Sequence[str] | None = None
) -> pd.Series:
    """Share of patients with each column recorded, lowest first.

    Args:
        df: a cohort table.
        columns: the columns to show; default the model's predictor fields
            (``PatientRecord`` fields with role "predictor") present in ``df``.
            Fields recorded only when something happened (dates of past events,
            drug names) are left out by default: their absence is not missingness.
    """
    if columns is None:
        columns = [
            name
            for name, spec in field_specs().items()
            if spec.role == "predictor" and name in df
        ]
    return df[list(columns)].notna().mean().sort_values().rename("share recorded")


__all__ = [
    "GROUPS",
    "INCIDENCE",
    "MEASUREMENTS",
    "TARGETS_PATH",
    "CohortView",
    "Measurement",
    "Target",
    "TargetsError",
    "check_cohort",
    "cohort_targets",
    "exclusions_met",
    "missingness_table",
    "parse_targets",
]
