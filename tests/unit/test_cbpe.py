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


# --- multiclass, one versus the rest -------------------------------------------------------------

W = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def three_classes(n: int, mean: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x ~ N((mean, 0), I); P(y | x) = softmax(W x); the model's scores softmax(0.6 W x) (under-confident)."""
    x = rng.normal(size=(n, 2)) + np.array([mean, 0.0])
    y = (rng.uniform(size=(n, 1)) > np.cumsum(softmax(x @ W.T), axis=1)).sum(axis=1)
    scores = softmax(0.6 * x @ W.T)
    return y, scores, scores.argmax(axis=1)


def test_one_vs_rest_estimates_equal_a_direct_computation_with_scikit_learn_calibration() -> None:
    from driftline.metrics.cbpe import EstimatedClassQuality, class_calibrations_from

    rng = np.random.default_rng(5)
    y_ref, s_ref, _ = three_classes(6000, 0.0, rng)
    cals = class_calibrations_from({str(c): s_ref[:, c].tolist() for c in range(3)}, y_ref.tolist())
    y, s, pred = three_classes(3000, 1.0, rng)
    # the calibrations equal scikit-learn's isotonic fit per class (within the profile's 2,000 knots)
    sk = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s_ref[:, c], y_ref == c).predict(s[:, c])
            for c in range(3)
        ]
    )
    p = np.column_stack([cals[str(c)](s[:, c]) for c in range(3)])
    assert np.abs(p - sk).mean() < 1e-3
    # the reference computation: rows normalised, then sums per class
    p = p / p.sum(axis=1, keepdims=True)
    names = ["0", "1", "2"]
    est = EstimatedClassQuality(cals).update_many(names, s, pred.astype(str).tolist())
    got = est.get()
    tp = np.array([p[pred == c, c].sum() for c in range(3)])
    fp = np.array([(1 - p[pred == c, c]).sum() for c in range(3)])
    fn = np.array([p[pred != c, c].sum() for c in range(3)])
    assert got["accuracy"] == pytest.approx(tp.sum() / 3000, rel=1e-9)
    assert got["precision_macro"] == pytest.approx(np.mean(tp / (tp + fp)), rel=1e-9)
    assert got["recall_macro"] == pytest.approx(np.mean(tp / (tp + fn)), rel=1e-9)
    assert got["f1_macro"] == pytest.approx(np.mean(2 * tp / (2 * tp + fp + fn)), rel=1e-9)
    assert got["recall/2"] == pytest.approx(tp[2] / (tp[2] + fn[2]), rel=1e-9)
    assert got["accuracy_lower"] < got["accuracy"] < got["accuracy_upper"]
    # the realised values are close (the estimate assumes calibration holds: it does here)
    assert got["accuracy"] == pytest.approx(float((pred == y).mean()), abs=0.03)
    assert got["roc_auc_macro"] == pytest.approx(roc_auc_score(y, s, multi_class="ovr"), abs=0.02)
    halves = EstimatedClassQuality(cals).update_many(names, s[:1000], pred[:1000].astype(str).tolist())
    halves.merge(EstimatedClassQuality(cals).update_many(names, s[1000:], pred[1000:].astype(str).tolist()))
    assert halves.get() == pytest.approx(got, rel=1e-9)


def test_one_vs_rest_follows_the_realised_macro_f1_under_covariate_shift() -> None:
    """Stated in the README: 20 windows of 1,000 events, mean moving 0 -> 2.5, no label used."""
    from sklearn.metrics import f1_score

    from driftline.metrics.cbpe import EstimatedClassQuality, class_calibrations_from

    rng = np.random.default_rng(7)
    y_ref, s_ref, _ = three_classes(10_000, 0.0, rng)
    cals = class_calibrations_from({str(c): s_ref[:, c].tolist() for c in range(3)}, y_ref.tolist())
    acc_err, f1_err, realised = [], [], []
    for mean in np.linspace(0.0, 2.5, 20):
        y, s, pred = three_classes(1000, float(mean), rng)
        got = EstimatedClassQuality(cals).update_many(["0", "1", "2"], s, pred.astype(str).tolist()).get()
        realised.append(float((pred == y).mean()))
        acc_err.append(abs(got["accuracy"] - realised[-1]))
        f1_err.append(abs(got["f1_macro"] - f1_score(y, pred, average="macro")))
    assert max(realised) - min(realised) > 0.1
    assert np.mean(acc_err) < 0.015 and np.mean(f1_err) < 0.03, (np.mean(acc_err), np.mean(f1_err))


def test_the_engine_estimates_per_class_from_class_scores_in_objects_and_columns() -> None:
    from driftline.events import ColumnarEvents, decode_columnar, encode_columnar
    from driftline.metrics.cbpe import EstimatedClassQuality, class_calibrations_from

    rng = np.random.default_rng(9)
    y_ref, s_ref, _ = three_classes(5000, 0.0, rng)
    names = ["setosa", "versicolor", "virginica"]
    cals = class_calibrations_from({n: s_ref[:, c].tolist() for c, n in enumerate(names)}, [names[c] for c in y_ref])
    base = ReferenceProfile.build("m", "v1", {"x": rng.normal(size=5000)})
    profile = ReferenceProfile("m", "v1", base.features, pca=base.pca, class_calibrations=cals)
    assert ReferenceProfile.from_json(profile.to_json()) == profile  # stored and loaded with its calibrations
    _, s, pred = three_classes(2000, 1.0, rng)
    t0 = 1_800_000_000.0
    events = [
        Prediction(
            event_id=f"e{i}",
            model="m",
            version="v1",
            ts=t0 + i * 0.05,
            features={"x": 0.1},
            prediction=names[pred[i]],
            score=float(s[i, pred[i]]),
            class_scores={n: float(s[i, c]) for c, n in enumerate(names)},
        )
        for i in range(2000)
    ]
    spec = MonitorSpec.from_yaml("defaults: {window: 1m, allowed_lateness: 0s}\nmodels: {m: {task: multiclass}}")

    def estimated(batch: list[Prediction] | list[ColumnarEvents]) -> list[tuple[float, str, str, float]]:
        engine = MonitoringEngine(spec, profiles={("m", "v1"): profile})
        columnar = bool(batch) and isinstance(batch[0], ColumnarEvents)
        rows = engine.update_columns(batch) if columnar else engine.update(batch)  # type: ignore[arg-type]
        rows += engine.flush()
        return sorted((r.window_start, r.metric, r.feature, r.value) for r in rows if r.family == "estimated_quality")

    from_objects = estimated(events)
    envelopes = [decode_columnar(encode_columnar(events[i : i + 500]), "prediction") for i in range(0, 2000, 500)]
    assert all(isinstance(e, ColumnarEvents) for e in envelopes)
    from_columns = estimated(envelopes)  # type: ignore[arg-type]
    assert [r[:3] for r in from_columns] == [r[:3] for r in from_objects]
    assert [r[3] for r in from_columns] == pytest.approx([r[3] for r in from_objects], rel=1e-12)
    assert len(from_objects) > 40
    starts = sorted({r[0] for r in from_objects})
    first = {(m, f): v for start, m, f, v in from_objects if start == starts[0]}
    w = [i for i, e in enumerate(events) if starts[0] <= e.ts < starts[0] + 60]
    direct = EstimatedClassQuality(cals).update_many(names, s[w], [names[pred[i]] for i in w]).get()
    assert first[("f1_macro", "")] == pytest.approx(direct["f1_macro"], rel=1e-12)
    assert first[("recall", "class=virginica")] == pytest.approx(direct["recall/virginica"], rel=1e-12)
    assert {("accuracy", ""), ("roc_auc_macro", ""), ("precision", "class=setosa")} <= set(first)


def test_profile_build_calibrates_every_class_from_columns_or_events(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from driftline.cli import main

    rng = np.random.default_rng(4)
    y, s, pred = three_classes(1500, 0.0, rng)
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: {m: {task: multiclass}}\n")
    lines = ["x,truth,pred,proba_0,proba_1,proba_2"] + [
        f"{rng.normal()},{y[i]},{pred[i]},{s[i, 0]},{s[i, 1]},{s[i, 2]}" for i in range(1500)
    ]
    (tmp_path / "ref.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.json"
    base = ["profile", "build", "--model", "m", "--version", "v1", "--spec", str(spec), "--no-store"]
    args = [*base, "--input", str(tmp_path / "ref.csv"), "--label", "truth", "--prediction", "pred"]
    result = CliRunner().invoke(main, [*args, "--class-scores", "proba_", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "the scores of 3 classes calibrated one versus the rest on 1,500 labelled rows" in result.output
    profile = ReferenceProfile.from_json(out.read_text())
    assert sorted(profile.class_calibrations) == ["0", "1", "2"] and "proba_0" not in profile.features
    probe = np.array([0.3, 0.6])
    assert profile.class_calibrations["1"](probe) == pytest.approx(Calibration.fit(s[:, 1], y == 1)(probe))
    # the same reference as prediction events with class_scores, the label beside them
    events = tmp_path / "ref.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(
                {
                    "model": "m",
                    "version": "v1",
                    "features": {"x": 0.0, "truth": int(y[i])},  # the label, taken out as --label says
                    "prediction": int(pred[i]),
                    "class_scores": {str(c): float(s[i, c]) for c in range(3)},
                }
            )
            for i in range(1500)
        )
    )
    out2 = tmp_path / "p2.json"
    result = CliRunner().invoke(main, [*base, "--input", str(events), "--label", "truth", "--out", str(out2)])
    assert result.exit_code == 0, result.output
    from_events = ReferenceProfile.from_json(out2.read_text())
    assert from_events.class_calibrations == profile.class_calibrations
    wrong = CliRunner().invoke(main, [*args, "--class-scores", "nope_", "--out", str(out)])
    assert wrong.exit_code == 2 and "a column per class named nope_<class>" in wrong.output
