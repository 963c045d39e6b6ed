"""Response time: per-brand service levels, unanswered openings, survival curves, latency drivers.

Definitions (the same in the report, the tests and the README)
    *Opening*, its *brand* (``brand_source``: ``first_reply``, ``mention``, ``none``) and whether it
    was *answered* (``first_response_id`` / ``_at``, ``responder``, under the definition chosen by
    ``openings.answered_definition``, ``customer`` by default) come from the one opening table
    ``data/processed/openings.parquet``, defined in :mod:`scrm.data.openings`. An opening without a
    brand is grouped under :data:`UNKNOWN_BRAND` here. Service figures are computed on the openings
    that are customer requests (``is_request``, the non-request rules of the opening table) unless
    ``openings.exclude_non_requests`` is false; the flagged openings are counted by reason.
    *Latency* (seconds) = first response ``created_at`` - opening ``created_at``, as in the opening
    table: a response stamped before its opening (clock errors in the raw file) is clipped to 0 and
    counted (``negative_latency_clipped``).
    *Censoring*: unanswered openings are not dropped. They are right-censored at the end of the
    observed data (the latest ``created_at`` of any tweet) or ``response_time.horizon_hours`` (7
    days) after the opening, whichever comes first. A response later than the horizon also counts
    as censored at the horizon. ``follow_s`` is the follow-up, ``duration_s`` / ``event`` the
    survival pair (``event`` = a response was observed within the follow-up).
    *Service figures* of a group of openings (:func:`.service.service_stats`), each with an
    interval: answered share and shares within 15 min / 1 h / 24 h (Wilson; a share's denominator
    is the openings whose status at the limit is known), Kaplan-Meier median (Brookmeyer-Crowley),
    RMST within ``rmst_hours`` (restricted mean time to first response), median and 90th percentile
    of answered latencies (order statistics).
    *Replies*: every brand tweet whose parent is a customer tweet is a reply; its latency is
    measured from that customer tweet. ``later_turns`` are the replies whose parent is not an
    opening (customer follow-ups inside a conversation).

Features per opening, all computed from information available at the opening time
    ``hour_utc`` (0-23) and ``weekday_utc`` (1 = Monday ... 7 = Sunday), both in UTC because the
    data carry no user time zone; text surface counts from :func:`scrm.text.surface_counts`
    (``len_chars``, ``n_mentions``, ``n_urls``, ``n_emoji``, ``n_questions``, ``n_exclaims``);
    ``sentiment`` (compound score of the opening tweet, read from
    ``data/processed/sentiment.parquet``, written once by the ``sentiment`` stage);
    ``prior_openings_any`` / ``prior_openings_brand``: openings by the same customer strictly
    earlier, to any brand / to this brand; ``inbound_load``: customer tweets (any turn) in threads
    of this brand in the ``load_window_minutes`` before the opening, ``[t - w, t)`` (polars rolling
    window per brand); ``backlog``: earlier openings of this brand (opened within the last
    ``backlog_window_hours``, null = no limit) that have no first response yet at the opening time.

Targets
    ``answered_within_1h`` (classification; openings that were unanswered and followed for less
    than an hour have an unknown label, ``within_1h_known`` = False, and are left out of that model)
    and ``log1p(latency_s)`` for answered openings (regression). Models are trained on the earliest
    ``train_fraction`` of openings and tested on the later ones
    (:func:`scrm.stats.splits.time_split`: no future leaks), tracked in MLflow (experiment
    ``response_time``) through :mod:`scrm.tracking`.

Outputs of the stage (names in :class:`scrm.paths.Paths`)
    ``response_time.parquet``: one row per opening (ids, ``customer_id``, brand, ``brand_source``,
    ``opening_at``, the features above, ``answered``, ``first_response_id`` / ``_at``,
    ``responder``, ``latency_s``, ``answered_within_1h``, ``within_1h_known``, ``follow_s``,
    ``censor_at`` (end of follow-up), ``duration_s``, ``event``, ``split``).
    ``service_table.parquet``: one row per brand (:func:`.service.service_table`).
    ``response_time_sensitivity.parquet``: the figures per answered definition x population x
    scope (:mod:`.sensitivity`). ``response_time_pairwise.parquet``: brand pairs (log-rank with
    Holm, RMST and within-1 h differences). ``reports/metrics/response_time.json``: opening counts,
    overall figures, headline brands, sensitivity, log-rank, pairwise tests, the train/test shift,
    models with intervals, Cox. ``reports/plots/latency_by_brand.csv``, ``km_curves.csv`` (with
    bands) and ``within_1h_calibration.csv`` (``dvc plots show``), and
    ``reports/figures/response_time_importance.png`` (permutation importance).

Modules
    :mod:`.features` the per-opening frame (features, targets, survival pair, split);
    :mod:`.service` service figures with intervals, service table, overall summary, Kaplan-Meier
    curves, log-rank (global and pairwise), plot tables;
    :mod:`.sensitivity` the figures under each answered definition and population;
    :mod:`.models` estimators, fitting, test metrics, permutation importance;
    :mod:`.evaluation` bootstrap intervals, paired comparison with the baseline, calibration,
    train/test shift; :mod:`.cox` the Cox model and its checks;
    :mod:`.stage` the DVC stage (I/O and MLflow).

Survival analysis uses statsmodels (:mod:`scrm.stats.survival`, :mod:`scrm.stats.cox`): lifelines
cannot be installed next to pandas 3.
"""

from __future__ import annotations

from .features import FEATURES, UNKNOWN_BRAND, opening_frame
from .stage import EXPERIMENT, run

__all__ = ["EXPERIMENT", "FEATURES", "UNKNOWN_BRAND", "opening_frame", "run"]
