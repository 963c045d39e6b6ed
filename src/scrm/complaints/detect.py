"""Stage ``detect``: is a customer opening a complaint? Rules, learned detectors, the sealed test.

The task (references/gold_guidelines.md section 7): ``complaint`` when the customer states a problem
they want fixed or is dissatisfied; otherwise ``not_complaint``. Detectors, all scored on the same
gold rows:

``rules``
    the named rules of :mod:`.detect_rules` (complaint iff a complaint rule fires);
``logreg``, ``complement_nb``
    learned detectors: word TF-IDF -> logistic regression (class-balanced) or ComplementNB, trained on
    the rules' weak labels (``complaint_weak``) of **every opening outside the dev and the sealed test
    gold sets** (abstentions left out, or read as not_complaint: ``detect.train_abstain``);
``always_complaint``
    the baseline: every opening is a complaint (recall 1, precision = the prevalence).

Transfer: a learned detector reads only the cleaned text (no @handles or URLs,
:func:`scrm.text.clean_for_topics`), tokenised as words of 2+ letters (no digits, so no dates, order
or flight numbers) and emoji; brand and product names, the brands' handles and date words are TF-IDF
stop words (:func:`.detect_rules.brand_words`, ``mask_words``). No brand, handle, date or time enters
a feature, so a detector can score tweets to companies that are not in twcs.

Protocol: the champion is the detector with the best F1 on the **dev** gold set
(``detect.dev_file``); the sealed test set (``detect.test_file``) is only scored: precision and
recall with Wilson intervals, F1 with a bootstrap interval, and paired comparisons (F1, accuracy
and kappa differences with paired bootstrap intervals, McNemar tests with Holm-adjusted p-values;
:mod:`scrm.stats.classification`). Nothing is tuned on it.

MLflow (experiment ``detect``): one run per detector; each is registered as a version of
``detect.detector_name`` with an alias of its own name and ``champion`` on the dev winner. The
category champion (the benchmark's best model under ``detect.category``) is registered under
``detect.category.name`` with alias ``champion``. ``scrm classify`` loads either by name.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .. import status
from ..config import DetectSettings
from ..errors import DataError
from ..io import write_csv, write_json, write_parquet
from ..paths import Paths
from ..stats.classification import binary_scores, paired_scores
from ..stats.intervals import holm, p_value
from .benchmark.zoo import text_frame
from .detect_rules import (COMPLAINT, NOT_COMPLAINT, ComplaintRules, RuleDetector, brand_words,
                           load_rules, rule_matrix, rule_summary)
from .weak_labels import resolve

EXPERIMENT = "detect"
BASELINE = "always_complaint"
# words of 2+ letters (either apostrophe inside: "can't", "won’t") or one emoji; never digits
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}(?:['’][^\W\d_]+)?\b|[\U0001F300-\U0001FAFF\u2600-\u27BF]"


# --------------------------------------------------------------------------------------------------
# gold complaint labels
# --------------------------------------------------------------------------------------------------
def load_complaint_gold(path: Path | str) -> pl.DataFrame:
    """(tweet_id Int64, complaint Boolean) from a gold file with a ``complaint`` column (yes/no);
    a missing column, a bad id or value, or a repeated id is an error naming file and line."""
    path = Path(path)
    if not path.exists():
        raise DataError("gold file not found (params detect.dev_file / detect.test_file)", path)
    raw = pl.read_csv(path, infer_schema=False)
    missing = [c for c in ("tweet_id", "complaint") if c not in raw.columns]
    if missing:
        raise DataError(f"header lacks column(s) {missing}; expected tweet_id,...,complaint", path, 1)
    df = raw.select(pl.col("tweet_id").str.strip_chars(), pl.col("complaint").str.strip_chars(),
                    (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("line"))
    checks = [(~pl.col("tweet_id").fill_null("").str.contains(r"^\d+$"), "tweet_id is not an integer"),
              (~pl.col("complaint").fill_null("").is_in(["yes", "no"]), "complaint must be yes or no"),
              (pl.col("tweet_id").is_duplicated(), "tweet_id is listed more than once")]
    for bad, why in checks:
        hit = df.filter(bad)
        if hit.height:
            raise DataError(f"{why} ({hit.height} such rows)", path, int(hit["line"][0]))
    return df.select(pl.col("tweet_id").cast(pl.Int64), complaint=pl.col("complaint") == "yes")


# --------------------------------------------------------------------------------------------------
# the learned detectors
# --------------------------------------------------------------------------------------------------
def masked_words(rules: ComplaintRules, handles: Any) -> list[str]:
    """TF-IDF stop words of the learned detectors: the rules file's ``mask_words`` plus the brands'
    handles and names (:func:`.detect_rules.brand_words`)."""
    return sorted(set(rules.mask_words) | set(brand_words(handles)))


def make_detector(name: str, settings: DetectSettings, stop_words: list[str]) -> Any:
    """An unfitted Pipeline on the one-column frame ``text``: masked word TF-IDF -> classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import Pipeline

    f = settings.features
    tfidf = TfidfVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True, stop_words=stop_words,
                            ngram_range=(1, f.ngram_max), min_df=f.min_df, max_df=f.max_df,
                            sublinear_tf=f.sublinear_tf, dtype=np.float64)
    clf: Any
    if name == "logreg":
        clf = LogisticRegression(C=settings.logreg_c, class_weight="balanced", max_iter=2000,
                                 random_state=settings.seed)
    elif name == "complement_nb":
        clf = ComplementNB(alpha=settings.nb_alpha)
    else:
        raise DataError(f"unknown detector {name!r} (params detect.models)")
    features = ColumnTransformer([("words", tfidf, "text")])
    return Pipeline([("features", features), ("clf", clf)])


def vocabulary(model: Any) -> list[str]:
    """The fitted TF-IDF vocabulary of a learned detector (empty for the rules)."""
    if not hasattr(model, "named_steps"):
        return []
    return sorted(model.named_steps["features"].named_transformers_["words"].vocabulary_)


def with_splits(frame: pl.DataFrame, dev_ids: pl.Series, test_ids: pl.Series) -> pl.DataFrame:
    """``split``: dev / test for the gold rows, ``train`` for every other opening."""
    return frame.with_columns(split=pl.when(pl.col("tweet_id").is_in(test_ids.implode()))
                              .then(pl.lit("test"))
                              .when(pl.col("tweet_id").is_in(dev_ids.implode())).then(pl.lit("dev"))
                              .otherwise(pl.lit("train")))


def training_rows(frame: pl.DataFrame, train_abstain: str) -> pl.DataFrame:
    """The learned detectors' training set: openings of split ``train`` (never a gold id) with a
    non-empty text and a weak label (abstentions as not_complaint if ``train_abstain`` says so)."""
    label = pl.col("complaint_weak")
    if train_abstain == "as_not_complaint":
        label = label.fill_null(NOT_COMPLAINT)
    return (frame.filter((pl.col("split") == "train") & (pl.col("text_clean").str.len_chars() > 0))
            .with_columns(y=label).filter(pl.col("y").is_not_null()))


def fit_detectors(train: pl.DataFrame, settings: DetectSettings, rules: ComplaintRules,
                  stop_words: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rules detector and each learned detector fitted on ``train``; reasons for skipped ones."""
    from sklearn.exceptions import ConvergenceWarning

    models: dict[str, Any] = {"rules": RuleDetector.from_rules(rules).fit(None)}
    skipped: dict[str, str] = {}
    counts = train["y"].value_counts()
    if train.height < settings.min_train_rows or counts.height < 2:
        why = (f"{train.height} weak-labelled training openings ({dict(counts.iter_rows())}): "
               f"need {settings.min_train_rows} and both classes")
        return models, {m: why for m in settings.models}
    X = text_frame(train["text_clean"].to_list())
    for name in settings.models:
        pipe = make_detector(name, settings, stop_words)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)  # stop words vs token pattern
                models[name] = pipe.fit(X, train["y"].to_list())
        except ValueError as exc:  # e.g. an empty vocabulary after masking
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return models, skipped


def score_openings(frame: pl.DataFrame, models: dict[str, Any], threshold: float,
                   skipped: Sequence[str] = ()) -> pl.DataFrame:
    """``p_<detector>`` (P(complaint); 0/1 for the rules) and ``complaint_<detector>`` for every
    opening; an empty text gets a null score and decision. A ``skipped`` detector keeps its
    columns, null, so the table has the same columns whatever could be fitted."""
    X = text_frame(frame["text_clean"].to_list())
    empty = (frame["text_clean"].fill_null("").str.len_chars() == 0).to_numpy()
    cols = []
    for name, model in models.items():
        proba = model.predict_proba(X)[:, list(model.classes_).index(COMPLAINT)]
        p = pl.Series(f"p_{name}", np.where(empty, np.nan, proba)).fill_nan(None)
        cols += [p.round(6), (p >= threshold).alias(f"complaint_{name}")]
    for name in skipped:
        cols += [pl.lit(None, pl.Float64).alias(f"p_{name}"),
                 pl.lit(None, pl.Boolean).alias(f"complaint_{name}")]
    return frame.with_columns(cols)


# --------------------------------------------------------------------------------------------------
# evaluation on the gold sets
# --------------------------------------------------------------------------------------------------
def evaluate(rows: pl.DataFrame, detectors: list[str], settings: DetectSettings
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores of every detector and the baseline on gold ``rows`` (``gold_complaint``), and the
    decisions; an empty text counts as not_complaint (the detectors give no decision there)."""
    truth = rows["gold_complaint"].to_numpy().astype(bool)
    kw = {"level": settings.ci_level, "n_boot": settings.n_boot, "seed": settings.seed}
    preds = {d: rows[f"complaint_{d}"].fill_null(False).to_numpy().astype(bool) for d in detectors}
    preds[BASELINE] = np.ones(rows.height, dtype=bool)
    return {"n": rows.height, "complaints": int(truth.sum()),
            "scores": {d: binary_scores(truth, p, **kw) for d, p in preds.items()}}, preds


def comparisons(rows: pl.DataFrame, preds: dict[str, np.ndarray], detectors: list[str],
                settings: DetectSettings) -> list[dict[str, Any]]:
    """Paired comparisons on the same rows (:func:`scrm.stats.classification.paired_scores`,
    scoring the complaint class only, so its macro-F1 is the complaint F1): every learned detector
    against the rules, every detector against the baseline; McNemar p-values Holm-adjusted over
    the whole family."""
    truth = np.where(rows["gold_complaint"].to_numpy().astype(bool), COMPLAINT, NOT_COMPLAINT)
    label = {d: np.where(p, COMPLAINT, NOT_COMPLAINT) for d, p in preds.items()}
    pairs = [(d, "rules") for d in detectors if d != "rules"] + [(d, BASELINE) for d in detectors]
    out = []
    for a, b in pairs:
        res = paired_scores(truth, label[a], label[b], [COMPLAINT, NOT_COMPLAINT], [COMPLAINT],
                            n_boot=settings.n_boot, level=settings.ci_level, seed=settings.seed)
        out.append({"a": a, "b": b, "n": res["n"], "f1": res["macro_f1"],
                    "accuracy": res["accuracy"], "kappa": res["kappa"], "mcnemar": res["mcnemar"]})
    adjusted = holm(np.array([np.nan if r["mcnemar"]["p_value"] is None else r["mcnemar"]["p_value"]
                              for r in out], dtype=float))
    for row, q in zip(out, adjusted):
        row["mcnemar"]["p_holm"] = p_value(q)
    return out


def champion(dev_scores: dict[str, dict[str, Any]], detectors: list[str]) -> str:
    """The detector with the best dev F1 (ties: the first in ``detectors``, the rules first)."""
    return max(detectors, key=lambda d: (dev_scores[d]["f1"] or -1.0, -detectors.index(d)))


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def load_frame(paths: Paths) -> pl.DataFrame:
    if not paths.complaints.exists():
        raise status.missing_input(paths, "complaints", paths.complaints)
    need = ["tweet_id", "brand", "text_clean"]
    df = pl.read_parquet(paths.complaints)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} (complaints contract)", paths.complaints)
    return df.select(need).with_columns(pl.col("text_clean").fill_null("")).sort("tweet_id")


def run(paths: Paths, settings: DetectSettings) -> dict[str, Any]:
    """Rules + learned detectors, gold scores, per-opening decisions, MLflow registry."""
    rules = load_rules(resolve(paths, settings.rules))
    dev_path, test_path = resolve(paths, settings.dev_file), resolve(paths, settings.test_file)
    dev, test = load_complaint_gold(dev_path), load_complaint_gold(test_path)  # type: ignore[arg-type]
    frame = rule_matrix(load_frame(paths), rules)
    frame = with_splits(frame, dev["tweet_id"], test["tweet_id"])
    gold = pl.concat([dev, test]).unique("tweet_id", keep="first")
    frame = frame.join(gold.rename({"complaint": "gold_complaint"}), on="tweet_id", how="left")
    stop = masked_words(rules, frame["brand"].drop_nulls().unique().to_list())
    train = training_rows(frame, settings.train_abstain)
    models, skipped = fit_detectors(train, settings, rules, stop)
    detectors = list(models)
    frame = score_openings(frame, models, settings.threshold, [m for m in settings.models
                                                               if m not in models])
    champ_col = None
    metrics: dict[str, Any] = {
        **detect_state(paths, frame),
        "openings": frame.height,
        "rules": {"file": rules.source.name, "n_rules": len(rules.rules),
                  "complaint_rules": len(rules.voting(COMPLAINT)),
                  "fired_any": round(float((frame["complaint_votes"] + frame["not_complaint_votes"]
                                            > 0).mean()), 6) if frame.height else None,
                  "weak_label_counts": {str(k): int(v) for k, v in sorted(
                      frame["complaint_weak"].fill_null("(abstain)").value_counts().iter_rows())}},
        "training": training_note(train, frame, settings, stop, models),
        "detectors": detectors, "baseline": BASELINE, "skipped": skipped,
    }
    preds_by_set: dict[str, tuple[pl.DataFrame, dict[str, np.ndarray]]] = {}
    for name, path in (("dev", dev_path), ("test", test_path)):
        rows = frame.filter(pl.col("split") == name).sort("tweet_id")
        if rows.height == 0:
            metrics[name] = {"file": Path(path).name, "n": 0,  # type: ignore[arg-type]
                             "note": "no gold id is an opening of this run"}
            continue
        res, preds = evaluate(rows, detectors, settings)
        metrics[name] = {"file": Path(path).name, **res}  # type: ignore[arg-type]
        preds_by_set[name] = (rows, preds)
    if "test" in preds_by_set:
        metrics["test"]["comparisons"] = comparisons(*preds_by_set["test"], detectors, settings)
    if "dev" in preds_by_set:
        best = champion(metrics["dev"]["scores"], detectors)
        champ_col = f"complaint_{best}"
        metrics["champion"] = {"detector": best, "chosen_on": "dev F1 (sealed test not used)",
                               "dev_f1": metrics["dev"]["scores"][best]["f1"],
                               "test": (metrics.get("test", {}).get("scores") or {}).get(best)}
    else:
        metrics["champion"] = {"detector": None, "note": "no dev gold rows: no champion chosen"}
    frame = frame.with_columns(complaint=pl.col(champ_col) if champ_col else pl.lit(None, pl.Boolean))
    summary = rule_summary(frame.filter(pl.col("split") == "dev"), rules, "gold_complaint")
    metrics["rules"]["per_rule_dev"] = {r.pop("rule"): r for r in summary.to_dicts()}

    out_cols = ["tweet_id", "split", "complaint_weak", "rules_fired",
                *[c for d in ["rules", *settings.models] for c in (f"p_{d}", f"complaint_{d}")],
                "complaint",
                "gold_complaint"]
    write_parquet(frame.select(out_cols), paths.complaint_detect)
    write_csv(summary, paths.complaint_rules_summary)
    metrics["registry"] = register(paths, settings, models, metrics, train) if settings.register \
        else {"note": "params detect.register is false"}
    write_json(paths.metric("detect"), metrics)
    return metrics


def detect_state(paths: Paths, frame: pl.DataFrame) -> dict[str, Any]:
    """``no_data`` without a customer opening (in the words of the stage that found none);
    ``skipped`` when no dev gold id is an opening of this run (no champion can be chosen on dev,
    and nothing is chosen on the sealed test instead); else ``ok``."""
    if frame.height == 0:
        return status.no_data(status.because(paths, "the complaints table holds no customer "
                                                    "opening", "complaints"))
    if not (frame["split"] == "dev").any():
        return status.skipped("no opening of this run is in the dev gold set, so no detector can "
                              "be chosen (the sealed test is never used to choose)")
    return status.ok()


def training_note(train: pl.DataFrame, frame: pl.DataFrame, settings: DetectSettings,
                  stop: list[str], models: dict[str, Any]) -> dict[str, Any]:
    """What the learned detectors were trained on, in words and numbers."""
    return {
        "description": ("weak complaint labels from the complaint rules on every customer opening "
                        "outside the dev and sealed-test gold sets; text cleaned of @handles, URLs "
                        "and sign-offs; features: word TF-IDF (2+ letters, no digits, emoji kept) "
                        "with brand/product names, the brands' handles and date words removed"),
        "rows": train.height,
        "class_counts": {str(k): int(v) for k, v in sorted(train["y"].value_counts().iter_rows())},
        "openings_outside_gold": int((frame["split"] == "train").sum()),
        "gold_ids_excluded": int((frame["split"] != "train").sum()),
        "train_abstain": settings.train_abstain,
        "masked_words": len(stop),
        "vocabulary_size": {n: len(vocabulary(m)) for n, m in models.items() if n != "rules"},
    }


def register(paths: Paths, settings: DetectSettings, models: dict[str, Any],
             metrics: dict[str, Any], train: pl.DataFrame) -> dict[str, Any]:
    """One MLflow run per detector, each registered under ``detector_name`` with an alias of its
    own name; ``champion`` on the dev winner; then the category champion."""
    from .. import tracking
    from .classify import promote_category_champion

    name = settings.detector_name
    example = text_frame(train["text_clean"].head(5).to_list() or ["my order is late"])
    versions: dict[str, str] = {}
    run_ids: dict[str, str] = {}
    inputs = [paths.complaints, resolve(paths, settings.dev_file),
              resolve(paths, settings.test_file)]
    for det, model in models.items():
        params = {**{k: v for k, v in asdict(settings).items() if k != "seed"}, "detector": det}
        with tracking.start_run(EXPERIMENT, det, params=params, seed=settings.seed,
                                inputs=inputs,  # type: ignore[arg-type]
                                tags={"detect.detector": det,
                                      "detect.trained_on": metrics["training"]["description"]},
                                root=paths.root):
            flat = {f"{s}_{k}": v for s in ("dev", "test")
                    for k, v in ((metrics.get(s) or {}).get("scores") or {}).get(det, {}).items()
                    if isinstance(v, (int, float))}
            tracking.log_metrics(flat)
            info = tracking.log_sklearn_model(model, example, registered_name=name)
            versions[det], run_ids[det] = str(info.registered_model_version), info.run_id
    for det, run_id in run_ids.items():
        tracking.set_champion(name, run_id, f"the {det} detector", paths.root, alias=det)
    champ = metrics["champion"].get("detector")
    if champ:
        tracking.set_champion(name, run_ids[champ], f"best F1 on the dev gold set "
                              f"({metrics['champion']['dev_f1']}); the sealed test was not used",
                              paths.root)
    return {"detector": {"name": name, "aliases": sorted([*versions, *(["champion"] if champ
                                                                         else [])])},
            "category": promote_category_champion(paths, settings)}
