"""Private training, edge export and lineage on generated data (River's Agrawal): the numbers the report prints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline.offline.export import edge_variants, parameters, prune
from driftline.offline.pipeline import run_training
from driftline.offline.train import Dataset, agrawal, train
from driftline.sinks.lineage import LocalLineage, ancestry


@pytest.fixture(scope="module")
def data() -> Dataset:
    return agrawal(6000)


def test_epsilon_reported_matches_the_accountant_for_the_noise_used(data: Dataset) -> None:
    from opacus.accountants import RDPAccountant

    result = train(data, epochs=3, target_epsilon=2.0)
    assert result.noise_multiplier and result.sample_rate and result.steps and result.delta
    assert result.delta < 1 / len(data.x_train)
    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, result.sample_rate, result.steps)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(result.delta), rel=1e-9)
    assert result.epsilon == pytest.approx(2.0, rel=0.02)  # Opacus calibrated the noise to the target


def test_more_privacy_costs_accuracy(data: Dataset) -> None:
    base = train(data, epochs=4)
    loose = train(data, epochs=4, target_epsilon=8.0)
    tight = train(data, epochs=4, target_epsilon=0.5)
    assert base.accuracy > 0.93
    assert base.accuracy >= loose.accuracy > tight.accuracy


def test_onnx_parity_int8_within_a_stated_drop_and_pruning_narrows(data: Dataset, tmp_path: Path) -> None:
    model = train(data, epochs=4).model
    variants = {v.name: v for v in edge_variants(model, data, tmp_path, threads=(1,))}
    fp32 = variants["onnx fp32"]
    assert fp32.parity is not None and fp32.parity <= 1e-4  # ONNX Runtime vs torch logits
    assert fp32.accuracy == pytest.approx(variants["torch fp32 (framework)"].accuracy, abs=1e-9)
    for name in ("onnx int8 dynamic", "onnx int8 static"):
        assert variants[name].accuracy >= fp32.accuracy - 0.02, name  # the stated drop: at most 2 points
        assert variants[name].size_bytes < 0.6 * fp32.size_bytes
    pruned = prune(model, data)
    assert parameters(pruned) < 0.4 * parameters(model)  # half the units of each hidden layer: narrower layers
    assert variants["onnx fp32, pruned to half width"].accuracy >= fp32.accuracy - 0.03


def test_training_run_writes_report_and_a_complete_lineage_chain(tmp_path: Path) -> None:
    summary = run_training(tmp_path, rows=3000, epochs=2, epsilons=(4.0,), quiet=True, seeds=2)
    # Issue 22.5: accuracies over seeds, each equal to a run of that seed on its own.
    data = agrawal(3000)
    for entry, kwargs in ((summary["baseline"], {}), (summary["private"][0], {"target_epsilon": 4.0})):
        runs = [train(data, epochs=2, seed=s, **kwargs).accuracy for s in (0, 1)]  # type: ignore[arg-type]
        spread = entry["accuracy_over_seeds"]
        assert spread["n"] == 2 and spread["mean"] == pytest.approx(np.mean(runs), abs=1e-12)
        assert (spread["low"], spread["high"]) == (min(runs), max(runs)) and entry["accuracy"] == runs[0]
    assert "2 seeds" in (tmp_path / "report.md").read_text()
    for name in ("report.html", "report.json", "MODEL_CARD.md", "reference-profile.json", "model-fp32.onnx"):
        assert (tmp_path / name).is_file(), name
    assert "<svg" in (tmp_path / "report.html").read_text()
    chain = ancestry(summary["artefacts"]["onnx int8 dynamic"], LocalLineage(tmp_path))
    assert [a.kind for a in chain] == ["onnx", "model", "dataset"]
    report = ancestry(summary["artefacts"]["report.html"], LocalLineage(tmp_path))
    assert {a.kind for a in report} >= {"report", "dataset", "model", "onnx", "profile"}
    assert all(a.code_version for a in report)
    assert np.isfinite(summary["private"][0]["epsilon"])


def test_distilled_student_is_faithful_and_calibrated(data: Dataset) -> None:
    from driftline.offline.distill import distill, ece

    result = distill(data)
    assert result.teacher.accuracy > result.hard_student.accuracy  # checked before distilling
    assert result.student.fidelity >= 0.97  # the stated floor
    assert result.student.accuracy >= result.hard_student.accuracy - 0.005
    assert result.student.ece <= 0.05 and result.student_parameters < 1000
    y = np.array([0, 1, 1, 0])
    assert ece(y, np.array([0.0, 1.0, 1.0, 0.0])) == 0.0 and ece(y, np.array([1.0, 0.0, 0.0, 1.0])) == 1.0


def test_shap_adds_up_and_importance_shift_flags_a_broken_input(data: Dataset) -> None:
    from driftline.offline import explain as ex
    from driftline.offline.distill import distill

    model = distill(data).teacher_model
    x = data.x_test[:200]
    values = ex.shap_values(model, data.x_train[:300], x)
    import shap

    expected = shap.TreeExplainer(model).expected_value
    # SHAP's additivity: contributions + expected value = the model's raw output (log-odds)
    assert np.allclose(values.sum(axis=1) + np.ravel(expected)[-1], model.decision_function(x), atol=1e-4)
    reference = ex.importance(values, data.feature_names)
    assert set(reference) == {"salary", "commission", "age", "hvalue", "hyears", "loan", "elevel", "car", "zipcode"}
    top = max(ex.AGRAWAL_NUMERIC, key=lambda f: reference[f])  # the most important numeric feature
    broken = x.copy()
    broken[:, data.feature_names.index(top)] = 0.0  # production sends a constant for the top feature
    shifted = ex.importance_shift(
        reference, ex.importance(ex.shap_values(model, data.x_train[:300], broken), data.feature_names)
    )
    assert shifted[top][2] and shifted[top][1] < shifted[top][0]
    cf = ex.counterfactual(model, x[0], data.num_std)
    assert cf is not None
    probe = x[0].copy()
    probe[list(ex.AGRAWAL_NUMERIC).index(cf.feature)] += cf.change_std
    assert (model.predict_proba(probe[None, :])[0, 1] >= 0.5) != (model.predict_proba(x[:1])[0, 1] >= 0.5)


def test_lime_is_repeatable_and_agrees_with_shap_where_the_answer_is_known() -> None:
    """The label is a function of column 0 (and a little of column 1) only, so both must rank it first."""
    from sklearn.ensemble import GradientBoostingClassifier

    from driftline.offline import explain as ex

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    y = (2.0 * x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64)
    names = ["income", "tenure", "noise_a", "noise_b", "plan=gold"]
    x[:, 4] = (rng.uniform(size=2000) < 0.3).astype(np.float32)  # a one-hot column with no signal
    model = GradientBoostingClassifier(random_state=0).fit(x[:1500], y[:1500])
    row = x[1600]
    first, score = ex.lime_local(model, x[:1500], row, names, seed=7, samples=2000)
    again, _ = ex.lime_local(model, x[:1500], row, names, seed=7, samples=2000)
    assert first == again and 0 < score <= 1
    other, _ = ex.lime_local(model, x[:1500], row, names, seed=8, samples=2000)
    assert other != first  # the seed is what makes it repeatable
    shap_row = dict(ex.local(ex.shap_values(model, x[:300], x[1600:1601])[0], names, top=5))
    agreement = ex.compare_rankings(shap_row, first)
    assert agreement["same_top"] and agreement["same_top_sign"] and agreement["comparison"][0]["feature"] == "income"
    assert max(first, key=lambda f: abs(first[f])) == "income"
    assert set(first) == {"income", "tenure", "noise_a", "noise_b", "plan"}  # one-hot summed back to its feature


def test_lime_perturbs_categories_as_categories(data: Dataset) -> None:
    """Every row LIME shows the model is a valid encoding: one category set per one-hot group (was 6 %)."""
    from sklearn.ensemble import GradientBoostingClassifier

    from driftline.offline import explain as ex

    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(data.x_train, data.y_train)
    seen: list[np.ndarray] = []

    class Spy:
        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            seen.append(np.asarray(rows))
            return model.predict_proba(rows)

    weights, score = ex.lime_local(Spy(), data.x_train, data.x_test[0], data.feature_names, samples=1000)
    rows = np.vstack(seen)
    groups = ex.SourceColumns.of(data.feature_names)
    assert rows.shape == (1000, len(data.feature_names))
    for cols, cats in zip(groups.columns, groups.categories, strict=True):
        if cats:
            assert (rows[:, list(cols)].sum(axis=1) == 1).all()
            assert set(np.unique(rows[:, list(cols)])) == {0.0, 1.0}
    assert set(weights) == {"salary", "commission", "age", "hvalue", "hyears", "loan", "elevel", "car", "zipcode"}
    np.testing.assert_array_equal(groups.encode(groups.decode(data.x_test)), data.x_test)  # a lossless round trip
    assert 0 <= score <= 1


def test_agreement_says_what_it_compares_and_calls_opposite_signs_disagreement() -> None:
    from driftline.offline import explain as ex
    from driftline.offline.reports import _lime_agreement

    shap_row = {"elevel": 7.9, "age": 7.1, "hvalue": -0.03, "loan": 0.01}
    lime_row = {"elevel": -0.13, "age": 0.003, "hvalue": -0.018, "loan": -0.05}  # the top-feature case
    got = ex.compare_rankings(shap_row, lime_row)
    assert got["same_top"] and not got["same_top_sign"] and got["topk_same_sign"] == 2
    text = "\n".join(_lime_agreement({**got, "score": 0.14, "seed": 0, "samples": 5000}))
    assert "opposite signs: they disagree on it" in text and "same top feature: yes" not in text
    assert "Spearman" in text and "same sign" in text and "R² 0.14 < 0.5" in text


def test_agrawal_categories_each_have_their_own_column(data: Dataset) -> None:
    """Issue 22.5: `car` is 1-20 in River; the encoding left car=0 empty and merged 19 and 20 into car=19."""
    from river.datasets import synth

    from driftline.offline.train import encode_rows

    names = data.feature_names
    assert "car=0" not in names and {"car=1", "car=19", "car=20", "elevel=0", "zipcode=8"} <= set(names)
    x = np.vstack([data.x_train, data.x_test])
    for col, first, last in (("elevel", 0, 4), ("car", 1, 20), ("zipcode", 0, 8)):
        idx = [j for j, n in enumerate(names) if n.startswith(f"{col}=")]
        assert [names[j] for j in idx] == [f"{col}={v}" for v in range(first, last + 1)]
        block = x[:, idx]
        assert (block.sum(axis=1) == 1).all() and (block.sum(axis=0) > 0).all()  # no empty, no merged column
    shares = x[:, [names.index("car=19"), names.index("car=20")]].mean(axis=0)
    assert np.allclose(shares, 1 / 20, atol=0.02)  # each about 5 %, not 10 % in one column
    raw = [row for row, _ in synth.Agrawal(classification_function=2, seed=7, balance_classes=True).take(200)]
    enc = encode_rows(raw, data.num_mean, data.num_std)
    assert [names[j] for j in np.nonzero(enc[0])[0] if "=" in names[j]] == [
        f"{c}={raw[0][c]}" for c in ("elevel", "car", "zipcode")
    ]
    unknown = encode_rows([{**raw[0], "car": 21}], data.num_mean, data.num_std)
    assert unknown[0, [j for j, n in enumerate(names) if n.startswith("car=")]].sum() == 0  # not clipped to 20


def test_fairness_gaps_over_seeds_equal_fairlearn_seed_by_seed(data: Dataset) -> None:
    """Issue 22.5: one seed's gap was quoted to four decimals; the randomised predictions vary it."""
    from fairlearn.metrics import demographic_parity_difference
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient
    from sklearn.linear_model import LogisticRegression

    from driftline.offline.fairness import mitigate

    results = {r.method.split(" ")[0]: r for r in mitigate(data, seeds=3)}
    eg = ExponentiatedGradient(LogisticRegression(max_iter=2000), constraints=DemographicParity(), eps=0.02)
    eg.fit(data.x_train.astype(np.float64), data.y_train, sensitive_features=data.groups_train)
    gaps = [
        demographic_parity_difference(
            data.y_test,
            eg.predict(data.x_test.astype(np.float64), random_state=np.random.RandomState(seed)),
            sensitive_features=data.groups_test,
        )
        for seed in range(3)
    ]
    spread = results["ExponentiatedGradient"].gap_spread
    assert spread is not None and spread.n == 3
    assert spread.mean == pytest.approx(np.mean(gaps), abs=1e-12) and spread.high == pytest.approx(max(gaps))
    unmitigated = results["unmitigated"].gap_spread
    assert unmitigated is not None and unmitigated.sd == 0.0  # deterministic predictions: no spread
