"""The review zone around the gate, placed on observed outcomes.

A single patient's 2-year outcome says nothing about how far a true risk may lie
from the model's prediction, so the width of the zone is a stated policy: the gate
auto-excludes only patients like those who, among held-out patients, developed LN
at most ``gate − exclude_margin`` of the time, and auto-passes only patients like
those who developed it at least ``gate + pass_margin`` of the time. Everything
else — and every patient whose missing predictors could carry them across an edge
— is reviewed.

Where those event rates lie on the model's risk scale is measured, not assumed:
the model stores the *observed* 2-year event rate as a function of its predicted
risk among development patients it did not train on (out-of-fold), estimated by
isotonic regression (the calibration on which Venn–Abers predictors rest; Vovk et
al. 2015) with each step's value placed at the mean risk of its patients and joined
linearly (centred isotonic regression; Oron & Flournoy, Stat Biopharm Res 2017).
The edges are the risks at which that curve reaches the two event rates, for the
gate of the criteria file in force. A miscalibrated model therefore gets edges
where its observed outcomes put them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReviewZone:
    """The observed event-rate curve and the zone's margins around the gate.

    Attributes:
        risk: predicted risks (knots, increasing) of the held-out patients.
        event_rate: their observed 2-year event rate at each knot
            (non-decreasing).
        exclude_margin: auto-exclude where the observed rate is at most
            ``gate − exclude_margin``.
        pass_margin: auto-pass where it is above ``gate + pass_margin``.
        n_patients: held-out patients the curve rests on.
        n_events: their events.
    """

    risk: tuple[float, ...]
    event_rate: tuple[float, ...]
    exclude_margin: float
    pass_margin: float
    n_patients: int
    n_events: int

    def observed_rate(self, risk: np.ndarray) -> np.ndarray:
        """The held-out event rate of patients predicted at ``risk`` (interpolated,
        flat beyond the knots)."""
        return np.interp(risk, self.risk, self.event_rate)

    def edges(self, gate: float) -> tuple[float, float]:
        """(exclude edge, pass edge) on the risk scale, for a gate on the risk.

        A risk at or below the exclude edge is auto-excluded; above the pass edge
        auto-passed. An event rate the curve never reaches puts its edge at the end
        of the scale (0: never auto-exclude; 1: never auto-pass).
        """
        return (
            self._risk_at(gate - self.exclude_margin, below=True),
            self._risk_at(gate + self.pass_margin, below=False),
        )

    def _risk_at(self, rate: float, *, below: bool) -> float:
        rates, risks = np.asarray(self.event_rate), np.asarray(self.risk)
        if below:
            # the largest risk whose observed rate is still at most `rate`
            reached = np.flatnonzero(rates <= rate)
            if reached.size == 0:
                return 0.0
            k = reached[-1]
            if k + 1 < len(rates) and rates[k + 1] > rates[k]:
                t = (rate - rates[k]) / (rates[k + 1] - rates[k])
                return float(risks[k] + t * (risks[k + 1] - risks[k]))
            return float(risks[k])
        # the smallest risk whose observed rate exceeds `rate`
        above = np.flatnonzero(rates > rate)
        if above.size == 0:
            return 1.0
        k = above[0]
        if k > 0 and rates[k] > rates[k - 1]:
            t = (rate - rates[k - 1]) / (rates[k] - rates[k - 1])
            return float(risks[k - 1] + t * (risks[k] - risks[k - 1]))
        return float(risks[k])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "centred isotonic regression of held-out outcomes on risk",
            "risk": list(self.risk),
            "event_rate": list(self.event_rate),
            "exclude_margin": self.exclude_margin,
            "pass_margin": self.pass_margin,
            "n_patients": self.n_patients,
            "n_events": self.n_events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewZone:
        risk = tuple(map(float, data["risk"]))
        rate = tuple(map(float, data["event_rate"]))
        if len(risk) != len(rate) or len(risk) < 2:
            raise ValueError("the review zone needs ≥ 2 (risk, event rate) knots")
        if np.any(np.diff(risk) < 0) or np.any(np.diff(rate) < 0):
            raise ValueError("the review zone's knots must not decrease")
        return cls(
            risk,
            rate,
            float(data["exclude_margin"]),
            float(data["pass_margin"]),
            int(data["n_patients"]),
            int(data["n_events"]),
        )
