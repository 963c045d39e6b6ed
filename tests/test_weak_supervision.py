"""Paired bootstrap statistics, the label model, and the rules scored on dev and the sealed test."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import f1_score

from scrm.complaints import gold as gold_mod
from scrm.complaints import label_model as lm_mod
from scrm.complaints import weak_labels
from scrm.complaints.taxonomy import apply_lfs, load_taxonomy
from scrm.config import Paths, load_settings
from scrm.stats import paired
from scrm.stats.intervals import finite

TAX = load_taxonomy()


# --------------------------------------------------------------------------------------------------
# stats.paired: every number against a direct computation

Y = np.array([0, 0, 1, 1, 2, 2, 2, 0])
P = np.array([0, 1, 1, 1, 2, 0, 3, 0])   # 3 = abstain: a wrong answer in no class


def test_macro_f1_over_a_fixed_label_set_by_hand() -> None:
    # class 0: TP 2, FP 1, FN 1 -> 4/6; class 1: TP 2, FP 1, FN 0 -> 4/5; class 2: TP 1, FN 2 -> 2/4;
    # code 3 (abstain) is wrong and in no class
    assert paired.macro_f1(Y, P, 3) == pytest.approx((4 / 6 + 4 / 5 + 2 / 4) / 3)
    assert paired.macro_f1(Y, P, 3) == pytest.approx(
        f1_score(Y, np.where(P == 3, -1, P), labels=[0, 1, 2], average="macro", zero_division=0))
    # a 4th class with no true and no predicted row scores 0 (zero_division=0)
    assert paired.macro_f1(Y, np.where(P == 3, 4, P), 4) == pytest.approx(
        (4 / 6 + 4 / 5 + 2 / 4 + 0) / 4)
    assert paired.accuracy(Y, P) == pytest.approx(5 / 8)
    assert paired.encode(["b", None, "a", "(abstain)"], ["a", "b"]).tolist() == [1, 2, 0, 2]


def test_bootstrap_interval_and_p_value_match_a_direct_loop() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60)
    a = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
    b = np.where(rng.random(60) < 0.5, y, rng.integers(0, 3, 60))
    res = paired.compare(y, {"a": a, "b": b}, 3, "a", n_boot=300, seed=11, level=0.9)
    # the same resamples drawn directly, scored with scikit-learn
    draws = np.random.default_rng(11).integers(0, 60, size=(300, 60))
    fa = np.array([f1_score(y[d], a[d], labels=[0, 1, 2], average="macro", zero_division=0)
                   for d in draws])
    fb = np.array([f1_score(y[d], b[d], labels=[0, 1, 2], average="macro", zero_division=0)
                   for d in draws])
    assert res["a"]["macro_f1_ci"] == pytest.approx(np.quantile(fa, [0.05, 0.95]), abs=1e-6)
    assert res["b"]["diff_ci"] == pytest.approx(np.quantile(fb - fa, [0.05, 0.95]), abs=1e-6)
    d = fb - fa
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1) / 301, (np.sum(d >= 0) + 1) / 301))
    assert res["b"]["p_value"] == pytest.approx(p, abs=1e-6)
    assert res["b"]["diff"] == pytest.approx(res["b"]["macro_f1"] - res["a"]["macro_f1"], abs=1e-6)
    assert res["a"]["indistinguishable"] is True and res["a"]["p_value"] is None


def test_repeated_predictions_score_as_the_mean_of_repetitions() -> None:
    reps = np.vstack([P, Y])                  # one imperfect repetition, one perfect
    assert paired.macro_f1(Y, P, 3) / 2 + 0.5 == pytest.approx(
        paired.compare(Y, {"x": reps}, 3, "x", n_boot=100, seed=0, level=0.95)["x"]["macro_f1"],
        abs=1e-6)


def test_holm_by_hand_and_p_value_never_zero() -> None:
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    from scrm.stats.intervals import holm

    assert holm(np.array([0.04, 0.01, 0.02])).tolist() == pytest.approx([0.04, 0.03, 0.04])
    assert holm(np.array([0.5, 0.6])).tolist() == pytest.approx([1.0, 1.0])
    assert paired.bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)


# --------------------------------------------------------------------------------------------------
# the label model

def _matrix(texts: list[str]) -> tuple[pl.DataFrame, np.ndarray]:
    df = apply_lfs(pl.DataFrame({"text_clean": texts}), TAX)
    return df, lm_mod.label_matrix(df, TAX)


def test_label_matrix_codes_each_rule_by_its_category() -> None:
    _, L = _matrix(["my refund never came", "hello"])
    classes = lm_mod.model_classes(TAX)
    assert "other_unclear" not in classes and len(classes) == len(TAX.names) - 1
    j = TAX.lf_names.index("lf_refund")
    assert L[0, j] == classes.index("billing_refunds") and (L[1] == -1).all()


def test_label_model_never_reads_rows_outside_its_fit_rows() -> None:
    """Changing the rule outputs of held-out rows changes nothing on the other rows."""
    settings = {**load_settings().complaints.label_model, "n_epochs": 50}
    texts = ["my refund never came", "the app keeps crashing", "package is late",
             "thanks so much, love it", "flight delayed again", "internet is down",
             "refund my order please", "app crashes after update", "rude staff at the desk"] * 4
    _, L = _matrix(texts)
    fit_rows = np.arange(len(texts)) < 27
    a = lm_mod.fit_predict(L, fit_rows, TAX, settings, seed=3)
    L2 = L.copy()
    L2[~fit_rows] = -1
    b = lm_mod.fit_predict(L2, fit_rows, TAX, settings, seed=3)
    assert a.labels[:27] == b.labels[:27] and a.weights == b.weights
    assert all(lab is None for lab in b.labels[27:])      # nothing fires -> abstain
    assert a.n_fit == 27
    c = lm_mod.fit_predict(L, fit_rows, TAX, settings, seed=3)
    assert c.labels == a.labels                           # seeded: same labels


def test_blockwise_label_model_equals_snorkels_one_pass_to_the_bit(
        prepared_root: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory-saving fit (overlap counts and predictions a block of rows at a time) gives
    Snorkel's own ``LabelModel`` results on the sample's openings: labels, probabilities, weights."""
    from snorkel.labeling.model import LabelModel

    settings = {**load_settings().complaints.label_model, "n_epochs": 100}
    df = weak_labels.label_openings(pl.scan_parquet(prepared_root.openings), TAX, 1)
    L = lm_mod.label_matrix(df, TAX)
    fit_rows = np.arange(L.shape[0]) % 5 != 0
    assert L.shape[0] > 1000 and (L[fit_rows] != -1).any(axis=1).sum() > 300
    monkeypatch.setattr(lm_mod, "BLOCK_ROWS", 97)        # many blocks, a ragged last one
    ours = lm_mod.fit_predict(L, fit_rows, TAX, settings, seed=11)

    with lm_mod._one_thread():                           # as fit_predict does
        plain = LabelModel(cardinality=len(lm_mod.model_classes(TAX)), verbose=False, device="cpu")
        plain.fit(L[fit_rows], **settings, seed=11, progress_bar=False)
        pred, prob = plain.predict(L, return_probs=True, tie_break_policy="abstain")
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = plain.get_weights()
    pred = np.where((L != -1).any(axis=1), pred, -1)
    classes = lm_mod.model_classes(TAX)
    assert ours.labels == [classes[p] if p != -1 else None for p in pred.tolist()]
    assert np.array_equal(ours.confidence, np.where(pred != -1, prob.max(axis=1), np.nan),
                          equal_nan=True)
    assert sum(lab is not None for lab in ours.labels) > 300
    assert list(ours.weights.values()) == [finite(w) for w in weights]


# --------------------------------------------------------------------------------------------------
# the stage on the real sample: dev and sealed test

@pytest.fixture(scope="module")
def sample_run(prepared_root: Paths, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("weak_sup")
    shutil.copy(prepared_root.root / "params.yaml", root / "params.yaml")
    paths = Paths(root).ensure()
    shutil.copy(prepared_root.openings, paths.openings)
    settings = load_settings(root).complaints.replace(track=False, n_boot=500)
    return paths, weak_labels.run(paths, settings), settings


def test_sealed_test_scores_recompute_from_the_parquet(sample_run) -> None:
    paths, m, _ = sample_run
    df = pl.read_parquet(paths.complaints)
    test = df.filter(pl.col("test_label").is_not_null())
    assert test.height == m["sealed_test"]["n"] == 420
    assert df.filter(pl.col("gold_label").is_not_null() & pl.col("test_label").is_not_null()
                     ).height == 0
    for name, col in (("majority_vote", "weak_label"), ("label_model", "lm_label")):
        rec = m["sealed_test"][name]
        covered = test.filter(pl.col(col).is_not_null())
        assert rec["coverage"] == round(covered.height / 420, 6)
        assert rec["accuracy_covered"] == round(
            float((covered[col] == covered["test_label"]).mean()), 6)
        other = test[col].fill_null("other_unclear").to_list()
        assert rec["macro_f1_abstain_as_other"] == pytest.approx(
            f1_score(test["test_label"].to_list(), other, labels=TAX.names, average="macro",
                     zero_division=0), abs=1e-6)
        for key in ("coverage", "accuracy_covered", "macro_f1", "macro_f1_abstain_as_other"):
            lo, hi = rec[f"{key}_ci"]
            assert lo <= rec[key] <= hi and hi - lo < 0.2, key
    cmp_ = m["sealed_test"]["label_model"]["vs_majority_vote"]["macro_f1"]
    assert cmp_["diff"] == pytest.approx(m["sealed_test"]["label_model"]["macro_f1"]
                                         - m["sealed_test"]["majority_vote"]["macro_f1"], abs=1e-6)
    assert 0 < cmp_["p_value"] <= 1


def test_label_model_is_fitted_outside_the_sealed_test_and_abstains_like_majority_vote(
        sample_run) -> None:
    paths, m, _ = sample_run
    df = pl.read_parquet(paths.complaints)
    assert m["label_model"]["n_fit"] == df.height - 420
    assert (df["lm_label"].is_null() == df["weak_label"].is_null()).all()   # same coverage here
    assert df["lm_label"].drop_nulls().is_in(TAX.names).all()
    assert (df["lm_confidence"].is_null() == df["lm_label"].is_null()).all()


def test_rule_precision_is_measured_on_dev_only(sample_run) -> None:
    paths, _, _ = sample_run
    df = pl.read_parquet(paths.complaints)
    summary = pl.read_csv(paths.lf_summary)
    row = summary.filter(pl.col("lf") == "lf_refund").row(0, named=True)
    dev = df.filter(pl.col("gold_label").is_not_null()
                    & pl.col("lfs_fired").list.contains("lf_refund"))
    assert row["gold_n_fired"] == dev.height
    assert row["gold_correct"] == (dev["gold_label"] == "billing_refunds").sum()
    assert "label_model_weight" in summary.columns


def test_dev_and_test_sets_must_be_disjoint(sample_run, tmp_path) -> None:
    paths, _, settings = sample_run
    overlap = tmp_path / "test.csv"
    overlap.write_text("tweet_id,label,complaint\n8,staff_service,yes\n", encoding="utf-8")
    from scrm.errors import DataError

    with pytest.raises(DataError, match="in both the dev set and the sealed test"):
        weak_labels.run(paths, settings.replace(test_file=str(overlap)))


def test_gold_scores_use_the_full_label_set() -> None:
    m = gold_mod.evaluate(["a", None], ["a", "b"], labels=["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((1 + 0 + 0) / 3)       # c: no true, no predicted -> 0
