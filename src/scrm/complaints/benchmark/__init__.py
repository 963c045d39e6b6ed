"""A fair text-classifier benchmark on complaint labels: every model x split x label source.

* :mod:`.splits`   the rows of each label source (rare classes merged or dropped) and their folds:
  stratified, time (train on the past) and brand (test brands unseen);
* :mod:`.zoo`      the models, sklearn Pipelines built from params.yaml ``benchmark.zoo`` entries;
* :mod:`.evaluate` fitting on training rows, pooled test predictions, macro-F1 and the best model;
* :mod:`.cells`    the unit of work (one training set, every model) and the engines that run it:
  local, or Ray tasks (``benchmark.engine``), with the same results;
* :mod:`.outputs`  leaderboard CSV/markdown, the deterministic metrics JSON and DVC plot rows;
* :mod:`.drawing`  the confusion-matrix figure;
* :mod:`.stage`    stage ``benchmark`` (``run``) with command-line overrides and MLflow runs.
"""
