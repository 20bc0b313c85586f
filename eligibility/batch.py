"""Screen a whole cohort table at once, and count attrition criterion by criterion.

:func:`screen_frame` evaluates the same rule trees as :func:`eligibility.engine.screen`
column-wise (numpy, Kleene logic on int8 codes) and gives the same verdicts, status,
missing fields and ``to_confirm`` per patient; reasons and evidence are only in the
single-patient path. :func:`attrition_table` turns its output into sequential and
per-criterion counts with small cells suppressed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from eligibility.criteria import TrialCriteria
from eligibility.derived import (
    ACR1997_ITEMS,
    cockcroft_gault_ml_min,
)
from eligibility.rules import (
    OPS,
    ORDER_OPS,
    AllNode,
    AnyNode,
    CompareNode,
    IsFalseNode,
    IsTrueNode,
    JudgmentNode,
    MoreThanDaysAgoNode,
    Node,
    NotNode,
    RiskGateNode,
    Window,
    WithinDaysNode,
)

# Truth codes (same meaning as eligibility.rules.Truth).
FALSE, TRUE, UNKNOWN, JUDGMENT = 0, 1, 2, 3
VERDICTS = ("not_met", "met", "unknown", "needs_judgment")  # indexed by truth code
VERDICT_DTYPE = pd.CategoricalDtype(list(VERDICTS))
SMALL_CELL = 10
"""Counts below this are suppressed in shareable attrition tables (PLP convention)."""

Codes = NDArray[np.int8]
Masks = dict[str, NDArray[np.bool_]]  # field → "reported missing" per row


class _Columns:
    """Typed access to a cohort table's columns; absent columns are all missing.

    Conversions are cached per column: the criteria read some fields many times
    (age feeds the age criterion and creatinine clearance).
    """

    def __init__(self, df: pd.DataFrame, screening_date: date) -> None:
        self.df = df
        self.n = len(df)
        self.screening = pd.Timestamp(screening_date)
        self.screening_date = screening_date
        self._cache: dict[tuple[str, str], Any] = {}

    def _cached(self, kind: str, name: str, make: Callable[[], Any]) -> Any:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def column(self, name: str) -> pd.Series:
        """The column itself (a DataFrame lookup costs ~80 µs: fetch each once)."""
        return self._cached("column", name, lambda: self.df[name])

    def na(self, name: str) -> NDArray[np.bool_]:
        if name not in self.df:
            return np.ones(self.n, dtype=bool)
        return self._cached(
            "na", name, lambda: self.column(name).isna().to_numpy(dtype=bool)
        )

    def num(self, name: str) -> NDArray[np.float64]:
        if name not in self.df:
            return np.full(self.n, np.nan)
        return self._cached(
            "num",
            name,
            lambda: (
                pd.to_numeric(self.column(name))
                .astype("float64")
                .to_numpy(na_value=np.nan)
            ),
        )

    def flag(self, name: str) -> NDArray[np.bool_]:
        """True where recorded true (missing → False; combine with :meth:`na`)."""
        if name not in self.df:
            return np.zeros(self.n, dtype=bool)
        return self._cached(
            "flag", name, lambda: self.column(name).fillna(False).to_numpy(dtype=bool)
        )

    def text_compare(self, name: str, op: str, value: Any) -> NDArray[np.bool_]:
        """``column <op> value`` for a text/category column (missing → False)."""
        if name not in self.df:
            return np.zeros(self.n, dtype=bool)
        column = self.column(name)
        if op == "in":
            hit = column.isin(list(value))
        elif op in ("==", "!="):
            hit = column == value if op == "==" else column != value
        else:
            hit = pd.Series(OPS[op](column.astype(object), value), index=column.index)
        return hit.fillna(False).to_numpy(dtype=bool) & ~self.na(name)

    def dates(self, name: str) -> NDArray[np.datetime64]:
        """The column as ``datetime64[D]`` (NaT where missing)."""
        return self._cached(
            "dates",
            name,
            lambda: pd.to_datetime(self.column(name)).to_numpy(dtype="datetime64[D]"),
        )

    def days_since(self, name: str) -> NDArray[np.float64]:
        """Whole days from the date to the screening date (NaN if missing)."""
        if name not in self.df:
            return np.full(self.n, np.nan)

        def make() -> NDArray[np.float64]:
            days = np.datetime64(self.screening_date, "D") - self.dates(name)
            out = days.astype(np.float64)
            out[np.isnat(days)] = np.nan
            return out

        return self._cached("days_since", name, make)


def _birthdays(
    month: NDArray[np.int64], day: NDArray[np.int64], year: NDArray[np.int64]
) -> NDArray[np.datetime64]:
    """Each birthday in ``year``; 29 February falls on 1 March in common years."""
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    shift = (month == 2) & (day == 29) & ~leap
    month = np.where(shift, 3, month)
    day = np.where(shift, 1, day)
    first_of_month = (year - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (
        month - 1
    ).astype("timedelta64[M]")
    return first_of_month.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")


def calendar_age_columns(
    date_of_birth: NDArray[np.datetime64], on: date
) -> NDArray[np.float64]:
    """`eligibility.derived.calendar_age_years` for a column of dates (NaT → NaN)."""
    dob = date_of_birth.astype("datetime64[D]")
    missing = np.isnat(dob)
    dob = np.where(missing, np.datetime64("2000-01-01"), dob)
    year = dob.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dob.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dob - dob.astype("datetime64[M]").astype("datetime64[D]")).astype(
        np.int64
    ) + 1
    today = np.datetime64(on, "D")
    years = on.year - year
    years = years - (today < _birthdays(month, day, np.full_like(year, on.year)))
    last = _birthdays(month, day, year + years)
    following = _birthdays(month, day, year + years + 1)
    age = years + (today - last).astype(np.float64) / (following - last).astype(
        np.float64
    )
    return np.where(missing, np.nan, age)


def _result(codes: Codes, masks: Masks) -> tuple[Codes, Masks]:
    """Keep missing-field masks only where the value is unknown."""
    unknown = codes == UNKNOWN
    return codes, {k: m & unknown for k, m in masks.items() if (m & unknown).any()}


def _missing_where(cols: _Columns, codes: Codes, name: str) -> tuple[Codes, Masks]:
    na = cols.na(name)
    codes = np.where(na, UNKNOWN, codes).astype(np.int8)
    return _result(codes, {name: na})


def _bool(x: NDArray[np.bool_]) -> Codes:
    return np.where(x, TRUE, FALSE).astype(np.int8)


# --- derived variables, column-wise (same arithmetic as eligibility.derived) ----------
Interval = tuple[NDArray[np.float64], NDArray[np.float64], Masks]


def _age(cols: _Columns) -> Interval:
    def make() -> Interval:
        has_dob = ~cols.na("date_of_birth")
        age = np.full(cols.n, np.nan)
        if has_dob.any():
            age = calendar_age_columns(cols.dates("date_of_birth"), cols.screening_date)
        age = np.where(has_dob, age, cols.num("age_years"))
        gone = np.isnan(age)
        return age, age, {"date_of_birth": gone, "age_years": gone}

    return cols._cached("derived", "age", make)


def _acr(cols: _Columns) -> Interval:
    true = np.zeros(cols.n)
    missing: Masks = {}
    for name in ACR1997_ITEMS:
        true += cols.flag(name) & ~cols.na(name)
        missing[name] = cols.na(name)
    n_missing = np.sum(list(missing.values()), axis=0)
    return true, true + n_missing, missing


def _crcl(cols: _Columns) -> Interval:
    age, _, age_missing = _age(cols)
    weight, creat = cols.num("weight_kg"), cols.num("creatinine_umol_l")
    with np.errstate(invalid="ignore", divide="ignore"):
        base = cockcroft_gault_ml_min(age, weight, creat, female=False)
    female = cols.text_compare("sex", "==", "female")
    crcl = np.where(female, base * 0.85, base)
    missing = {
        **age_missing,
        "weight_kg": np.isnan(weight),
        "creatinine_umol_l": np.isnan(creat),
    }
    return crcl, crcl, missing


def _times_uln(value: str, uln: str) -> Callable[[_Columns], Interval]:
    def ratio(cols: _Columns) -> Interval:
        v, u = cols.num(value), cols.num(uln)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = v / u
        return r, r, {value: np.isnan(v), uln: np.isnan(u)}

    return ratio


_DERIVED: dict[str, Callable[[_Columns], Interval]] = {
    "age_at_screening_years": _age,
    "acr1997_count": _acr,
    "crcl_cockcroft_gault_ml_min": _crcl,
    "alt_x_uln": _times_uln("alt_u_l", "alt_uln_u_l"),
    "ast_x_uln": _times_uln("ast_u_l", "ast_uln_u_l"),
}


def _compare_interval(node: CompareNode, iv: Interval) -> tuple[Codes, Masks]:
    lo, hi, missing = iv
    fn = OPS[node.op]
    open_ = np.isnan(lo) | np.isnan(hi)
    with np.errstate(invalid="ignore"):
        at_lo = np.asarray(fn(lo, node.value), dtype=bool)
        at_hi = np.asarray(fn(hi, node.value), dtype=bool)
    point = lo == hi
    # An interval decides an ordering when both ends agree; equality needs a point.
    decided = point | (at_lo == at_hi) if node.op in ORDER_OPS else point
    codes = np.where(open_ | ~decided, UNKNOWN, _bool(at_lo)).astype(np.int8)
    return _result(codes, missing)


# --- the recursion -------------------------------------------------------------------
def _combine(parts: list[tuple[Codes, Masks]], *, is_all: bool) -> tuple[Codes, Masks]:
    decisive, fallback = (FALSE, TRUE) if is_all else (TRUE, FALSE)
    stack = np.stack([p[0] for p in parts])
    codes = np.full(stack.shape[1], fallback, dtype=np.int8)
    codes[(stack == JUDGMENT).any(axis=0)] = JUDGMENT
    codes[(stack == UNKNOWN).any(axis=0)] = UNKNOWN
    codes[(stack == decisive).any(axis=0)] = decisive
    masks: Masks = {}
    for child_codes, child_masks in parts:
        for k, m in child_masks.items():
            hit = m & (child_codes == UNKNOWN)
            masks[k] = masks[k] | hit if k in masks else hit
    return _result(codes, masks)


def _window(w: Window, cols: _Columns, *, within: bool) -> tuple[Codes, Masks]:
    ever_name, last_name = f"{w.exposure}_ever", f"{w.exposure}_last_date"
    ever_na, ever = cols.na(ever_name), cols.flag(ever_name)
    ago = cols.days_since(last_name)
    last_na = np.isnan(ago)
    with np.errstate(invalid="ignore"):
        if w.half_lives is not None and w.half_life_field is not None:
            half_life = cols.num(w.half_life_field)
            hl_na = np.isnan(half_life)
            window = np.maximum(w.days, w.half_lives * half_life)
            inside = np.where(hl_na, ago <= w.days, ago <= window)
            hl_open = hl_na & ~(ago <= w.days)
        else:
            inside = ago <= w.days
            hl_na = hl_open = np.zeros(cols.n, dtype=bool)
    value = _bool(inside if within else ~inside)
    codes = np.where(hl_open, UNKNOWN, value)
    codes = np.where(last_na, UNKNOWN, codes)
    codes = np.where(ever_na, UNKNOWN, codes)
    codes = np.where(~ever_na & ~ever, FALSE, codes).astype(np.int8)
    masks: Masks = {
        ever_name: ever_na,
        last_name: ~ever_na & ever & last_na,
    }
    if w.half_life_field is not None:
        masks[w.half_life_field] = ~ever_na & ever & ~last_na & hl_open
    return _result(codes, masks)


def evaluate_frame(
    node: Node, cols: _Columns, risks: NDArray[np.float64], threshold: float
) -> tuple[Codes, Masks]:
    """Column-wise twin of :func:`eligibility.rules.evaluate` (codes + masks)."""
    match node:
        case AllNode():
            parts = [evaluate_frame(c, cols, risks, threshold) for c in node.all_]
            return _combine(parts, is_all=True)
        case AnyNode():
            parts = [evaluate_frame(c, cols, risks, threshold) for c in node.any_]
            return _combine(parts, is_all=False)
        case NotNode():
            codes, masks = evaluate_frame(node.not_, cols, risks, threshold)
            flipped = np.where(
                codes == TRUE, FALSE, np.where(codes == FALSE, TRUE, codes)
            )
            return flipped.astype(np.int8), masks
        case IsTrueNode() | IsFalseNode():
            name = node.is_true if isinstance(node, IsTrueNode) else node.is_false
            value = cols.flag(name)
            want = isinstance(node, IsTrueNode)
            return _missing_where(cols, _bool(value == want), name)
        case WithinDaysNode():
            return _window(node.within_days, cols, within=True)
        case MoreThanDaysAgoNode():
            return _window(node.more_than_days_ago, cols, within=False)
        case JudgmentNode():
            return np.full(cols.n, JUDGMENT, dtype=np.int8), {}
        case RiskGateNode():
            return _bool(risks > threshold), {}
        case CompareNode():
            if node.derived is not None:
                return _compare_interval(node, _DERIVED[node.derived](cols))
            if node.days_since is not None:
                ago = cols.days_since(node.days_since)
                return _compare_interval(
                    node, (ago, ago, {node.days_since: np.isnan(ago)})
                )
            assert node.field is not None
            na = cols.na(node.field)
            if node.op == "in" or isinstance(node.value, str):
                ok = cols.text_compare(node.field, node.op, node.value)
            else:
                with np.errstate(invalid="ignore"):
                    ok = np.asarray(OPS[node.op](cols.num(node.field), node.value))
            return _missing_where(cols, _bool(ok & ~na), node.field)
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover


def screen_frame(
    df: pd.DataFrame,
    risks: Sequence[float] | NDArray[np.float64],
    bands: Sequence[tuple[float, float] | None] | NDArray[np.float64] | None,
    screening_date: date,
    criteria: TrialCriteria,
) -> pd.DataFrame:
    """Screen every row of a cohort table; same decisions as the single path.

    Args:
        df: one row per patient, columns named as :class:`PatientRecord` fields
            (absent columns count as missing for everyone).
        risks: the model's 2-year LN risk per row (probability 0–1).
        bands: per row ``(low, high)`` or None; an (n, 2) array with NaN for "no
            band"; or None for no bands at all.
        screening_date: day 0 for ages and windows.
        criteria: from :func:`eligibility.criteria.load_criteria`.

    Returns:
        Same index as ``df``: ``status``, ``risk``, ``missing_fields`` (tuple),
        ``to_confirm`` (tuple), ``gate_passed`` and one verdict column per criterion
        id (``met`` / ``not_met`` / ``unknown`` / ``needs_judgment``).
    """
    n = len(df)
    risk = np.asarray(risks, dtype=np.float64)
    if risk.shape != (n,) or np.any((risk < 0) | (risk > 1)) or np.isnan(risk).any():
        raise ValueError("risks: one probability in [0, 1] per row")
    if bands is None:
        band = np.full((n, 2), np.nan)
    else:
        band = np.array(
            [(np.nan, np.nan) if b is None else b for b in bands], dtype=np.float64
        ).reshape(n, 2)
    threshold = criteria.risk_gate.threshold
    cols = _Columns(df.reset_index(drop=True), screening_date)

    codes: dict[str, Codes] = {}
    masks: dict[str, Masks] = {}
    fails = np.zeros(n, dtype=bool)
    to_obtain = np.zeros(n, dtype=bool)
    for c in criteria.criteria:
        codes[c.id], masks[c.id] = evaluate_frame(c.rule, cols, risk, threshold)
        fails |= codes[c.id] == (TRUE if c.kind == "exclusion" else FALSE)
        if not c.settled_at_visit:
            to_obtain |= codes[c.id] == UNKNOWN
    gate = risk > threshold
    straddles = (band[:, 0] <= threshold) & (threshold < band[:, 1])
    status = np.where(
        ~gate | fails,
        "ineligible",
        np.where(to_obtain | straddles, "needs_review", "eligible"),
    )

    missing_fields: list[tuple[str, ...]] = [()] * n
    to_confirm: list[tuple[str, ...]] = [()] * n
    for i in np.flatnonzero(status != "ineligible"):
        fields: list[str] = []
        confirm: list[str] = []
        for c in criteria.criteria:
            code = codes[c.id][i]
            if code == JUDGMENT or (code == UNKNOWN and c.settled_at_visit):
                confirm.append(c.id)
            elif code == UNKNOWN:
                fields += [k for k, m in masks[c.id].items() if m[i]]
        missing_fields[i] = tuple(dict.fromkeys(fields))
        to_confirm[i] = tuple(confirm)

    out = pd.DataFrame(
        {
            "status": status,
            "risk": risk,
            "gate_passed": gate,
            "missing_fields": missing_fields,
            "to_confirm": to_confirm,
        }
    )
    verdicts = pd.DataFrame(
        {
            c.id: pd.Categorical.from_codes(codes[c.id], dtype=VERDICT_DTYPE)
            for c in criteria.criteria
        }
    )
    out = pd.concat([out, verdicts], axis=1)
    out.index = df.index
    return out


def _verdict_codes(column: pd.Series) -> Codes:
    """Truth codes of a verdict column (categorical from screen_frame, or text)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and column.dtype == VERDICT_DTYPE:
        return column.cat.codes.to_numpy()
    lookup = {v: i for i, v in enumerate(VERDICTS)}
    return np.array([lookup[v] for v in column], dtype=np.int8)


def attrition_table(
    screened: pd.DataFrame, criteria: TrialCriteria, *, min_cell: int = SMALL_CELL
) -> pd.DataFrame:
    """Sequential and per-criterion counts, in criterion order, small cells hidden.

    Step 0 is everyone screened; step 1 the risk gate; then one step per criterion.
    ``remaining`` counts patients not yet ruled out after that step (sequential);
    ``ruled_out_here`` those it removes from the remainder; ``fails``, ``unknown``
    and ``needs_judgment`` are per-criterion counts over everyone.

    Args:
        screened: output of :func:`screen_frame`.
        criteria: the criteria it was screened with.
        min_cell: counts in ``1 … min_cell − 1`` are shown as ``"<10"`` (strings);
            0 is shown as 0.

    Returns:
        One row per step with columns ``step``, ``kind``, ``remaining``,
        ``ruled_out_here``, ``fails``, ``unknown``, ``needs_judgment``.
    """
    alive = np.ones(len(screened), dtype=bool)
    rows = [
        {
            "step": "screened",
            "kind": "",
            "remaining": int(alive.sum()),
            "ruled_out_here": 0,
            "fails": 0,
            "unknown": 0,
            "needs_judgment": 0,
        }
    ]
    gate = screened["gate_passed"].to_numpy(dtype=bool)
    rows.append(
        {
            "step": f"risk > {criteria.risk_gate.threshold:g}",
            "kind": "gate",
            "remaining": int((alive & gate).sum()),
            "ruled_out_here": int((alive & ~gate).sum()),
            "fails": int((~gate).sum()),
            "unknown": 0,
            "needs_judgment": 0,
        }
    )
    alive &= gate
    for c in criteria.criteria:
        v = _verdict_codes(screened[c.id])
        fails = v == (TRUE if c.kind == "exclusion" else FALSE)
        rows.append(
            {
                "step": c.id,
                "kind": c.kind,
                "remaining": int((alive & ~fails).sum()),
                "ruled_out_here": int((alive & fails).sum()),
                "fails": int(fails.sum()),
                "unknown": int((v == UNKNOWN).sum()),
                "needs_judgment": int((v == JUDGMENT).sum()),
            }
        )
        alive &= ~fails
    table = pd.DataFrame(rows)
    counts = ["remaining", "ruled_out_here", "fails", "unknown", "needs_judgment"]
    for col in counts:
        table[col] = [
            f"<{min_cell}" if 0 < x < min_cell else x for x in table[col].tolist()
        ]
    return table
