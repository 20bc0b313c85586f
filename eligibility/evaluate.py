"""The one evaluator of the rule language, on a table of patients.

A set of rule trees (a trial's criteria) is laid out once as a flat list of nodes
(:class:`Program`). Evaluating it on a :class:`~eligibility.table.Table` gives a truth
code per node and patient — Kleene's three values plus "needs the investigator" —
computed column-wise, all leaves of one kind at once and the ``all`` / ``any`` /
``not`` nodes level by level. On request, :meth:`Evaluation.explain` phrases one
patient's result of one node (reason, evidence, the fields whose absence leaves it
open) from the same arrays. One patient is a table of one row, so the
single-patient answer and the column-wise screening of a registry agree by
construction.

Kleene logic: ``all`` is false if any child is false, ``any`` true if any child is
true; otherwise a missing datum (``unknown``) outranks ``judgment``. A ``readings``
node (the alternative readings of an ambiguous sentence) is their common value when
they agree, ``unknown`` while a missing datum could still make them agree, and
``judgment`` when they disagree.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from data_schema import VERDICTS, PatientRecord
from eligibility.calendar import window_days
from eligibility.derived import DERIVED, Interval
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
    ReadingsNode,
    RiskGateNode,
    Window,
    WithinDaysNode,
)
from eligibility.table import FloatArray, Table

Codes = NDArray[np.int8]

# Truth codes, in the order of data_schema.VERDICTS (not_met, met, unknown, …).
FALSE, TRUE, UNKNOWN, JUDGMENT = (VERDICTS.index(v) for v in VERDICTS)


class Truth(enum.IntEnum):
    """Value of a rule for one patient: Kleene's three values plus "needs the
    investigator". The integer is the truth code of the column-wise evaluation."""

    FALSE = FALSE
    TRUE = TRUE
    UNKNOWN = UNKNOWN
    JUDGMENT = JUDGMENT


class Result(NamedTuple):
    """One patient's value of a rule, with its reason, evidence and open fields."""

    value: Truth
    reason: str
    missing: tuple[str, ...] = ()
    judgments: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = {}


@dataclass(frozen=True)
class Gate:
    """The risk gate of every patient: the model's risk and where it stands.

    Attributes:
        risk: the predicted 2-year risk per patient (0–1).
        threshold: the criteria file's gate (the trial admits risk > threshold).
        state: ``above`` / ``below`` / ``undetermined`` per patient; None reads the
            risk against the threshold (above when risk > threshold).
        low: lowest plausible risk given what is not recorded (None: the risk).
        high: highest plausible risk (None: the risk).
        to_obtain: per patient, the missing predictors that would settle an
            undetermined gate, most decisive first.
        edges: (exclude edge, pass edge) of the review zone, if there is one.
    """

    risk: FloatArray
    threshold: float
    state: np.ndarray | None = None
    low: FloatArray | None = None
    high: FloatArray | None = None
    to_obtain: Sequence[tuple[str, ...]] | None = None
    edges: tuple[float, float] | None = None

    @cached_property
    def states(self) -> np.ndarray:
        """The state of every patient (from the risk when none was given)."""
        if self.state is not None:
            return np.asarray(self.state)
        return np.where(self.risk > self.threshold, "above", "below")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _missing(name: str) -> str:
    return f"{name} not recorded"


def _after_screening(name: str, value: date, t: Table) -> str:
    return f"{name} {value} is after the screening date {t.screening_date}"


# --- the program --------------------------------------------------------------------
_COMBINE = (AllNode, AnyNode, NotNode, ReadingsNode)
_COMBINE_KINDS = {
    AllNode: "all",
    AnyNode: "any",
    NotNode: "not",
    ReadingsNode: "readings",
}


class _Group(NamedTuple):
    """Nodes evaluated together: their indices and what the evaluation needs."""

    indices: NDArray[np.intp]
    fields: tuple[str, ...] = ()
    params: Mapping[str, Any] = MappingProxyType({})


@dataclass
class Program:
    """Rule trees laid out as one flat list of nodes, children before parents.

    Leaves are grouped by kind (evaluated together); ``all`` / ``any`` / ``not``
    nodes by their height above the leaves. Everything an evaluation needs that does
    not depend on the patients is prepared here, once per criteria file.
    """

    nodes: list[Node] = field(default_factory=list)
    children: list[tuple[int, ...]] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    leaves: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    levels: list[list[int]] = field(default_factory=list)

    @classmethod
    def of(cls, trees: Sequence[Node]) -> Program:
        program = cls()
        program.roots = [program._add(tree) for tree in trees]
        return program

    def _add(self, node: Node) -> int:
        kids: tuple[Node, ...] = ()
        if isinstance(node, AllNode):
            kids = tuple(node.all_)
        elif isinstance(node, AnyNode):
            kids = tuple(node.any_)
        elif isinstance(node, NotNode):
            kids = (node.not_,)
        elif isinstance(node, ReadingsNode):
            kids = tuple(node.alternatives.values())
        child_ids = tuple(self._add(k) for k in kids)
        index = len(self.nodes)
        self.nodes.append(node)
        self.children.append(child_ids)
        height = 1 + max((self.heights[c] for c in child_ids), default=-1)
        self.heights.append(height)
        if isinstance(node, _COMBINE):
            kind = _COMBINE_KINDS[type(node)]
            while len(self.levels) < height:
                self.levels.append([])
            self.levels[height - 1].append(index)
        else:
            kind = _leaf_kind(node)
            self.leaves[kind].append(index)
        self.kinds.append(kind)
        return index

    @cached_property
    def flags(self) -> _Group:
        nodes = [self.nodes[i] for i in self.leaves["flag"]]
        return _Group(
            np.array(self.leaves["flag"], dtype=np.intp),
            tuple(_flag_field(n) for n in nodes),  # type: ignore[arg-type]
            {"want": np.array([isinstance(n, IsTrueNode) for n in nodes])[:, None]},
        )

    @cached_property
    def numbers(self) -> _Group:
        return self._comparisons("number", "field")

    @cached_property
    def days(self) -> _Group:
        """Comparisons of whole days since a date (the fields are the dates)."""
        return self._comparisons("days", "days_since")

    def _comparisons(self, kind: str, subject: str) -> _Group:
        nodes: list[CompareNode] = [self.nodes[i] for i in self.leaves[kind]]  # type: ignore[misc]
        ops = np.array([n.op for n in nodes])
        return _Group(
            np.array(self.leaves[kind], dtype=np.intp),
            tuple(str(getattr(n, subject)) for n in nodes),
            {
                "limits": np.array([n.value for n in nodes], dtype=np.float64)[:, None],
                "ops": [(op, ops == op) for op in dict.fromkeys(ops.tolist())],
            },
        )

    @cached_property
    def windows(self) -> _Group:
        """Every look-back window: ``max(days, half_lives × half-life)`` days; the
        length of a window of calendar months depends on the screening date
        (:meth:`window_lengths`)."""
        indices = self.leaves["window"]
        windows = [_window_of(self.nodes[i]) for i in indices]  # type: ignore[arg-type]
        within = [isinstance(self.nodes[i], WithinDaysNode) for i in indices]
        scaled = [j for j, w in enumerate(windows) if w.half_life_field is not None]

        def column(values: list[float]) -> np.ndarray:
            return np.array(values, dtype=np.float64)[:, None]

        return _Group(
            np.array(indices, dtype=np.intp),
            tuple(f"{w.exposure}_ever" for w in windows),
            {
                "last": tuple(f"{w.exposure}_last_date" for w in windows),
                "windows": tuple(windows),
                "calendar": any(w.months is not None for w in windows),
                "days": column([w.days or 0.0 for w in windows]),
                "inclusive": column([w.boundary == "inclusive" for w in windows]) > 0,
                "within": np.array(within)[:, None],
                "scaled": np.array(scaled, dtype=np.intp),
                "half_life": tuple(str(windows[j].half_life_field) for j in scaled),
                "half_lives": column([windows[j].half_lives or 0.0 for j in scaled]),
            },
        )

    def window_lengths(self, screening_date: date) -> np.ndarray:
        """(windows, 1): each window's base length in days on a screening date
        (calendar months counted back from that date; cached per date)."""
        p = self.windows.params
        if not p["calendar"]:
            return p["days"]
        cache = self.__dict__.setdefault("_window_lengths", {})
        found = cache.get(screening_date)
        if found is None:
            found = cache[screening_date] = np.array(
                [
                    window_days(screening_date, days=w.days or 0, months=w.months or 0)
                    for w in p["windows"]
                ],
                dtype=np.float64,
            )[:, None]
        return found

    @cached_property
    def combinations(self) -> list[list[tuple[type, _Group]]]:
        """Per level, one group of the ``all`` and ``any`` nodes (children padded:
        with the constant true row for ``all``, false for ``any``; their decisive
        and fallback values per node), the ``not``s and the ``readings``."""
        out = []
        for level in self.levels:
            groups = []
            for kinds in ((AllNode, AnyNode), (NotNode,), (ReadingsNode,)):
                members = [i for i in level if isinstance(self.nodes[i], kinds)]
                if not members:
                    continue
                width = max(len(self.children[i]) for i in members)
                is_all = np.array([isinstance(self.nodes[i], AllNode) for i in members])
                kids = np.where(is_all, -2, -1)[:, None].repeat(width, axis=1)
                for row, i in enumerate(members):
                    if kinds[0] is ReadingsNode:  # a repeated alternative: no change
                        kids[row, :] = self.children[i][0]
                    kids[row, : len(self.children[i])] = self.children[i]
                params = {
                    "kids": kids.astype(np.intp),
                    "decisive": np.where(is_all, FALSE, TRUE).astype(np.int8)[:, None],
                    "fallback": np.where(is_all, TRUE, FALSE).astype(np.int8)[:, None],
                }
                groups.append((kinds[0], _Group(np.array(members), params=params)))
            out.append(groups)
        return out


def _leaf_kind(node: Node) -> str:
    if isinstance(node, IsTrueNode | IsFalseNode):
        return "flag"
    if isinstance(node, WithinDaysNode | MoreThanDaysAgoNode):
        return "window"
    if isinstance(node, JudgmentNode):
        return "judgment"
    if isinstance(node, RiskGateNode):
        return "gate"
    assert isinstance(node, CompareNode)
    if node.derived is not None:
        return "derived"
    if node.days_since is not None:
        return "days"
    if node.op == "in" or isinstance(node.value, str):
        return "text"
    return "number"


def _window_of(node: WithinDaysNode | MoreThanDaysAgoNode) -> Window:
    return (
        node.within_days
        if isinstance(node, WithinDaysNode)
        else (node.more_than_days_ago)
    )


def _flag_field(node: IsTrueNode | IsFalseNode) -> str:
    return node.is_true if isinstance(node, IsTrueNode) else node.is_false


# --- evaluation ---------------------------------------------------------------------
class Evaluation:
    """A :class:`Program` evaluated on a table: ``codes[node, patient]``.

    The last two rows of ``codes`` are constants (true, false) that pad ``all`` /
    ``any`` nodes with fewer children than others of their level.
    """

    def __init__(self, program: Program, table: Table, gate: Gate | None) -> None:
        self.program = program
        self.table = table
        self.gate = gate
        self.codes = np.empty((len(program.nodes) + 2, table.n), dtype=np.int8)
        self.codes[-2] = TRUE  # padding of `all` nodes
        self.codes[-1] = FALSE  # padding of `any` nodes
        self.intervals: dict[int, Interval] = {}
        self._last_row, self._last_codes = -1, []
        for kind, indices in program.leaves.items():
            _LEAVES[kind](self, indices)
        for groups in program.combinations:
            for kind, group in groups:
                self._combine(kind, group)

    def root_codes(self) -> Codes:
        """(patients, trees): the truth code of every tree for every patient."""
        return self.codes[self.program.roots].T

    # --- leaves -----------------------------------------------------------------------
    def _flags(self, indices: list[int]) -> None:
        group = self.program.flags
        codes = (self.table.flag(group.fields) == group.params["want"]).astype(np.int8)
        codes[self.table.na(group.fields)] = UNKNOWN
        self.codes[group.indices] = codes

    def _numbers(self, indices: list[int]) -> None:
        group = self.program.numbers
        self.codes[group.indices] = _compare_rows(group, self.table.num(group.fields))

    def _texts(self, indices: list[int]) -> None:
        for i in indices:
            node: CompareNode = self.program.nodes[i]  # type: ignore[assignment]
            text = self.table.text(str(node.field))
            if node.op == "in":  # set membership per patient: cheaper than np.isin
                allowed = set(node.value)  # type: ignore[arg-type]
                ok = np.array([v in allowed for v in text], dtype=bool)
            else:
                ok = np.asarray(OPS[node.op](text, node.value), dtype=bool)
            self.codes[i] = np.where(
                self.table.na(str(node.field)), UNKNOWN, ok.astype(np.int8)
            )

    def _derived(self, indices: list[int]) -> None:
        for i in indices:
            node: CompareNode = self.program.nodes[i]  # type: ignore[assignment]
            self.intervals[i] = DERIVED[str(node.derived)](self.table)
            self.codes[i] = _compare_interval(node, self.intervals[i])

    def _days(self, indices: list[int]) -> None:
        group = self.program.days
        ago = self.table.days_ago(group.fields)
        self.codes[group.indices] = _compare_rows(group, ago)
        gone = np.isnan(ago)
        for j, (i, name) in enumerate(zip(group.indices, group.fields, strict=True)):
            self.intervals[int(i)] = Interval(
                ago[j], ago[j], {name: gone[j]}, lambda r, name=name: {
                    name: self.table.value(name, r)
                }
            )  # fmt: skip

    def _windows(self, indices: list[int]) -> None:
        group, p = self.program.windows, self.program.windows.params
        ever_na = self.table.na(group.fields)
        ever = self.table.flag(group.fields)
        ago = self.table.days_ago(p["last"])
        base = self.program.window_lengths(self.table.screening_date)
        window = np.broadcast_to(base, ago.shape).copy()
        open_ = np.zeros(ago.shape, dtype=bool)
        if len(p["scaled"]):  # windows of k half-lives of a recorded half-life
            half_life = self.table.num(p["half_life"])
            rows = p["scaled"]
            window[rows] = np.fmax(window[rows], p["half_lives"] * half_life)
            # without the half-life only the shortest window (``days``) decides
            open_[rows] = np.isnan(half_life) & (ago[rows] > base[rows])
        inside = np.where(p["inclusive"], ago <= window, ago < window)
        codes = (inside == p["within"]).astype(np.int8)
        codes[open_ | np.isnan(ago) | ever_na] = UNKNOWN
        codes[~ever_na & ~ever] = FALSE
        self.codes[group.indices] = codes

    def _judgments(self, indices: list[int]) -> None:
        self.codes[indices] = JUDGMENT

    def _gates(self, indices: list[int]) -> None:
        if self.gate is None:
            self.codes[indices] = UNKNOWN
            return
        states = self.gate.states
        codes = np.where(states == "above", TRUE, FALSE).astype(np.int8)
        codes[states == "undetermined"] = UNKNOWN
        self.codes[indices] = codes

    # --- combinations -----------------------------------------------------------------
    def _combine(self, kind: type, group: _Group) -> None:
        stack = self.codes[group.params["kids"]]  # (nodes, children, patients)
        if kind is ReadingsNode:
            first = stack[:, 0]
            agree = (stack == first[:, None]).all(axis=1)
            open_ = (stack == UNKNOWN).any(axis=1)
            self.codes[group.indices] = np.where(
                agree, first, np.where(open_, UNKNOWN, JUDGMENT)
            )
            return
        if kind is NotNode:
            child = stack[:, 0]
            flipped = np.where(
                child == TRUE, FALSE, np.where(child == FALSE, TRUE, child)
            )
            self.codes[group.indices] = flipped
            return
        # all / any together: decisive false / true, else unknown, judgment, fallback
        decisive, fallback = group.params["decisive"], group.params["fallback"]
        codes = np.where((stack == JUDGMENT).any(axis=1), JUDGMENT, fallback)
        codes[(stack == UNKNOWN).any(axis=1)] = UNKNOWN
        hit = (stack == decisive[:, :, None]).any(axis=1)
        self.codes[group.indices] = np.where(hit, decisive, codes)

    # --- one patient -----------------------------------------------------------------
    def _row(self, row: int) -> list[int]:
        """Every node's truth code for one patient, as plain ints (read often)."""
        if row != self._last_row:
            self._last_row, self._last_codes = row, self.codes[:, row].tolist()
        return self._last_codes

    def explain(self, index: int, row: int) -> Result:
        """Node ``index`` for patient ``row``: value, reason, open fields, evidence."""
        reason, evidence, judgments = self.details(index, row)
        return Result(
            Truth(self._row(row)[index]),
            reason,
            self.missing(index, row),
            judgments,
            evidence,
        )

    def code(self, index: int, row: int) -> int:
        """The truth code of node ``index`` for patient ``row``."""
        return self._row(row)[index]

    def missing(self, index: int, row: int) -> tuple[str, ...]:
        """The fields whose absence leaves node ``index`` unknown for ``row``."""
        codes = self._row(row)
        if codes[index] != UNKNOWN:
            return ()
        kind = self.program.kinds[index]
        if kind in ("all", "any", "not", "readings"):
            fields = (
                name
                for child in self.program.children[index]
                if codes[child] == UNKNOWN
                for name in self.missing(child, row)
            )
            return tuple(dict.fromkeys(fields))
        if index in self.intervals:
            iv = self.intervals[index]
            return tuple(name for name, rows in iv.missing.items() if rows[row])
        node = self.program.nodes[index]
        if kind == "gate":
            if self.gate is None:
                return ("risk",)
            return tuple(self.gate.to_obtain[row]) if self.gate.to_obtain else ()
        if kind == "window":
            return _window_missing(_window_of(node), self.table, row)  # type: ignore[arg-type]
        if kind == "flag":
            return (_flag_field(node),)  # type: ignore[arg-type]
        return (str(node.field),)  # type: ignore[union-attr]

    def details(
        self, index: int, row: int
    ) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        """(reason, evidence, judgments) of node ``index`` for patient ``row``."""
        kind = self.program.kinds[index]
        if kind == "not":
            reason, evidence, judgments = self.details(
                self.program.children[index][0], row
            )
            return f"not ({reason})", evidence, judgments
        if kind in ("all", "any"):
            return self._combined_details(index, row, is_all=kind == "all")
        if kind == "readings":
            return self._readings_details(index, row)
        return _DETAILS[kind](self, index, row)

    def _readings_details(
        self, index: int, row: int
    ) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        """The common reason when the alternatives agree; each alternative's value
        and reason, and the question, when they disagree."""
        node: ReadingsNode = self.program.nodes[index]  # type: ignore[assignment]
        codes = self._row(row)
        kids = self.program.children[index]
        outcomes = {
            name: VERDICTS[codes[child]]
            for name, child in zip(node.alternatives, kids, strict=True)
        }
        if codes[index] != JUDGMENT or len(set(outcomes.values())) == 1:
            reason, evidence, judgments = self.details(kids[0], row)
            return (
                reason,
                {**evidence, f"readings:{node.readings}": outcomes},
                judgments,
            )
        evidence: dict[str, Any] = {}
        parts = []
        for name, child in zip(node.alternatives, kids, strict=True):
            reason, child_evidence, _ = self.details(child, row)
            evidence.update(child_evidence)
            parts.append(f"{name}: {outcomes[name]} ({reason})")
        evidence[f"readings:{node.readings}"] = outcomes
        question = f"which reading of {node.readings} applies? " + "; ".join(parts)
        return f"the readings disagree — {'; '.join(parts)}", evidence, (question,)

    def _combined_details(
        self, index: int, row: int, *, is_all: bool
    ) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        decisive = FALSE if is_all else TRUE
        codes = self._row(row)
        code = codes[index]
        evidence: dict[str, Any] = {}
        first = None  # the first decisive child's reason
        parts = []  # (code, reason, judgments) of every child
        for child in self.program.children[index]:
            reason, child_evidence, judgments = self.details(child, row)
            if child_evidence:
                evidence.update(child_evidence)
            child_code = codes[child]
            if first is None and child_code == decisive:
                first = reason
            parts.append((child_code, reason, judgments))
        if code == decisive:
            return first or "", evidence, ()
        open_ = [p for p in parts if p[0] == UNKNOWN or p[0] == JUDGMENT]
        judgments = tuple(dict.fromkeys(j for _, _, js in open_ for j in js))
        shown = [r for c, r, _ in open_ if c == code] or [r for _, r, _ in parts]
        joiner = " and " if is_all else " or "
        return joiner.join(dict.fromkeys(shown)), evidence, judgments


def _compare_rows(group: _Group, values: FloatArray) -> Codes:
    """Each row of ``values`` against its node's operator and limit; NaN is
    unknown."""
    ok = np.zeros(values.shape, dtype=bool)
    for op, rows in group.params["ops"]:
        ok[rows] = OPS[op](values[rows], group.params["limits"][rows])
    codes = ok.astype(np.int8)
    codes[np.isnan(values)] = UNKNOWN
    return codes


def _compare_interval(node: CompareNode, iv: Interval) -> Codes:
    """Compare ``[lo, hi]``: decided when both ends agree (equality needs a point);
    NaN (cannot be computed) is unknown."""
    fn = OPS[node.op]
    at_lo = fn(iv.lo, node.value)
    # An ordering is decided when both ends agree (NaN is caught below); equality
    # only on a point.
    ordered = node.op in ORDER_OPS
    decided = at_lo == fn(iv.hi, node.value) if ordered else iv.lo == iv.hi
    codes = at_lo.astype(np.int8)
    codes[~decided | np.isnan(iv.lo) | np.isnan(iv.hi)] = UNKNOWN
    return codes


def _window_missing(w: Window, t: Table, row: int) -> tuple[str, ...]:
    ever_name, last_name = f"{w.exposure}_ever", f"{w.exposure}_last_date"
    if t.value(ever_name, row) is None:
        return (ever_name,)
    if t.value(last_name, row) is None or t.after_screening(last_name, row):
        return (last_name,)
    return (str(w.half_life_field),)  # only a missing half-life leaves it open


Details = tuple[str, dict[str, Any], tuple[str, ...]]


def _judgment_details(ev: Evaluation, index: int, row: int) -> Details:
    question = ev.program.nodes[index].judgment  # type: ignore[union-attr]
    return f"investigator to judge: {question}", {}, (question,)


def _gate_details(ev: Evaluation, index: int, row: int) -> Details:
    gate = ev.gate
    if gate is None:
        return "no model risk or gate given", {}, ()
    return gate_reason(gate, row), gate_evidence(gate, row), ()


def gate_evidence(gate: Gate, row: int) -> dict[str, Any]:
    """The gate's numbers for one patient."""
    evidence: dict[str, Any] = {"risk": float(gate.risk[row]), "gate": gate.states[row]}
    if gate.low is not None and gate.high is not None:
        evidence["risk_low"] = float(gate.low[row])
        evidence["risk_high"] = float(gate.high[row])
    return evidence


def gate_reason(gate: Gate, row: int) -> str:
    """One sentence: where the patient's risk stands against the gate, and why."""
    risk, threshold = float(gate.risk[row]), gate.threshold
    state = gate.states[row]
    if gate.edges is None:
        sign = ">" if state == "above" else "≤"
        return f"2-year LN risk {risk:.3f} {sign} gate {threshold:g}"
    excl, passing = gate.edges
    low = float(gate.low[row]) if gate.low is not None else risk
    high = float(gate.high[row]) if gate.high is not None else risk
    plausible = (
        f" (plausibly {low:.3f}–{high:.3f} given what is not recorded)"
        if high > low
        else ""
    )
    zone = f"the review zone ({excl:.3f}–{passing:.3f}]"
    if state == "above":
        return (
            f"2-year LN risk {risk:.3f}{plausible} > gate {threshold:g}, above {zone}"
        )
    if state == "below":
        return (
            f"2-year LN risk {risk:.3f}{plausible} ≤ gate {threshold:g}, below {zone}"
        )
    obtain = tuple(gate.to_obtain[row]) if gate.to_obtain else ()
    if obtain:
        return (
            f"2-year LN risk {risk:.3f}{plausible}: the missing predictors could "
            f"carry it across the review zone ({excl:.3f}–{passing:.3f}] around the "
            f"gate {threshold:g}; measure {', '.join(obtain[:3])}"
        )
    return (
        f"2-year LN risk {risk:.3f} is in the review zone ({excl:.3f}–{passing:.3f}] "
        f"around the gate {threshold:g}: a clinician decides"
    )


def _flag_details(ev: Evaluation, index: int, row: int) -> Details:
    name = _flag_field(ev.program.nodes[index])  # type: ignore[arg-type]
    value = ev.table.value(name, row)
    if value is None:
        return _missing(name), {}, ()
    return f"{name} = {str(value).lower()}", {name: value}, ()


def _field_details(ev: Evaluation, index: int, row: int) -> Details:
    node: CompareNode = ev.program.nodes[index]  # type: ignore[assignment]
    name = str(node.field)
    value = ev.table.value(name, row)
    if value is None:
        return _missing(name), {}, ()
    sign = node.op if ev.code(index, row) == TRUE else f"not {node.op}"
    return f"{name} = {_fmt(value)} {sign} {_fmt(node.value)}", {name: value}, ()


def _derived_details(ev: Evaluation, index: int, row: int) -> Details:
    node: CompareNode = ev.program.nodes[index]  # type: ignore[assignment]
    if node.days_since is not None and ev.table.value(node.days_since, row) is None:
        return _missing(node.days_since), {}, ()
    if node.days_since is not None and ev.table.after_screening(node.days_since, row):
        value = ev.table.value(node.days_since, row)
        return _after_screening(node.days_since, value, ev.table), {}, ()
    evidence = ev.intervals[index].evidence(row)
    return _interval_details(ev, node, index, row), evidence, ()


def _window_leaf_details(ev: Evaluation, index: int, row: int) -> Details:
    return _window_details(_window_of(ev.program.nodes[index]), ev.table, row)  # type: ignore[arg-type]


def _interval_details(ev: Evaluation, node: CompareNode, index: int, row: int) -> str:
    iv = ev.intervals[index]
    lo, hi = float(iv.lo[row]), float(iv.hi[row])
    code = ev.code(index, row)
    missing = ", ".join(ev.missing(index, row))
    if np.isnan(lo) or np.isnan(hi):
        return f"{node.subject} cannot be computed: {missing} not recorded"
    shown = _fmt(lo) if lo == hi else f"between {_fmt(lo)} and {_fmt(hi)}"
    if code == UNKNOWN:
        if node.op not in ORDER_OPS:
            return f"{node.subject} not known exactly"
        return (
            f"{node.subject} is {shown} ({missing} not recorded); "
            f"cannot tell whether {node.op} {_fmt(node.value)}"
        )
    sign = node.op if OPS[node.op](lo, node.value) else f"not {node.op}"
    return f"{node.subject} = {shown} {sign} {_fmt(node.value)}"


def _window_details(
    w: Window, t: Table, row: int
) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    ever_name, last_name = f"{w.exposure}_ever", f"{w.exposure}_last_date"
    ever = t.value(ever_name, row)
    if ever is None:
        return _missing(ever_name), {}, ()
    if not ever:
        return f"{ever_name} = false (never)", {ever_name: False}, ()
    last = t.value(last_name, row)
    evidence: dict[str, Any] = {ever_name: True, last_name: last}
    if last is None:
        return _missing(last_name), evidence, ()
    if last > t.screening_date:
        return _after_screening(last_name, last, t), evidence, ()
    days = (t.screening_date - last).days
    evidence[f"days_since_{last_name}"] = days
    base = window_days(t.screening_date, days=w.days or 0, months=w.months or 0)
    label = w.label
    if w.months is not None:
        label += f" ({base:g} days back to {t.screening_date - timedelta(base)})"
    label += f", {w.boundary}"

    def inside(window: float) -> bool:
        return days <= window if w.boundary == "inclusive" else days < window

    is_inside = inside(base)
    if w.half_life_field is not None:
        assert w.half_lives is not None
        half_life = t.value(w.half_life_field, row)
        if half_life is None:
            if not is_inside:
                return _missing(w.half_life_field), evidence, ()
            reason = (
                f"last {w.exposure} {days} days before screening, within "
                f"{label} (the shortest possible window)"
            )
            return reason, evidence, ()
        evidence[w.half_life_field] = half_life
        window = max(base, w.half_lives * half_life)
        is_inside = inside(window)
        label = (
            f"{_fmt(window)} days (greater of {label} and "
            f"{_fmt(w.half_lives)} × {_fmt(half_life)}-day half-life)"
        )
    where = "within" if is_inside else "more than"
    reason = f"last {w.exposure} {days} days before screening ({where} {label})"
    return reason, evidence, ()


_DETAILS = {
    "flag": _flag_details,
    "number": _field_details,
    "text": _field_details,
    "derived": _derived_details,
    "days": _derived_details,
    "window": _window_leaf_details,
    "judgment": _judgment_details,
    "gate": _gate_details,
}

_LEAVES = {
    "flag": Evaluation._flags,
    "number": Evaluation._numbers,
    "text": Evaluation._texts,
    "derived": Evaluation._derived,
    "days": Evaluation._days,
    "window": Evaluation._windows,
    "judgment": Evaluation._judgments,
    "gate": Evaluation._gates,
}


# --- one patient, one rule ----------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """One patient, the screening date and, optionally, the model's risk and gate."""

    record: PatientRecord
    screening_date: date
    risk: float | None = None
    risk_threshold: float | None = None


def evaluate_one(node: Node, ctx: Context) -> Result:
    """One rule's result for one patient: a table of one row, explained."""
    gate = None
    if ctx.risk is not None and ctx.risk_threshold is not None:
        gate = Gate(np.array([ctx.risk]), ctx.risk_threshold)
    program = Program.of([node])
    evaluation = Evaluation(
        program, Table.from_record(ctx.record, ctx.screening_date), gate
    )
    return evaluation.explain(program.roots[0], 0)
