"""The logistic function and its inverse: the one definition the project uses.

Risks live on the probability scale; calibration, uncertainty and the synthetic
truth model work on the log-odds scale. Probabilities are clipped to
``[P_CLIP, 1 − P_CLIP]`` before a logit so that 0 and 1 stay finite.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

P_CLIP = 1e-8
"""Probabilities are clipped to [P_CLIP, 1 − P_CLIP] before taking logits."""


def expit(z: ArrayLike) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(−z))`` (probability from log-odds)."""
    with np.errstate(over="ignore"):  # exp(−z) → inf gives the correct 0.0
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def logit(p: ArrayLike, clip: float = P_CLIP) -> np.ndarray:
    """Log-odds ``log(p / (1 − p))`` of probabilities clipped to [clip, 1 − clip]."""
    q = np.clip(np.asarray(p, dtype=np.float64), clip, 1.0 - clip)
    return np.log(q) - np.log1p(-q)
