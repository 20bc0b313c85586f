"""An XGBoost tree ensemble walked with numpy: the booster's margin, bit for bit.

Why: one ``Booster.inplace_predict`` call costs ~140 µs however few the rows
(measured here: ~60 µs inside libxgboost, the rest in its Python wrapper), while
walking the default model's 400 shallow trees for one patient with numpy takes
~30 µs. A service screening one patient per request pays that fixed cost on every
request, and again for each plausible completion the three-valued gate scores when
predictors are missing. For many rows the booster is
faster, and :class:`~riskmodel.model.LNRiskModel` keeps using it there.

Exactness: XGBoost sends a row to the left child when ``value < split_condition``,
sends a missing value (NaN) the node's default way, and adds the leaf values to the
base margin tree by tree in float32. :meth:`TreeArrays.margin` does the same,
including the sequential float32 sum. :func:`compile_booster` returns arrays only if
they reproduce the booster exactly on probe rows built from the split thresholds;
otherwise (categorical splits, other objectives, multi-output) it returns None and
the booster is used. The tests compare both on 20,000 synthetic patients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

#: Up to this many rows the numpy walk is faster than one booster call.
MAX_ROWS = 8


class UnsupportedTreesError(ValueError):
    """The booster uses something this walker does not reproduce."""


@dataclass(frozen=True, eq=False)
class TreeArrays:
    """Every node of every tree in flat arrays; children index the same arrays.

    A leaf points to itself, so walking ``max_depth`` steps lands every row on a
    leaf whatever the tree's depth. ``value`` holds the split condition of an
    inner node and the leaf value of a leaf (XGBoost's own layout).
    """

    roots: np.ndarray  # (n_trees,) node index of each tree's root
    feature: np.ndarray  # (n_nodes,) column tested at the node
    value: np.ndarray  # (n_nodes,) float32 split condition / leaf value
    left: np.ndarray  # (n_nodes,) next node when value < condition
    right: np.ndarray  # (n_nodes,)
    default_left: np.ndarray  # (n_nodes,) bool: where a missing value goes
    max_depth: int
    base_margin: np.float32

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> TreeArrays:
        """Flatten a binary:logistic gbtree booster with numeric splits."""
        learner = json.loads(booster.save_raw("json"))["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise UnsupportedTreesError(f"objective {objective}")
        params = learner["learner_model_param"]
        if int(params.get("num_target", 1)) != 1 or int(params["num_class"]) > 1:
            raise UnsupportedTreesError("more than one output")
        booster_kind = learner["gradient_booster"]["name"]
        if booster_kind != "gbtree":
            raise UnsupportedTreesError(f"booster {booster_kind}")
        base_score = np.float32(params["base_score"].strip("[]"))
        trees = learner["gradient_booster"]["model"]["trees"]
        roots, feature, value, left, right, default_left = [], [], [], [], [], []
        depth, offset = 0, 0
        for tree in trees:
            if any(tree.get("split_type", [])) or tree.get("categories"):
                raise UnsupportedTreesError("categorical splits")
            kids_l = np.asarray(tree["left_children"], dtype=np.int64)
            kids_r = np.asarray(tree["right_children"], dtype=np.int64)
            here = np.arange(len(kids_l))
            leaf = kids_l == -1
            roots.append(offset)
            feature.append(np.asarray(tree["split_indices"], dtype=np.int64))
            value.append(np.asarray(tree["split_conditions"], dtype=np.float32))
            left.append(np.where(leaf, here, kids_l) + offset)
            right.append(np.where(leaf, here, kids_r) + offset)
            default_left.append(np.asarray(tree["default_left"], dtype=bool))
            depth = max(depth, _depth(kids_l, kids_r))
            offset += len(kids_l)
        return cls(
            roots=np.asarray(roots, dtype=np.int64),
            feature=np.concatenate(feature),
            value=np.concatenate(value),
            left=np.concatenate(left),
            right=np.concatenate(right),
            default_left=np.concatenate(default_left),
            max_depth=depth,
            # binary:logistic keeps base_score as a probability; the margin starts
            # at its log-odds, computed in float32 as XGBoost does
            # (-log(1/p - 1); a float64 log rounds differently for some p).
            base_margin=np.float32(-np.log(np.float32(1) / base_score - np.float32(1))),
        )

    def margin(self, features: np.ndarray) -> np.ndarray:
        """Raw log-odds, float32, one per row of a float32 matrix."""
        x = np.asarray(features, dtype=np.float32)
        node = np.broadcast_to(self.roots, (x.shape[0], len(self.roots)))
        rows = np.arange(x.shape[0])[:, None]
        for _ in range(self.max_depth):
            v = x[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(v), self.default_left[node], v < self.value[node]
            )
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node]
        start = np.full((x.shape[0], 1), self.base_margin, dtype=np.float32)
        # XGBoost adds tree by tree in float32; cumsum is sequential like it.
        summed = np.cumsum(np.hstack([start, leaves]), axis=1, dtype=np.float32)
        return summed[:, -1]


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """Edges on the longest root-to-leaf path of one tree."""
    depth, level = 0, [0]
    while True:
        level = [k for n in level for k in (left[n], right[n]) if k != -1]
        if not level:
            return depth
        depth += 1


def probe_rows(trees: TreeArrays, n_features: int, n: int = 512) -> np.ndarray:
    """Rows drawn, column by column, from that column's split thresholds, the
    float32 neighbours just below and above each, 0 and NaN: values on every
    boundary where ``<`` and the default direction could differ from XGBoost's."""
    rng = np.random.default_rng(0)
    inner = trees.left != np.arange(len(trees.left))
    candidates: list[np.ndarray] = []
    for j in range(n_features):
        t = np.unique(trees.value[inner & (trees.feature == j)])
        below = np.nextafter(t, np.float32(-np.inf))
        above = np.nextafter(t, np.float32(np.inf))
        candidates.append(np.concatenate([t, below, above, [np.nan, 0.0]]))
    return np.column_stack(
        [rng.choice(c, size=n).astype(np.float32) for c in candidates]
    )


def compile_booster(booster: xgb.Booster) -> TreeArrays | None:
    """The booster as arrays if they reproduce its margins exactly, else None."""
    try:
        trees = TreeArrays.from_booster(booster)
    except (UnsupportedTreesError, KeyError, ValueError):
        return None
    probe = probe_rows(trees, booster.num_features())
    expected = booster.inplace_predict(probe, predict_type="margin")
    if not np.array_equal(trees.margin(probe), np.asarray(expected).reshape(-1)):
        return None
    return trees


def booster_margin(
    booster: xgb.Booster, features: np.ndarray, trees: TreeArrays | None = None
) -> np.ndarray:
    """A booster's margins (float64, one per row): walked with ``trees`` for up to
    :data:`MAX_ROWS` rows when given, by the booster otherwise. Same numbers."""
    if trees is not None and features.shape[0] <= MAX_ROWS:
        out = trees.margin(features)
    else:
        out = booster.inplace_predict(features, predict_type="margin")
    return np.asarray(out, dtype=np.float64).reshape(-1)
