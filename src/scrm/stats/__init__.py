"""Statistics shared by every research question: one home per method.

* :mod:`.survival`  Kaplan–Meier (Greenwood), log-rank, Cox, C-index (statsmodels underneath)
* :mod:`.intervals` Wilson and Newcombe intervals for rates and their differences; p-values,
  Holm and Benjamini–Hochberg adjustment
* :mod:`.compare`   paired bootstrap of test metrics, DeLong's test of two AUCs
* :mod:`.classification` confusion matrix, macro-F1, paired scores of two classifiers, McNemar
* :mod:`.regression` unpenalised, brand-adjusted and multinomial logit with the events-per-predictor rule
* :mod:`.agreement` Cohen's kappa with a bootstrap interval
* :mod:`.baselines` group-rate and group-median baselines with the scikit-learn estimator API
* :mod:`.splits`    the time split used wherever "train on the past, test on the future" is meant
* :mod:`.powerlaw`  word tokens, type-token curves, Heaps' law and the Zipf (discrete power-law) exponent
"""
