"""The models' test metrics with intervals, compared with their baseline on the same rows.

* "answered within 1 h": AUC and Brier score with percentile bootstrap intervals over the test
  openings, the paired bootstrap difference to the brand-rate baseline (same draws for both
  models) and DeLong's test of the AUC difference; a calibration table per model (quantile bins,
  Wilson intervals on the observed share) and its expected calibration error.
* log latency: MAE in minutes and R^2 on the log scale with bootstrap intervals, and the paired
  difference to the per-brand median baseline. R^2 below 0 means worse than predicting the test
  mean; a model whose MAE difference interval lies above 0 is worse than the baseline, and the
  ``vs_baseline`` verdict says so in words.
* the train/test shift: the outcome rates of the two periods (the service figures of each split).

The test period is never used to choose anything: models, features and settings are fixed before
it is scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..stats.compare import (auc_ranks, bootstrap, calibration_bins, delong,
                             expected_calibration_error, weighted_auc, weighted_brier,
                             weighted_mae, weighted_r2)
from ..stats.intervals import finite, z_value
from .service import service_stats, share_fields

if TYPE_CHECKING:
    from ..config import ResponseTimeSettings
    from .models import ModelResult

BASELINES = {"within_1h": "brand_rate", "log_latency": "brand_median"}
# the metric that decides the verdict, and whether higher is better
VERDICT_METRIC = {"within_1h": ("auc", True), "log_latency": ("mae_minutes", False)}


def _verdict(entry: dict[str, Any], metric: str, higher_is_better: bool) -> str:
    """'better' / 'worse' than the baseline when the paired interval excludes 0, else 'no
    difference shown'."""
    lo, hi = entry.get(f"{metric}_diff_ci_low"), entry.get(f"{metric}_diff_ci_high")
    if lo is None or hi is None:
        return "not compared"
    if lo > 0:
        return "better" if higher_is_better else "worse"
    if hi < 0:
        return "worse" if higher_is_better else "better"
    return "no difference shown"


def _classification_scores(ok: list[ModelResult]) -> Any:
    y = ok[0].y_test.astype(float)
    ranks = {r.name: auc_ranks(r.pred_test) for r in ok}

    def statistic(w: np.ndarray) -> dict[str, dict[str, float]]:
        return {r.name: {"auc": weighted_auc(y, ranks[r.name], w),
                         "brier": weighted_brier(y, r.pred_test, w)} for r in ok}
    return statistic


def _regression_scores(ok: list[ModelResult]) -> Any:
    y_log = ok[0].y_test.astype(float)
    y_min = np.expm1(y_log) / 60.0
    pred_min = {r.name: np.expm1(r.pred_test) / 60.0 for r in ok}

    def statistic(w: np.ndarray) -> dict[str, dict[str, float]]:
        return {r.name: {"mae_minutes": weighted_mae(y_min, pred_min[r.name], w),
                         "r2_log": weighted_r2(y_log, r.pred_test, w)} for r in ok}
    return statistic


def evaluate(results: list[ModelResult], settings: ResponseTimeSettings,
             ) -> tuple[dict[str, dict[str, dict[str, Any]]], pl.DataFrame]:
    """Intervals and paired comparisons per task and model, and the calibration table.

    Returns ``({task: {model: fields}}, calibration)``; the fields are merged into each model's
    metrics by the stage.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    calibration: list[pl.DataFrame] = []
    z = z_value(settings.ci_level)
    for task, make in (("within_1h", _classification_scores), ("log_latency", _regression_scores)):
        ok = [r for r in results if r.task == task and r.status == "ok"]
        if not ok:
            continue
        baseline = BASELINES[task]
        base = baseline if any(r.name == baseline for r in ok) else None
        n = int(ok[0].y_test.size)
        boot = bootstrap(n, make(ok), baseline=base, n_boot=settings.n_boot, seed=settings.seed,
                         level=settings.ci_level)
        metric, higher = VERDICT_METRIC[task]
        for r in ok:
            entry = {**boot[r.name], "baseline": base}
            if r.name != base:
                entry["vs_baseline"] = _verdict(entry, metric, higher)
            if task == "within_1h":
                if base is not None and r.name != base:
                    base_pred = next(x.pred_test for x in ok if x.name == base)
                    d = delong(r.y_test, r.pred_test, base_pred)
                    entry.update(delong_auc_diff=d["auc_diff"], delong_se=d["se"],
                                 delong_z=d["z"], delong_p_value=d["p_value"],
                                 delong_log10_p=d["log10_p"])
                bins = calibration_bins(r.y_test, r.pred_test, settings.calibration_bins, z)
                entry["calibration_error"] = finite(expected_calibration_error(bins))
                calibration.append(pl.DataFrame({"model": r.name, "bin": np.arange(bins["n"].size),
                                                 **bins}))
            out.setdefault(task, {})[r.name] = entry
    table = (pl.concat(calibration) if calibration else
             pl.DataFrame(schema={"model": pl.String, "bin": pl.Int64, "n": pl.Int64,
                                  "mean_predicted": pl.Float64, "observed": pl.Float64,
                                  "observed_ci_low": pl.Float64, "observed_ci_high": pl.Float64}))
    return out, table.with_columns(pl.col("mean_predicted", "observed", "observed_ci_low",
                                          "observed_ci_high").round(6))


def split_shift(op: pl.DataFrame, settings: ResponseTimeSettings) -> dict[str, dict[str, Any]]:
    """Per split: dates, and the service figures (answered share, share within 1 h, ...) with
    intervals, so a shift between the training and the test period is visible."""
    out: dict[str, dict[str, Any]] = {}
    z = z_value(settings.ci_level)
    for (name,), g in op.group_by("split"):
        out[str(name)] = {"from": g["opening_at"].min().isoformat(),
                          "to": g["opening_at"].max().isoformat(),
                          **share_fields("within_1h_share", int(g["answered_within_1h"].sum()),
                                         int(g["within_1h_known"].sum()), z),
                          **service_stats(g, settings)}
    return dict(sorted(out.items(), key=lambda kv: kv[0] != "train"))
