"""Issue 20.1: quality estimated before labels arrive (CBPE). The isotonic calibration equals scikit-learn's,
the estimates equal a direct computation from calibrated probabilities, the estimate follows the realised
accuracy under covariate shift (no label seen), and it fails, as stated, under concept drift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from driftline.events import Prediction
from driftline.metrics.cbpe import Calibration, EstimatedQuality, isotonic
from driftline.metrics.profiles import ReferenceProfile
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def population(n: int, mean: float, rng: np.random.Generator, concept: float = 2.0) -> tuple[np.ndarray, ...]:
    """x ~ N(mean, 1); P(y=1 | x) = sigmoid(concept * x); the model scores sigmoid(1.2 x): ranked right,
    miscalibrated (so calibration matters), predicting 1 when the score is at least 0.5."""
    x = rng.normal(mean, 1.0, n)
    y = (rng.uniform(size=n) < sigmoid(concept * x)).astype(int)
    score = sigmoid(1.2 * x)
    return x, y, score, (score >= 0.5).astype(int)


@pytest.mark.parametrize("seed", range(3))
def test_isotonic_fit_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(size=3000), 3)  # ties, as real scores have
    y = (rng.uniform(size=3000) < x**2).astype(float)
    knots, fitted = isotonic(x, y)
    reference = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    probe = rng.uniform(-0.1, 1.1, 500)
    assert np.allclose(np.interp(probe, knots, fitted), reference.predict(probe), atol=1e-12)


def test_estimates_equal_a_direct_computation_and_halves_merge() -> None:
    rng = np.random.default_rng(1)
    _, y_ref, s_ref, _ = population(5000, 0.0, rng)
    cal = Calibration.fit(s_ref, y_ref)
    _, _, s, pred = population(4000, 0.7, rng)
    p = cal(s)
    tp, fp = p[pred == 1].sum(), (1 - p[pred == 1]).sum()
    fn, tn = p[pred == 0].sum(), (1 - p[pred == 0]).sum()
    whole = EstimatedQuality(cal).update_many(s.tolist(), pred == 1)
    got = whole.get()
    assert got["accuracy"] == pytest.approx((tp + tn) / 4000, rel=1e-12)
    assert got["precision"] == pytest.approx(tp / (tp + fp), rel=1e-12)
    assert got["recall"] == pytest.approx(tp / (tp + fn), rel=1e-12)
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    # ROC AUC: the expected Mann-Whitney statistic; exact on unbinned probabilities vs 1,000 bins
    order = np.argsort(p)
    pos, neg = p[order], 1 - p[order]
    exact = float((neg * (np.cumsum(pos[::-1])[::-1] - pos + 0.5 * pos)).sum() / (pos.sum() * neg.sum()))
    assert got["roc_auc"] == pytest.approx(exact, abs=2e-3)
    assert got["accuracy_lower"] < got["accuracy"] < got["accuracy_upper"]
    halves = EstimatedQuality(cal).update_many(s[:1500].tolist(), pred[:1500] == 1)
    halves.merge(EstimatedQuality(cal).update_many(s[1500:].tolist(), pred[1500:] == 1))
    assert halves.get() == pytest.approx(got, rel=1e-12)


def test_estimated_accuracy_follows_the_realised_one_under_covariate_shift() -> None:
    """Windows of 1,000 events drift from mean 0 to 2.5; no label is used. Stated in the README:
    mean absolute error 0.010 over 20 windows; the ±3 SE band holds the realised accuracy in each."""
    rng = np.random.default_rng(7)
    _, y_ref, s_ref, _ = population(10_000, 0.0, rng)
    cal = Calibration.fit(s_ref, y_ref)
    errors, inside, realised_all = [], 0, []
    for mean in np.linspace(0.0, 2.5, 20):
        _, y, s, pred = population(1000, float(mean), rng)
        est = EstimatedQuality(cal).update_many(s.tolist(), pred == 1).get()
        realised = float((pred == y).mean())
        realised_all.append(realised)
        errors.append(abs(est["accuracy"] - realised))
        inside += est["accuracy_lower"] <= realised <= est["accuracy_upper"]
    assert max(realised_all) - min(realised_all) > 0.15  # accuracy really moves
    assert np.mean(errors) < 0.02 and inside >= 19, (np.mean(errors), inside)
    # AUC as well: estimated vs realised on the last window
    _, y, s, pred = population(5000, 1.0, rng)
    est = EstimatedQuality(cal).update_many(s.tolist(), pred == 1).get()
    assert est["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=0.02)


def test_under_concept_drift_the_estimate_is_blind_as_stated() -> None:
    """Same inputs, other outcomes: the scores do not move, so neither does the estimate."""
    rng = np.random.default_rng(3)
    _, y_ref, s_ref, _ = population(10_000, 0.0, rng)
    cal = Calibration.fit(s_ref, y_ref)
    _, y, s, pred = population(5000, 0.0, rng, concept=-2.0)  # the relation turned around
    est = EstimatedQuality(cal).update_many(s.tolist(), pred == 1).get()
    realised = float((pred == y).mean())
    assert est["accuracy"] > 0.7 and realised < 0.3  # the estimate says fine; it is not


def test_the_engine_writes_estimated_quality_rows_without_labels() -> None:
    rng = np.random.default_rng(11)
    _, y_ref, s_ref, _ = population(5000, 0.0, rng)
    x_ref = rng.normal(size=5000)
    profile = ReferenceProfile.build("m", "v1", {"x": x_ref, "[score]": s_ref})
    profile = ReferenceProfile(
        profile.model, profile.version, profile.features, pca=profile.pca, calibration=Calibration.fit(s_ref, y_ref)
    )
    assert ReferenceProfile.from_json(profile.to_json()) == profile  # stored and loaded with its calibration
    t0 = 1_800_000_000.0
    x, _, s, pred = population(3000, 1.0, rng)
    events = [
        Prediction(
            event_id=f"e{i}",
            model="m",
            version="v1",
            ts=t0 + i * 0.1,
            features={"x": float(x[i])},
            prediction=int(pred[i]),
            score=float(s[i]),
        )
        for i in range(3000)
    ]
    engine = MonitoringEngine(
        MonitorSpec.from_yaml("defaults: {window: 1m, allowed_lateness: 0s}"), profiles={("m", "v1"): profile}
    )
    rows = [r for r in engine.update(events) + engine.flush() if r.family == "estimated_quality"]
    starts = sorted({r.window_start for r in rows})
    assert len(starts) == 5
    w = [e for e in events if starts[0] <= e.ts < starts[0] + 60]
    direct = EstimatedQuality(profile.calibration).update_many([e.score for e in w], [e.prediction == 1 for e in w])
    first = {r.metric: r.value for r in rows if r.window_start == starts[0]}
    assert first == pytest.approx(direct.get(), rel=1e-12)
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "accuracy_lower", "roc_auc_upper"} <= set(first)


def test_profile_build_with_a_label_column_calibrates_the_scores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from driftline.cli import main

    rng = np.random.default_rng(2)
    x, y, s, pred = population(2000, 0.0, rng)
    lines = ["x,truth,proba,pred"] + [f"{a},{b},{c},{d}" for a, b, c, d in zip(x, y, s, pred, strict=True)]
    (tmp_path / "ref.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.json"
    args = ["profile", "build", "--model", "m", "--version", "v1", "--input", str(tmp_path / "ref.csv")]
    args += ["--label", "truth", "--score", "proba", "--prediction", "pred", "--no-store", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "scores calibrated on 2,000 labelled rows" in result.output
    profile = ReferenceProfile.from_json(out.read_text())
    assert profile.calibration is not None and "truth" not in profile.features and "[score]" in profile.features
    assert profile.calibration(np.array([0.5]))[0] == pytest.approx(Calibration.fit(s, y)(np.array([0.5]))[0])
    assert json.loads(out.read_text())["calibration"]["reference_n"] == 2000
    missing = CliRunner().invoke(main, [*args[:8], "--label", "nope", "--no-store", "--out", str(out)])
    assert missing.exit_code == 2 and "no label column 'nope'" in missing.output
