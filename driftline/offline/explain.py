"""Explanations: SHAP importance (global and for one prediction), partial dependence, a counterfactual,
and an importance-shift check between the reference data and a production window.

TreeExplainer where the model is a tree ensemble (the gradient-boosting teacher), otherwise
a permutation explainer over a k-means-summarised background. One-hot columns are summed
back to their source feature, so importances are per feature as users name them. The
importance shift compares each feature's share of the total mean |SHAP| on the reference
rows with its share on production rows: a feature whose share moves by more than
`threshold` is flagged — the model leans on something else in production than it did in
training, a sign of a spurious correlation or a broken input.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.offline.train import AGRAWAL_NUMERIC


def _source(name: str) -> str:
    return name.split("=", 1)[0]


def shap_values(model: Any, background: npt.NDArray[np.float32], x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """SHAP values of the positive class, (rows, columns)."""
    import shap

    try:
        explainer = shap.TreeExplainer(model)
        values = explainer.shap_values(x)
    except Exception:  # noqa: BLE001 - not a tree model: model-agnostic, on a summarised background
        summary = shap.kmeans(background, 20).data
        predict: Callable[[Any], Any] = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
        explainer = shap.PermutationExplainer(predict, summary)
        values = explainer(x).values
    arr = np.asarray(values, dtype=np.float64)
    return arr[..., 1] if arr.ndim == 3 else arr


def importance(values: npt.NDArray[np.float64], names: Sequence[str]) -> dict[str, float]:
    """Mean |SHAP| per source feature (one-hot columns summed per row first)."""
    by_feature: dict[str, npt.NDArray[np.float64]] = defaultdict(lambda: np.zeros(values.shape[0]))
    for j, name in enumerate(names):
        by_feature[_source(name)] = by_feature[_source(name)] + values[:, j]
    return {f: float(np.mean(np.abs(v))) for f, v in by_feature.items()}


def local(values_row: npt.NDArray[np.float64], names: Sequence[str], top: int = 5) -> list[tuple[str, float]]:
    """The largest contributions to one prediction, per source feature."""
    sums: dict[str, float] = defaultdict(float)
    for j, name in enumerate(names):
        sums[_source(name)] += float(values_row[j])
    return sorted(sums.items(), key=lambda kv: -abs(kv[1]))[:top]


def partial_dependence(
    model: Any, x: npt.NDArray[np.float32], column: int, points: int = 20
) -> tuple[list[float], list[float]]:
    from sklearn.inspection import partial_dependence as pd

    result = pd(model, x, [column], grid_resolution=points, kind="average")
    return [float(v) for v in result["grid_values"][0]], [float(v) for v in result["average"][0]]


@dataclass(frozen=True)
class Counterfactual:
    feature: str
    change_std: float  # in standard deviations of the training data
    change: float  # in the feature's own units
    new_probability: float


def counterfactual(
    model: Any, row: npt.NDArray[np.float32], std: npt.NDArray[np.float64], max_std: float = 3.0, step: float = 0.05
) -> Counterfactual | None:
    """The smallest single-numeric-feature change that flips the decision (None if none within max_std)."""
    base = float(model.predict_proba(row[None, :])[0, 1]) >= 0.5
    best: Counterfactual | None = None
    for j, name in enumerate(AGRAWAL_NUMERIC):
        for k in np.arange(step, max_std + 1e-9, step):
            if best is not None and k >= abs(best.change_std):
                break
            found = False
            for sign in (1.0, -1.0):
                probe = row.copy()
                probe[j] += sign * k
                p = float(model.predict_proba(probe[None, :])[0, 1])
                if (p >= 0.5) != base:
                    best = Counterfactual(name, sign * float(k), sign * float(k) * float(std[j]), p)
                    found = True
                    break
            if found:
                break
    return best


def importance_shift(
    reference: dict[str, float], production: dict[str, float], threshold: float = 0.1
) -> dict[str, tuple[float, float, bool]]:
    """Per feature: (reference share, production share, flagged) of the total mean |SHAP|."""
    r_total, p_total = sum(reference.values()) or 1.0, sum(production.values()) or 1.0
    out = {}
    for f in sorted(set(reference) | set(production)):
        r, p = reference.get(f, 0.0) / r_total, production.get(f, 0.0) / p_total
        out[f] = (r, p, abs(p - r) > threshold)
    return out


@dataclass(frozen=True)
class SourceColumns:
    """How encoded columns map back to the features users name: a numeric column, or a one-hot group.

    LIME must perturb a categorical feature as one category, not each of its one-hot columns
    on its own: column-wise sampling gives rows with zero or several categories set (about
    94 % of LIME's samples on the Agrawal data), which the model never saw, and LIME's local
    fit then explains those. ``decode`` turns an encoded table into one column per source
    feature (a numeric value, or the category's code; one past the last code where a row has
    no category set, e.g. a lone ``plan=gold`` column) and ``encode`` turns it back.
    """

    names: tuple[str, ...]  # source features, in order of first appearance
    columns: tuple[tuple[int, ...], ...]  # encoded column indices per source feature
    categories: tuple[tuple[str, ...], ...]  # category names per source feature; () for a numeric one
    width: int

    @classmethod
    def of(cls, encoded_names: Sequence[str]) -> SourceColumns:
        groups: dict[str, list[int]] = {}
        for j, name in enumerate(encoded_names):
            groups.setdefault(_source(name), []).append(j)
        cats = tuple(
            tuple(encoded_names[j].split("=", 1)[1] for j in cols) if "=" in encoded_names[cols[0]] else ()
            for cols in groups.values()
        )
        return cls(tuple(groups), tuple(tuple(c) for c in groups.values()), cats, len(encoded_names))

    def categorical(self) -> list[int]:
        return [i for i, c in enumerate(self.categories) if c]

    def decode(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        out = np.empty((x.shape[0], len(self.names)), dtype=np.float64)
        for i, (cols, cats) in enumerate(zip(self.columns, self.categories, strict=True)):
            block = np.asarray(x[:, list(cols)], dtype=np.float64)
            if cats:
                out[:, i] = np.where(block.max(axis=1) > 0.5, block.argmax(axis=1), len(cols))
            else:
                out[:, i] = block[:, 0]
        return out

    def encode(self, table: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        out = np.zeros((table.shape[0], self.width), dtype=np.float32)
        for i, (cols, cats) in enumerate(zip(self.columns, self.categories, strict=True)):
            if cats:
                codes = np.asarray(table[:, i]).round().astype(np.int64)
                hit = codes < len(cols)
                out[np.nonzero(hit)[0], np.asarray(cols)[codes[hit]]] = 1.0
            else:
                out[:, cols[0]] = table[:, i]
        return out


def lime_local(
    model: Any,
    train_x: npt.NDArray[np.float32],
    row: npt.NDArray[np.float32],
    names: Sequence[str],
    seed: int = 0,
    samples: int = 5000,
) -> tuple[dict[str, float], float]:
    """LIME's weights for the positive class per source feature, and the local model's R².

    Tabular LIME on the unencoded table (``SourceColumns``): numeric columns discretised into
    training quartiles, each categorical feature sampled as one category from its training
    frequencies, so every sample the model sees is a valid encoding. Seeded, so repeatable.
    """
    from lime.lime_tabular import LimeTabularExplainer

    source = SourceColumns.of(names)
    explainer = LimeTabularExplainer(
        source.decode(train_x),
        feature_names=list(source.names),
        categorical_features=source.categorical(),
        categorical_names={i: [*c, "(none)"] for i, c in enumerate(source.categories) if c},
        mode="classification",
        random_state=seed,
        discretize_continuous=True,
    )
    exp = explainer.explain_instance(
        source.decode(row[None, :])[0],
        lambda table: model.predict_proba(source.encode(table)),
        labels=(1,),
        num_features=len(source.names),
        num_samples=samples,
    )
    return {source.names[j]: float(weight) for j, weight in exp.as_map()[1]}, float(exp.score)


def compare_rankings(shap_local: dict[str, float], lime_local: dict[str, float], k: int = 3) -> dict[str, Any]:
    """How far SHAP and LIME agree on one decision, and on what.

    Ranks by |contribution| over every source feature (Spearman), and for SHAP's top ``k``:
    how many LIME also ranks in its top ``k``, and on how many the two agree in sign. A shared
    top feature with opposite signs is disagreement, and is reported as such.
    """
    from scipy.stats import spearmanr

    features = sorted(set(shap_local) | set(lime_local))

    def ranks(values: dict[str, float]) -> dict[str, int]:
        order = sorted(features, key=lambda f: -abs(values.get(f, 0.0)))
        return {f: i + 1 for i, f in enumerate(order)}

    s_rank, l_rank = ranks(shap_local), ranks(lime_local)
    rho = float(spearmanr([s_rank[f] for f in features], [l_rank[f] for f in features]).statistic)
    top = [
        {
            "feature": f,
            "shap": shap_local.get(f, 0.0),
            "lime": lime_local.get(f, 0.0),
            "shap_rank": s_rank[f],
            "lime_rank": l_rank[f],
        }
        for f in sorted(features, key=lambda f: s_rank[f])
    ]
    shap_top = [f for f in features if s_rank[f] <= k]
    overlap = len(set(shap_top) & {f for f in features if l_rank[f] <= k})
    signs = sum(np.sign(shap_local.get(f, 0.0)) == np.sign(lime_local.get(f, 0.0)) for f in shap_top)
    first = min(features, key=lambda f: s_rank[f])
    same_top = first == min(features, key=lambda f: l_rank[f])
    return {
        "comparison": top,
        "spearman": rho,
        "k": k,
        "topk_overlap": overlap,
        "topk_same_sign": int(signs),
        "same_top": same_top,
        "same_top_sign": bool(same_top and np.sign(shap_local[first]) == np.sign(lime_local.get(first, 0.0))),
    }


def explain(
    model: Any,
    model_name: str,
    x_train: npt.NDArray[np.float32],
    x_test: npt.NDArray[np.float32],
    names: Sequence[str],
    num_std: npt.NDArray[np.float64],
    *,
    row: int = 0,
    lime_samples: int = 5000,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Everything `driftline offline explain` reports (without the production shift), as plain data."""
    values = shap_values(model, x_train[:500], x_test[:500])
    progress("SHAP")
    ref = importance(values, names)
    top = max(ref, key=lambda f: ref[f])
    shap_row = dict(local(values[row], names, top=len(names)))
    out: dict[str, Any] = {
        "model": model_name,
        "row": row,
        "importance": ref,
        "top": top,
        "local": local(values[row], names),
    }
    weights, score = lime_local(model, x_train, x_test[row], names, seed=seed, samples=lime_samples)
    out["lime"] = {"seed": seed, "samples": lime_samples, "score": score, **compare_rankings(shap_row, weights)}
    progress("LIME")
    out["pd"] = partial_dependence(model, x_test[:1000], list(names).index(top), 10) if top in names else ([], [])
    cf = counterfactual(model, x_test[row], num_std)
    out["counterfactual"] = (
        "no single-feature change within 3 std flips it"
        if cf is None
        else (
            f"changing {cf.feature} by {cf.change:+.2f} ({cf.change_std:+.2f} std) flips the decision "
            f"(P = {cf.new_probability:.3f})"
        )
    )
    progress("partial dependence, counterfactual")
    return out
