"""The time rules of the mapping, column-wise: flattened resources → record columns.

One implementation for one patient and for a registry: :func:`select` takes the
facts of any number of patients (:mod:`data_schema.fhir.flatten`) and returns one
row per patient, the resource each value came from, and a problem for every
resource that could not be used (unknown unit, unmapped code, bad status, a value
out of range, conflicting results on one day). Nothing becomes a value silently: a
resource that is not used is either outside a rule's window (by design) or reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from data_schema.fhir.flatten import frame
from data_schema.fhir.mapping import FhirMapping, FieldRule
from data_schema.fields import field_specs

DAYS_PER_YEAR = 365.25
PROBLEM_COLUMNS = ("pid", "resource", "field", "why")
_EXPOSURE_TYPES = ("MedicationAdministration", "MedicationStatement", "Immunization")


@dataclass
class Selected:
    """Record columns for every patient, where each value came from, and why some
    resources were not used."""

    values: pd.DataFrame  # index pid; one object column per carried field
    provenance: pd.DataFrame  # index pid; the resource (``Observation/abc``) per value
    problems: pd.DataFrame  # PROBLEM_COLUMNS


class _Out:
    """Collects per-field values, sources and problems."""

    def __init__(self, pids: pd.Index) -> None:
        self.pids = pids
        self.values: dict[str, pd.Series] = {}
        self.refs: dict[str, pd.Series] = {}
        self.problems: list[pd.DataFrame] = []
        # rules over the same concepts share their rows (and report problems once)
        self.cache: dict[tuple, tuple] = {}

    def put(self, field: str, values: pd.Series, refs: pd.Series | None) -> None:
        self.values[field] = values
        if refs is not None:
            self.refs[field] = refs

    def report(self, rows: pd.DataFrame, field, why: pd.Series | str) -> None:
        """One problem per row; ``field`` a name, None, or one name per row."""
        if len(rows):
            field = field.to_numpy() if isinstance(field, pd.Series) else field
            why = why if isinstance(why, pd.Series) else pd.Series(why, rows.index)
            self.problems.append(
                pd.DataFrame(
                    {
                        "pid": rows["pid"].to_numpy(),
                        "resource": rows["ref"].to_numpy(),
                        "field": field,
                        "why": why.to_numpy(),
                    }
                )
            )


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "none").astype(str)


def _lookup(s: pd.Series, table: dict) -> pd.Series:
    """``s.map(table)`` by a hash index (NaN where the key is not in the table)."""
    values = pd.Series(list(table.values()), index=list(table.keys()), dtype=object)
    found = values.reindex(s.to_numpy()).to_numpy()
    return pd.Series(found, s.index)


def _num(s: pd.Series) -> pd.Series:
    return pd.Series([f"{x:g}" for x in s], index=s.index, dtype=object)


def _iso(day: pd.Series) -> pd.Series:
    return pd.Series(np.datetime_as_string(day.to_numpy("M8[D]")), day.index)


# --- observations ---
def _latest_by(d: pd.DataFrame, key: str) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Per value of ``key``: the value ``v`` of the most recent day and its resource;
    the rows of keys whose values disagree on that day (a conflict: no value)."""
    if d.empty:
        empty = pd.Series(dtype=np.float64, index=pd.Index([], dtype=np.int64))
        return empty, empty.astype(object), d
    k = d[key].to_numpy(np.int64)
    d = d.iloc[np.lexsort((-d["day"].to_numpy("M8[s]").astype(np.int64), k))]
    k = d[key].to_numpy(np.int64)
    day = d["day"].to_numpy("M8[s]")
    v = d["v"].to_numpy(np.float64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(k)]))
    same_day = day == day[starts][group]
    fv = v[starts][group]
    differ = same_day & (np.abs(v - fv) > 1e-9 * np.maximum(np.abs(fv), 1e-12))
    conflict = np.zeros(len(starts), dtype=bool)
    conflict[np.unique(group[differ])] = True
    keep = starts[~conflict]
    index = pd.Index(k[keep], name=key)
    refs = pd.Series(d["ref"].to_numpy()[keep], index, dtype=object)
    return pd.Series(v[keep], index), refs, d[same_day & conflict[group]]


def _pick_latest(d: pd.DataFrame, out: _Out, field: str, describe) -> pd.Series:
    """The value of each patient's most recent day; disagreeing values on that day
    are a conflict (reported, left unknown)."""
    if d.empty:
        out.put(field, pd.Series(dtype=object), pd.Series(dtype=object))
        return pd.Series(dtype=np.float64)
    values, refs, bad = _latest_by(d, "pid")
    out.report(
        bad, field, "conflicting results on " + _iso(bad["day"]) + ": " + describe(bad)
    )
    out.put(field, values.astype(object), refs)
    return values


def _window(d: pd.DataFrame, rule: FieldRule, sd: np.datetime64) -> pd.Series:
    ok = d["day"] <= sd
    if rule.lookback_days is not None:
        ok &= d["day"] >= sd - np.timedelta64(int(rule.lookback_days), "D")
    return ok


def _observations(g: pd.DataFrame, m: FhirMapping, out: _Out, field: str):
    g = g[g["rtype"] == "Observation"]
    used = g["status"].isin(m.statuses["Observation"]["use"])
    out.report(g[~used], field, "status " + _text(g["status"][~used]) + ": not used")
    g = g[used]
    undated = g["day"].isna()
    out.report(g[undated], field, "no effective date: not used")
    return g[~undated]


def _quantities(by_concept: dict, rules: list[FieldRule]) -> pd.DataFrame:
    """The rows every ``latest`` rule reads, stacked, with the rule's number."""
    parts = []
    for k, rule in enumerate(rules):
        high = rule.value == "reference_high"
        for c in rule.concepts:
            if c not in by_concept:
                continue
            sub = by_concept[c]
            parts.append(
                pd.DataFrame(
                    {
                        "pid": sub["pid"].to_numpy(),
                        "ref": sub["ref"].astype(object),
                        "status": sub["status"].array,  # categorical: codes only
                        "day": sub["day"].to_numpy(),
                        "value": sub["high" if high else "num"].to_numpy(),
                        "unit": sub["high_unit" if high else "unit"].array,
                        "fid": k,
                    },
                    index=sub.index,
                ).reset_index(drop=True)
            )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _latest_all(by_concept: dict, rules: list[FieldRule], sd, m, out: _Out) -> None:
    """Every ``latest`` rule in one pass: units, ranges, windows, the most recent
    value per (field, patient), conflicts. Keeps every usable result (any date) in
    ``out.cache`` for the history rules."""
    g = _quantities(by_concept, rules)
    for rule in rules:
        out.put(rule.field, pd.Series(dtype=object), pd.Series(dtype=object))
    if g.empty:
        return
    specs = field_specs()
    fid = g["fid"].to_numpy()
    names = np.array([r.field for r in rules], dtype=object)
    field = pd.Series(names[fid], g.index, dtype=object)
    used = g["status"].isin(m.statuses["Observation"]["use"]).to_numpy()
    out.report(
        g[~used], field[~used], "status " + _text(g["status"][~used]) + ": not used"
    )
    undated = used & g["day"].isna().to_numpy()
    out.report(g[undated], field[undated], "no effective date: not used")
    is_high = np.array([r.value == "reference_high" for r in rules])[fid]
    none = used & ~undated & g["value"].isna().to_numpy()
    out.report(g[none & ~is_high], field[none & ~is_high], "no valueQuantity: not used")
    live = used & ~undated & ~none
    codes, units = pd.factorize(g["unit"])
    table = np.full((len(rules), len(units) + 1), np.nan)  # last column: no unit
    for k, rule in enumerate(rules):
        for j, u in enumerate(units):
            table[k, j] = rule.units.get(u, np.nan)
    factor = table[fid, np.where(codes < 0, len(units), codes)]
    unknown = live & np.isnan(factor)
    accepted = np.array([", ".join(r.units) for r in rules], dtype=object)
    out.report(
        g[unknown],
        field[unknown],
        "unit "
        + _text(g["unit"][unknown])
        + " not accepted (accepted: "
        + pd.Series(accepted[fid][unknown], g.index[unknown], dtype=object)
        + ")",
    )
    v = g["value"].to_numpy(np.float64) * factor
    ge = np.array([specs[r.field].ge for r in rules])[fid]
    le = np.array([specs[r.field].le for r in rules])[fid]
    counts = np.array([specs[r.field].kind == "int" for r in rules])[fid]
    outside = (
        live
        & ~unknown
        & ((v < ge) | (v > le) | (counts & (np.abs(v - np.round(v)) > 1e-9)))
    )
    unit_names = np.array([specs[r.field].unit for r in rules], dtype=object)
    out.report(
        g[outside],
        field[outside],
        pd.Series(v[outside], g.index[outside]).pipe(_num)
        + " "
        + pd.Series(unit_names[fid][outside], g.index[outside], dtype=object)
        + " is not a valid value for the field",
    )
    days = np.array(
        [np.nan if r.lookback_days is None else r.lookback_days for r in rules]
    )
    day = g["day"].to_numpy("M8[D]")
    age = (sd - day).astype(np.float64)
    window = (age >= 0) & ~(age > days[fid])
    usable = live & ~unknown & ~outside
    keep = usable & window
    v = np.where(counts, np.round(v), v)
    out.cache[_RESULTS] = frame(
        {
            "pid": g["pid"].to_numpy(np.int64)[usable],
            "ref": g["ref"].to_numpy()[usable],
            "day": day[usable],
            "v": v[usable],
            "field": names[fid][usable],
            "window": window[usable],
        }
    )
    d = g[keep].assign(
        v=v[keep], key=fid[keep] * len(out.pids) + g["pid"].to_numpy(np.int64)[keep]
    )
    values, refs, bad = _latest_by(d, "key")
    out.report(
        bad,
        pd.Series(names[bad["fid"].to_numpy()], bad.index, dtype=object),
        "conflicting results on "
        + _iso(bad["day"])
        + ": "
        + bad["ref"]
        + " "
        + bad["v"].pipe(_num)
        + " "
        + pd.Series(unit_names[bad["fid"].to_numpy()], bad.index, dtype=object),
    )
    which = values.index.to_numpy() // len(out.pids)
    pid = values.index.to_numpy() % len(out.pids)
    for k, rule in enumerate(rules):
        mine = which == k
        index = pd.Index(pid[mine], name="pid")
        out.put(
            rule.field,
            pd.Series(values.to_numpy()[mine], index, dtype=object),
            pd.Series(refs.to_numpy()[mine], index, dtype=object),
        )


_RESULTS = ("results",)  # out.cache: every usable result of the latest rules


def _abnormal_rule(rule: FieldRule, sd, out: _Out) -> None:
    key = ("abnormal", *rule.thresholds.items(), *rule.needs_context.items())
    if key not in out.cache:
        out.cache[key] = _history(rule, sd, out)
    ever, day, refs = out.cache[key]
    if rule.rule == "abnormal_ever":
        out.put(rule.field, ever, refs)
    else:
        out.put(rule.field, day, refs[day.index])


def _history(rule: FieldRule, sd, out: _Out) -> tuple[pd.Series, ...]:
    """(ever, last abnormal day, resource) per patient over the earlier results of
    the rule's fields: on or before the screening date, not on the field's current
    day (the most recent day inside its latest window)."""
    results = out.cache.get(_RESULTS)
    if results is None or results.empty:
        empty = pd.Series(dtype=object)
        return empty, empty, empty
    rank = pd.Index(rule.fields).get_indexer(results["field"])
    h = results[rank >= 0].assign(rank=rank[rank >= 0])
    key = h["rank"].to_numpy() * len(out.pids) + h["pid"].to_numpy()
    day = h["day"].to_numpy("M8[D]")
    window = h["window"].to_numpy()
    current = pd.Series(day[window], key[window]).groupby(level=0).max()
    now = current.reindex(key).to_numpy("M8[D]")  # NaT: no current value
    h = h[(day <= sd) & (day != now)]
    # most recent first; on one day, the rule's field order, then the resources'
    h = h.iloc[
        np.lexsort(
            (
                h["rank"].to_numpy(),
                -h["day"].to_numpy("M8[D]").astype(np.int64),
                h["pid"].to_numpy(),
            )
        )
    ]
    r = h["rank"].to_numpy()
    limit = np.array([float(rule.thresholds[f]) for f in rule.fields])[r]
    context = np.array([rule.needs_context.get(f, "") for f in rule.fields], object)
    above = h["v"].to_numpy() > limit
    sure = h[above & (context[r] == "")].drop_duplicates("pid")
    maybe = h[above & (context[r] != "") & ~h["pid"].isin(sure["pid"]).to_numpy()]
    units = np.array([field_specs()[f].unit for f in rule.fields], object)
    mr = maybe["rank"].to_numpy()
    out.report(
        maybe,
        rule.field,
        maybe["field"]
        + " "
        + _num(maybe["v"])
        + " "
        + pd.Series(units[mr], maybe.index)
        + " on "
        + _iso(maybe["day"])
        + ": "
        + pd.Series(context[mr], maybe.index)
        + " is not coded, so it may or may not count as abnormal",
    )
    decided = h["pid"].isin(sure["pid"]) | h["pid"].isin(maybe["pid"])
    normal = h[~decided].drop_duplicates("pid")
    sure, normal = sure.set_index("pid"), normal.set_index("pid")
    ever = pd.concat([pd.Series(True, sure.index), pd.Series(False, normal.index)])
    refs = pd.concat([sure["ref"], normal["ref"]])
    last = pd.Series(sure["day"].to_numpy("M8[D]"), sure.index).astype(object)
    return ever.astype(object), last, refs


def _finding(g, rule: FieldRule, sd, m, out: _Out) -> None:
    g = _observations(g, m, out, rule.field)
    none = g["result"].isna()
    out.report(g[none], rule.field, "no positive / negative result: not used")
    g = g[~none]
    if rule.rule == "ever_positive":
        past = g[g["day"] <= sd]
        pos = past[past["result"] == 1.0]
        neg = past[~past["pid"].isin(pos["pid"])]
        d = pd.concat([pos, neg]).assign(v=lambda x: x["result"])
    else:
        d = g[_window(g, rule, sd)].assign(v=lambda x: x["result"])

    def describe(rows):
        return rows["ref"] + rows["v"].map({1.0: " positive", 0.0: " negative"})

    v = _pick_latest(d, out, rule.field, describe)
    out.values[rule.field] = (v == 1.0).astype(object)


# --- conditions ---
def _conditions(g: pd.DataFrame, m: FhirMapping, out: _Out, field: str, sd):
    """(positive rows, negative rows) of Conditions, onset not after the screening."""
    g = g[(g["rtype"] == "Condition") & ~(g["day"] > sd)]
    sets = m.statuses["Condition"]
    status = g["status"].astype(object).where(g["status"].notna(), None)
    pos = status.isin([s for s in sets["positive"] if s]) | (
        status.isna() & (None in sets["positive"])
    )
    neg = status.isin(sets["negative"])
    other = ~pos & ~neg
    out.report(
        g[other],
        field,
        "verificationStatus " + _text(g["status"][other]) + ": not used",
    )
    return g[pos], g[neg]


def _by_pid(rows: pd.DataFrame, column: str, how: str) -> tuple[pd.Series, pd.Series]:
    """Per patient: the min / max of a column and the resource it came from."""
    rows = rows[rows[column].notna()]
    if rows.empty:
        return pd.Series(dtype=object), pd.Series(dtype=object)
    idx = getattr(rows.groupby("pid")[column], f"idx{how}")()
    picked = rows.loc[idx.to_numpy()].set_index("pid")
    return picked[column], picked["ref"]


def _condition_rule(g, rule: FieldRule, sd, m, out: _Out) -> None:
    pos, neg = _conditions(g, m, out, rule.field, sd)
    f = rule.field
    if rule.rule == "condition_ever":
        first = pos.drop_duplicates("pid").set_index("pid")["ref"]
        only_neg = neg[~neg["pid"].isin(pos["pid"])].drop_duplicates("pid")
        only_neg = only_neg.set_index("pid")["ref"]
        values = pd.concat(
            [pd.Series(True, first.index), pd.Series(False, only_neg.index)]
        )
        out.put(f, values.astype(object), pd.concat([first, only_neg]))
    elif rule.rule in ("condition_first", "condition_years"):
        undated = pos[
            pos["day"].isna() & ~pos["pid"].isin(pos["pid"][pos["day"].notna()])
        ]
        out.report(undated, f, "no onset date")
        day, ref = _by_pid(pos, "day", "min")
        if rule.rule == "condition_years":
            years = (sd - day.to_numpy("M8[D]")).astype(np.float64) / DAYS_PER_YEAR
            out.put(f, pd.Series(years, day.index, dtype=object), ref)
        else:
            out.put(f, day.astype(object), ref)
    elif rule.rule == "condition_source":
        ev = pos["evidence"].fillna("")
        source = pd.Series(rule.otherwise, pos.index, dtype=object)
        for category, concept in rule.sources.items():
            source[ev.str.contains(concept, regex=False)] = category
        # a biopsy anywhere beats a coded diagnosis: sort so that it comes first
        order = (source != rule.otherwise).astype(int)
        picked = pos.assign(v=source, o=order).sort_values(
            "o", ascending=False, kind="stable"
        )
        picked = picked.drop_duplicates("pid").set_index("pid")
        out.put(f, picked["v"], picked["ref"])
    else:  # condition_evidence
        ev = pos["evidence"].fillna("").str.contains(rule.evidence, regex=False)
        yes = pos[ev].drop_duplicates("pid").set_index("pid")["ref"]
        no = neg[~neg["pid"].isin(pos["pid"])].drop_duplicates("pid")
        no = no.set_index("pid")["ref"]
        values = pd.concat([pd.Series(True, yes.index), pd.Series(False, no.index)])
        out.put(f, values.astype(object), pd.concat([yes, no]))


# --- medications ---
def _statements(g: pd.DataFrame, m: FhirMapping, out: _Out, field: str, sd):
    """(active on the screening date, recorded as not current) MedicationStatements."""
    g = g[g["rtype"] == "MedicationStatement"]
    sets = m.statuses["MedicationStatement"]
    started = ~(g["day"] > sd)
    ongoing = ~(g["end"] < sd)
    active = g["status"].isin(sets["active"]) & started & ongoing
    past = (g["status"].isin(sets["taken"]) & ~active) | g["status"].isin(
        sets["negative"]
    )
    other = ~active & ~past
    out.report(g[other], field, "status " + _text(g["status"][other]) + ": not used")
    return g[active], g[past]


def _current_rule(g, rule: FieldRule, sd, m, out: _Out) -> None:
    f = rule.field
    key = ("current", rule.concepts)
    if key not in out.cache:
        active, past = _statements(g, m, out, f, sd)
        not_current = past[~past["pid"].isin(active["pid"])].drop_duplicates("pid")
        out.cache[key] = (active, not_current.set_index("pid")["ref"])
    active, not_current = out.cache[key]
    if rule.rule == "current":
        on = active.drop_duplicates("pid").set_index("pid")["ref"]
        values = pd.concat(
            [pd.Series(True, on.index), pd.Series(False, not_current.index)]
        )
        out.put(f, values.astype(object), pd.concat([on, not_current]))
        return
    if rule.rule == "current_since":
        day, ref = _by_pid(active, "day", "max")
        out.put(f, day.astype(object), ref)
        return
    if rule.rule == "current_agent":
        order = {c: float(k) for k, c in enumerate(rule.concepts)}
        d = active.assign(v=_lookup(active["concept"], order).astype(np.float64))
    else:  # current_dose
        factor = _lookup(active["unit"], rule.units).astype(np.float64)
        dose = active["num"] * factor
        unknown = active["num"].isna() | factor.isna()
        why = np.where(
            active["num"].isna(),
            "no daily dose (doseQuantity with timing)",
            "dose unit " + _text(active["unit"]) + " not accepted",
        )
        out.report(active[unknown], f, pd.Series(why, active.index)[unknown])
        d = active.assign(v=dose)[~unknown]
    d = d.assign(day=np.datetime64(sd, "D"))

    def describe(rows):
        return rows["ref"] + " " + _text(rows["concept"])

    v = _pick_latest(d, out, f, describe)
    if rule.rule == "current_agent":
        out.values[f] = v.map(lambda k: rule.concepts[int(k)]).astype(object)
    else:
        zero = pd.Series(0.0, not_current.index, dtype=object)
        out.put(
            f,
            pd.concat([v.astype(object), zero]),
            pd.concat([out.refs[f], not_current]),
        )


def _regimen_since(rule: FieldRule, out: _Out) -> None:
    parts = [out.values[f] for f in rule.fields if f in out.values]
    refs = [out.refs[f] for f in rule.fields if f in out.refs]
    if not parts or all(p.empty for p in parts):
        out.put(rule.field, pd.Series(dtype=object), pd.Series(dtype=object))
        return
    table = pd.concat(parts, axis=1).apply(pd.to_datetime)
    latest = table.max(axis=1)
    which = table.fillna(pd.Timestamp.min).to_numpy().argmax(axis=1)
    src = pd.concat(refs, axis=1).reindex(table.index).to_numpy()
    out.put(
        rule.field,
        latest.astype(object),
        pd.Series(src[np.arange(len(which)), which], table.index),
    )


# --- exposures ---
def _exposure_rule(g, rule: FieldRule, sd, m, out: _Out) -> None:
    key = ("exposure", rule.concepts)
    if key not in out.cache:
        out.cache[key] = _exposures(g, rule, sd, m, out)
    given, neg = out.cache[key]
    f = rule.field
    if rule.rule == "ever":
        yes = given.drop_duplicates("pid").set_index("pid")["ref"]
        values = pd.concat([pd.Series(True, yes.index), pd.Series(False, neg.index)])
        out.put(f, values.astype(object), pd.concat([yes, neg]))
        return
    last = given.assign(day=given["v"])
    if rule.rule == "last_date":
        day, ref = _by_pid(last, "day", "max")
        out.put(f, day.astype(object), ref)
        return
    order = {c: float(k) for k, c in enumerate(rule.concepts)}
    d = last.assign(v=_lookup(last["concept"], order).astype(np.float64))
    v = _pick_latest(d, out, f, lambda rows: rows["ref"] + " " + _text(rows["concept"]))
    agent = v.map(lambda k: rule.concepts[int(k)])
    if rule.rule == "last_agent_half_life":
        agent = agent.map(lambda c: m.concepts[c].half_life_days)
    out.values[f] = agent.astype(object)


def _exposures(g, rule: FieldRule, sd, m, out: _Out) -> tuple[pd.DataFrame, pd.Series]:
    """(doses given on or before the screening date, with their date in ``v``;
    the patients with only recorded negatives → the resource)."""
    f = rule.field
    g = g[g["rtype"].isin(_EXPOSURE_TYPES)]
    taken = pd.Series(False, g.index)
    negative = pd.Series(False, g.index)
    for rtype in _EXPOSURE_TYPES:
        sets = m.statuses[rtype]
        mine = g["rtype"] == rtype
        taken |= mine & g["status"].isin(sets["taken"])
        negative |= mine & g["status"].isin(sets["negative"])
    other = ~taken & ~negative
    out.report(g[other], f, "status " + _text(g["status"][other]) + ": not used")
    for name in rule.concepts:
        route = m.concepts[name].route
        if route is None:
            continue
        mine = g["concept"] == name
        unrouted = mine & taken & g["route"].isna()
        out.report(g[unrouted], f, f"route not recorded ({route.display} needed)")
        taken &= ~mine | (g["route"] == route.key)
    when = g["end"].where(g["end"].notna(), g["day"]).clip(upper=sd)
    given = g.assign(v=when)[taken & (g["day"] <= sd)]
    undated = g[taken & g["day"].isna()]
    out.report(undated, f, "no date: not used")
    neg = g[negative & ~g["pid"].isin(given["pid"])].drop_duplicates("pid")
    return given, neg.set_index("pid")["ref"]


# --- patients and the whole selection ---
_GENDERS = {"female": "female", "male": "male"}


def _patient_fields(patients: pd.DataFrame, names: pd.Index, sd, out: _Out) -> None:
    p = patients.set_index("pid")
    sex = p["gender"].map(_GENDERS)
    out.report(
        p[sex.isna()].reset_index(),
        "sex",
        "Patient.gender "
        + _text(p["gender"][sex.isna()])
        + ": sex needs female or male",
    )
    born = p["birth"].to_numpy("M8[D]")
    age = (sd - born).astype(np.float64) / DAYS_PER_YEAR
    out.put("patient_id", pd.Series(names.to_numpy(), p.index, dtype=object), p["ref"])
    out.put("sex", sex[sex.notna()].astype(object), p["ref"])
    has = ~np.isnat(born)
    out.put("date_of_birth", p["birth"][has].astype(object), p["ref"])
    out.put("age_years", pd.Series(age[has], p.index[has], dtype=object), p["ref"])


_RULE_FAMILY = {
    "latest": "latest",
    "latest_finding": "finding",
    "ever_positive": "finding",
    "condition_ever": "condition",
    "condition_first": "condition",
    "condition_years": "condition",
    "condition_source": "condition",
    "condition_evidence": "condition",
    "current": "current",
    "current_dose": "current",
    "current_since": "current",
    "current_agent": "current",
    "ever": "exposure",
    "last_date": "exposure",
    "last_agent": "exposure",
    "last_agent_half_life": "exposure",
    "abnormal_ever": "history",
    "abnormal_last_date": "history",
}


def _unmapped(facts: pd.DataFrame, m: FhirMapping, out: _Out) -> pd.DataFrame:
    """Report resources whose codes the mapping does not know, or that carry a
    concept in a resource type it is not read from; return the rest."""
    none = facts["concept"].isna()
    out.report(
        facts[none],
        None,
        "code " + _text(facts["code"][none]) + " is not in the mapping",
    )
    facts = facts[~none]
    wrong = pd.Series(False, facts.index)
    for rtype in facts["rtype"].unique():
        read_from = [c for c, con in m.concepts.items() if rtype in con.resources]
        wrong |= (facts["rtype"] == rtype) & ~facts["concept"].isin(read_from)
    out.report(
        facts[wrong],
        None,
        _text(facts["concept"][wrong])
        + " is not read from a "
        + _text(facts["rtype"][wrong]),
    )
    return facts[~wrong]


def select(
    facts: pd.DataFrame, patients: pd.DataFrame, screening_date: date, m: FhirMapping
) -> Selected:
    """Apply every rule of the mapping to the facts of any number of patients.

    Args:
        facts: flattened resources (:data:`~data_schema.fhir.flatten.FACT_COLUMNS`).
        patients: flattened Patient resources (``pid``, ``ref``, ``gender``,
            ``birth``); one row per patient, in the order of the answer.
        screening_date: day 0 of every look-back window.
        m: the mapping.
    """
    sd = np.datetime64(screening_date, "D")
    names = pd.Index(patients["pid"].drop_duplicates(), name="pid")
    # rules group by patient: integer positions group ~10x faster than strings
    patients = patients.drop_duplicates("pid").assign(pid=np.arange(len(names)))
    facts = facts.assign(pid=names.get_indexer(facts["pid"]))
    # a handful of distinct values in 10^5-10^6 rows: filtering copies codes, not
    # Python strings
    for column in ("rtype", "concept", "status", "unit", "high_unit", "route"):
        facts[column] = facts[column].astype("category")
    out = _Out(pd.RangeIndex(len(names), name="pid"))
    _patient_fields(patients, names, sd, out)
    orphans = facts[facts["pid"] < 0]
    out.report(orphans, None, "no Patient resource for this subject")
    facts = _unmapped(facts[facts["pid"] >= 0], m, out)
    by_concept = dict(tuple(facts.groupby("concept", sort=False, observed=True)))
    empty = facts.iloc[:0]
    latest = [r for r in m.fields.values() if r.rule == "latest"]
    _latest_all(by_concept, latest, sd, m, out)
    for rule in m.fields.values():
        if rule.rule in ("regimen_since", "latest"):
            continue
        parts = [by_concept[c] for c in rule.concepts if c in by_concept]
        g = pd.concat(parts) if parts else empty
        family = _RULE_FAMILY[rule.rule]
        if family == "finding":
            _finding(g, rule, sd, m, out)
        elif family == "condition":
            _condition_rule(g, rule, sd, m, out)
        elif family == "current":
            _current_rule(g, rule, sd, m, out)
        elif family == "history":  # after every latest rule (above)
            _abnormal_rule(rule, sd, out)
        else:
            _exposure_rule(g, rule, sd, m, out)
    for rule in m.fields.values():
        if rule.rule == "regimen_since":
            _regimen_since(rule, out)
    return _assemble(out, m, names)


def _assemble(out: _Out, m: FhirMapping, names: pd.Index) -> Selected:
    carried = m.carried()

    def frame(parts: dict[str, pd.Series]) -> pd.DataFrame:
        cols = {}
        for f in carried:
            col = np.full(len(names), None, dtype=object)
            if f in parts and len(parts[f]):
                col[parts[f].index.to_numpy(np.int64)] = parts[f].to_numpy(object)
            cols[f] = col
        return pd.DataFrame(cols, index=names, dtype=object)

    values = frame(out.values)
    provenance = frame(out.refs).where(values.notna().to_numpy(), None)
    if out.problems:
        problems = pd.concat(out.problems, ignore_index=True)
        known = problems["pid"] >= 0
        problems["pid"] = np.where(
            known, names.to_numpy()[problems["pid"].where(known, 0)], None
        )
    else:
        problems = pd.DataFrame(columns=list(PROBLEM_COLUMNS))
    return Selected(values, provenance, problems)
