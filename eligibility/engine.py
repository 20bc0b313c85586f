"""Screen one patient against a trial's criteria: verdicts, then a decision.

The order of the decision (``screen``):

1. **Risk gate.** Risk ≤ the file's threshold → ``ineligible``, with the risk as the
   reason. The criteria are still evaluated and reported.
2. **A failed criterion.** Any inclusion ``not_met`` or exclusion ``met`` →
   ``ineligible``. A recorded refusal (``consent_signed = false``) lands here.
3. **Something to obtain.** Any criterion ``unknown`` because a datum is missing
   (other than the facts the screening visit settles) → ``needs_review``, listing
   exactly the fields to obtain. So does an uncertainty band around the risk that
   straddles the gate (``low ≤ threshold < high``).
4. Otherwise ``eligible``; investigator-judgment items and visit-settled facts not
   yet recorded (consent, contraception) are listed under ``to_confirm``.

Missing data never gives ``eligible``. The engine takes the model's risk and band as
inputs; it runs no model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from data_schema.patient import PatientRecord
from eligibility.criteria import Criterion, TrialCriteria
from eligibility.rules import Context, Truth, evaluate

Verdict = Literal["met", "not_met", "unknown", "needs_judgment"]
Status = Literal["eligible", "ineligible", "needs_review"]

_VERDICT: dict[Truth, Verdict] = {
    Truth.TRUE: "met",
    Truth.FALSE: "not_met",
    Truth.UNKNOWN: "unknown",
    Truth.JUDGMENT: "needs_judgment",
}


class CriterionVerdict(NamedTuple):
    """The verdict on one criterion, with what it rests on.

    For an exclusion criterion ``met`` means the patient HAS the excluding condition.
    A NamedTuple: a screening builds 41 per patient, per request.

    Attributes:
        id: criterion id.
        kind: ``inclusion`` or ``exclusion``.
        verdict: ``met``, ``not_met``, ``unknown`` or ``needs_judgment``.
        reason: one readable sentence for a coordinator.
        missing: fields whose absence leaves an ``unknown`` verdict open.
        evidence: fields, values, dates and derived values used.
    """

    id: str
    kind: Literal["inclusion", "exclusion"]
    verdict: Verdict
    reason: str
    missing: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = MappingProxyType({})

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
        band: the risk's uncertainty band (low, high), if given.
        criteria_version: ``<trial>@<version>+sha256:<hash>`` of the criteria file.
    """

    status: Status
    reasons: tuple[str, ...]
    missing_fields: tuple[str, ...]
    to_confirm: tuple[str, ...]
    verdicts: tuple[CriterionVerdict, ...]
    risk: float
    band: tuple[float, float] | None
    criteria_version: str

    def verdict(self, criterion_id: str) -> CriterionVerdict:
        """The verdict on one criterion, by id."""
        for v in self.verdicts:
            if v.id == criterion_id:
                return v
        raise KeyError(criterion_id)


def evaluate_criterion(criterion: Criterion, ctx: Context) -> CriterionVerdict:
    """Evaluate one criterion's rule and phrase the verdict."""
    result = evaluate(criterion.rule, ctx)
    verdict = _VERDICT[result.value]
    if verdict == "unknown":
        reason = f"cannot decide: {result.reason}"
    elif verdict == "needs_judgment":
        reason = result.reason
    elif criterion.kind == "exclusion":
        reason = (
            "excluded: " if verdict == "met" else "not excluded: "
        ) + result.reason
    else:
        reason = ("meets: " if verdict == "met" else "does not meet: ") + result.reason
    return CriterionVerdict(
        criterion.id,
        criterion.kind,
        verdict,
        reason,
        result.missing if verdict == "unknown" else (),
        dict(result.evidence),
    )


def screen(
    record: PatientRecord,
    *,
    risk: float,
    band: tuple[float, float] | None,
    screening_date: date,
    criteria: TrialCriteria,
) -> Decision:
    """Screen one patient for the trial.

    Args:
        record: the patient at screening.
        risk: the model's predicted 2-year LN risk, probability 0–1.
        band: uncertainty band ``(low, high)`` of that risk (probabilities), or None.
        screening_date: day 0 for ages and every look-back window.
        criteria: from :func:`eligibility.criteria.load_criteria`.

    Returns:
        The decision, with every criterion's verdict (see module docstring).
    """
    if not 0.0 <= risk <= 1.0:
        raise ValueError(f"risk must be a probability in [0, 1], got {risk}")
    if band is not None and not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got {band}")
    threshold = criteria.risk_gate.threshold
    ctx = Context(record, screening_date, risk, threshold)
    verdicts = tuple([evaluate_criterion(c, ctx) for c in criteria.criteria])
    settled_at_visit = criteria.settled_at_visit_ids

    common = {
        "verdicts": verdicts,
        "risk": risk,
        "band": band,
        "criteria_version": criteria.criteria_version,
    }
    failed = [v for v in verdicts if v.fails]
    if risk <= threshold:
        reasons = (f"2-year LN risk {risk:.3f} ≤ gate {threshold:g}",)
        # The gate criterion itself would repeat the first reason.
        gate_ids = criteria.risk_gate_ids
        reasons += tuple(f"{v.id}: {v.reason}" for v in failed if v.id not in gate_ids)
        return Decision("ineligible", reasons, (), (), **common)
    if failed:
        reasons = tuple(f"{v.id}: {v.reason}" for v in failed)
        return Decision("ineligible", reasons, (), (), **common)

    to_obtain = [
        v for v in verdicts if v.verdict == "unknown" and v.id not in settled_at_visit
    ]
    missing = tuple(dict.fromkeys(f for v in to_obtain for f in v.missing))
    to_confirm = tuple(
        v.id
        for v in verdicts
        if v.verdict == "needs_judgment"
        or (v.verdict == "unknown" and v.id in settled_at_visit)
    )
    reasons_review = [f"{v.id}: {v.reason}" for v in to_obtain]
    if band is not None and band[0] <= threshold < band[1]:
        reasons_review.append(
            f"risk band {band[0]:.3f}–{band[1]:.3f} straddles the gate {threshold:g}"
        )
    if reasons_review:
        return Decision(
            "needs_review", tuple(reasons_review), missing, to_confirm, **common
        )
    return Decision(
        "eligible",
        (f"risk {risk:.3f} > gate {threshold:g}; no criterion fails or is missing",),
        (),
        to_confirm,
        **common,
    )
