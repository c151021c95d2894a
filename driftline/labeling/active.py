"""Active learning: which predictions to ask people to label, within a budget per window.

Uncertainty of a prediction from its class probabilities (binary events: the score ``s``
gives ``[1 - s, s]``):

* ``least_confidence``: 1 - max p;
* ``margin``: 1 - (p_first - p_second), so that larger means more uncertain throughout;
* ``entropy``: -sum p log p.

``select`` takes the `budget` most uncertain items; with ``diversity`` it first shortlists
``diversity`` x budget of them and then picks far-apart ones (greedy k-centre on
standardised features), so one dense uncertain region does not take the whole budget.

``WindowSelector`` does it on the stream: per (model, version) and event-time window it
keeps only the best candidates so far (a bounded heap of ``budget x diversity``) and, when
the window closes, returns its picks as ``LabelingRequest``s for the ``labeling`` topic.
Labels for them come back as ordinary label events and close the loop (the quality job
attributes them like any other; ``labeling_requests`` in ClickHouse lets the closing be
measured). ``replay`` measures, on a data set, how many labels each strategy needs to reach
an accuracy, against random sampling.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Strategy = Literal["least_confidence", "margin", "entropy", "random"]
STRATEGIES: tuple[Strategy, ...] = ("least_confidence", "margin", "entropy", "random")


def uncertainty(
    probs: npt.ArrayLike, strategy: Strategy, rng: np.random.Generator | None = None
) -> npt.NDArray[np.float64]:
    """Uncertainty per row of class probabilities (n x k); for `random`, uniform noise."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if strategy == "least_confidence":
        return np.asarray(1.0 - p.max(axis=1))
    if strategy == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return np.asarray(1.0 - (top2[:, 1] - top2[:, 0]))
    if strategy == "entropy":
        return np.asarray(-np.sum(np.where(p > 0, p * np.log(np.clip(p, 1e-300, None)), 0.0), axis=1))
    if strategy == "random":
        return np.asarray((rng or np.random.default_rng()).uniform(size=p.shape[0]), dtype=np.float64)
    raise ValueError(f"strategy {strategy!r} is not one of {list(STRATEGIES)}")


def k_centre(points: npt.NDArray[np.float64], k: int, first: int = 0) -> list[int]:
    """Greedy farthest-first traversal: k indices that cover `points` (a 2-approximation of k-centre)."""
    if k <= 0 or len(points) == 0:
        return []
    chosen = [first]
    dist = np.linalg.norm(points - points[first], axis=1)
    while len(chosen) < min(k, len(points)):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return chosen


def select(scores: npt.ArrayLike, budget: int, features: npt.ArrayLike | None = None, diversity: int = 0) -> list[int]:
    """Indices of the `budget` items to label: most uncertain first, or diverse among the most uncertain."""
    u = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-u, kind="stable")
    if not diversity or features is None:
        return [int(i) for i in order[:budget]]
    short = order[: budget * diversity]
    x = np.asarray(features, dtype=np.float64)[short]
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    return [int(short[j]) for j in k_centre(np.nan_to_num(x), budget)]


@dataclass(frozen=True)
class LabelingRequest:
    """One prediction the stream asks people to label (the `labeling` topic's message)."""

    event_id: str
    model: str
    version: str
    ts: float
    window_start: float
    strategy: str
    uncertainty: float
    score: float
    features: dict[str, Any]


@dataclass
class _Candidates:
    heap: list[tuple[float, int, LabelingRequest]] = field(default_factory=list)  # min-heap on uncertainty
    counter: int = 0


class WindowSelector:
    """Streaming selection within `budget` requests per (model, version, window)."""

    def __init__(
        self,
        budget: int,
        window_s: int,
        strategy: Strategy = "margin",
        diversity: int = 0,
        allowed_lateness_s: float = 0.0,
    ):
        if budget < 1 or window_s < 1:
            raise ValueError("budget and window_s must be at least 1")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r} is not one of {list(STRATEGIES)}")
        self.budget, self.window_s, self.strategy, self.diversity = budget, int(window_s), strategy, diversity
        self.lateness = allowed_lateness_s
        self._open: dict[tuple[str, str, float], _Candidates] = {}
        self._watermark: dict[tuple[str, str], float] = {}
        self._rng = np.random.default_rng()

    @property
    def capacity(self) -> int:
        return self.budget * max(1, self.diversity)

    def update_many(self, events: Sequence[Any]) -> list[LabelingRequest]:
        """Offer a batch of predictions (with scores); returns the requests of windows that closed."""
        scored = [e for e in events if getattr(e, "score", None) is not None]
        if scored:
            u = uncertainty(np.array([e.score for e in scored]), self.strategy, self._rng)
            for e, value in zip(scored, u.tolist(), strict=True):
                start = math.floor(e.ts / self.window_s) * self.window_s
                key = (e.model, e.version, float(start))
                mark = self._watermark.get(key[:2], -math.inf)
                if start + self.window_s <= mark and key not in self._open:
                    continue  # its window already closed
                cands = self._open.setdefault(key, _Candidates())
                if len(cands.heap) >= self.capacity and value <= cands.heap[0][0]:
                    continue
                req = LabelingRequest(
                    e.event_id,
                    e.model,
                    e.version,
                    float(e.ts),
                    float(start),
                    self.strategy,
                    float(value),
                    float(e.score),
                    dict(e.features),
                )
                cands.counter += 1
                item = (float(value), cands.counter, req)
                if len(cands.heap) < self.capacity:
                    heapq.heappush(cands.heap, item)
                else:
                    heapq.heapreplace(cands.heap, item)
        for e in events:
            key2 = (e.model, e.version)
            self._watermark[key2] = max(self._watermark.get(key2, -math.inf), float(e.ts) - self.lateness)
        return self._close(final=False)

    def flush(self) -> list[LabelingRequest]:
        return self._close(final=True)

    def _close(self, final: bool) -> list[LabelingRequest]:
        out: list[LabelingRequest] = []
        for key in sorted(self._open, key=lambda k: k[2]):
            if not final and key[2] + self.window_s > self._watermark.get(key[:2], -math.inf):
                continue
            cands = sorted(self._open.pop(key).heap, key=lambda it: (-it[0], it[1]))
            reqs = [it[2] for it in cands]
            if self.diversity and len(reqs) > self.budget:
                names = sorted({n for r in reqs for n, v in r.features.items() if isinstance(v, int | float)})
                x = np.array([[float(r.features.get(n) or 0.0) for n in names] for r in reqs])
                reqs = [reqs[i] for i in select([r.uncertainty for r in reqs], self.budget, x, self.diversity)]
            out.extend(reqs[: self.budget])
        return out


@dataclass(frozen=True)
class ReplayResult:
    strategy: str
    labels: list[int]  # labelled pool size after each round
    accuracy: list[float]  # test accuracy after each round

    def labels_to_reach(self, target: float) -> int | None:
        return next((n for n, a in zip(self.labels, self.accuracy, strict=True) if a >= target), None)


def replay(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    x_test: npt.NDArray[np.float64],
    y_test: npt.NDArray[np.int64],
    strategy: Strategy,
    *,
    seed_size: int = 20,
    batch: int = 10,
    rounds: int = 30,
    diversity: int = 0,
    seed: int = 0,
    make_model: Callable[[], Any] | None = None,
) -> ReplayResult:
    """Pool-based replay: start from `seed_size` random labels; each round label `batch` more, retrain."""
    from sklearn.linear_model import LogisticRegression

    make = make_model or (lambda: LogisticRegression(max_iter=2000))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    labelled = list(rng.choice(len(y), size=seed_size, replace=False))
    while len(np.unique(y[labelled])) < len(classes):  # the first model needs every class once
        labelled.append(int(rng.integers(len(y))))
    sizes, accs = [], []
    for _ in range(rounds + 1):
        model = make().fit(x[labelled], y[labelled])
        sizes.append(len(labelled))
        accs.append(float(np.mean(model.predict(x_test) == y_test)))
        pool = np.setdiff1d(np.arange(len(y)), labelled)
        if pool.size == 0:
            break
        u = uncertainty(model.predict_proba(x[pool]), strategy, rng)
        picks = select(u, batch, x[pool] if diversity else None, diversity)
        labelled.extend(int(pool[i]) for i in picks)
    return ReplayResult(strategy, sizes, accs)
