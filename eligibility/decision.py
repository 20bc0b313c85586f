"""From criterion verdicts and the risk gate to a decision, for every patient.

The order of the decision:

1. **Risk gate.** A gate ``below`` (the risk, and every value its missing
   predictors could plausibly give it, at or below the review zone) →
   ``ineligible``, with the risk as the reason. The criteria are still evaluated and
   reported.
2. **A failed criterion.** Any inclusion ``not_met`` or exclusion ``met`` →
   ``ineligible``. A recorded refusal (``consent_signed = false``) lands here.
3. **Something to obtain.** Any criterion ``unknown`` because a datum is missing
   (other than the facts the screening visit settles) → ``needs_review``, listing
   exactly the fields to obtain. The gate's own criterion is ``unknown`` when the
   gate is ``undetermined`` (the risk sits in the review zone, or its missing
   predictors could carry it across an edge); it lists the predictors to measure.
4. Otherwise ``eligible``; investigator-judgment items and visit-settled facts not
   yet recorded (consent, contraception) are listed under ``to_confirm``.

Missing data never gives ``eligible``. Statuses are computed column-wise for every
patient at once; one patient's reasons and evidence are phrased on request from
the same arrays (:meth:`Screened.decision`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from data_schema import GATE_STATES, STATUSES, VERDICTS, GateState, Status, Verdict
from eligibility.criteria import Criterion, TrialCriteria
from eligibility.evaluate import (
    FALSE,
    JUDGMENT,
    TRUE,
    UNKNOWN,
    Evaluation,
    Gate,
    gate_reason,
)
from eligibility.table import FloatArray, Table

VERDICT_DTYPE = pd.CategoricalDtype(list(VERDICTS))


class CriterionVerdict(NamedTuple):
    """The verdict on one criterion, with what it rests on.

    For an exclusion criterion ``met`` means the patient HAS the excluding condition.

    Attributes:
        id: criterion id.
        kind: ``inclusion`` or ``exclusion``.
        verdict: ``met``, ``not_met``, ``unknown`` or ``needs_judgment``.
        reason: one readable sentence for a coordinator.
        missing: fields whose absence leaves an ``unknown`` verdict open.
        evidence: fields, values, dates and derived values used.
        reading: the reading of an ambiguous sentence applied, e.g.
            ``b-cell-history: washout (pinned)``; None when the text is clear.
    """

    id: str
    kind: Literal["inclusion", "exclusion"]
    verdict: Verdict
    reason: str
    missing: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = {}
    reading: str | None = None

    @property
    def fails(self) -> bool:
        """The patient is ruled out by this criterion."""
        excluding = "met" if self.kind == "exclusion" else "not_met"
        return self.verdict == excluding


@dataclass(frozen=True)
class Decision:
    """The screening decision for one patient.

    Attributes:
        status: ``eligible``, ``ineligible`` or ``needs_review``.
        reasons: why, most decisive first.
        missing_fields: the fields to obtain (``needs_review``), in criterion order.
        to_confirm: criterion ids only the screening visit can settle.
        verdicts: one per criterion, in file order.
        risk: the model's 2-year LN risk (0–1).
        risk_range: the lowest and highest plausible risk given what is not
            recorded (both the risk for a record with every predictor).
        gate: ``above``, ``below`` or ``undetermined``.
        gate_to_obtain: the missing predictors that would settle an undetermined
            gate, most decisive first.
        criteria_version: ``<trial>@<version>+sha256:<hash>`` of the criteria file.
    """

    status: Status
    reasons: tuple[str, ...]
    missing_fields: tuple[str, ...]
    to_confirm: tuple[str, ...]
    verdicts: tuple[CriterionVerdict, ...]
    risk: float
    risk_range: tuple[float, float]
    gate: GateState
    gate_to_obtain: tuple[str, ...]
    criteria_version: str

    def verdict(self, criterion_id: str) -> CriterionVerdict:
        """The verdict on one criterion, by id."""
        for v in self.verdicts:
            if v.id == criterion_id:
                return v
        raise KeyError(criterion_id)


def _failing_code(c: Criterion) -> int:
    return TRUE if c.kind == "exclusion" else FALSE


def phrase(
    criterion: Criterion, evaluation: Evaluation, node: int, row: int
) -> CriterionVerdict:
    """One patient's verdict on one criterion (rule tree ``node``), with reason and
    evidence."""
    verdict: Verdict = VERDICTS[evaluation.code(node, row)]  # type: ignore[assignment]
    said, evidence, _ = evaluation.details(node, row)
    missing: tuple[str, ...] = ()
    if verdict == "unknown":
        reason = f"cannot decide: {said}"
        missing = evaluation.missing(node, row)
    elif verdict == "needs_judgment":
        reason = said
    elif criterion.kind == "exclusion":
        reason = ("excluded: " if verdict == "met" else "not excluded: ") + said
    else:
        reason = ("meets: " if verdict == "met" else "does not meet: ") + said
    return CriterionVerdict(
        criterion.id, criterion.kind, verdict, reason, missing, evidence,
        criterion.applied,
    )  # fmt: skip


class Screened:
    """Every criterion and the decision for every patient of a table.

    Built by :func:`decide`; :meth:`decision` phrases one patient's decision with
    every verdict's reason and evidence, :meth:`frame` gives the column-wise table.
    """

    def __init__(
        self,
        table: Table,
        criteria: TrialCriteria,
        gate: Gate,
        evaluation: Evaluation,
    ) -> None:
        self.table = table
        self.criteria = criteria
        self.risk = gate.risk
        self.gate_input = gate
        self.evaluation = evaluation
        self.roots = evaluation.program.roots
        self.threshold = criteria.risk_gate.threshold
        self.gate = gate.states
        self.low = gate.risk if gate.low is None else gate.low
        self.high = gate.risk if gate.high is None else gate.high
        self.codes = evaluation.root_codes()  # (patients, criteria)
        failing = np.array([_failing_code(c) for c in criteria.criteria])
        self.fails = self.codes == failing
        visit = np.array([c.settled_at_visit for c in criteria.criteria], dtype=bool)
        self.unknown = self.codes == UNKNOWN
        self.to_obtain = self.unknown & ~visit
        to_review = self.to_obtain.any(axis=1) | (self.gate == "undetermined")
        self.status = np.where(
            (self.gate == "below") | self.fails.any(axis=1),
            "ineligible",
            np.where(to_review, "needs_review", "eligible"),
        )

    @property
    def n(self) -> int:
        return self.table.n

    @cached_property
    def missing_fields(self) -> list[tuple[str, ...]]:
        """Fields to obtain per patient (empty for ineligible patients)."""
        out: list[tuple[str, ...]] = [()] * self.n
        for i in np.flatnonzero(self.status != "ineligible"):
            fields = [
                name
                for j in np.flatnonzero(self.to_obtain[i])
                for name in self.evaluation.missing(self.roots[j], i)
            ]
            out[i] = tuple(dict.fromkeys(fields))
        return out

    @cached_property
    def to_confirm(self) -> list[tuple[str, ...]]:
        """Criterion ids the screening visit settles, per patient (not ineligible)."""
        out: list[tuple[str, ...]] = [()] * self.n
        ids = np.array([c.id for c in self.criteria.criteria], dtype=object)
        confirm = (self.codes == JUDGMENT) | (self.unknown & ~self.to_obtain)
        for i in np.flatnonzero(self.status != "ineligible"):
            out[i] = tuple(ids[confirm[i]])
        return out

    def gate_to_obtain(self, row: int) -> tuple[str, ...]:
        """The missing predictors that would settle an undetermined gate."""
        to_obtain = self.gate_input.to_obtain
        return tuple(to_obtain[row]) if to_obtain else ()

    def decision(self, row: int) -> Decision:
        """One patient's decision with every verdict's reason and evidence."""
        verdicts = tuple(
            phrase(c, self.evaluation, node, row)
            for c, node in zip(self.criteria.criteria, self.roots, strict=True)
        )
        status: Status = self.status[row]
        risk, gate = float(self.risk[row]), self.gate[row]
        if gate == "below":
            ids = self.criteria.risk_gate_ids  # the gate criterion repeats it
            reasons = (gate_reason(self.gate_input, row),)
            reasons += tuple(
                f"{v.id}: {v.reason}" for v in verdicts if v.fails and v.id not in ids
            )
        elif status == "ineligible":
            reasons = tuple(f"{v.id}: {v.reason}" for v in verdicts if v.fails)
        elif status == "needs_review":
            obtain = self.to_obtain[row]
            reasons = tuple(
                f"{v.id}: {v.reason}"
                for v, o in zip(verdicts, obtain, strict=True)
                if o
            )
            if gate == "undetermined" and not self.criteria.risk_gate_ids:
                reasons += (gate_reason(self.gate_input, row),)
        else:
            reasons = (
                f"risk {risk:.3f} > gate {self.threshold:g}; no criterion fails or "
                "is missing",
            )
        return Decision(
            status=status,
            reasons=reasons,
            missing_fields=self.missing_fields[row],
            to_confirm=self.to_confirm[row],
            verdicts=verdicts,
            risk=risk,
            risk_range=(float(self.low[row]), float(self.high[row])),
            gate=gate,
            gate_to_obtain=self.gate_to_obtain(row),
            criteria_version=self.criteria.criteria_version,
        )

    def brief_reasons(self, row: int) -> list[str]:
        """The short reasons of a batch answer: the gate, or the criterion ids that
        fail (ineligible) or are unknown (needs review)."""
        ids = [c.id for c in self.criteria.criteria]
        if self.gate[row] == "below":
            return [gate_reason(self.gate_input, row)]
        if self.status[row] == "ineligible":
            return [f"{ids[j]}: fails" for j in np.flatnonzero(self.fails[row])]
        return [f"{ids[j]}: unknown" for j in np.flatnonzero(self.unknown[row])]

    def counts(self) -> dict[str, int]:
        """Patients per status, every status listed."""
        values, counts = np.unique(self.status, return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist(), strict=True))
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def frame(self) -> pd.DataFrame:
        """One row per patient: ``status``, ``risk``, ``risk_low``, ``risk_high``,
        ``gate`` (above / below / undetermined), ``gate_to_obtain``,
        ``missing_fields``, ``to_confirm`` and one verdict column per criterion."""
        out = pd.DataFrame(
            {
                "status": self.status,
                "risk": self.risk,
                "risk_low": self.low,
                "risk_high": self.high,
                "gate": self.gate,
                "gate_to_obtain": [self.gate_to_obtain(i) for i in range(self.n)],
                "missing_fields": self.missing_fields,
                "to_confirm": self.to_confirm,
            }
        )
        verdicts = pd.DataFrame(
            {
                c.id: pd.Categorical.from_codes(
                    self.codes[:, j].astype(np.int8), dtype=VERDICT_DTYPE
                )
                for j, c in enumerate(self.criteria.criteria)
            }
        )
        return pd.concat([out, verdicts], axis=1)


def decide(
    table: Table,
    criteria: TrialCriteria,
    risk: FloatArray,
    gate: Gate | None = None,
) -> Screened:
    """Evaluate every criterion on ``table`` and decide for every patient.

    Args:
        table: the patients on the screening date.
        criteria: from :func:`eligibility.criteria.load_criteria`.
        risk: the model's 2-year LN risk per patient (probability 0–1).
        gate: where each risk stands (a model's three-valued gate, see
            :class:`~eligibility.evaluate.Gate`); None reads the risk against the
            criteria file's threshold (above when risk > threshold).

    Raises:
        ValueError: risks that are not probabilities of every patient, or gate
            states that are not one of above / below / undetermined per patient.
    """
    risk = np.asarray(risk, dtype=np.float64)
    if (
        risk.shape != (table.n,)
        or np.isnan(risk).any()
        or ((risk < 0) | (risk > 1)).any()
    ):
        raise ValueError("risks: one probability in [0, 1] per patient")
    if gate is None:
        gate = Gate(risk, criteria.risk_gate.cut)
    states = gate.states
    if states.shape != (table.n,) or not set(states.tolist()) <= set(GATE_STATES):
        raise ValueError(f"gate: one of {', '.join(GATE_STATES)} per patient")
    evaluation = Evaluation(criteria.program, table, gate)
    return Screened(table, criteria, gate, evaluation)
