"""Data audit of a table (a file, a DataFrame, or a production window read from ClickHouse).

Checks, each with a limit (``AuditConfig``) and a pass/fail:

* ``missing``: the largest per-column missing rate;
* ``skew``: per column, PSI against the reference (the same quantile-bin profile the
  stream uses) with the KS or chi-square p-value; the largest PSI;
* ``duplicates``: exact duplicates on ``keys`` (default: every column) plus near-duplicates
  on ``near_keys`` (numbers within ``near_tolerance`` of each other, relatively; text
  lower-cased with whitespace collapsed; ``near_duplicate_rows``), as a share of rows;
* ``class_balance``: the smallest class share of the label column;
* ``sampling_bias``: segment shares against a reference population (given shares, or the
  reference data's), chi-square goodness of fit and the largest share gap;
* ``label_noise``: the estimated share of wrong labels, confident learning's calibrated
  joint (out-of-fold probabilities from a logistic regression on the other columns, or the
  ``scores`` column when the data carries the model's own probability); the suspects are
  listed, least self-confident first. Classes under ``min_class_rows`` rows are reported
  as rare, their rows listed, and left out of the model rather than skipping the check;
* ``guideline``: labels outside the label set of a labeling guideline.

A check without the data it needs (no label column, no reference) is skipped, and says so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from driftline.labeling.guidelines import Guideline
from driftline.labeling.noise import estimate_noise_rate, find_label_issues, out_of_fold_probabilities
from driftline.metrics.drift import CategoricalDrift, NumericDrift, psi
from driftline.metrics.profiles import profile_column


@dataclass
class AuditConfig:
    label: str | None = None
    scores: str | None = None  # a column with the model's probability of the positive class (binary)
    keys: list[str] | None = None
    near_keys: list[str] = field(default_factory=list)
    near_tolerance: float = 0.01
    segment: str | None = None
    population: dict[str, float] | None = None
    guideline: Guideline | None = None
    ignore: list[str] = field(default_factory=list)
    max_missing: float = 0.05
    max_psi: float = 0.2
    max_duplicates: float = 0.01
    min_class_share: float = 0.05
    max_share_gap: float = 0.05
    max_label_noise: float = 0.05
    min_class_rows: int = 10


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: skipped
    value: float
    limit: str
    detail: str


@dataclass
class AuditResult:
    rows: int
    columns: list[str]
    checks: list[Check]
    missing: dict[str, float]
    skew: dict[str, dict[str, float]]
    duplicates: dict[str, Any]
    balance: dict[str, float]
    segments: dict[str, Any]
    noise: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _is_missing(values: Any) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _missing(df: Any, columns: list[str]) -> dict[str, float]:
    return {c: float(_is_missing(df[c]).mean()) if len(df) else 0.0 for c in columns}


def _numeric(series: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _skew(df: Any, reference: Any, columns: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for c in columns:
        if c not in reference.columns:
            continue
        ref_values = reference[c].to_numpy(dtype=object)
        if _numeric(reference[c]) and _numeric(df[c]):
            drift: Any = NumericDrift(profile_column(c, reference[c].to_numpy(dtype=np.float64), "numeric"))
            drift.update_many(df[c].to_numpy(dtype=np.float64))
            got = drift.get()
            out[c] = {"psi": got["psi"], "pvalue": got["ks_pvalue"], "statistic": got["ks"]}
        else:
            ref_str = np.array(
                [None if m else str(v) for v, m in zip(ref_values, _is_missing(ref_values), strict=True)], dtype=object
            )
            profile = profile_column(c, ref_str, "categorical")
            values = df[c].to_numpy(dtype=object)
            cur = np.array(
                [None if m else str(v) for v, m in zip(values, _is_missing(values), strict=True)], dtype=object
            )
            cat = CategoricalDrift(profile).update_many(cur)
            got = cat.get()
            # The drift state already holds the counts: per reference category, then the reference's
            # other categories and the unseen ones, which PSI compares as one "other" bin.
            sketch = cat.sketch()
            ref_p = np.array([*sketch["reference"][:-2], sketch["reference"][-2]], dtype=np.float64)
            cur_p = np.array([*sketch["counts"][:-2], sum(sketch["counts"][-2:])], dtype=np.float64)
            out[c] = {
                "psi": psi(ref_p, cur_p) if cur_p.sum() else 0.0,
                "pvalue": got.get("chi2_pvalue", 1.0),
                "statistic": got.get("chi2", 0.0),
                "unseen_rate": got.get("unseen_rate", 0.0),
            }
    return out


def _text_key(series: Any) -> Any:
    """Text compared loosely: lower-cased, whitespace collapsed."""
    return series.astype(str).map(lambda s: re.sub(r"\s+", " ", s.strip().lower()))


def near_duplicate_rows(df: Any, keys: list[str], tolerance: float) -> np.ndarray:
    """Positions of rows that nearly repeat an earlier row on `keys`.

    Two rows match when every text key is equal after normalisation and every numeric key is
    within `tolerance` of the other's value, relative to the larger: |a - b| <= tolerance x
    max(|a|, |b|) (zero matches zero only; a missing key matches nothing). Rounding to a grid,
    as before, missed pairs 0.1 % apart that straddle a grid boundary and matched pairs farther
    apart than the tolerance. In log space the rule is a box of half-width -ln(1 - tolerance)
    per numeric key, so a k-d tree finds the pairs (Chebyshev radius 1), per group of equal
    text keys and signs.
    """
    from scipy.spatial import cKDTree

    numeric = [k for k in keys if _numeric(df[k])]
    text_values = [_text_key(df[k]).to_numpy() for k in keys if k not in numeric]
    complete = ~np.column_stack([_is_missing(df[k]) for k in keys]).any(axis=1)
    values = np.column_stack([df[k].to_numpy(dtype=np.float64) for k in numeric]) if numeric else None
    signs = np.sign(values) if values is not None else None
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in np.nonzero(complete)[0]:
        key = tuple(t[i] for t in text_values) + (tuple(signs[i]) if signs is not None else ())
        groups.setdefault(key, []).append(int(i))
    width = -np.log1p(-min(max(tolerance, 1e-12), 0.999))
    flagged = np.zeros(len(df), dtype=bool)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        if values is None:
            flagged[rows[1:]] = True
            continue
        block = np.abs(values[rows])
        with np.errstate(divide="ignore"):
            coords = np.where(block == 0, 0.0, np.log(block) / width)
        for a, b in cKDTree(coords).query_pairs(r=1.0 + 1e-9, p=np.inf):
            flagged[max(rows[a], rows[b])] = True  # the later row repeats the earlier one
    return np.nonzero(flagged)[0]


def _duplicates(df: Any, keys: list[str], near_keys: list[str], tolerance: float) -> dict[str, Any]:
    exact_mask = df.duplicated(subset=keys, keep="first")
    out: dict[str, Any] = {
        "keys": keys,
        "exact": int(exact_mask.sum()),
        "near": 0,
        "near_keys": near_keys,
        "examples": [_row_id(i) for i in df.index[exact_mask][:20]],
    }
    if near_keys:
        near_mask = np.zeros(len(df), dtype=bool)
        near_mask[near_duplicate_rows(df, near_keys, tolerance)] = True
        near_mask &= ~exact_mask.to_numpy()
        out["near"] = int(near_mask.sum())
        out["near_examples"] = [_row_id(i) for i in df.index[near_mask][:20]]
    out["rate"] = (out["exact"] + out["near"]) / len(df) if len(df) else 0.0
    return out


def _design(df: Any, columns: list[str]) -> np.ndarray:
    """Numeric matrix for the noise model: numbers (NaN -> median), one-hot categories (few levels only)."""
    import pandas as pd

    parts = []
    for c in columns:
        if _numeric(df[c]):
            x = df[c].to_numpy(dtype=np.float64)
            parts.append(np.where(np.isnan(x), np.nanmedian(x) if np.isfinite(x).any() else 0.0, x)[:, None])
        elif df[c].nunique() <= 50:
            parts.append(pd.get_dummies(df[c].astype(str)).to_numpy(dtype=np.float64))
    return np.hstack(parts) if parts else np.zeros((len(df), 0))


def _noise(df: Any, cfg: AuditConfig, features: list[str]) -> dict[str, Any]:
    """Estimated label-noise rate and the suspects, on the classes with enough rows to learn from.

    A class under ``cfg.min_class_rows`` rows is reported as rare and its rows listed, not
    modelled: its per-class threshold would come from a handful of items, so every item the
    model gives a sliver of its probability would read as a suspect (six mistyped labels
    raised the suspects from 41 to 161 that way).
    """
    assert cfg.label is not None
    labelled = df[~_is_missing(df[cfg.label])]
    names, counts = np.unique(labelled[cfg.label].astype(str).to_numpy(), return_counts=True)
    rare = {str(k): int(c) for k, c in zip(names, counts, strict=True) if c < cfg.min_class_rows}
    out: dict[str, Any] = {"rare_classes": rare, "rare_rows": _rare_rows(labelled, cfg.label, rare)}
    modelled = labelled[~labelled[cfg.label].astype(str).isin(list(rare))]
    classes, y = np.unique(modelled[cfg.label].astype(str).to_numpy(), return_inverse=True)
    if classes.size < 2:
        return {**out, "skipped": f"needs two classes with at least {cfg.min_class_rows} rows each"}
    if cfg.scores and cfg.scores in df.columns and classes.size == 2 and not rare:
        s = modelled[cfg.scores].to_numpy(dtype=np.float64)
        probs, source = np.column_stack([1 - s, s]), f"the model's scores ({cfg.scores})"
    else:
        x = _design(modelled, features)
        if x.shape[1] == 0:
            return {**out, "skipped": "no usable feature columns"}
        probs = out_of_fold_probabilities(x, y, folds=min(5, int(np.bincount(y).min())))
        source = "out-of-fold logistic regression"
    suspects = find_label_issues(y, probs)
    return {
        **out,
        "source": source,
        "rate": estimate_noise_rate(y, probs),
        "rows": int(y.size),
        "suspects": len(suspects),
        "suspect_share": len(suspects) / len(y),
        "examples": [
            {
                "row": _row_id(modelled.index[i]),
                "label": str(classes[y[i]]),
                "suggested": str(classes[int(probs[i].argmax())]),
                "self_confidence": float(probs[i, y[i]]),
            }
            for i in suspects[:25]
        ],
    }


def _rare_rows(df: Any, label: str, rare: dict[str, int]) -> list[dict[str, Any]]:
    """The rows of the rare classes (at most 25), for a reviewer: often a mistyped label."""
    rows = df[df[label].astype(str).isin(list(rare))]
    return [{"row": _row_id(i), "label": str(v)} for i, v in zip(rows.index[:25], rows[label][:25], strict=True)]


def _row_id(value: Any) -> int | str:
    """A row's index as JSON: its position or its id (an event id for a production window)."""
    return int(value) if isinstance(value, int | np.integer) else str(value)


def _noise_check(noise: dict[str, Any], cfg: AuditConfig) -> Check:
    rare = noise["rare_classes"]
    rare_text = (
        "; rare classes, not modelled (under {} rows): {}".format(
            cfg.min_class_rows, ", ".join(f"{k!r} {v} rows" for k, v in rare.items())
        )
        if rare
        else ""
    )
    limit = f"estimated noise <= {cfg.max_label_noise:g}"
    if "skipped" in noise:
        return Check("label_noise", None, 0.0, limit, f"skipped: {noise['skipped']}{rare_text}")
    detail = (
        f"estimated {noise['rate']:.1%} of {noise['rows']} labels wrong (calibrated confident joint); "
        f"{noise['suspects']} suspects listed ({noise['source']}){rare_text}"
    )
    return Check("label_noise", noise["rate"] <= cfg.max_label_noise, noise["rate"], limit, detail)


def _label_checks(
    df: Any, cfg: AuditConfig, columns: list[Any], checks: list[Check]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Class balance, label noise and the guideline's label set; appends to `checks`."""
    balance: dict[str, float] = {}
    noise: dict[str, Any] = {}
    if cfg.label:
        shares = df[cfg.label].dropna().astype(str).value_counts(normalize=True)
        balance = {str(k): float(v) for k, v in shares.items()}
        smallest = min(balance.values()) if balance else 0.0
        checks.append(
            Check(
                "class_balance",
                smallest >= cfg.min_class_share,
                smallest,
                f">= {cfg.min_class_share:g}",
                ", ".join(f"{k} {v:.1%}" for k, v in balance.items()),
            )
        )
        features = [c for c in columns if c not in (cfg.label, cfg.scores)]
        noise = _noise(df, cfg, features)
        checks.append(_noise_check(noise, cfg))
        if cfg.guideline is not None:
            allowed = set(cfg.guideline.label_set)
            outside = sorted(set(balance) - allowed)
            rate = float(sum(balance[k] for k in outside))
            checks.append(
                Check(
                    "guideline",
                    not outside,
                    rate,
                    f"labels in {sorted(allowed)}",
                    f"outside {cfg.guideline.task} {cfg.guideline.version}: {outside or 'none'}",
                )
            )
    else:
        checks.append(Check("class_balance", None, 0.0, f">= {cfg.min_class_share:g}", "skipped: no --label column"))
    return balance, noise


def _segment_check(df: Any, reference: Any, cfg: AuditConfig, checks: list[Check]) -> dict[str, Any]:
    """Sampling bias of the segment column against the population or the reference; appends to `checks`."""
    segments: dict[str, Any] = {}
    if cfg.segment:
        observed = df[cfg.segment].dropna().astype(str).value_counts()
        if cfg.population:
            expected = dict(cfg.population)
        elif reference is not None and cfg.segment in reference.columns:
            expected = reference[cfg.segment].dropna().astype(str).value_counts(normalize=True).to_dict()
        else:
            expected = {}
        if expected:
            names = sorted(set(observed.index) | set(expected))
            obs = np.array([observed.get(n, 0) for n in names], dtype=np.float64)
            exp_share = np.array([expected.get(n, 0.0) for n in names], dtype=np.float64)
            exp_share = exp_share / exp_share.sum()
            share = obs / obs.sum()
            gap = float(np.max(np.abs(share - exp_share)))
            keep = exp_share > 0
            p = float(stats.chisquare(obs[keep], exp_share[keep] / exp_share[keep].sum() * obs[keep].sum()).pvalue)
            segments = {
                "column": cfg.segment,
                "observed": dict(zip(names, share.tolist(), strict=True)),
                "expected": dict(zip(names, exp_share.tolist(), strict=True)),
                "max_gap": gap,
                "pvalue": p,
            }
            checks.append(
                Check(
                    "sampling_bias",
                    gap <= cfg.max_share_gap or p >= 0.01,
                    gap,
                    f"share gap <= {cfg.max_share_gap:g} (or chi-square p >= 0.01)",
                    f"{cfg.segment}: chi-square p = {p:.2g}",
                )
            )
        else:
            checks.append(
                Check(
                    "sampling_bias",
                    None,
                    0.0,
                    f"<= {cfg.max_share_gap:g}",
                    "skipped: give --population or reference data with the segment column",
                )
            )
    return segments


def audit(df: Any, reference: Any = None, config: AuditConfig | None = None) -> AuditResult:
    """Run every check that the data and `config` allow."""
    cfg = config or AuditConfig()
    for name in [cfg.label, cfg.segment, cfg.scores, *(cfg.keys or []), *cfg.near_keys]:
        if name is not None and name not in df.columns:
            from driftline.exceptions import ConfigError

            raise ConfigError(f"column {name!r} is not in the data; its columns are {list(df.columns)[:30]}")
    columns = [c for c in df.columns if c not in cfg.ignore]
    checks: list[Check] = []
    missing = _missing(df, columns)
    worst = max(missing, key=lambda c: missing[c]) if missing else ""
    checks.append(
        Check(
            "missing",
            missing.get(worst, 0.0) <= cfg.max_missing,
            missing.get(worst, 0.0),
            f"<= {cfg.max_missing:g}",
            f"worst column: {worst}",
        )
    )
    skew: dict[str, dict[str, float]] = {}
    if reference is not None:
        skew = _skew(df, reference, [c for c in columns if c != cfg.scores])
        top = max(skew, key=lambda c: skew[c]["psi"]) if skew else ""
        value = skew[top]["psi"] if top else 0.0
        checks.append(Check("skew", value <= cfg.max_psi, value, f"PSI <= {cfg.max_psi:g}", f"worst column: {top}"))
    else:
        checks.append(Check("skew", None, 0.0, f"PSI <= {cfg.max_psi:g}", "skipped: no reference data"))
    dups = _duplicates(df, cfg.keys or columns, cfg.near_keys, cfg.near_tolerance)
    checks.append(
        Check(
            "duplicates",
            dups["rate"] <= cfg.max_duplicates,
            dups["rate"],
            f"<= {cfg.max_duplicates:g}",
            f"{dups['exact']} exact, {dups['near']} near-duplicates",
        )
    )
    balance, noise = _label_checks(df, cfg, columns, checks)
    segments = _segment_check(df, reference, cfg, checks)
    return AuditResult(len(df), [str(c) for c in df.columns], checks, missing, skew, dups, balance, segments, noise)


def read_table(path: Any) -> Any:
    """A CSV, TSV, Parquet or JSON-lines file as a DataFrame."""
    import pandas as pd

    from driftline.exceptions import ConfigError

    name = str(path)
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".ndjson")):
            return pd.read_json(path, lines=True)
        if name.endswith(".tsv"):
            return pd.read_csv(path, sep="\t")
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{name} does not exist") from None
    except (ValueError, ImportError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read {name}: {exc}") from None
