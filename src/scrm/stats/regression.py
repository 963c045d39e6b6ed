"""Effect sizes that mean what they say: unpenalised logistic and multinomial logit.

Why unpenalised: an L2 penalty pulls every coefficient towards zero, so its "odds ratios" are shrunk
towards 1 by an amount set by the penalty, not by the data, and its intervals (bootstrap of a
penalised fit) inherit that bias. Maximum likelihood gives odds ratios with their usual meaning, at
the price of needing enough events per predictor: :func:`epv_select` keeps at most one predictor per
``per_predictor`` events of the rarer outcome (10 is the usual rule of thumb, Peduzzi et al. 1996).

* :func:`logit_odds_ratios` ML logistic regression (statsmodels ``Logit``), Wald intervals, optionally
  cluster-robust (threads of one customer are not independent);
* the same with adjusters (e.g. brand dummies) fitted but not reported: within-brand odds ratios
  (statsmodels' ``ConditionalLogit`` would avoid a parameter per brand, but it recurses once per row
  of a stratum and fails on brands with a few thousand threads);
* :func:`multinomial_effects` multinomial logit over competing outcomes (statsmodels ``MNLogit``):
  relative-risk ratios against a base outcome and average discrete changes in each outcome's
  probability (delta-method standard errors).

Every p-value is stored with its statistic (Wald chi-square = z^2) and df. Fits that do not converge,
or that meet perfect separation, are reported as skipped with the reason, never as infinite ratios.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import norm

from .intervals import chi2_test, finite, z_test


def epv_select(candidates: Sequence[str], events: int, per_predictor: float) -> dict[str, Any]:
    """The first ``floor(events / per_predictor)`` candidates (in the given priority order) and the
    rest, with the count behind the choice."""
    k = max(0, int(events // per_predictor))
    return {"events": int(events), "per_predictor": per_predictor, "max_predictors": k,
            "kept": list(candidates[:k]), "dropped": list(candidates[k:])}


def _varying(X: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop columns without variation (they cannot be estimated)."""
    keep = [j for j in range(X.shape[1]) if np.ptp(X[:, j]) > 0] if X.size else []
    dropped = [n for j, n in enumerate(names) if j not in keep]
    return X[:, keep], [names[j] for j in keep], dropped


def _wald_rows(names: Sequence[str], params: np.ndarray, bse: np.ndarray, level: float,
               ratio: str) -> dict[str, dict[str, Any]]:
    """Per coefficient: estimate, SE, exp(estimate) as ``ratio`` with its Wald interval, and the
    Wald test (z, p, log10 p; chi-square = z^2 with df 1)."""
    q = float(norm.ppf(0.5 + level / 2))
    rows: dict[str, dict[str, Any]] = {}
    for name, b, s in zip(names, params, bse, strict=True):
        rows[name] = {"coef": finite(b), "se": finite(s), ratio: finite(np.exp(b)),
                      "ci_low": finite(np.exp(b - q * s)), "ci_high": finite(np.exp(b + q * s)),
                      **_wald(b, s)}
    return rows


def _wald(estimate: float, se: float) -> dict[str, Any]:
    """The Wald test of ``estimate / se``: z, p, log10 p, and chi-square = z^2 with df 1."""
    z = estimate / se if se > 0 else float("nan")
    return {**z_test(z), "chi2": finite(z * z), "df": 1}


def _fit_options(groups: Any | None, maxiter: int, out: dict[str, Any]) -> dict[str, Any]:
    """Newton fit options; with ``groups``, cluster-robust standard errors (noted in ``out``)."""
    kw: dict[str, Any] = {"disp": 0, "method": "newton", "maxiter": maxiter}
    if groups is not None:
        kw.update(cov_type="cluster",
                  cov_kwds={"groups": np.unique(np.asarray(groups), return_inverse=True)[1]})
        out["method"] += ", cluster-robust by group"
    return kw


def _fit_quietly(fit: Any) -> tuple[Any, str | None]:
    """Run a statsmodels fit; a separation or convergence problem becomes a reason, not a crash."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit()
        except (np.linalg.LinAlgError, ValueError) as exc:
            return None, f"fit failed: {exc}"
    for w in caught:
        if issubclass(w.category, PerfectSeparationWarning):
            return None, "perfect separation: some predictor decides the outcome; no finite ratios"
        if issubclass(w.category, ConvergenceWarning):
            return None, f"did not converge: {w.message}"
    retvals = getattr(res, "mle_retvals", None) or {}
    if retvals.get("converged") is False:
        return None, "did not converge"
    if not np.all(np.isfinite(np.asarray(res.bse, dtype=float))):
        return None, "standard errors not finite (a predictor is (nearly) collinear or separating)"
    return res, None


def logit_odds_ratios(X: Any, y: Any, names: Sequence[str], groups: Any | None = None,
                      level: float = 0.95, adjust: Any | None = None,
                      adjust_names: Sequence[str] = ()) -> dict[str, Any]:
    """Maximum-likelihood logistic regression with an intercept; odds ratio, Wald interval and test
    per predictor, and the likelihood-ratio test of the predictors together.

    ``groups`` (e.g. customer ids) makes the standard errors cluster-robust. ``adjust`` holds extra
    columns (e.g. brand dummies) that are fitted but not reported: the ratios are then *within*
    levels of what they encode, and the likelihood-ratio test compares with the adjusters alone.
    """
    import statsmodels.api as sm

    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    X, used, constant = _varying(X, list(names))
    A = (np.zeros((len(y), 0)) if adjust is None
         else np.asarray(adjust, dtype=float).reshape(len(y), -1))
    A, adj_used, _ = _varying(A, list(adjust_names) or [f"adjust_{j}" for j in range(A.shape[1])])
    out: dict[str, Any] = {"n": int(y.size), "events": int(y.sum()), "predictors": used,
                           "dropped_no_variation": constant, "ci_level": level,
                           "method": "maximum likelihood (unpenalised), Wald intervals"}
    if adjust is not None:
        out["adjusted_for"] = adj_used
    if y.size == 0 or y.min() == y.max():
        out["skipped"] = "a single outcome class"
        return out
    kw = _fit_options(groups, 100, out)
    full = sm.add_constant(np.hstack([X, A]), has_constant="add")
    res, why = _fit_quietly(lambda: sm.Logit(y, full).fit(**kw))
    if res is None:
        out["skipped"] = why
        return out
    params, bse = np.asarray(res.params), np.asarray(res.bse)
    k = len(used)
    out["odds_ratios"] = _wald_rows(used, params[1:1 + k], bse[1:1 + k], level, "odds_ratio")
    if A.shape[1]:
        reduced, why = _fit_quietly(lambda: sm.Logit(y, sm.add_constant(A, has_constant="add"))
                                    .fit(disp=0, method="newton", maxiter=100))
        ll0 = reduced.llf if reduced is not None else np.nan
    else:
        ll0 = res.llnull
    out["lr_test"] = chi2_test(2 * (res.llf - ll0), k)
    out["pseudo_r2_mcfadden"] = finite(1 - res.llf / res.llnull)
    return out


def _mn_probs(params: np.ndarray, Xc: np.ndarray) -> np.ndarray:
    """Outcome probabilities of a multinomial logit (base outcome's coefficients fixed at 0)."""
    eta = np.column_stack([np.zeros(Xc.shape[0]), Xc @ params])
    eta -= eta.max(axis=1, keepdims=True)
    e = np.exp(eta)
    return e / e.sum(axis=1, keepdims=True)


def multinomial_effects(X: Any, y: Sequence[str], names: Sequence[str], outcomes: Sequence[str],
                        groups: Any | None = None, level: float = 0.95) -> dict[str, Any]:
    """Multinomial logit of ``y`` (values in ``outcomes``; the first is the base) on ``X``.

    Per predictor and non-base outcome: the relative-risk ratio against the base with its Wald test.
    Per predictor and outcome (base included): the average change in that outcome's probability when
    the predictor goes from 0 to 1 for a 0/1 predictor, or rises by one unit otherwise (an average
    discrete change over the rows), with a delta-method standard error and interval.
    """
    import statsmodels.api as sm

    outcomes = list(outcomes)
    index = {o: i for i, o in enumerate(outcomes)}
    codes = np.array([index[v] for v in y], dtype=np.int64)
    X = np.asarray(X, dtype=float).reshape(len(codes), -1)
    X, used, constant = _varying(X, list(names))
    counts = {o: int((codes == i).sum()) for i, o in enumerate(outcomes)}
    out: dict[str, Any] = {"n": int(codes.size), "outcome_counts": counts, "base": outcomes[0],
                           "predictors": used, "dropped_no_variation": constant, "ci_level": level,
                           "method": "multinomial logit (maximum likelihood), Wald intervals"}
    if min(counts.values()) == 0:
        out["skipped"] = "an outcome never occurs: " + ", ".join(o for o, c in counts.items() if not c)
        return out
    Xc = sm.add_constant(X, has_constant="add")
    kw = _fit_options(groups, 200, out)
    res, why = _fit_quietly(lambda: sm.MNLogit(codes, Xc).fit(**kw))
    if res is None:
        out["skipped"] = why
        return out
    params = np.asarray(res.params)  # (1 + p, K - 1), columns = outcomes[1:]
    bse = np.asarray(res.bse)
    out["relative_risk_ratios"] = {
        o: _wald_rows(used, params[1:, k], bse[1:, k], level, "rrr")
        for k, o in enumerate(outcomes[1:])}
    cov = np.asarray(res.cov_params())  # order: outcome-major (all exog of outcome 1, then 2, ...)
    flat = params.T.ravel()
    shape = params.shape
    q = float(norm.ppf(0.5 + level / 2))

    def shifted(j: int) -> tuple[np.ndarray, np.ndarray]:
        """The design with predictor ``j`` at 1 and at 0 (0/1 predictor), or raised by one unit."""
        hi, lo = Xc.copy(), Xc.copy()
        if set(np.unique(X[:, j]).tolist()) <= {0.0, 1.0}:
            hi[:, j + 1], lo[:, j + 1] = 1.0, 0.0
        else:
            hi[:, j + 1] = Xc[:, j + 1] + 1.0
        return hi, lo

    def ame(theta: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        p = theta.reshape(shape[1], shape[0]).T
        return (_mn_probs(p, hi) - _mn_probs(p, lo)).mean(axis=0)

    changes: dict[str, Any] = {}
    for j, name in enumerate(used):
        hi, lo = shifted(j)  # once per predictor, not once per finite difference
        est = ame(flat, hi, lo)
        h = 1e-6
        jac = np.column_stack([(ame(flat + h * e, hi, lo) - ame(flat - h * e, hi, lo)) / (2 * h)
                               for e in np.eye(flat.size)])
        se = np.sqrt(np.clip(np.diag(jac @ cov @ jac.T), 0, None))
        changes[name] = {o: {"change": finite(est[k]), "se": finite(se[k]),
                             "ci_low": finite(est[k] - q * se[k]),
                             "ci_high": finite(est[k] + q * se[k]), **_wald(est[k], se[k])}
                         for k, o in enumerate(outcomes)}
    out["average_changes"] = changes
    return out
